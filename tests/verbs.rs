//! Issue 19 item 6, the daily operations on the real Engine: `logs` and `exec` find a
//! service's live container by labels (the serving color after a blue/green swap), `exec`
//! passes output and exit codes through, `down` removes only this project's objects, keeps
//! volumes unless `--volumes`, and says so when there is nothing to remove.

mod support;

use std::process::Command;

use support::{docker, docker_ok, Stack};

/// Prints its marker on stdout and on stderr at start, then serves it.
fn talking_image(s: &Stack, marker: &str) -> String {
    s.image_with(
        marker,
        &[
            "sh",
            "-c",
            "echo started $(cat /www/index.html); echo warned $(cat /www/index.html) >&2; exec /bin/httpd -f -p 8080 -h /www",
        ],
    )
}

fn blue_green(s: &Stack, img: &str) -> String {
    format!(
        "networks: {{proxy: {{}}}}\nservices:\n  web:\n    image: {img}\n    networks: [proxy]\n    route: {{host: {}.localhost, port: 8080}}\n    health: {{cmd: [wget, -q, -O, /dev/null, 'http://127.0.0.1:8080/readyz'], interval: 1s, timeout: 2s, retries: 2}}\n    stop_grace_period: 1s\n    release: {{strategy: blue-green, drain: 1s}}\n",
        s.name
    )
}

/// `dockhand exec ARGS -- CMD` on this stack: the source flags must come before `--`.
fn exec(s: &Stack, args: &[&str], cmd: &[&str]) -> support::Run {
    let mut full = s.with_source(&[&["exec"], args].concat());
    full.push("--".into());
    full.extend(cmd.iter().map(|c| c.to_string()));
    let full: Vec<&str> = full.iter().map(String::as_str).collect();
    support::run(&full, &[])
}

fn running(name: &str) -> bool {
    docker_ok(&["inspect", "--format", "{{.State.Running}}", name]) == "true"
}

#[test]
fn logs_and_exec_follow_the_serving_color_across_a_swap() {
    let s = Stack::new("vlogs");
    let (v1, v2) = (talking_image(&s, "v1"), talking_image(&s, "v2"));
    let target = format!("{}/web", s.name);
    s.write(&blue_green(&s, &v1));
    let r = s.dockhand(&["apply", "--yes"]);
    assert_eq!(r.code, 0, "{r:?}");
    let r = s.dockhand(&["logs", &target]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(r.stdout.trim(), "started v1", "{r:?}");
    // stderr kept apart: the container's warning, and nothing of its stdout.
    assert_eq!(r.stderr.trim(), "warned v1", "{r:?}");

    s.write(&blue_green(&s, &v2));
    let r = s.dockhand(&["apply", "--yes"]);
    assert_eq!(r.code, 0, "{r:?}");
    let (blue, green) = (s.container("web-blue"), s.container("web-green"));
    assert!(
        running(&green) && !running(&blue),
        "the swap put green in front"
    );
    // The old color still exists (stopped) with its own log: the lookup must not take it.
    assert!(docker_ok(&["logs", &blue]).contains("started v1"));
    for service in [target.as_str(), "web"] {
        let r = s.dockhand(&["logs", service, "--tail", "5"]);
        assert_eq!(r.code, 0, "{r:?}");
        assert_eq!(r.stdout.trim(), "started v2", "{r:?}");
        assert_eq!(r.stderr.trim(), "warned v2", "{r:?}");
    }
    let r = s.dockhand(&["logs", &target, "--json"]);
    assert_eq!(r.code, 0, "{r:?}");
    let mut lines: Vec<&str> = r.stdout.lines().collect();
    lines.sort();
    assert_eq!(
        lines,
        [
            r#"{"stream":"stderr","line":"warned v2"}"#,
            r#"{"stream":"stdout","line":"started v2"}"#
        ],
        "{r:?}"
    );
    // exec runs in the same container the logs came from.
    let r = exec(&s, &[&target], &["cat", "/www/index.html"]);
    assert_eq!((r.code, r.stdout.as_str()), (0, "v2"), "{r:?}");

    // A service the desired state does not declare, and one that has no container.
    let r = s.dockhand(&["logs", &format!("{}/nope", s.name)]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr.contains(&format!(
            "service `{}/nope` is not in the desired state",
            s.name
        )) && r
            .stderr
            .contains(&format!("hint: declared services: {target}")),
        "{r:?}"
    );
    let r = exec(
        &s,
        &["web", "--project", &format!("{}-other", s.name)],
        &["true"],
    );
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr.contains("has no container on this Engine"),
        "{r:?}"
    );
}

#[test]
fn exec_passes_output_stdin_and_the_exit_code_through() {
    let s = Stack::new("vexec");
    let img = s.image("v1");
    s.write(&format!(
        "services:\n  web:\n    image: {img}\n    stop_grace_period: 1s\n"
    ));
    let r = s.dockhand(&["apply", "--yes"]);
    assert_eq!(r.code, 0, "{r:?}");
    let target = format!("{}/web", s.name);
    let r = exec(
        &s,
        &[&target],
        &["sh", "-c", "echo to-out; echo to-err >&2; exit 7"],
    );
    assert_eq!(r.code, 7, "{r:?}");
    assert_eq!(
        (r.stdout.as_str(), r.stderr.as_str()),
        ("to-out\n", "to-err\n")
    );
    let r = exec(&s, &[&target], &["true"]);
    assert_eq!((r.code, r.stdout.as_str()), (0, ""), "{r:?}");
    // -i forwards standard input, and its end reaches the command (cat returns).
    let mut args = s.with_source(&["exec", "-i", &target]);
    args.extend(["--", "sh", "-c", "cat; exit 3"].map(String::from));
    let mut cmd = Command::new(support::bin());
    cmd.args(&args);
    let out = support::output_with_stdin(cmd, b"line one\nline two\n");
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "line one\nline two\n");
    // -t without a terminal is refused before anything runs.
    let r = exec(&s, &["-t", &target], &["true"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("-t needs a terminal"), "{r:?}");
    // A stopped container runs nothing.
    docker_ok(&["stop", "-t", "1", &s.container("web")]);
    let r = exec(&s, &[&target], &["true"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("is not running"), "{r:?}");
}

fn by_label(kind: &str, label: &str) -> Vec<String> {
    let args: Vec<&str> = match kind {
        "container" => vec!["ps", "-a", "--format", "{{.Names}}", "--filter", label],
        "network" => vec!["network", "ls", "--format", "{{.Name}}", "--filter", label],
        _ => vec!["volume", "ls", "--format", "{{.Name}}", "--filter", label],
    };
    let mut v: Vec<String> = docker_ok(&args)
        .lines()
        .map(str::to_string)
        .filter(|l| !l.is_empty())
        .collect();
    v.sort();
    v
}

#[test]
fn down_removes_only_this_projects_objects_and_volumes_only_when_asked() {
    let mut s = Stack::new("vdown");
    let other = Stack::new("vdownother");
    let img = s.image("v1");
    let body = format!(
        "networks: {{back: {{}}}}\nvolumes: {{data: {{}}}}\nservices:\n  web:\n    image: {img}\n    networks: [back]\n    mounts: [{{volume: data, target: /data}}]\n    stop_grace_period: 1s\n  worker:\n    image: {img}\n    stop_grace_period: 1s\n"
    );
    s.write(&body);
    assert_eq!(s.dockhand(&["apply", "--yes"]).code, 0);
    other.write(&format!(
        "volumes: {{data: {{}}}}\nservices:\n  web:\n    image: {img}\n    mounts: [{{volume: data, target: /data}}]\n    stop_grace_period: 1s\n"
    ));
    let r = other.dockhand(&["apply", "--yes"]);
    assert_eq!(r.code, 0, "{r:?}");
    // A hand-made container whose name starts like this project's, on its network.
    let handmade = format!("{}-web-copy", s.name);
    s.foreign.push(handmade.clone());
    docker_ok(&["run", "-d", "--name", &handmade, &img]);
    let ours = format!("label=dockhand.project={}", s.name);
    let theirs = format!("label=dockhand.project={}", other.name);
    assert_eq!(
        by_label("container", &ours),
        [s.container("web"), s.container("worker")]
    );
    let (our_nets, our_vols) = (by_label("network", &ours), by_label("volume", &ours));
    assert_eq!((our_nets.len(), our_vols.len()), (1, 1));
    let before_theirs = (by_label("container", &theirs), by_label("volume", &theirs));

    // Without --yes and without a terminal: nothing is touched.
    let r = s.dockhand(&["down"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert_eq!(by_label("container", &ours).len(), 2);

    let r = s.dockhand(&["down", "--yes"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stdout
            .contains(&format!("- container {}", s.container("web")))
            && r.stdout.contains(&format!("- network {}", our_nets[0]))
            && r.stdout
                .contains("Plan: 0 to create, 0 to recreate, 0 to start, 3 to remove.")
            && r.stdout.contains("Down complete")
            && r.stdout
                .contains(&format!("Its volumes are kept: {}", our_vols[0])),
        "{r:?}"
    );
    assert!(by_label("container", &ours).is_empty());
    assert!(by_label("network", &ours).is_empty());
    assert_eq!(
        by_label("volume", &ours),
        our_vols,
        "volumes stay without --volumes"
    );
    assert_eq!(
        (by_label("container", &theirs), by_label("volume", &theirs)),
        before_theirs,
        "another project's objects stay"
    );
    assert!(
        running(&handmade),
        "a container dockhand does not own stays"
    );
    // Recorded as a deploy.
    let h = s.dockhand(&["history", "--json"]);
    assert!(
        h.stdout.contains("\"revision\":\"down\"") || h.stdout.contains("\"revision\": \"down\""),
        "{h:?}"
    );

    let r = s.dockhand(&["down", "--volumes", "--yes", "--json"]);
    assert_eq!(r.code, 0, "{r:?}");
    let v: serde_json::Value = serde_json::from_str(r.stdout.trim()).unwrap();
    assert_eq!(v["outcome"], "succeeded", "{r:?}");
    assert_eq!(v["removed"], 1, "{r:?}");
    assert_eq!(v["plan"]["actions"][0]["action"], "remove_volume", "{r:?}");
    assert!(
        by_label("volume", &ours).is_empty(),
        "--volumes deletes them"
    );
    assert_eq!(by_label("volume", &theirs), before_theirs.1);

    let r = s.dockhand(&["down"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stdout.contains(&format!(
            "Nothing to remove: project {} has no containers or networks on this Engine.",
            s.name
        )),
        "{r:?}"
    );
    let r = s.dockhand(&["down", "--project", &s.name, "--json"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("\"deploy\":null"), "{r:?}");
    assert!(running(&handmade));
    // The hand-made container's removal is this test's.
    let _ = docker(&["rm", "-f", &handmade]);
    s.foreign.clear();
}
