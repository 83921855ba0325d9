//! dockhand's own checks against a container: the `health.http` / `health.tcp` probes that gate
//! a new version, the `release.smoke` checks, and the HTTP GET (hyper's client) they and the
//! Traefik API queries share.
//!
//! HTTP and TCP probes run from the host against the container's address on its network (the
//! proxy network for a blue/green service), so they need nothing in the image; `cmd` checks
//! run with exec as the container's own user, as Docker's healthcheck does.

use std::time::{Duration, Instant};

use bollard::Docker;

use super::container::step;
use super::hooks;
use super::progress::Progress;
use super::ApplyError;
use crate::spec::{DesiredContainer, ProbeSpec};

/// How often a gate polls: readiness is noticed within this plus one probe's time.
pub const POLL: Duration = Duration::from_millis(100);

/// The answers a probe reads at most: enough for a JSON readiness document.
const BODY_LIMIT: u64 = 64 * 1024;

/// The network a container's probes use: the proxy network of a blue/green service, else its
/// first network (None: whichever it has).
pub fn network_of(c: &DesiredContainer) -> Option<&str> {
    c.blue_green
        .as_ref()
        .and_then(|b| b.proxy_network.as_deref())
        .or_else(|| c.spec.networks.first().map(String::as_str))
}

/// The container's IP address on `network` (or on any network it has).
pub async fn address(
    docker: &Docker,
    name: &str,
    network: Option<&str>,
) -> Result<String, ApplyError> {
    let info = docker
        .inspect_container(name, None)
        .await
        .map_err(step(name, "inspect"))?;
    let nets = info
        .network_settings
        .and_then(|n| n.networks)
        .unwrap_or_default();
    let endpoint = match network {
        Some(n) => nets.get(n).cloned(),
        None => nets.values().next().cloned(),
    };
    endpoint
        .and_then(|e| e.ip_address)
        .filter(|ip| !ip.is_empty())
        .ok_or_else(|| ApplyError::Step {
            container: name.to_string(),
            what: "finding its address",
            source: super::StepError::Check(format!(
                "it has no IP address on {}",
                network.unwrap_or("any network")
            )),
        })
}

/// One HTTP/1.1 GET of `path` from `addr` (`host:port`), through hyper's client on a
/// connection of its own (`Connection: close`): (status, body). The body is cut at `limit`
/// bytes (lossily decoded as UTF-8); connecting, sending and reading all share `timeout`.
///
/// # Errors
/// A message naming `addr`: no connection, no answer within `timeout`, or not HTTP.
pub async fn http_get(
    addr: &str,
    path: &str,
    timeout: Duration,
    limit: u64,
) -> Result<(u16, String), String> {
    let req = hyper::Request::get(path)
        .header(hyper::header::HOST, addr)
        .header(hyper::header::USER_AGENT, "dockhand")
        .header(hyper::header::CONNECTION, "close")
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .map_err(|e| format!("{addr}: GET {path}: {e}"))?;
    http_exchange(addr, req, timeout, limit).await
}

/// Sends `req` to `addr` (`host:port`) on a connection of its own, as [`http_get`] does (the
/// caller sets `Host` and `Connection: close`); the probes' GET and the notifications' POST
/// share it.
///
/// # Errors
/// As [`http_get`].
pub async fn http_exchange(
    addr: &str,
    req: hyper::Request<http_body_util::Full<bytes::Bytes>>,
    timeout: Duration,
    limit: u64,
) -> Result<(u16, String), String> {
    use http_body_util::BodyExt;
    use hyper::body::Body as _;
    let io = async {
        let stream = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| format!("{addr}: {e}"))?;
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                .await
                .map_err(|e| format!("{addr}: {e}"))?;
        // The connection is driven beside the request, and stopped with this future (at the
        // limit, or when the timeout drops it) so a silent server holds no socket.
        let _driver = AbortOnDrop(tokio::spawn(conn));
        let answer = sender
            .send_request(req)
            .await
            .map_err(|e| format!("{addr} did not answer HTTP ({e})"))?;
        let status = answer.status().as_u16();
        let mut body = answer.into_body();
        let mut buf = Vec::new();
        while (buf.len() as u64) < limit && !body.is_end_stream() {
            match body.frame().await {
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        buf.extend_from_slice(&data);
                    }
                }
                Some(Err(e)) => return Err(format!("{addr}: reading the answer: {e}")),
                None => break,
            }
        }
        buf.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
        Ok((status, String::from_utf8_lossy(&buf).into_owned()))
    };
    tokio::time::timeout(timeout, io)
        .await
        .map_err(|_| format!("no answer from {addr} within {:.1}s", timeout.as_secs_f64()))?
}

/// Aborts a spawned task when dropped.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Runs one probe against container `name` (address `ip`): Ok, or why it failed.
pub async fn check(
    docker: &Docker,
    name: &str,
    ip: &str,
    probe: &ProbeSpec,
    timeout: Duration,
) -> Result<(), String> {
    match probe {
        ProbeSpec::Http {
            port,
            path,
            status,
            body,
        } => {
            let (got, text) = http_get(&format!("{ip}:{port}"), path, timeout, BODY_LIMIT).await?;
            if !status.contains(&got) {
                return Err(format!("{probe}: answered {got}"));
            }
            match body {
                Some(want) if !text.contains(want.as_str()) => Err(format!(
                    "{probe}: answered {got} without {want:?} in its body (starts {:?})",
                    text.chars().take(80).collect::<String>()
                )),
                _ => Ok(()),
            }
        }
        ProbeSpec::Tcp { port } => {
            let addr = format!("{ip}:{port}");
            match tokio::time::timeout(timeout, tokio::net::TcpStream::connect(&addr)).await {
                Ok(Ok(_)) => Ok(()),
                Ok(Err(e)) => Err(format!("{probe}: {e}")),
                Err(_) => Err(format!("{probe}: no connection within {timeout:?}")),
            }
        }
        ProbeSpec::Exec { command } => {
            let run = hooks::exit_code(docker, name, command, None);
            match tokio::time::timeout(timeout, run).await {
                Ok(Some(0)) => Ok(()),
                Ok(Some(code)) => Err(format!("{probe} exited with {code}")),
                Ok(None) => Err(format!("{probe} could not be run")),
                Err(_) => Err(format!("{probe} did not finish within {timeout:?}")),
            }
        }
    }
}

/// Polls `probes` (all must pass in the same round) every [`POLL`] until they pass, the
/// container stops, or `deadline` runs out.
pub async fn wait_pass(
    docker: &Docker,
    name: &str,
    network: Option<&str>,
    probes: &[ProbeSpec],
    deadline: Duration,
    progress: &Progress,
) -> Result<(), ApplyError> {
    if probes.is_empty() {
        return Ok(());
    }
    let ip = address(docker, name, network).await?;
    let started = Instant::now();
    let mut announced = started;
    loop {
        let mut failed = None;
        for p in probes {
            if let Err(why) = check(docker, name, &ip, p, Duration::from_secs(2)).await {
                failed = Some(why);
                break;
            }
        }
        let Some(last) = failed else {
            progress.line(&format!(
                "{name}: ready after {:.2}s (dockhand's probes)",
                started.elapsed().as_secs_f64()
            ));
            return Ok(());
        };
        let info = docker
            .inspect_container(name, None)
            .await
            .map_err(step(name, "inspect"))?;
        if info.state.and_then(|s| s.running) != Some(true) {
            return Err(ApplyError::Unhealthy {
                container: name.to_string(),
                message: format!("it stopped before it became ready (last probe: {last})"),
            });
        }
        if started.elapsed() > deadline {
            return Err(ApplyError::Unhealthy {
                container: name.to_string(),
                message: format!("not ready after {:.0}s: {last}", deadline.as_secs_f64()),
            });
        }
        if announced.elapsed() > Duration::from_secs(2) {
            announced = Instant::now();
            progress.line(&format!(
                "{name}: waiting for ready ({:.0}s): {last}",
                started.elapsed().as_secs_f64()
            ));
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Runs each of `c`'s smoke checks once against container `name`, in order; the first failure
/// is the error.
pub async fn smoke(
    docker: &Docker,
    c: &DesiredContainer,
    name: &str,
    progress: &Progress,
) -> Result<(), ApplyError> {
    if c.smoke.is_empty() {
        return Ok(());
    }
    let ip = address(docker, name, network_of(c)).await?;
    for s in &c.smoke {
        let timeout = Duration::from_millis(s.timeout_ms);
        let outcome = progress
            .step(name, &s.label, check(docker, name, &ip, &s.probe, timeout))
            .await;
        if let Err(message) = outcome {
            return Err(ApplyError::Smoke {
                container: name.to_string(),
                check: s.label.clone(),
                message,
            });
        }
        progress.line(&format!("{name}: {} passed ({})", s.label, s.probe));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Serves `answer` to every connection on a loopback port; returns the port.
    async fn serve(answer: &'static str) -> u16 {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf).await;
                let _ = s.write_all(answer.as_bytes()).await;
            }
        });
        port
    }

    fn http(port: u16, status: &[u16], body: Option<&str>) -> ProbeSpec {
        ProbeSpec::Http {
            port,
            path: "/readyz".into(),
            status: status.to_vec(),
            body: body.map(str::to_string),
        }
    }

    // No Engine is needed for HTTP and TCP probes; the Docker client is never called.
    fn docker() -> Docker {
        Docker::connect_with_http("http://127.0.0.1:9", 1, bollard::API_DEFAULT_VERSION).unwrap()
    }

    #[tokio::test]
    async fn http_probe_matches_status_list_and_body() {
        let ready = serve("HTTP/1.0 200 OK\r\n\r\n{\"ready\": true}").await;
        let degraded = serve("HTTP/1.1 503 Service Unavailable\r\n\r\ndegraded").await;
        let d = docker();
        let t = Duration::from_secs(2);
        let run = |p: ProbeSpec| {
            let d = d.clone();
            async move { check(&d, "x", "127.0.0.1", &p, t).await }
        };
        assert!(run(http(ready, &[200], Some("\"ready\": true")))
            .await
            .is_ok());
        let why = run(http(ready, &[200], Some("\"ready\": false")))
            .await
            .unwrap_err();
        assert!(why.contains("without"), "{why}");
        let why = run(http(degraded, &[200], None)).await.unwrap_err();
        assert!(why.contains("answered 503"), "{why}");
        assert!(run(http(degraded, &[200, 503], None)).await.is_ok());
    }

    #[tokio::test]
    async fn answers_are_cut_at_the_limit_and_silence_times_out() {
        let long: &'static str = Box::leak(
            format!(
                "HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n{}",
                "x".repeat(100_000)
            )
            .into_boxed_str(),
        );
        let port = serve(long).await;
        let (status, body) = http_get(
            &format!("127.0.0.1:{port}"),
            "/",
            Duration::from_secs(2),
            1000,
        )
        .await
        .unwrap();
        assert_eq!((status, body.len()), (200, 1000));
        // Accepts, reads the request, never answers.
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let silent = l.local_addr().unwrap().port();
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((s, _)) = l.accept().await {
                held.push(s);
            }
        });
        let started = std::time::Instant::now();
        let why = http_get(
            &format!("127.0.0.1:{silent}"),
            "/",
            Duration::from_millis(300),
            1000,
        )
        .await
        .unwrap_err();
        assert!(
            why.contains("no answer") && started.elapsed() < Duration::from_secs(2),
            "{why}"
        );
        let why = http_get(
            &format!("127.0.0.1:{}", serve("SSH-2.0-OpenSSH\r\n").await),
            "/",
            Duration::from_secs(2),
            1000,
        )
        .await
        .unwrap_err();
        assert!(why.contains("did not answer HTTP"), "{why}");
    }

    #[tokio::test]
    async fn tcp_probe_and_closed_ports() {
        let open = serve("").await;
        let closed = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let d = docker();
        let t = Duration::from_secs(2);
        assert!(
            check(&d, "x", "127.0.0.1", &ProbeSpec::Tcp { port: open }, t)
                .await
                .is_ok()
        );
        assert!(
            check(&d, "x", "127.0.0.1", &ProbeSpec::Tcp { port: closed }, t)
                .await
                .is_err()
        );
        assert!(check(&d, "x", "127.0.0.1", &http(closed, &[200], None), t)
            .await
            .is_err());
    }
}
