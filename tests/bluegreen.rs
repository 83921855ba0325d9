//! Blue/green releases behind a real Traefik 3, under steady load: zero failed requests on a
//! swap, on a failed health gate and on a declarative flip of `release.active`.

mod support;

use std::time::{Duration, Instant};

#[allow(unused_imports)]
use support::docker;
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

/// A blue/green `web` with extra `health` and `release` fields (YAML flow-map fragments, each
/// starting with `, `) and extra top-level service lines.
fn web_with(host: &str, img: &str, health: &str, release: &str, rest: &str) -> String {
    format!(
        "networks: {{proxy: {{}}}}\nservices:\n  web:\n    image: {img}\n    networks: [proxy]\n    route: {{host: {host}, port: 8080}}\n    health: {{cmd: [wget, -q, -O, /dev/null, 'http://127.0.0.1:8080/readyz'], interval: 1s, timeout: 2s, retries: 2{health}}}\n    stop_grace_period: 1s\n    release: {{strategy: blue-green{release}}}\n{rest}"
    )
}

fn history_outcomes(s: &support::Stack) -> Vec<String> {
    let h = s.dockhand(&["history", "--json"]);
    let v: serde_json::Value = serde_json::from_str::<serde_json::Value>(&h.stdout)
        .expect("history json")["deploys"]
        .clone();
    v.as_array()
        .expect("array")
        .iter()
        .map(|d| d["outcome"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[test]
fn failed_smoke_check_after_the_switch_rolls_back_with_zero_failed_requests() {
    let x = setup("bgsmoke");
    let (v1, v2) = (x.s.image("v1"), x.s.image("v2"));
    // Seed 004's check: 200 ok, or 503 degraded, accepted.
    let smoke = |path: &str| {
        format!(", smoke: [{{http: {{port: 8080, path: {path}, status: [200, 503]}}}}]")
    };
    x.s.write(&web_with(&x.host, &v1, "", &smoke("/"), ""));
    assert_eq!(x.s.dockhand(&["apply", "--yes"]).code, 0);
    x.traefik.wait_for(&x.host, "v1", Duration::from_secs(20));

    // v2 passes its gate but its smoke check finds no /version (404).
    x.s.write(&web_with(&x.host, &v2, "", &smoke("/version"), ""));
    let plan = x.s.dockhand(&["plan"]);
    assert!(
        plan.stdout.contains("smoke smoke[0]: GET :8080/version"),
        "{plan:?}"
    );
    let load = Load::start(x.traefik.web, &x.host, RATE, Duration::from_secs(90));
    std::thread::sleep(Duration::from_millis(500));
    let r = x.s.dockhand(&["apply", "--yes"]);
    let done = Instant::now();
    std::thread::sleep(Duration::from_secs(1));
    let seen = load.finish();
    assert_ne!(r.code, 0, "{r:?}");
    assert!(
        r.stderr.contains("smoke check smoke[0] failed") && r.stderr.contains("still serves"),
        "{r:?}"
    );
    assert_no_failures(&seen, "failed smoke");
    let late: Vec<&str> = seen
        .responses
        .iter()
        .filter(|(t, _, _)| *t > done)
        .map(|(_, _, b)| b.trim())
        .collect();
    assert!(
        !late.is_empty() && late.iter().all(|b| *b == "v1"),
        "after the rollback every response must come from v1"
    );
    assert_eq!(state(&format!("{}-web-blue", x.s.name)), "running");
    assert_eq!(state(&format!("{}-web-green", x.s.name)), "exited");
    assert_eq!(history_outcomes(&x.s)[0], "rolled-back");
    let again = x.s.dockhand(&["apply", "--yes"]);
    assert!(
        again.code != 0 && again.stderr.contains("quarantined"),
        "{again:?}"
    );
}

#[test]
fn killed_between_switch_and_retire_the_next_run_leaves_one_color_and_no_failed_request() {
    use std::io::BufRead;
    let x = setup("bgkill");
    let (v1, v2) = (x.s.image("v1"), x.s.image("v2"));
    x.s.write(&body(&x.host, &v1, "readyz", None));
    assert_eq!(x.s.dockhand(&["apply", "--yes"]).code, 0);
    x.traefik.wait_for(&x.host, "v1", Duration::from_secs(20));

    x.s.write(&body(&x.host, &v2, "readyz", None));
    let load = Load::start(x.traefik.web, &x.host, RATE, Duration::from_secs(120));
    std::thread::sleep(Duration::from_millis(500));
    let mut child = x.s.spawn_dockhand(&["apply", "--yes"]);
    let green = format!("{}-web-green", x.s.name);
    let blue = format!("{}-web-blue", x.s.name);
    // "serving" is printed once Traefik routes to green, before blue is drained.
    let stderr = child.stderr.take().expect("stderr");
    let mut lines = std::io::BufReader::new(stderr).lines();
    let mut seen_lines = Vec::new();
    let killed = loop {
        match lines.next() {
            Some(Ok(line)) => {
                let hit = line.contains(&format!("{green}: serving ("));
                seen_lines.push(line);
                if hit {
                    child.kill().expect("kill -9");
                    break true;
                }
            }
            _ => break false,
        }
    };
    let _ = child.wait();
    assert!(
        killed,
        "apply never reached the switch:\n{}",
        seen_lines.join("\n")
    );
    assert_eq!(state(&green), "running");
    assert_eq!(
        state(&blue),
        "running",
        "killed before the retire: both colors run"
    );

    let plan = x.s.dockhand(&["plan"]);
    assert!(
        plan.stdout.contains(&blue) && plan.stdout.contains("retire"),
        "{plan:?}"
    );
    let r = x.s.dockhand(&["apply", "--yes"]);
    assert_eq!(r.code, 0, "{r:?}");
    std::thread::sleep(Duration::from_secs(1));
    let seen = load.finish();
    assert_no_failures(&seen, "kill -9 mid-swap, then apply");
    assert_eq!(state(&green), "running");
    assert_eq!(state(&blue), "exited");
    let again = x.s.dockhand(&["plan", "--detailed-exitcode"]);
    assert_eq!(again.code, 0, "{again:?}");
    let outcomes = history_outcomes(&x.s);
    assert_eq!(outcomes[..2], ["succeeded", "interrupted"], "{outcomes:?}");
}

#[test]
fn maintenance_takes_the_route_during_downtime_steps_and_a_dependent_waits_for_a_color() {
    let x = setup("bgmaint");
    let (v1, v2) = (x.s.image("v1"), x.s.image("v2"));
    let maint = x.s.image("maintenance");
    // dockhand's own probe gates on the body; the smoke check wants the new version's page;
    // the `before` hook stands in for a migration the old version must not serve through.
    let stack = |img: &str, marker: &str| {
        web_with(
            &x.host,
            img,
            ", http: {port: 8080, path: /readyz, body: ok}",
            &format!(", smoke: [{{http: {{port: 8080, path: /, body: {marker}}}}}], maintenance: {{image: {maint}}}"),
            &format!("    hooks: {{before: [[sh, -c, 'sleep 3; echo migrated']]}}\n  client:\n    image: {img}\n    networks: [proxy]\n    depends_on: {{web: healthy}}\n"),
        )
    };
    x.s.write(&stack(&v1, "v1"));
    let r = x.s.dockhand(&["apply", "--yes"]);
    assert_eq!(r.code, 0, "{r:?}");
    // The dependent started only once a color of web served.
    let serving = r.stderr.find("-web-blue: serving (").expect("web served");
    let client = r.stderr.find("-client: creating").expect("client created");
    assert!(serving < client, "{r:?}");
    let started = |n: &str| docker_ok(&["inspect", "--format", "{{.State.StartedAt}}", n]);
    assert!(started(&x.s.container("client")) > started(&format!("{}-web-blue", x.s.name)));
    x.traefik.wait_for(&x.host, "v1", Duration::from_secs(20));

    x.s.write(&stack(&v2, "v2"));
    let plan = x.s.dockhand(&["plan"]);
    assert!(
        plan.stdout.contains("maintenance:") && plan.stdout.contains("gate: GET :8080/readyz"),
        "{plan:?}"
    );
    let (seen, done) = apply_under_load(&x, true);
    assert_no_failures(&seen, "release behind a maintenance page");
    // Responses are recorded as they complete, by 4 workers: judge by when each request was
    // sent, so one already in flight to v1 when the page took over is not counted against it.
    let first_maint = seen
        .responses
        .iter()
        .find(|(_, _, b)| b.trim() == "maintenance")
        .map(|(t, _, _)| *t)
        .expect("the maintenance page served during the release");
    let late_v1 = seen
        .responses
        .iter()
        .zip(&seen.latencies)
        .filter(|((t, _, b), took)| *t - **took > first_maint && b.trim() == "v1")
        .count();
    assert_eq!(
        late_v1, 0,
        "once the maintenance page took the route, the old version must not serve again"
    );
    assert!(
        seen.responses
            .iter()
            .filter(|(t, _, _)| *t > done)
            .all(|(_, _, b)| b.trim() == "v2"),
        "after the release every response comes from v2"
    );
    assert!(
        !support::docker(&["inspect", &format!("{}-web-maintenance", x.s.name)])
            .status
            .success(),
        "the maintenance container is removed"
    );
    let again = x.s.dockhand(&["plan", "--detailed-exitcode"]);
    assert_eq!(again.code, 0, "{again:?}");
}

/// Runs `dockhand apply` and kills it (SIGKILL) `delay` after it prints a line containing one
/// of `markers`; on error, the apply ended first and this is what it printed.
fn kill_apply_at(s: &support::Stack, markers: &[&str], delay: Duration) -> Result<(), String> {
    use std::io::BufRead;
    let mut child = s.spawn_dockhand(&["apply", "--yes"]);
    let stderr = child.stderr.take().expect("stderr");
    let mut seen = Vec::new();
    for line in std::io::BufReader::new(stderr)
        .lines()
        .map_while(Result::ok)
    {
        let hit = markers.iter().any(|m| line.contains(m));
        seen.push(line);
        if hit {
            std::thread::sleep(delay);
            child.kill().expect("kill -9");
            let _ = child.wait();
            return Ok(());
        }
    }
    let _ = child.wait();
    Err(seen.join("\n"))
}

#[test]
fn killed_at_each_step_of_a_release_the_next_run_leaves_one_serving_color_and_no_failed_request() {
    let x = setup("bgsteps");
    let v0 = x.s.image("v0");
    x.s.write(&body(&x.host, &v0, "readyz", None));
    assert_eq!(x.s.dockhand(&["apply", "--yes"]).code, 0);
    x.traefik.wait_for(&x.host, "v0", Duration::from_secs(20));
    let (blue, green) = (
        format!("{}-web-blue", x.s.name),
        format!("{}-web-green", x.s.name),
    );
    // The step, the progress lines that open it, and how long after it the kill lands. The
    // new color is created, or the idle one replaced, depending on what the last step left.
    let up: &[&str] = &[
        ": creating (blue/green)",
        ": replacing the idle container",
        ": starting the idle color",
    ];
    let steps: [(&str, &[&str], u64); 5] = [
        ("pull", &["pulling "], 0),
        ("create", up, 0),
        ("gate", up, 700),
        ("switch", &[": serving ("], 0),
        ("retire", &[": draining"], 300),
    ];
    for (n, (step, marker, delay)) in steps.into_iter().enumerate() {
        let marker_text = format!("v{}", n + 1);
        let img = x.s.image(&marker_text);
        x.s.write(&body(&x.host, &img, "readyz", None));
        let load = Load::start(x.traefik.web, &x.host, RATE, Duration::from_secs(120));
        std::thread::sleep(Duration::from_millis(300));
        if let Err(log) = kill_apply_at(&x.s, marker, Duration::from_millis(delay)) {
            panic!("{step}: the apply never printed {marker:?}:\n{log}");
        }
        let r = x.s.dockhand(&["apply", "--yes"]);
        assert_eq!(r.code, 0, "{step}: the run after the kill: {r:?}");
        x.traefik
            .wait_for(&x.host, &marker_text, Duration::from_secs(20));
        std::thread::sleep(Duration::from_millis(700));
        let seen = load.finish();
        assert_no_failures(&seen, &format!("kill -9 at {step}, then apply"));
        let running: Vec<&String> = [&blue, &green]
            .into_iter()
            .filter(|c| support::docker(&["inspect", c]).status.success() && state(c) == "running")
            .collect();
        assert_eq!(running.len(), 1, "{step}: colors running: {running:?}");
        let again = x.s.dockhand(&["plan", "--detailed-exitcode"]);
        assert_eq!(again.code, 0, "{step}: not converged: {again:?}");
    }
}

/// Issue 18, item 12: a shell healthcheck ending in a `# comment` (and spanning lines) was
/// spliced into dockhand's `{ …; }` wrapper, which then never passed: the color stayed
/// unhealthy and Traefik never routed to it. Wrapped as its own `sh -c` argument, it turns
/// healthy and serves.
#[test]
fn shell_healthcheck_with_a_trailing_comment_turns_healthy_and_serves() {
    let x = setup("bgcomment");
    let v1 = x.s.image("v1");
    x.s.write(&format!(
        "networks: {{proxy: {{}}}}\nservices:\n  web:\n    image: {v1}\n    networks: [proxy]\n    route: {{host: {host}, port: 8080}}\n    health:\n      shell: |\n        # the app's own page\n        wget -q -O /dev/null http://127.0.0.1:8080/readyz; # ready?\n      interval: 1s\n      timeout: 2s\n      retries: 2\n    stop_grace_period: 1s\n    release: {{strategy: blue-green}}\n",
        host = x.host
    ));
    let r = x.s.dockhand(&["apply", "--yes"]);
    assert_eq!(r.code, 0, "{r:?}");
    let name = format!("{}-web-blue", x.s.name);
    let started = Instant::now();
    let health = loop {
        let h = docker_ok(&["inspect", "--format", "{{.State.Health.Status}}", &name]);
        if h == "healthy" || started.elapsed() > Duration::from_secs(20) {
            break h;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(health, "healthy", "{name} never turned healthy");
    x.traefik.wait_for(&x.host, "v1", Duration::from_secs(20));
    let again = x.s.dockhand(&["plan", "--detailed-exitcode"]);
    assert_eq!(again.code, 0, "{again:?}");
}
