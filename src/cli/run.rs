//! `dockhand run`: the agent's settings resolved, then [`crate::daemon::run`] until SIGTERM or
//! SIGINT (the pass in flight finishes).

use std::path::Path;
use std::process::ExitCode;

use anyhow::Result;

use super::args::RunArgs;
use super::settings;

pub async fn run(a: &RunArgs, state_dir: &Path, notify: Option<&Path>) -> Result<ExitCode> {
    let settings = settings::agent(a, state_dir, notify)?;
    let shutdown = crate::daemon::triggers::stop_on_signals();
    crate::daemon::run(settings, shutdown).await?;
    Ok(ExitCode::SUCCESS)
}
