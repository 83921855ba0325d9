//! The agent's `/metrics` on the real Engine (issue 20 item 5): the text passes `promtool
//! check metrics` (Prometheus' own parser and linter), the per-service gauges follow a service
//! stopped by hand and one that falls ill and both recover, `dockhand_build_info` names the
//! commit, and the `process_*` metrics describe the agent's process.

mod support;

use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use support::agent::{get, Agent};
use support::{docker_ok, Stack};

/// The text parsed and linted by `promtool check metrics` (`$DOCKHAND_PROMTOOL`, else the one
/// scripts/test-env.sh takes out of Debian's `prometheus` package); fails the test with
/// promtool's complaints.
fn promtool_check(text: &str) {
    let promtool = std::env::var("DOCKHAND_PROMTOOL")
        .unwrap_or_else(|_| "/var/tmp/dockhand-test-env/bin/promtool".into());
    let mut child = Command::new(&promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{promtool}: {e}; scripts/test-env.sh installs it"));
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics refused the text:\n{}{}\n--- text:\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Every sample of the text, `name{labels}` → value (promtool checked the syntax; labels are
/// kept as written, in the order the agent writes them).
fn samples(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            Some((series.to_string(), value.parse().ok()?))
        })
        .collect()
}

/// The five gauges of one service, in the order in_sync, healthy, degraded, quarantined, held.
fn service(m: &BTreeMap<String, f64>, stack: &str, name: &str) -> [f64; 5] {
    ["in_sync", "healthy", "degraded", "quarantined", "held"].map(|g| {
        m.get(&format!(
            "dockhand_service_{g}{{stack=\"{stack}\",service=\"{name}\"}}"
        ))
        .copied()
        .unwrap_or(f64::NAN)
    })
}

fn scrape(addr: &str) -> BTreeMap<String, f64> {
    samples(&get(addr, "/metrics"))
}

fn hangup(agent: &Agent) {
    let hup = Command::new("kill")
        .args(["-HUP", &agent.child.id().to_string()])
        .status()
        .unwrap();
    assert!(hup.success());
}

fn wait_for(agent: &Agent, what: &str, within: Duration, check: impl Fn() -> bool) -> Duration {
    let t = Instant::now();
    while !check() {
        assert!(
            t.elapsed() < within,
            "{what}: not within {within:?}; agent said:\n{}",
            agent.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    t.elapsed()
}

#[test]
fn service_gauges_follow_a_stopped_and_an_unhealthy_service_and_the_text_is_valid() {
    let s = Stack::new("metrics");
    let img = s.image("v1");
    // `drift: report`: a service stopped by hand stays stopped (reported), so the gauges can
    // be seen saying so; a SIGHUP (an operator's pass) then starts it.
    s.write(&format!(
        "drift: report\nservices:\n  web:\n    image: {img}\n    health: {{cmd: [sh, -c, 'test ! -e /tmp/sick'], interval: 1s, timeout: 1s, retries: 1}}\n    stop_grace_period: 1s\n  api:\n    image: {img}\n    stop_grace_period: 1s\n"
    ));
    let started = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    // No resync within the test: every pass below is one the test caused (an Engine event, a
    // SIGHUP) or the agent's own re-check of an unhealthy container.
    let agent = Agent::start(&s, &["--poll", "60s", "--resync", "60s"]);
    let addr = agent.addr();
    let stack = s.name.as_str();
    let all_good = [1.0, 1.0, 0.0, 0.0, 0.0];
    let took = wait_for(
        &agent,
        "both services in sync",
        Duration::from_secs(60),
        || {
            let m = scrape(&addr);
            service(&m, stack, "web") == all_good && service(&m, stack, "api") == all_good
        },
    );
    eprintln!("in sync and healthy on /metrics {took:?} after the agent's port opened");
    let text = get(&addr, "/metrics");
    promtool_check(&text);

    // dockhand_build_info: the commit this test binary's crate was built from.
    let head = Command::new("git")
        .args(["rev-parse", "--verify", "-q", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    let commit = if head.status.success() {
        String::from_utf8(head.stdout).unwrap().trim().to_string()
    } else {
        "unknown".to_string()
    };
    let m = samples(&text);
    let info = format!(
        "dockhand_build_info{{version=\"{}\",commit=\"{commit}\"}}",
        env!("CARGO_PKG_VERSION")
    );
    assert_eq!(m.get(&info), Some(&1.0), "{info} in:\n{text}");

    // process_*: the agent's own process, as /proc says.
    let (rss, _) = agent.usage();
    let resident = m["process_resident_memory_bytes"];
    assert!(
        resident > 1e6 && (resident - rss as f64).abs() < 0.5 * rss as f64,
        "RSS {resident} on /metrics, {rss} in /proc"
    );
    let start = m["process_start_time_seconds"];
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(
        start >= started - 1.0 && start <= now && now - start < 60.0,
        "start time {start}, test started the agent at {started}, now {now}"
    );
    assert!(m["process_cpu_seconds_total"] > 0.0, "{text}");
    let fds = m["process_open_fds"];
    assert!(fds >= 5.0 && fds <= m["process_max_fds"], "{text}");

    // Stopped by hand: reported (drift: report), not in sync, not healthy.
    let api = s.container("api");
    docker_ok(&["stop", "-t", "1", &api]);
    wait_for(
        &agent,
        "api stopped on /metrics",
        Duration::from_secs(15),
        || service(&scrape(&addr), stack, "api") == [0.0, 0.0, 0.0, 0.0, 0.0],
    );
    assert_eq!(service(&scrape(&addr), stack, "web"), all_good);
    // An operator's pass applies the stack, and the gauges recover with that deploy (no later
    // pass comes: a `start` is not an event the agent follows).
    hangup(&agent);
    wait_for(&agent, "api back in sync", Duration::from_secs(30), || {
        service(&scrape(&addr), stack, "api") == all_good
    });

    // Falls ill: degraded, neither healthy nor in sync; the other service is unaffected.
    let web = s.container("web");
    docker_ok(&["exec", &web, "touch", "/tmp/sick"]);
    wait_for(
        &agent,
        "Docker calls web unhealthy",
        Duration::from_secs(20),
        || docker_ok(&["inspect", "--format", "{{.State.Health.Status}}", &web]) == "unhealthy",
    );
    // Docker's health events wake no pass; an operator's pass looks.
    hangup(&agent);
    wait_for(
        &agent,
        "web unhealthy on /metrics",
        Duration::from_secs(20),
        || service(&scrape(&addr), stack, "web") == [0.0, 0.0, 1.0, 0.0, 0.0],
    );
    assert_eq!(service(&scrape(&addr), stack, "api"), all_good);
    promtool_check(&get(&addr, "/metrics"));
    let healed = support::docker(&["exec", &web, "/bin/busybox", "rm", "-f", "/tmp/sick"]);
    assert!(
        healed.status.success(),
        "{healed:?}; {}; agent said:\n{}",
        docker_ok(&["ps", "-a", "--filter", &format!("name={web}")]),
        agent.log()
    );
    let back = wait_for(&agent, "web healthy again", Duration::from_secs(30), || {
        service(&scrape(&addr), stack, "web") == all_good
    });
    eprintln!("web healthy again on /metrics {back:?} after the cause was removed");
}
