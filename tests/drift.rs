//! Issue 18 item 1, on the real Engine: a change made by hand with the docker CLI to a
//! container whose spec label still matches is named in the plan (the field and what was
//! found), and apply puts it back — in place when the Engine allows it (same container id),
//! else with a new container — after which the plan is empty. A blue/green color gets the same
//! check behind a real Traefik; what needs a new container is a release to the other color.

mod support;

use std::time::{Duration, Instant};

use support::traefik::{Load, Traefik};
use support::{docker, docker_ok, Stack};

fn id(name: &str) -> String {
    docker_ok(&["inspect", "--format", "{{.Id}}", name])
}

fn inspect(name: &str, format: &str) -> String {
    docker_ok(&["inspect", "--format", format, name])
}

/// One service on an owned network, restart `unless-stopped`, applied: the converged host.
fn converged(prefix: &str) -> Stack {
    let s = Stack::new(prefix);
    let img = s.image("v1");
    s.write(&format!(
        "networks: {{app: {{}}}}\nservices:\n  web:\n    image: {img}\n    networks: [app]\n    restart: unless-stopped\n"
    ));
    let r = s.dockhand(&["apply", "--yes"]);
    assert_eq!(r.code, 0, "{r:?}");
    let r = s.dockhand(&["plan", "--detailed-exitcode"]);
    assert_eq!(r.code, 0, "converged before the hand edit: {r:?}");
    s
}

/// `plan` after the hand edit: exit 2 and every line of `expect` in its output. Returns the
/// plan text (the report quotes it).
fn planned(s: &Stack, expect: &[String]) -> String {
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
    r.stdout
}

/// `apply` puts it back and the next plan is empty; returns apply's output.
fn converges(s: &Stack) -> String {
    let r = s.dockhand(&["apply", "--yes"]);
    assert_eq!(r.code, 0, "{r:?}");
    let again = s.dockhand(&["plan", "--detailed-exitcode"]);
    assert_eq!(again.code, 0, "not converged after apply: {again:?}");
    r.stdout
}

#[test]
fn network_disconnected_by_hand_is_named_and_reconnected_in_place_with_its_alias() {
    let s = converged("drnet");
    let web = s.container("web");
    let net = format!("{}_app", s.name);
    let before = id(&web);
    docker_ok(&["network", "disconnect", &net, &web]);
    planned(
        &s,
        &[
            format!("~ container {web}  (correct in place: networks changed by hand)"),
            format!("networks: {net} disconnected by hand → reconnect {net}, alias web"),
            "1 to correct in place".into(),
        ],
    );
    let r = s.dockhand(&["status"]);
    assert_ne!(r.code, 0, "status must not say in sync: {r:?}");
    assert!(
        r.stdout.contains("drifted") && r.stdout.contains("disconnected by hand"),
        "{r:?}"
    );
    converges(&s);
    assert_eq!(id(&web), before, "reconnected in place, not recreated");
    let aliases = inspect(
        &web,
        &format!("{{{{json (index .NetworkSettings.Networks \"{net}\").Aliases}}}}"),
    );
    assert!(aliases.contains("\"web\""), "alias back: {aliases}");
    assert_eq!(inspect(&web, "{{.State.Status}}"), "running");
}

#[test]
fn restart_policy_updated_by_hand_is_named_and_updated_back() {
    let s = converged("drrestart");
    let web = s.container("web");
    let before = id(&web);
    docker_ok(&["update", "--restart", "no", &web]);
    planned(
        &s,
        &[
            format!("~ container {web}  (correct in place: restart changed by hand)"),
            "restart: no (docker update) → unless-stopped".into(),
        ],
    );
    converges(&s);
    assert_eq!(id(&web), before, "updated in place, not recreated");
    assert_eq!(
        inspect(&web, "{{.HostConfig.RestartPolicy.Name}}"),
        "unless-stopped"
    );
}

#[test]
fn memory_limit_set_by_hand_is_named_and_lifted_by_a_new_container() {
    let s = converged("drmem");
    let web = s.container("web");
    let before = id(&web);
    // The Engine wants the swap limit with the memory limit on a container without one.
    docker_ok(&["update", "--memory", "64m", "--memory-swap", "128m", &web]);
    planned(
        &s,
        &[
            format!("~ container {web}  (recreate: resources (by hand) changed)"),
            "memory=67108864 (docker update)".into(),
            "memory_swap=134217728 (docker update)".into(),
        ],
    );
    converges(&s);
    assert_ne!(id(&web), before, "Docker cannot lift a limit in place");
    assert_eq!(inspect(&web, "{{.HostConfig.Memory}}"), "0");
}

#[test]
fn container_renamed_by_hand_is_named_and_renamed_back() {
    let s = converged("drname");
    let web = s.container("web");
    let before = id(&web);
    let hand = format!("{web}-byhand");
    docker_ok(&["rename", &web, &hand]);
    planned(
        &s,
        &[
            format!("~ container {web}  (correct in place: name changed by hand)"),
            format!("name: {web} renamed to {hand} by hand → rename back to {web}"),
        ],
    );
    converges(&s);
    assert_eq!(id(&web), before, "renamed back, not recreated");
    assert_eq!(inspect(&web, "{{.State.Status}}"), "running");
}

#[test]
fn container_stopped_by_hand_is_named_and_started() {
    let s = converged("drstop");
    let web = s.container("web");
    let before = id(&web);
    docker_ok(&["stop", "-t", "1", &web]);
    planned(
        &s,
        &[
            format!("> container {web}  (start: container is exited"),
            "1 to start".into(),
        ],
    );
    converges(&s);
    assert_eq!(id(&web), before, "started, not recreated");
    assert_eq!(inspect(&web, "{{.State.Status}}"), "running");
}

#[test]
fn several_hand_edits_on_one_container_are_all_named_and_put_back_in_place() {
    let s = converged("drmany");
    let web = s.container("web");
    let net = format!("{}_app", s.name);
    let before = id(&web);
    let hand = format!("{web}-byhand");
    docker_ok(&["network", "disconnect", &net, &web]);
    docker_ok(&["update", "--restart", "always", &web]);
    docker_ok(&["rename", &web, &hand]);
    docker_ok(&["stop", "-t", "1", &hand]);
    planned(
        &s,
        &[
            format!("~ container {web}  (correct in place: name, networks, restart changed by hand; then start: container is exited"),
            format!("name: {web} renamed to {hand} by hand → rename back to {web}"),
            format!("networks: {net} disconnected by hand → reconnect {net}, alias web"),
            "restart: always (docker update) → unless-stopped".into(),
        ],
    );
    converges(&s);
    assert_eq!(id(&web), before, "put back in place, not recreated");
    assert_eq!(inspect(&web, "{{.State.Status}}"), "running");
}

/// Waits until `check` holds; returns how long it took.
fn wait_until(
    what: &str,
    agent: &support::agent::Agent,
    within: std::time::Duration,
    check: impl Fn() -> bool,
) -> std::time::Duration {
    let started = std::time::Instant::now();
    while !check() {
        assert!(
            started.elapsed() < within,
            "{what}: not within {within:?}; agent said:\n{}",
            agent.log()
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    started.elapsed()
}

/// The agent, in its one-list-call passes (resync every second, found in sync), is told by
/// the Engine's events: a network disconnected by hand is reconnected with its alias, and a
/// restart policy changed by `docker update` (which the container list cannot show) is put
/// back, each within a few seconds and without a new container.
#[test]
fn the_agent_corrects_a_network_disconnect_and_a_docker_update_from_events() {
    let s = converged("dragent");
    let web = s.container("web");
    let net = format!("{}_app", s.name);
    let before = id(&web);
    let agent = support::agent::Agent::start(&s, &["--poll", "1h", "--resync", "1h"]);
    let addr = agent.addr();
    agent.wait_in_sync(&addr, Duration::from_secs(60));
    // The passes after the first full read use the container list alone.
    std::thread::sleep(Duration::from_millis(500));

    docker_ok(&["network", "disconnect", &net, &web]);
    let attached = || {
        support::docker(&[
            "inspect",
            "--format",
            &format!("{{{{json (index .NetworkSettings.Networks \"{net}\").Aliases}}}}"),
            &web,
        ])
        .stdout
        .windows(5)
        .any(|w| w == b"\"web\"")
    };
    let took = wait_until(
        "network reconnected",
        &agent,
        Duration::from_secs(5),
        attached,
    );
    eprintln!("network disconnect corrected in {took:?}");
    println!("network disconnect corrected in {took:?}");

    docker_ok(&["update", "--restart", "no", &web]);
    let took = wait_until(
        "restart policy put back",
        &agent,
        Duration::from_secs(5),
        || inspect(&web, "{{.HostConfig.RestartPolicy.Name}}") == "unless-stopped",
    );
    println!("docker update --restart no corrected in {took:?}");
    assert_eq!(id(&web), before, "corrected in place");
    assert!(agent.log().contains("correcting drift"), "{}", agent.log());
}

/// The cost of the inspects the full observe makes: 50 managed containers, the full read
/// (lists + one inspect per container, 8 at a time) against the one list call of a quick pass,
/// median of 15 each. A measurement for the issue note, not a pass/fail bound (the machine is
/// shared): `cargo test --test drift observe_cost -- --ignored --nocapture`.
#[test]
#[ignore = "a measurement: run it by name with --ignored"]
fn observe_cost_at_50_containers() {
    use std::time::Instant;
    let s = Stack::new("drcost");
    let img = s.image("v1");
    let mut body = "networks: {app: {}}\nservices:\n".to_string();
    for i in 0..50 {
        body += &format!("  s{i}:\n    image: {img}\n    networks: [app]\n");
    }
    s.write(&body);
    let r = s.dockhand(&["apply", "--yes"]);
    assert_eq!(r.code, 0, "{r:?}");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let docker = dockhand::observe::connect().await.unwrap();
        let key = dockhand::spec::MarkerKey::new([7; 32]);
        let names: Vec<String> = (0..50).map(|i| s.container(&format!("s{i}"))).collect();
        let median = |mut v: Vec<f64>| {
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        let (mut list, mut full) = (Vec::new(), Vec::new());
        for _ in 0..15 {
            let t = Instant::now();
            let m = dockhand::observe::list_managed(&docker, &s.name).await.unwrap();
            list.push(t.elapsed().as_secs_f64() * 1e3);
            assert_eq!(m.len(), 50);
            let t = Instant::now();
            let a = dockhand::observe::observe(&docker, &s.name, &names, &key)
                .await
                .unwrap();
            full.push(t.elapsed().as_secs_f64() * 1e3);
            assert!(a.managed.iter().all(|c| c.inspected.is_some()));
        }
        println!(
            "50 containers: one list {:.1} ms, full observe with 50 inspects {:.1} ms (medians of 15)",
            median(list),
            median(full)
        );
    });
}

// Issue 18 review defect A: blue/green colors, behind a real Traefik. In place when the Engine
// allows it (same container id, no release), else a normal release to the other color that
// never stops the serving one first.

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

fn exists(name: &str) -> bool {
    docker(&["inspect", name]).status.success()
}

/// `status` must not call the host in sync, and names the drift.
fn status_drifted(s: &Stack) {
    let r = s.dockhand(&["status"]);
    assert_ne!(r.code, 0, "status must not say in sync: {r:?}");
    assert!(r.stdout.contains("by hand"), "{r:?}");
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
    v["deploys"]
        .as_array()
        .expect("array")
        .iter()
        .map(|d| d["summary"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// The agent, told by the Engine's events: the serving color disconnected from its Traefik
/// network is reconnected and routed again, and renamed it is renamed back; the same
/// container throughout, no release (green is never created).
#[test]
fn the_agent_puts_a_serving_color_back_in_place_from_events() {
    let x = serving_blue("bgdagent");
    let before = id(&x.blue);
    let agent = support::agent::Agent::start(&x.s, &["--poll", "1h", "--resync", "1h"]);
    let addr = agent.addr();
    agent.wait_in_sync(&addr, Duration::from_secs(60));
    std::thread::sleep(Duration::from_millis(500));

    docker_ok(&["network", "disconnect", &x.proxy, &x.blue]);
    let took = wait_until(
        "proxy network reconnected",
        &agent,
        Duration::from_secs(10),
        || {
            docker(&[
                "inspect",
                "--format",
                &format!(
                    "{{{{json (index .NetworkSettings.Networks \"{}\").Aliases}}}}",
                    x.proxy
                ),
                &x.blue,
            ])
            .stdout
            .windows(5)
            .any(|w| w == b"\"web\"")
        },
    );
    println!("blue/green proxy network disconnect corrected in {took:?}");
    x.traefik.wait_for(&x.host, "v1", Duration::from_secs(20));

    let hand = format!("{}-web-x", x.s.name);
    docker_ok(&["rename", &x.blue, &hand]);
    let took = wait_until("renamed back", &agent, Duration::from_secs(10), || {
        docker(&["inspect", &x.blue]).status.success()
    });
    println!("blue/green rename corrected in {took:?}");
    assert_eq!(id(&x.blue), before, "put back in place");
    assert_eq!(inspect(&x.blue, "{{.State.Status}}"), "running");
    assert!(!exists(&x.green), "no release: green was never created");
    x.traefik.wait_for(&x.host, "v1", Duration::from_secs(20));
}
