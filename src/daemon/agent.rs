//! [`run`]: the agent. It wires the triggers (startup, a source poll or file watch, Docker
//! events for this project's containers, a periodic resync, SIGHUP, the webhook) into
//! [`super::run_loop`], and each batch is one [`super::worker`] pass, which plans from scratch
//! and applies as a recorded deploy, like `dockhand apply --yes`.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::sync::{mpsc, watch};

use super::control::{self, Done, Outcome};
use super::http::{self, AgentState, GitState, WebhookAuth};
use super::systemd;
use super::triggers::{self, lock, GitSync};
use super::worker::Worker;
use super::{run_loop, settle, Settings, Trigger};
use crate::history::{Store, StoreError};
use crate::observe::EngineError;
use crate::sources::remote::display_url;
use crate::sources::Source;

/// Why the agent could not start. Once it runs, a pass's failure is reported and the agent
/// goes on.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot watch {dir} for edits\n  hint: check that the folder exists and is readable, and that inotify watches are left (sysctl fs.inotify.max_user_watches)")]
    Watch {
        dir: String,
        #[source]
        source: notify::Error,
    },
    #[error(transparent)]
    Control(#[from] super::control::BindError),
    #[error("--listen {addr}: cannot bind\n  hint: pick a free port, or `--listen off`")]
    Listen {
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// Keeps the host converged to `settings.source` until `shutdown` turns true; the pass in
/// flight then runs to its end.
///
/// # Errors
/// Only at start: the Engine cannot be reached, the deploy record cannot be opened, the folder
/// cannot be watched, the port cannot be bound.
pub async fn run(settings: Settings, shutdown: watch::Receiver<bool>) -> Result<(), Error> {
    let Settings {
        source,
        host,
        label,
        state_dir,
        poll,
        resync,
        listen,
        webhook,
        notify,
    } = settings;
    let notifier = crate::notify::Notifier::start(notify);
    let source = Arc::new(source);
    let docker = crate::observe::connect().await?;
    let store = Arc::new(Store::open(&state_dir)?);
    let (queue, triggers) = mpsc::unbounded_channel();
    tokio::spawn(triggers::hangup(queue.clone()));
    tokio::spawn(triggers::every(resync, queue.clone(), || {
        Some(Trigger::Resync)
    }));
    let state = Arc::new(Mutex::new(AgentState {
        source: label.clone(),
        notifications: notifier.deliveries(),
        ..AgentState::default()
    }));
    // A remote source is synced by the poller (and before passes an operator or a webhook
    // asked for); passes read the mirror as synced, so drift is corrected even while the
    // remote is unreachable.
    let mut watcher = None;
    let git = match source.remote() {
        Some(remote) => {
            lock(&state).git = Some(GitState {
                url: display_url(&remote.url),
                branch: remote.branch.clone().unwrap_or_else(|| "(default)".into()),
                followed: remote.followed(),
                ..GitState::default()
            });
            let sync = GitSync::new(remote.clone(), state.clone());
            tokio::spawn(triggers::poll_remote(sync.clone(), poll, queue.clone()));
            Some(sync)
        }
        None => {
            if let Some(dir) = source.files_dir() {
                // Kept alive for the agent's lifetime: dropping it stops the watch.
                watcher = Some(
                    triggers::watch_files(&dir, queue.clone()).map_err(|source| Error::Watch {
                        dir: dir.display().to_string(),
                        source,
                    })?,
                );
            }
            tokio::spawn(triggers::poll_files(
                Source::clone(&source),
                poll,
                queue.clone(),
            ));
            None
        }
    };
    let _ = queue.send(Trigger::Startup);
    tracing::info!(
        "dockhand agent: watching {label} (poll {poll:?}, resync {resync:?}); SIGTERM stops it after the step in flight"
    );

    if let Some(addr) = listen {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| Error::Listen { addr, source })?;
        let auth = webhook.map(|w| WebhookAuth {
            secret: w.secret.expose().to_string(),
            branch: w.branch,
        });
        tracing::info!(
            "dockhand agent: listening on http://{} (/healthz, /status, /metrics{})",
            listener.local_addr().unwrap_or(addr),
            if auth.is_some() {
                ", POST /webhook"
            } else {
                ""
            }
        );
        tokio::spawn(http::serve(listener, state.clone(), auth, queue.clone()));
    }
    // The CLI's `apply`, `rollback` and `resume` ask here for a pass now.
    let control_listener = control::bind(&state_dir)?;
    let (done, done_rx) = watch::channel(Done::default());
    tokio::spawn(control::serve(control_listener, queue.clone(), done_rx));
    let worker = Worker {
        docker,
        store,
        queue: queue.clone(),
        source,
        host: Arc::new(host),
        seen: Arc::default(),
        backoff: Arc::default(),
        state: state.clone(),
        last_good: Arc::default(),
        quick: Arc::default(),
        recheck: Arc::default(),
        own: Arc::default(),
        notifier: notifier.clone(),
    };
    // systemd hears READY=1 after the first pass (the port is bound by now), so units ordered
    // after dockhand start against a converged host.
    let first_pass = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let work = run_loop(triggers, settle, shutdown.clone(), |batch| {
        let worker = worker.clone();
        let state = state.clone();
        let git = git.clone();
        let first_pass = first_pass.clone();
        let done = done.clone();
        async move {
            let batch = worker.drop_own_events(batch);
            if batch.is_empty() {
                tracing::debug!("only the agent's own deploy's events: no pass");
                return;
            }
            let started = Instant::now();
            if let Some(git) = &git {
                let asked = batch.iter().any(|t| {
                    matches!(
                        t,
                        Trigger::Startup
                            | Trigger::Webhook
                            | Trigger::Signal
                            | Trigger::Control { .. }
                    )
                });
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
            let died = batch
                .iter()
                .any(|t| matches!(t, Trigger::Engine { action, .. } if action == "die"));
            let full_read = batch.iter().any(Trigger::needs_inspect);
            let asked = batch
                .iter()
                .filter_map(|t| match t {
                    Trigger::Control { id, .. } => Some(*id),
                    _ => None,
                })
                .max();
            let retry = batch
                .iter()
                .any(|t| matches!(t, Trigger::Control { retry: true, .. }));
            let pass = worker
                .pass(
                    &why,
                    drift,
                    died,
                    full_read,
                    Trigger::last_event_ns(&batch),
                    retry,
                )
                .await;
            let outcome = asked.map(|upto| (upto, Outcome::of(&pass)));
            let status = {
                let mut st = lock(&state);
                st.metrics
                    .observe_reconcile(started.elapsed().as_secs_f64());
                pass.record(&mut st, drift);
                systemd_status(&st)
            };
            let status = sd_notify::NotifyState::Status(&status);
            if first_pass.swap(false, std::sync::atomic::Ordering::Relaxed) {
                systemd::notify(&[sd_notify::NotifyState::Ready, status]);
            } else {
                systemd::notify(&[status]);
            }
            // After /status was written: an asker that reads it next sees this pass.
            if let Some((upto, outcome)) = outcome {
                done.send_modify(|d| {
                    d.upto = d.upto.max(upto);
                    d.outcome = Some(outcome);
                });
            }
        }
    });
    systemd::supervise(
        work,
        shutdown,
        systemd::watchdog_period(),
        || systemd::notify(&[sd_notify::NotifyState::Watchdog]),
        || systemd::notify(&[sd_notify::NotifyState::Stopping]),
    )
    .await;
    drop(watcher);
    let _ = std::fs::remove_file(control::socket_path(&state_dir));
    tracing::info!("dockhand agent: stopped");
    Ok(())
}

/// One line for `systemctl status`: the revision and whether the host is in sync.
fn systemd_status(st: &AgentState) -> String {
    let rev = st.revision.as_deref().map_or("-", crate::reconcile::short);
    if st.in_sync {
        format!("in sync at {rev}")
    } else {
        format!("not in sync at {rev}")
    }
}
