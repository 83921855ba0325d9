//! Notifications (issue 20 item 1) against the real Engine and HTTP receivers on 127.0.0.1
//! that this test runs: a failed first deploy is told once to a signed JSON webhook (the
//! signature checked here with the key) and to a Slack-compatible one, with no secret value
//! in any body; a receiver that answers 500 gets bounded retries with back-off while the
//! agent's pass is not held up by them.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use sha2::Sha256;
use support::agent::{get, Agent};
use support::Stack;

/// One request a receiver got: headers (lower-case names), body, and when (Unix ms).
#[derive(Debug, Clone)]
struct Received {
    path: String,
    headers: Vec<(String, String)>,
    body: String,
    at_ms: u128,
}

impl Received {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// An HTTP/1.1 receiver on 127.0.0.1 that answers every request with `status`.
struct Receiver {
    addr: String,
    got: Arc<Mutex<Vec<Received>>>,
}

impl Receiver {
    fn start(status: u16) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let got: Arc<Mutex<Vec<Received>>> = Arc::default();
        let seen = got.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                stream
                    .set_read_timeout(Some(Duration::from_secs(5)))
                    .unwrap();
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                let path = line.split(' ').nth(1).unwrap_or_default().to_string();
                let mut headers = Vec::new();
                loop {
                    let mut h = String::new();
                    reader.read_line(&mut h).unwrap();
                    let h = h.trim_end();
                    if h.is_empty() {
                        break;
                    }
                    let (k, v) = h.split_once(':').unwrap();
                    headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
                }
                let len: usize = headers
                    .iter()
                    .find(|(k, _)| k == "content-length")
                    .map_or(0, |(_, v)| v.parse().unwrap());
                let mut body = vec![0; len];
                reader.read_exact(&mut body).unwrap();
                seen.lock().unwrap().push(Received {
                    path,
                    headers,
                    body: String::from_utf8(body).unwrap(),
                    at_ms: SystemTime::now()
                        .duration_since(UNIX_EPOCH)
                        .unwrap()
                        .as_millis(),
                });
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                );
            }
        });
        Receiver { addr, got }
    }

    fn got(&self) -> Vec<Received> {
        self.got.lock().unwrap().clone()
    }

    /// Waits until `n` requests arrived (or `within` passed), then returns all of them.
    fn wait_for(&self, n: usize, within: Duration) -> Vec<Received> {
        let t = Instant::now();
        while self.got().len() < n && t.elapsed() < within {
            std::thread::sleep(Duration::from_millis(50));
        }
        self.got()
    }
}

fn verify(secret: &str, r: &Received) {
    let ts = r.header("x-dockhand-timestamp").expect("timestamp header");
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{ts}.{}", r.body).as_bytes());
    let want = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    assert_eq!(
        r.header("x-dockhand-signature"),
        Some(want.as_str()),
        "{r:?}"
    );
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let ts: u64 = ts.parse().unwrap();
    assert!(now.abs_diff(ts) < 120, "a fresh timestamp: {ts} vs {now}");
}

const SECRET_ENV: &str = "s3cr3t-env-value-9f8e7d";
const HMAC_KEY: &str = "hmac-key-never-in-a-body-41c2";

/// The host's notification file, with the webhook key beside it.
fn notify_file(s: &Stack, webhook: &str, slack: Option<&str>) -> String {
    let dir = s.state_dir();
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("notify.key"), format!("{HMAC_KEY}\n")).unwrap();
    let mut text = format!(
        "sinks:\n  - name: ops\n    type: webhook\n    url: http://{webhook}/hooks/dockhand\n    secret_file: notify.key\n"
    );
    if let Some(slack) = slack {
        text += &format!("  - name: chat\n    type: slack\n    url: http://{slack}/hooks/abc123\n");
    }
    let path = dir.join("notify.yaml");
    std::fs::write(&path, text).unwrap();
    path.to_string_lossy().to_string()
}

/// One service `web` with a secret env value; `healthy: false`: a health check that always
/// fails, so its first deploy never gets healthy.
fn write_web(s: &Stack, healthy: bool) {
    let img = s.image("v1");
    let health = if healthy {
        ""
    } else {
        "    health: {cmd: ['false'], interval: 1s, timeout: 1s, retries: 1}\n    stop_grace_period: 1s\n"
    };
    s.write(&format!(
        "services:\n  web:\n    image: {img}\n    env: {{TOKEN: {SECRET_ENV}}}\n{health}"
    ));
}

/// A first deploy that never gets healthy (a failed release with nothing to roll back to,
/// so its revision is quarantined) is told exactly once to each sink: a signed JSON body that
/// names the deploy, revision, service, outcome and reason, and a Slack `{"text"}` line; no
/// env value and no key in either.
#[test]
fn a_failed_first_deploy_is_told_once_signed_and_without_secrets() {
    let s = Stack::new("notifyfail");
    write_web(&s, false);
    let hook = Receiver::start(204);
    let chat = Receiver::start(200);
    let file = notify_file(&s, &hook.addr, Some(&chat.addr));
    let run = s.dockhand(&["apply", "--yes", "--notify", &file]);
    assert_eq!(run.code, 1, "{run:?}");

    // The CLI waits for its deliveries before it exits; nothing more may come.
    std::thread::sleep(Duration::from_millis(500));
    let got = hook.got();
    assert_eq!(got.len(), 1, "exactly one notification: {got:#?}");
    let r = &got[0];
    assert_eq!(r.path, "/hooks/dockhand");
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.header("x-dockhand-event"), Some("quarantined"));
    verify(HMAC_KEY, r);
    let n: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(n["version"], 1, "{n:#}");
    assert_eq!(n["event"], "quarantined", "{n:#}");
    assert_eq!(n["project"], s.name.as_str(), "{n:#}");
    assert_eq!(n["outcome"], "failed", "{n:#}");
    assert_eq!(
        n["services"],
        serde_json::json!([format!("{}/web", s.name)])
    );
    assert!(
        n["revision"]
            .as_str()
            .is_some_and(|r| r.starts_with("worktree:")),
        "{n:#}"
    );
    let reason = n["reason"].as_str().unwrap();
    assert!(
        reason.contains("healthy") && !reason.contains('\n'),
        "{reason}"
    );
    assert!(n["at"].as_str().unwrap().ends_with('Z'), "{n:#}");
    // The deploy id is the record's.
    let h = s.dockhand(&["history", "--json"]);
    let history: serde_json::Value = serde_json::from_str(&h.stdout).unwrap();
    let deploys = &history["deploys"];
    assert!(deploys[0]["id"].is_u64(), "{history:#}");
    assert_eq!(n["deploy"], deploys[0]["id"], "{history:#}");

    let slack = chat.got();
    assert_eq!(slack.len(), 1, "{slack:#?}");
    assert_eq!(slack[0].path, "/hooks/abc123");
    assert!(slack[0].header("x-dockhand-signature").is_none());
    let text: serde_json::Value = serde_json::from_str(&slack[0].body).unwrap();
    let obj = text.as_object().unwrap();
    assert_eq!(obj.keys().collect::<Vec<_>>(), ["text"], "{text:#}");
    let line = obj["text"].as_str().unwrap();
    assert!(
        line.starts_with(&format!("dockhand [{}] quarantined: deploy #", s.name))
            && line.contains(&format!("{}/web", s.name)),
        "{line}"
    );

    for r in got.iter().chain(&slack) {
        assert!(
            !r.body.contains(SECRET_ENV),
            "env value in a body: {}",
            r.body
        );
        assert!(!r.body.contains(HMAC_KEY), "key in a body: {}", r.body);
        for (_, v) in &r.headers {
            assert!(!v.contains(SECRET_ENV) && !v.contains(HMAC_KEY), "{v}");
        }
    }
}

/// A receiver that answers 500: the delivery is tried 4 times (1 s, 2 s, 4 s apart) and then
/// given up, shown on /status and /metrics; the agent's pass ended (recorded in sync) right
/// after the first attempt, not after the retries.
#[test]
fn a_failing_receiver_gets_bounded_retries_and_does_not_hold_up_the_pass() {
    let s = Stack::new("notifyretry");
    write_web(&s, true);
    let hook = Receiver::start(500);
    let file = notify_file(&s, &hook.addr, None);
    let agent = Agent::start(&s, &["--poll", "60s", "--resync", "60s", "--notify", &file]);
    let addr = agent.addr();
    agent.wait_in_sync(&addr, Duration::from_secs(60));
    let status: serde_json::Value = serde_json::from_str(&get(&addr, "/status")).unwrap();
    // Whole seconds (RFC 3339 as /status writes it): truncated, so it can only make the pass
    // look earlier by < 1 s; a pass that waited for the receiver is ≥ 7 s late.
    let synced_ms = unix_ms(status["last_sync_at"].as_str().unwrap()) as u128;

    let got = hook.wait_for(4, Duration::from_secs(30));
    // Nothing after the last try.
    std::thread::sleep(Duration::from_secs(3));
    let got_after = hook.got();
    assert_eq!(got_after.len(), 4, "1 try + 3 retries: {got_after:#?}");
    assert_eq!(got.len(), 4);
    for r in &got {
        assert_eq!(r.header("x-dockhand-event"), Some("deploy-succeeded"));
        verify(HMAC_KEY, r);
        assert!(!r.body.contains(SECRET_ENV) && !r.body.contains(HMAC_KEY));
    }
    let gaps: Vec<u128> = got.windows(2).map(|w| w[1].at_ms - w[0].at_ms).collect();
    for (gap, want) in gaps.iter().zip([1000u128, 2000, 4000]) {
        assert!(
            *gap >= want - 50 && *gap < want + 1500,
            "back-off 1 s, 2 s, 4 s: {gaps:?}"
        );
    }
    // The pass was recorded in sync before the first retry: it did not wait for the receiver
    // (a pass that waited would be recorded ≥ 7 s after the first attempt).
    let first = got[0].at_ms;
    println!(
        "pass recorded {} ms after the first attempt; attempts at +{gaps:?} ms",
        synced_ms as i128 - first as i128
    );
    assert!(
        synced_ms < first + 1000,
        "pass recorded at {synced_ms}, first attempt at {first}, retries {gaps:?}"
    );

    let status: serde_json::Value = serde_json::from_str(&get(&addr, "/status")).unwrap();
    let ops = &status["notifications"]["ops"];
    assert_eq!(ops["kind"], "webhook", "{status:#}");
    assert_eq!(ops["last"]["ok"], false, "{status:#}");
    assert_eq!(ops["last"]["attempts"], 4, "{status:#}");
    assert_eq!(ops["last"]["event"], "deploy-succeeded", "{status:#}");
    assert_eq!(ops["last"]["error"], "HTTP 500", "{status:#}");
    let metrics = get(&addr, "/metrics");
    assert!(
        metrics.contains("dockhand_notifications_total{sink=\"ops\",result=\"error\"} 1\n")
            && metrics.contains("dockhand_notifications_total{sink=\"ops\",result=\"ok\"} 0\n"),
        "{metrics}"
    );
}

/// The agent with a first deploy that never gets healthy: the deploy is told once
/// (`quarantined`), then `degraded` once when its re-checks find the container unhealthy —
/// not again on each re-check while it stays so.
#[test]
fn the_agent_tells_a_quarantined_deploy_and_degraded_once_each() {
    let s = Stack::new("notifysick");
    write_web(&s, false);
    let hook = Receiver::start(200);
    let file = notify_file(&s, &hook.addr, None);
    let agent = Agent::start(&s, &["--poll", "60s", "--resync", "60s", "--notify", &file]);
    hook.wait_for(2, Duration::from_secs(60));
    // Re-checks go on (1 s, 2 s, 4 s apart): nothing more is told.
    std::thread::sleep(Duration::from_secs(6));
    let got = hook.got();
    let events: Vec<&str> = got
        .iter()
        .map(|r| r.header("x-dockhand-event").unwrap())
        .collect();
    assert_eq!(
        events,
        ["quarantined", "degraded"],
        "{got:#?}\n{}",
        agent.log()
    );
    for r in &got {
        verify(HMAC_KEY, r);
        assert!(!r.body.contains(SECRET_ENV) && !r.body.contains(HMAC_KEY));
        let n: serde_json::Value = serde_json::from_str(&r.body).unwrap();
        assert_eq!(
            n["services"],
            serde_json::json!([format!("{}/web", s.name)])
        );
    }
    let degraded: serde_json::Value = serde_json::from_str(&got[1].body).unwrap();
    assert!(
        degraded["reason"]
            .as_str()
            .is_some_and(|r| r.contains("is not healthy")),
        "{degraded:#}"
    );
    assert_eq!(degraded["deploy"], serde_json::Value::Null);
}

/// Unix milliseconds of an RFC 3339 UTC time `YYYY-MM-DDTHH:MM:SSZ` (days from civil, Howard
/// Hinnant's algorithm).
fn unix_ms(t: &str) -> i64 {
    let n = |r: std::ops::Range<usize>| -> i64 { t[r].parse().unwrap_or_else(|_| panic!("{t}")) };
    assert!(t.len() == 20 && t.ends_with('Z'), "RFC 3339 UTC: {t}");
    let (y, m, d) = (n(0..4), n(5..7), n(8..10));
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    (days * 86_400 + n(11..13) * 3600 + n(14..16) * 60 + n(17..19)) * 1000
}
