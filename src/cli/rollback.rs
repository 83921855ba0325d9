//! `dockhand rollback` (deploy an earlier revision and hold there) and `dockhand resume` (end
//! the hold).

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{bail, Context, Result};

use super::apply::{ask_agent, confirm, deploy_doc, finish_json, notify_and_wait, tell_agent};
use super::args::{ResumeArgs, RollbackArgs};
use super::{json, settings};
use crate::apply::ApplyError;
use crate::history::{Outcome, Store};
use crate::notify::{Event, Notification};
use crate::plan::render;
use crate::reconcile::pass::{self, PlanContext};
use crate::reconcile::{self, lock, record, short};
use crate::sources::Fetch;

pub async fn run(a: &RollbackArgs, state_dir: &Path, notify: Option<&Path>) -> Result<ExitCode> {
    if a.source.worktree {
        bail!(
            "rollback deploys a recorded commit, so it needs a git source\n  hint: drop --worktree"
        );
    }
    let source = settings::source(&a.source, state_dir, Fetch::OnRead)?;
    let host = settings::host(&a.source, state_dir)?;
    let sinks = settings::notify(notify)?;
    let store = Arc::new(Store::open(state_dir)?);
    let docker = crate::observe::connect().await?;
    // Everything below runs under the lock: the target is chosen from the record once no
    // other apply is running (an agent finishing a deploy changes what "the one before the
    // current one" is), and the hold is set before any agent pass can plan again.
    let held = lock::acquire(&store, lock::CLI_WAIT).await?;
    let head = source.read(None)?;
    let Some(head_commit) = head.commit.clone() else {
        bail!(
            "{} is not a git repository: there is no earlier commit to roll back to",
            head.origin
        );
    };
    let project = crate::load::load(&head.files)
        .map(|d| d.config.project)
        .map_err(|_| anyhow::anyhow!("the source's head does not load, so its project is unknown\n  hint: pass --to COMMIT (a deploy id needs the project)"));
    let target = match &a.to {
        Some(t) if !t.is_empty() && t.chars().all(|c| c.is_ascii_digit()) => {
            let id: i64 = t.parse()?;
            store
                .deploy(project.as_ref().ok().map(String::as_str), id)?
                .map(|d| d.revision)
                .with_context(|| {
                    format!("no deploy #{id}\n  hint: `dockhand history` lists them")
                })?
        }
        Some(t) => t.clone(),
        None => previous_good(
            &store,
            project.as_ref().map_err(|e| anyhow::anyhow!("{e}"))?,
        )?,
    };
    if target == reconcile::down::REVISION {
        bail!("that deploy was a `dockhand down`, not a revision of the source\n  hint: `dockhand down` decommissions again; `dockhand rollback --to COMMIT` deploys a commit");
    }
    if target.starts_with("worktree:") {
        bail!("deploy {target} was made from files on disk, which were not recorded\n  hint: roll back to a commit (--to COMMIT)");
    }
    let ctx = PlanContext::build(&source, &host, Some(&target), &docker, None).await?;
    let rev = ctx.revision();
    let as_json = a.json.json;
    if !as_json {
        println!("rollback to {rev}\nsource: {}\n", ctx.snapshot.origin);
        super::colour::print_plan(&render::text(&ctx.plan, false));
    }
    if !ctx.plan.conflicts.is_empty() {
        return Err(
            reconcile::Error::from(ApplyError::Conflicts(crate::plan::conflict_summary(
                &ctx.plan.conflicts,
            )))
            .into(),
        );
    }
    if !confirm(a.yes, as_json, "Roll back and hold there?")? {
        println!("Rollback cancelled; nothing was changed.");
        return Ok(ExitCode::SUCCESS);
    }
    record::hold(&store, &ctx, &head_commit)?;
    let recorded = if ctx.plan.is_empty() {
        None
    } else {
        Some(record::apply(&docker, &store, &held, &ctx, "rollback").await?)
    };
    // The agent's pass below needs the lock.
    drop(held);
    let mut told = vec![Notification::new(
        Event::HoldSet,
        &ctx.desired.project,
        &rev,
        "held",
        &format!(
            "dockhand rollback to {}: held until the source moves past {} or `dockhand resume`",
            short(&rev),
            short(&head_commit)
        ),
    )];
    told.extend(recorded.as_ref().and_then(|r| r.notification(&ctx, false)));
    notify_and_wait(sinks, told).await;
    if as_json {
        let outcome = recorded
            .as_ref()
            .map_or("no-changes", |r| r.outcome().as_str());
        let mut doc = deploy_doc(&ctx, outcome);
        // The hold stays whatever the deploy came to: `dockhand resume` ends it.
        doc.insert(
            "hold".into(),
            serde_json::to_value(store.hold(&ctx.desired.project)?)?,
        );
        return finish_json(doc, recorded, state_dir, "rollback", false).await;
    }
    if let Some(recorded) = recorded {
        if let Some(summary) = recorded.summary() {
            println!("{summary}");
        }
        recorded.into_result().context(
            "the rollback hold stays (the agent will not redeploy the head); `dockhand resume` ends it",
        )?;
    }
    println!(
        "\nHeld at {}: an agent keeps this revision until a new commit arrives on the source (now at {}), or `dockhand resume`.",
        short(&rev),
        short(&head_commit)
    );
    tell_agent(state_dir, "rollback", false).await?;
    Ok(ExitCode::SUCCESS)
}

/// The revision of the last successful deploy before the one now running.
fn previous_good(store: &Store, project: &str) -> Result<String> {
    let deploys = store.deploys(Some(project), None, 500)?;
    let mut good = deploys
        .iter()
        .filter(|d| d.outcome == Outcome::Succeeded)
        .map(|d| d.revision.as_str());
    let current = good.next();
    // A decommission is no revision to go back to.
    good.find(|r| Some(*r) != current && !r.starts_with("worktree:") && *r != reconcile::down::REVISION)
        .map(str::to_string)
        .context("no earlier successful deploy of a commit to roll back to\n  hint: `dockhand history` lists deploys; pass --to DEPLOY_ID or --to COMMIT")
}

/// Ends the hold; an agent running on `state_dir` is asked to deploy the source's head at
/// once (its outcome printed, a failure exits 1), else the next reconcile does.
pub async fn resume(a: &ResumeArgs, state_dir: &Path, notify: Option<&Path>) -> Result<ExitCode> {
    let source = settings::source(&a.source, state_dir, Fetch::OnRead)?;
    let host = settings::host(&a.source, state_dir)?;
    let sinks = settings::notify(notify)?;
    let (_, desired) = pass::load(&source, &host, None)?;
    let store = Store::open(state_dir)?;
    let project = &desired.config.project;
    let hold = store.hold(project)?;
    let released = store.release_hold(project)?;
    if let (true, Some(h)) = (released, &hold) {
        let n = Notification::new(
            Event::HoldEnded,
            project,
            &h.revision,
            "resumed",
            "dockhand resume: the next reconcile deploys the source's head",
        );
        notify_and_wait(sinks, vec![n]).await;
    }
    if a.json.json {
        let agent = ask_agent(state_dir, "resume", false).await?;
        json::print(
            json::RESUME_VERSION,
            &serde_json::json!({
                "project": desired.config.project,
                "released": released,
                "agent": agent,
            }),
        )?;
        return match agent.filter(|o| !o.ok) {
            Some(o) => Err(json::Printed::wrap(anyhow::anyhow!(
                "the agent's pass: {}",
                o.summary
            ))),
            None => Ok(ExitCode::SUCCESS),
        };
    }
    if released {
        println!("rollback hold ended");
    } else {
        println!("no rollback hold for project {}", desired.config.project);
    }
    if !tell_agent(state_dir, "resume", false).await? && released {
        println!("no agent runs on this state directory: the next `dockhand apply` deploys the source's head");
    }
    Ok(ExitCode::SUCCESS)
}
