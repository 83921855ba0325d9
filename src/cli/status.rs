//! `dockhand status`: per service running, stopped, missing or drifted, with image, commit and
//! the deploy that put it there; quarantined revisions; tags that moved.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Result;
use serde::Serialize;

use super::args::StatusArgs;
use super::{settings, table};
use crate::history::{Outcome, Store};
use crate::model::actual::{Actual, ActualContainer, Health, RunState};
use crate::plan::status::{self, HealthStatus, SyncStatus};
use crate::plan::{render, Action, Plan};
use crate::reconcile::pass::PlanContext;
use crate::sources::Fetch;
use crate::spec::{labels, Desired};

pub async fn run(a: &StatusArgs, state_dir: &Path) -> Result<ExitCode> {
    let source = settings::source(&a.source, state_dir, Fetch::OnRead)?;
    let ctx =
        PlanContext::connect_and_build(&source, &settings::host(&a.source, state_dir)?).await?;
    let mut rows = status_rows(&ctx.desired, &ctx.actual, &ctx.plan);
    let store = Store::open_existing(state_dir)?;
    let mut quarantined = Vec::new();
    let mut hold = None;
    let mut last_error = None;
    if let Some(store) = &store {
        let last = store.last_deploys(&ctx.desired.project)?;
        for r in &mut rows {
            if let Some((_, id, at)) = last.iter().find(|(c, _, _)| *c == r.container) {
                r.deploy_id = Some(*id);
                r.deployed_ms = Some(*at);
            }
        }
        quarantined = store.quarantine_list(&ctx.desired.project)?;
        hold = store.hold(&ctx.desired.project)?;
        last_error = last_error_of(store, &ctx.desired.project)?;
    }
    let tags = if a.offline {
        Vec::new()
    } else {
        let docker = crate::observe::connect().await?;
        super::pin::tag_checks(&docker, &ctx.registry_auth, &ctx.desired).await
    };
    let in_sync = ctx.plan.in_sync();
    let healthy = rows.iter().all(|r| r.healthy);
    let (sync, health) = status::overall(
        !ctx.plan.is_empty(),
        rows.iter().map(|r| r.health),
        hold.is_some(),
    );
    if a.json.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "version": super::json::STATUS_VERSION,
                "source": ctx.snapshot.origin,
                "revision": ctx.revision(),
                "sync": sync,
                "health": health,
                "in_sync": in_sync,
                "healthy": healthy,
                "services": rows,
                "quarantined": quarantined,
                "hold": hold,
                "last_error": last_error,
                "tags_moved": tags.iter().filter(|t| t.moved()).collect::<Vec<_>>(),
                "tags_unchecked": tags.iter().filter(|t| t.error.is_some()).collect::<Vec<_>>(),
            }))?
        );
    } else {
        println!("source: {}\n", ctx.snapshot.origin);
        print!("{}", status_table(&rows));
        for t in tags.iter().filter(|t| t.moved()) {
            println!(
                    "\ntag moved: {} ({}/{}) now points to {}, pinned {}\n  hint: dockhand never follows a tag by itself; `dockhand pin --update --stack {}` writes the new digest for you to commit",
                    t.image,
                    t.stack,
                    t.service,
                    t.current.as_deref().unwrap_or_default(),
                    t.pinned,
                    t.stack
                );
        }
        for t in tags.iter().filter(|t| t.error.is_some()) {
            println!(
                "\ntag not checked: {} ({}/{}): {}",
                t.image,
                t.stack,
                t.service,
                t.error.as_deref().unwrap_or_default()
            );
        }
        if let Some(h) = &hold {
            println!(
                "\nheld: {} since {} ({}), until the source moves past {}\n  hint: `dockhand resume` ends the hold and deploys the source's head",
                crate::reconcile::short(&h.revision),
                crate::history::format_utc(h.at_ms),
                h.reason,
                crate::reconcile::short(&h.source_at)
            );
        }
        if let Some(e) = &last_error {
            println!(
                "\nlast error: deploy #{} ({}, {}) {}: {}\n  hint: `dockhand history --id {}` shows its steps",
                e.deploy,
                crate::reconcile::short(&e.revision),
                crate::history::format_utc(e.at_ms),
                e.outcome,
                e.error.lines().next().unwrap_or_default(),
                e.deploy
            );
        }
        for q in &quarantined {
            println!(
                    "\nquarantined: {} (deploy #{}, {}): {}\n  hint: commit a fix, or `dockhand apply --retry` to try this revision again",
                    q.revision,
                    q.deploy_id,
                    crate::history::format_utc(q.at_ms),
                    q.reason.lines().next().unwrap_or_default()
                );
        }
    }
    Ok(exit_code(in_sync, healthy))
}

/// The project's newest deploy, when it did not succeed: what the last error is until a
/// later deploy succeeds.
#[derive(Debug, Serialize)]
struct LastError {
    #[serde(rename = "deploy_id")]
    deploy: i64,
    revision: String,
    outcome: &'static str,
    error: String,
    #[serde(rename = "at", serialize_with = "crate::history::ser_rfc3339")]
    at_ms: i64,
}

fn last_error_of(store: &Store, project: &str) -> Result<Option<LastError>> {
    let newest = store.deploys(Some(project), None, 1)?.into_iter().next();
    Ok(newest
        .filter(|d| !matches!(d.outcome, Outcome::Succeeded | Outcome::Running))
        .map(|d| LastError {
            deploy: d.id,
            revision: d.revision,
            outcome: d.outcome.as_str(),
            error: d.error.unwrap_or_default(),
            at_ms: d.finished_ms.unwrap_or(d.started_ms),
        }))
}

/// `status`'s documented exit codes (see its `--help`): 2 when not in sync (the plan has
/// changes or conflicts, or a container with the desired spec is not healthy) — this wins, since applying may well fix the health too; 3 when in
/// sync but something is unhealthy; 0 otherwise. Errors exit 1 through `main`.
fn exit_code(in_sync: bool, healthy: bool) -> ExitCode {
    if !in_sync {
        ExitCode::from(super::EXIT_CHANGES)
    } else if !healthy {
        ExitCode::from(super::EXIT_UNHEALTHY)
    } else {
        ExitCode::SUCCESS
    }
}

/// Whether a desired container is as healthy as its kind asks: a job exited 0 or still runs;
/// a service runs and its Docker health is not `unhealthy`; a blue/green color that is idle
/// (stopped, kept for rollback) counts as healthy, since one color serving is the design.
fn container_healthy(job: bool, idle_color: bool, c: &ActualContainer) -> bool {
    if c.health() == Health::Unhealthy {
        return false;
    }
    if job {
        return c.state == RunState::Running || c.exit_code() == Some(0);
    }
    idle_color || c.state == RunState::Running
}

#[derive(Debug, Serialize)]
struct StatusRow {
    stack: String,
    service: String,
    container: String,
    /// running, unhealthy, failed, stopped, missing, drifted, conflict or undesired.
    state: String,
    /// The container exists and is as healthy as its kind asks ([`container_healthy`]);
    /// false for a missing container, true for an undesired one (it is removed, not run).
    healthy: bool,
    image: String,
    commit: String,
    /// Argo's words for this container ([`status`]).
    sync: SyncStatus,
    health: HealthStatus,
    /// When (Unix ms; shown as RFC 3339 `deployed_at`), and by which deploy, this container
    /// was last changed (from the deploy record).
    #[serde(
        rename = "deployed_at",
        serialize_with = "crate::history::ser_rfc3339_opt"
    )]
    deployed_ms: Option<i64>,
    deploy_id: Option<i64>,
    detail: String,
}

impl StatusRow {
    /// The DEPLOYED column: `2026-11-30 08:46:30Z #1`.
    fn deployed(&self) -> String {
        match (self.deployed_ms, self.deploy_id) {
            (Some(at), Some(id)) => format!("{} #{id}", crate::history::format_utc(at)),
            _ => String::new(),
        }
    }
}

fn status_rows(desired: &Desired, actual: &Actual, plan: &Plan) -> Vec<StatusRow> {
    let mut rows = Vec::new();
    for d in &desired.containers {
        let blue_green = d.blue_green.is_some();
        for name in d.container_names() {
            let ac = actual.managed.iter().find(|c| c.name == name);
            let action = plan
                .actions
                .iter()
                .find(|a| a.container() == Some(name.as_str()));
            // A color changed by hand beyond what can be put back in place is replaced by a
            // release to the other color: it still serves, but it is not as the spec says.
            let replaced_by_hand = plan.actions.iter().find_map(|a| match a {
                Action::Release {
                    container,
                    retire: Some(old),
                    changes,
                    ..
                } if *old == name
                    && changes
                        .iter()
                        .any(|c| c.field.ends_with(crate::plan::drift::BY_HAND)) =>
                {
                    let fields: Vec<&str> = changes.iter().map(|c| c.field.as_str()).collect();
                    Some(format!(
                        "{} changed by hand; next release goes to {container}",
                        fields.join(", ")
                    ))
                }
                _ => None,
            });
            let conflict = plan.conflicts.iter().find(|c| c.name == name);
            let sick = plan.unhealthy.iter().find(|u| u.container == name);
            let (state, detail) = match (conflict, action, ac) {
                (Some(c), _, _) => ("conflict", c.message.clone()),
                (_, Some(Action::Create { .. }), _) => ("missing", String::new()),
                (_, Some(Action::Recreate { changes, .. }), _) => (
                    "drifted",
                    format!(
                        "{} differ",
                        changes
                            .iter()
                            .map(|c| c.field.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ),
                (_, Some(Action::Start { reason, .. }), _) => ("stopped", reason.clone()),
                (_, Some(Action::Correct { changes, .. }), _) => (
                    "drifted",
                    changes
                        .iter()
                        .map(|c| format!("{}: {}", c.field, c.before.join(", ")))
                        .collect::<Vec<_>>()
                        .join("; "),
                ),
                (_, Some(Action::Release { step, .. }), _) => (
                    "to release",
                    format!("next release goes here ({})", step.as_str()),
                ),
                (_, Some(Action::Retire { reason, .. }), _) => ("to retire", reason.clone()),
                (_, _, Some(_)) if sick.is_some() => (
                    "unhealthy",
                    sick.map(|u| u.reason.clone()).unwrap_or_default(),
                ),
                (_, _, Some(_)) if replaced_by_hand.is_some() => {
                    ("drifted", replaced_by_hand.unwrap_or_default())
                }
                (_, _, Some(c)) if blue_green && c.serving() => ("serving", c.status.clone()),
                (_, _, Some(c)) if d.job && c.exit_code() == Some(0) => {
                    ("completed", c.status.clone())
                }
                (_, _, Some(c)) if c.health() == Health::Unhealthy => {
                    ("unhealthy", c.status.clone())
                }
                (_, _, Some(c)) if d.job && c.exit_code().is_some_and(|x| x != 0) => {
                    ("failed", c.status.clone())
                }
                (_, _, Some(c)) if c.state == RunState::Running => ("running", c.status.clone()),
                (_, _, Some(c)) if c.state == RunState::Restarting => (
                    "degraded",
                    format!(
                        "crash-looping, Docker restarts it; {}",
                        c.status.to_lowercase()
                    ),
                ),
                (_, _, Some(c)) if blue_green => (
                    "idle",
                    format!("kept for rollback; {}", c.status.to_lowercase()),
                ),
                (_, _, None) if blue_green => continue,
                _ => ("unknown", String::new()),
            };
            let idle_color = blue_green && state == "idle";
            let kind = if d.job {
                status::Kind::Job
            } else if idle_color {
                status::Kind::IdleColor
            } else {
                status::Kind::Service
            };
            rows.push(StatusRow {
                stack: d.stack.clone(),
                service: d.service.clone(),
                container: name.clone(),
                state: state.into(),
                healthy: sick.is_none()
                    && ac.is_some_and(|c| container_healthy(d.job, idle_color, c)),
                image: ac.map(|c| c.image.clone()).unwrap_or_default(),
                commit: ac
                    .and_then(|c| c.label(labels::COMMIT))
                    .unwrap_or_default()
                    .to_string(),
                sync: status::container_sync(conflict.is_some() || action.is_some()),
                health: status::container_health(kind, sick.is_some(), ac),
                deployed_ms: None,
                deploy_id: None,
                detail,
            });
        }
    }
    for a in &plan.actions {
        if let Action::Remove {
            stack,
            container,
            reason,
            ..
        } = a
        {
            let ac = actual.managed.iter().find(|c| &c.name == container);
            rows.push(StatusRow {
                stack: stack.clone(),
                service: ac
                    .and_then(|c| c.label(labels::SERVICE))
                    .unwrap_or_default()
                    .into(),
                container: container.clone(),
                state: "undesired".into(),
                healthy: true,
                image: ac.map(|c| c.image.clone()).unwrap_or_default(),
                commit: ac
                    .and_then(|c| c.label(labels::COMMIT))
                    .unwrap_or_default()
                    .into(),
                sync: SyncStatus::OutOfSync,
                health: status::container_health(status::Kind::Service, false, ac),
                deployed_ms: None,
                deploy_id: None,
                detail: reason.clone(),
            });
        }
    }
    rows
}

fn status_table(rows: &[StatusRow]) -> String {
    let cells: Vec<[String; 8]> = rows
        .iter()
        .map(|r| {
            [
                r.stack.clone(),
                r.service.clone(),
                r.container.clone(),
                r.state.clone(),
                render::short_image(&r.image),
                r.commit.chars().take(12).collect(),
                r.deployed(),
                r.detail.clone(),
            ]
        })
        .collect();
    table::render(
        [
            "STACK",
            "SERVICE",
            "CONTAINER",
            "STATE",
            "IMAGE",
            "COMMIT",
            "DEPLOYED",
            "DETAIL",
        ],
        &cells,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::plan::status::tests::c;

    #[test]
    fn health_by_kind_of_container() {
        let up = c(RunState::Running, "Up 3 minutes");
        let sick = c(RunState::Running, "Up 3 minutes (unhealthy)");
        let ok = c(RunState::Running, "Up 3 minutes (healthy)");
        let exited0 = c(RunState::Exited, "Exited (0) 3 seconds ago");
        let exited1 = c(RunState::Exited, "Exited (1) 3 seconds ago");
        assert!(container_healthy(false, false, &up));
        assert!(container_healthy(false, false, &ok));
        assert!(!container_healthy(false, false, &sick));
        assert!(
            !container_healthy(false, false, &exited0),
            "a stopped service"
        );
        assert!(container_healthy(false, true, &exited0), "an idle color");
        assert!(container_healthy(true, false, &exited0), "a completed job");
        assert!(!container_healthy(true, false, &exited1), "a failed job");
        assert!(container_healthy(true, false, &up), "a running job");
    }

    #[test]
    fn not_in_sync_wins_over_unhealthy() {
        assert_eq!(exit_code(true, true), ExitCode::SUCCESS);
        assert_eq!(exit_code(false, true), ExitCode::from(2));
        assert_eq!(exit_code(false, false), ExitCode::from(2));
        assert_eq!(exit_code(true, false), ExitCode::from(3));
    }
}
