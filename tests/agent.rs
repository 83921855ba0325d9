//! `dockhand run` against the real Engine: drift is corrected from Docker events (not the
//! periodic resync, set to a minute here), an edited desired state converges after a poll, an
//! invalid edit changes nothing, and SIGTERM stops the agent with the service still running.

mod support;

use std::io::BufRead;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use support::{docker, docker_ok, Stack};

/// A running agent; its stderr lines are collected; killed on drop.
struct Agent {
    child: std::process::Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Agent {
    fn start(s: &Stack) -> Agent {
        let mut child = s.spawn_dockhand(&["run", "--poll", "1s", "--resync", "60s"]);
        let stderr = child.stderr.take().expect("stderr");
        let lines: Arc<Mutex<Vec<String>>> = Arc::default();
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                sink.lock().unwrap().push(line);
            }
        });
        Agent { child, lines }
    }

    fn log(&self) -> String {
        self.lines.lock().unwrap().join("\n")
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn inspect(name: &str, format: &str) -> Option<String> {
    let out = docker(&["inspect", "--format", format, name]);
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Waits until `check` holds; returns how long it took.
fn wait_until(what: &str, agent: &Agent, within: Duration, check: impl Fn() -> bool) -> Duration {
    let started = Instant::now();
    while !check() {
        assert!(
            started.elapsed() < within,
            "{what}: not within {within:?}; agent said:\n{}",
            agent.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    started.elapsed()
}

#[test]
fn agent_corrects_drift_follows_edits_refuses_bad_ones_and_stops_cleanly() {
    let s = Stack::new("agent");
    let (v1, v2) = (s.image("v1"), s.image("v2"));
    let web = s.container("web");
    let body =
        |img: &str| format!("services:\n  web:\n    image: {img}\n    stop_grace_period: 1s\n");
    s.write(&body(&v1));
    let agent = Agent::start(&s);
    let running = || inspect(&web, "{{.State.Running}}").as_deref() == Some("true");
    wait_until(
        "first convergence",
        &agent,
        Duration::from_secs(60),
        running,
    );

    docker_ok(&["stop", "-t", "1", &web]);
    let took = wait_until(
        "restart after docker stop",
        &agent,
        Duration::from_secs(15),
        running,
    );
    eprintln!("docker stop corrected in {took:?}");

    let before = inspect(&web, "{{.Id}}").unwrap();
    docker_ok(&["rm", "-f", &web]);
    let took = wait_until(
        "re-create after docker rm -f",
        &agent,
        Duration::from_secs(15),
        || running() && inspect(&web, "{{.Id}}").is_some_and(|id| id != before),
    );
    eprintln!("docker rm -f corrected in {took:?}");

    // A half-written file: reported, nothing changes.
    let id = inspect(&web, "{{.Id}}").unwrap();
    s.write("services: [half written\n");
    wait_until(
        "the bad edit is reported",
        &agent,
        Duration::from_secs(15),
        || agent.log().contains("desired state not applied"),
    );
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(inspect(&web, "{{.Id}}").as_deref(), Some(id.as_str()));
    assert!(running());

    // The next valid edit is applied.
    s.write(&body(&v2));
    let digest = v2.split_once('@').unwrap().1.to_string();
    let took = wait_until(
        "the new image runs",
        &agent,
        Duration::from_secs(60),
        || running() && inspect(&web, "{{.Config.Image}}").is_some_and(|i| i.ends_with(&digest)),
    );
    eprintln!("edit converged in {took:?} (poll 1s)");

    // SIGTERM: the agent exits 0 and leaves the service serving.
    let pid = agent.child.id().to_string();
    assert!(std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let mut agent = agent;
    let status = agent.child.wait().unwrap();
    assert!(status.success(), "{status:?}\n{}", agent.log());
    assert!(
        agent.log().contains("dockhand agent: stopped"),
        "{}",
        agent.log()
    );
    assert!(running());

    let h = s.dockhand(&["history", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&h.stdout).unwrap();
    let triggers: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["trigger"].as_str().unwrap_or_default())
        .collect();
    assert!(
        triggers.iter().any(|t| t.contains("engine:")),
        "drift corrections are recorded with the event that caused them: {triggers:?}"
    );
    assert!(
        triggers.iter().all(|t| t.starts_with("agent (")),
        "{triggers:?}"
    );
}

#[test]
fn a_crash_looping_service_is_corrected_with_back_off_not_in_a_hot_loop() {
    let s = Stack::new("crashloop");
    let img = s.image("v1");
    // No restart policy of Docker's: every restart is dockhand's correction.
    s.write(&format!(
        "services:\n  web:\n    image: {img}\n    restart: \"no\"\n    command: [sh, -c, 'sleep 0.3; exit 3']\n"
    ));
    let agent = Agent::start(&s);
    let watch = Duration::from_secs(20);
    std::thread::sleep(watch);
    let h = s.dockhand(&["history", "--json", "-n", "1000"]);
    let v: serde_json::Value = serde_json::from_str(&h.stdout).unwrap();
    let deploys = v.as_array().unwrap().len();
    eprintln!("{deploys} deploys in {watch:?} for a container that dies 0.3 s after each start");
    // Without back-off each pass takes well under a second: 30+ in 20 s. With it the passes go
    // at 0, 0, 1, 2, 4, 8 s … after the previous one.
    assert!(
        deploys >= 3,
        "it kept correcting: {deploys}\n{}",
        agent.log()
    );
    assert!(
        deploys <= 10,
        "hot loop: {deploys} deploys in {watch:?}\n{}",
        agent.log()
    );
    assert!(agent.log().contains("degraded: "), "{}", agent.log());
}
