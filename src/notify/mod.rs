//! Notifications (issue 20): what a deploy, a drift correction, a degraded service or a
//! rollback hold came to, sent to the sinks the *host* names (`--notify FILE`, default
//! `/etc/dockhand/notify.yaml` when it exists). The repository cannot name, silence or redirect
//! a sink: a commit is untrusted input, and "tell me when it breaks" must survive a bad one.
//!
//! Two sinks:
//! - `webhook`: the [`Notification`] as JSON, signed with HMAC-SHA256 over
//!   `"{timestamp}.{body}"` with the sink's secret: headers `X-Dockhand-Timestamp` (Unix
//!   seconds), `X-Dockhand-Signature: sha256=<hex>`, `X-Dockhand-Event`;
//! - `slack`: `{"text": "…"}` for Slack-compatible incoming webhooks (Mattermost, Discord's
//!   `/slack` endpoint, Rocket.Chat).
//!
//! # Guarantees
//! - Sending never waits and never fails: [`Notifier::send`] puts the notification on each
//!   sink's bounded queue ([`QUEUE`]) and returns; a full queue drops it (counted as
//!   `dropped`). One task per sink delivers, so a slow sink delays no other.
//! - A delivery is tried at most [`RETRY_WAITS`]`.len() + 1` times (1 s, 2 s, 4 s apart), each
//!   attempt within [`ATTEMPT_TIMEOUT`]; a 4xx answer other than 408/429 is not retried.
//! - Bodies carry no secret: the reason is redacted by the caller's
//!   [`crate::apply::progress::Redactor`] (env and env-file values) and a sink's secret is only
//!   ever a key.
//!
//! Only `http://` URLs: the tree has no TLS client stack (no rustls or native-tls in
//! Cargo.lock; bollard, git2 and the probes do without), and adding one is a large dependency
//! for a first version. An `https://` URL is refused when the file is read, with a hint (a
//! local relay, or a chat server on the LAN).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use tokio::sync::mpsc;

use crate::daemon::WebhookSecret;

/// The host's notification file when `--notify` is not given (read only when it exists).
pub const DEFAULT_FILE: &str = "/etc/dockhand/notify.yaml";
/// Notifications waiting per sink; beyond this they are dropped, never waited for.
pub const QUEUE: usize = 64;
/// Waits before the 2nd, 3rd and 4th attempt of one delivery.
pub const RETRY_WAITS: [Duration; 3] = [
    Duration::from_secs(1),
    Duration::from_secs(2),
    Duration::from_secs(4),
];
/// One attempt: connect, send, read the answer.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);
/// The `version` of the [`Notification`] JSON shape.
pub const SHAPE_VERSION: u32 = 1;

/// What happened. Sinks may subscribe to some (`events:`); default all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Event {
    DeploySucceeded,
    DeployFailed,
    /// Some services were skipped, the rest applied.
    DeployPartial,
    /// A release failed and what served before was put back; the revision is quarantined.
    RolledBack,
    /// A deploy failed in a way that quarantines its revision (a first deploy that never got
    /// healthy), so it is not retried by itself.
    Quarantined,
    /// A deploy woken only by Engine events or the resync put hand changes back.
    DriftCorrected,
    /// Containers holding the desired spec are unhealthy, or their corrections back off.
    Degraded,
    HoldSet,
    HoldEnded,
}

impl Event {
    pub fn as_str(self) -> &'static str {
        match self {
            Event::DeploySucceeded => "deploy-succeeded",
            Event::DeployFailed => "deploy-failed",
            Event::DeployPartial => "deploy-partial",
            Event::RolledBack => "rolled-back",
            Event::Quarantined => "quarantined",
            Event::DriftCorrected => "drift-corrected",
            Event::Degraded => "degraded",
            Event::HoldSet => "hold-set",
            Event::HoldEnded => "hold-ended",
        }
    }
}

/// One notification: the JSON body of a `webhook` sink (shape [`SHAPE_VERSION`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Notification {
    pub version: u32,
    pub event: Event,
    pub project: String,
    /// The deploy record's id, for events that are a deploy.
    pub deploy: Option<i64>,
    /// The commit (or `worktree:…` revision) concerned.
    pub revision: String,
    /// `stack/service` of every service concerned (the deploy's actions, the degraded ones).
    pub services: Vec<String>,
    /// The deploy's outcome (`succeeded`, `rolled-back`, `failed`, `partial`, …), or the
    /// event's own word (`degraded`, `held`, `resumed`).
    pub outcome: String,
    /// One line, secrets redacted.
    pub reason: String,
    /// RFC 3339, UTC.
    pub at: String,
}

impl Notification {
    /// A notification stamped now; `reason` is cut to its first line.
    pub fn new(event: Event, project: &str, revision: &str, outcome: &str, reason: &str) -> Self {
        Notification {
            version: SHAPE_VERSION,
            event,
            project: project.to_string(),
            deploy: None,
            revision: revision.to_string(),
            services: Vec::new(),
            outcome: outcome.to_string(),
            reason: one_line(reason),
            at: rfc3339(crate::history::now_ms()),
        }
    }

    /// The line a chat sink shows.
    pub fn text(&self) -> String {
        let deploy = self
            .deploy
            .map(|d| format!(" deploy #{d}"))
            .unwrap_or_default();
        let services = if self.services.is_empty() {
            String::new()
        } else {
            format!(" ({})", self.services.join(", "))
        };
        format!(
            "dockhand [{}] {}:{deploy} at {}{services}: {}",
            self.project,
            self.event.as_str(),
            crate::reconcile::short(&self.revision),
            self.reason
        )
    }
}

fn one_line(text: &str) -> String {
    let line = text.lines().map(str::trim).find(|l| !l.is_empty());
    let line = line.unwrap_or_default();
    // A chat line, not a log: the deploy record has the rest.
    match line.char_indices().nth(300) {
        Some((i, _)) => format!("{}…", &line[..i]),
        None => line.to_string(),
    }
}

/// `2026-11-22T14:03:07Z` for Unix milliseconds.
fn rfc3339(ms: i64) -> String {
    crate::history::format_utc(ms).replacen(' ', "T", 1)
}

/// The kind of a sink and how its body is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    Webhook,
    Slack,
}

/// One sink, resolved: where to POST and with what key.
#[derive(Debug, Clone)]
pub struct Sink {
    pub name: String,
    pub kind: Kind,
    /// `host:port` to connect to.
    addr: String,
    /// The `Host` header (the URL's authority).
    host: String,
    /// Path and query.
    path: String,
    /// The webhook sink's HMAC key.
    secret: Option<WebhookSecret>,
    /// `None`: every event.
    events: Option<BTreeSet<Event>>,
}

impl Sink {
    fn wants(&self, e: Event) -> bool {
        self.events.as_ref().is_none_or(|set| set.contains(&e))
    }

    /// The body and headers of `n` for this sink, signed at `unix_secs`.
    pub fn request(
        &self,
        n: &Notification,
        unix_secs: u64,
    ) -> (Bytes, Vec<(&'static str, String)>) {
        let body = match self.kind {
            Kind::Webhook => serde_json::to_vec(n),
            Kind::Slack => serde_json::to_vec(&serde_json::json!({ "text": n.text() })),
        }
        .unwrap_or_default();
        let mut headers = vec![("x-dockhand-event", n.event.as_str().to_string())];
        if let Some(secret) = &self.secret {
            headers.push(("x-dockhand-timestamp", unix_secs.to_string()));
            headers.push((
                "x-dockhand-signature",
                format!("sha256={}", sign(secret.expose(), unix_secs, &body)),
            ));
        }
        (Bytes::from(body), headers)
    }
}

/// HMAC-SHA256 of `"{unix_secs}.{body}"` under `secret`, as lowercase hex. The timestamp is
/// signed so a receiver can refuse an old delivery replayed.
pub fn sign(secret: &str, unix_secs: u64, body: &[u8]) -> String {
    // HMAC takes a key of any length; `new_from_slice` cannot fail for it.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else {
        return String::new();
    };
    mac.update(unix_secs.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// Why the notification file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read the notification file {}: {source}\n  hint: --notify (DOCKHAND_NOTIFY) must name a file readable by dockhand", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the notification file {}: {what}\n  hint: {hint}", path.display())]
    Invalid {
        path: PathBuf,
        what: String,
        hint: String,
    },
}

/// The file as written (see README, "Notifications").
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    sinks: Vec<SinkFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SinkFile {
    name: String,
    #[serde(rename = "type")]
    kind: Kind,
    url: String,
    secret_file: Option<PathBuf>,
    events: Option<BTreeSet<Event>>,
}

/// The sinks of the host's notification file: `flag` (which must exist), else
/// [`DEFAULT_FILE`] when it exists, else none.
///
/// # Errors
/// The file cannot be read, is not valid, names an `https://` URL, or a webhook sink's secret
/// file cannot be read or is empty.
pub fn read(flag: Option<&Path>) -> Result<Vec<Sink>, ConfigError> {
    let path = match flag {
        Some(p) => p.to_path_buf(),
        None if Path::new(DEFAULT_FILE).exists() => PathBuf::from(DEFAULT_FILE),
        None => return Ok(Vec::new()),
    };
    let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Read {
        path: path.clone(),
        source,
    })?;
    parse(&text, &path)
}

/// See [`read`]; `path` is for messages and for secret files named relative to the file.
///
/// # Errors
/// As [`read`].
pub fn parse(text: &str, path: &Path) -> Result<Vec<Sink>, ConfigError> {
    let invalid = |what: String, hint: &str| ConfigError::Invalid {
        path: path.to_path_buf(),
        what,
        hint: hint.to_string(),
    };
    let shape_hint = "write `sinks:` as a list of {name, type: webhook|slack, url, secret_file (webhook), events (optional)}";
    let (value, _) = crate::load::yaml::parse(text)
        .map_err(|e| invalid(format!("line {}: {}", e.pos.line, e.message), shape_hint))?;
    let file: File =
        serde_json::from_value(value).map_err(|e| invalid(e.to_string(), shape_hint))?;
    let mut names = BTreeSet::new();
    let mut sinks = Vec::new();
    for s in file.sinks {
        let plain = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
        if s.name.is_empty() || !s.name.chars().all(plain) {
            return Err(invalid(
                format!("sink name {:?} is not a plain name", s.name),
                "use letters, digits, '-', '_' and '.' (it is a label on /metrics)",
            ));
        }
        if !names.insert(s.name.clone()) {
            return Err(invalid(
                format!("two sinks are named {}", s.name),
                "give each sink its own name (it names the sink on /status and /metrics)",
            ));
        }
        let (addr, host, target) = http_url(&s.url).map_err(|what| {
            invalid(
                format!("sink {}: {what}", s.name),
                "write http://HOST[:PORT]/PATH; https is not supported yet (no TLS client in dockhand): send to a relay on this host or the LAN",
            )
        })?;
        let secret = match (s.kind, &s.secret_file) {
            (Kind::Webhook, Some(file)) => {
                let file = path.parent().unwrap_or(Path::new("")).join(file);
                let text = std::fs::read_to_string(&file).map_err(|e| {
                    invalid(
                        format!("sink {}: cannot read secret_file {}: {e}", s.name, file.display()),
                        "secret_file must name a file readable by dockhand holding the HMAC key the receiver checks",
                    )
                })?;
                Some(WebhookSecret::new(&text).ok_or_else(|| {
                    invalid(
                        format!("sink {}: secret_file {} is empty", s.name, file.display()),
                        "write a long random key into it (e.g. `openssl rand -hex 32`)",
                    )
                })?)
            }
            (Kind::Webhook, None) => {
                return Err(invalid(
                    format!("sink {}: a webhook sink needs secret_file", s.name),
                    "its bodies are signed so the receiver can tell them from forgeries; name a file holding the HMAC key",
                ))
            }
            (Kind::Slack, Some(_)) => {
                return Err(invalid(
                    format!("sink {}: a slack sink takes no secret_file", s.name),
                    "the incoming webhook's URL is its secret; drop secret_file",
                ))
            }
            (Kind::Slack, None) => None,
        };
        sinks.push(Sink {
            name: s.name,
            kind: s.kind,
            addr,
            host,
            path: target,
            secret,
            events: s.events,
        });
    }
    Ok(sinks)
}

/// `(connect address, Host header, path and query)` of an `http://` URL.
fn http_url(url: &str) -> Result<(String, String, String), String> {
    let uri: hyper::Uri = url.parse().map_err(|e| format!("url is not a URL ({e})"))?;
    if uri.scheme_str() != Some("http") {
        return Err("url must start with http://".into());
    }
    let authority = uri.authority().ok_or("url has no host")?;
    if authority.as_str().contains('@') {
        return Err("url must not carry a user or password".into());
    }
    let port = authority.port_u16().unwrap_or(80);
    let addr = format!("{}:{port}", authority.host());
    let path = uri
        .path_and_query()
        .map_or("/".to_string(), |p| p.as_str().to_string());
    Ok((addr, authority.as_str().to_string(), path))
}

/// The last delivery to one sink, for `/status`.
#[derive(Debug, Clone, Serialize)]
pub struct LastDelivery {
    /// RFC 3339, UTC: when the delivery ended.
    pub at: String,
    pub event: Event,
    pub ok: bool,
    pub attempts: u32,
    /// The last attempt's error (an HTTP status, no connection, a timeout).
    pub error: Option<String>,
}

/// One sink on `/status` and `/metrics`.
#[derive(Debug, Clone, Serialize)]
pub struct SinkStatus {
    pub kind: Kind,
    pub last: Option<LastDelivery>,
    /// Deliveries by result (`ok`, `error`, `dropped`).
    pub results: BTreeMap<String, u64>,
}

/// Per sink name, what its deliveries came to; shared with the delivery tasks. Serializes as
/// a map of [`SinkStatus`].
#[derive(Debug, Clone, Default)]
pub struct Deliveries(Arc<Mutex<BTreeMap<String, SinkStatus>>>);

impl Deliveries {
    fn with<R>(&self, f: impl FnOnce(&mut BTreeMap<String, SinkStatus>) -> R) -> R {
        f(&mut self.0.lock().unwrap_or_else(PoisonError::into_inner))
    }

    pub fn snapshot(&self) -> BTreeMap<String, SinkStatus> {
        self.with(|m| m.clone())
    }

    pub fn is_empty(&self) -> bool {
        self.with(|m| m.is_empty())
    }

    fn count(&self, sink: &str, result: &str) {
        self.with(|m| {
            if let Some(s) = m.get_mut(sink) {
                *s.results.entry(result.to_string()).or_default() += 1;
            }
        });
    }

    fn finish(&self, sink: &str, last: LastDelivery) {
        let result = if last.ok { "ok" } else { "error" };
        self.with(|m| {
            if let Some(s) = m.get_mut(sink) {
                *s.results.entry(result.to_string()).or_default() += 1;
                s.last = Some(last);
            }
        });
    }
}

impl Serialize for Deliveries {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.snapshot().serialize(s)
    }
}

/// The sending side: cheap to clone; [`Notifier::off`] when no sink is configured.
#[derive(Debug, Clone, Default)]
pub struct Notifier {
    sinks: Vec<(Arc<Sink>, mpsc::Sender<Notification>)>,
    deliveries: Deliveries,
    tasks: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

impl Notifier {
    /// Sends nothing.
    pub fn off() -> Notifier {
        Notifier::default()
    }

    /// Starts one delivery task per sink (on the current tokio runtime).
    pub fn start(sinks: Vec<Sink>) -> Notifier {
        let deliveries = Deliveries::default();
        let mut tasks = Vec::new();
        let mut senders = Vec::new();
        for sink in sinks {
            let sink = Arc::new(sink);
            deliveries.with(|m| {
                m.insert(
                    sink.name.clone(),
                    SinkStatus {
                        kind: sink.kind,
                        last: None,
                        results: BTreeMap::new(),
                    },
                )
            });
            let (tx, rx) = mpsc::channel(QUEUE);
            tasks.push(tokio::spawn(deliver(sink.clone(), rx, deliveries.clone())));
            senders.push((sink, tx));
        }
        Notifier {
            sinks: senders,
            deliveries,
            tasks: Arc::new(Mutex::new(tasks)),
        }
    }

    /// What the deliveries came to (for `/status` and `/metrics`).
    pub fn deliveries(&self) -> Deliveries {
        self.deliveries.clone()
    }

    /// Queues `n` for every sink that wants its event; never waits.
    pub fn send(&self, n: Notification) {
        for (sink, tx) in &self.sinks {
            if !sink.wants(n.event) {
                continue;
            }
            if tx.try_send(n.clone()).is_err() {
                self.deliveries.count(&sink.name, "dropped");
                tracing::warn!(
                    sink = %sink.name,
                    "notification {} dropped: {QUEUE} are already waiting for this sink",
                    n.event.as_str()
                );
            }
        }
    }

    /// For the one-shot verbs before the process exits: stops taking notifications and waits
    /// up to `within` for the queued ones to be delivered (or given up).
    pub async fn finish(self, within: Duration) {
        let Notifier { sinks, tasks, .. } = self;
        drop(sinks);
        let tasks = std::mem::take(&mut *tasks.lock().unwrap_or_else(PoisonError::into_inner));
        let all = futures_util::future::join_all(tasks);
        if tokio::time::timeout(within, all).await.is_err() {
            tracing::warn!("notifications not delivered within {within:?}; given up");
        }
    }
}

/// How long [`Notifier::finish`] should wait for one queued delivery: every attempt and wait.
pub fn delivery_bound() -> Duration {
    RETRY_WAITS.iter().sum::<Duration>() + ATTEMPT_TIMEOUT * (RETRY_WAITS.len() as u32 + 1)
}

async fn deliver(sink: Arc<Sink>, mut rx: mpsc::Receiver<Notification>, status: Deliveries) {
    while let Some(n) = rx.recv().await {
        let mut attempts = 0;
        let mut error = None;
        for wait in std::iter::once(Duration::ZERO).chain(RETRY_WAITS) {
            tokio::time::sleep(wait).await;
            attempts += 1;
            match attempt(&sink, &n).await {
                Ok(()) => {
                    error = None;
                    break;
                }
                Err((e, retry)) => {
                    error = Some(e);
                    if !retry {
                        break;
                    }
                }
            }
        }
        if let Some(e) = &error {
            tracing::warn!(sink = %sink.name, "notification {} not delivered after {attempts} attempt(s): {e}", n.event.as_str());
        }
        status.finish(
            &sink.name,
            LastDelivery {
                at: rfc3339(crate::history::now_ms()),
                event: n.event,
                ok: error.is_none(),
                attempts,
                error,
            },
        );
    }
}

/// One POST; `Err((why, worth retrying))`.
async fn attempt(sink: &Sink, n: &Notification) -> Result<(), (String, bool)> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (body, headers) = sink.request(n, now);
    let mut req = hyper::Request::post(sink.path.as_str())
        .header(hyper::header::HOST, sink.host.as_str())
        .header(hyper::header::USER_AGENT, "dockhand")
        .header(hyper::header::CONNECTION, "close")
        .header(hyper::header::CONTENT_TYPE, "application/json");
    for (k, v) in headers {
        req = req.header(k, v);
    }
    let req = req
        .body(http_body_util::Full::new(body))
        .map_err(|e| (format!("building the request: {e}"), false))?;
    let (code, _) = crate::apply::probe::http_exchange(&sink.addr, req, ATTEMPT_TIMEOUT, 1024)
        .await
        .map_err(|e| (e, true))?;
    match code {
        200..=299 => Ok(()),
        // The receiver refuses this request as such: sending it again changes nothing.
        400..=499 if code != 408 && code != 429 => Err((format!("HTTP {code}"), false)),
        _ => Err((format!("HTTP {code}"), true)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(text: &str) -> Result<Vec<Sink>, String> {
        parse(text, Path::new("/nonexistent/notify.yaml")).map_err(|e| e.to_string())
    }

    #[test]
    fn the_signature_is_hmac_sha256_over_timestamp_dot_body() {
        // printf '1700000000.{}' | openssl dgst -sha256 -hmac key
        assert_eq!(
            sign("key", 1_700_000_000, b"{}"),
            "9d713ed406bb7076d4123f0dc2c39d2df5c654ed4b0cd56b52c8b4c940bd63ae"
        );
        assert_ne!(sign("key", 1, b"{}"), sign("key", 2, b"{}"));
        assert_ne!(sign("key", 1, b"{}"), sign("other", 1, b"{}"));
    }

    #[test]
    fn https_urls_and_unsigned_webhooks_are_refused_with_a_hint() {
        let e =
            file("sinks:\n  - {name: a, type: slack, url: 'https://hooks.slack.com/services/x'}\n")
                .err()
                .unwrap();
        assert!(e.contains("http://") && e.contains("hint:"), "{e}");
        let e = file("sinks:\n  - {name: a, type: webhook, url: 'http://127.0.0.1:1/x'}\n")
            .err()
            .unwrap();
        assert!(e.contains("secret_file") && e.contains("hint:"), "{e}");
        let e = file("sinks:\n  - {name: a, type: pager, url: 'http://h/'}\n")
            .err()
            .unwrap();
        assert!(e.contains("hint:"), "{e}");
    }

    #[test]
    fn a_slack_sink_gets_text_and_no_signature() {
        let sinks = file(
            "sinks:\n  - {name: chat, type: slack, url: 'http://chat.lan:8065/hooks/abc?x=1', events: [rolled-back]}\n",
        )
        .unwrap();
        let s = &sinks[0];
        assert_eq!(
            (s.addr.as_str(), s.host.as_str(), s.path.as_str()),
            ("chat.lan:8065", "chat.lan:8065", "/hooks/abc?x=1")
        );
        assert!(s.wants(Event::RolledBack) && !s.wants(Event::DeploySucceeded));
        let mut n = Notification::new(
            Event::RolledBack,
            "shop",
            "3f9c2e1aa0b1c2d3e4f5",
            "rolled-back",
            "gate failed\n  hint: x",
        );
        n.deploy = Some(7);
        n.services = vec!["shop/web".into()];
        let (body, headers) = s.request(&n, 1);
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"text": "dockhand [shop] rolled-back: deploy #7 at 3f9c2e1aa0b1 (shop/web): gate failed"})
        );
        assert!(headers.iter().all(|(k, _)| *k != "x-dockhand-signature"));
    }

    #[test]
    fn one_line_keeps_the_first_line_and_bounds_it() {
        assert_eq!(one_line("\n  what: why\n  hint: do"), "what: why");
        assert_eq!(one_line(&"x".repeat(400)).chars().count(), 301);
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
    }
}
