//! The agent's control socket: how `dockhand apply`, `rollback` and `resume` get a running
//! agent to act at once instead of at its next resync (issue 18 item 8).
//!
//! A Unix socket in the state directory ([`SOCKET`], mode 0600), served with hyper's HTTP/1
//! server like the agent's port; a peer is served only when the kernel says (`SO_PEERCRED`)
//! it runs as the agent's user or as root. One request, `POST /reconcile` with a
//! [`Request`]: it queues a [`Trigger::Control`] and is answered when the pass that ran it has
//! finished, with what that pass came to ([`Outcome`]). The request never says *what* to
//! change: the pass re-reads the source, the record (a rollback hold) and the Engine, like any
//! other (level-triggered).
//!
//! [`ask`] is the client side, for the CLI: `Ok(None)` when no agent listens, so the CLI
//! goes on alone.

use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Method, Request as HttpRequest, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use serde::{Deserialize, Serialize};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, watch};

use super::worker::Pass;
use super::Trigger;

/// The socket's file name in the state directory.
pub const SOCKET: &str = "agent.sock";
/// A request's head and body must arrive within this long (a local CLI sends both at once).
const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// A request body is a few bytes of JSON.
const MAX_BODY: usize = 4096;
/// How long the CLI waits for the agent's answer: the agent's own wait for the lock and a
/// whole deploy (image pulls, gates, jobs with their timeouts).
pub const ANSWER_WAIT: Duration = Duration::from_secs(1800);

/// Where the agent of `state_dir` listens.
pub fn socket_path(state_dir: &Path) -> PathBuf {
    state_dir.join(SOCKET)
}

/// What the CLI asks for: a pass now.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Request {
    /// The verb that asks (`apply`, `rollback`, `resume`), for the agent's log and the deploy
    /// record's trigger.
    pub why: String,
    /// Apply a quarantined revision (`dockhand apply --retry`).
    #[serde(default)]
    pub retry: bool,
}

/// What the pass the CLI asked for came to.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Outcome {
    /// In sync, or a deploy that succeeded.
    pub ok: bool,
    /// The revision the pass planned, when it got that far.
    pub revision: Option<String>,
    /// One line (or an error with its hints) for the CLI to print.
    pub summary: String,
}

impl Outcome {
    pub(super) fn of(pass: &Pass) -> Outcome {
        let short = |r: &str| crate::reconcile::short(r).to_string();
        let (ok, revision, summary) = match pass {
            Pass::NotRead(e) => (false, None, format!("desired state not applied: {e}")),
            Pass::NoLock(e) => (false, None, e.clone()),
            Pass::InSync(r) => (true, Some(r), format!("in sync at {}", short(r))),
            Pass::Refused(r, why) => (
                false,
                Some(r),
                format!("{} not applied: {}", short(r), why.message()),
            ),
            Pass::BackedOff(r, names) => (
                false,
                Some(r),
                format!("backing off: {} keep(s) drifting", names.join(", ")),
            ),
            Pass::Unhealthy(r, names, _) => (
                false,
                Some(r),
                format!(
                    "not in sync at {}: {} not healthy",
                    short(r),
                    names.join(", ")
                ),
            ),
            Pass::Applied(r, outcome, None) => (
                true,
                Some(r),
                format!("deployed {}: {}", short(r), outcome.as_str()),
            ),
            Pass::Applied(r, outcome, Some(e)) => (
                false,
                Some(r),
                format!("deploy of {} {}: {e}", short(r), outcome.as_str()),
            ),
        };
        Outcome {
            ok,
            revision: revision.cloned(),
            summary,
        }
    }
}

/// The last pass that ran control requests: every request with an id up to `upto` has been
/// answered by it or an earlier pass.
#[derive(Debug, Clone, Default)]
pub(super) struct Done {
    pub upto: u64,
    pub outcome: Option<Outcome>,
}

/// Why the agent cannot listen on its control socket.
#[derive(Debug, thiserror::Error)]
pub enum BindError {
    #[error("another dockhand agent already listens on {path} (one agent per state directory)\n  hint: stop it first, or give this one its own --state-dir")]
    InUse { path: String },
    #[error(
        "cannot listen on {path}\n  hint: the state directory must be writable by the agent's user"
    )]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// Binds the control socket of `state_dir`, mode 0600. A socket file nobody answers on is
/// left over from an agent that was killed, and is replaced.
///
/// # Errors
/// [`BindError::InUse`] when another agent answers on it; [`BindError::Io`] otherwise.
pub(super) fn bind(state_dir: &Path) -> Result<UnixListener, BindError> {
    use std::os::unix::fs::PermissionsExt;
    let path = socket_path(state_dir);
    let shown = path.display().to_string();
    let io = |source| BindError::Io {
        path: shown.clone(),
        source,
    };
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(&path).is_ok() {
            return Err(BindError::InUse { path: shown });
        }
        std::fs::remove_file(&path).map_err(io)?;
    }
    let listener = UnixListener::bind(&path).map_err(io)?;
    // The state directory is 0700 already; the socket is private on its own too.
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).map_err(io)?;
    Ok(listener)
}

/// Whether a peer of uid `peer` may ask: the agent's own user, or root.
fn allowed(peer: u32, own: u32) -> bool {
    peer == own || peer == 0
}

/// Serves the control socket until the queue is gone.
pub(super) async fn serve(
    listener: UnixListener,
    queue: mpsc::UnboundedSender<Trigger>,
    done: watch::Receiver<Done>,
) {
    let own = nix::unistd::geteuid().as_raw();
    let next = Arc::new(AtomicU64::new(0));
    loop {
        let stream = match listener.accept().await {
            Ok((s, _)) => s,
            Err(e) => {
                tracing::warn!("control socket: accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        if queue.is_closed() {
            return;
        }
        match stream.peer_cred() {
            Ok(cred) if allowed(cred.uid(), own) => {}
            Ok(cred) => {
                let why = format!(
                    "only uid {own} (the agent's user) or root may ask; this peer runs as uid {}",
                    cred.uid()
                );
                tracing::warn!("control socket: refused: {why}");
                // Told in plain HTTP, so the CLI says why instead of "connection closed".
                let reply = format!(
                    "HTTP/1.1 403 Forbidden\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{why}",
                    why.len()
                );
                let mut stream = stream;
                tokio::spawn(async move {
                    use tokio::io::AsyncWriteExt;
                    let _ = tokio::time::timeout(READ_TIMEOUT, stream.write_all(reply.as_bytes()))
                        .await;
                });
                continue;
            }
            Err(e) => {
                tracing::warn!("control socket: cannot read the peer's credentials: {e}");
                continue;
            }
        }
        let (queue, done, next) = (queue.clone(), done.clone(), next.clone());
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let (queue, done, next) = (queue.clone(), done.clone(), next.clone());
                async move { Ok::<_, Infallible>(route(req, &queue, done, &next).await) }
            });
            let served = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(READ_TIMEOUT)
                .keep_alive(false)
                .serve_connection(TokioIo::new(stream), service);
            if let Err(e) = served.await {
                tracing::debug!("control socket: connection ended: {e}");
            }
        });
    }
}

fn answer(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r
}

async fn route(
    req: HttpRequest<Incoming>,
    queue: &mpsc::UnboundedSender<Trigger>,
    mut done: watch::Receiver<Done>,
    next: &AtomicU64,
) -> Response<Full<Bytes>> {
    if (req.method(), req.uri().path()) != (&Method::POST, "/reconcile") {
        return answer(StatusCode::NOT_FOUND, "POST /reconcile\n".into());
    }
    let body = Limited::new(req.into_body(), MAX_BODY).collect();
    let asked: Request = match tokio::time::timeout(READ_TIMEOUT, body).await {
        Ok(Ok(b)) => match serde_json::from_slice(&b.to_bytes()) {
            Ok(r) => r,
            Err(e) => return answer(StatusCode::BAD_REQUEST, format!("{e}\n")),
        },
        _ => return answer(StatusCode::BAD_REQUEST, "no whole body\n".into()),
    };
    let id = next.fetch_add(1, Ordering::SeqCst) + 1;
    tracing::info!("control socket: {} asks for a pass", asked.why);
    let trigger = Trigger::Control {
        why: asked.why,
        id,
        retry: asked.retry,
    };
    if queue.send(trigger).is_err() {
        return answer(
            StatusCode::SERVICE_UNAVAILABLE,
            "the agent is stopping\n".into(),
        );
    }
    match done.wait_for(|d| d.upto >= id).await {
        Ok(d) => {
            let outcome = d.outcome.clone();
            answer(
                StatusCode::OK,
                serde_json::to_string(&outcome).unwrap_or_default(),
            )
        }
        // The loop ended (SIGTERM) before it ran the pass.
        Err(_) => answer(
            StatusCode::SERVICE_UNAVAILABLE,
            "the agent stopped before it ran the pass\n".into(),
        ),
    }
}

/// Why the agent could not be asked (it listens, but the exchange failed).
#[derive(Debug, thiserror::Error)]
pub enum AskError {
    #[error("the agent on {path} did not answer: {message}\n  hint: `dockhand status` shows what the host runs; the agent's log says what its pass did")]
    Failed { path: String, message: String },
    #[error("the agent on {path} did not finish the pass within {}s\n  hint: its pass may still be running; `dockhand status` and the agent's log tell", .waited.as_secs())]
    Timeout { path: String, waited: Duration },
}

/// Connects to the agent's socket. No socket file: no agent. A socket file whose connect fails
/// is tried again for up to 2 s before it counts as "no agent": a busy agent's accept backlog
/// can refuse a connect for a moment (`EAGAIN` on a Unix socket), and taking that for "no
/// agent" made `resume` skip the agent it was meant to wake.
async fn connect(path: &Path) -> Option<UnixStream> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    loop {
        match UnixStream::connect(path).await {
            Ok(stream) => return Some(stream),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
            Err(e) => {
                if tokio::time::Instant::now() >= deadline {
                    tracing::debug!("control socket {}: {e}", path.display());
                    return None;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Asks the agent of `state_dir` for a pass and waits (up to [`ANSWER_WAIT`]) for what it
/// came to. `Ok(None)`: no agent listens there (no socket, or nobody accepts on it).
///
/// # Errors
/// [`AskError`] when an agent accepted the connection but gave no whole answer in time.
pub async fn ask(state_dir: &Path, request: &Request) -> Result<Option<Outcome>, AskError> {
    let path = socket_path(state_dir);
    let Some(stream) = connect(&path).await else {
        return Ok(None);
    };
    let shown = path.display().to_string();
    let failed = |message: String| AskError::Failed {
        path: shown.clone(),
        message,
    };
    let exchange = async {
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| failed(e.to_string()))?;
        tokio::spawn(conn);
        let body = serde_json::to_vec(request).map_err(|e| failed(e.to_string()))?;
        let req = HttpRequest::post("/reconcile")
            .header(hyper::header::HOST, "dockhand-agent")
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| failed(e.to_string()))?;
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| failed(e.to_string()))?;
        let status = resp.status();
        let bytes = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| failed(e.to_string()))?
            .to_bytes();
        if !status.is_success() {
            return Err(failed(format!(
                "{status}: {}",
                String::from_utf8_lossy(&bytes).trim()
            )));
        }
        serde_json::from_slice::<Option<Outcome>>(&bytes)
            .map_err(|e| failed(format!("unreadable answer: {e}")))
    };
    match tokio::time::timeout(ANSWER_WAIT, exchange).await {
        Ok(Ok(Some(o))) => Ok(Some(o)),
        Ok(Ok(None)) => Err(failed("the pass left no outcome".into())),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(AskError::Timeout {
            path: shown,
            waited: ANSWER_WAIT,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_agents_user_and_root_may_ask() {
        assert!(allowed(1000, 1000));
        assert!(allowed(0, 1000));
        assert!(!allowed(1001, 1000));
        assert!(allowed(0, 0));
        assert!(!allowed(1000, 0));
    }

    #[test]
    fn an_outcome_is_ok_only_in_sync_or_deployed() {
        let ok = Outcome::of(&Pass::InSync("abcdef0123456789".into()));
        assert!(ok.ok);
        assert_eq!(ok.revision.as_deref(), Some("abcdef0123456789"));
        let failed = Outcome::of(&Pass::Applied(
            "abc".into(),
            crate::history::Outcome::Failed,
            Some("gate failed".into()),
        ));
        assert!(!failed.ok);
        assert!(failed.summary.contains("gate failed"), "{failed:?}");
        assert!(!Outcome::of(&Pass::NoLock("busy".into())).ok);
    }

    /// A socket file left by a killed agent is replaced; one an agent answers on is not.
    #[tokio::test]
    async fn a_stale_socket_is_replaced_and_a_live_one_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let first = bind(dir.path()).unwrap();
        let mode = std::fs::metadata(socket_path(dir.path()))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(matches!(bind(dir.path()), Err(BindError::InUse { .. })));
        drop(first);
        assert!(bind(dir.path()).is_ok());
        // Nobody listens after the drop: the client reads that as "no agent".
        let dir = tempfile::tempdir().unwrap();
        let asked = ask(
            dir.path(),
            &Request {
                why: "test".into(),
                retry: false,
            },
        )
        .await;
        assert!(matches!(asked, Ok(None)));
    }
}
