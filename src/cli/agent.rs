//! `dockhand run`: the agent. It wires the triggers (startup, a source poll, Docker events for
//! this project's containers, a periodic resync, SIGHUP) into [`crate::daemon::run_loop`], and
//! each pass plans from scratch and applies as a recorded deploy, like `dockhand apply --yes`.
//! SIGTERM and SIGINT stop it after the pass in flight.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use tokio::sync::{mpsc, watch};

use super::args::{RunArgs, SourceArgs};
use super::{quarantine_refusal, recorded_apply, revision, snapshot, PlanContext};
use crate::daemon::http::{self, AgentState, GitState, WebhookAuth};
use crate::daemon::{engine_events, run_loop, settle, Backoff, Trigger};
use crate::history::{Outcome, Store};
use crate::model::DriftPolicy;
use crate::plan::render;
use crate::sources::remote::{display_url, is_remote, Remote, Synced};

fn duration(flag: &str, text: &str) -> Result<Duration> {
    crate::model::duration::parse(text)
        .filter(|d| !d.is_zero())
        .with_context(|| format!("--{flag} {text}: write a duration such as 500ms, 15s or 1m"))
}

pub async fn run(a: &RunArgs, state_dir: &Path) -> Result<ExitCode> {
    let poll = duration("poll", &a.poll)?;
    let resync = duration("resync", &a.resync)?;
    let docker = crate::observe::connect().await?;
    let store = Arc::new(Store::open(state_dir)?);
    let (queue, triggers) = mpsc::unbounded_channel();
    let (stop, stopped) = watch::channel(false);
    tokio::spawn(signals(stop, queue.clone()));
    tokio::spawn(every(resync, queue.clone(), || Some(Trigger::Resync)));
    let state = Arc::new(Mutex::new(AgentState {
        source: a
            .source
            .source
            .as_deref()
            .map_or_else(|| "current repository".into(), display_url),
        ..AgentState::default()
    }));
    // A remote source is synced by the poller (and before passes an operator or a webhook
    // asked for); passes read the mirror as synced, so drift is corrected even while the
    // remote is unreachable.
    let mut pass_src = a.source.clone();
    // Kept alive for the agent's lifetime: dropping it stops the watch.
    let mut watcher = None;
    let git = match a.source.source.as_deref().filter(|s| is_remote(s)) {
        Some(url) => {
            pass_src.offline = true;
            let remote = super::remote_of(&a.source, url);
            lock(&state).git = Some(GitState {
                url: display_url(url),
                branch: remote.branch.clone().unwrap_or_else(|| "(default)".into()),
                followed: remote.followed(),
                ..GitState::default()
            });
            let sync = GitSync {
                remote,
                busy: Arc::default(),
                state: state.clone(),
                reported: Arc::default(),
            };
            tokio::spawn(poll_remote(sync.clone(), poll, queue.clone()));
            Some(sync)
        }
        None => {
            if let Some(dir) = super::files_dir(&a.source) {
                watcher = Some(
                    watch_files(&dir, queue.clone())
                        .with_context(|| format!("watching {} for edits", dir.display()))?,
                );
            }
            let src = a.source.clone();
            let mut last_rev = None;
            tokio::spawn(every(poll, queue.clone(), move || {
                // A cheap look at the source: the commit (git) or a hash of the files.
                let rev = snapshot(&src).ok().map(|s| revision(&s));
                if rev.is_some() && rev != last_rev {
                    let changed = last_rev.is_some();
                    last_rev.clone_from(&rev);
                    return changed.then(|| Trigger::Source(rev.unwrap_or_default()));
                }
                None
            }));
            None
        }
    };
    let _ = queue.send(Trigger::Startup);
    eprintln!(
        "dockhand agent: watching {} (poll {poll:?}, resync {resync:?}); SIGTERM stops it after the step in flight",
        a.source
            .source
            .as_deref()
            .map_or_else(|| "the current repository".into(), display_url)
    );

    if a.listen != "off" {
        let listener = tokio::net::TcpListener::bind(&a.listen)
            .await
            .with_context(|| format!("--listen {}: cannot bind", a.listen))?;
        let webhook = match &a.webhook_secret_file {
            Some(path) => Some(WebhookAuth::from_file(path, a.source.reference.clone())?),
            None => None,
        };
        eprintln!(
            "dockhand agent: listening on http://{} (/healthz, /status, /metrics{})",
            listener.local_addr()?,
            if webhook.is_some() {
                ", POST /webhook"
            } else {
                ""
            }
        );
        tokio::spawn(http::serve(listener, state.clone(), webhook, queue.clone()));
    }
    let worker = Worker {
        docker,
        store,
        queue: queue.clone(),
        src: pass_src,
        seen: Arc::default(),
        backoff: Arc::default(),
        state: state.clone(),
        last_good: Arc::default(),
        quick: Arc::default(),
    };
    run_loop(triggers, settle, stopped, |batch| {
        let worker = worker.clone();
        let state = state.clone();
        let git = git.clone();
        async move {
            let started = Instant::now();
            if let Some(git) = &git {
                let asked = batch
                    .iter()
                    .any(|t| matches!(t, Trigger::Startup | Trigger::Webhook | Trigger::Signal));
                if asked {
                    git.sync().await;
                }
            }
            let drift = batch
                .iter()
                .all(|t| matches!(t, Trigger::Engine { .. } | Trigger::Resync));
            let why: BTreeSet<String> = batch.iter().map(Trigger::describe).collect();
            let why = why.into_iter().collect::<Vec<_>>().join(", ");
            tracing::info!("reconcile ({why})");
            let pass = worker
                .pass(&why, drift, Trigger::last_event_ns(&batch))
                .await;
            let mut st = lock(&state);
            st.metrics
                .observe_reconcile(started.elapsed().as_secs_f64());
            st.degraded.clear();
            match pass {
                Pass::SourceError(e) => {
                    st.metrics.source_errors += 1;
                    st.in_sync = false;
                    st.last_error = Some(e);
                }
                Pass::InSync(rev) => {
                    st.revision = Some(rev);
                    st.in_sync = st.drift_reported.is_empty();
                    st.last_sync_ms = Some(crate::history::now_ms());
                }
                Pass::Refused(rev, why) => {
                    st.revision = Some(rev.clone());
                    st.in_sync = false;
                    if why.contains("quarantined") && !st.quarantined.contains(&rev) {
                        st.quarantined.push(rev);
                    }
                    st.last_error = Some(why);
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
    })
    .await;
    drop(watcher);
    eprintln!("dockhand agent: stopped");
    Ok(ExitCode::SUCCESS)
}

/// What one reconcile pass came to.
enum Pass {
    /// The desired state could not be read or is invalid: nothing changed.
    SourceError(String),
    InSync(String),
    /// Conflicts, or a quarantined revision: nothing changed.
    Refused(String, String),
    /// Containers that keep drifting wait for their back-off.
    BackedOff(String, Vec<String>),
    Applied(String, Outcome, Option<String>),
}

/// Everything a pass needs; cheap to clone (handles and shared state).
#[derive(Clone)]
struct Worker {
    docker: bollard::Docker,
    store: Arc<Store>,
    queue: mpsc::UnboundedSender<Trigger>,
    src: SourceArgs,
    /// The project whose events are watched, and the quarantined revisions already reported.
    seen: Arc<Mutex<(Option<String>, BTreeSet<String>)>>,
    backoff: Arc<Mutex<Backoff>>,
    state: Arc<Mutex<AgentState>>,
    /// The last revision found or made in sync: what a bad commit falls back to.
    last_good: Arc<Mutex<Option<String>>>,
    /// The revision a full read of the host last found in sync, and when: while it holds, a
    /// pass costs the Engine one call.
    quick: Arc<Mutex<Option<(String, std::time::Instant)>>>,
}

/// How long a full read of the host (networks and volumes too) stands in for the passes after
/// it: what a single list cannot see (an unused network removed by hand, a labelled object
/// made by hand) is found within this long.
const FULL_READ_EVERY: std::time::Duration = std::time::Duration::from_secs(300);

impl Worker {
    async fn pass(&self, why: &str, drift: bool, event_ns: Option<i64>) -> Pass {
        let quick_at = match &*lock(&self.quick) {
            Some((rev, at)) if at.elapsed() < FULL_READ_EVERY => Some(rev.clone()),
            _ => None,
        };
        let built =
            PlanContext::build_held(&self.src, &self.store, &self.docker, quick_at.as_deref())
                .await;
        let quick = matches!(&built, Ok((ctx, _)) if ctx.quick);
        let ctx = match built {
            Ok((ctx, note)) => {
                if let Some(note) = note {
                    eprintln!("{note}");
                }
                ctx
            }
            Err(e) => {
                // A bad commit or a half-written file: it is not applied, and the last good
                // revision stays converged (drift is still corrected) until a valid one comes.
                let msg = format!("{e:#}");
                eprintln!("desired state not applied ({why}): {msg}");
                let good = lock(&self.last_good).clone();
                if let Some(good) = good {
                    let src = SourceArgs {
                        reference: Some(good.clone()),
                        worktree: false,
                        ..self.src.clone()
                    };
                    if let Ok(ctx) = PlanContext::build_on(&src, &self.docker).await {
                        if !ctx.plan.is_empty() {
                            eprintln!(
                                "keeping the last good revision {}",
                                &good[..12.min(good.len())]
                            );
                        }
                        let _ = self.converge(ctx, why, drift, event_ns).await;
                    }
                }
                return Pass::SourceError(msg);
            }
        };
        let pass = self.converge(ctx, why, drift, event_ns).await;
        if let Pass::InSync(rev) | Pass::Applied(rev, Outcome::Succeeded, None) = &pass {
            if !rev.starts_with("worktree:") {
                *lock(&self.last_good) = Some(rev.clone());
            }
        }
        {
            let mut q = lock(&self.quick);
            *q = match (&pass, quick) {
                (Pass::InSync(_), true) => q.take(),
                (Pass::InSync(rev), false) => Some((rev.clone(), std::time::Instant::now())),
                _ => None,
            };
        }
        pass
    }

    /// Plans `ctx` and applies it as a recorded deploy unless something stops it (conflicts,
    /// quarantine, back-off, a `drift: report` stack).
    async fn converge(
        &self,
        ctx: PlanContext,
        why: &str,
        drift: bool,
        event_ns: Option<i64>,
    ) -> Pass {
        let rev = revision(&ctx.snapshot);
        let start_watching = {
            let mut seen = self
                .seen
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
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
        }
        // Stacks with `drift: report` are left alone by drift-only passes: their changes are
        // reported, and applied by the next deploy.
        let mut ctx = ctx;
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
        {
            let mut st = lock(&self.state);
            if !drifted.is_empty() && st.drift_reported != drifted {
                eprintln!(
                    "drift reported, not corrected (drift: report): {}\n  hint: `dockhand plan` shows the changes; `dockhand apply` or the next deploy puts them back",
                    drifted.join(", ")
                );
            }
            st.drift_reported = drifted;
        }
        if ctx.plan.is_empty() {
            return Pass::InSync(rev);
        }
        if !ctx.plan.conflicts.is_empty() {
            let msg = format!(
                "{} conflict(s) with objects dockhand does not own:\n{}",
                ctx.plan.conflicts.len(),
                render::text(&ctx.plan, false)
            );
            eprintln!("not applied ({why}): {msg}");
            return Pass::Refused(rev, msg);
        }
        match quarantine_refusal(&self.store, &ctx.desired.project, &rev) {
            Ok(Some(msg)) => {
                let first = self
                    .seen
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .1
                    .insert(rev.clone());
                if first {
                    eprintln!("not applied ({why}): {msg}");
                }
                return Pass::Refused(rev, msg);
            }
            Ok(None) => {}
            Err(e) => {
                let msg = format!("{e:#}");
                eprintln!("not applied ({why}): {msg}");
                return Pass::Refused(rev, msg);
            }
        }
        let touched: Vec<String> = ctx
            .plan
            .actions
            .iter()
            .filter_map(|a| a.container().map(str::to_string))
            .collect();
        // Only drift (events, resyncs) backs off: a new revision or an operator's signal is
        // applied at once.
        if drift {
            let now = Instant::now();
            let mut b = self
                .backoff
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let waits: Vec<(String, Duration)> = touched
                .iter()
                .filter_map(|n| b.wait(n, now).map(|w| (n.clone(), w)))
                .collect();
            if let Some(longest) = waits.iter().map(|(_, w)| *w).max() {
                let names: Vec<String> = waits.into_iter().map(|(n, _)| n).collect();
                eprintln!(
                    "degraded: {} keep(s) drifting (dying or being changed); next correction in {longest:.0?}\n  hint: `docker logs {}` shows why it exits",
                    names.join(", "),
                    names[0]
                );
                let queue = self.queue.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(longest).await;
                    let _ = queue.send(Trigger::Resync);
                });
                return Pass::BackedOff(rev, names);
            }
            for n in &touched {
                b.record(n, now);
            }
        }
        println!("{}", render::text(&ctx.plan, false));
        if let (true, Some(ns)) = (drift, event_ns) {
            // How long after the Engine's event the correction starts: settle window, observe
            // and plan. Both clocks are this host's.
            let now_ns = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as i64);
            let ms = (now_ns - ns) as f64 / 1e6;
            eprintln!("correcting drift {ms:.1} ms after the Engine's event");
            lock(&self.state).metrics.observe_reaction(ms / 1000.0);
        }
        match recorded_apply(&self.docker, &self.store, &ctx, &format!("agent ({why})")).await {
            Ok((outcome, error)) => {
                let error = error.map(|e| format!("{e:#}"));
                if let Some(e) = &error {
                    eprintln!("error: {e}");
                }
                Pass::Applied(rev, outcome, error)
            }
            Err(e) => {
                let msg = format!("{e:#}");
                eprintln!("error: {msg}");
                Pass::Refused(rev, msg)
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Syncs a remote source, one sync at a time (the poller and a webhook may ask together), and
/// reports the result in the agent's state and metrics.
#[derive(Clone)]
struct GitSync {
    remote: Remote,
    busy: Arc<Mutex<()>>,
    state: Arc<Mutex<AgentState>>,
    /// The last error printed, so an unreachable remote is reported once, not every poll.
    reported: Arc<Mutex<Option<String>>>,
}

impl GitSync {
    async fn sync(&self) -> Option<Synced> {
        let this = self.clone();
        let result = tokio::task::spawn_blocking(move || {
            let _one = lock(&this.busy);
            this.remote.sync()
        })
        .await;
        let result = match result {
            Ok(r) => r.map_err(|e| e.to_string()),
            Err(e) => Err(format!("git sync task failed: {e}")),
        };
        let mut st = lock(&self.state);
        let mut reported = lock(&self.reported);
        match result {
            Ok(synced) => {
                st.metrics.git_checks += 1;
                if synced.received_objects > 0 {
                    st.metrics.git_fetches += 1;
                    st.metrics.git_objects += synced.received_objects as u64;
                }
                if let Some(g) = st.git.as_mut() {
                    g.followed = Some(synced.commit.clone());
                    g.last_check_ms = Some(crate::history::now_ms());
                    g.error = None;
                }
                if reported.take().is_some() {
                    eprintln!(
                        "git source reachable again; following {}",
                        &synced.commit[..12]
                    );
                }
                Some(synced)
            }
            Err(msg) => {
                st.metrics.git_errors += 1;
                if let Some(g) = st.git.as_mut() {
                    g.error = Some(msg.clone());
                }
                if reported.as_deref() != Some(msg.as_str()) {
                    eprintln!("git source: {msg}");
                    *reported = Some(msg);
                }
                None
            }
        }
    }
}

/// Checks the remote every `period` and queues a reconcile when the followed commit moves.
async fn poll_remote(sync: GitSync, period: Duration, queue: mpsc::UnboundedSender<Trigger>) {
    let mut last = sync.remote.followed();
    let mut timer = tokio::time::interval(period);
    timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The startup pass syncs; the first check is one period later.
    timer.tick().await;
    loop {
        timer.tick().await;
        if queue.is_closed() {
            return;
        }
        if let Some(s) = sync.sync().await {
            if last.as_deref() != Some(s.commit.as_str()) {
                last = Some(s.commit.clone());
                if queue
                    .send(Trigger::Commit(s.commit[..12].to_string()))
                    .is_err()
                {
                    return;
                }
            }
        }
    }
}

/// Watches a plain desired-state folder (dockhand.yaml and stacks/) and queues a reconcile on
/// every edit; the loop's debounce gathers an editor's burst of writes into one pass, and a
/// half-written file fails validation, is reported, and waits for the next write. The poll
/// stays on as a fallback for file systems without inotify (network mounts).
fn watch_files(
    dir: &Path,
    queue: mpsc::UnboundedSender<Trigger>,
) -> notify::Result<notify::RecommendedWatcher> {
    use notify::{EventKind, RecursiveMode, Watcher};
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        let Ok(event) = event else { return };
        if matches!(event.kind, EventKind::Access(_)) {
            return;
        }
        let relevant = event.paths.iter().any(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            let in_stacks = p
                .parent()
                .and_then(Path::file_name)
                .is_some_and(|d| d == crate::load::STACKS_DIR);
            name == crate::load::REPO_FILE
                || (in_stacks && crate::load::is_desired_state_file(&format!("stacks/{name}")))
                || name == crate::load::STACKS_DIR
        });
        if relevant {
            let _ = queue.send(Trigger::Source("file change".into()));
        }
    })?;
    // Not recursive: only these two folders hold desired state, and a state directory kept
    // inside the source must not wake the agent on its own writes.
    watcher.watch(dir, RecursiveMode::NonRecursive)?;
    let stacks = dir.join(crate::load::STACKS_DIR);
    if stacks.is_dir() {
        watcher.watch(&stacks, RecursiveMode::NonRecursive)?;
    }
    Ok(watcher)
}

/// Sends what `tick` returns every `period` until the queue is gone.
async fn every(
    period: Duration,
    queue: mpsc::UnboundedSender<Trigger>,
    mut tick: impl FnMut() -> Option<Trigger>,
) {
    let mut timer = tokio::time::interval(period);
    timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        timer.tick().await;
        if let Some(t) = tick() {
            if queue.send(t).is_err() {
                return;
            }
        }
        if queue.is_closed() {
            return;
        }
    }
}

async fn signals(stop: watch::Sender<bool>, queue: mpsc::UnboundedSender<Trigger>) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int), Ok(mut hup)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::hangup()),
    ) else {
        tracing::warn!("cannot install signal handlers");
        return;
    };
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = hup.recv() => { let _ = queue.send(Trigger::Signal); }
        }
    }
    eprintln!("dockhand agent: stopping after the step in flight");
    let _ = stop.send(true);
}
