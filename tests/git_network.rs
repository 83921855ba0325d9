//! Git network operations against hostile or broken remotes (issue 17): a remote that accepts
//! and never answers times out instead of hanging the agent's poller, and a token given in a
//! URL's user part never shows in what dockhand prints.

mod support;

use std::time::{Duration, Instant};

use support::{origin, push, Stack};

/// Runs `args` with a deadline: (exit code, stderr, time taken); None when it had to be killed.
fn run_bounded(args: &[&str], within: Duration) -> Option<(i32, String, Duration)> {
    let dir = tempfile::tempdir().unwrap();
    let err = dir.path().join("stderr");
    let started = Instant::now();
    let mut child = std::process::Command::new(support::bin())
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&err).unwrap())
        .spawn()
        .unwrap();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let text = std::fs::read_to_string(&err).unwrap_or_default();
            return Some((status.code().unwrap_or(-1), text, started.elapsed()));
        }
        if started.elapsed() > within {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Regression (issue 17): git network operations had no timeout; a remote that accepts the
/// connection and then says nothing hung `validate`, `plan` and the agent's poller for good.
#[test]
fn a_silent_remote_times_out() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in listener.incoming().map_while(Result::ok) {
            held.push(s);
        }
    });
    let state = tempfile::tempdir().unwrap();
    let url = format!("http://{addr}/desired.git");
    let state_arg = state.path().to_string_lossy().to_string();
    let args = [
        "validate",
        "--source",
        &url,
        "--ref",
        "main",
        "--path",
        ".",
        "--state-dir",
        &state_arg,
    ];
    let outcome = run_bounded(&args, Duration::from_secs(90));
    let Some((code, stderr, took)) = outcome else {
        panic!("validate against a silent remote still ran after 90 s");
    };
    eprintln!("git_network: silent remote: exit {code} after {took:?}: {stderr}");
    assert_ne!(code, 0, "{stderr}");
    assert!(took < Duration::from_secs(60), "{took:?}");
    assert!(stderr.contains("cannot fetch from"), "{stderr}");
    assert!(stderr.contains("hint:"), "{stderr}");
}

/// Regression (issue 17): a token given as the user part of an https URL
/// (`https://TOKEN@host/repo.git`, as some forges document) was printed in errors.
#[test]
fn a_token_in_the_url_user_part_never_shows() {
    let s = Stack::new("giturl");
    origin(s.path());
    push(&s, "services: {}\n", "v1", false);
    let token = "tok-4f1b8c2a-in-url";
    let base = support::githttp::serve(s.path(), "x-access-token", "the-real-token");
    let port = base.rsplit(':').next().unwrap().to_string();
    let state = s.state_dir().to_string_lossy().to_string();
    for url in [
        format!("http://{token}@127.0.0.1:{port}/remote.git"),
        format!("http://bot:{token}@127.0.0.1:{port}/remote.git"),
        format!("http://{token}@127.0.0.1:1/remote.git"),
    ] {
        let args = [
            "validate",
            "--source",
            &url,
            "--ref",
            "main",
            "--path",
            ".",
            "--state-dir",
            &state,
        ];
        let (code, stderr, _) = run_bounded(&args, Duration::from_secs(60)).expect("finished");
        assert_ne!(code, 0, "{url}: {stderr}");
        assert!(!stderr.contains(token), "{url}: the token shows: {stderr}");
        assert!(stderr.contains("***@127.0.0.1"), "{url}: {stderr}");
    }
}
