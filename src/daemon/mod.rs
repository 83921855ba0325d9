//! The agent (`dockhand run`): [`run`] wires the triggers ([`triggers`]: startup, git poll,
//! file watch, Docker events, resync, SIGHUP, webhook) into [`run_loop`], and the worker
//! (`worker`) runs one reconcile pass per batch. Every trigger only *queues* a reconcile; one
//! worker runs them one at a time. Triggers that arrive while one is queued or running are coalesced, and a
//! short debounce gathers a burst (a `docker rm -f` sends kill, die, stop and destroy) into one
//! pass. A reconcile never trusts why it was woken: it re-reads the desired and actual state.
//!
//! Shutdown is a signal the loop takes as an argument: a reconcile in flight runs to its end
//! (a release is never abandoned half way), then the loop returns.
//!
//! The triggers are the edge here (Docker events, git, inotify, signals); the loop itself is
//! plain tokio and is tested with a paused clock. A pass is [`crate::reconcile`]'s: this module
//! decides when, never what.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};

mod agent;
pub mod control;
pub mod http;
mod systemd;
pub mod triggers;
mod worker;

pub use agent::{run, Error};

use crate::sources::Source;

/// The agent's settings, resolved once from flags, environment and defaults (`cli::settings`).
#[derive(Debug, Clone)]
pub struct Settings {
    /// Where the desired state comes from; a remote is read as the poller last synced it.
    pub source: Source,
    /// How the source is named in messages and on `/status`.
    pub label: String,
    /// This host's policy and state directory.
    pub host: crate::reconcile::Host,
    /// Deploy record, apply lock and remote mirrors.
    pub state_dir: PathBuf,
    /// How often the source is checked for a new revision (> 0).
    pub poll: Duration,
    /// How often a full reconcile runs without a trigger (> 0).
    pub resync: Duration,
    /// The HTTP port (/healthz, /status, /metrics, POST /webhook); `None`: no port.
    pub listen: Option<SocketAddr>,
    /// Without it POST /webhook is refused.
    pub webhook: Option<Webhook>,
    /// The host's notification sinks (`--notify`); empty: none.
    pub notify: Vec<crate::notify::Sink>,
}

/// POST /webhook's settings.
#[derive(Debug, Clone)]
pub struct Webhook {
    pub secret: WebhookSecret,
    /// Only pushes to this branch queue a pass (`--ref`); `None`: any branch.
    pub branch: Option<String>,
}

/// A webhook secret: never empty (an empty HMAC key would let anyone sign), never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookSecret(String);

impl WebhookSecret {
    /// The secret in `text` without surrounding whitespace (a file's trailing newline);
    /// `None` when nothing is left.
    pub fn new(text: &str) -> Option<WebhookSecret> {
        let secret = text.trim();
        (!secret.is_empty()).then(|| WebhookSecret(secret.to_string()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WebhookSecret(***)")
    }
}

/// Why a reconcile was queued. Only used for logs and the deploy record's trigger column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trigger {
    Startup,
    /// The periodic full resync (covers missed events).
    Resync,
    /// The desired state changed on disk (an edited file, a local repository's new commit).
    Source(String),
    /// The poller fetched a new commit of a remote branch (its short id).
    Commit(String),
    /// A managed container changed on the Engine (stop, die, destroy, rename, create, update,
    /// a network connected or disconnected: `network disconnect <net>`).
    Engine {
        container: String,
        action: String,
        /// When the Engine says it happened (Unix ns), to measure how fast drift is acted on.
        at_ns: i64,
    },
    /// SIGHUP.
    Signal,
    /// A signed push event on the webhook: the source is synced before the pass.
    Webhook,
    /// The CLI asked on the control socket (`apply`, `rollback`, `resume`): the source is
    /// synced before the pass, and the asker waits for the pass that carries `id`.
    Control {
        why: String,
        id: u64,
        /// `apply --retry`: a quarantined revision is applied.
        retry: bool,
    },
}

impl Trigger {
    /// The Engine's time of the latest event in `batch` (Unix ns).
    pub fn last_event_ns(batch: &[Trigger]) -> Option<i64> {
        batch
            .iter()
            .filter_map(|t| match t {
                Trigger::Engine { at_ns, .. } if *at_ns > 0 => Some(*at_ns),
                _ => None,
            })
            .max()
    }

    /// A hand change the container list may not show (`docker update`, `docker rename`, a
    /// network connected or disconnected): the next pass reads the host in full, with an
    /// inspect of each container, instead of the one list call.
    pub fn needs_inspect(&self) -> bool {
        matches!(self, Trigger::Engine { action, .. }
            if action == "update" || action == "rename" || action.starts_with("network "))
    }

    pub fn describe(&self) -> String {
        match self {
            Trigger::Startup => "startup".into(),
            Trigger::Resync => "resync".into(),
            Trigger::Source(what) => format!("source: {what}"),
            Trigger::Commit(id) => format!("commit: {id}"),
            Trigger::Engine {
                container, action, ..
            } => format!("engine: {container} {action}"),
            Trigger::Signal => "signal".into(),
            Trigger::Webhook => "webhook".into(),
            Trigger::Control { why, .. } => format!("cli: {why}"),
        }
    }
}

/// How long a batch waits after `t` for more triggers. A container's `die` is usually the start
/// of a burst (`docker stop` sends `stop` ~70 ms later, `docker rm -f` sends `destroy`), so it
/// waits for the rest; the event that ends a change is acted on almost at once; edits on disk
/// wait for an editor's burst of writes. A fetched commit or a webhook is whole the moment it
/// arrives (a commit is atomic; the pass a webhook asks for fetches it): waiting would only
/// delay the deploy (it was 200 ms of every commit-to-serving time).
pub fn settle(t: &Trigger) -> Duration {
    match t {
        // A stopped or removed container leaves its networks in the same burst.
        Trigger::Engine { action, .. }
            if action == "die" || action.starts_with("network disconnect") =>
        {
            Duration::from_millis(200)
        }
        Trigger::Engine { .. } => Duration::from_millis(15),
        Trigger::Resync | Trigger::Commit(_) | Trigger::Webhook | Trigger::Control { .. } => {
            Duration::ZERO
        }
        Trigger::Startup | Trigger::Source(_) | Trigger::Signal => Duration::from_millis(200),
    }
}

/// A batch never waits longer than this for its triggers to settle.
const SETTLE_MAX: Duration = Duration::from_secs(1);

/// Runs `reconcile` once per batch of triggers until `shutdown` turns true. A batch is closed
/// when the `settle` time of its latest trigger passes with nothing new (at most
/// `SETTLE_MAX`, 1 s, after its first).
pub async fn run_loop<F, Fut>(
    mut triggers: mpsc::UnboundedReceiver<Trigger>,
    settle: impl Fn(&Trigger) -> Duration,
    mut shutdown: watch::Receiver<bool>,
    mut reconcile: F,
) where
    F: FnMut(Vec<Trigger>) -> Fut,
    Fut: Future<Output = ()>,
{
    loop {
        if *shutdown.borrow() {
            return;
        }
        let first = tokio::select! {
            t = triggers.recv() => match t {
                Some(t) => t,
                None => return,
            },
            _ = shutdown.changed() => return,
        };
        let cap = tokio::time::Instant::now() + SETTLE_MAX;
        let window = tokio::time::sleep(settle(&first));
        let mut batch = vec![first];
        tokio::pin!(window);
        loop {
            tokio::select! {
                t = triggers.recv() => match t {
                    Some(t) => {
                        let until = (tokio::time::Instant::now() + settle(&t)).min(cap);
                        window.as_mut().reset(until);
                        batch.push(t);
                    }
                    None => break,
                },
                _ = &mut window => break,
            }
        }
        // Not raced against shutdown: the pass in flight finishes.
        reconcile(batch).await;
    }
}

/// Back-off for drift corrections of one container: the first two in a row go at once, then
/// each waits twice as long as the one before (1 s, 2 s, 4 s … at most 5 min), so a container
/// that keeps dying is not recreated in a hot loop. A container left alone for 5 min starts
/// over.
#[derive(Debug, Default)]
pub struct Backoff {
    corrected: HashMap<String, (u32, Instant)>,
}

const BACKOFF_RESET: Duration = Duration::from_secs(300);
const BACKOFF_MAX: Duration = Duration::from_secs(300);

impl Backoff {
    fn delay(count: u32) -> Duration {
        if count < 2 {
            Duration::ZERO
        } else {
            Duration::from_secs(1u64 << (count - 2).min(16)).min(BACKOFF_MAX)
        }
    }

    /// How long `name` must still wait before its next correction (None: go).
    pub fn wait(&self, name: &str, now: Instant) -> Option<Duration> {
        let (count, last) = self.corrected.get(name)?;
        let since = now.saturating_duration_since(*last);
        if since > BACKOFF_RESET {
            return None;
        }
        Self::delay(*count)
            .checked_sub(since)
            .filter(|d| !d.is_zero())
    }

    /// Notes a correction of `name` at `now`; returns how many in a row.
    pub fn record(&mut self, name: &str, now: Instant) -> u32 {
        let entry = self.corrected.entry(name.to_string()).or_insert((0, now));
        if now.saturating_duration_since(entry.1) > BACKOFF_RESET {
            entry.0 = 0;
        }
        entry.0 += 1;
        entry.1 = now;
        entry.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[test]
    fn a_webhook_secret_is_never_empty_and_never_printed() {
        assert_eq!(WebhookSecret::new(" \n"), None);
        let s = WebhookSecret::new("hunter2\n").unwrap();
        assert_eq!(s.expose(), "hunter2");
        assert!(!format!("{s:?}").contains("hunter2"));
    }

    #[test]
    fn backoff_doubles_after_two_corrections_and_resets_when_quiet() {
        let mut b = Backoff::default();
        let t0 = Instant::now();
        assert_eq!(b.wait("web", t0), None);
        b.record("web", t0);
        assert_eq!(
            b.wait("web", t0),
            None,
            "the second correction goes at once"
        );
        b.record("web", t0);
        assert_eq!(b.wait("web", t0), Some(Duration::from_secs(1)));
        let t1 = t0 + Duration::from_secs(1);
        assert_eq!(b.wait("web", t1), None);
        b.record("web", t1);
        assert_eq!(b.wait("web", t1), Some(Duration::from_secs(2)));
        let mut t = t1;
        for _ in 0..20 {
            t += Duration::from_secs(300);
            b.record("web", t - Duration::from_secs(299));
        }
        assert!(b.wait("web", t - Duration::from_secs(299)).unwrap() <= BACKOFF_MAX);
        assert_eq!(b.wait("other", t), None);
        let quiet = t + Duration::from_secs(600);
        assert_eq!(b.wait("web", quiet), None);
        assert_eq!(b.record("web", quiet), 1, "forgotten after a quiet spell");
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_of_triggers_is_one_reconcile_and_shutdown_waits_for_the_pass_in_flight() {
        let (tx, rx) = mpsc::unbounded_channel();
        let (stop, stopped) = watch::channel(false);
        let passes: Arc<Mutex<Vec<usize>>> = Arc::default();
        let seen = passes.clone();
        let worker = tokio::spawn(run_loop(
            rx,
            |_| Duration::from_millis(200),
            stopped,
            move |batch| {
                let seen = seen.clone();
                async move {
                    // A pass that takes a while; it must not be cut short by the shutdown.
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    seen.lock().unwrap().push(batch.len());
                }
            },
        ));
        for action in ["kill", "die", "stop", "destroy"] {
            tx.send(Trigger::Engine {
                container: "s-web".into(),
                action: action.into(),
                at_ns: 0,
            })
            .unwrap();
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        // Mid-pass: ask to stop, and queue more work that must not start.
        stop.send(true).unwrap();
        tx.send(Trigger::Resync).unwrap();
        worker.await.unwrap();
        assert_eq!(*passes.lock().unwrap(), [4]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_die_waits_for_the_rest_of_its_burst_and_the_last_event_acts_at_once() {
        let (tx, rx) = mpsc::unbounded_channel();
        let (_stop, stopped) = watch::channel(false);
        // Per pass: its triggers and when it ran.
        type Passes = Arc<Mutex<Vec<(Vec<String>, Duration)>>>;
        let passes: Passes = Arc::default();
        let seen = passes.clone();
        let t0 = tokio::time::Instant::now();
        tokio::spawn(run_loop(rx, settle, stopped, move |batch| {
            let seen = seen.clone();
            async move {
                let names = batch.iter().map(Trigger::describe).collect();
                seen.lock().unwrap().push((names, t0.elapsed()));
            }
        }));
        let engine = |action: &str| Trigger::Engine {
            container: "s-web".into(),
            action: action.into(),
            at_ns: 0,
        };
        // `docker rm -f`: die, then destroy 70 ms later → one pass, 15 ms after the destroy.
        tx.send(engine("die")).unwrap();
        tokio::time::sleep(Duration::from_millis(70)).await;
        tx.send(engine("destroy")).unwrap();
        tokio::time::sleep(Duration::from_millis(500)).await;
        // A crash: die alone → one pass after 200 ms.
        tx.send(engine("die")).unwrap();
        tokio::time::sleep(Duration::from_millis(500)).await;
        let passes = passes.lock().unwrap().clone();
        assert_eq!(passes.len(), 2, "{passes:?}");
        assert_eq!(passes[0].0.len(), 2);
        assert_eq!(passes[0].1, Duration::from_millis(85));
        assert_eq!(passes[1].1, Duration::from_millis(570 + 200));
    }
}
