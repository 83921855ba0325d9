//! Loader and validator: every error kind with its location, and schema ↔ types agreement.

use dockhand::load::schema::{schema_text, FileKind};
use dockhand::load::{load, schema_and_types_accept, SourceFile};

const D: &str = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

fn files(stacks: &[(&str, &str)]) -> Vec<SourceFile> {
    let mut v = vec![SourceFile {
        path: "dockhand.yaml".into(),
        text: "version: 1\n".into(),
    }];
    v.extend(stacks.iter().map(|(p, t)| SourceFile {
        path: p.to_string(),
        text: t.to_string(),
    }));
    v
}

fn errors(stacks: &[(&str, &str)]) -> String {
    load(&files(stacks))
        .expect_err("expected validation errors")
        .to_string()
}

#[test]
fn committed_schemas_match_the_types() {
    for kind in FileKind::ALL {
        let path = format!(
            "{}/schemas/{}",
            env!("CARGO_MANIFEST_DIR"),
            kind.schema_file()
        );
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == schema_text(kind),
            "{path} is out of date with the Rust types; regenerate it with: cargo run -- schema --out schemas"
        );
    }
}

#[test]
fn schema_and_types_accept_and_reject_the_same_fixtures() {
    let root = format!("{}/tests/fixtures/stack", env!("CARGO_MANIFEST_DIR"));
    let mut seen = 0;
    for (dir, expect) in [("valid", true), ("invalid", false)] {
        for entry in std::fs::read_dir(format!("{root}/{dir}")).unwrap() {
            let path = entry.unwrap().path();
            let text = std::fs::read_to_string(&path).unwrap();
            let (schema_ok, types_ok) =
                schema_and_types_accept(FileKind::Stack, &text).expect("fixtures are valid YAML");
            assert_eq!(
                schema_ok,
                types_ok,
                "schema and types disagree on {}",
                path.display()
            );
            assert_eq!(
                schema_ok,
                expect,
                "{} should be {}",
                path.display(),
                if expect { "accepted" } else { "rejected" }
            );
            seen += 1;
        }
    }
    assert!(seen >= 15, "fixtures missing ({seen})");
    // The embedded default and the repo settings too.
    let demo = std::fs::read_to_string(format!(
        "{}/desired-state/stacks/demo.yaml",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    assert_eq!(
        schema_and_types_accept(FileKind::Stack, &demo),
        Some((true, true))
    );
    for repo in [
        "version: 1\n",
        "version: 1\nproject: p\ntraefik: {dialect: v1}\n",
        "version: 2\n",
        "version: 1\ntraefik: {dialect: v4}\n",
        "version: 1\nextra: 1\n",
    ] {
        let (a, b) = schema_and_types_accept(FileKind::Repo, repo).unwrap();
        assert_eq!(a, b, "schema and types disagree on {repo:?}");
    }
}

#[test]
fn embedded_default_is_valid() {
    let dir = format!("{}/desired-state", env!("CARGO_MANIFEST_DIR"));
    let snap = dockhand::sources::from_dir(std::path::Path::new(&dir), ".").unwrap();
    let desired = load(&snap.files).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(desired.stacks.len(), 1);
}

#[test]
fn bad_yaml_names_file_line_and_column() {
    insta::assert_snapshot!(errors(&[("stacks/a.yaml", "stack: a\nservices:\n  web: [unclosed\n")]), @r"
    stacks/a.yaml:4:1: invalid YAML: while parsing a flow sequence, expected ',' or ']'
      hint: fix the YAML syntax (indentation, quotes, `key: value` pairs)
    1 problem found; nothing was changed.
    ");
}

#[test]
fn schema_errors_are_all_reported_with_field_paths_and_hints() {
    let text = "stack: a\nservices:\n  web:\n    image: r/x\n    imgae: x\n    ports: [\"80\"]\n    env: {SECRET: {nested: hunter2}}\n    health: {interval: soon, cmd: [x]}\n";
    let out = errors(&[("stacks/a.yaml", text)]);
    assert!(
        !out.contains("hunter2"),
        "env values are never echoed: {out}"
    );
    insta::assert_snapshot!(out, @r#"
    stacks/a.yaml:4:12: services.web.image: image `r/x` is not pinned by digest
      hint: run `dockhand pin` to resolve its tag to the digest the registry serves and write it in place, or set policy.require_digest: false in dockhand.yaml
    stacks/a.yaml:5:5: services.web: unknown field `imgae`
      hint: did you mean `image`? allowed here: cap_add, cap_drop, command, cpus, depends_on, devices, entrypoint, env, env_file, extra_hosts, health, hooks, image, init, job, labels, logging, mem_limit, mem_reservation, mounts, network_mode, networks, pid, pids_limit, ports, privileged, read_only, release, restart, route, security_opt, shm_size, stop_grace_period, stop_signal, sysctls, timeout, ulimits, user, working_dir
    stacks/a.yaml:6:13: services.web.ports[0]: "80" does not match "^(\[?[0-9a-fA-F:.]+\]?:)?[0-9]{1,5}(-[0-9]{1,5})?:[0-9]{1,5}(-[0-9]{1,5})?(/(tcp|udp|sctp))?$"
      hint: write a port as [IP:]HOST:CONTAINER[/tcp|udp], e.g. "127.0.0.1:8080:80", or a range of the same length, e.g. "8080-8082:8080-8082"
    stacks/a.yaml:7:19: services.web.env.SECRET: value is not valid under any of the schemas listed in the 'anyOf' keyword
      hint: env values are strings, numbers or booleans
    stacks/a.yaml:8:24: services.web.health.interval: "soon" does not match "^([0-9]+(ms|s|m|h))+$"
      hint: write a duration such as 500ms, 1s or 2m30s
    5 problems found; nothing was changed.
    "#);
}

#[test]
fn semantic_errors_across_files_are_all_reported() {
    let a = "stack: a\nnetworks: {net: {}}\nservices:\n  web:\n    image: r/web:1\n    ports: [\"8080:80\"]\n    route: {host: x.localhost, port: 80}\n    mounts:\n      - {bind: relative/dir, target: /m}\n      - {volume: nope, target: data}\n    networks: [net, missing]\n    depends_on: [db, ghost]\n  db:\n    image: r/db@sha256:abc\n    depends_on: [web]\n";
    let b = format!("stack: b\nservices:\n  web:\n    image: r/w@{D}\n    ports: [\"127.0.0.1:8080:81\"]\n    route: {{host: X.localhost, port: 81}}\n    labels: {{dockhand.stack: x}}\n");
    insta::assert_snapshot!(errors(&[("stacks/a.yaml", a), ("stacks/b.yaml", &b)]));
}

#[test]
fn duplicate_container_names_and_missing_files() {
    let a = format!("stack: a-b\nservices:\n  c: {{image: r/x@{D}}}\n");
    let b = format!("stack: a\nservices:\n  b-c: {{image: r/x@{D}}}\n");
    let out = errors(&[("stacks/1.yaml", &a), ("stacks/2.yaml", &b)]);
    assert!(
        out.contains("stacks/2.yaml:3:3: services.b-c: container name `a-b-c` of service `b-c` in stack `a` is also the name of service `c` in stack `a-b` (stacks/1.yaml:3) (rule `derived_name`)")
            && out.matches("derived_name").count() == 1,
        "{out}"
    );
    let out = load(&[]).unwrap_err().to_string();
    assert!(out.contains("dockhand.yaml is missing"), "{out}");
    // Issue 19: a repository without stacks is the project with nothing deployed (how a
    // repository decommissions a project), not an error.
    let empty = load(&[SourceFile {
        path: "dockhand.yaml".into(),
        text: "version: 1\nproject: gone\n".into(),
    }])
    .expect("a repository without stacks loads");
    assert!(empty.stacks.is_empty());
}

#[test]
fn probes_smoke_checks_and_maintenance_are_checked() {
    let a = format!("stack: a\nservices:\n  web:\n    image: r/web@{D}\n    route: {{host: a.localhost, port: 80, priority: 2000000000}}\n    health: {{cmd: [x], http: {{port: 80, path: readyz, status: [200, 99]}}}}\n    release:\n      smoke: [{{http: {{port: 80}}, tcp: {{port: 80}}}}, {{}}, {{cmd: []}}]\n      maintenance: {{image: r/maint:1}}\n  worker:\n    image: r/w@{D}\n    release: {{maintenance: {{image: r/m@{D}}}}}\n");
    insta::assert_snapshot!(errors(&[("stacks/a.yaml", &a)]));
}

/// A desired state with this `dockhand.yaml` and one stack file.
fn with_config(config: &str, stack: &str) -> Vec<SourceFile> {
    vec![
        SourceFile {
            path: "dockhand.yaml".into(),
            text: config.into(),
        },
        SourceFile {
            path: "stacks/ops.yaml".into(),
            text: stack.into(),
        },
    ]
}

#[test]
fn policy_denies_host_powers_foreign_binds_and_registries_naming_the_rule() {
    let stack = format!(
        "stack: ops\nservices:\n  agent:\n    image: ghcr.io/other/agent:1@{D}\n    privileged: true\n    network_mode: host\n    pid: host\n    cap_add: [NET_ADMIN]\n    devices: [/dev/fuse]\n    mounts:\n      - {{bind: /var/run/docker.sock, target: /var/run/docker.sock}}\n      - {{bind: /etc/ssl, target: /certs, read_only: true}}\n      - {{bind: /srv/app/../../etc, target: /x}}\n    ports: [\"8080:80\"]\n"
    );
    let config = "version: 1\npolicy:\n  bind_roots: [/srv/app]\n  registries: [127.0.0.1:5000, ghcr.io/acme]\n";
    let out = load(&with_config(config, &stack))
        .expect_err("policy must refuse")
        .to_string();
    insta::assert_snapshot!(out);

    // The same stack, allowed its powers and sources explicitly, is valid (ports aside).
    let allowed = "version: 1\npolicy:\n  bind_roots: [/srv/app, /etc/ssl, /var/run/docker.sock]\n  registries: [ghcr.io/other]\n  allow:\n    ops: [privileged, host_network, host_pid, cap_add, devices, docker_socket]\n";
    let fixed = stack
        .replace("      - {bind: /srv/app/../../etc, target: /x}\n", "")
        .replace("    ports: [\"8080:80\"]\n", "");
    load(&with_config(allowed, &fixed)).unwrap_or_else(|e| panic!("allowed stack refused:\n{e}"));
}

/// Ports, durations and restart policies are parsed once, at load: a value the schema's
/// pattern lets through but the type refuses (a port out of range, an address that is no IP,
/// a duration too long to wait) is reported where it is written, every one of them — never
/// dropped or turned into a default later.
#[test]
fn values_the_types_refuse_are_all_reported_where_they_are_written() {
    let a = format!("stack: a\nservices:\n  web:\n    image: r/web@{D}\n    ports: [\"0:80\", \"8080:80\", \"99999:1\", \"abc:1:2\", \"8081:80/udp\"]\n    stop_grace_period: 99999999999999999999h\n    health: {{cmd: [x], interval: 1s, timeout: 18446744073709551615s}}\n");
    // A file with a schema error too: both are reported, and nothing the dropped field
    // implies (here, a missing `image`) is reported on top.
    let b = "stack: b\nservices:\n  web:\n    image: 5\n    ports: [\"65536:80\"]\n";
    let out = errors(&[("stacks/a.yaml", &a), ("stacks/b.yaml", b)]);
    insta::assert_snapshot!(out, @r#"
    stacks/a.yaml:5:13: services.web.ports[0]: `0:80` is not a valid port mapping
      hint: write [IP:]HOST:CONTAINER[/tcp|udp] with ports from 1 to 65535
    stacks/a.yaml:5:32: services.web.ports[2]: `99999:1` is not a valid port mapping
      hint: write [IP:]HOST:CONTAINER[/tcp|udp] with ports from 1 to 65535
    stacks/a.yaml:5:43: services.web.ports[3]: `abc:1:2` is not a valid port mapping
      hint: write [IP:]HOST:CONTAINER[/tcp|udp] with ports from 1 to 65535
    stacks/a.yaml:6:24: services.web.stop_grace_period: `99999999999999999999h` is longer than any duration dockhand can wait
      hint: write a duration such as 500ms, 1s or 2m30s
    stacks/a.yaml:7:47: services.web.health.timeout: `18446744073709551615s` is longer than any duration dockhand can wait
      hint: write a duration such as 500ms, 1s or 2m30s
    stacks/b.yaml:4:12: services.web.image: 5 is not of type "string"
      hint: check the type expected for this field in schemas/
    stacks/b.yaml:5:13: services.web.ports[0]: `65536:80` is not a valid port mapping
      hint: write [IP:]HOST:CONTAINER[/tcp|udp] with ports from 1 to 65535
    7 problems found; nothing was changed.
    "#);
}
