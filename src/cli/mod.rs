//! The command-line edge: clap types (`args`), settings resolved once (`settings`), and one
//! small file per verb that calls into the library (`reconcile`, `daemon`, `history`, `pin`)
//! and prints its result. The only module that prints user output (stdout) besides apply's
//! progress (stderr). Nothing here is needed by the agent.

mod apply;
pub mod args;
mod colour;
mod docs;
mod history;
pub mod json;
mod ops;
pub mod ops_args;
mod pin;
mod plan;
mod rollback;
mod run;
mod settings;
mod status;
mod table;
mod validate;

use std::process::ExitCode;

use anyhow::Result;

use args::Command;

/// Exit code for "the plan has changes" with `--detailed-exitcode`, and `status`'s "not in
/// sync".
const EXIT_CHANGES: u8 = 2;
/// Exit code for "conflicts block apply" with `plan --detailed-exitcode` (as for an error:
/// apply would refuse).
const EXIT_BLOCKED: u8 = 1;
/// `status`'s exit code for "in sync, but something is unhealthy or not running".
const EXIT_UNHEALTHY: u8 = 3;

/// Runs one verb.
///
/// # Errors
/// Whatever the verb hit; `main` prints it with [`crate::reconcile::report`].
pub async fn run(cli: args::Cli) -> Result<ExitCode> {
    let state_dir = cli.state_dir.as_path();
    let notify = cli.notify.as_deref();
    match &cli.command {
        Command::Validate(a) => validate::run(a, state_dir),
        Command::Plan(a) => plan::plan(a, state_dir).await,
        Command::Diff(a) => plan::diff(a, state_dir).await,
        Command::Apply(a) => apply::run(a, state_dir, notify).await,
        Command::Status(a) => status::run(a, state_dir).await,
        Command::History(a) => history::run(a, state_dir),
        Command::Pin(a) => pin::run(a).await,
        Command::Run(a) => run::run(a, state_dir, notify).await,
        Command::Rollback(a) => rollback::run(a, state_dir, notify).await,
        Command::Resume(a) => rollback::resume(a, state_dir, notify).await,
        Command::Logs(a) => ops::logs(a, state_dir).await,
        Command::Exec(a) => ops::exec(a, state_dir).await,
        Command::Down(a) => ops::down(a, state_dir).await,
        Command::Schema { out, json } => validate::schema(out, json.json),
        Command::Completions { shell } => docs::completions(*shell),
        Command::Man { dir } => docs::man(dir.as_deref()),
    }
}
