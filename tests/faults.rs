//! Faults injected around a real Engine: a registry answering 500, and one that accepts
//! connections and never answers. Each must end in a clear, bounded refusal that touches
//! nothing running, and a record of the failure.

mod support;

use std::io::{Read, Write};
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

/// Deploys `v1`, then asks for an image from `registry`: the apply must be refused within
/// `within`, say why, leave v1 running untouched, and record the failed preflight.
fn refused_cleanly(name: &str, registry: &str, expect: &[&str], within: Duration) {
    let s = Stack::new(name);
    let v1 = s.image("v1");
    let web = s.container("web");
    let body =
        |img: &str| format!("services:\n  web:\n    image: {img}\n    stop_grace_period: 1s\n");
    s.write(&body(&v1));
    let r = s.dockhand(&["apply", "--yes"]);
    assert_eq!(r.code, 0, "{r:?}");
    let before = docker_ok(&["inspect", "--format", "{{.Id}} {{.State.StartedAt}}", &web]);

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
    let v: serde_json::Value = serde_json::from_str(&h.stdout).unwrap();
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
        &["Timeout exceeded", "did not answer"],
        Duration::from_secs(60),
    );
}
