//! Integration tests against the real Docker Engine and the local registry (scripts/test-env.sh
//! starts both; without them these tests fail with a hint, they never skip).

mod support;

use support::{docker, docker_ok, Stack};

fn two_services(img: &str, web_env: &str) -> String {
    format!(
        "services:\n  api:\n    image: {img}\n    health: {{cmd: [wget, -q, -O, /dev/null, 'http://127.0.0.1:8080/readyz'], interval: 1s, retries: 20}}\n  web:\n    image: {img}\n    env: {{MODE: {web_env}}}\n    depends_on: [api]\n"
    )
}

fn id(name: &str) -> String {
    docker_ok(&["inspect", "--format", "{{.Id}}", name])
}

fn state(name: &str) -> String {
    docker_ok(&["inspect", "--format", "{{.State.Status}}", name])
}

#[test]
fn first_apply_creates_everything_then_plan_is_empty() {
    let s = Stack::new("first");
    let img = s.image("v1");
    s.write(&two_services(&img, "a"));
    let r = s.dockhand(&["apply", "--yes"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stdout
            .contains("Plan: 2 to create, 0 to recreate, 0 to start, 0 to remove."),
        "{r:?}"
    );
    for svc in ["api", "web"] {
        assert_eq!(state(&s.container(svc)), "running");
        let labels = docker_ok(&["inspect", "--format", "{{index .Config.Labels \"dockhand.managed\"}} {{index .Config.Labels \"dockhand.service\"}}", &s.container(svc)]);
        assert_eq!(labels, format!("true {svc}"));
    }
    // api has a healthcheck and web depends on it: api was healthy before web was created.
    assert_eq!(
        docker_ok(&[
            "inspect",
            "--format",
            "{{.State.Health.Status}}",
            &s.container("api")
        ]),
        "healthy"
    );
    let r = s.dockhand(&["plan", "--detailed-exitcode"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("No changes."), "{r:?}");
}

#[test]
fn changing_env_recreates_only_that_service_and_hides_values() {
    let s = Stack::new("env");
    let img = s.image("v1");
    s.write(&two_services(&img, "first-secret-value"));
    assert_eq!(s.dockhand(&["apply", "--yes"]).code, 0);
    let (api, web) = (id(&s.container("api")), id(&s.container("web")));
    s.write(&two_services(&img, "second-secret-value"));
    let r = s.dockhand(&["diff"]);
    assert!(
        r.stdout
            .contains(&format!("~ container {}", s.container("web"))),
        "{r:?}"
    );
    assert!(r.stdout.contains("MODE=(hidden, value changed)"), "{r:?}");
    assert!(
        !r.stdout.contains("secret-value"),
        "env values must never be printed: {r:?}"
    );
    let r = s.dockhand(&["plan", "--detailed-exitcode"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(
        r.stdout
            .contains("Plan: 0 to create, 1 to recreate, 0 to start, 0 to remove."),
        "{r:?}"
    );
    let r = s.dockhand(&["apply", "--yes"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(id(&s.container("api")), api, "api must not be touched");
    assert_ne!(id(&s.container("web")), web, "web must be a new container");
    assert_eq!(state(&s.container("web")), "running");
    let env = docker_ok(&[
        "inspect",
        "--format",
        "{{json .Config.Env}}",
        &s.container("web"),
    ]);
    assert!(env.contains("MODE=second-secret-value"), "{env}");
    assert!(
        docker(&["inspect", &format!("{}-dockhand-old", s.container("web"))])
            .status
            .code()
            != Some(0),
        "old container removed"
    );
}

#[test]
fn stopped_container_is_planned_as_start_and_restarted() {
    let s = Stack::new("stop");
    let img = s.image("v1");
    s.write(&format!("services:\n  web:\n    image: {img}\n"));
    assert_eq!(s.dockhand(&["apply", "--yes"]).code, 0);
    let before = id(&s.container("web"));
    docker_ok(&["stop", "-t", "1", &s.container("web")]);
    let r = s.dockhand(&["plan"]);
    assert!(
        r.stdout.contains(&format!(
            "> container {}  (start: container is exited",
            s.container("web")
        )),
        "{r:?}"
    );
    assert!(r.stdout.contains("1 to start"), "{r:?}");
    let r = s.dockhand(&["status"]);
    assert!(r.stdout.contains("stopped"), "{r:?}");
    assert_eq!(s.dockhand(&["apply", "--yes"]).code, 0);
    assert_eq!(state(&s.container("web")), "running");
    assert_eq!(id(&s.container("web")), before, "start, not recreate");
}

#[test]
fn foreign_container_under_managed_name_is_reported_and_untouched() {
    let mut s = Stack::new("foreign");
    let img = s.image("v1");
    let other = s.image("other");
    let pull_ref = other
        .split_once(':')
        .map(|_| other.replacen(":other@", "@", 1))
        .unwrap_or(other.clone());
    docker_ok(&["pull", "-q", &pull_ref]);
    docker_ok(&["create", "--name", &s.container("web"), &pull_ref]);
    s.foreign.push(s.container("web"));
    let foreign_id = id(&s.container("web"));
    s.write(&format!("services:\n  web:\n    image: {img}\n"));
    let r = s.dockhand(&["plan"]);
    assert!(r.stdout.contains("was not created by dockhand"), "{r:?}");
    // Issue 18: a blocking conflict is not "changes to apply": apply would refuse.
    let d = s.dockhand(&["plan", "--detailed-exitcode"]);
    assert_eq!(d.code, 1, "{d:?}");
    assert!(
        r.stdout
            .contains("1 conflict must be resolved before apply"),
        "{r:?}"
    );
    let r = s.dockhand(&["apply", "--yes"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("nothing was changed"), "{r:?}");
    assert_eq!(
        id(&s.container("web")),
        foreign_id,
        "the foreign container must be untouched"
    );
}

#[test]
fn removed_service_is_removed_but_unowned_lookalike_is_untouched() {
    let mut s = Stack::new("remove");
    let img = s.image("v1");
    s.write(&two_services(&img, "a"));
    assert_eq!(s.dockhand(&["apply", "--yes"]).code, 0);
    // Same stack label, same naming scheme, but no dockhand.managed: not ours.
    let pull_ref = img.replacen(":v1@", "@", 1);
    let lookalike = s.container("lookalike");
    docker_ok(&[
        "create",
        "--name",
        &lookalike,
        "--label",
        &format!("dockhand.stack={}", s.name),
        "--label",
        "dockhand.service=lookalike",
        &pull_ref,
    ]);
    s.foreign.push(lookalike.clone());
    s.write(&format!("services:\n  api:\n    image: {img}\n"));
    let r = s.dockhand(&["plan"]);
    assert!(
        r.stdout.contains(&format!(
            "- container {}  (service `web` is no longer in the desired state)",
            s.container("web")
        )),
        "{r:?}"
    );
    assert!(!r.stdout.contains("lookalike"), "{r:?}");
    assert_eq!(s.dockhand(&["apply", "--yes"]).code, 0);
    assert!(
        !docker(&["inspect", &s.container("web")]).status.success(),
        "web removed"
    );
    assert_eq!(state(&s.container("api")), "running");
    assert_eq!(state(&lookalike), "created", "unowned container untouched");
}

#[test]
fn digest_missing_from_registry_fails_before_anything_is_stopped() {
    let s = Stack::new("digest");
    let img = s.image("v1");
    s.write(&format!("services:\n  web:\n    image: {img}\n"));
    assert_eq!(s.dockhand(&["apply", "--yes"]).code, 0);
    let before = id(&s.container("web"));
    let (repo, _) = img.split_once('@').unwrap();
    let missing = format!("{repo}@sha256:{}", "0".repeat(64));
    s.write(&format!(
        "services:\n  web:\n    image: {missing}\n    env: {{X: y}}\n"
    ));
    let r = s.dockhand(&["apply", "--yes"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr.contains("available from its registry")
            && r.stderr.contains("nothing was changed"),
        "{r:?}"
    );
    assert_eq!(id(&s.container("web")), before);
    assert_eq!(state(&s.container("web")), "running");
}

#[test]
fn missing_bind_source_fails_preflight_and_create_makes_dirs_with_mode() {
    let s = Stack::new("bind");
    let img = s.image("v1");
    let missing = s.path().join("nope");
    let made = s.path().join("media/cache");
    s.write(&format!(
        "services:\n  web:\n    image: {img}\n    mounts:\n      - {{bind: {}, target: /data}}\n",
        missing.display()
    ));
    let r = s.dockhand(&["apply", "--yes"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr.contains("does not exist") && r.stderr.contains("nothing was changed"),
        "{r:?}"
    );
    assert!(
        !docker(&["inspect", &s.container("web")]).status.success(),
        "nothing created"
    );
    s.write(&format!(
        "services:\n  web:\n    image: {img}\n    mounts:\n      - {{bind: {}, target: /data, create: {{mode: \"2775\"}}}}\n",
        made.display()
    ));
    let r = s.dockhand(&["apply", "--yes"]);
    assert_eq!(r.code, 0, "{r:?}");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&made).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode, 0o2775);
    // The container sees the directory with the setgid bit and can write into it.
    let seen = docker_ok(&["exec", &s.container("web"), "ls", "-ld", "/data"]);
    assert!(seen.starts_with("drwxrwsr-x"), "{seen}");
    docker_ok(&["exec", &s.container("web"), "touch", "/data/written"]);
    assert!(made.join("written").exists());
}

#[test]
fn unreachable_engine_is_one_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("stacks")).unwrap();
    std::fs::write(dir.path().join("dockhand.yaml"), "version: 1\n").unwrap();
    let d = "sha256:".to_string() + &"a".repeat(64);
    std::fs::write(
        dir.path().join("stacks/x.yaml"),
        format!("stack: x\nservices:\n  web:\n    image: r/x:1@{d}\n"),
    )
    .unwrap();
    let p = dir.path().to_string_lossy().to_string();
    let r = support::run(
        &["plan", "--source", &p, "--path", ".", "--worktree"],
        &[("DOCKER_HOST", "unix:///nonexistent/docker.sock")],
    );
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr.contains("cannot reach the Docker Engine") && r.stderr.contains("hint:"),
        "{r:?}"
    );
}

#[test]
fn container_recreated_by_hand_from_another_image_with_its_labels_is_corrected() {
    // What "duplicate/edit" in a container UI does: same name and labels, another image.
    let s = Stack::new("handmade");
    let (v1, v2) = (s.image("v1"), s.image("v2"));
    s.write(&format!("services:\n  web:\n    image: {v1}\n"));
    assert_eq!(s.dockhand(&["apply", "--yes"]).code, 0);
    let name = s.container("web");
    let labels = docker_ok(&["inspect", "--format", "{{json .Config.Labels}}", &name]);
    let labels: std::collections::BTreeMap<String, String> = serde_json::from_str(&labels).unwrap();
    let (tagged, d2) = v2.split_once('@').unwrap();
    let pull_v2 = format!("{}@{d2}", tagged.rsplit_once(':').unwrap().0);
    docker_ok(&["pull", "-q", &pull_v2]);
    docker_ok(&["rm", "-f", &name]);
    let mut args: Vec<String> = vec!["run".into(), "-d".into(), "--name".into(), name.clone()];
    for (k, v) in &labels {
        args.push("--label".into());
        args.push(format!("{k}={v}"));
    }
    args.push(pull_v2);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    docker_ok(&args);

    let plan = s.dockhand(&["plan", "--detailed-exitcode"]);
    assert_eq!(plan.code, 2, "{plan:?}");
    assert!(plan.stdout.contains("image (running)"), "{plan:?}");
    let r = s.dockhand(&["apply", "--yes"]);
    assert_eq!(r.code, 0, "{r:?}");
    let digest = v1.split_once('@').unwrap().1;
    let running = docker_ok(&["inspect", "--format", "{{.Config.Image}}", &name]);
    assert!(
        running.ends_with(digest),
        "{running} is not the pinned {digest}"
    );
    assert_eq!(s.dockhand(&["plan", "--detailed-exitcode"]).code, 0);
}

#[test]
fn pin_writes_the_registry_digest_in_place_and_status_reports_a_moved_tag() {
    let s = Stack::new("pin");
    let pinned = s.image("v1");
    let (tagged, digest) = pinned.split_once('@').unwrap();
    let file = s.path().join(format!("stacks/{}.yaml", s.name));
    s.write(&format!(
        "# the pin test: comments, quotes and layout must survive\nservices:\n  web:   # the web tier\n    image: \"{tagged}\"   # a tag, for now\n\n    command: [/bin/httpd, -f, -p, '8080', -h, /www]\n"
    ));
    let before = std::fs::read_to_string(&file).unwrap();
    let v = s.dockhand(&["validate"]);
    assert!(v.code != 0 && v.stderr.contains("dockhand pin"), "{v:?}");

    let src = s.path().to_string_lossy().to_string();
    let pin = |extra: &[&str]| {
        let mut args = vec!["pin", "--source", &src, "--path", "."];
        args.extend_from_slice(extra);
        support::run(&args, &[])
    };
    let r = pin(&[]);
    assert_eq!(r.code, 0, "{r:?}");
    let after = std::fs::read_to_string(&file).unwrap();
    assert_eq!(after, before.replace(tagged, &format!("{tagged}@{digest}")));
    assert_eq!(pin(&["--check"]).code, 0);
    assert_eq!(s.dockhand(&["validate"]).code, 0);

    // Someone pushes another image under the same tag: reported, never followed by itself.
    let repo = tagged
        .split_once('/')
        .map(|(_, r)| r.rsplit_once(':').unwrap().0)
        .unwrap();
    let layer = support::image::layer(&[("index.html", "v1 rebuilt"), ("readyz", "ok\n")]);
    let moved = support::image::push(
        &support::registry(),
        repo,
        "v1",
        &layer,
        &["/bin/httpd", "-f", "-p", "8080", "-h", "/www"],
    )
    .unwrap();
    assert_ne!(moved, digest);
    let status = s.dockhand(&["status"]);
    assert!(
        status.stdout.contains("tag moved") && status.stdout.contains(&moved),
        "{status:?}"
    );
    let offline = s.dockhand(&["status", "--offline"]);
    assert!(!offline.stdout.contains("tag moved"), "{offline:?}");
    let check = pin(&["--check"]);
    assert_eq!(check.code, 2, "{check:?}");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), after);
    assert_eq!(pin(&[]).code, 0, "without --update a pin is kept");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), after);
    let r = pin(&["--update"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        after.replace(digest, &moved)
    );

    // A tag the registry does not have: an error naming it, and the file untouched.
    let text = std::fs::read_to_string(&file).unwrap();
    let missing = tagged.replace(":v1", ":no-such-tag");
    std::fs::write(&file, text.replace(&format!("{tagged}@{moved}"), &missing)).unwrap();
    let broken = std::fs::read_to_string(&file).unwrap();
    let r = pin(&[]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stdout.contains("no-such-tag"), "{r:?}");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), broken);
}

#[test]
fn host_powers_need_the_policy_and_then_reach_the_engine() {
    let s = Stack::new("powers");
    let img = s.image("v1");
    let web = s.container("web");
    s.write(&format!(
        "services:\n  web:\n    image: {img}\n    cap_add: [NET_ADMIN]\n    cap_drop: [MKNOD]\n    stop_grace_period: 1s\n"
    ));
    // Without `allow`, the commit is refused with the rule and nothing is created.
    let r = s.dockhand(&["apply", "--yes"]);
    assert_ne!(r.code, 0, "{r:?}");
    assert!(r.stderr.contains("rule `cap_add`"), "{r:?}");
    assert!(
        !support::docker(&["inspect", &web]).status.success(),
        "a refused commit created {web}"
    );

    let config = s.path().join("dockhand.yaml");
    let mut text = std::fs::read_to_string(&config).unwrap();
    text += &format!("policy:\n  allow:\n    {}: [cap_add]\n", s.name);
    std::fs::write(&config, text).unwrap();
    // Host powers are the host's to grant (issue 17): the repository asking is not enough.
    let r = s.dockhand(&["apply", "--yes"]);
    assert_ne!(r.code, 0, "{r:?}");
    assert!(r.stderr.contains("rule `host_policy`"), "{r:?}");
    let host = s.path().join("host-policy.yaml");
    std::fs::write(&host, format!("allow:\n  {}: [cap_add]\n", s.name)).unwrap();
    let host = host.to_string_lossy().to_string();
    let r = s.dockhand_env(&["apply", "--yes"], &[("DOCKHAND_POLICY", &host)]);
    assert_eq!(r.code, 0, "{r:?}");
    let caps = support::docker_ok(&[
        "inspect",
        "--format",
        "{{.HostConfig.CapAdd}} {{.HostConfig.CapDrop}}",
        &web,
    ]);
    assert!(
        caps.contains("NET_ADMIN") && caps.contains("MKNOD"),
        "{caps}"
    );
    let again = s.dockhand_env(
        &["plan", "--detailed-exitcode"],
        &[("DOCKHAND_POLICY", &host)],
    );
    assert_eq!(again.code, 0, "{again:?}");
}

/// Issue 18, item 6: an env file is compared by the pairs it gives the container, so a comment
/// or blank line appended to it plans nothing (the service is not recreated), while a changed
/// value still recreates it.
#[test]
fn env_file_comment_plans_nothing_and_a_changed_value_recreates() {
    let s = Stack::new("envcmt");
    let img = s.image("v1");
    let env_file = s.path().join("app.env");
    std::fs::write(&env_file, "MODE=one\nLEVEL=3\n").unwrap();
    s.write(&format!(
        "services:\n  app:\n    image: {img}\n    env_file: {}\n    stop_grace_period: 1s\n",
        env_file.display()
    ));
    let r = s.dockhand(&["apply", "--yes"]);
    assert_eq!(r.code, 0, "{r:?}");
    let before = id(&s.container("app"));

    std::fs::write(
        &env_file,
        "MODE=one\nLEVEL=3\n\n# tuned by hand, see ticket 42\n",
    )
    .unwrap();
    let plan = s.dockhand(&["plan", "--detailed-exitcode"]);
    assert_eq!(plan.code, 0, "a comment must plan nothing: {plan:?}");
    let r = s.dockhand(&["apply", "--yes"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(id(&s.container("app")), before, "not recreated");

    std::fs::write(&env_file, "MODE=two\nLEVEL=3\n# tuned by hand\n").unwrap();
    let plan = s.dockhand(&["plan", "--detailed-exitcode"]);
    assert_eq!(plan.code, 2, "{plan:?}");
    assert!(
        plan.stdout.contains("1 to recreate"),
        "a changed value recreates: {plan:?}"
    );
    let r = s.dockhand(&["apply", "--yes"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_ne!(id(&s.container("app")), before);
    let env = docker_ok(&[
        "inspect",
        "--format",
        "{{json .Config.Env}}",
        &s.container("app"),
    ]);
    assert!(env.contains("\"MODE=two\""), "{env}");
}

/// Issue 18, item 4: removing a service waits its own `stop_grace_period` (3 s here, for a
/// process that ignores SIGTERM), not a fixed 10 s; a sub-second grace is rounded up to 1 s,
/// never 0 (SIGKILL at once).
#[test]
fn removing_a_service_waits_its_stop_grace_period_not_a_fixed_ten_seconds() {
    let s = Stack::new("grace");
    let img = s.image("v1");
    // PID 1 without a TERM handler: the Engine's SIGTERM does nothing, only the kill ends it.
    let deaf = "command: [sh, -c, 'trap \"\" TERM; while true; do sleep 1; done']";
    s.write(&format!(
        "services:\n  deaf:\n    image: {img}\n    {deaf}\n    stop_grace_period: 3s\n  quick:\n    image: {img}\n    {deaf}\n    stop_grace_period: 800ms\n"
    ));
    let r = s.dockhand(&["apply", "--yes"]);
    assert_eq!(r.code, 0, "{r:?}");
    let timeout = |svc: &str| {
        docker_ok(&[
            "inspect",
            "--format",
            "{{.Config.StopTimeout}}",
            &s.container(svc),
        ])
    };
    assert_eq!(timeout("deaf"), "3");
    assert_eq!(timeout("quick"), "1", "800ms rounds up to 1 s");

    s.write(&format!(
        "services:\n  quick:\n    image: {img}\n    {deaf}\n    stop_grace_period: 800ms\n"
    ));
    let started = std::time::Instant::now();
    let r = s.dockhand(&["apply", "--yes"]);
    let took = started.elapsed();
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        !docker(&["inspect", &s.container("deaf")]).status.success(),
        "deaf was removed"
    );
    assert!(
        took >= std::time::Duration::from_secs(3) && took < std::time::Duration::from_secs(8),
        "removal took {took:?}: want its 3 s grace, not 10 s"
    );
    eprintln!("removing a 3s-grace service that ignores SIGTERM took {took:?}");
}

/// Issue 18: a container of another dockhand project holding a wanted name is named as that
/// project's, never suggested for removal; `plan --detailed-exitcode` exits 1 and apply refuses
/// counting the conflict by kind, leaving the container untouched.
#[test]
fn another_projects_container_in_the_way_is_named_and_kept() {
    let mut s = Stack::new("otherproj");
    let img = s.image("v1");
    let other = s.image("other");
    let pull_ref = other.replacen(":other@", "@", 1);
    docker_ok(&["pull", "-q", &pull_ref]);
    let owner = support::unique("staging");
    docker_ok(&[
        "create",
        "--name",
        &s.container("web"),
        "--label",
        "dockhand.managed=true",
        "--label",
        &format!("dockhand.project={owner}"),
        "--label",
        "dockhand.stack=shop",
        &pull_ref,
    ]);
    s.foreign.push(s.container("web"));
    let theirs = id(&s.container("web"));
    s.write(&format!("services:\n  web:\n    image: {img}\n"));
    let r = s.dockhand(&["plan", "--detailed-exitcode"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stdout
            .contains(&format!("owned by dockhand project `{owner}`")),
        "{r:?}"
    );
    assert!(!r.stdout.contains("not created by dockhand"), "{r:?}");
    assert!(!r.stdout.contains("docker rm"), "{r:?}");
    let j = s.dockhand(&["plan", "--json"]);
    let doc: serde_json::Value = serde_json::from_str(&j.stdout).expect("plan --json");
    assert_eq!(doc["conflicts"][0]["kind"], "other_project", "{j:?}");
    assert_eq!(doc["conflicts"][0]["project"], owner.as_str(), "{j:?}");
    let a = s.dockhand(&["apply", "--yes"]);
    assert_eq!(a.code, 1, "{a:?}");
    assert!(
        a.stderr.contains(
            "1 conflict(s) with objects of another dockhand project; nothing was changed"
        ),
        "{a:?}"
    );
    assert!(!a.stderr.contains("does not own"), "{a:?}");
    assert_eq!(
        id(&s.container("web")),
        theirs,
        "their container is untouched"
    );
}

fn status_json(s: &Stack) -> (i32, serde_json::Value) {
    let r = s.dockhand(&["status", "--json", "--offline"]);
    let doc = serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("{e}: {r:?}"));
    (r.code, doc)
}

fn wait_health(name: &str, want: &str) {
    let t = std::time::Instant::now();
    loop {
        let h = docker_ok(&["inspect", "--format", "{{.State.Health.Status}}", name]);
        if h == want {
            return;
        }
        assert!(
            t.elapsed() < std::time::Duration::from_secs(30),
            "{name} never became {want} (is {h})"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

/// Issue 18: `status` exits 0 in sync and healthy, 2 not in sync: unhealthy (Docker health;
/// item 2: health is part of sync), stopped or removed by hand (the plan starts or creates it).
#[test]
fn status_exit_codes_say_in_sync_unhealthy_or_not_in_sync() {
    let s = Stack::new("statusexit");
    let img = s.image("v1");
    let web = s.container("web");
    s.write(&format!(
        "services:\n  web:\n    image: {img}\n    health: {{cmd: [sh, -c, 'test ! -e /tmp/sick'], interval: 1s, timeout: 1s, retries: 1}}\n    stop_grace_period: 1s\n"
    ));
    let r = s.dockhand(&["apply", "--yes"]);
    assert_eq!(r.code, 0, "{r:?}");
    wait_health(&web, "healthy");
    let (code, doc) = status_json(&s);
    assert_eq!(code, 0, "{doc}");
    assert_eq!(doc["in_sync"], true, "{doc}");
    assert_eq!(doc["healthy"], true, "{doc}");
    assert_eq!(s.dockhand(&["status", "--offline"]).code, 0);

    docker_ok(&["exec", &web, "touch", "/tmp/sick"]);
    wait_health(&web, "unhealthy");
    let (code, doc) = status_json(&s);
    assert_eq!(code, 2, "{doc}");
    assert_eq!(doc["in_sync"], false, "{doc}");
    assert_eq!(doc["healthy"], false, "{doc}");
    assert_eq!(doc["services"][0]["state"], "unhealthy", "{doc}");
    assert_eq!(doc["services"][0]["healthy"], false, "{doc}");
    let plan = s.dockhand(&["plan", "--detailed-exitcode"]);
    assert_eq!(
        plan.code, 2,
        "an unhealthy container is not in sync: {plan:?}"
    );
    assert!(
        plan.stdout.contains(&format!(
            "! container {web} ({}/web) is not healthy: Docker reports it unhealthy",
            s.name
        )),
        "{plan:?}"
    );
    assert!(
        plan.stdout.contains("No changes to apply, but not in sync"),
        "{plan:?}"
    );

    // Stopped by hand (still marked sick): not in sync wins over unhealthy.
    docker_ok(&["stop", "-t", "1", &web]);
    let (code, doc) = status_json(&s);
    assert_eq!(
        code, 2,
        "a stopped service is not in sync (the plan starts it): {doc}"
    );
    assert_eq!(doc["in_sync"], false, "{doc}");
    assert_eq!(doc["healthy"], false, "{doc}");
    assert_eq!(doc["services"][0]["state"], "stopped", "{doc}");

    docker_ok(&["rm", "-f", &web]);
    let (code, doc) = status_json(&s);
    assert_eq!(code, 2, "{doc}");
    assert_eq!(doc["services"][0]["state"], "missing", "{doc}");
}

fn deploys(s: &Stack) -> Vec<serde_json::Value> {
    let r = s.dockhand(&["history", "--json"]);
    assert_eq!(r.code, 0, "{r:?}");
    serde_json::from_str::<serde_json::Value>(&r.stdout).unwrap_or_else(|e| panic!("{e}: {r:?}"))
        ["deploys"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// Issue 18 item 7: a stale owned network that a container dockhand does not own is attached
/// to could not be removed; apply said "kept", the plan never converged (exit 2 forever) and
/// every apply recorded a new deploy. Now the network is kept with a note, the plan is empty
/// (exit 0), and applies that change nothing record nothing.
#[test]
fn a_stale_network_in_use_by_a_foreign_container_is_kept_once_and_the_plan_converges() {
    let mut s = Stack::new("netkept");
    let img = s.image("v1");
    s.write(&format!(
        "networks: {{side: {{}}}}\nservices:\n  web:\n    image: {img}\n    stop_grace_period: 1s\n  worker:\n    image: {img}\n    networks: [side]\n    stop_grace_period: 1s\n"
    ));
    let r = s.dockhand(&["apply", "--yes"]);
    assert_eq!(r.code, 0, "{r:?}");
    let label = format!("label=dockhand.stack={}", s.name);
    let net = docker_ok(&["network", "ls", "--filter", &label, "--format", "{{.Name}}"]);
    assert!(
        !net.is_empty() && !net.contains('\n'),
        "one owned network: {net:?}"
    );
    // Someone attaches a container of their own to it.
    let theirs = support::unique("netkept-theirs");
    s.foreign.push(theirs.clone());
    docker_ok(&["run", "-d", "--name", &theirs, "--network", &net, &img]);

    // The network and its only service leave the desired state.
    s.write(&format!(
        "services:\n  web:\n    image: {img}\n    stop_grace_period: 1s\n"
    ));
    let r = s.dockhand(&["apply", "--yes"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stdout.contains("0 to start, 1 to remove."),
        "only worker is removed: {r:?}"
    );
    let note = format!("network {net} is no longer declared but kept: in use by {theirs}");
    assert!(r.stdout.contains(&note), "{r:?}");
    for _ in 0..2 {
        let plan = s.dockhand(&["plan", "--detailed-exitcode"]);
        assert_eq!(plan.code, 0, "the plan converged: {plan:?}");
        assert!(plan.stdout.contains(&note), "{plan:?}");
        assert!(plan.stdout.contains("No changes."), "{plan:?}");
        let again = s.dockhand(&["apply", "--yes"]);
        assert_eq!(again.code, 0, "{again:?}");
        assert!(again.stdout.contains("No changes."), "{again:?}");
    }
    let recorded = deploys(&s);
    assert_eq!(
        recorded.len(),
        2,
        "the first deploy and the one that removed worker, nothing for the applies after: {recorded:#?}"
    );
    assert_eq!(
        docker_ok(&["inspect", "--format", "{{.State.Running}}", &theirs]),
        "true",
        "their container is untouched"
    );
    // Once they leave, the network goes at the next apply.
    docker_ok(&["network", "disconnect", &net, &theirs]);
    let plan = s.dockhand(&["plan", "--detailed-exitcode"]);
    assert_eq!(plan.code, 2, "{plan:?}");
    assert!(
        plan.stdout.contains(&format!("- network {net}")),
        "{plan:?}"
    );
}
