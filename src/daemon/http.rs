//! The agent's HTTP port: `GET /healthz`, `GET /status` (JSON), `GET /metrics` (Prometheus text
//! format) and `POST /webhook` (a push from GitHub, Gitea/Forgejo or GitLab queues a reconcile
//! at once). A small HTTP/1.1 server of its own: four routes, bounded requests (16 KiB of
//! headers, 1 MiB of body, 10 s to send them), one response per connection.
//!
//! The pure parts — request parsing, signature checks, the metrics text — are unit-tested.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hmac::{Hmac, Mac};
use serde::Serialize;
use sha2::Sha256;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use super::Trigger;

const MAX_HEAD: usize = 16 * 1024;
const MAX_BODY: usize = 1024 * 1024;

/// What the agent reports about itself; updated by the reconcile worker.
#[derive(Debug, Default, Clone, Serialize)]
pub struct AgentState {
    pub source: String,
    /// The revision of the last reconcile that could read the source.
    pub revision: Option<String>,
    /// The last reconcile found nothing to change (or changed it successfully).
    pub in_sync: bool,
    pub last_error: Option<String>,
    /// Unix ms of the last reconcile that ended in sync.
    pub last_sync_ms: Option<i64>,
    pub quarantined: Vec<String>,
    /// Containers whose corrections are backed off.
    pub degraded: Vec<String>,
    /// Containers of `drift: report` stacks that differ from the desired state.
    pub drift_reported: Vec<String>,
    /// A remote git source: what is followed and how the last check went.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub git: Option<GitState>,
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
    /// Unix ms of the last successful check of the remote.
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
        "# HELP dockhand_in_sync 1 when the last reconcile left the host as the desired state says.\n# TYPE dockhand_in_sync gauge\ndockhand_in_sync {}\n",
        u8::from(state.in_sync)
    );
    out
}

/// How a push webhook proves it comes from the forge.
#[derive(Debug, Clone)]
pub struct WebhookAuth {
    pub secret: String,
    /// The branch the agent follows, when named (`--ref`): pushes to other branches are
    /// acknowledged and ignored. Unnamed (the remote's default branch): every push counts.
    pub branch: Option<String>,
}

/// What a signed webhook delivery asks for, from its event header and JSON body.
#[derive(Debug, PartialEq, Eq)]
pub enum Delivery {
    /// A push to the followed branch (or one that cannot be told apart): sync now.
    Sync,
    /// Acknowledged, nothing to do (a ping, another event, another branch); says why.
    Ignore(String),
    /// Not a JSON body: refused with this reason.
    Malformed(String),
}

/// Reads a signed delivery. Pure: the caller has checked the signature already.
pub fn delivery(headers: &BTreeMap<String, String>, body: &[u8], branch: Option<&str>) -> Delivery {
    let event = [
        "x-github-event",
        "x-gitea-event",
        "x-forgejo-event",
        "x-gitlab-event",
    ]
    .iter()
    .find_map(|h| headers.get(*h))
    .map(|e| e.to_ascii_lowercase());
    match event.as_deref() {
        Some("ping") => return Delivery::Ignore("ping: ok".into()),
        None | Some("push") | Some("push hook") => {}
        Some(other) => {
            return Delivery::Ignore(format!("event `{other}` ignored (only pushes deploy)"))
        }
    }
    let json: serde_json::Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => return Delivery::Malformed(format!("the body is not JSON ({e})")),
    };
    let pushed = json.get("ref").and_then(|r| r.as_str());
    match (pushed, branch) {
        (Some(r), Some(b)) if r != format!("refs/heads/{b}") && r != b => {
            Delivery::Ignore(format!("push to {r} ignored (following refs/heads/{b})"))
        }
        _ => Delivery::Sync,
    }
}

/// Whether the request carries a valid signature (GitHub `X-Hub-Signature-256`, Gitea/Forgejo
/// `X-Gitea-Signature`/`X-Forgejo-Signature`: HMAC-SHA256 of the body) or token (GitLab
/// `X-Gitlab-Token`). Comparisons are constant-time.
pub fn authorized(auth: &WebhookAuth, headers: &BTreeMap<String, String>, body: &[u8]) -> bool {
    let hmac_ok = |hex_sig: &str| {
        let Ok(sig) = hex::decode(hex_sig.trim()) else {
            return false;
        };
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(auth.secret.as_bytes()) else {
            return false;
        };
        mac.update(body);
        mac.verify_slice(&sig).is_ok()
    };
    if let Some(sig) = headers.get("x-hub-signature-256") {
        return sig.strip_prefix("sha256=").is_some_and(hmac_ok);
    }
    for h in ["x-gitea-signature", "x-forgejo-signature"] {
        if let Some(sig) = headers.get(h) {
            return hmac_ok(sig);
        }
    }
    if let Some(token) = headers.get("x-gitlab-token") {
        let (a, b) = (token.as_bytes(), auth.secret.as_bytes());
        return a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0;
    }
    false
}

/// A parsed request head: method, path, lower-cased headers.
#[derive(Debug, PartialEq, Eq)]
pub struct Head {
    pub method: String,
    pub path: String,
    pub headers: BTreeMap<String, String>,
}

pub fn parse_head(text: &str) -> Option<Head> {
    let mut lines = text.split("\r\n");
    let mut first = lines.next()?.split(' ');
    let (method, path) = (first.next()?.to_string(), first.next()?.to_string());
    let headers = lines
        .filter(|l| !l.is_empty())
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Some(Head {
        method,
        path,
        headers,
    })
}

/// Serves the agent's port until the process ends.
pub async fn serve(
    listener: TcpListener,
    state: Arc<Mutex<AgentState>>,
    webhook: Option<WebhookAuth>,
    queue: mpsc::UnboundedSender<Trigger>,
) {
    loop {
        let Ok((conn, _)) = listener.accept().await else {
            continue;
        };
        let (state, webhook, queue) = (state.clone(), webhook.clone(), queue.clone());
        tokio::spawn(async move {
            let handled = tokio::time::timeout(
                Duration::from_secs(10),
                handle(conn, &state, webhook.as_ref(), &queue),
            )
            .await;
            if handled.is_err() {
                tracing::debug!("http: a client took over 10 s; dropped");
            }
        });
    }
}

async fn handle(
    mut conn: TcpStream,
    state: &Mutex<AgentState>,
    webhook: Option<&WebhookAuth>,
    queue: &mpsc::UnboundedSender<Trigger>,
) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        if buf.len() > MAX_HEAD {
            let _ = respond(&mut conn, 431, "text/plain", "request head too large\n").await;
            return;
        }
        match conn.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let Some(head) = parse_head(&String::from_utf8_lossy(&buf[..head_end])) else {
        let _ = respond(&mut conn, 400, "text/plain", "bad request\n").await;
        return;
    };
    let length: usize = head
        .headers
        .get("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    if length > MAX_BODY {
        let _ = respond(&mut conn, 413, "text/plain", "body too large\n").await;
        return;
    }
    let mut body = buf[head_end + 4..].to_vec();
    while body.len() < length {
        match conn.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => body.extend_from_slice(&chunk[..n]),
        }
    }
    body.truncate(length);
    let snapshot = || {
        state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    };
    let (status, kind, text) = match (head.method.as_str(), head.path.as_str()) {
        ("GET", "/healthz") => (200, "text/plain", "ok\n".to_string()),
        ("GET", "/status") => (
            200,
            "application/json",
            serde_json::to_string_pretty(&snapshot()).unwrap_or_default() + "\n",
        ),
        ("GET", "/metrics") => (200, "text/plain; version=0.0.4", metrics_text(&snapshot())),
        ("POST", "/webhook") => match webhook {
            None => (
                404,
                "text/plain",
                "no webhook secret configured (--webhook-secret-file)\n".into(),
            ),
            Some(auth) if authorized(auth, &head.headers, &body) => {
                match delivery(&head.headers, &body, auth.branch.as_deref()) {
                    Delivery::Sync => {
                        let _ = queue.send(Trigger::Webhook);
                        (202, "text/plain", "queued\n".into())
                    }
                    Delivery::Ignore(why) => (200, "text/plain", format!("{why}\n")),
                    Delivery::Malformed(why) => (400, "text/plain", format!("{why}\n")),
                }
            }
            Some(_) => {
                tracing::warn!("webhook with a bad or missing signature refused");
                (401, "text/plain", "bad signature\n".into())
            }
        },
        _ => (404, "text/plain", "not found\n".into()),
    };
    let _ = respond(&mut conn, status, kind, &text).await;
}

async fn respond(conn: &mut TcpStream, status: u16, kind: &str, body: &str) -> std::io::Result<()> {
    let reason = match status {
        200 => "OK",
        202 => "Accepted",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        413 => "Payload Too Large",
        _ => "Request Header Fields Too Large",
    };
    conn.write_all(
        format!(
            "HTTP/1.1 {status} {reason}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    )
    .await?;
    conn.shutdown().await
}

#[cfg(test)]
mod tests {
    #[test]
    fn deliveries_are_read_from_their_event_and_ref() {
        use super::{delivery, Delivery};
        let h = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<std::collections::BTreeMap<_, _>>()
        };
        let main = br#"{"ref":"refs/heads/main"}"#;
        let other = br#"{"ref":"refs/heads/feature"}"#;
        let gh = h(&[("x-github-event", "push")]);
        assert_eq!(delivery(&gh, main, Some("main")), Delivery::Sync);
        assert!(matches!(
            delivery(&gh, other, Some("main")),
            Delivery::Ignore(_)
        ));
        // The remote's default branch is not known here: every push counts.
        assert_eq!(delivery(&gh, other, None), Delivery::Sync);
        let gl = h(&[("x-gitlab-event", "Push Hook")]);
        assert_eq!(delivery(&gl, main, Some("main")), Delivery::Sync);
        assert!(matches!(
            delivery(&h(&[("x-github-event", "ping")]), b"{}", Some("main")),
            Delivery::Ignore(_)
        ));
        assert!(matches!(
            delivery(&h(&[("x-gitea-event", "issues")]), main, Some("main")),
            Delivery::Ignore(_)
        ));
        assert!(matches!(
            delivery(&gh, b"{{{{", Some("main")),
            Delivery::Malformed(_)
        ));
        // No event header (a generic sender): a push when the body says nothing else.
        assert_eq!(delivery(&h(&[]), b"{}", Some("main")), Delivery::Sync);
    }

    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn signatures_of_each_forge_are_checked() {
        let auth = WebhookAuth {
            secret: "It's a Secret to Everybody".into(),
            branch: None,
        };
        // GitHub's documented example (docs: "Validating webhook deliveries").
        let body = b"Hello, World!";
        let good = "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
        assert!(authorized(
            &auth,
            &headers(&[("x-hub-signature-256", &format!("sha256={good}"))]),
            body
        ));
        assert!(!authorized(
            &auth,
            &headers(&[("x-hub-signature-256", &format!("sha256={good}"))]),
            b"Hello, World?"
        ));
        assert!(authorized(
            &auth,
            &headers(&[("x-gitea-signature", good)]),
            body
        ));
        assert!(!authorized(
            &auth,
            &headers(&[("x-gitea-signature", "zz")]),
            body
        ));
        assert!(authorized(
            &auth,
            &headers(&[("x-gitlab-token", "It's a Secret to Everybody")]),
            body
        ));
        assert!(!authorized(
            &auth,
            &headers(&[("x-gitlab-token", "guess")]),
            body
        ));
        assert!(!authorized(&auth, &headers(&[]), body));
    }

    #[test]
    fn request_heads_parse_and_metrics_render() {
        let h = parse_head("POST /webhook HTTP/1.1\r\nHost: x\r\nX-Hub-Signature-256: sha256=ab")
            .unwrap();
        assert_eq!((h.method.as_str(), h.path.as_str()), ("POST", "/webhook"));
        assert_eq!(h.headers["x-hub-signature-256"], "sha256=ab");
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
}
