//! What operators and their tools get from the binary (issue 20 items 3, 4 and 6):
//! `--version` with the commit, shell completions and the manual page; the systemd notify
//! protocol on a real Unix datagram socket (READY, WATCHDOG, STOPPING); no escape codes on a
//! pipe; `--log-format json` stderr holding nothing but JSON lines, each progress step once.

mod support;

use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::agent::Agent;
use support::{docker_ok, run, Stack};

/// Every verb the command line has (completion scripts and the manual must name them all).
const VERBS: [&str; 13] = [
    "validate",
    "plan",
    "diff",
    "apply",
    "status",
    "history",
    "run",
    "rollback",
    "resume",
    "pin",
    "schema",
    "completions",
    "man",
];

#[test]
fn version_names_the_commit_of_head() {
    let head = Command::new("git")
        .args(["rev-parse", "--verify", "-q", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("running git");
    // Built from a checkout the commit is HEAD's; from a tarball (no git) it says so.
    let commit = if head.status.success() {
        String::from_utf8(head.stdout).unwrap().trim().to_string()
    } else {
        "unknown".to_string()
    };
    let want = format!("dockhand {} (commit {commit})\n", env!("CARGO_PKG_VERSION"));
    for flag in ["--version", "-V"] {
        let r = run(&[flag], &[]);
        assert_eq!(r.code, 0, "{r:?}");
        assert_eq!(r.stdout, want, "{flag}");
    }
}

#[test]
fn bash_completion_parses_and_completes_verbs_and_flags() {
    let r = run(&["completions", "bash"], &[]);
    assert_eq!(r.code, 0, "{r:?}");
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("dockhand.bash");
    std::fs::write(&script, &r.stdout).unwrap();
    let syntax = Command::new("bash")
        .arg("-n")
        .arg(&script)
        .output()
        .unwrap();
    assert!(syntax.status.success(), "{syntax:?}");
    // Drive bash's programmable completion as a shell does on <TAB>: the words typed so far,
    // then the completion function `complete -p` names for dockhand.
    let complete = |line: &str| -> Vec<String> {
        let words: Vec<&str> = line.split(' ').collect();
        let probe = format!(
            r#"source '{}'
spec=$(complete -p dockhand) || exit 3
fn=$(sed -E 's/.* -F ([^ ]+) .*/\1/' <<<"$spec")
COMP_WORDS=({words})
COMP_CWORD={cword}
COMP_LINE='{line}'
COMP_POINT=${{#COMP_LINE}}
"$fn" dockhand '{last}' '{prev}'
printf '%s\n' "${{COMPREPLY[@]}}""#,
            script.display(),
            words = words
                .iter()
                .map(|w| format!("'{w}'"))
                .collect::<Vec<_>>()
                .join(" "),
            cword = words.len() - 1,
            last = words[words.len() - 1],
            prev = words[words.len() - 2],
        );
        let out = Command::new("bash")
            .args(["--norc", "--noprofile", "-c", &probe])
            .output()
            .unwrap();
        assert!(out.status.success(), "{line}: {out:?}");
        let mut got: Vec<String> = String::from_utf8(out.stdout)
            .unwrap()
            .split_whitespace()
            .map(str::to_string)
            .collect();
        got.sort();
        got
    };
    assert_eq!(complete("dockhand pl"), ["plan"]);
    assert_eq!(complete("dockhand r"), ["resume", "rollback", "run"]);
    assert!(complete("dockhand apply --pre").contains(&"--preflight-only".to_string()));
    assert_eq!(
        complete("dockhand --log-format "),
        ["json", "text"],
        "values of a flag"
    );
}

#[test]
fn zsh_and_fish_completions_name_every_verb() {
    for shell in ["zsh", "fish"] {
        let r = run(&["completions", shell], &[]);
        assert_eq!(r.code, 0, "{r:?}");
        assert!(r.stdout.len() > 1000, "{shell}: {}", r.stdout);
        for verb in VERBS {
            // zsh lists `'plan:Show what…'`, fish `-a "plan" -d '…'`.
            let named = r.stdout.contains(&format!("'{verb}:"))
                || r.stdout.contains(&format!("\"{verb}\""));
            assert!(named, "{shell} completion does not name `{verb}`");
        }
    }
    let bad = run(&["completions", "tcsh"], &[]);
    assert_eq!(bad.code, 2, "{bad:?}");
}

#[test]
fn man_page_renders_and_names_every_verb() {
    let r = run(&["man"], &[]);
    assert_eq!(r.code, 0, "{r:?}");
    let roff = &r.stdout;
    assert!(roff.contains(".TH dockhand 1"), "{roff}");
    for section in [".SH NAME", ".SH SYNOPSIS", ".SH OPTIONS", ".SH SUBCOMMANDS"] {
        assert!(roff.contains(section), "{section} missing");
    }
    let has_man = Command::new("man").arg("--version").output().is_ok();
    let text = if has_man {
        let mut man = Command::new("man");
        man.args(["-l", "-"])
            .env("MANWIDTH", "100")
            .env("MAN_KEEP_FORMATTING", "0");
        let out = support::output_with_stdin(man, roff.as_bytes());
        assert!(out.status.success(), "{out:?}");
        assert_eq!(String::from_utf8_lossy(&out.stderr), "", "man warned");
        // Bold and underline as overstrikes (`N\x08N`, `_\x08x`) when not on a terminal.
        let raw = String::from_utf8(out.stdout).unwrap();
        let mut text = String::new();
        let mut chars = raw.chars().peekable();
        while let Some(c) = chars.next() {
            if chars.peek() == Some(&'\u{8}') {
                chars.next();
            } else {
                text.push(c);
            }
        }
        text
    } else {
        eprintln!("man is not installed: the roff structure was checked, not its rendering");
        roff.clone()
    };
    assert!(
        text.contains("Declarative, GitOps") && text.contains("DOCKHAND_STATE_DIR"),
        "{text}"
    );
    for verb in VERBS {
        assert!(
            text.contains(&format!("dockhand-{verb}(1)"))
                || text.contains(&format!("dockhand\\-{verb}(1)")),
            "`{verb}` missing:\n{text}"
        );
    }

    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_string_lossy().to_string();
    let r = run(&["man", "--dir", &d], &[]);
    assert_eq!(r.code, 0, "{r:?}");
    for page in ["dockhand.1", "dockhand-plan.1", "dockhand-run.1"] {
        let text = std::fs::read_to_string(dir.path().join(page)).unwrap();
        assert!(
            text.starts_with(".ie") && text.contains(".SH NAME"),
            "{page}: {text}"
        );
    }
    let plan = std::fs::read_to_string(dir.path().join("dockhand-plan.1")).unwrap();
    assert!(plan.contains("detailed\\-exitcode"), "{plan}");
}

/// Datagrams from the agent on the test's NOTIFY_SOCKET, with when each arrived.
struct Notices {
    socket: UnixDatagram,
    seen: Vec<(Instant, String)>,
}

impl Notices {
    /// Waits up to `within` for a datagram holding the line `line`; returns when it came.
    fn wait_for(&mut self, line: &str, within: Duration, agent: &Agent) -> Instant {
        let t = Instant::now();
        if let Some((at, _)) = self.seen.iter().find(|(_, m)| m.lines().any(|l| l == line)) {
            return *at;
        }
        let mut buf = vec![0u8; 4096];
        loop {
            let left = within.checked_sub(t.elapsed()).unwrap_or_else(|| {
                panic!(
                    "no {line} within {within:?}; got {:?}\nagent:\n{}",
                    self.seen,
                    agent.log()
                )
            });
            self.socket
                .set_read_timeout(Some(left.max(Duration::from_millis(1))))
                .unwrap();
            if let Ok(n) = self.socket.recv(&mut buf) {
                let msg = String::from_utf8_lossy(&buf[..n]).to_string();
                let (hit, at) = (msg.lines().any(|l| l == line), Instant::now());
                self.seen.push((at, msg));
                if hit {
                    return at;
                }
            }
        }
    }

    /// Receives everything that arrives for `span`.
    fn collect(&mut self, span: Duration) {
        let t = Instant::now();
        let mut buf = vec![0u8; 4096];
        while let Some(left) = span.checked_sub(t.elapsed()) {
            self.socket
                .set_read_timeout(Some(left.max(Duration::from_millis(1))))
                .unwrap();
            if let Ok(n) = self.socket.recv(&mut buf) {
                let msg = String::from_utf8_lossy(&buf[..n]).to_string();
                self.seen.push((Instant::now(), msg));
            }
        }
    }

    fn count(&self, line: &str, after: Instant) -> usize {
        self.seen
            .iter()
            .filter(|(at, m)| *at >= after && m.lines().any(|l| l == line))
            .count()
    }
}

fn terminate(agent: &mut Agent) -> std::process::ExitStatus {
    let pid = agent.child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let t = Instant::now();
    loop {
        if let Some(status) = agent.child.try_wait().unwrap() {
            return status;
        }
        assert!(t.elapsed() < Duration::from_secs(30), "{}", agent.log());
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn agent_tells_systemd_ready_watchdog_and_stopping_and_writes_no_escape_codes() {
    let s = Stack::new("sdnotify");
    let v1 = s.image("v1");
    s.write(&format!(
        "services:\n  web:\n    image: {v1}\n    stop_grace_period: 1s\n"
    ));
    let sock_path = s.path().join("notify.sock");
    let mut notices = Notices {
        socket: UnixDatagram::bind(&sock_path).unwrap(),
        seen: Vec::new(),
    };
    let sock = sock_path.to_string_lossy().to_string();
    // A 1 s watchdog: pings every 0.5 s.
    let env = [
        ("NOTIFY_SOCKET", sock.as_str()),
        ("WATCHDOG_USEC", "1000000"),
    ];
    let mut agent = Agent::start_env(&s, &["--poll", "60s", "--resync", "60s"], &env);
    let ready = notices.wait_for("READY=1", Duration::from_secs(90), &agent);
    // READY=1 comes after the first pass: the service is already deployed and serving.
    let web = s.container("web");
    assert_eq!(
        docker_ok(&["inspect", "--format", "{{.State.Running}}", &web]),
        "true"
    );
    let addr = agent.addr();
    assert!(
        support::agent::get(&addr, "/healthz").contains("ok"),
        "port not serving"
    );
    assert!(
        notices
            .seen
            .iter()
            .any(|(_, m)| m.lines().any(|l| l.starts_with("STATUS=in sync at "))),
        "{:?}",
        notices.seen
    );
    // Pings go on while the agent idles: every 0.5 s, so 4 or 5 in 2.2 s.
    let idle = Instant::now();
    notices.collect(Duration::from_millis(2200));
    let pings = notices.count("WATCHDOG=1", idle);
    assert!(
        (4..=6).contains(&pings),
        "{pings} pings: {:?}",
        notices.seen
    );
    assert!(notices.count("WATCHDOG=1", Instant::now() - Duration::from_secs(600)) > pings);
    assert_eq!(notices.count("STOPPING=1", ready), 0);

    let status = terminate(&mut agent);
    assert!(
        status.success(),
        "{status:?}
{}",
        agent.log()
    );
    notices.wait_for("STOPPING=1", Duration::from_secs(5), &agent);
    assert_eq!(notices.count("READY=1", ready), 1, "{:?}", notices.seen);

    // Its stderr went to a pipe: plain text, no escape code anywhere.
    let log = agent.log();
    assert!(log.contains("listening on http://"), "{log}");
    assert!(!log.contains('\u{1b}'), "escape codes on a pipe:\n{log:?}");

    // Again with JSON logs (the host is in sync now): every stderr line is one JSON object.
    notices.seen.clear();
    let mut agent = Agent::start_env(
        &s,
        &["--poll", "60s", "--resync", "60s", "--log-format", "json"],
        &env,
    );
    let ready = notices.wait_for("READY=1", Duration::from_secs(60), &agent);
    assert!(terminate(&mut agent).success(), "{}", agent.log());
    notices.wait_for("STOPPING=1", Duration::from_secs(5), &agent);
    assert_eq!(notices.count("READY=1", ready), 1);
    let messages = json_messages(&agent.log());
    for want in [
        "listening on http://",
        "stopping after the step in flight",
        "dockhand agent: stopped",
    ] {
        assert_eq!(
            messages.iter().filter(|m| m.contains(want)).count(),
            1,
            "`{want}` not once in {messages:#?}"
        );
    }
}

/// The `message` of every line of a JSON log; panics on a line that is not a JSON object
/// with a level and a message.
fn json_messages(stderr: &str) -> Vec<String> {
    assert!(!stderr.trim().is_empty(), "no log at all");
    stderr
        .lines()
        .map(|line| {
            let v: serde_json::Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("not a JSON line ({e}): {line:?}\nin:\n{stderr}"));
            assert!(v["level"].is_string(), "{line}");
            v["fields"]["message"]
                .as_str()
                .unwrap_or_else(|| panic!("no message: {line}"))
                .to_string()
        })
        .collect()
}

#[test]
fn apply_on_pipes_writes_no_escape_codes_and_json_logs_hold_each_step_once() {
    let s = Stack::new("pipes");
    let (api, web) = (s.image("api"), s.image("web"));
    s.write(&format!(
        "services:\n  api:\n    image: {api}\n    stop_grace_period: 1s\n  web:\n    image: {web}\n    stop_grace_period: 1s\n    depends_on: [api]\n"
    ));
    // Text logs on pipes: the plan (stdout) and the progress (stderr) are plain.
    let plan = s.dockhand(&["plan"]);
    assert_eq!(plan.code, 0, "{plan:?}");
    assert!(plan.stdout.contains("  + container "), "{plan:?}");
    // On a terminal (a pty from script(1)) the plan's symbols are coloured, unless NO_COLOR.
    let on_tty = |env: &[(&str, &str)]| -> String {
        let line = std::iter::once(support::bin().to_string_lossy().to_string())
            .chain(s.with_source(&["plan"]))
            .collect::<Vec<_>>()
            .join(" ");
        let mut cmd = Command::new("script");
        cmd.args(["-qec", &line, "/dev/null"])
            .env("TERM", "xterm-256color")
            .env_remove("NO_COLOR")
            .env_remove("CLICOLOR")
            .env_remove("CLICOLOR_FORCE")
            .stdin(Stdio::null());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let out = cmd.output().expect("running script(1)");
        assert!(out.status.success(), "{out:?}");
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    let coloured = on_tty(&[]);
    assert!(
        coloured.contains("  \u{1b}[32m+\u{1b}[0m container "),
        "{coloured:?}"
    );
    let plain = on_tty(&[("NO_COLOR", "1")]);
    assert!(
        plain.contains("  + container ") && !plain.contains('\u{1b}'),
        "{plain:?}"
    );

    let r = s.dockhand(&["apply", "--yes"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stderr.contains("s] preflight: all checks passed"),
        "{r:?}"
    );
    for out in [&plan.stdout, &plan.stderr, &r.stdout, &r.stderr] {
        assert!(!out.contains('\u{1b}'), "escape codes on a pipe: {out:?}");
    }
    // The same deploy again, changed, with JSON logs: every line JSON, each step once.
    docker_ok(&["rm", "-f", &s.container("web")]);
    let r = s.dockhand(&["apply", "--yes", "--log-format", "json"]);
    assert_eq!(r.code, 0, "{r:?}");
    let messages = json_messages(&r.stderr);
    let web_c = s.container("web");
    for step in [
        "preflight: all checks passed".to_string(),
        format!("{web_c}: creating"),
    ] {
        assert_eq!(
            messages.iter().filter(|m| **m == step).count(),
            1,
            "`{step}` not once in {messages:#?}"
        );
    }
    let mut unique = messages.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), messages.len(), "a line twice: {messages:#?}");
    // A failure is a JSON line too.
    let bad = s.dockhand(&[
        "apply",
        "--yes",
        "--log-format",
        "json",
        "--policy",
        "/nonexistent/policy.yaml",
    ]);
    assert_ne!(bad.code, 0, "{bad:?}");
    assert!(
        json_messages(&bad.stderr)
            .iter()
            .any(|m| m.starts_with("error:")),
        "{bad:?}"
    );
}
