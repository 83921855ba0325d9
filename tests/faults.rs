//! Faults injected around a real Engine: a registry answering 500, and one that accepts
//! connections and never answers; the Engine cut away mid-apply, and a real dockerd of the
//! test's own restarted mid-apply; the deploy record on a full
//! and on a read-only file system; a process that ignores SIGTERM; a flapping healthcheck.
//! Each must end converged or in a clear, bounded refusal that touches nothing running, with
//! the failure in the record.

mod support;

use std::io::{BufRead, Read, Write};
use std::net::TcpListener;
use std::time::{Duration, Instant};

use support::{docker_ok, Stack};

/// A registry on 127.0.0.1 that misbehaves: `answer` is written to every request (None: the
/// connection is held open and never answered). Lives until the test process ends.
fn bad_registry(answer: Option<&'static str>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for stream in listener.incoming().map_while(Result::ok) {
            std::thread::spawn(move || {
                let mut stream = stream;
                let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
                let mut buf = [0u8; 4096];
                let _ = stream.read(&mut buf);
                match answer {
                    Some(a) => {
                        let _ = stream.write_all(a.as_bytes());
                    }
                    None => std::thread::sleep(Duration::from_secs(300)),
                }
            });
        }
    });
    addr
}

fn digest(seed: &str) -> String {
    use sha2::Digest;
    format!(
        "sha256:{}",
        hex::encode(sha2::Sha256::digest(seed.as_bytes()))
    )
}

fn body(img: &str) -> String {
    format!("services:\n  web:\n    image: {img}\n    stop_grace_period: 1s\n")
}

/// Deploys one `web` service at `v1`; returns its container and its id and start time.
fn web_at_v1(s: &Stack) -> (String, String) {
    s.write(&body(&s.image("v1")));
    let r = s.dockhand(&["apply", "--yes"]);
    assert_eq!(r.code, 0, "{r:?}");
    let web = s.container("web");
    let at = docker_ok(&["inspect", "--format", "{{.Id}} {{.State.StartedAt}}", &web]);
    (web, at)
}

/// Deploys `v1`, then asks for an image from `registry`: the apply must be refused within
/// `within`, say why, leave v1 running untouched, and record the failed preflight.
fn refused_cleanly(name: &str, registry: &str, expect: &[&str], within: Duration) {
    let s = Stack::new(name);
    let (web, before) = web_at_v1(&s);

    let bad = format!("{registry}/fault/web:2@{}", digest(name));
    s.write(&body(&bad));
    let started = Instant::now();
    let r = s.dockhand(&["apply", "--yes"]);
    let took = started.elapsed();
    eprintln!("{name}: refused after {took:?}");
    assert_ne!(r.code, 0, "{r:?}");
    assert!(took < within, "took {took:?}: {r:?}");
    assert!(expect.iter().any(|e| r.stderr.contains(e)), "{r:?}");
    assert!(r.stderr.contains("hint:"), "{r:?}");
    assert!(!r.stderr.contains("panicked"), "{r:?}");
    let after = docker_ok(&["inspect", "--format", "{{.Id}} {{.State.StartedAt}}", &web]);
    assert_eq!(before, after, "the running container was touched");
    let h = s.dockhand(&["history", "--json"]);
    let v: serde_json::Value =
        serde_json::from_str::<serde_json::Value>(&h.stdout).unwrap()["deploys"].clone();
    assert_eq!(v[0]["outcome"], "failed-preflight", "{v:#}");
}

#[test]
fn a_registry_answering_500_is_refused_at_preflight_and_nothing_changes() {
    let addr = bad_registry(Some(
        "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 5\r\nConnection: close\r\n\r\nboom\n",
    ));
    refused_cleanly("reg500", &addr, &["(500)"], Duration::from_secs(60));
}

#[test]
fn a_registry_that_never_answers_times_out_and_nothing_changes() {
    let addr = bad_registry(None);
    // The Engine's own client timeout, or dockhand's bound on it, whichever comes first.
    refused_cleanly(
        "reghang",
        &addr,
        &["Timeout exceeded", "deadline exceeded", "did not answer"],
        Duration::from_secs(60),
    );
}

/// A registry that fails half-way: manifests (what preflight reads) pass through to the real
/// registry, every blob request (what the Engine fetches while pulling) is answered 500. One
/// request per connection, so keep-alive cannot carry a blob request past the filter.
fn registry_failing_blobs() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let upstream = support::registry();
    std::thread::spawn(move || {
        for client in listener.incoming().map_while(Result::ok) {
            let upstream = upstream.clone();
            std::thread::spawn(move || {
                let mut client = client;
                // A spare connection a client opens and never uses is dropped after 3 s.
                let _ = client.set_read_timeout(Some(Duration::from_secs(3)));
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") && head.len() < 64 * 1024 {
                    match client.read(&mut byte) {
                        Ok(1) => head.push(byte[0]),
                        _ => return,
                    }
                }
                let text = String::from_utf8_lossy(&head).to_string();
                let path = text.split_whitespace().nth(1).unwrap_or_default();
                if path.contains("/blobs/") {
                    let _ = client.write_all(
                        b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 5\r\nConnection: close\r\n\r\nboom\n",
                    );
                    return;
                }
                let Ok(mut up) = std::net::TcpStream::connect(&upstream) else {
                    return;
                };
                // Ask the real registry to close after this one answer, so the copy ends.
                let mut head: Vec<&str> = text
                    .split("\r\n")
                    .filter(|l| !l.to_ascii_lowercase().starts_with("connection:"))
                    .collect();
                head.insert(1, "Connection: close");
                if up.write_all(head.join("\r\n").as_bytes()).is_err() {
                    return;
                }
                let _ = std::io::copy(&mut up, &mut client);
                let _ = client.shutdown(std::net::Shutdown::Both);
            });
        }
    });
    addr
}

/// The registry fails during the pull itself, after preflight found the manifest: apply stops
/// before touching any container (all pulls come first), says which image and why, v1 keeps
/// running untouched, and the record has the failure.
#[test]
fn a_registry_failing_during_the_pull_leaves_the_running_version_untouched() {
    let s = Stack::new("midpull");
    let (web, before) = web_at_v1(&s);
    // A marker no other test uses: the Engine must not hold this image's blobs already.
    let v2 = s.image(&format!("v2-{}", s.name));

    // v2 by the same digest, through the half-failing registry: its blobs were never pulled
    // from there, so the Engine must fetch them and gets 500s.
    let flaky = registry_failing_blobs();
    let v2_flaky = v2.replacen(&support::registry(), &flaky, 1);
    s.write(&body(&v2_flaky));
    let r = s.dockhand(&["apply", "--yes"]);
    eprintln!("{r:?}");
    assert_ne!(r.code, 0, "{r:?}");
    assert!(
        r.stderr.contains("preflight: all checks passed"),
        "preflight must pass: {r:?}"
    );
    assert!(
        r.stderr.contains("cannot pull") && r.stderr.contains(&flaky),
        "the failed pull is named: {r:?}"
    );
    assert!(r.stderr.contains("nothing was changed"), "{r:?}");
    assert!(r.stderr.contains("hint:"), "{r:?}");
    let after = docker_ok(&["inspect", "--format", "{{.Id}} {{.State.StartedAt}}", &web]);
    assert_eq!(before, after, "the running container was touched");
    let h = s.dockhand(&["history", "--json"]);
    let v: serde_json::Value =
        serde_json::from_str::<serde_json::Value>(&h.stdout).unwrap()["deploys"].clone();
    assert_eq!(v[0]["outcome"], "failed", "{v:#}");
    assert_ne!(
        v[0]["quarantined"], true,
        "a registry outage is not the revision's fault: {v:#}"
    );
    assert!(
        v[0]["error"]
            .as_str()
            .unwrap_or_default()
            .contains("cannot pull"),
        "{v:#}"
    );
}

/// The Engine, through a socket the test can cut: every connection is forwarded to the
/// machine's daemon until `cut`, which drops the open ones and refuses new ones until `heal`.
/// That is a lost socket while the Engine and its containers keep running (a proxy in front of
/// the socket restarting, or a daemon with live-restore). A real restart, containers stopped
/// and all, is the next test's, on an Engine of its own.
struct CuttableEngine {
    dir: tempfile::TempDir,
    cut: std::sync::Arc<std::sync::atomic::AtomicBool>,
    open: std::sync::Arc<std::sync::Mutex<Vec<std::os::unix::net::UnixStream>>>,
}

impl CuttableEngine {
    fn start() -> CuttableEngine {
        use std::os::unix::net::{UnixListener, UnixStream};
        let dir = tempfile::tempdir().expect("tempdir");
        let listener = UnixListener::bind(dir.path().join("docker.sock")).expect("bind");
        let cut = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let open: std::sync::Arc<std::sync::Mutex<Vec<UnixStream>>> = Default::default();
        let (c, o) = (cut.clone(), open.clone());
        std::thread::spawn(move || {
            for client in listener.incoming().map_while(Result::ok) {
                if c.load(std::sync::atomic::Ordering::SeqCst) {
                    continue; // dropped: the client sees the connection refused/closed
                }
                let Ok(engine) = UnixStream::connect("/var/run/docker.sock") else {
                    continue;
                };
                let mut list = o.lock().unwrap();
                for s in [&client, &engine] {
                    if let Ok(s) = s.try_clone() {
                        list.push(s);
                    }
                }
                drop(list);
                for (mut from, mut to) in [
                    (client.try_clone().unwrap(), engine.try_clone().unwrap()),
                    (engine, client),
                ] {
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut to);
                        let _ = to.shutdown(std::net::Shutdown::Write);
                    });
                }
            }
        });
        CuttableEngine { dir, cut, open }
    }

    fn host(&self) -> String {
        format!("unix://{}/docker.sock", self.dir.path().display())
    }

    fn cut(&self) {
        self.cut.store(true, std::sync::atomic::Ordering::SeqCst);
        for s in self.open.lock().unwrap().drain(..) {
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
    }

    fn heal(&self) {
        self.cut.store(false, std::sync::atomic::Ordering::SeqCst);
    }
}

/// Three services on `img` with `N=n`; the last keeps data in a volume and has a slow
/// after_start hook, so an apply spends seconds inside it.
fn three_services(img: &str, n: u32) -> String {
    let mut y = String::from("volumes:\n  data: {}\nservices:\n");
    for i in 0..3 {
        y += &format!(
            "  web{i}:\n    image: {img}\n    env: {{N: \"{n}\"}}\n    stop_grace_period: 1s\n"
        );
    }
    y += "    mounts: [{volume: data, target: /data}]\n";
    y += "    hooks: {after_start: [[sh, -c, 'sleep 4; echo warmed']]}\n";
    y
}

/// Runs `apply --yes` on `s` against the Engine at `host` and injects `fault` once the slow
/// hook has started; returns how apply exited and what it printed.
fn apply_with_fault_in_hook(
    s: &Stack,
    host: &str,
    fault: impl FnOnce(),
) -> (std::process::ExitStatus, Vec<String>) {
    let a = s.with_source(&["apply", "--yes"]);
    let mut apply = std::process::Command::new(support::bin())
        .args(&a)
        .env("DOCKER_HOST", host)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = apply.stderr.take().unwrap();
    let mut log = Vec::new();
    let mut fault = Some(fault);
    for line in std::io::BufReader::new(stderr)
        .lines()
        .map_while(Result::ok)
    {
        let hit = line.contains("hook after_start");
        log.push(line);
        if hit {
            // The hook's line is printed as its exec is created: let it run first.
            std::thread::sleep(Duration::from_millis(1000));
            if let Some(f) = fault.take() {
                f();
            }
        }
    }
    let status = apply.wait().unwrap();
    assert!(
        fault.is_none(),
        "the apply never reached its slow hook:\n{}",
        log.join("\n")
    );
    (status, log)
}

#[test]
fn the_engine_lost_during_an_apply_then_the_next_run_converges_and_nothing_is_quarantined() {
    let d = CuttableEngine::start();
    let s = Stack::new("restart");
    let img = s.image("v1");
    let host = d.host();
    let run = |verb: &[&str]| s.dockhand_env(verb, &[("DOCKER_HOST", &host)]);
    s.write(&three_services(&img, 1));
    let r = run(&["apply", "--yes"]);
    assert_eq!(r.code, 0, "{r:?}");
    docker_ok(&[
        "exec",
        &s.container("web2"),
        "sh",
        "-c",
        "echo kept > /data/marker",
    ]);

    s.write(&three_services(&img, 2));
    let (status, _) = apply_with_fault_in_hook(&s, &host, || {
        d.cut();
        std::thread::sleep(Duration::from_secs(2));
        d.heal();
    });
    eprintln!("apply across the lost Engine exited {status:?}");
    converged_after_fault(&s, &host, docker_ok);
}

/// The next apply converges (the revision was not quarantined: the Engine failed, not the
/// release), one container per service at N=2, the volume's data kept, the cut-short deploy
/// recorded, and the slow hook run again to success on the container that serves.
fn converged_after_fault(s: &Stack, host: &str, docker: impl Fn(&[&str]) -> String) {
    let run = |verb: &[&str]| s.dockhand_env(verb, &[("DOCKER_HOST", host)]);
    let h = run(&["history", "--json"]);
    let v: serde_json::Value =
        serde_json::from_str::<serde_json::Value>(&h.stdout).unwrap()["deploys"].clone();
    assert!(
        v[0]["outcome"] == "failed" || v[0]["outcome"] == "interrupted",
        "the apply the fault cut short is recorded: {v:#}"
    );
    assert_ne!(
        v[0]["quarantined"], true,
        "the Engine failed, not the release: {v:#}"
    );

    let r = run(&["apply", "--yes"]);
    assert_eq!(r.code, 0, "the run after the Engine came back: {r:?}");
    let plan = run(&["plan", "--detailed-exitcode"]);
    assert_eq!(plan.code, 0, "not converged: {plan:?}");
    let label = format!("label=dockhand.stack={}", s.name);
    let all = docker(&["ps", "-a", "--filter", &label, "--format", "{{.Names}}"]);
    assert_eq!(
        all.lines().count(),
        3,
        "one container per service, no leftover: {all}"
    );
    for i in 0..3 {
        let name = s.container(&format!("web{i}"));
        let text = docker(&[
            "inspect",
            "--format",
            "{{.State.Running}} {{.Config.Env}}",
            &name,
        ]);
        assert!(
            text.starts_with("true") && text.contains("N=2"),
            "{name}: {text}"
        );
    }
    let web2 = s.container("web2");
    let marker = docker(&["exec", &web2, "cat", "/data/marker"]);
    assert_eq!(marker, "kept", "the volume's data survived");
    let h = run(&["history", "--json"]);
    let v: serde_json::Value =
        serde_json::from_str::<serde_json::Value>(&h.stdout).unwrap()["deploys"].clone();
    assert_eq!(v[0]["outcome"], "succeeded", "{v:#}");
    let hook_ok = v[0]["steps"].as_array().unwrap().iter().any(|st| {
        st["target"] == web2.as_str()
            && st["name"] == "hook after_start[0]"
            && st["outcome"] == "ok"
    });
    assert!(hook_ok, "after_start never completed on {web2}: {v:#}");
}

/// The fault exactly: a real dockerd (the test's own, in namespaces of its own; see
/// `support::own_engine`) restarted as `systemctl restart docker` would, while an apply waits on
/// a slow after_start hook. The restart stops every container, the hook's exec among them.
/// dockhand must say what happened, not quarantine the revision (the Engine failed, not the
/// release), and the next run must converge with one container per service and the volume's
/// data intact.
#[test]
fn a_real_engine_restarted_during_an_apply_then_the_next_run_converges_and_loses_nothing() {
    let mut engine = support::own_engine::OwnEngine::start("dhrestart");
    let s = Stack::new("realrestart");
    let img = s.image("v1");
    let host = engine.host();
    s.write(&three_services(&img, 1));
    let r = s.dockhand_env(&["apply", "--yes"], &[("DOCKER_HOST", &host)]);
    assert_eq!(r.code, 0, "{r:?}");
    let web2 = s.container("web2");
    engine.docker_ok(&["exec", &web2, "sh", "-c", "echo kept > /data/marker"]);

    s.write(&three_services(&img, 2));
    let mut away = Duration::ZERO;
    let (status, log) = apply_with_fault_in_hook(&s, &host, || away = engine.restart());
    let text = log.join("\n");
    eprintln!("Engine restarted (away {away:?}); the apply across it exited {status:?}:\n{text}");
    assert!(!text.contains("panicked"), "{text}");
    assert!(
        !status.success(),
        "the apply cannot have verified its hook:\n{text}"
    );
    assert!(
        text.contains("stopped answering") && text.contains("apply again"),
        "the failure names the Engine and says what to do next:\n{text}"
    );
    converged_after_fault(&s, &host, |args| engine.docker_ok(args));
}

/// A small tmpfs of the test's own, unmounted on drop (also when the test fails).
struct SmallFs {
    dir: tempfile::TempDir,
}

impl SmallFs {
    fn mount(size: &str) -> SmallFs {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output()
            .expect("mount");
        assert!(
            out.status.success(),
            "this test mounts a small tmpfs to fill it (it needs root): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        SmallFs { dir }
    }

    fn path(&self) -> &std::path::Path {
        self.dir.path()
    }

    fn remount(&self, how: &str) {
        let out = std::process::Command::new("mount")
            .args(["-o", &format!("remount,{how}")])
            .arg(self.path())
            .output()
            .expect("mount");
        assert!(out.status.success(), "{out:?}");
    }

    /// Writes zeros until the file system says it is full.
    fn fill(&self) {
        let mut f = std::fs::File::create(self.path().join("filler")).expect("filler");
        let block = vec![0u8; 64 * 1024];
        while f.write_all(&block).is_ok() {}
        let _ = f.sync_all();
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

/// The deploy record on a file system that is full, then read-only: apply refuses with a
/// clear error before touching anything, the earlier record stays whole and readable, and
/// once there is room again the next apply converges.
#[test]
fn a_full_or_read_only_state_store_refuses_clearly_and_serving_is_unaffected() {
    let s = Stack::new("fullstate");
    let (v1, v2) = (s.image("v1"), s.image("v2"));
    let web = s.container("web");
    let fs = SmallFs::mount("2m");
    let state = fs.path().join("state");
    let state_arg = state.to_string_lossy().to_string();
    let body =
        |img: &str| format!("services:\n  web:\n    image: {img}\n    stop_grace_period: 1s\n");
    let src = s.path().to_string_lossy().to_string();
    let on_store = |verb: &[&str]| {
        let mut args = verb.to_vec();
        args.extend(["--source", &src, "--path", ".", "--worktree"]);
        args.extend(["--state-dir", &state_arg]);
        support::run(&args, &[])
    };
    let apply = |_: &Stack| on_store(&["apply", "--yes"]);
    s.write(&body(&v1));
    let r = apply(&s);
    assert_eq!(r.code, 0, "{r:?}");
    let serving = docker_ok(&["inspect", "--format", "{{.Id}} {{.State.StartedAt}}", &web]);

    for (how, prepare) in [("full", true), ("read-only", false)] {
        if prepare {
            fs.fill();
        } else {
            let _ = std::fs::remove_file(fs.path().join("filler"));
            fs.remount("ro");
        }
        s.write(&body(&v2));
        let r = apply(&s);
        eprintln!("state store {how}: exit {}\n{}", r.code, r.stderr);
        assert_ne!(r.code, 0, "{how}: {r:?}");
        assert!(
            r.stderr.contains("deploy record") || r.stderr.contains("state directory"),
            "{how}: the error names the record: {r:?}"
        );
        assert!(r.stderr.contains("hint:"), "{how}: {r:?}");
        assert!(!r.stderr.contains("panicked"), "{how}: {r:?}");
        assert_eq!(
            docker_ok(&["inspect", "--format", "{{.Id}} {{.State.StartedAt}}", &web]),
            serving,
            "{how}: the serving container was touched"
        );
    }

    // Room again: the first deploy is intact, nothing half-written, and v2 goes out.
    fs.remount("rw");
    let db = rusqlite::Connection::open(state.join("dockhand.db")).expect("open record");
    let check: String = db
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .expect("integrity_check");
    assert_eq!(check, "ok");
    drop(db);
    let h = on_store(&["history", "--json"]);
    let v: serde_json::Value = serde_json::from_str::<serde_json::Value>(&h.stdout)
        .expect("history json")["deploys"]
        .clone();
    assert_eq!(v[0]["outcome"], "succeeded", "{v:#}");
    let r = apply(&s);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        docker_ok(&["inspect", "--format", "{{.Config.Image}}", &web])
            .ends_with(v2.split_once('@').map_or("", |(_, d)| d)),
        "v2 runs after the store has room again"
    );
}

/// A process that ignores SIGTERM: a recreate waits its grace period, then the Engine kills
/// it; the new container runs and the deploy is recorded as succeeded, in bounded time.
#[test]
fn a_service_that_ignores_sigterm_is_replaced_after_its_grace_period() {
    let s = Stack::new("noterm");
    let img = s.image_with(
        "v1",
        &["/bin/sh", "-c", "trap '' TERM; while :; do sleep 1; done"],
    );
    let web = s.container("web");
    let body = |rev: &str| {
        format!(
            "services:\n  web:\n    image: {img}\n    env: {{REV: \"{rev}\"}}\n    stop_grace_period: 2s\n"
        )
    };
    s.write(&body("1"));
    let r = s.dockhand(&["apply", "--yes"]);
    assert_eq!(r.code, 0, "{r:?}");
    let old = docker_ok(&["inspect", "--format", "{{.Id}}", &web]);
    s.write(&body("2"));
    let t = Instant::now();
    let r = s.dockhand(&["apply", "--yes"]);
    let took = t.elapsed();
    eprintln!("recreate of a SIGTERM-deaf service: {took:?}");
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        took >= Duration::from_secs(2),
        "the grace period was not given: {took:?}"
    );
    assert!(took < Duration::from_secs(20), "{took:?}: {r:?}");
    let new = docker_ok(&["inspect", "--format", "{{.Id}} {{.State.Running}}", &web]);
    assert!(new.ends_with("true") && !new.starts_with(&old), "{new}");
    let h = s.dockhand(&["history", "--json"]);
    let v: serde_json::Value =
        serde_json::from_str::<serde_json::Value>(&h.stdout).unwrap()["deploys"].clone();
    assert_eq!(v[0]["outcome"], "succeeded", "{v:#}");
}

/// A healthcheck that flaps (healthy two seconds, unhealthy two) under the agent: the agent
/// neither recreates nor restarts the container, and records no failed deploy.
#[test]
fn a_flapping_healthcheck_does_not_make_the_agent_churn() {
    use support::agent::Agent;
    let s = Stack::new("flap");
    let img = s.image("v1");
    let web = s.container("web");
    // The start period keeps failures before the first pass from counting, so the first apply
    // sees it healthy whichever half of the cycle it starts in; after that it flaps.
    s.write(&format!(
        "services:\n  web:\n    image: {img}\n    health: {{cmd: [sh, -c, 'test $(( $(date +%s) / 2 % 2 )) -eq 0'], interval: 1s, timeout: 1s, retries: 1, start_period: 10s}}\n    stop_grace_period: 1s\n"
    ));
    let r = s.dockhand(&["apply", "--yes"]);
    assert_eq!(r.code, 0, "{r:?}");
    let before = docker_ok(&["inspect", "--format", "{{.Id}} {{.State.StartedAt}}", &web]);
    let agent = Agent::start(&s, &["--poll", "1s", "--resync", "2s"]);
    let addr = agent.addr();
    let t = Instant::now();
    let mut states = std::collections::BTreeSet::new();
    while t.elapsed() < Duration::from_secs(12) {
        states.insert(docker_ok(&[
            "inspect",
            "--format",
            "{{.State.Health.Status}}",
            &web,
        ]));
        std::thread::sleep(Duration::from_millis(250));
    }
    assert!(
        states.contains("healthy") && states.contains("unhealthy"),
        "the healthcheck did not flap: {states:?}"
    );
    let after = docker_ok(&["inspect", "--format", "{{.Id}} {{.State.StartedAt}}", &web]);
    assert_eq!(
        before,
        after,
        "the agent touched a flapping container:\n{}",
        agent.log()
    );
    let status = support::agent::get(&addr, "/status");
    assert!(!status.contains("rolled-back"), "{status}");
    drop(agent);
    let h = s.dockhand(&["history", "--json"]);
    let v: serde_json::Value =
        serde_json::from_str::<serde_json::Value>(&h.stdout).unwrap()["deploys"].clone();
    let deploys = v.as_array().map_or(0, Vec::len);
    assert_eq!(deploys, 1, "only the first apply is a deploy: {v:#}");
}
