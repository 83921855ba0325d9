//! Agent benchmark (issue 5's performance targets), run with `cargo bench --bench agent`:
//!
//! - **drift**: the Engine's own timestamps (its events stream) from the event that ends a
//!   hand-made change (`stop` after `docker stop`, `destroy` after `docker rm -f`, `create` of a
//!   hand-made replacement) to the first event of dockhand's correction (`start`, `create`,
//!   `kill`). That span is dockhand's reaction: event delivery, settle window, observe, plan,
//!   and the first API call. Target: under 50 ms.
//! - **idle**: `dockhand run` with N managed containers, left alone: resident memory and CPU
//!   (from /proc) over a window that holds polls and full resyncs. Target at 100 containers:
//!   under 15 MiB and under 0.1 % of one core.
//! - **no-op poll** of a remote: the cheap branch-head check (one round trip, no objects) timed
//!   in-process, and the agent's own counters of checks and fetches over idle polls.
//!
//! Under `cargo test --all-targets` (no `--bench`) it runs a small version (3 containers, short
//! windows) so that it cannot rot. Report: stdout and target/bench/agent.md.

#[path = "../tests/support/mod.rs"]
mod support;

use std::io::BufRead;
use std::io::{Read, Write};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use support::agent::{get, Agent};
use support::{docker_ok, Stack};

fn main() {
    let full =
        std::env::args().any(|a| a == "--bench") && !std::env::args().any(|a| a == "--smoke");
    let (containers, rounds, idle, releases) = if full {
        (100, 10, Duration::from_secs(600), 3)
    } else {
        (3, 1, Duration::from_secs(3), 1)
    };
    // DOCKHAND_BENCH_IDLE_SECS shortens (or lengthens) the idle window.
    let idle = std::env::var("DOCKHAND_BENCH_IDLE_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .map_or(idle, Duration::from_secs);
    // DOCKHAND_BENCH_ROUNDS overrides the drift rounds (to look at one figure closely).
    let rounds = std::env::var("DOCKHAND_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(rounds);
    let mut report = String::from("# dockhand agent benchmark\n\n");
    report += &format!(
        "Machine: {} CPUs, Docker Engine {}. dockhand: {}.\n\n",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        docker_ok(&["version", "--format", "{{.Server.Version}}"]),
        support::bin_description()
    );
    // `-- idle` runs only the idle window (scripts/bench.sh runs it beside the others, as it
    // takes ten minutes), `-- latency` everything else.
    let only = |what: &str| std::env::args().any(|a| a == what);
    let (latency, idle_part) = (!only("idle"), !only("latency"));
    if latency {
        report += &commit_to_serving(releases);
        report += &drift(rounds);
    }
    if idle_part {
        report += &idle_footprint(containers, idle, !latency);
    }
    if latency {
        report += &noop_poll(if full { 50 } else { 5 });
    }
    println!("{report}");
    let out = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench");
    std::fs::create_dir_all(&out).expect("mkdir target/bench");
    let file = match (latency, idle_part) {
        (false, true) => "agent-idle.md",
        (true, false) => "agent-latency.md",
        _ => "agent.md",
    };
    std::fs::write(out.join(file), &report).expect("write report");
    println!("report: {}", out.join(file).display());
}

/// The Engine's events for one container name, with the Engine's timestamps.
struct Events {
    child: Child,
    seen: Arc<Mutex<Vec<(u128, String)>>>,
}

impl Events {
    fn watch(name: &str) -> Events {
        let mut child = Command::new("docker")
            .args(["events", "--filter", &format!("container={name}")])
            .args(["--format", "{{.TimeNano}} {{.Action}}"])
            .stdout(Stdio::piped())
            .spawn()
            .expect("docker events");
        let out = child.stdout.take().expect("stdout");
        let seen: Arc<Mutex<Vec<(u128, String)>>> = Arc::default();
        let sink = seen.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
                if let Some((t, a)) = line.split_once(' ') {
                    if let Ok(t) = t.parse() {
                        sink.lock().unwrap().push((t, a.to_string()));
                    }
                }
            }
        });
        std::thread::sleep(Duration::from_millis(300));
        Events { child, seen }
    }

    fn clear(&self) {
        self.seen.lock().unwrap().clear();
    }

    /// Milliseconds from `at` (Unix ns, same clock as the Engine's) to the first `to` event.
    fn since(&self, at: u128, to: &str, within: Duration, agent: &Agent) -> f64 {
        let t = Instant::now();
        loop {
            if let Some((t2, _)) = self.seen.lock().unwrap().iter().find(|(_, a)| a == to) {
                return (*t2 as f64 - at as f64) / 1e6;
            }
            assert!(
                t.elapsed() < within,
                "no {to} in {:?}; agent said:\n{}",
                self.seen.lock().unwrap(),
                agent.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Milliseconds from the first `from` event to the first `to` event after it.
    fn span(&self, from: &str, to: &str, within: Duration) -> f64 {
        let t = Instant::now();
        loop {
            {
                let seen = self.seen.lock().unwrap();
                if let Some(i) = seen.iter().position(|(_, a)| a == from) {
                    if let Some((t2, _)) = seen[i + 1..].iter().find(|(_, a)| a == to) {
                        return (t2 - seen[i].0) as f64 / 1e6;
                    }
                }
            }
            assert!(
                t.elapsed() < within,
                "no {from} → {to} in {:?}",
                self.seen.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Events {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The agent's own figure for its last drift reaction, in ms.
fn reaction(addr: &str) -> f64 {
    get(addr, "/metrics")
        .lines()
        .find_map(|l| l.strip_prefix("dockhand_drift_reaction_last_seconds "))
        .and_then(|v| v.parse::<f64>().ok())
        .map_or(f64::NAN, |s| s * 1000.0)
}

fn stats(ms: &mut [f64]) -> (f64, f64, f64) {
    ms.sort_by(f64::total_cmp);
    let at = |q: f64| ms[((ms.len() as f64 - 1.0) * q).round() as usize];
    (at(0.5), at(0.95), ms[ms.len() - 1])
}

fn running(name: &str) -> bool {
    support::docker(&["inspect", "--format", "{{.State.Running}}", name])
        .stdout
        .starts_with(b"true")
}

fn drift(rounds: usize) -> String {
    let s = Stack::new("benchdrift");
    let img = s.image("v1");
    let other = s.image("other");
    // Each change gets a container of its own: correcting one container again and again is
    // what the back-off is there to slow down.
    let mut body = String::from("services:\n");
    for i in 0..3 * rounds {
        body += &format!("  web{i}:\n    image: {img}\n    stop_grace_period: 1s\n");
    }
    s.write(&body);
    let agent = Agent::start(&s, &["--poll", "60s", "--resync", "10m"]);
    let addr = agent.addr();
    agent.wait_in_sync(&addr, Duration::from_secs(120));
    let settle = |agent: &Agent, web: &str| {
        let t = Instant::now();
        while !running(web) {
            assert!(t.elapsed() < Duration::from_secs(30), "{}", agent.log());
            std::thread::sleep(Duration::from_millis(50));
        }
        // Let the passes that dockhand's own correction queued go by.
        std::thread::sleep(Duration::from_millis(700));
    };
    let mut rows = Vec::new();
    let mut stop = Vec::new();
    let mut rm = Vec::new();
    let mut hand = Vec::new();
    for round in 0..rounds {
        let web = s.container(&format!("web{}", 3 * round));
        let events = Events::watch(&web);
        docker_ok(&["stop", "-t", "1", &web]);
        let span = events.span("stop", "start", Duration::from_secs(30));
        stop.push((span, reaction(&addr)));
        settle(&agent, &web);

        let web = s.container(&format!("web{}", 3 * round + 1));
        let events = Events::watch(&web);
        docker_ok(&["rm", "-f", &web]);
        let span = events.span("destroy", "start", Duration::from_secs(30));
        rm.push((span, reaction(&addr)));
        settle(&agent, &web);

        // A replacement made by hand: same name and labels, another image.
        let web = s.container(&format!("web{}", 3 * round + 2));
        let events = Events::watch(&web);
        let labels = docker_ok(&[
            "inspect",
            "--format",
            "{{range $k, $v := .Config.Labels}}{{$k}}={{$v}}\n{{end}}",
            &web,
        ]);
        let mut args: Vec<String> = vec!["run".into(), "-d".into(), "--name".into(), web.clone()];
        for l in labels.lines().filter(|l| !l.is_empty()) {
            args.push("--label".into());
            args.push(l.to_string());
        }
        args.push(other.clone());
        // The agent would win the race for the name between `rm` and `run` (as it does on a
        // real host), so it is paused over the swap; the span runs from its resume.
        let pid = agent.child.id().to_string();
        assert!(Command::new("kill")
            .args(["-STOP", &pid])
            .status()
            .unwrap()
            .success());
        docker_ok(&["rm", "-f", &web]);
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        docker_ok(&argv);
        std::thread::sleep(Duration::from_millis(300));
        let created = events
            .seen
            .lock()
            .unwrap()
            .iter()
            .rev()
            .find(|(_, a)| a == "create")
            .map(|(t, _)| *t)
            .expect("the hand-made create event");
        events.clear();
        let resumed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        assert!(Command::new("kill")
            .args(["-CONT", &pid])
            .status()
            .unwrap()
            .success());
        let span = events.since(resumed, "start", Duration::from_secs(30), &agent);
        // The agent measures from the Engine's event, which came before the pause ended.
        let paused = (resumed - created) as f64 / 1e6;
        hand.push((span, reaction(&addr) - paused));
        settle(&agent, &web);
    }
    for (what, runs) in [
        ("`docker stop` (stop → start)", &stop),
        ("`docker rm -f` (destroy → start)", &rm),
        ("hand-made replacement (agent resumed → start)", &hand),
    ] {
        let mut spans: Vec<f64> = runs.iter().map(|r| r.0).collect();
        let mut own: Vec<f64> = runs.iter().map(|r| r.1).collect();
        let (s50, s95, _) = stats(&mut spans);
        let (o50, o95, omax) = stats(&mut own);
        rows.push(format!(
            "| {what} | {} | {o50:.1} | {o95:.1} | {omax:.1} | {} | {s50:.1} | {s95:.1} |\n",
            runs.len(),
            if o95 < 50.0 { "met" } else { "**missed**" }
        ));
    }
    let mut out = String::from("## 6. Drift: Engine event to correction start, and to correction done\n\n*dockhand* columns: from the Engine's event (its timestamp) to the start of the correcting apply, as the agent measures it (`dockhand_drift_reaction_last_seconds`): settle window, observe, plan. The hand-made case counts from the agent's resume (it was paused over the swap, or it would win the race for the name). *Correction done* columns: from that event to the Engine's `start` event of the corrected container (sent when the start has finished), so they hold the whole correction: preflight, create (after `rm -f` and the hand-made case, which also kills and removes the impostor) and start. Target: dockhand's part under 50 ms; the correction about one container start (the bare API's create+start is in the compare report).\n\n| change | runs | dockhand p50 ms | p95 | max | target | correction done p50 ms | p95 |\n|---|---:|---:|---:|---:|---|---:|---:|\n");
    for r in rows {
        out += &r;
    }
    out += "\n";
    out
}

fn idle_footprint(n: usize, window: Duration, beside_others: bool) -> String {
    let s = Stack::new("benchidle");
    let img = s.image("v1");
    let mut body = String::from("services:\n");
    for i in 0..n {
        body += &format!("  web{i}:\n    image: {img}\n    stop_grace_period: 1s\n");
    }
    s.write(&body);
    let t = Instant::now();
    let r = s.dockhand(&["apply", "--yes"]);
    assert_eq!(r.code, 0, "{r:?}");
    let bulk = t.elapsed().as_secs_f64();
    let agent = Agent::start(&s, &["--poll", "15s", "--resync", "60s"]);
    let addr = agent.addr();
    agent.wait_in_sync(&addr, Duration::from_secs(120));
    std::thread::sleep(Duration::from_secs(1));
    let (rss0, cpu0) = agent.usage();
    let t = Instant::now();
    eprintln!("bench: idle window started ({} s)", window.as_secs());
    let mut peak = rss0;
    while t.elapsed() < window {
        std::thread::sleep(Duration::from_millis(500));
        peak = peak.max(agent.usage().0);
    }
    let (rss1, cpu1) = agent.usage();
    let (anon, file) = (agent.status_kb("RssAnon:"), agent.status_kb("RssFile:"));
    let secs = t.elapsed().as_secs_f64();
    let cpu = (cpu1 - cpu0) / secs * 100.0;
    let metrics = get(&addr, "/metrics");
    let metric = |name: &str| -> f64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0)
    };
    let passes = metric("dockhand_reconcile_duration_seconds_count");
    let pass_ms = metric("dockhand_reconcile_duration_seconds_sum") / passes.max(1.0) * 1000.0;
    let mib = |b: u64| b as f64 / 1024.0 / 1024.0;
    format!(
        "## 7. Idle agent\n\n{n} managed containers (created by one `dockhand apply` in {bulk:.1} s), agent polling the folder every 15 s and resyncing every 60 s, left alone for {secs:.0} s{}.\n\n| measure | value | target |\n|---|---:|---|\n| RSS at start of window | {:.1} MiB | |\n| RSS at end / peak | {:.1} / {:.1} MiB | < 15 MiB: {} |\n| of which private (heap, stacks) / the binary's mapped pages | {:.1} / {:.1} MiB | |\n| CPU over the window | {cpu:.3} % of one core | < 0.1 %: {} |\n| reconcile passes so far / mean | {passes:.0} / {pass_ms:.1} ms | |\n\n",
        if beside_others {
            " while the other benchmarks ran beside it on the same Engine (other projects: the Engine sends the agent none of their events, its label filter is applied by the Engine)"
        } else {
            ""
        },
        mib(rss0),
        mib(rss1),
        mib(peak),
        if mib(peak) < 15.0 { "met" } else { "**missed**" },
        anon as f64 / 1024.0,
        file as f64 / 1024.0,
        if cpu < 0.1 { "met" } else { "**missed**" },
    )
}

fn noop_poll(rounds: usize) -> String {
    let s = Stack::new("benchpoll");
    let dir = s.path();
    s.write("services: {}\n");
    let git = |args: &[&str]| {
        let out = Command::new("git")
            .args(["-c", "user.name=b", "-c", "user.email=b@b.invalid"])
            .args(args)
            .current_dir(dir)
            .output()
            .expect("git");
        assert!(out.status.success(), "{out:?}");
    };
    git(&["init", "-q", "-b", "main"]);
    git(&["add", "-A"]);
    git(&["commit", "-q", "-m", "one"]);
    git(&["clone", "-q", "--bare", ".", "remote.git"]);
    let remote = dockhand::sources::remote::Remote {
        url: format!("file://{}", dir.join("remote.git").display()),
        branch: Some("main".into()),
        mirror: dir.join("mirror.git"),
        auth: Default::default(),
        allow_force_push: false,
        allowed_signers: None,
    };
    let first = remote.sync().expect("first sync");
    let mut ms = Vec::new();
    let mut objects = 0;
    for _ in 0..rounds {
        let t = Instant::now();
        let again = remote.sync().expect("sync");
        ms.push(t.elapsed().as_secs_f64() * 1000.0);
        objects += again.received_objects;
    }
    let (p50, p95, max) = stats(&mut ms);
    format!(
        "## No-op poll of a remote\n\nA `file://` bare repository (the transport the tests use; https and ssh add their round trip). The first sync fetched {} objects; then {rounds} checks with nothing new: p50 {p50:.2} ms, p95 {p95:.2} ms, max {max:.2} ms, **{objects} objects** received (target: one round trip, no object transfer).\n\n",
        first.received_objects
    )
}

fn webhook(addr: &str, secret: &str, payload: &str) -> u16 {
    use hmac::Mac;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("hmac");
    mac.update(payload.as_bytes());
    let sig = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    let mut c = std::net::TcpStream::connect(addr).expect("connect to the agent");
    c.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    write!(
        c,
        "POST /webhook HTTP/1.1\r\nHost: {addr}\r\nX-GitHub-Event: push\r\nX-Hub-Signature-256: {sig}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{payload}",
        payload.len()
    )
    .expect("send webhook");
    let mut reply = String::new();
    let _ = c.read_to_string(&mut reply);
    reply
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

/// Measurement 4: a commit on the followed branch to the new version answering through
/// Traefik, in phases read from the agent's stderr lines (timed on arrival) and from Traefik.
fn commit_to_serving(releases: usize) -> String {
    use support::traefik::{self, Traefik};
    let (s, proxy, host) = Traefik::with_stack("benchc2s");
    let url = support::origin(s.path());
    let body = |img: &str| {
        format!(
            "networks: {{proxy: {{}}}}\nservices:\n  web:\n    image: {img}\n    networks: [proxy]\n    route: {{host: {host}, port: 8080}}\n    health: {{cmd: [wget, -q, -O, /dev/null, 'http://127.0.0.1:8080/readyz'], interval: 1s, timeout: 2s, retries: 2, http: {{port: 8080, path: /readyz, body: ok}}}}\n    stop_grace_period: 1s\n    release: {{strategy: blue-green}}\n"
        )
    };
    support::push(&s, &body(&s.image("v0")), "v0", false);
    let secret = "bench-webhook-secret";
    std::fs::write(s.path().join("webhook.secret"), secret).expect("write secret");
    let secret_file = s
        .path()
        .join("webhook.secret")
        .to_string_lossy()
        .to_string();
    let mut out = String::from("## 4. Commit to serving through Traefik\n\nA commit pushed to the followed branch (a local bare repository, `file://`) that changes the image of a blue/green service behind a real Traefik 3; the image is in the registry but not on the host, so it is pulled. Phases, from the agent's stderr lines (timed as they arrive) and from requests through Traefik every 10 ms: **detect** push done → the agent saw the new head (webhook: the 202 reply; polling: its `moved … fetching` line); **fetch** → `fetched`; **plan** → `preflight: all checks passed` (settle window, reading the commit's tree, observe, plan, preflight); **pull** → `pulled`; **start** → the gate saw the new color ready (create, hold, start, the app's own start-up, dockhand's probe); **healthy** → `healthy after` (hold lifted, Docker's healthcheck passes); **routed** → the first response from the new version through Traefik (Traefik routes a container once Docker calls it healthy). Median of the runs, in ms.\n\n| trigger | runs | detect | fetch | plan | pull | start | healthy | routed | total |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    let mut n = 0;
    for (mode, poll) in [("webhook", "10m"), ("polling every 1 s", "1s")] {
        let state = s.state_dir().to_string_lossy().to_string();
        // At info level the agent logs each step of a pass as it happens.
        let agent = Agent::spawn_env(
            &s,
            &[
                "run",
                "--source",
                &url,
                "--path",
                ".",
                "--state-dir",
                &state,
                "--poll",
                poll,
                "--resync",
                "60s",
                "--listen",
                "127.0.0.1:0",
                "--webhook-secret-file",
                &secret_file,
            ],
            &[("RUST_LOG", "dockhand=info")],
        );
        let addr = agent.addr();
        agent.wait_in_sync(&addr, Duration::from_secs(120));
        let mut phases: Vec<[f64; 8]> = Vec::new();
        for _ in 0..releases {
            n += 1;
            let marker = format!("v{n}");
            let img = s.image(&marker);
            support::push(&s, &body(&img), &marker, false);
            let t0 = Instant::now();
            let detect = if mode == "webhook" {
                // A real push names its commit, so each delivery differs (the agent ignores
                // a replayed one).
                let payload = format!(r#"{{"ref":"refs/heads/main","after":"{marker}"}}"#);
                let code = webhook(&addr, secret, &payload);
                assert_eq!(code, 202, "webhook refused:\n{}", agent.log());
                Some(Instant::now())
            } else {
                None
            };
            let routed = {
                let t = Instant::now();
                loop {
                    if let Ok((200, b)) = traefik::get(proxy.web, &host) {
                        if b.trim() == marker {
                            break Instant::now();
                        }
                    }
                    assert!(
                        t.elapsed() < Duration::from_secs(60),
                        "{marker} not served:\n{}",
                        agent.log()
                    );
                    std::thread::sleep(Duration::from_millis(10));
                }
            };
            let at = |text: &str| {
                agent
                    .line_after(t0, text)
                    .unwrap_or_else(|| panic!("no `{text}` line after the push:\n{}", agent.log()))
            };
            let detect = detect.unwrap_or_else(|| at("; fetching"));
            let marks = [
                t0,
                detect,
                at("fetched "),
                at("preflight: all checks passed"),
                at("pulled "),
                at("ready after"),
                at(": healthy after"),
                routed,
            ];
            let mut row = [0.0; 8];
            for i in 1..marks.len() {
                row[i - 1] = marks[i]
                    .saturating_duration_since(marks[i - 1])
                    .as_secs_f64()
                    * 1e3;
            }
            row[7] = (routed - t0).as_secs_f64() * 1e3;
            eprintln!("bench: commit to serving ({mode}): {row:.0?}");
            phases.push(row);
            // The old color retires after the switch (drain, stop); the next commit waits for
            // that pass to end, or it would queue behind it.
            let t = Instant::now();
            while agent.line_after(t0, "retired").is_none() {
                assert!(t.elapsed() < Duration::from_secs(60), "{}", agent.log());
                std::thread::sleep(Duration::from_millis(50));
            }
            std::thread::sleep(Duration::from_millis(500));
            agent.wait_in_sync(&addr, Duration::from_secs(60));
        }
        let med = |i: usize| {
            let mut v: Vec<f64> = phases.iter().map(|r| r[i]).collect();
            stats(&mut v).0
        };
        out += &format!(
            "| {mode} | {} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} | **{:.0}** |\n",
            phases.len(),
            med(0),
            med(1),
            med(2),
            med(3),
            med(4),
            med(5),
            med(6),
            med(7)
        );
    }
    out += "\n*start* holds the app's own start-up (busybox httpd: a few ms); *healthy* is bounded by Docker's healthcheck interval (1 s here) and Traefik's reading of it.\n\n";
    out
}
