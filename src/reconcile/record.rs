//! The recorded apply: a plan carried out as one deploy in the deploy record (begin, every
//! step, finish), with the failed service of the revision quarantined when its release
//! rolled back (a first deploy never became healthy, a job failed), and released from
//! quarantine when a retry carried it out. The caller holds the apply lock (see [`super::lock`]) from
//! before it planned until this returns.

use std::sync::Arc;
use std::time::Duration;

use crate::apply::progress::Progress;
use crate::apply::{ApplyError, ApplyReport};
use crate::history::{ApplyLock, Hold, NewDeploy, Outcome, ServiceChange, Store};
use crate::model::actual::Actual;
use crate::notify::Notification;
use crate::plan::{render, Action, Plan};
use crate::spec::{labels, Desired};

use super::pass::PlanContext;
use super::Error;

/// How a recorded deploy ended.
#[derive(Debug)]
pub enum Recorded {
    Succeeded {
        deploy: i64,
        report: ApplyReport,
        took: Duration,
    },
    /// A release failed its gate, a hook or a smoke check and put back what served; the
    /// revision is quarantined (not applied again until a new revision or `--retry`).
    RolledBack {
        deploy: i64,
        revision: String,
        error: ApplyError,
    },
    /// Anything else failed: preflight (nothing changed) or a step. `quarantined`: the
    /// revision, when a first deploy failed its health gate (there was nothing to roll back
    /// to, but trying it again by itself would fail the same way).
    Failed {
        deploy: i64,
        outcome: Outcome,
        error: ApplyError,
        quarantined: Option<String>,
        /// A `failed-preflight` that repeats the record's latest at this revision (an
        /// agent's every resync): recorded once, so told once.
        repeated: bool,
    },
}

impl Recorded {
    pub fn outcome(&self) -> Outcome {
        match self {
            Recorded::Succeeded { .. } => Outcome::Succeeded,
            Recorded::RolledBack { .. } => Outcome::RolledBack,
            Recorded::Failed { outcome, .. } => *outcome,
        }
    }

    /// The revision this deploy quarantined, if any.
    pub fn quarantined(&self) -> Option<&str> {
        match self {
            Recorded::RolledBack { revision, .. } => Some(revision),
            Recorded::Failed { quarantined, .. } => quarantined.as_deref(),
            Recorded::Succeeded { .. } => None,
        }
    }

    /// What this deploy tells the host's notification sinks: one event (a failed release is
    /// `rolled-back`, not also `deploy-failed`), the services `ctx.plan` touched, and the
    /// error's first line redacted with `ctx`'s env values. `drift`: the pass was woken only
    /// by the Engine or the resync, so a success is a drift correction.
    /// `None` for a failure that repeats the one recorded before (see [`Recorded::Failed`]).
    pub fn notification(&self, ctx: &PlanContext, drift: bool) -> Option<Notification> {
        use crate::notify::Event;
        let (event, deploy, reason) = match self {
            Recorded::Succeeded { deploy, report, .. } => (
                if drift {
                    Event::DriftCorrected
                } else {
                    Event::DeploySucceeded
                },
                *deploy,
                format!(
                    "{} created, {} recreated, {} started, {} corrected, {} removed, {} released",
                    report.created,
                    report.recreated,
                    report.started,
                    report.corrected,
                    report.removed,
                    report.released
                ),
            ),
            Recorded::RolledBack { deploy, error, .. } => {
                (Event::RolledBack, *deploy, error.to_string())
            }
            Recorded::Failed { repeated: true, .. } => return None,
            Recorded::Failed {
                deploy,
                outcome,
                error,
                quarantined,
                ..
            } => (
                match (outcome, quarantined) {
                    (_, Some(_)) => Event::Quarantined,
                    (Outcome::Partial, None) => Event::DeployPartial,
                    _ => Event::DeployFailed,
                },
                *deploy,
                error.to_string(),
            ),
        };
        let mut n = Notification::new(
            event,
            &ctx.desired.project,
            &ctx.revision(),
            self.outcome().as_str(),
            &ctx.redactor().redact(&reason),
        );
        n.deploy = Some(deploy);
        n.services = ctx
            .plan
            .actions
            .iter()
            .filter_map(|a| Some(format!("{}/{}", a.stack(), a.service()?)))
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        Some(n)
    }

    /// The summary line of a success, for the user's output.
    pub fn summary(&self) -> Option<String> {
        let Recorded::Succeeded {
            deploy,
            report,
            took,
        } = self
        else {
            return None;
        };
        Some(format!(
            "\nApply complete in {:.1}s: {} created, {} recreated, {} started, {}{} removed{}; {} image(s) pulled. Recorded as deploy #{deploy}.",
            took.as_secs_f64(),
            report.created,
            report.recreated,
            report.started,
            if report.corrected > 0 {
                format!("{} corrected in place, ", report.corrected)
            } else {
                String::new()
            },
            report.removed,
            if report.released > 0 {
                format!(", {} released blue/green", report.released)
            } else {
                String::new()
            },
            report.pulled
        ))
    }

    /// `Ok` for a success, else the error to report ([`Error::RolledBack`] or
    /// [`Error::DeployFailed`], with the apply error as its source).
    ///
    /// # Errors
    /// The deploy did not succeed.
    pub fn into_result(self) -> Result<ApplyReport, Error> {
        match self {
            Recorded::Succeeded { report, .. } => Ok(report),
            Recorded::RolledBack {
                deploy,
                revision,
                error,
            } => Err(Error::RolledBack {
                deploy,
                revision,
                source: Box::new(error),
            }),
            Recorded::Failed {
                deploy,
                outcome,
                error,
                quarantined,
                ..
            } => Err(Error::DeployFailed {
                deploy,
                outcome: outcome.as_str(),
                quarantined,
                source: Box::new(error),
            }),
        }
    }
}

/// Applies `ctx.plan` as one recorded deploy under `lock`, quarantining the revision when its
/// release rolled back. `trigger` is the record's trigger column (`cli`, `rollback`,
/// `agent (…)`).
///
/// # Errors
/// Only when nothing could be recorded (the deploy record cannot be written); a failed apply
/// is an `Ok(Recorded::…)`.
pub async fn apply(
    docker: &bollard::Docker,
    store: &Arc<Store>,
    lock: &ApplyLock,
    ctx: &PlanContext,
    trigger: &str,
) -> Result<Recorded, Error> {
    let deploy = Deploy {
        revision: ctx.revision(),
        origin: &ctx.snapshot.origin,
        plan: &ctx.plan,
        desired: &ctx.desired,
        actual: &ctx.actual,
        options: ctx.apply_options(false),
        redactor: ctx.redactor(),
    };
    apply_deploy(docker, store, lock, &deploy, trigger).await
}

/// What one recorded deploy carries out, and what the record says it was.
pub struct Deploy<'a> {
    /// The record's revision (a commit, `worktree:…`, or [`super::down::REVISION`]).
    pub revision: String,
    /// Where the desired state came from, for the record.
    pub origin: &'a str,
    pub plan: &'a Plan,
    pub desired: &'a Desired,
    pub actual: &'a Actual,
    pub options: crate::apply::ApplyOptions,
    pub redactor: crate::apply::progress::Redactor,
}

/// [`apply`] for a plan that does not come from a [`PlanContext`] (`dockhand down`).
///
/// # Errors
/// As [`apply`].
pub async fn apply_deploy(
    docker: &bollard::Docker,
    store: &Arc<Store>,
    lock: &ApplyLock,
    d: &Deploy<'_>,
    trigger: &str,
) -> Result<Recorded, Error> {
    let project = d.desired.project.as_str();
    let revision = d.revision.clone();
    let options = &d.options;
    let redactor = &d.redactor;
    let services = service_changes(d.plan, d.desired, d.actual);
    let summary = render::summary_line(d.plan);
    let deploy = store.begin(
        &NewDeploy {
            project,
            trigger,
            revision: &revision,
            source: d.origin,
            services: &services,
            summary: &summary,
        },
        lock,
    )?;
    let progress = Progress::new()
        .redacting(redactor.clone())
        .recording(store.clone(), deploy);
    let started = std::time::Instant::now();
    let result = crate::apply::apply(docker, d.plan, d.desired, options, &progress).await;
    // The services this deploy carried out: a retry that did ends their quarantine.
    let done = |report: &ApplyReport| -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = d
            .plan
            .actions
            .iter()
            .filter(|a| a.wave().is_some())
            .filter_map(|a| Some((a.stack().to_string(), a.service()?.to_string())))
            .filter(|(st, sv)| {
                !report
                    .skipped
                    .iter()
                    .any(|s| &s.stack == st && &s.service == sv)
            })
            .collect();
        out.sort();
        out.dedup();
        out
    };
    match result {
        Ok(report) if !report.skipped.is_empty() => {
            store.release_quarantined_services(project, &revision, &done(&report))?;
            let error = ApplyError::Partial {
                skipped: report.skipped,
            };
            let text = redactor.redact(&error.to_string());
            store.finish(deploy, Outcome::Partial, Some(&text))?;
            Ok(Recorded::Failed {
                deploy,
                outcome: Outcome::Partial,
                error,
                quarantined: None,
                repeated: false,
            })
        }
        Ok(report) => {
            store.finish(deploy, Outcome::Succeeded, None)?;
            match store.quarantined(project, &revision)? {
                // A whole revision (an earlier dockhand's quarantine) applied in full.
                Some(q) if q.services.is_empty() => store.release_quarantine(project, &revision)?,
                Some(_) => {
                    store.release_quarantined_services(project, &revision, &done(&report))?;
                }
                None => {}
            }
            Ok(Recorded::Succeeded {
                deploy,
                report,
                took: started.elapsed(),
            })
        }
        Err(error) => {
            let text = redactor.redact(&error.to_string());
            let outcome = match &error {
                ApplyError::Preflight(_) => Outcome::FailedPreflight,
                e if e.rolled_back() => Outcome::RolledBack,
                _ => Outcome::Failed,
            };
            let begun = deploy;
            let deploy = if outcome == Outcome::FailedPreflight {
                // Nothing was changed: the same failure at the same revision (an agent's
                // every resync) is recorded once.
                store.finish_unless_repeated(deploy, outcome, Some(&text))?
            } else {
                store.finish(deploy, outcome, Some(&text))?;
                deploy
            };
            let repeated = deploy != begun;
            let failed = quarantined_service(&error, d.plan, d.desired);
            if let Some(service) = &failed {
                store.quarantine(
                    project,
                    &revision,
                    deploy,
                    &text,
                    std::slice::from_ref(service),
                )?;
            }
            if outcome == Outcome::RolledBack {
                if failed.is_none() {
                    // A rolled back change whose service the error does not name: the
                    // whole revision, as before services were recorded.
                    store.quarantine(project, &revision, deploy, &text, &[])?;
                }
                return Ok(Recorded::RolledBack {
                    deploy,
                    revision,
                    error,
                });
            }
            Ok(Recorded::Failed {
                deploy,
                outcome,
                error,
                quarantined: failed.map(|_| revision),
                repeated,
            })
        }
    }
}

/// The service (stack, service) to quarantine for `error`, if it is one that trying again
/// by itself would fail the same way: a release or recreate that was rolled back, a first
/// deploy (a container the plan created, nothing served before it) that never became
/// healthy, a job that exited non-zero or passed its `timeout`. Only that service is
/// quarantined (with its dependents skipped): everything else of the revision still
/// converges. The Engine failing under a step quarantines nothing.
fn quarantined_service(
    error: &ApplyError,
    plan: &Plan,
    desired: &Desired,
) -> Option<(String, String)> {
    let container = container_of(error)?;
    let c = desired
        .containers
        .iter()
        .find(|c| c.name == container || c.container_names().iter().any(|n| n == container))?;
    let job_failed = c.job
        && matches!(
            error,
            ApplyError::JobTimeout { .. } | ApplyError::Step { what: "job", .. }
        );
    (error.rolled_back() || first_deploy_gate_failed(error, plan) || job_failed)
        .then(|| (c.stack.clone(), c.service.clone()))
}

/// The container an apply error names (through a rolled back change, its cause's).
fn container_of(error: &ApplyError) -> Option<&str> {
    match error {
        ApplyError::Unhealthy { container, .. }
        | ApplyError::JobTimeout { container, .. }
        | ApplyError::GateFailed { container, .. }
        | ApplyError::Step { container, .. }
        | ApplyError::Hook { container, .. }
        | ApplyError::Smoke { container, .. } => Some(container),
        ApplyError::RolledBack { cause, .. } => container_of(cause),
        _ => None,
    }
}

/// A container the plan created (no earlier container of its service served) did not
/// become healthy: handled like a failed release's gate. The container is left for
/// `docker logs`; nothing that served was stopped, as nothing did.
fn first_deploy_gate_failed(error: &ApplyError, plan: &Plan) -> bool {
    let ApplyError::Unhealthy { container, .. } = error else {
        return false;
    };
    plan.actions
        .iter()
        .any(|a| matches!(a, Action::Create { container: c, .. } if c == container))
}

/// Refuses while a rollback holds the project and the source has not moved since; a source
/// that moved ends the hold. For `dockhand apply`, which deploys the head (the agent plans the
/// held revision instead, see [`PlanContext::build_held`]).
///
/// # Errors
/// [`Error::Held`], or [`Error::Store`].
pub fn refuse_if_held(store: &Store, ctx: &PlanContext) -> Result<(), Error> {
    let project = &ctx.desired.project;
    if let Some(h) = store.hold(project)? {
        if ctx.snapshot.commit.as_deref() == Some(h.source_at.as_str()) {
            return Err(Error::Held {
                project: project.clone(),
                revision: h.revision,
            });
        }
        store.release_hold(project)?;
    }
    Ok(())
}

/// Holds the project at `ctx`'s revision until the source moves past `source_at` (its head
/// now) or `dockhand resume`. Set before the rollback's deploy: should that fail half way, an
/// agent must still not redeploy the head over what is left.
///
/// # Errors
/// The deploy record cannot be written.
pub fn hold(store: &Store, ctx: &PlanContext, source_at: &str) -> Result<(), Error> {
    let revision = ctx.revision();
    store.set_hold(
        &ctx.desired.project,
        &Hold {
            reason: format!("dockhand rollback to {revision}"),
            revision,
            source_at: source_at.to_string(),
            at_ms: crate::history::now_ms(),
        },
    )?;
    Ok(())
}

/// Per container the plan touches: the image before (from the Engine) and after (desired).
fn service_changes(plan: &Plan, desired: &Desired, actual: &Actual) -> Vec<ServiceChange> {
    let mut out = Vec::new();
    for a in &plan.actions {
        let (stack, service, container, kind) = match a {
            Action::Create {
                stack,
                service,
                container,
                ..
            } => (stack, service.clone(), container.clone(), "create"),
            Action::Recreate {
                stack,
                service,
                container,
                ..
            } => (stack, service.clone(), container.clone(), "recreate"),
            Action::Start {
                stack,
                service,
                container,
                ..
            } => (stack, service.clone(), container.clone(), "start"),
            Action::Release {
                stack,
                service,
                container,
                ..
            } => (stack, service.clone(), container.clone(), "release"),
            Action::Retire {
                stack,
                service,
                container,
                ..
            } => (stack, service.clone(), container.clone(), "retire"),
            Action::Remove {
                stack, container, ..
            } => (stack, String::new(), container.clone(), "remove"),
            _ => continue,
        };
        let before = actual.managed.iter().find(|c| c.name == container);
        let after = desired
            .containers
            .iter()
            .find(|c| &c.stack == stack && c.service == service)
            .filter(|_| !matches!(kind, "remove" | "retire"));
        out.push(ServiceChange {
            stack: stack.clone(),
            service: if service.is_empty() {
                before
                    .and_then(|c| c.label(labels::SERVICE))
                    .unwrap_or_default()
                    .to_string()
            } else {
                service
            },
            container,
            action: kind.into(),
            image_before: before.map(|c| c.image.clone()),
            image_after: after.map(|c| c.image_ref.clone()),
        });
    }
    out
}
