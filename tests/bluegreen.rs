//! Blue/green releases behind a real Traefik 3, under steady load: zero failed requests on a
//! swap, on a failed health gate and on a declarative flip of `release.active`.

mod support;

use std::time::{Duration, Instant};

use support::traefik::{Load, Traefik};
use support::{docker_ok, Stack};

const RATE: u32 = 250;

struct Setup {
    s: Stack,
    traefik: Traefik,
    host: String,
}

fn setup(prefix: &str) -> Setup {
    let (s, traefik, host) = Traefik::with_stack(prefix);
    Setup { s, traefik, host }
}

fn body(host: &str, img: &str, readyz: &str, active: Option<&str>) -> String {
    let active = active.map(|a| format!(", active: {a}")).unwrap_or_default();
    format!(
        "networks: {{proxy: {{}}}}\nservices:\n  web:\n    image: {img}\n    networks: [proxy]\n    route: {{host: {host}, port: 8080}}\n    health: {{cmd: [wget, -q, -O, /dev/null, 'http://127.0.0.1:8080/{readyz}'], interval: 1s, timeout: 2s, retries: 2}}\n    release: {{strategy: blue-green{active}}}\n"
    )
}

fn assert_no_failures(seen: &support::traefik::Seen, what: &str) {
    let failed = seen.failed();
    assert!(
        failed.is_empty(),
        "{what}: {} of {} requests failed: {:?}",
        failed.len(),
        seen.responses.len(),
        &failed[..failed.len().min(10)]
    );
    eprintln!("{what}: {} requests, 0 failed", seen.responses.len());
}

fn state(name: &str) -> String {
    docker_ok(&["inspect", "--format", "{{.State.Status}}", name])
}

/// Runs `dockhand apply` under load and returns what the load saw after apply returned.
fn apply_under_load(x: &Setup, expect_ok: bool) -> (support::traefik::Seen, Instant) {
    let load = Load::start(x.traefik.web, &x.host, RATE, Duration::from_secs(90));
    std::thread::sleep(Duration::from_millis(500));
    let r = x.s.dockhand(&["apply", "--yes"]);
    assert_eq!(r.code == 0, expect_ok, "{r:?}");
    let done = Instant::now();
    std::thread::sleep(Duration::from_secs(1));
    (load.finish(), done)
}

#[test]
fn swap_under_load_has_zero_failed_requests_and_ends_on_the_new_version() {
    let x = setup("bgswap");
    let (v1, v2) = (x.s.image("v1"), x.s.image("v2"));
    x.s.write(&body(&x.host, &v1, "readyz", None));
    let r = x.s.dockhand(&["apply", "--yes"]);
    assert_eq!(r.code, 0, "{r:?}");
    x.traefik.wait_for(&x.host, "v1", Duration::from_secs(20));

    x.s.write(&body(&x.host, &v2, "readyz", None));
    let plan = x.s.dockhand(&["plan"]);
    assert!(plan.stdout.contains("release"), "{plan:?}");
    let (seen, done) = apply_under_load(&x, true);
    assert!(
        seen.responses.len() > 500,
        "too little load: {}",
        seen.responses.len()
    );
    assert_no_failures(&seen, "swap v1 -> v2");
    let late: Vec<&String> = seen
        .responses
        .iter()
        .filter(|(t, _, _)| *t > done)
        .map(|(_, _, b)| b)
        .collect();
    assert!(
        !late.is_empty() && late.iter().all(|b| b.trim() == "v2"),
        "after the swap every response must come from v2"
    );
    assert_eq!(state(&format!("{}-web-green", x.s.name)), "running");
    assert_eq!(
        state(&format!("{}-web-blue", x.s.name)),
        "exited",
        "the old color is kept stopped for rollback"
    );

    let again = x.s.dockhand(&["plan", "--detailed-exitcode"]);
    assert_eq!(again.code, 0, "{again:?}");
}

#[test]
fn failed_gate_keeps_the_old_color_serving_with_zero_failed_requests() {
    let x = setup("bggate");
    let (v1, v2) = (x.s.image("v1"), x.s.image("v2"));
    x.s.write(&body(&x.host, &v1, "readyz", None));
    assert_eq!(x.s.dockhand(&["apply", "--yes"]).code, 0);
    x.traefik.wait_for(&x.host, "v1", Duration::from_secs(20));

    // v2's healthcheck never passes.
    x.s.write(&body(&x.host, &v2, "no-such-page", None));
    let (seen, _) = apply_under_load(&x, false);
    assert_no_failures(&seen, "failed gate");
    assert!(
        seen.responses.iter().all(|(_, _, b)| b.trim() == "v1"),
        "v1 must serve throughout"
    );
    assert_eq!(state(&format!("{}-web-blue", x.s.name)), "running");
    assert_eq!(state(&format!("{}-web-green", x.s.name)), "exited");
}

#[test]
fn flipping_active_swaps_and_flipping_back_rolls_back_with_zero_failed_requests() {
    let x = setup("bgflip");
    let v1 = x.s.image("v1");
    x.s.write(&body(&x.host, &v1, "readyz", Some("blue")));
    assert_eq!(x.s.dockhand(&["apply", "--yes"]).code, 0);
    x.traefik.wait_for(&x.host, "v1", Duration::from_secs(20));
    for (active, serving, idle) in [("green", "green", "blue"), ("blue", "blue", "green")] {
        x.s.write(&body(&x.host, &v1, "readyz", Some(active)));
        let (seen, _) = apply_under_load(&x, true);
        assert_no_failures(&seen, &format!("flip to {active}"));
        assert_eq!(state(&format!("{}-web-{serving}", x.s.name)), "running");
        assert_eq!(state(&format!("{}-web-{idle}", x.s.name)), "exited");
    }
}
