//! Hardening against bad input and leaks, on the real Engine: known secret strings deployed
//! through env, an env file and a hook's output never show in any output, log, record or
//! metric; the agent's HTTP port answers malformed and hostile requests with 4xx and keeps
//! working; bad command lines get clear errors.

mod support;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use support::{docker_ok, git, Stack};

const INLINE: &str = "1nline-s3cret-9f2c";
const INLINE2: &str = "s3cond-s3cret-77ab";
const FROM_FILE: &str = "f1le-s3cret-4d1e";

/// Everything a user or a log shipper can see, gathered for one grep.
#[derive(Default)]
struct Seen(Vec<(String, String)>);

impl Seen {
    fn add(&mut self, what: &str, text: impl Into<String>) {
        self.0.push((what.to_string(), text.into()));
    }

    fn run(&mut self, s: &Stack, args: &[&str]) -> support::Run {
        let r = s.dockhand(args);
        self.add(&format!("{args:?} stdout"), r.stdout.clone());
        self.add(&format!("{args:?} stderr"), r.stderr.clone());
        r
    }

    fn assert_clean(&self) {
        for (what, text) in &self.0 {
            for secret in [INLINE, INLINE2, FROM_FILE] {
                assert!(
                    !text.contains(secret),
                    "secret {secret} leaked into {what}:\n{text}"
                );
            }
        }
    }
}

/// `dockhand run` on its own HTTP port, the poll out of the way, plus `extra`.
fn agent_args<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["run", "--poll", "60s", "--listen", "127.0.0.1:0"];
    args.extend_from_slice(extra);
    args
}

fn http(addr: &str, raw: &[u8]) -> String {
    let mut s = std::net::TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let _ = s.write_all(raw);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn secrets_never_show_in_plans_logs_records_status_or_metrics() {
    let s = Stack::new("secrets");
    let img = s.image("v1");
    let web = s.container("web");
    let env_file = s.path().join("web.env");
    std::fs::write(&env_file, format!("FILE_SECRET={FROM_FILE}\n")).unwrap();
    let stack = |inline: &str| {
        format!(
            "services:\n  web:\n    image: {img}\n    env: {{INLINE_SECRET: {inline}, MODE: production}}\n    env_file: {}\n    stop_grace_period: 1s\n    hooks:\n      after_start:\n        - [sh, -c, 'echo inline=$INLINE_SECRET file=$FILE_SECRET']\n",
            env_file.display()
        )
    };
    let mut seen = Seen::default();
    s.write(&stack(INLINE));
    seen.run(&s, &["validate"]);
    seen.run(&s, &["plan"]);
    seen.run(&s, &["plan", "--json"]);
    let r = seen.run(&s, &["apply", "--yes", "-vv"]);
    assert_eq!(r.code, 0, "{r:?}");
    // The hook really printed them (redacted in what dockhand shows and records).
    assert!(
        r.stderr.contains("inline=") || r.stdout.contains("inline="),
        "{r:?}"
    );

    s.write(&stack(INLINE2));
    seen.run(&s, &["plan"]);
    let d = seen.run(&s, &["diff"]);
    assert!(
        d.stdout.contains("INLINE_SECRET"),
        "the diff names the changed key: {d:?}"
    );
    let r = seen.run(&s, &["apply", "--yes", "--log-format", "json", "-vv"]);
    assert_eq!(r.code, 0, "{r:?}");
    seen.run(&s, &["status"]);
    seen.run(&s, &["status", "--json", "--offline"]);
    seen.run(&s, &["history"]);
    seen.run(&s, &["history", "--json"]);
    seen.run(&s, &["history", "--id", "1"]);
    seen.run(&s, &["history", "--id", "2", "--json"]);
    seen.add(
        "container labels",
        docker_ok(&["inspect", "--format", "{{json .Config.Labels}}", &web]),
    );

    // The agent: its log (JSON, debug), /status and /metrics, through a drift correction.
    let mut agent = s.spawn_dockhand(&agent_args(&["--log-format", "json", "-vv"]));
    let stderr = agent.stderr.take().unwrap();
    let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let sink = log.clone();
    std::thread::spawn(move || {
        let mut r = std::io::BufReader::new(stderr);
        let mut buf = String::new();
        while std::io::BufRead::read_line(&mut r, &mut buf).unwrap_or(0) > 0 {
            sink.lock().unwrap().push_str(&buf);
            buf.clear();
        }
    });
    let started = Instant::now();
    let addr = loop {
        if let Some(a) = log
            .lock()
            .unwrap()
            .split("listening on http://")
            .nth(1)
            .and_then(|r| r.split(|c: char| c.is_whitespace() || c == '"').next())
            .map(str::to_string)
        {
            break a;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{}",
            log.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    docker_ok(&["stop", "-t", "1", &web]);
    let started = Instant::now();
    while !docker_ok(&["inspect", "--format", "{{.State.Running}}", &web]).contains("true") {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{}",
            log.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    seen.add(
        "/status",
        http(&addr, b"GET /status HTTP/1.1\r\nHost: x\r\n\r\n"),
    );
    seen.add(
        "/metrics",
        http(&addr, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"),
    );
    let _ = agent.kill();
    let _ = agent.wait();
    seen.add("agent log", log.lock().unwrap().clone());

    // The state store, byte for byte (database, WAL, shared memory).
    for entry in std::fs::read_dir(s.state_dir()).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            let bytes = std::fs::read(&path).unwrap();
            seen.add(
                &path.display().to_string(),
                String::from_utf8_lossy(&bytes).into_owned(),
            );
        }
    }
    assert!(seen.0.len() > 25, "{} outputs gathered", seen.0.len());
    seen.assert_clean();
}

#[test]
fn the_agent_port_answers_hostile_requests_with_4xx_and_keeps_working() {
    let s = Stack::new("hostile");
    let img = s.image("v1");
    s.write(&format!("services:\n  web:\n    image: {img}\n"));
    let secret = s.path().join("hook.secret");
    std::fs::write(&secret, "k3y\n").unwrap();
    let secret_arg = secret.to_string_lossy().to_string();
    let mut agent = s.spawn_dockhand(&agent_args(&["--webhook-secret-file", &secret_arg]));
    let mut stderr = std::io::BufReader::new(agent.stderr.take().unwrap());
    let addr = loop {
        let mut line = String::new();
        assert!(std::io::BufRead::read_line(&mut stderr, &mut line).unwrap() > 0);
        if let Some(rest) = line.split("listening on http://").nth(1) {
            break rest.split_whitespace().next().unwrap().to_string();
        }
    };
    std::thread::spawn(move || std::io::copy(&mut stderr, &mut std::io::sink()));
    let big = vec![b'a'; 3 * 1024 * 1024];
    let mut oversized =
        b"POST /webhook HTTP/1.1\r\nHost: x\r\nContent-Length: 3145728\r\n\r\n".to_vec();
    oversized.extend_from_slice(&big);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("oversized body", oversized),
        (
            "huge header",
            format!("GET /status HTTP/1.1\r\nX-Pad: {}\r\n\r\n", "p".repeat(64 * 1024)).into_bytes(),
        ),
        (
            "malformed JSON, bad signature",
            b"POST /webhook HTTP/1.1\r\nHost: x\r\nX-Hub-Signature-256: sha256=zz\r\nContent-Length: 5\r\n\r\n{{{{{".to_vec(),
        ),
        (
            "no signature",
            b"POST /webhook HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}".to_vec(),
        ),
        ("garbage request line", b"\x00\x01\x02 nonsense\r\n\r\n".to_vec()),
        (
            "lying content length",
            b"POST /webhook HTTP/1.1\r\nContent-Length: -5\r\n\r\n".to_vec(),
        ),
        ("unknown path", b"DELETE /etc/passwd HTTP/1.1\r\n\r\n".to_vec()),
    ];
    for (what, raw) in cases {
        let answer = http(&addr, &raw);
        let status: u16 = answer
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        assert!(
            answer.is_empty() || (400..500).contains(&status),
            "{what}: {answer:.200}"
        );
    }
    // Still healthy, and nothing was deployed or changed by any of it.
    let ok = http(&addr, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
    assert!(agent.try_wait().unwrap().is_none(), "the agent died");
    let _ = agent.kill();
    let _ = agent.wait();
}

#[test]
fn bad_command_lines_get_clear_errors() {
    let s = Stack::new("badargs");
    for (args, expect) in [
        (vec!["run", "--poll", "soon"], "write a duration"),
        (vec!["run", "--listen", "not-an-address"], "--listen"),
        (vec!["history", "--id", "x"], "invalid value"),
        (vec!["plan", "--nonsense"], "unexpected argument"),
        (
            vec!["rollback", "--to", "999999", "--yes"],
            "needs a git source",
        ),
    ] {
        let r = s.dockhand(&args);
        assert_ne!(r.code, 0, "{args:?}: {r:?}");
        assert!(
            r.stderr.contains(expect),
            "{args:?} should say `{expect}`: {r:?}"
        );
        assert!(!r.stderr.contains("panicked"), "{args:?}: {r:?}");
    }
}

fn ssh_key(path: &std::path::Path) -> String {
    let out = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "ops", "-f"])
        .arg(path)
        .output()
        .expect("ssh-keygen (OpenSSH client)");
    assert!(out.status.success(), "{out:?}");
    std::fs::read_to_string(path.with_extension("pub")).unwrap()
}

#[test]
fn only_commits_signed_by_an_allowed_key_are_deployed() {
    let s = Stack::new("signed");
    let img = s.image("v1");
    let keys = tempfile::tempdir().unwrap();
    let good = keys.path().join("good");
    let bad = keys.path().join("bad");
    let good_pub = ssh_key(&good);
    ssh_key(&bad);
    let signers = keys.path().join("allowed_signers");
    std::fs::write(&signers, format!("ops@dockhand.invalid {good_pub}")).unwrap();
    let dir = s.path();
    std::fs::write(dir.join(".gitignore"), "state/\n").unwrap();
    git(dir, &["init", "-q", "-b", "main"]);
    let commit = |n: u32, sign: Option<&std::path::Path>| {
        s.write(&format!(
            "services:\n  web:\n    image: {img}\n    env: {{N: \"{n}\"}}\n"
        ));
        git(dir, &["add", "-A"]);
        match sign {
            Some(key) => git(
                dir,
                &[
                    "-c",
                    &format!("user.signingkey={}", key.display()),
                    "commit",
                    "-q",
                    "-S",
                    "-m",
                    "signed",
                ],
            ),
            None => git(dir, &["commit", "-q", "-m", "unsigned"]),
        }
    };
    let src = dir.to_string_lossy().to_string();
    let state = s.state_dir().to_string_lossy().to_string();
    let signers_arg = signers.to_string_lossy().to_string();
    let plan_from = |source: &str, extra: &[&str]| {
        let mut args = vec![
            "plan",
            "--source",
            source,
            "--path",
            ".",
            "--state-dir",
            &state,
        ];
        args.extend_from_slice(extra);
        args.extend(["--allowed-signers", &signers_arg]);
        support::run(&args, &[])
    };
    let plan = || plan_from(&src, &[]);

    commit(1, Some(&good));
    let r = plan();
    assert_eq!(r.code, 0, "a commit signed by an allowed key: {r:?}");

    // The same through a remote: the signed head is followed.
    git(dir, &["init", "-q", "--bare", "-b", "main", "remote.git"]);
    std::fs::write(dir.join(".gitignore"), "state/\nremote.git/\n").unwrap();
    let url = format!("file://{}", dir.join("remote.git").display());
    let push = || git(dir, &["push", "-q", "-f", &url, "main"]);
    let plan_remote = || plan_from(&url, &["--ref", "main"]);
    push();
    let r = plan_remote();
    assert_eq!(r.code, 0, "{r:?}");

    commit(2, None);
    let r = plan();
    assert_ne!(r.code, 0, "{r:?}");
    assert!(r.stderr.contains("carries no signature"), "{r:?}");
    // An unsigned head is not followed: the mirror stays on the signed commit.
    push();
    let r = plan_remote();
    assert!(
        r.code != 0 && r.stderr.contains("carries no signature"),
        "{r:?}"
    );
    let mirrors: Vec<_> = std::fs::read_dir(s.state_dir().join("sources"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    let followed = std::process::Command::new("git")
        .arg("--git-dir")
        .arg(&mirrors[0])
        .args(["rev-parse", "refs/dockhand/followed/main"])
        .output()
        .unwrap();
    let head_1 = std::process::Command::new("git")
        .args(["rev-parse", "HEAD~1"])
        .current_dir(dir)
        .output()
        .unwrap();
    assert_eq!(
        followed.stdout, head_1.stdout,
        "the unsigned head was followed"
    );

    commit(3, Some(&bad));
    let r = plan();
    assert_ne!(r.code, 0, "{r:?}");
    assert!(r.stderr.contains("is not in"), "{r:?}");
    assert!(r.stderr.contains("hint:"), "{r:?}");

    // Files on disk carry no signature at all.
    let r = s.dockhand(&["plan", "--allowed-signers", &signers_arg]);
    assert_ne!(r.code, 0, "{r:?}");
    assert!(r.stderr.contains("not a signed commit"), "{r:?}");
}
