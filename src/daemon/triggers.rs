//! What wakes the agent. Each trigger only queues a [`Trigger`]; the loop batches them and the
//! worker re-reads everything, so a trigger never says what to do.
//!
//! - [`GitSync`] / [`poll_remote`]: a remote source's branch, checked every `--poll` (the only
//!   place, with a pass an operator or a webhook asked for, that talks to the remote);
//! - [`poll_files`]: a local repository or folder, looked at every `--poll`;
//! - [`watch_files`]: a plain folder's edits (inotify);
//! - [`every`]: the periodic resync;
//! - [`engine_events`]: Docker events for this project's containers;
//! - [`hangup`]: SIGHUP; [`stop_on_signals`]: SIGTERM/SIGINT turn the shutdown signal on.
//!
//! Edge module: git, inotify, the Engine's event stream, signals. The webhook lives in
//! [`super::http`].

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bollard::models::EventMessage;
use bollard::query_parameters::EventsOptions;
use bollard::Docker;
use futures_util::StreamExt;
use tokio::sync::{mpsc, watch};

use super::http::AgentState;
use super::Trigger;
use crate::sources::remote::{Remote, Synced};
use crate::sources::Source;
use crate::spec::labels;

pub(super) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Syncs a remote source, one sync at a time (the poller and a webhook may ask together), and
/// reports the result in the agent's state and metrics.
#[derive(Clone)]
pub struct GitSync {
    pub remote: Remote,
    busy: Arc<Mutex<()>>,
    state: Arc<Mutex<AgentState>>,
    /// The last error printed, so an unreachable remote is reported once, not every poll.
    reported: Arc<Mutex<Option<String>>>,
}

impl GitSync {
    pub fn new(remote: Remote, state: Arc<Mutex<AgentState>>) -> GitSync {
        GitSync {
            remote,
            busy: Arc::default(),
            state,
            reported: Arc::default(),
        }
    }

    /// One sync, waited for at most [`SYNC_WAIT`]: libgit2 cannot be interrupted, so a sync
    /// stuck past its own deadline (a read that trickles) is left to end on its own while the
    /// agent goes on (passes read the mirror as last synced).
    pub async fn sync(&self) -> Option<Synced> {
        let this = self.clone();
        let result = tokio::time::timeout(
            SYNC_WAIT,
            tokio::task::spawn_blocking(move || {
                let _one = lock(&this.busy);
                this.remote.sync()
            }),
        )
        .await;
        let result = match result {
            Ok(Ok(r)) => r.map_err(|e| crate::reconcile::report(&e)),
            Ok(Err(e)) => Err(format!("git sync task failed: {e}")),
            Err(_) => Err(format!(
                "git sync with {} did not end within {}s; the agent goes on with the commit it follows\n  hint: the remote (or the network to it) has stalled; the next poll tries again",
                crate::sources::remote::display_url(&self.remote.url),
                SYNC_WAIT.as_secs()
            )),
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
                    tracing::info!(
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
                    tracing::warn!("git source: {msg}");
                    *reported = Some(msg);
                }
                None
            }
        }
    }
}

/// How long the agent waits for one git sync: the sync's own deadline plus one socket read
/// timeout (the read in flight when the deadline passed).
pub const SYNC_WAIT: Duration = Duration::from_secs(
    crate::sources::remote::SYNC_DEADLINE.as_secs() + crate::sources::remote::IO_TIMEOUT.as_secs(),
);

/// Checks the remote every `period` and queues a reconcile when the followed commit moves.
pub async fn poll_remote(sync: GitSync, period: Duration, queue: mpsc::UnboundedSender<Trigger>) {
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

/// Looks at a local source every `period` (the commit, or a hash of the files) and queues a
/// reconcile when it changed since the last look.
pub async fn poll_files(source: Source, period: Duration, queue: mpsc::UnboundedSender<Trigger>) {
    let mut last_rev = None;
    every(period, queue, move || {
        let rev = source
            .read(None)
            .ok()
            .map(|s| crate::reconcile::pass::revision(&s));
        if rev.is_some() && rev != last_rev {
            let changed = last_rev.is_some();
            last_rev.clone_from(&rev);
            return changed.then(|| Trigger::Source(rev.unwrap_or_default()));
        }
        None
    })
    .await;
}

/// Watches a plain desired-state folder (dockhand.yaml and stacks/) and queues a reconcile on
/// every edit; the loop's debounce gathers an editor's burst of writes into one pass, and a
/// half-written file fails validation, is reported, and waits for the next write. The poll
/// stays on as a fallback for file systems without inotify (network mounts).
pub fn watch_files(
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
pub async fn every(
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

/// Follows the Engine's events matching `filters`, queueing what `to_trigger` makes of each,
/// and reconnecting after an error (a restarted daemon) with a resync for the events missed,
/// until the receiver is gone.
async fn follow<F, Fut>(
    docker: &Docker,
    what: &str,
    filters: HashMap<String, Vec<String>>,
    queue: &mpsc::UnboundedSender<Trigger>,
    mut to_trigger: F,
) where
    F: FnMut(EventMessage) -> Fut,
    Fut: std::future::Future<Output = Option<Trigger>>,
{
    loop {
        let mut events = docker.events(Some(EventsOptions {
            filters: Some(filters.clone()),
            ..Default::default()
        }));
        while let Some(event) = events.next().await {
            match event {
                Ok(e) => {
                    let Some(trigger) = to_trigger(e).await else {
                        continue;
                    };
                    tracing::debug!("event: {}", trigger.describe());
                    if queue.send(trigger).is_err() {
                        return;
                    }
                }
                Err(err) => {
                    tracing::warn!("Docker {what} events stream ended: {err}; reconnecting");
                    break;
                }
            }
        }
        if queue.is_closed() {
            return;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        // Events missed while disconnected are covered by a resync right away.
        if queue.send(Trigger::Resync).is_err() {
            return;
        }
    }
}

/// Feeds Engine events about this project's containers into `queue` (see [`follow`]).
pub async fn engine_events(docker: Docker, project: String, queue: mpsc::UnboundedSender<Trigger>) {
    let filters = HashMap::from([
        ("type".to_string(), vec!["container".to_string()]),
        ("label".to_string(), labels::project_filters(&project)),
        (
            "event".to_string(),
            [
                "die", "stop", "destroy", "rename", "create", "oom", "update",
            ]
            .map(String::from)
            .to_vec(),
        ),
    ]);
    follow(&docker, "container", filters, &queue, |e| async move {
        let attrs = e.actor.and_then(|a| a.attributes).unwrap_or_default();
        // One-off hook containers come and go during a release: not drift.
        if attrs.get(labels::ROLE).map(String::as_str) == Some("hook") {
            return None;
        }
        Some(Trigger::Engine {
            container: attrs.get("name").cloned().unwrap_or_default(),
            action: e.action.unwrap_or_default(),
            at_ns: e.time_nano.unwrap_or_default(),
        })
    })
    .await;
}

/// Feeds `connect`/`disconnect` events of any network into `queue` when the container is one
/// of `project`'s (checked by its labels: network events carry the network's attributes, not
/// the container's); see [`follow`].
pub async fn network_events(
    docker: Docker,
    project: String,
    queue: mpsc::UnboundedSender<Trigger>,
) {
    let filters = HashMap::from([
        ("type".to_string(), vec!["network".to_string()]),
        (
            "event".to_string(),
            vec!["connect".to_string(), "disconnect".to_string()],
        ),
    ]);
    let (docker, project) = (&docker, &project);
    follow(docker, "network", filters, &queue, |e| async move {
        let attrs = e.actor.and_then(|a| a.attributes).unwrap_or_default();
        // Docker's own networks are no stack's: every start and stop of a container without
        // declared networks connects and disconnects `bridge`.
        let net = attrs.get("name").map(String::as_str).unwrap_or_default();
        if matches!(net, "bridge" | "host" | "none") {
            return None;
        }
        // A container removed meanwhile has nothing left to correct on this network.
        let info = docker
            .inspect_container(attrs.get("container")?, None)
            .await
            .ok()?;
        let l = info.config.and_then(|c| c.labels).unwrap_or_default();
        let ours = l.get(labels::MANAGED).map(String::as_str) == Some("true")
            && l.get(labels::PROJECT) == Some(project)
            && l.get(labels::ROLE).map(String::as_str) != Some("hook");
        ours.then(|| Trigger::Engine {
            container: info
                .name
                .unwrap_or_default()
                .trim_start_matches('/')
                .to_string(),
            action: format!(
                "network {} {}",
                e.action.unwrap_or_default(),
                attrs.get("name").cloned().unwrap_or_default()
            ),
            at_ns: e.time_nano.unwrap_or_default(),
        })
    })
    .await;
}

/// Queues a reconcile on every SIGHUP.
pub async fn hangup(queue: mpsc::UnboundedSender<Trigger>) {
    use tokio::signal::unix::{signal, SignalKind};
    let Ok(mut hup) = signal(SignalKind::hangup()) else {
        tracing::warn!("cannot install the SIGHUP handler");
        return;
    };
    while hup.recv().await.is_some() {
        if queue.send(Trigger::Signal).is_err() {
            return;
        }
    }
}

/// The agent's shutdown signal: turns true on SIGTERM or SIGINT (the pass in flight finishes).
pub fn stop_on_signals() -> watch::Receiver<bool> {
    use tokio::signal::unix::{signal, SignalKind};
    let (stop, stopped) = watch::channel(false);
    tokio::spawn(async move {
        if let (Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
            tracing::info!("dockhand agent: stopping after the step in flight");
            let _ = stop.send(true);
        } else {
            tracing::warn!("cannot install signal handlers");
        }
        // The sender stays alive: a dropped one would read as a shutdown to the loop.
        std::future::pending::<()>().await;
    });
    stopped
}
