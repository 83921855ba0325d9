//! `dockhand apply`: take the apply lock, plan, show the plan, ask, and apply it as one
//! recorded deploy.

use std::io::{IsTerminal, Write};
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{bail, Result};

use super::args::ApplyArgs;
use super::settings;
use crate::apply::progress::Progress;
use crate::apply::ApplyError;
use crate::history::Store;
use crate::plan::render;
use crate::reconcile::pass::PlanContext;
use crate::reconcile::{self, lock, record};
use crate::sources::Fetch;

pub async fn run(a: &ApplyArgs, state_dir: &Path, notify: Option<&Path>) -> Result<ExitCode> {
    let source = settings::source(&a.source, state_dir, Fetch::OnRead)?;
    let host = settings::host(&a.source, state_dir)?;
    let sinks = settings::notify(notify)?;
    let docker = crate::observe::connect().await?;
    if a.preflight_only {
        // Changes nothing and records nothing, so it neither takes the lock nor opens the
        // record.
        let ctx = PlanContext::build(&source, &host, None, &docker, None).await?;
        if !show(&ctx)? {
            return Ok(ExitCode::SUCCESS);
        }
        let progress = Progress::new().redacting(ctx.redactor());
        let options = ctx.apply_options(true);
        crate::apply::apply(&docker, &ctx.plan, &ctx.desired, &options, &progress).await?;
        println!("\nPreflight passed; nothing was changed (--preflight-only).");
        return Ok(ExitCode::SUCCESS);
    }
    let store = Arc::new(Store::open(state_dir)?);
    // Before the plan: the plan shown and confirmed is the plan of the host as it is when it
    // is applied.
    let held = lock::acquire(&store, lock::CLI_WAIT).await?;
    let ctx = PlanContext::build(&source, &host, None, &docker, None).await?;
    if !show(&ctx)? {
        return Ok(ExitCode::SUCCESS);
    }
    record::refuse_if_held(&store, &ctx)?;
    if !a.retry {
        if let Some(q) = ctx.quarantine(&store)? {
            return Err(reconcile::Error::from(q).into());
        }
    }
    if !confirm(a.yes, "Apply these changes?")? {
        println!("Apply cancelled; nothing was changed.");
        return Ok(ExitCode::SUCCESS);
    }
    let trigger = if a.retry { "cli (retry)" } else { "cli" };
    let recorded = record::apply(&docker, &store, &held, &ctx, trigger).await?;
    drop(held);
    if let Some(summary) = recorded.summary() {
        println!("{summary}");
    }
    notify_and_wait(
        sinks,
        recorded.notification(&ctx, false).into_iter().collect(),
    )
    .await;
    recorded.into_result()?;
    tell_agent(state_dir, "apply", a.retry).await?;
    Ok(ExitCode::SUCCESS)
}

/// Sends `all` to the host's sinks and waits (bounded) for their delivery: a one-shot verb's
/// process ends next, which would cut a delivery off. The deploy is recorded by now, so
/// nothing it decides waits on this.
pub(super) async fn notify_and_wait(
    sinks: Vec<crate::notify::Sink>,
    all: Vec<crate::notify::Notification>,
) {
    if sinks.is_empty() || all.is_empty() {
        return;
    }
    let notifier = crate::notify::Notifier::start(sinks);
    for n in all {
        notifier.send(n);
    }
    notifier.finish(crate::notify::delivery_bound()).await;
}

/// Asks an agent running on `state_dir` for a pass now (the apply lock must be free), and
/// prints what it came to; the agent's state (`/status`, metrics) then follows at once instead
/// of at its next resync. `Ok(false)`: no agent listens.
///
/// # Errors
/// The agent's pass did not end in sync (its summary, with the hints), or it gave no answer.
pub(super) async fn tell_agent(state_dir: &Path, why: &str, retry: bool) -> Result<bool> {
    let request = crate::daemon::control::Request {
        why: why.to_string(),
        retry,
    };
    let Some(outcome) = crate::daemon::control::ask(state_dir, &request).await? else {
        return Ok(false);
    };
    if !outcome.ok {
        bail!("the agent's pass: {}", outcome.summary);
    }
    println!("agent: {}", outcome.summary);
    Ok(true)
}

/// Prints the plan; `Ok(false)` when there is nothing to do.
///
/// # Errors
/// [`ApplyError::Conflicts`] when conflicts block the plan (counted by kind).
pub(super) fn show(ctx: &PlanContext) -> Result<bool> {
    println!("source: {}\n", ctx.snapshot.origin);
    super::colour::print_plan(&render::text(&ctx.plan, false));
    if ctx.plan.actions.is_empty() && ctx.plan.conflicts.is_empty() {
        return Ok(false);
    }
    if !ctx.plan.conflicts.is_empty() {
        return Err(
            reconcile::Error::from(ApplyError::Conflicts(crate::plan::conflict_summary(
                &ctx.plan.conflicts,
            )))
            .into(),
        );
    }
    Ok(true)
}

/// Asks on a terminal; refuses elsewhere unless `yes`. Returns whether to go on.
pub(super) fn confirm(yes: bool, question: &str) -> Result<bool> {
    if yes {
        return Ok(true);
    }
    if !std::io::stdin().is_terminal() {
        bail!("refusing to change anything without confirmation: standard input is not a terminal\n  hint: review the plan above and pass --yes");
    }
    print!("\n{question} Only 'yes' is accepted: ");
    std::io::stdout().flush()?;
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer)?;
    Ok(answer.trim() == "yes")
}
