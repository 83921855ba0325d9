//! One agent pass: take the apply lock, plan (the held revision while a rollback holds), and
//! apply as a recorded deploy unless something stops it (conflicts, quarantine, back-off, a
//! `drift: report` stack). What a pass came to is a [`Pass`]; why nothing was applied is a
//! [`Refusal`], decided by type.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::http::AgentState;
use super::triggers::{engine_events, lock, network_events};
use super::{Backoff, Trigger};
use crate::history::{ApplyLock, Outcome, Store};
use crate::model::DriftPolicy;
use crate::notify::{Event, Notification, Notifier};
use crate::plan::render;
use crate::plan::services::{for_changed, service_states, ServiceState};
use crate::plan::status::{overall, HealthStatus, SyncStatus};
use crate::reconcile::pass::PlanContext;
use crate::reconcile::{self, record, report};
use crate::sources::Source;

/// What one reconcile pass came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Pass {
    /// The desired state could not be read, is invalid, or the host could not be read:
    /// nothing changed.
    NotRead(String),
    /// The apply lock stayed taken (another apply runs) or could not be opened: the pass is
    /// queued again.
    NoLock(String),
    InSync(String),
    /// Nothing changed, and why (the revision, the reason).
    Refused(String, Refusal),
    /// Containers that keep drifting wait for their back-off.
    BackedOff(String, Vec<String>),
    /// Nothing to change, but containers holding the desired spec are not healthy: the
    /// revision, their names, and why (the rendered lines).
    Unhealthy(String, Vec<String>, String),
    /// A recorded deploy: the revision, its outcome and, unless it succeeded, the error.
    Applied(String, Outcome, Option<String>),
}

/// Why a pass changed nothing although the plan has work.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Refusal {
    /// Objects dockhand does not own have wanted names (the rendered plan).
    Conflicts(String),
    /// The revision's release failed before (the quarantine message).
    Quarantined(String),
    /// The deploy record could not be read or written.
    Store(String),
}

impl Refusal {
    pub(super) fn message(&self) -> &str {
        match self {
            Refusal::Conflicts(m) | Refusal::Quarantined(m) | Refusal::Store(m) => m,
        }
    }
}

impl Pass {
    /// Argo's words for this pass ([`crate::plan::status::overall`]), given the state before
    /// it (the hold and `drift: report` list of this pass are in it already). None: the host
    /// was not read (kept as it was).
    fn sync_health(&self, st: &AgentState) -> Option<(SyncStatus, HealthStatus)> {
        let held = st.hold.is_some();
        let before = st.health.unwrap_or_default();
        let degraded = |names: &Vec<String>| vec![HealthStatus::Degraded; names.len()];
        Some(match self {
            Pass::NoLock(_) => return None,
            // The head cannot be applied: the host differs from it, and runs what it ran.
            Pass::NotRead(_) => (SyncStatus::OutOfSync, before),
            Pass::InSync(_) => overall(!st.drift_reported.is_empty(), [], held),
            Pass::Unhealthy(_, names, _) => overall(false, degraded(names), held),
            Pass::BackedOff(_, names) => overall(true, degraded(names), held),
            Pass::Refused(..) => overall(true, [before], held),
            Pass::Applied(_, Outcome::Succeeded, None) => overall(false, [], held),
            // What served before still serves.
            Pass::Applied(_, Outcome::RolledBack, _) => overall(true, [before], held),
            Pass::Applied(..) => overall(true, [HealthStatus::Degraded], held),
        })
    }

    /// Writes what this pass came to into the agent's state (for /status and /metrics).
    pub(super) fn record(self, st: &mut AgentState, drift: bool) {
        if let Some((sync, health)) = self.sync_health(st) {
            st.sync = Some(sync);
            st.health = Some(health);
        }
        st.degraded.clear();
        match self {
            Pass::NotRead(e) => {
                st.metrics.source_errors += 1;
                st.in_sync = false;
                st.last_error = Some(e);
            }
            Pass::NoLock(e) => {
                st.in_sync = false;
                st.last_error = Some(e);
            }
            Pass::InSync(rev) => {
                st.revision = Some(rev);
                st.in_sync = st.drift_reported.is_empty();
                st.last_sync_ms = Some(crate::history::now_ms());
                st.last_error = None;
            }
            Pass::Unhealthy(rev, names, why) => {
                st.revision = Some(rev);
                st.in_sync = false;
                st.degraded = names;
                st.last_error = Some(why);
            }
            Pass::Refused(rev, why) => {
                st.revision = Some(rev.clone());
                st.in_sync = false;
                if matches!(why, Refusal::Quarantined(_)) && !st.quarantined.contains(&rev) {
                    st.quarantined.push(rev);
                }
                st.last_error = Some(why.message().to_string());
            }
            Pass::BackedOff(rev, names) => {
                st.revision = Some(rev);
                st.in_sync = false;
                st.degraded = names;
            }
            Pass::Applied(rev, outcome, error) => {
                if drift {
                    st.metrics.drift_corrections += 1;
                }
                *st.metrics
                    .outcomes
                    .entry(outcome.as_str().to_string())
                    .or_default() += 1;
                st.in_sync = error.is_none();
                if error.is_none() {
                    st.last_sync_ms = Some(crate::history::now_ms());
                }
                if outcome == Outcome::RolledBack && !st.quarantined.contains(&rev) {
                    st.quarantined.push(rev.clone());
                }
                st.revision = Some(rev);
                st.last_error = error;
            }
        }
    }
}

/// How long a full read of the host (networks and volumes too) stands in for the passes after
/// it: what a single list cannot see (an unused network removed by hand, a labelled object
/// made by hand) is found within this long.
const FULL_READ_EVERY: Duration = Duration::from_secs(300);

/// How soon a pass that found the apply lock taken is tried again.
const LOCK_RETRY: Duration = Duration::from_secs(5);

/// How soon a pass woken by a container's `die` that found nothing to do looks again. The
/// Engine sends `die` before its container list shows the container stopped (it cleans up
/// first, which under load took over the 200 ms settle window: the list still said "Up"),
/// and a crash sends no later event; without this second look the dead container waited for
/// the next resync.
const DIE_RECHECK: Duration = Duration::from_secs(1);

/// Everything a pass needs; cheap to clone (handles and shared state).
#[derive(Clone)]
pub(super) struct Worker {
    pub docker: bollard::Docker,
    pub store: Arc<Store>,
    pub queue: mpsc::UnboundedSender<Trigger>,
    pub source: Arc<Source>,
    pub host: Arc<crate::reconcile::Host>,
    /// The project whose events are watched, and the quarantined revisions already reported.
    pub seen: Arc<Mutex<(Option<String>, BTreeSet<String>)>>,
    pub backoff: Arc<Mutex<Backoff>>,
    pub state: Arc<Mutex<AgentState>>,
    /// The last revision found or made in sync: what a bad commit falls back to.
    pub last_good: Arc<Mutex<Option<String>>>,
    /// The revision a full read of the host last found in sync, and when: while it holds, a
    /// pass costs the Engine one call.
    pub quick: Arc<Mutex<Option<(String, Instant)>>>,
    /// A re-check of unhealthy containers is queued: passes woken otherwise meanwhile do not
    /// queue another, so the re-checks stay one chain whatever else wakes the agent.
    pub recheck: Arc<std::sync::atomic::AtomicBool>,
    /// What the agent's last deploy acted on: the Engine's events of those containers while
    /// it ran are its own, not drift ([`Worker::drop_own_events`]).
    pub own: Arc<Mutex<OwnActions>>,
    /// The host's notification sinks; sending never waits.
    pub notifier: Notifier,
}

/// The containers one deploy acted on (every name their services may use: colors, the
/// container set aside during a recreate, a maintenance container, a removed one) and when
/// it ran, as Unix ns on this host's clock (the Engine's events carry the same clock).
#[derive(Debug, Default, Clone)]
pub(super) struct OwnActions {
    pub from_ns: i64,
    pub to_ns: i64,
    pub names: BTreeSet<String>,
}

impl OwnActions {
    /// Whether `t` is an event of the agent's own deploy.
    pub(super) fn explains(&self, t: &Trigger) -> bool {
        matches!(t, Trigger::Engine { container, at_ns, .. }
            if (self.from_ns..=self.to_ns).contains(at_ns) && self.names.contains(container))
    }
}

fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

impl Worker {
    /// `batch` without the Engine's events of the agent's own last deploy (a job it stopped
    /// at its timeout, a container it recreated): they are not drift, and taking them as
    /// drift reran a failed job every ~14 s (issue 18 review, C). A hand change to one of
    /// those containers while the deploy ran is left to the next resync.
    pub(super) fn drop_own_events(&self, batch: Vec<Trigger>) -> Vec<Trigger> {
        let own = lock(&self.own);
        batch.into_iter().filter(|t| !own.explains(t)).collect()
    }

    /// One pass. The apply lock is taken first and held to the end, so the plan is made of
    /// the host as it is and no other apply (a `dockhand apply`, a rollback) runs in between.
    ///
    /// `died`: the batch holds a container's `die` event (see [`DIE_RECHECK`]); `full_read`:
    /// it holds an event that ends the one-list-call passes ([`Trigger::needs_inspect`]);
    /// `retry`: an operator asked to apply a quarantined revision (`dockhand apply --retry`).
    pub(super) async fn pass(
        &self,
        why: &str,
        drift: bool,
        died: bool,
        full_read: bool,
        event_ns: Option<i64>,
        retry: bool,
    ) -> Pass {
        let apply_lock =
            match reconcile::lock::acquire(&self.store, reconcile::lock::AGENT_WAIT).await {
                Ok(l) => l,
                Err(e) => {
                    let msg = report(&e);
                    tracing::warn!("not applied ({why}): {msg}");
                    self.queue_after(LOCK_RETRY, Trigger::Resync);
                    return Pass::NoLock(msg);
                }
            };
        if full_read {
            // A change by hand that only an inspect shows (a restart policy, aliases).
            *lock(&self.quick) = None;
        }
        let quick_at = match &*lock(&self.quick) {
            Some((rev, at)) if at.elapsed() < FULL_READ_EVERY => Some(rev.clone()),
            _ => None,
        };
        let built = PlanContext::build_held(
            &self.source,
            &self.host,
            &self.store,
            &self.docker,
            quick_at.as_deref(),
        )
        .await;
        let quick = matches!(&built, Ok((ctx, _)) if ctx.quick);
        let ctx = match built {
            Ok((ctx, note)) => {
                if let Some(note) = note {
                    tracing::info!("{note}");
                    self.notifier.send(Notification::new(
                        Event::HoldEnded,
                        &ctx.desired.project,
                        &ctx.revision(),
                        "resumed",
                        &note,
                    ));
                }
                ctx
            }
            Err(e) => {
                // A bad commit or a half-written file: it is not applied, and the last good
                // revision stays converged (drift is still corrected) until a valid one comes.
                let msg = report(&e);
                tracing::warn!("desired state not applied ({why}): {msg}");
                let good = lock(&self.last_good).clone();
                if let Some(good) = good {
                    let built = PlanContext::build(
                        &self.source,
                        &self.host,
                        Some(&good),
                        &self.docker,
                        None,
                    )
                    .await;
                    if let Ok(ctx) = built {
                        if !ctx.plan.is_empty() {
                            tracing::info!(
                                "keeping the last good revision {}",
                                reconcile::short(&good)
                            );
                        }
                        let _ = self
                            .converge(ctx, why, drift, event_ns, false, &apply_lock)
                            .await;
                    }
                }
                return Pass::NotRead(msg);
            }
        };
        let pass = self
            .converge(ctx, why, drift, event_ns, retry, &apply_lock)
            .await;
        if died && matches!(pass, Pass::InSync(_)) {
            self.queue_after(DIE_RECHECK, Trigger::Resync);
        }
        if let Pass::InSync(rev) | Pass::Applied(rev, Outcome::Succeeded, None) = &pass {
            if !rev.starts_with("worktree:") {
                *lock(&self.last_good) = Some(rev.clone());
            }
        }
        {
            let mut q = lock(&self.quick);
            *q = match (&pass, quick) {
                (Pass::InSync(_), true) => q.take(),
                (Pass::InSync(rev), false) => Some((rev.clone(), Instant::now())),
                _ => None,
            };
        }
        pass
    }

    fn queue_after(&self, wait: Duration, trigger: Trigger) {
        let queue = self.queue.clone();
        tokio::spawn(async move {
            tokio::time::sleep(wait).await;
            let _ = queue.send(trigger);
        });
    }

    /// Applies `ctx.plan` as a recorded deploy unless something stops it (conflicts,
    /// quarantine, back-off, a `drift: report` stack), and writes what each service came to
    /// into the agent's state.
    async fn converge(
        &self,
        ctx: PlanContext,
        why: &str,
        drift: bool,
        event_ns: Option<i64>,
        retry: bool,
        apply_lock: &ApplyLock,
    ) -> Pass {
        // Of the plan as made, before any of it is split off or skipped: a service left out
        // for any reason is not in sync.
        let mut services = service_states(&ctx.desired, &ctx.actual, &ctx.plan);
        let pass = self
            .converge_plan(ctx, why, drift, event_ns, retry, apply_lock, &mut services)
            .await;
        lock(&self.state).services = services;
        pass
    }

    #[allow(clippy::too_many_arguments)]
    async fn converge_plan(
        &self,
        mut ctx: PlanContext,
        why: &str,
        drift: bool,
        event_ns: Option<i64>,
        retry: bool,
        apply_lock: &ApplyLock,
        services: &mut [ServiceState],
    ) -> Pass {
        let rev = ctx.revision();
        let start_watching = {
            let mut seen = lock(&self.seen);
            let new = seen.0.as_deref() != Some(ctx.desired.project.as_str());
            seen.0 = Some(ctx.desired.project.clone());
            new
        };
        if start_watching {
            tokio::spawn(engine_events(
                self.docker.clone(),
                ctx.desired.project.clone(),
                self.queue.clone(),
            ));
            tokio::spawn(network_events(
                self.docker.clone(),
                ctx.desired.project.clone(),
                self.queue.clone(),
            ));
        }
        // Stacks with `drift: report` are left alone by drift-only passes: their changes are
        // reported, and applied by the next deploy.
        let report_only: BTreeSet<String> = ctx
            .state
            .stacks
            .iter()
            .filter(|s| s.spec.drift == DriftPolicy::Report)
            .map(|s| s.name().to_string())
            .collect();
        let held = if drift && !report_only.is_empty() {
            ctx.plan.split_off_stacks(&report_only)
        } else {
            Vec::new()
        };
        let drifted: Vec<String> = held
            .iter()
            .filter_map(|a| a.container().map(str::to_string))
            .collect();
        let hold = self.store.hold(&ctx.desired.project).ok().flatten();
        for s in services.iter_mut() {
            s.held = hold.is_some();
        }
        let kept: Vec<String> = ctx
            .plan
            .kept_networks
            .iter()
            .map(|k| format!("{} (in use by {})", k.name, k.attached.join(", ")))
            .collect();
        {
            let mut st = lock(&self.state);
            st.hold = hold;
            if !kept.is_empty() && st.kept_networks != kept {
                // Said once, not every pass: the plan no longer tries to remove them.
                eprintln!(
                    "networks no longer declared, kept while containers dockhand does not own use them: {}",
                    kept.join(", ")
                );
            }
            st.kept_networks = kept;
            if !drifted.is_empty() && st.drift_reported != drifted {
                tracing::warn!(
                    "drift reported, not corrected (drift: report): {}\n  hint: `dockhand plan` shows the changes; `dockhand apply` or the next deploy puts them back",
                    drifted.join(", ")
                );
            }
            st.drift_reported = drifted;
        }
        if ctx.plan.is_empty() && !ctx.plan.unhealthy.is_empty() {
            return self.unhealthy(rev, &ctx, why);
        }
        if ctx.plan.is_empty() {
            return Pass::InSync(rev);
        }
        // An object in one service's way skips that service (and its dependents), not the
        // whole pass; with nothing else to do, the pass is refused as before.
        let mut scoped = ctx.plan.clone();
        scoped.scope_conflicts(&ctx.desired);
        if scoped.conflicts.is_empty() && !scoped.actions.is_empty() {
            for s in &scoped.skipped {
                eprintln!(
                    "skipped {}/{} ({why}): {}",
                    s.stack,
                    s.service,
                    s.reason.lines().next().unwrap_or_default()
                );
            }
            ctx.plan = scoped;
        }
        if !ctx.plan.conflicts.is_empty() {
            let msg = format!(
                "{}:\n{}",
                crate::plan::conflict_summary(&ctx.plan.conflicts),
                render::text(&ctx.plan, false)
            );
            tracing::warn!("not applied ({why}): {msg}");
            return Pass::Refused(rev, Refusal::Conflicts(msg));
        }
        // A quarantined service (its release, first deploy or job failed at this revision)
        // is skipped with its dependents; everything else converges, drift included. Only
        // with nothing else to do is the pass refused.
        let skipped_before = ctx.plan.skipped.len();
        match if retry {
            Ok(None)
        } else {
            ctx.scope_quarantine(&self.store)
        } {
            Ok(Some(q)) => {
                let msg = reconcile::Error::from(q).to_string();
                if lock(&self.seen).1.insert(rev.clone()) {
                    tracing::warn!("not applied ({why}): {msg}");
                }
                for_changed(services, &ctx.plan, &[], |s| s.quarantined = true);
                return Pass::Refused(rev, Refusal::Quarantined(msg));
            }
            Ok(None) => {
                let quarantined = &ctx.plan.skipped[skipped_before..];
                if !quarantined.is_empty() && lock(&self.seen).1.insert(rev.clone()) {
                    for s in quarantined {
                        tracing::warn!(
                            "skipped {}/{} ({why}): {}",
                            s.stack,
                            s.service,
                            s.reason.lines().next().unwrap_or_default()
                        );
                    }
                }
            }
            Err(e) => {
                let msg = report(&e);
                tracing::warn!("not applied ({why}): {msg}");
                return Pass::Refused(rev, Refusal::Store(msg));
            }
        }
        if drift {
            let (waiting, nothing_else) = self.back_off(&mut ctx);
            for s in services.iter_mut() {
                s.degraded |= waiting.iter().any(|n| s.has(n));
            }
            if !waiting.is_empty() {
                let reasons: Vec<(String, String)> = waiting
                    .iter()
                    .map(|n| {
                        (
                            n.clone(),
                            format!("{n} keeps drifting; corrections back off"),
                        )
                    })
                    .collect();
                self.tell_degraded(&ctx, &rev, &reasons);
            }
            if nothing_else {
                return Pass::BackedOff(rev, waiting);
            }
        }
        println!("{}", render::text(&ctx.plan, false));
        if let (true, Some(ns)) = (drift, event_ns) {
            // How long after the Engine's event the correction starts: settle window, observe
            // and plan. Both clocks are this host's.
            let ms = (now_ns() - ns) as f64 / 1e6;
            tracing::info!("correcting drift {ms:.1} ms after the Engine's event");
            lock(&self.state).metrics.observe_reaction(ms / 1000.0);
        }
        let trigger = format!("agent ({why})");
        let from_ns = now_ns();
        let recorded = record::apply(&self.docker, &self.store, apply_lock, &ctx, &trigger).await;
        *lock(&self.own) = OwnActions {
            from_ns,
            to_ns: now_ns(),
            names: acted_on(&ctx),
        };
        match recorded {
            Ok(recorded) => {
                mark_applied(services, &ctx.plan, &recorded);
                if let Some(summary) = recorded.summary() {
                    println!("{summary}");
                }
                if let Some(n) = recorded.notification(&ctx, drift) {
                    self.notifier.send(n);
                }
                if let Some(q) = recorded.quarantined() {
                    let mut st = lock(&self.state);
                    if !st.quarantined.iter().any(|r| r == q) {
                        st.quarantined.push(q.to_string());
                    }
                }
                if !ctx.plan.unhealthy.is_empty() || recorded.quarantined().is_some() {
                    // Unchanged containers were not healthy before this deploy and it did not
                    // touch them, or a first deploy failed its gate and left its container
                    // for `docker logs`: look again soon, so the state says what runs.
                    self.queue_after(Duration::from_secs(1), Trigger::Resync);
                }
                let outcome = recorded.outcome();
                let error = recorded.into_result().err().map(|e| report(&e));
                if let Some(e) = &error {
                    tracing::error!("{e}");
                }
                Pass::Applied(rev, outcome, error)
            }
            Err(e) => {
                let msg = report(&e);
                tracing::error!("{msg}");
                Pass::Refused(rev, Refusal::Store(msg))
            }
        }
    }

    /// A `degraded` notification for the containers in `reasons` (name, why) that the pass
    /// before did not find degraded: once when it starts, not on every re-check while it lasts.
    fn tell_degraded(&self, ctx: &PlanContext, rev: &str, reasons: &[(String, String)]) {
        let new: Vec<&(String, String)> = {
            let st = lock(&self.state);
            reasons
                .iter()
                .filter(|(c, _)| !st.degraded.contains(c))
                .collect()
        };
        if new.is_empty() {
            return;
        }
        let reason = new
            .iter()
            .map(|(_, why)| why.as_str())
            .collect::<Vec<_>>()
            .join("; ");
        let mut n = Notification::new(
            Event::Degraded,
            &ctx.desired.project,
            rev,
            "degraded",
            &ctx.redactor().redact(&reason),
        );
        n.services = new
            .iter()
            .map(|(name, _)| {
                ctx.desired
                    .containers
                    .iter()
                    .find(|c| &c.name == name)
                    .map_or_else(|| name.clone(), |c| format!("{}/{}", c.stack, c.service))
            })
            .collect();
        self.notifier.send(n);
    }

    /// Containers with the desired spec that are not healthy: nothing to apply (a first
    /// deploy that failed its gate is quarantined; a container that fell ill keeps its spec),
    /// so the agent reports them degraded and looks again, each time later (the same
    /// [`Backoff`] as corrections, at least a second).
    fn unhealthy(&self, rev: String, ctx: &PlanContext, why: &str) -> Pass {
        let names: Vec<String> = ctx
            .plan
            .unhealthy
            .iter()
            .map(|u| u.container.clone())
            .collect();
        let text = ctx
            .plan
            .unhealthy
            .iter()
            .map(|u| format!("{} is not healthy: {}", u.container, u.reason))
            .collect::<Vec<_>>()
            .join("\n");
        let now = Instant::now();
        let next = {
            let mut b = lock(&self.backoff);
            names
                .iter()
                .map(|n| {
                    b.record(n, now);
                    b.wait(n, now).unwrap_or_default()
                })
                .max()
                .unwrap_or_default()
                .max(Duration::from_secs(1))
        };
        let changed = {
            let st = lock(&self.state);
            st.degraded != names || st.last_error.as_deref() != Some(text.as_str())
        };
        let reasons: Vec<(String, String)> = ctx
            .plan
            .unhealthy
            .iter()
            .map(|u| {
                let why = format!("{} is not healthy: {}", u.container, u.reason);
                (u.container.clone(), why)
            })
            .collect();
        self.tell_degraded(ctx, &rev, &reasons);
        if changed {
            eprintln!(
                "degraded ({why}): {text}\n  hint: `docker logs {}` shows why; next look in {next:.0?}",
                names[0]
            );
        }
        if !self.recheck.swap(true, std::sync::atomic::Ordering::SeqCst) {
            let (queue, recheck) = (self.queue.clone(), self.recheck.clone());
            tokio::spawn(async move {
                tokio::time::sleep(next).await;
                recheck.store(false, std::sync::atomic::Ordering::SeqCst);
                let _ = queue.send(Trigger::Resync);
            });
        }
        Pass::Unhealthy(rev, names, text)
    }

    /// Only drift (events, resyncs) backs off: a new revision or an operator's signal is
    /// applied at once. The services of containers that must still wait (and their
    /// dependents) are taken out of the plan, and a resync is queued for when the longest
    /// wait ends: one crash-looping service never holds back the correction of another.
    /// Returns the waiting containers, and whether nothing else is left to do; otherwise it
    /// also notes a correction of each container still in the plan.
    fn back_off(&self, ctx: &mut PlanContext) -> (Vec<String>, bool) {
        let touched: Vec<String> = ctx
            .plan
            .actions
            .iter()
            .filter_map(|a| a.container().map(str::to_string))
            .collect();
        let now = Instant::now();
        let mut b = lock(&self.backoff);
        let mut waiting = Vec::new();
        let waits: Vec<(String, Duration)> = touched
            .iter()
            .filter_map(|n| b.wait(n, now).map(|w| (n.clone(), w)))
            .collect();
        if let Some(longest) = waits.iter().map(|(_, w)| *w).max() {
            waiting = waits.into_iter().map(|(n, _)| n).collect();
            let names = &waiting;
            tracing::warn!(
                "degraded: {} keep(s) drifting (dying or being changed); next correction in {longest:.0?}\n  hint: `docker logs {}` shows why it exits",
                names.join(", "),
                names[0]
            );
            self.queue_after(longest, Trigger::Resync);
            let blocked: std::collections::BTreeMap<(String, String), String> = ctx
                .plan
                .actions
                .iter()
                .filter(|a| a.container().is_some_and(|c| names.iter().any(|n| n == c)))
                .filter_map(|a| {
                    let why = format!("keeps drifting; next correction in {longest:.0?}");
                    Some(((a.stack().to_string(), a.service()?.to_string()), why))
                })
                .collect();
            let skipped = crate::plan::with_dependents(&ctx.desired, &blocked);
            ctx.plan.skip_services(skipped);
            if ctx.plan.actions.is_empty() {
                return (waiting, true);
            }
        }
        for a in &ctx.plan.actions {
            if let Some(n) = a.container() {
                b.record(n, now);
            }
        }
        (waiting, false)
    }
}

/// What a recorded deploy did to the services it changed: apply waited until each was ready,
/// so a success (or the part of a `partial` deploy that was not skipped) leaves them in sync
/// and healthy; a rolled-back or failed one leaves them as observed before (not in sync), and
/// quarantined when the revision was.
fn mark_applied(
    services: &mut [ServiceState],
    plan: &crate::plan::Plan,
    recorded: &record::Recorded,
) {
    let done = match recorded {
        record::Recorded::Succeeded { .. } => Some(&[][..]),
        record::Recorded::Failed {
            error: crate::apply::ApplyError::Partial { skipped },
            ..
        } => Some(skipped.as_slice()),
        _ => None,
    };
    if let Some(skipped) = done {
        for_changed(services, plan, skipped, |s| {
            s.in_sync = true;
            s.healthy = true;
            s.degraded = false;
        });
    }
    if recorded.quarantined().is_some() {
        for_changed(services, plan, &[], |s| s.quarantined = true);
    }
}

/// Every container name the plan's actions may touch (see [`OwnActions`]).
fn acted_on(ctx: &PlanContext) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for a in &ctx.plan.actions {
        names.extend(a.container().map(str::to_string));
        let Some(service) = a.service() else { continue };
        let desired = ctx
            .desired
            .containers
            .iter()
            .find(|c| c.stack == a.stack() && c.service == service);
        if let Some(c) = desired {
            names.extend(c.container_names());
            names.insert(c.aside_name());
            names.extend(c.maintenance.as_ref().map(|m| m.container.name.clone()));
        }
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The agent marks a revision quarantined by the refusal's type, not by its wording: a
    /// conflict whose text happens to say "quarantined" marks nothing.
    /// Issue 18 review (C): the agent took the `die`/`destroy` of a job it stopped itself as
    /// drift. Its own containers' events while it applied are dropped; a hand change to
    /// another container then, or to its own afterwards, is not.
    #[test]
    fn the_agents_own_events_are_not_drift() {
        let own = OwnActions {
            from_ns: 100,
            to_ns: 200,
            names: ["s-job".to_string()].into(),
        };
        let ev = |container: &str, at_ns| Trigger::Engine {
            container: container.into(),
            action: "destroy".into(),
            at_ns,
        };
        assert!(own.explains(&ev("s-job", 150)));
        assert!(!own.explains(&ev("s-web", 150)));
        assert!(!own.explains(&ev("s-job", 201)));
        assert!(!own.explains(&Trigger::Resync));
    }

    #[test]
    fn quarantine_is_decided_by_type_not_by_message_text() {
        let mut st = AgentState::default();
        Pass::Refused(
            "abc".into(),
            Refusal::Conflicts("container quarantined-db exists".into()),
        )
        .record(&mut st, false);
        assert!(st.quarantined.is_empty());
        assert!(!st.in_sync);
        Pass::Refused(
            "def".into(),
            Refusal::Quarantined("deploy #3 failed".into()),
        )
        .record(&mut st, false);
        assert_eq!(st.quarantined, ["def"]);
        assert_eq!(st.last_error.as_deref(), Some("deploy #3 failed"));
        Pass::Applied("ghi".into(), Outcome::RolledBack, Some("gate".into())).record(&mut st, true);
        assert_eq!(st.quarantined, ["def", "ghi"]);
        assert_eq!(st.metrics.drift_corrections, 1);
        assert_eq!(st.metrics.outcomes.get("rolled-back"), Some(&1));
    }

    /// A deploy that succeeded leaves what it changed in sync and healthy at once (no later
    /// pass may come: a `start` is no event the agent follows); what it skipped, or a failed
    /// one, stays out of sync; a rolled-back one marks what it changed quarantined.
    #[test]
    fn a_deploy_marks_the_services_it_changed() {
        use crate::apply::ApplyError;
        use crate::plan::{Action, Plan, Skipped};
        let start = |service: &str| Action::Start {
            stack: "s".into(),
            service: service.into(),
            container: format!("s-{service}"),
            reason: "stopped".into(),
            wave: 0,
        };
        let plan = Plan {
            actions: vec![start("api"), start("web")],
            ..Plan::default()
        };
        let fresh = || {
            ["api", "web", "db"]
                .map(|n| ServiceState {
                    stack: "s".into(),
                    service: n.into(),
                    degraded: true,
                    containers: vec![format!("s-{n}")],
                    ..ServiceState::default()
                })
                .to_vec()
        };
        let flags = |st: &[ServiceState]| {
            st.iter()
                .map(|s| (s.in_sync, s.healthy, s.degraded, s.quarantined))
                .collect::<Vec<_>>()
        };
        let untouched = (false, false, true, false);
        let mut st = fresh();
        let ok = record::Recorded::Succeeded {
            deploy: 1,
            report: crate::apply::ApplyReport::default(),
            took: Duration::ZERO,
        };
        mark_applied(&mut st, &plan, &ok);
        assert_eq!(
            flags(&st),
            [
                (true, true, false, false),
                (true, true, false, false),
                untouched
            ]
        );
        let mut st = fresh();
        let partial = record::Recorded::Failed {
            deploy: 2,
            outcome: Outcome::Partial,
            error: ApplyError::Partial {
                skipped: vec![Skipped {
                    stack: "s".into(),
                    service: "web".into(),
                    reason: "preflight failed".into(),
                }],
            },
            quarantined: None,
            repeated: false,
        };
        mark_applied(&mut st, &plan, &partial);
        assert_eq!(
            flags(&st),
            [(true, true, false, false), untouched, untouched]
        );
        let mut st = fresh();
        let rolled_back = record::Recorded::RolledBack {
            deploy: 3,
            revision: "abc".into(),
            error: ApplyError::Partial { skipped: vec![] },
        };
        mark_applied(&mut st, &plan, &rolled_back);
        let quarantined = (false, false, true, true);
        assert_eq!(flags(&st), [quarantined, quarantined, untouched]);
    }

    /// /status kept the error of a failed pass after a good one (issue 18): a pass found in
    /// sync clears it; one with an unhealthy container is neither in sync nor error-free.
    #[test]
    fn a_good_pass_clears_the_last_error_and_an_unhealthy_one_is_not_in_sync() {
        let mut st = AgentState::default();
        Pass::Applied(
            "a".into(),
            Outcome::Failed,
            Some("web did not become healthy".into()),
        )
        .record(&mut st, false);
        assert_eq!(st.last_error.as_deref(), Some("web did not become healthy"));
        Pass::Unhealthy(
            "a".into(),
            vec!["s-web".into()],
            "s-web is not healthy".into(),
        )
        .record(&mut st, false);
        assert!(!st.in_sync);
        assert_eq!(st.degraded, ["s-web"]);
        assert!(crate::daemon::http::metrics_text(&st).contains("dockhand_degraded 1\n"));
        Pass::InSync("b".into()).record(&mut st, false);
        assert!(st.in_sync);
        assert_eq!(st.last_error, None);
        assert!(st.degraded.is_empty());
    }

    /// /status's Argo words follow each pass; a hold makes a healthy host `Suspended`, and a
    /// pass that could not read the host keeps the health it had.
    #[test]
    fn each_pass_sets_sync_and_health() {
        use HealthStatus::*;
        use SyncStatus::*;
        let mut st = AgentState::default();
        let words = |st: &AgentState| (st.sync, st.health);
        assert_eq!(words(&st), (None, None), "unknown before the first pass");
        Pass::InSync("a".into()).record(&mut st, false);
        assert_eq!(words(&st), (Some(Synced), Some(Healthy)));
        Pass::Unhealthy("a".into(), vec!["s-web".into()], "sick".into()).record(&mut st, false);
        assert_eq!(words(&st), (Some(Synced), Some(Degraded)));
        Pass::NoLock("busy".into()).record(&mut st, false);
        assert_eq!(words(&st), (Some(Synced), Some(Degraded)));
        Pass::NotRead("bad yaml".into()).record(&mut st, false);
        assert_eq!(words(&st), (Some(OutOfSync), Some(Degraded)));
        Pass::BackedOff("a".into(), vec!["s-web".into()]).record(&mut st, true);
        assert_eq!(words(&st), (Some(OutOfSync), Some(Degraded)));
        Pass::Applied("b".into(), Outcome::Succeeded, None).record(&mut st, false);
        assert_eq!(words(&st), (Some(Synced), Some(Healthy)));
        Pass::Applied("c".into(), Outcome::RolledBack, Some("gate".into())).record(&mut st, false);
        assert_eq!(
            words(&st),
            (Some(OutOfSync), Some(Healthy)),
            "the old color serves"
        );
        st.hold = Some(crate::history::Hold {
            revision: "b".into(),
            source_at: "c".into(),
            reason: "rollback".into(),
            at_ms: 0,
        });
        Pass::InSync("b".into()).record(&mut st, false);
        assert_eq!(words(&st), (Some(Synced), Some(Suspended)));
        let doc: serde_json::Value =
            serde_json::from_str(&crate::daemon::http::status_json(&st)).unwrap();
        assert_eq!(doc["version"], 1);
        assert_eq!(
            (&doc["sync"], &doc["health"]),
            (&"Synced".into(), &"Suspended".into())
        );
        assert_eq!(doc["hold"]["at"], "1970-01-01T00:00:00Z");
    }
}
