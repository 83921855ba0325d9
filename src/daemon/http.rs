//! The agent's HTTP port: `GET /healthz`, `GET /status` (JSON), `GET /metrics` (Prometheus text
//! format) and `POST /webhook` (a push from GitHub, Gitea/Forgejo or GitLab queues a reconcile
//! at once), served by hyper's HTTP/1.1 server, one response per connection.
//!
//! The port faces whoever can reach it, so every resource a client can hold is bounded
//! (issue 17):
//! - at most [`MAX_CONNS`] connections; when full, a new one evicts the oldest connection
//!   that is still sending its request (head or webhook body), so slow clients cannot starve
//!   `/healthz` — an honest request is whole in a few milliseconds and is not the oldest;
//! - [`MAX_HEAD`] bytes of head, sent within [`HEAD_TIMEOUT`]; the whole exchange within
//!   [`CONN_DEADLINE`];
//! - a webhook's head is judged before any body byte is read ([`webhook::precheck`]: a
//!   signature header present, a GitLab token right, the length at most 1 MiB, else 401/413);
//!   at most [`MAX_BODIES`] bodies are read at once (a newcomer evicts the oldest), each
//!   within [`BODY_TIMEOUT`] — so bodies hold at most `MAX_BODIES` MiB;
//! - accept errors (out of file descriptors) back off up to [`ACCEPT_PAUSE_MAX`] instead of
//!   spinning, and free a descriptor by evicting the oldest unfinished request;
//! - a replayed delivery is acknowledged and triggers nothing ([`webhook::Replays`]).
//!
//! The pure parts — signature checks, delivery parsing, replay memory, the metrics text —
//! are unit-tested and fuzzed; the bounds are tested against the real agent in
//! `tests/http_abuse.rs`.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::{Body as _, Incoming};
use hyper::header::{HeaderValue, CONNECTION, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use serde::Serialize;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Notify};

use super::Trigger;

pub mod process;
pub mod webhook;

pub use webhook::{authorized, delivery, read_secret, Delivery, SecretError, WebhookAuth};

/// Connections served at once. Each costs hyper's read and write buffers (8 KiB each) and a
/// task, about 20 KiB; the port serves a scraper, a forge and a health probe, not a crowd.
pub const MAX_CONNS: usize = 64;
/// Request head (request line and headers), in bytes; a longer one gets 431.
pub const MAX_HEAD: usize = 16 * 1024;
/// Webhook bodies read at once (each at most [`webhook::MAX_BODY`]).
pub const MAX_BODIES: usize = 2;
/// Time to send the request head.
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(5);
/// Time to send a webhook body once its head was accepted.
pub const BODY_TIMEOUT: Duration = Duration::from_secs(10);
/// Time for a whole connection, whatever it does.
pub const CONN_DEADLINE: Duration = Duration::from_secs(30);
/// The longest pause between accepts after repeated accept errors.
pub const ACCEPT_PAUSE_MAX: Duration = Duration::from_secs(1);
const ACCEPT_PAUSE_MIN: Duration = Duration::from_millis(5);

/// Version of the `/status` shape (a `version` field first; bumped when a field changes
/// meaning or goes away).
pub const STATUS_VERSION: u32 = 1;

/// What the agent reports about itself; updated by the reconcile worker. `/status` is this
/// with `version` first.
#[derive(Debug, Default, Clone, Serialize)]
pub struct AgentState {
    pub source: String,
    /// Argo's sync status of the last pass that read the host (see [`crate::plan::status`]);
    /// `null` before the first.
    pub sync: Option<crate::plan::status::SyncStatus>,
    /// Argo's health status of the last pass that read the host; `null` before the first.
    pub health: Option<crate::plan::status::HealthStatus>,
    /// The revision of the last reconcile that could read the source.
    pub revision: Option<String>,
    /// The last reconcile found nothing to change (or changed it successfully) and every
    /// container with the desired spec healthy.
    pub in_sync: bool,
    /// Why the last reconcile did not end in sync; cleared by one that does.
    pub last_error: Option<String>,
    /// A rollback holding the project on a revision (see [`crate::history::Hold`]).
    pub hold: Option<crate::history::Hold>,
    /// Owned networks no longer declared that containers dockhand does not own still use.
    pub kept_networks: Vec<String>,
    /// Unix ms of the last reconcile that ended in sync (RFC 3339 `last_sync_at` in JSON).
    #[serde(
        rename = "last_sync_at",
        serialize_with = "crate::history::ser_rfc3339_opt"
    )]
    pub last_sync_ms: Option<i64>,
    pub quarantined: Vec<String>,
    /// Containers whose corrections are backed off, or that hold the desired spec but are
    /// not healthy (re-checked with back-off).
    pub degraded: Vec<String>,
    /// Containers of `drift: report` stacks that differ from the desired state.
    pub drift_reported: Vec<String>,
    /// Each desired service as the last pass that could read the source left it (the
    /// per-service gauges of `/metrics`).
    pub services: Vec<crate::plan::services::ServiceState>,
    /// A remote git source: what is followed and how the last check went.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub git: Option<GitState>,
    /// Per notification sink: the last delivery (time, ok, attempts, error) and counts.
    #[serde(skip_serializing_if = "crate::notify::Deliveries::is_empty")]
    pub notifications: crate::notify::Deliveries,
    #[serde(skip)]
    pub metrics: Metrics,
}

/// The followed branch of a remote source.
#[derive(Debug, Default, Clone, Serialize)]
pub struct GitState {
    pub url: String,
    pub branch: String,
    /// The commit followed (fetched and fast-forward of the one before).
    pub followed: Option<String>,
    /// Unix ms of the last successful check of the remote (RFC 3339 `last_check_at` in JSON).
    #[serde(
        rename = "last_check_at",
        serialize_with = "crate::history::ser_rfc3339_opt"
    )]
    pub last_check_ms: Option<i64>,
    /// The last check's error (unreachable remote, refused credentials, force-push).
    pub error: Option<String>,
}

/// Counters behind `/metrics`.
#[derive(Debug, Default, Clone)]
pub struct Metrics {
    pub reconciles: u64,
    /// Reconcile durations: counts per upper bound in seconds (a Prometheus histogram).
    pub duration_buckets: [u64; BUCKETS.len()],
    pub duration_sum: f64,
    pub drift_corrections: u64,
    /// Deploy outcomes by name (`succeeded`, `rolled-back`, …).
    pub outcomes: BTreeMap<String, u64>,
    pub source_errors: u64,
    /// Remote checks (one round trip each), fetches that moved objects, objects received, and
    /// checks or fetches that failed.
    pub git_checks: u64,
    pub git_fetches: u64,
    pub git_objects: u64,
    pub git_errors: u64,
    /// From the Engine's event to the start of its correction: last, sum and count.
    pub reaction_last: f64,
    pub reaction_sum: f64,
    pub reactions: u64,
}

pub const BUCKETS: [f64; 8] = [0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 30.0, 120.0];

impl Metrics {
    pub fn observe_reaction(&mut self, seconds: f64) {
        self.reaction_last = seconds;
        self.reaction_sum += seconds;
        self.reactions += 1;
    }

    pub fn observe_reconcile(&mut self, seconds: f64) {
        self.reconciles += 1;
        self.duration_sum += seconds;
        for (i, le) in BUCKETS.iter().enumerate() {
            if seconds <= *le {
                self.duration_buckets[i] += 1;
            }
        }
    }
}

/// The Prometheus text exposition of `state`.
pub fn metrics_text(state: &AgentState) -> String {
    let m = &state.metrics;
    let mut out = String::new();
    out += "# HELP dockhand_reconcile_duration_seconds Time of one reconcile pass (plan, and apply when needed).\n# TYPE dockhand_reconcile_duration_seconds histogram\n";
    for (le, n) in BUCKETS.iter().zip(m.duration_buckets) {
        out += &format!("dockhand_reconcile_duration_seconds_bucket{{le=\"{le}\"}} {n}\n");
    }
    out += &format!(
        "dockhand_reconcile_duration_seconds_bucket{{le=\"+Inf\"}} {}\ndockhand_reconcile_duration_seconds_sum {}\ndockhand_reconcile_duration_seconds_count {}\n",
        m.reconciles, m.duration_sum, m.reconciles
    );
    out += &format!("# HELP dockhand_drift_corrections_total Applies started by an Engine event or a resync.\n# TYPE dockhand_drift_corrections_total counter\ndockhand_drift_corrections_total {}\n", m.drift_corrections);
    out += "# HELP dockhand_deploys_total Recorded deploys by outcome.\n# TYPE dockhand_deploys_total counter\n";
    for (outcome, n) in &m.outcomes {
        out += &format!("dockhand_deploys_total{{outcome=\"{outcome}\"}} {n}\n");
    }
    out += &format!("# HELP dockhand_drift_reaction_seconds From a Docker event to the start of its correction (settle window, observe, plan).\n# TYPE dockhand_drift_reaction_seconds summary\ndockhand_drift_reaction_seconds_sum {}\ndockhand_drift_reaction_seconds_count {}\n# HELP dockhand_drift_reaction_last_seconds The last such reaction.\n# TYPE dockhand_drift_reaction_last_seconds gauge\ndockhand_drift_reaction_last_seconds {}\n", m.reaction_sum, m.reactions, m.reaction_last);
    out += &format!("# HELP dockhand_drift_reported Containers of `drift: report` stacks that differ from the desired state.\n# TYPE dockhand_drift_reported gauge\ndockhand_drift_reported {}\n", state.drift_reported.len());
    out += &format!("# HELP dockhand_git_checks_total Branch-head checks of a remote source (one round trip, no objects).\n# TYPE dockhand_git_checks_total counter\ndockhand_git_checks_total {}\n", m.git_checks);
    out += &format!("# HELP dockhand_git_fetches_total Fetches that transferred objects.\n# TYPE dockhand_git_fetches_total counter\ndockhand_git_fetches_total {}\n", m.git_fetches);
    out += &format!("# HELP dockhand_git_fetched_objects_total Objects received from the remote.\n# TYPE dockhand_git_fetched_objects_total counter\ndockhand_git_fetched_objects_total {}\n", m.git_objects);
    out += &format!("# HELP dockhand_git_fetch_errors_total Checks or fetches of the remote that failed (unreachable, refused, force-pushed).\n# TYPE dockhand_git_fetch_errors_total counter\ndockhand_git_fetch_errors_total {}\n", m.git_errors);
    out += &format!("# HELP dockhand_source_errors_total Reconciles that could not read or validate the desired state.\n# TYPE dockhand_source_errors_total counter\ndockhand_source_errors_total {}\n", m.source_errors);
    out += &format!(
        "# HELP dockhand_last_sync_timestamp_seconds When the host was last found or made in sync.\n# TYPE dockhand_last_sync_timestamp_seconds gauge\ndockhand_last_sync_timestamp_seconds {}\n",
        state.last_sync_ms.map_or(0.0, |ms| ms as f64 / 1000.0)
    );
    out += &format!(
        "# HELP dockhand_degraded Containers not healthy, or whose corrections are backed off.\n# TYPE dockhand_degraded gauge\ndockhand_degraded {}\n",
        state.degraded.len()
    );
    let sinks = state.notifications.snapshot();
    if !sinks.is_empty() {
        out += "# HELP dockhand_notifications_total Notification deliveries by sink and result (ok, error after the last retry, dropped on a full queue).\n# TYPE dockhand_notifications_total counter\n";
        for (sink, s) in &sinks {
            for result in ["ok", "error", "dropped"] {
                let n = s.results.get(result).copied().unwrap_or(0);
                out += &format!(
                    "dockhand_notifications_total{{sink=\"{sink}\",result=\"{result}\"}} {n}\n"
                );
            }
        }
    }
    out += &format!(
        "# HELP dockhand_in_sync 1 when the last reconcile left the host as the desired state says.\n# TYPE dockhand_in_sync gauge\ndockhand_in_sync {}\n",
        u8::from(state.in_sync)
    );
    out += &format!(
        "# HELP dockhand_build_info The running dockhand's version and the git commit it was built from (\"unknown\" when built outside a repository); always 1.\n# TYPE dockhand_build_info gauge\ndockhand_build_info{{version=\"{}\",commit=\"{}\"}} 1\n",
        label_value(env!("CARGO_PKG_VERSION")),
        label_value(crate::GIT_COMMIT.unwrap_or("unknown"))
    );
    out + &service_gauges(&state.services)
}

/// The per-service gauges, 0 or 1 each, one series per desired service: the flags of
/// [`crate::plan::services::ServiceState`] as the last pass that could read the source left
/// them.
fn service_gauges(services: &[crate::plan::services::ServiceState]) -> String {
    use crate::plan::services::ServiceState;
    type Flag = fn(&ServiceState) -> bool;
    let gauges: [(&str, &str, Flag); 5] = [
        ("in_sync", "1 when nothing is left to change for the service (no action, conflict or unhealthy container).", |s| s.in_sync),
        ("healthy", "1 when the service runs as its kind asks: a job's last run exited 0, a blue/green service has a serving color, any other container runs and is healthy (or has no healthcheck).", |s| s.healthy),
        ("degraded", "1 when the service is not healthy with the desired spec, or its corrections are backed off (crash loop).", |s| s.degraded),
        ("quarantined", "1 when the service's change belongs to a quarantined revision (a failed release), not applied until a new revision or `dockhand apply --retry`.", |s| s.quarantined),
        ("held", "1 when a rollback holds the project, and so every service, on an earlier revision (`dockhand resume` ends it).", |s| s.held),
    ];
    let mut out = String::new();
    for (name, help, flag) in gauges {
        out += &format!(
            "# HELP dockhand_service_{name} {help}\n# TYPE dockhand_service_{name} gauge\n"
        );
        for s in services {
            out += &format!(
                "dockhand_service_{name}{{stack=\"{}\",service=\"{}\"}} {}\n",
                label_value(&s.stack),
                label_value(&s.service),
                u8::from(flag(s))
            );
        }
    }
    out
}

/// A label value as the text format wants it: backslash, double quote and newline escaped.
fn label_value(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The `/status` document: `version`, then the fields of [`AgentState`].
pub fn status_json(state: &AgentState) -> String {
    let mut doc = serde_json::Map::new();
    doc.insert("version".into(), STATUS_VERSION.into());
    if let Ok(serde_json::Value::Object(fields)) = serde_json::to_value(state) {
        doc.extend(fields);
    }
    serde_json::to_string_pretty(&doc).unwrap_or_default() + "\n"
}

/// What a connection is doing, for eviction: only one still sending its request may be cut.
const SENDING_HEAD: u8 = 0;
const SENDING_BODY: u8 = 1;
const ANSWERING: u8 = 2;

/// One live connection: its phase and the signal that evicts it.
#[derive(Debug)]
struct Conn {
    phase: AtomicU8,
    evict: Notify,
}

/// The live connections, oldest first (ids grow with each accept).
#[derive(Debug, Default)]
struct Conns {
    next: u64,
    live: BTreeMap<u64, Arc<Conn>>,
}

impl Conns {
    /// Evicts the oldest connection in `phase`; false when there is none.
    fn evict_oldest(&mut self, phase: u8) -> bool {
        let Some(id) = self
            .live
            .iter()
            .find(|(_, c)| c.phase.load(Ordering::Relaxed) == phase)
            .map(|(id, _)| *id)
        else {
            return false;
        };
        if let Some(c) = self.live.remove(&id) {
            c.evict.notify_one();
        }
        true
    }

    /// Evicts the oldest unfinished request (a head first, else a body).
    fn evict_unfinished(&mut self) -> bool {
        self.evict_oldest(SENDING_HEAD) || self.evict_oldest(SENDING_BODY)
    }

    /// Room for a new connection: evicts an unfinished one when full. None: every slot is
    /// answering (for microseconds), the newcomer is closed.
    fn admit(&mut self) -> Option<(u64, Arc<Conn>)> {
        if self.live.len() >= MAX_CONNS && !self.evict_unfinished() {
            return None;
        }
        let id = self.next;
        self.next += 1;
        let conn = Arc::new(Conn {
            phase: AtomicU8::new(SENDING_HEAD),
            evict: Notify::new(),
        });
        self.live.insert(id, conn.clone());
        Some((id, conn))
    }
}

/// What every connection's handler shares.
struct Shared {
    state: Arc<Mutex<AgentState>>,
    webhook: Option<WebhookAuth>,
    queue: mpsc::UnboundedSender<Trigger>,
    conns: Mutex<Conns>,
    replays: Mutex<webhook::Replays>,
    /// When a refused webhook was last logged, and how many were not logged since: a flood of
    /// forged requests must not flood the journal too.
    refusals: Mutex<(Option<Instant>, u64)>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    /// Moves connection `id` into the body phase, evicting the oldest body reader when
    /// [`MAX_BODIES`] are being read.
    fn enter_body(&self, id: u64, conn: &Conn) {
        let mut conns = lock(&self.conns);
        let reading = conns
            .live
            .iter()
            .filter(|(other, c)| **other != id && c.phase.load(Ordering::Relaxed) == SENDING_BODY)
            .count();
        if reading >= MAX_BODIES {
            conns.evict_oldest(SENDING_BODY);
        }
        conn.phase.store(SENDING_BODY, Ordering::Relaxed);
    }

    fn log_refusal(&self, answer: &webhook::Answer) {
        let mut r = lock(&self.refusals);
        if r.0.is_some_and(|at| at.elapsed() < Duration::from_secs(10)) {
            r.1 += 1;
            return;
        }
        tracing::warn!(
            status = answer.status,
            "webhook refused: {} ({} more refused since the last such line)",
            answer.text,
            r.1
        );
        *r = (Some(Instant::now()), 0);
    }
}

/// Serves the agent's port until the process ends.
///
/// `state` is read for `/status` and `/metrics`; without `webhook`, `POST /webhook` answers
/// 404; a delivery that asks for a sync queues [`Trigger::Webhook`] on `queue`.
pub async fn serve(
    listener: TcpListener,
    state: Arc<Mutex<AgentState>>,
    webhook: Option<WebhookAuth>,
    queue: mpsc::UnboundedSender<Trigger>,
) {
    let shared = Arc::new(Shared {
        state,
        webhook,
        queue,
        conns: Mutex::default(),
        replays: Mutex::default(),
        refusals: Mutex::default(),
    });
    let mut pause = ACCEPT_PAUSE_MIN;
    let mut last_logged: Option<Instant> = None;
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => {
                pause = ACCEPT_PAUSE_MIN;
                stream
            }
            Err(e) => {
                // The connection that failed stays in the backlog, so accepting again at once
                // fails again: without a pause this loop spins (out of file descriptors, a
                // core at 100 %). A descriptor is freed by cutting the oldest unfinished
                // request, so /healthz gets through once the pause is over.
                if out_of_resources(&e) {
                    lock(&shared.conns).evict_unfinished();
                }
                if last_logged.is_none_or(|at| at.elapsed() > Duration::from_secs(10)) {
                    tracing::warn!("http: cannot accept a connection ({e}); pausing accepts up to {ACCEPT_PAUSE_MAX:?}");
                    last_logged = Some(Instant::now());
                }
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(ACCEPT_PAUSE_MAX);
                continue;
            }
        };
        let Some((id, conn)) = lock(&shared.conns).admit() else {
            tracing::debug!("http: every connection is answering; a new one was closed");
            continue;
        };
        tokio::spawn(serve_connection(shared.clone(), stream, id, conn));
        // Let the new connection read the head it may already have sent before accepting the
        // next one: under a flood of connections, a prompt request (a /healthz probe) is then
        // answered before it can become the oldest unfinished one and be cut.
        tokio::task::yield_now().await;
    }
}

/// Errors of `accept` that mean the process or the host is out of something, as opposed to
/// one connection that went away before it was accepted.
fn out_of_resources(e: &std::io::Error) -> bool {
    use nix::errno::Errno;
    e.raw_os_error().is_some_and(|code| {
        [Errno::EMFILE, Errno::ENFILE, Errno::ENOBUFS, Errno::ENOMEM]
            .iter()
            .any(|errno| *errno as i32 == code)
    })
}

/// Removes a connection from the live set when its task ends, however it ends.
struct Leave {
    shared: Arc<Shared>,
    id: u64,
}

impl Drop for Leave {
    fn drop(&mut self) {
        lock(&self.shared.conns).live.remove(&self.id);
    }
}

async fn serve_connection(shared: Arc<Shared>, stream: TcpStream, id: u64, conn: Arc<Conn>) {
    let _leave = Leave {
        shared: shared.clone(),
        id,
    };
    let service = {
        let (shared, conn) = (shared.clone(), conn.clone());
        hyper::service::service_fn(move |req| {
            let (shared, conn) = (shared.clone(), conn.clone());
            async move { Ok::<_, Infallible>(route(&shared, id, &conn, req).await) }
        })
    };
    let served = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEAD_TIMEOUT)
        .max_buf_size(MAX_HEAD)
        .keep_alive(false)
        .serve_connection(TokioIo::new(stream), service);
    tokio::select! {
        done = served => if let Err(e) = done {
            tracing::debug!("http: connection ended: {e}");
        },
        () = conn.evict.notified() => tracing::debug!("http: an unfinished request was cut to make room"),
        () = tokio::time::sleep(CONN_DEADLINE) => tracing::debug!("http: a client took over {CONN_DEADLINE:?}; dropped"),
    }
}

type Reply = Response<Full<Bytes>>;

fn answer(status: u16, kind: &'static str, body: String) -> Reply {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(kind));
    r.headers_mut()
        .insert(CONNECTION, HeaderValue::from_static("close"));
    r
}

async fn route(shared: &Shared, id: u64, conn: &Conn, req: Request<Incoming>) -> Reply {
    conn.phase.store(ANSWERING, Ordering::Relaxed);
    let snapshot = || lock(&shared.state).clone();
    match (req.method(), req.uri().path()) {
        (&Method::GET, "/healthz") => answer(200, "text/plain", "ok\n".into()),
        (&Method::GET, "/status") => answer(200, "application/json", status_json(&snapshot())),
        (&Method::GET, "/metrics") => {
            let text = metrics_text(&snapshot()) + &process::text();
            answer(200, "text/plain; version=0.0.4", text)
        }
        (&Method::POST, "/webhook") => match &shared.webhook {
            None => answer(
                404,
                "text/plain",
                "no webhook secret configured (--webhook-secret-file)\n".into(),
            ),
            Some(auth) => {
                let a = receive_webhook(shared, id, conn, auth, req).await;
                if a.status >= 400 {
                    shared.log_refusal(&a);
                }
                if a.sync {
                    let _ = shared.queue.send(Trigger::Webhook);
                }
                answer(a.status, "text/plain", a.text + "\n")
            }
        },
        _ => answer(404, "text/plain", "not found\n".into()),
    }
}

/// The request's headers as the pure webhook functions take them: lower-case names (hyper
/// gives them so), values trimmed; of a repeated header the last one counts.
fn header_map(req: &Request<Incoming>) -> BTreeMap<String, String> {
    req.headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).trim().to_string(),
            )
        })
        .collect()
}

enum BodyError {
    TooLarge,
    Read(hyper::Error),
}

/// Reads a body of at most [`webhook::MAX_BODY`] bytes into one buffer, sized up front when the
/// length was declared (the pages are only resident once bytes arrive), so a body costs its
/// length once, not twice.
async fn read_body(mut body: Incoming, declared: Option<u64>) -> Result<Vec<u8>, BodyError> {
    let cap = usize::try_from(webhook::MAX_BODY).unwrap_or(usize::MAX);
    let mut buf =
        Vec::with_capacity(declared.map_or(0, |n| usize::try_from(n).unwrap_or(cap).min(cap)));
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(BodyError::Read)?;
        if let Ok(data) = frame.into_data() {
            if buf.len() + data.len() > cap {
                return Err(BodyError::TooLarge);
            }
            buf.extend_from_slice(&data);
        }
    }
    Ok(buf)
}

async fn receive_webhook(
    shared: &Shared,
    id: u64,
    conn: &Conn,
    auth: &WebhookAuth,
    req: Request<Incoming>,
) -> webhook::Answer {
    let headers = header_map(&req);
    // hyper has checked Content-Length (a malformed one is a 400 before we get here): its
    // exact size hint is the declared length, None for a chunked body.
    let declared = req.body().size_hint().exact();
    if let Err(refused) = webhook::precheck(auth, &headers, declared) {
        return refused;
    }
    shared.enter_body(id, conn);
    let read = tokio::time::timeout(BODY_TIMEOUT, read_body(req.into_body(), declared)).await;
    conn.phase.store(ANSWERING, Ordering::Relaxed);
    let refused = |status: u16, text: String| webhook::Answer {
        status,
        text,
        sync: false,
    };
    let body = match read {
        Err(_) => {
            return refused(
                408,
                format!("the body did not arrive within {BODY_TIMEOUT:?}"),
            )
        }
        Ok(Err(BodyError::TooLarge)) => {
            return refused(
                413,
                format!("body too large (at most {} bytes)", webhook::MAX_BODY),
            )
        }
        Ok(Err(BodyError::Read(e))) => {
            return refused(400, format!("the body could not be read ({e})"))
        }
        Ok(Ok(body)) => body,
    };
    let mut replays = lock(&shared.replays);
    webhook::receive(auth, &headers, &body, &mut replays, Instant::now())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_render() {
        let mut s = AgentState {
            in_sync: true,
            last_sync_ms: Some(1_700_000_000_000),
            ..AgentState::default()
        };
        s.metrics.observe_reconcile(0.2);
        s.metrics.observe_reconcile(3.0);
        *s.metrics.outcomes.entry("succeeded".into()).or_default() += 2;
        let text = metrics_text(&s);
        assert!(text.contains("dockhand_reconcile_duration_seconds_bucket{le=\"0.25\"} 1\n"));
        assert!(text.contains("dockhand_reconcile_duration_seconds_bucket{le=\"5\"} 2\n"));
        assert!(text.contains("dockhand_reconcile_duration_seconds_count 2\n"));
        assert!(text.contains("dockhand_deploys_total{outcome=\"succeeded\"} 2\n"));
        assert!(text.contains("dockhand_last_sync_timestamp_seconds 1700000000\n"));
        assert!(text.contains("dockhand_in_sync 1\n"));
    }

    #[test]
    fn per_service_gauges_and_build_info() {
        use crate::plan::services::ServiceState;
        let s = AgentState {
            services: vec![
                ServiceState {
                    stack: "shop".into(),
                    service: "web".into(),
                    in_sync: true,
                    healthy: true,
                    ..ServiceState::default()
                },
                ServiceState {
                    stack: "shop".into(),
                    service: "a\"b".into(),
                    degraded: true,
                    quarantined: true,
                    held: true,
                    ..ServiceState::default()
                },
            ],
            ..AgentState::default()
        };
        let text = metrics_text(&s);
        for (gauge, web, other) in [
            ("in_sync", 1, 0),
            ("healthy", 1, 0),
            ("degraded", 0, 1),
            ("quarantined", 0, 1),
            ("held", 0, 1),
        ] {
            assert!(text.contains(&format!(
                "# TYPE dockhand_service_{gauge} gauge\ndockhand_service_{gauge}{{stack=\"shop\",service=\"web\"}} {web}\ndockhand_service_{gauge}{{stack=\"shop\",service=\"a\\\"b\"}} {other}\n"
            )), "{gauge}:\n{text}");
        }
        assert!(text.contains(&format!(
            "dockhand_build_info{{version=\"{}\",commit=\"{}\"}} 1\n",
            env!("CARGO_PKG_VERSION"),
            crate::GIT_COMMIT.unwrap_or("unknown")
        )));
        assert_eq!(label_value("a\\b\"c\nd"), "a\\\\b\\\"c\\nd");
    }

    fn conns_with(phases: &[u8]) -> Conns {
        let mut c = Conns::default();
        for p in phases {
            let (_, conn) = c.admit().unwrap();
            conn.phase.store(*p, Ordering::Relaxed);
        }
        c
    }

    /// Regression (issue 17): 200 slow connections held the port; a full table now cuts the
    /// oldest unfinished request (a head before a body), never one being answered.
    #[test]
    fn a_full_table_evicts_the_oldest_unfinished_request() {
        let mut phases = vec![ANSWERING, SENDING_BODY, SENDING_HEAD, SENDING_HEAD];
        phases.resize(MAX_CONNS, ANSWERING);
        let mut c = conns_with(&phases);
        assert!(c.admit().is_some());
        assert!(!c.live.contains_key(&2), "the oldest head goes first");
        assert!(c.live.contains_key(&1) && c.live.contains_key(&3));
        assert!(c.admit().is_some());
        assert!(!c.live.contains_key(&3));
        // The newcomers are sending their heads now; make them busy, then only the body is left.
        for conn in c.live.values() {
            if conn.phase.load(Ordering::Relaxed) == SENDING_HEAD {
                conn.phase.store(ANSWERING, Ordering::Relaxed);
            }
        }
        assert!(c.admit().is_some());
        assert!(!c.live.contains_key(&1));
        assert!(
            c.live.contains_key(&0),
            "an answering connection is never cut"
        );
        for conn in c.live.values() {
            conn.phase.store(ANSWERING, Ordering::Relaxed);
        }
        assert!(c.admit().is_none(), "all answering: the newcomer is closed");
        assert_eq!(c.live.len(), MAX_CONNS);
    }

    #[test]
    fn accept_errors_that_mean_exhaustion_are_told_apart() {
        use nix::errno::Errno;
        let e = |errno: Errno| std::io::Error::from_raw_os_error(errno as i32);
        assert!(out_of_resources(&e(Errno::EMFILE)));
        assert!(out_of_resources(&e(Errno::ENFILE)));
        assert!(!out_of_resources(&e(Errno::ECONNABORTED)));
    }
}
