//! Issue 18 review defect A, on the real Engine behind a real Traefik: a blue/green color
//! changed by hand is named in the plan and put back — in place when the Engine allows it
//! (same container id, no release), else by a normal release to the other color that never
//! stops the serving one first — after which the plan is empty.

mod support;

use std::time::{Duration, Instant};

use support::traefik::{Load, Traefik};
use support::{docker, docker_ok, Stack};

struct Setup {
    s: Stack,
    traefik: Traefik,
    host: String,
    /// `<stack>-web-blue`, serving after [`serving_blue`].
    blue: String,
    green: String,
    /// The Traefik network, `<stack>_proxy`.
    proxy: String,
}

/// A blue/green `web` behind Traefik, applied: blue serves v1 and the plan is empty.
fn serving_blue(prefix: &str) -> Setup {
    let (s, traefik, host) = Traefik::with_stack(prefix);
    let v1 = s.image("v1");
    s.write(&format!(
        "networks: {{proxy: {{}}}}\nservices:\n  web:\n    image: {v1}\n    networks: [proxy]\n    restart: unless-stopped\n    route: {{host: {host}, port: 8080}}\n    health: {{cmd: [wget, -q, -O, /dev/null, 'http://127.0.0.1:8080/readyz'], interval: 1s, timeout: 2s, retries: 2}}\n    stop_grace_period: 1s\n    release: {{strategy: blue-green}}\n"
    ));
    let r = s.dockhand(&["apply", "--yes"]);
    assert_eq!(r.code, 0, "{r:?}");
    traefik.wait_for(&host, "v1", Duration::from_secs(20));
    let r = s.dockhand(&["plan", "--detailed-exitcode"]);
    assert_eq!(r.code, 0, "converged before the hand edit: {r:?}");
    let (blue, green) = (
        format!("{}-web-blue", s.name),
        format!("{}-web-green", s.name),
    );
    let proxy = format!("{}_proxy", s.name);
    Setup {
        s,
        traefik,
        host,
        blue,
        green,
        proxy,
    }
}

fn id(name: &str) -> String {
    docker_ok(&["inspect", "--format", "{{.Id}}", name])
}

fn inspect(name: &str, format: &str) -> String {
    docker_ok(&["inspect", "--format", format, name])
}

fn exists(name: &str) -> bool {
    docker(&["inspect", name]).status.success()
}

/// `plan` after the hand edit: exit 2 and every line of `expect` in its output.
fn planned(s: &Stack, expect: &[String]) {
    let r = s.dockhand(&["plan", "--detailed-exitcode"]);
    assert_eq!(r.code, 2, "the hand edit must show as a change: {r:?}");
    for line in expect {
        assert!(
            r.stdout.contains(line.as_str()),
            "missing `{line}` in:\n{}",
            r.stdout
        );
    }
    println!("{}", r.stdout);
}

/// `status` must not call the host in sync, and names the drift.
fn status_drifted(s: &Stack) {
    let r = s.dockhand(&["status"]);
    assert_ne!(r.code, 0, "status must not say in sync: {r:?}");
    assert!(r.stdout.contains("by hand"), "{r:?}");
}

/// `apply` puts it back and the next plan is empty; returns apply's output.
fn converges(s: &Stack) -> String {
    let r = s.dockhand(&["apply", "--yes"]);
    assert_eq!(r.code, 0, "{r:?}");
    let again = s.dockhand(&["plan", "--detailed-exitcode"]);
    assert_eq!(again.code, 0, "not converged after apply: {again:?}");
    r.stdout
}

/// A network the test made by hand (dockhand owns nothing of it), removed when dropped: after
/// the stack's guard, so that no container is attached any more.
struct HandNetwork(String);

impl Drop for HandNetwork {
    fn drop(&mut self) {
        let _ = docker(&["network", "rm", &self.0]);
    }
}

#[test]
fn serving_color_disconnected_from_its_proxy_network_is_reconnected_in_place_and_serves_again() {
    let extra = HandNetwork(support::unique("bgdextra"));
    let x = serving_blue("bgdnet");
    let before = id(&x.blue);
    docker_ok(&["network", "create", &extra.0]);
    docker_ok(&["network", "disconnect", &x.proxy, &x.blue]);
    docker_ok(&["network", "connect", &extra.0, &x.blue]);
    // The outage dockhand must not call healthy: Traefik no longer reaches the color.
    let started = Instant::now();
    while matches!(support::traefik::get(x.traefik.web, &x.host), Ok((200, _))) {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "Traefik kept routing to a container off its network"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    planned(
        &x.s,
        &[
            format!(
                "~ container {}  (correct in place: networks changed by hand)",
                x.blue
            ),
            format!(
                "networks: {} disconnected by hand → reconnect {}, alias web",
                x.proxy, x.proxy
            ),
            format!(
                "networks: {} connected by hand → disconnect {}",
                extra.0, extra.0
            ),
            "1 to correct in place".into(),
        ],
    );
    status_drifted(&x.s);
    let out = converges(&x.s);
    assert!(
        !out.contains("release"),
        "corrected without a release: {out}"
    );
    assert_eq!(id(&x.blue), before, "reconnected in place, not recreated");
    assert!(!exists(&x.green), "no release: green was never created");
    let nets = inspect(
        &x.blue,
        "{{range $k, $v := .NetworkSettings.Networks}}{{$k}} {{end}}",
    );
    assert_eq!(nets.trim(), x.proxy, "only its own network again");
    let aliases = inspect(
        &x.blue,
        &format!(
            "{{{{json (index .NetworkSettings.Networks \"{}\").Aliases}}}}",
            x.proxy
        ),
    );
    assert!(aliases.contains("\"web\""), "alias back: {aliases}");
    x.traefik.wait_for(&x.host, "v1", Duration::from_secs(20));
}

#[test]
fn docker_update_of_the_serving_color_is_named_and_released_to_a_new_color_without_a_failed_request(
) {
    let x = serving_blue("bgdupd");
    docker_ok(&["update", "--cpus", "0.2", "--restart", "no", &x.blue]);
    planned(
        &x.s,
        &[
            format!("~ container {}  (release ", x.green),
            format!(
                "switch from {b}, retire {b}; restart, resources (by hand) changed)",
                b = x.blue
            ),
            "nano_cpus=200000000 (docker update)".into(),
        ],
    );
    status_drifted(&x.s);
    let load = Load::start(x.traefik.web, &x.host, 100, Duration::from_secs(90));
    std::thread::sleep(Duration::from_millis(500));
    converges(&x.s);
    std::thread::sleep(Duration::from_secs(1));
    let seen = load.finish();
    let failed = seen.failed();
    assert!(
        failed.is_empty() && seen.responses.len() > 100,
        "the serving color is never stopped first: {} of {} requests failed: {:?}",
        failed.len(),
        seen.responses.len(),
        &failed[..failed.len().min(10)]
    );
    eprintln!("drift release: {} requests, 0 failed", seen.responses.len());
    assert_eq!(inspect(&x.green, "{{.State.Status}}"), "running");
    assert_eq!(inspect(&x.green, "{{.HostConfig.NanoCpus}}"), "0");
    assert_eq!(
        inspect(&x.green, "{{.HostConfig.RestartPolicy.Name}}"),
        "unless-stopped"
    );
    assert_eq!(
        inspect(&x.blue, "{{.State.Status}}"),
        "exited",
        "the hand-edited color is drained and kept stopped"
    );
    x.traefik.wait_for(&x.host, "v1", Duration::from_secs(20));
}

#[test]
fn renamed_serving_color_is_renamed_back_in_place_without_a_release() {
    let x = serving_blue("bgdname");
    let before = id(&x.blue);
    let deploys = deploy_summaries(&x.s).len();
    let hand = format!("{}-web-x", x.s.name);
    docker_ok(&["rename", &x.blue, &hand]);
    planned(
        &x.s,
        &[
            format!(
                "~ container {}  (correct in place: name changed by hand)",
                x.blue
            ),
            format!(
                "name: {} renamed to {hand} by hand → rename back to {}",
                x.blue, x.blue
            ),
            "1 to correct in place".into(),
        ],
    );
    let out = converges(&x.s);
    assert!(
        !out.contains("release"),
        "renamed back without a release: {out}"
    );
    assert_eq!(id(&x.blue), before, "renamed back, not recreated");
    assert_eq!(inspect(&x.blue, "{{.State.Status}}"), "running");
    assert!(!exists(&hand));
    assert!(!exists(&x.green), "no release: green was never created");
    let summaries = deploy_summaries(&x.s);
    assert_eq!(summaries.len(), deploys + 1, "{summaries:?}");
    assert!(
        !summaries[0].contains("release"),
        "no release recorded: {summaries:?}"
    );
    x.traefik.wait_for(&x.host, "v1", Duration::from_secs(20));
}

/// The summaries of the deploy records, newest first.
fn deploy_summaries(s: &Stack) -> Vec<String> {
    let h = s.dockhand(&["history", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&h.stdout).expect("history json");
    v.as_array()
        .expect("array")
        .iter()
        .map(|d| d["summary"].as_str().unwrap_or_default().to_string())
        .collect()
}
