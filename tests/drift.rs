//! Issue 18 item 1, on the real Engine: a change made by hand with the docker CLI to a
//! container whose spec label still matches is named in the plan (the field and what was
//! found), and apply puts it back — in place when the Engine allows it (same container id),
//! else with a new container — after which the plan is empty.

mod support;

use support::{docker_ok, Stack};

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

/// `apply` puts it back and the next plan is empty.
fn converges(s: &Stack) {
    let r = s.dockhand(&["apply", "--yes"]);
    assert_eq!(r.code, 0, "{r:?}");
    let r = s.dockhand(&["plan", "--detailed-exitcode"]);
    assert_eq!(r.code, 0, "not converged after apply: {r:?}");
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
    use std::time::Duration;
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
