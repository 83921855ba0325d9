//! `dockhand apply`: take the apply lock, plan, show the plan, ask, and apply it as one
//! recorded deploy.

use std::io::{IsTerminal, Write};
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{bail, Result};

use super::args::ApplyArgs;
use super::{json, settings};
use crate::apply::progress::Progress;
use crate::apply::ApplyError;
use crate::history::Store;
use crate::plan::render;
use crate::reconcile::pass::PlanContext;
use crate::reconcile::{self, lock, record};
use crate::sources::Fetch;

/// Exit 0: applied, or nothing to do; 1: refused (conflicts, quarantine, hold, no
/// confirmation) or the deploy failed (recorded, with its outcome).
pub async fn run(a: &ApplyArgs, state_dir: &Path, notify: Option<&Path>) -> Result<ExitCode> {
    let as_json = a.json.json;
    let source = settings::source(&a.source, state_dir, Fetch::OnRead)?;
    let host = settings::host(&a.source, state_dir)?;
    let sinks = settings::notify(notify)?;
    let docker = crate::observe::connect().await?;
    if a.preflight_only {
        // Changes nothing and records nothing, so it neither takes the lock nor opens the
        // record.
        let ctx = PlanContext::build(&source, &host, None, &docker, None).await?;
        if !show(&ctx, as_json)? {
            return no_changes(&ctx, as_json);
        }
        let progress = Progress::new().redacting(ctx.redactor());
        let options = ctx.apply_options(true);
        crate::apply::apply(&docker, &ctx.plan, &ctx.desired, &options, &progress).await?;
        if as_json {
            let mut doc = deploy_doc(&ctx, "preflight-passed");
            doc.insert("preflight_only".into(), true.into());
            json::print(json::DEPLOY_VERSION, &doc)?;
        } else {
            println!("\nPreflight passed; nothing was changed (--preflight-only).");
        }
        return Ok(ExitCode::SUCCESS);
    }
    let store = Arc::new(Store::open(state_dir)?);
    // Before the plan: the plan shown and confirmed is the plan of the host as it is when it
    // is applied.
    let held = lock::acquire(&store, lock::CLI_WAIT).await?;
    let mut ctx = PlanContext::build(&source, &host, None, &docker, None).await?;
    // A quarantined service is skipped (with its dependents) and the rest is applied, unless
    // nothing else is left to do; `--retry` tries it again.
    let refused = if a.retry {
        None
    } else {
        ctx.scope_quarantine(&store)?
    };
    if !show(&ctx, as_json)? {
        return no_changes(&ctx, as_json);
    }
    record::refuse_if_held(&store, &ctx)?;
    if let Some(q) = refused {
        return Err(reconcile::Error::from(q).into());
    }
    if !confirm(a.yes, as_json, "Apply these changes?")? {
        println!("Apply cancelled; nothing was changed.");
        return Ok(ExitCode::SUCCESS);
    }
    let trigger = if a.retry { "cli (retry)" } else { "cli" };
    let recorded = record::apply(&docker, &store, &held, &ctx, trigger).await?;
    drop(held);
    let told: Vec<_> = recorded.notification(&ctx, false).into_iter().collect();
    if as_json {
        notify_and_wait(sinks, told).await;
        let doc = deploy_doc(&ctx, recorded.outcome().as_str());
        return finish_json(doc, Some(recorded), state_dir, "apply", a.retry).await;
    }
    if let Some(summary) = recorded.summary() {
        println!("{summary}");
    }
    notify_and_wait(sinks, told).await;
    recorded.into_result()?;
    tell_agent(state_dir, "apply", a.retry).await?;
    Ok(ExitCode::SUCCESS)
}

/// `apply --json` and `rollback --json` when there is nothing to change.
fn no_changes(ctx: &PlanContext, as_json: bool) -> Result<ExitCode> {
    if as_json {
        json::print(json::DEPLOY_VERSION, &deploy_doc(ctx, "no-changes"))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// The deploy shape (`apply --json`, `rollback --json`) before its result: `source`,
/// `revision`, `plan` and the `outcome` (`no-changes`, `preflight-passed`, or the recorded
/// deploy's: `succeeded`, `rolled-back`, `failed`, `failed-preflight`, `partial`).
pub(super) fn deploy_doc(
    ctx: &PlanContext,
    outcome: &str,
) -> serde_json::Map<String, serde_json::Value> {
    let mut doc = serde_json::Map::new();
    doc.insert("source".into(), ctx.snapshot.origin.clone().into());
    doc.insert("revision".into(), ctx.revision().into());
    doc.insert("outcome".into(), outcome.into());
    doc.insert("deploy_id".into(), serde_json::Value::Null);
    doc.insert("plan".into(), super::plan::plan_doc(ctx));
    doc
}

/// Prints the deploy shape with the result of a recorded deploy, if one was made
/// (`deploy_id`, `took_ms`, `report`, `quarantined`, `error`, and the `agent`'s pass when one
/// runs) and ends the verb: a failed deploy or agent pass exits 1 with its error in the
/// document (and its report on stderr).
pub(super) async fn finish_json(
    mut doc: serde_json::Map<String, serde_json::Value>,
    recorded: Option<record::Recorded>,
    state_dir: &Path,
    why: &str,
    retry: bool,
) -> Result<ExitCode> {
    use serde_json::Value;
    let (deploy, took) = match &recorded {
        Some(record::Recorded::Succeeded { deploy, took, .. }) => {
            (Some(*deploy), Some(took.as_millis()))
        }
        Some(
            record::Recorded::RolledBack { deploy, .. } | record::Recorded::Failed { deploy, .. },
        ) => (Some(*deploy), None),
        None => (None, None),
    };
    doc.insert("deploy_id".into(), deploy.into());
    doc.insert(
        "took_ms".into(),
        took.map_or(Value::Null, |t| u64::try_from(t).unwrap_or(u64::MAX).into()),
    );
    doc.insert(
        "quarantined".into(),
        recorded
            .as_ref()
            .and_then(record::Recorded::quarantined)
            .map_or(Value::Null, Into::into),
    );
    let failed = match recorded.map(record::Recorded::into_result) {
        None => {
            doc.insert("report".into(), Value::Null);
            doc.insert("error".into(), Value::Null);
            None
        }
        Some(Ok(report)) => {
            doc.insert("report".into(), serde_json::to_value(&report)?);
            doc.insert("error".into(), Value::Null);
            None
        }
        Some(Err(e)) => {
            let e = anyhow::Error::from(e);
            doc.insert("report".into(), Value::Null);
            doc.insert("error".into(), json::error(&e)["error"].clone());
            Some(e)
        }
    };
    let mut agent = None;
    if failed.is_none() {
        agent = ask_agent(state_dir, why, retry).await?;
    }
    doc.insert("agent".into(), serde_json::to_value(&agent)?);
    let failed = failed.or_else(|| {
        agent
            .filter(|o| !o.ok)
            .map(|o| anyhow::anyhow!("the agent's pass: {}", o.summary))
    });
    if let (Some(e), Value::Null) = (&failed, &doc["error"]) {
        let err = json::error(e)["error"].clone();
        doc.insert("error".into(), err);
    }
    json::print(json::DEPLOY_VERSION, &doc)?;
    match failed {
        Some(e) => Err(json::Printed::wrap(e)),
        None => Ok(ExitCode::SUCCESS),
    }
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

/// Asks an agent running on `state_dir` for a pass now (the apply lock must be free); the
/// agent's state (`/status`, metrics) then follows at once instead of at its next resync.
/// `Ok(None)`: no agent listens.
///
/// # Errors
/// The agent gave no answer.
pub(super) async fn ask_agent(
    state_dir: &Path,
    why: &str,
    retry: bool,
) -> Result<Option<crate::daemon::control::Outcome>> {
    let request = crate::daemon::control::Request {
        why: why.to_string(),
        retry,
    };
    Ok(crate::daemon::control::ask(state_dir, &request).await?)
}

/// [`ask_agent`], and prints what the agent's pass came to. `Ok(false)`: no agent listens.
///
/// # Errors
/// The agent's pass did not end in sync (its summary, with the hints), or it gave no answer.
pub(super) async fn tell_agent(state_dir: &Path, why: &str, retry: bool) -> Result<bool> {
    let Some(outcome) = ask_agent(state_dir, why, retry).await? else {
        return Ok(false);
    };
    if !outcome.ok {
        bail!("the agent's pass: {}", outcome.summary);
    }
    println!("agent: {}", outcome.summary);
    Ok(true)
}

/// Prints the plan (not under `--json`: the plan is part of the result document);
/// `Ok(false)` when there is nothing to do.
///
/// # Errors
/// [`ApplyError::Conflicts`] when conflicts block the plan (counted by kind).
pub(super) fn show(ctx: &PlanContext, as_json: bool) -> Result<bool> {
    if !as_json {
        println!("source: {}\n", ctx.snapshot.origin);
        super::colour::print_plan(&render::text(&ctx.plan, false));
    }
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

/// Asks on a terminal; refuses elsewhere unless `yes`, and always under `--json` (the
/// question and the plan it asks about would break the document). Returns whether to go on.
pub(super) fn confirm(yes: bool, as_json: bool, question: &str) -> Result<bool> {
    if yes {
        return Ok(true);
    }
    if as_json {
        bail!("refusing to change anything without confirmation: --json asks no questions\n  hint: `dockhand plan --json` shows the plan; pass --yes to apply it");
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
