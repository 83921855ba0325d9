//! Issue 19 item 5 on the real Engine: the container options real stacks use reach the
//! container (each read back with `docker inspect` or from inside it), a limit changed by hand
//! is drift, and the options that loosen the sandbox or reach the host's kernel are refused
//! unless both the host policy and the repository allow them.

mod support;

use support::{docker, docker_ok, image, registry, Stack};

/// An image whose config declares a healthcheck that never passes: with `health.disable`
/// the container must have none (Docker's `NONE`), so it never turns unhealthy.
fn image_with_failing_healthcheck(s: &Stack) -> String {
    let layer = image::layer(&[("index.html", "opts"), ("readyz", "ok\n")]);
    let repo = format!("dockhand-test/{}", s.name);
    let digest = image::push_config(
        &registry(),
        None,
        &repo,
        "hc",
        &layer,
        serde_json::json!({
            "Cmd": ["/bin/httpd", "-f", "-p", "8080", "-h", "/www"],
            "Env": ["PATH=/bin"],
            "Healthcheck": {"Test": ["CMD", "false"], "Interval": 1_000_000_000u64},
        }),
    )
    .expect("push image with a healthcheck");
    format!("{}/{repo}:hc@{digest}", registry())
}

fn inspect(name: &str, format: &str) -> String {
    docker_ok(&["inspect", "--format", format, name])
}

fn exec(name: &str, script: &str) -> std::process::Output {
    docker(&["exec", name, "sh", "-c", script])
}

#[test]
fn every_option_reaches_the_container_and_plans_clean() {
    let s = Stack::new("opts");
    let img = image_with_failing_healthcheck(&s);
    s.write(&format!(
        r#"services:
  web:
    image: {img}
    init: true
    extra_hosts: ["db.internal:10.1.2.3", "gw.internal:host-gateway"]
    logging:
      driver: json-file
      options: {{max-size: 1m, max-file: 2}}
    mem_limit: 64MiB
    mem_reservation: 32MiB
    cpus: 0.5
    pids_limit: 100
    shm_size: 128MiB
    read_only: true
    mounts:
      - tmpfs: /tmp
    ulimits:
      nofile: {{soft: 1024, hard: 2048}}
      nproc: 512
    security_opt: ["no-new-privileges:true"]
    sysctls:
      net.core.somaxconn: 1024
    health:
      disable: true
"#
    ));
    let r = s.dockhand(&["apply", "--yes"]);
    assert_eq!(r.code, 0, "{r:?}");
    let c = s.container("web");
    let host = |f: &str| inspect(&c, &format!("{{{{json .HostConfig.{f}}}}}"));
    assert_eq!(host("Init"), "true");
    assert_eq!(
        host("ExtraHosts"),
        r#"["db.internal:10.1.2.3","gw.internal:host-gateway"]"#
    );
    assert_eq!(
        host("LogConfig"),
        r#"{"Type":"json-file","Config":{"max-file":"2","max-size":"1m"}}"#
    );
    assert_eq!(host("Memory"), (64u64 << 20).to_string());
    assert_eq!(host("MemoryReservation"), (32u64 << 20).to_string());
    assert_eq!(host("NanoCpus"), "500000000");
    assert_eq!(host("PidsLimit"), "100");
    assert_eq!(host("ShmSize"), (128u64 << 20).to_string());
    assert_eq!(host("ReadonlyRootfs"), "true");
    assert_eq!(
        host("Ulimits"),
        r#"[{"Name":"nofile","Hard":2048,"Soft":1024},{"Name":"nproc","Hard":512,"Soft":512}]"#
    );
    assert_eq!(host("SecurityOpt"), r#"["no-new-privileges:true"]"#);
    assert_eq!(host("Sysctls"), r#"{"net.core.somaxconn":"1024"}"#);
    assert_eq!(
        inspect(&c, "{{json .Config.Healthcheck.Test}}"),
        r#"["NONE"]"#
    );
    assert_eq!(inspect(&c, "{{json .State.Health}}"), "null");

    // And from inside: what the process really gets.
    let out = |script: &str| {
        let o = exec(&c, script);
        (
            o.status.success(),
            String::from_utf8_lossy(&o.stdout).trim().to_string(),
        )
    };
    assert_eq!(
        out("cat /proc/1/cmdline | tr '\\0' ' '")
            .1
            .split(' ')
            .next(),
        Some("/sbin/docker-init"),
        "PID 1 is Docker's init"
    );
    assert!(out("cat /etc/hosts").1.contains("10.1.2.3\tdb.internal"));
    assert_eq!(out("ulimit -n"), (true, "1024".to_string()));
    assert_eq!(
        out("cat /proc/sys/net/core/somaxconn"),
        (true, "1024".to_string())
    );
    let (_, mounts) = out("cat /proc/mounts");
    let shm = mounts
        .lines()
        .find(|l| l.contains(" /dev/shm "))
        .unwrap_or_default();
    assert!(shm.contains("size=131072k"), "{shm}");
    assert!(!out("touch /x").0, "the root file system is read-only");
    assert!(out("touch /tmp/x").0, "the tmpfs is writable");

    // The limits dockhand set are not drift (Docker derives the swap limit itself) …
    let p = s.dockhand(&["plan", "--detailed-exitcode"]);
    assert_eq!(p.code, 0, "{p:?}");
    // … a limit changed by hand is, and only a new container puts it back.
    docker_ok(&["update", "--memory", "96m", "--memory-swap", "192m", &c]);
    let p = s.dockhand(&["plan", "--detailed-exitcode"]);
    assert_eq!(p.code, 2, "{p:?}");
    assert!(p.stdout.contains("resources"), "{}", p.stdout);
    let r = s.dockhand(&["apply", "--yes"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(host("Memory"), (64u64 << 20).to_string());
    assert_eq!(s.dockhand(&["plan", "--detailed-exitcode"]).code, 0);
}

fn assert_nothing_created(container: &str) {
    assert!(
        !docker(&["inspect", container]).status.success(),
        "nothing was created"
    );
}

/// Rewrites dockhand.yaml with `policy.allow.<stack>: [powers]`.
fn repo_allows(s: &Stack, powers: &str) {
    std::fs::write(
        s.path().join("dockhand.yaml"),
        format!(
            "version: 1\nproject: {0}\npolicy:\n  allow:\n    {0}: [{powers}]\n",
            s.name
        ),
    )
    .unwrap();
}

const RISKY: &str = r#"services:
  web:
    image: IMG
    security_opt: ["seccomp=unconfined", "apparmor=unconfined", "no-new-privileges:true"]
    sysctls:
      kernel.panic: 10
"#;

/// A commit gets no more than the host allows: `seccomp=unconfined` and a sysctl of the
/// host's kernel are refused by the built-in host policy, by the repository's own policy, and
/// by a host policy that does not grant them, each with the rule and a hint; nothing runs.
#[test]
fn loosening_security_opt_and_host_sysctls_need_the_host_and_the_repository() {
    let s = Stack::new("optsrisk");
    let img = s.image("v1");
    s.write(&RISKY.replace("IMG", &img));
    let c = s.container("web");

    let r = s.dockhand(&["apply", "--yes"]);
    assert_ne!(r.code, 0, "{r:?}");
    for want in [
        "security options that loosen the sandbox (seccomp=unconfined, apparmor=unconfined) is denied by policy (rule `security_opt`)",
        "sysctls that reach the host's kernel (kernel.panic) is denied by policy (rule `sysctls`)",
        &format!("add `security_opt` under `policy.allow.{}`", s.name),
        "add `sysctls` under",
    ] {
        assert!(r.stderr.contains(want), "missing {want:?} in:\n{}", r.stderr);
    }
    assert!(
        !r.stderr.contains("no-new-privileges"),
        "a harmless option is not named: {}",
        r.stderr
    );
    assert_nothing_created(&c);

    // The repository grants itself both: the host's built-in policy still refuses.
    repo_allows(&s, "security_opt, sysctls");
    let r = s.dockhand(&["apply", "--yes"]);
    assert_ne!(r.code, 0, "{r:?}");
    assert!(
        r.stderr.contains("rule `security_opt`") && r.stderr.contains("rule `sysctls`"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr
            .contains("host powers are granted by the host's owner"),
        "{}",
        r.stderr
    );
    assert_nothing_created(&c);

    // A host policy that grants `security_opt` only: the sysctl is still refused.
    let policy = s.path().join("host-policy.yaml");
    std::fs::write(&policy, format!("allow:\n  {}: [security_opt]\n", s.name)).unwrap();
    let policy = policy.to_string_lossy().to_string();
    let r = s.dockhand(&["apply", "--yes", "--policy", &policy]);
    assert_ne!(r.code, 0, "{r:?}");
    assert!(
        r.stderr.contains("rule `sysctls`") && !r.stderr.contains("rule `security_opt`"),
        "{}",
        r.stderr
    );
    assert_nothing_created(&c);

    // Granted by both, without the host sysctl (the repository may only narrow the host's
    // grants, so it asks for `security_opt` alone): it runs unconfined as asked.
    repo_allows(&s, "security_opt");
    s.write(
        &RISKY
            .replace("IMG", &img)
            .replace("    sysctls:\n      kernel.panic: 10\n", ""),
    );
    let r = s.dockhand(&["apply", "--yes", "--policy", &policy]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(
        inspect(&c, "{{json .HostConfig.SecurityOpt}}"),
        r#"["seccomp=unconfined","apparmor=unconfined","no-new-privileges:true"]"#
    );
}

const D: &str = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

/// The schema and the types accept and refuse the same option values.
#[test]
fn schema_and_types_agree_on_the_options() {
    use dockhand::load::schema::FileKind;
    let svc = |extra: &str| format!("stack: a\nservices:\n  web:\n    image: r/x@{D}\n{extra}");
    let all = "    init: true\n    extra_hosts: [\"a.b:10.0.0.1\", \"c:host-gateway\", \"v6:::1\"]\n    logging: {driver: local, options: {max-size: 10m, max-file: 3}}\n    mem_limit: 512MiB\n    mem_reservation: 1GB\n    cpus: 1.5\n    pids_limit: 10\n    shm_size: 64MiB\n    read_only: true\n    ulimits: {nofile: 10, core: {soft: 0, hard: 0}}\n    security_opt: [no-new-privileges]\n    sysctls: {net.ipv4.ip_forward: \"1\", kernel.shmmax: 1000}\n    health: {disable: true}\n";
    for (extra, accepted) in [
        (all, true),
        ("    mem_limit: 512m\n", false),
        ("    mem_limit: 512\n", false),
        ("    shm_size: 0B\n", false),
        ("    cpus: 0\n", false),
        ("    cpus: 2000\n", false),
        ("    pids_limit: 0\n", false),
        ("    extra_hosts: [\"nohost\"]\n", false),
        ("    extra_hosts: [\"a b:1.2.3.4\"]\n", false),
        ("    logging: {options: {a: b}}\n", false),
        ("    ulimits: {nofile: lots}\n", false),
        ("    ulimits: {nofile: {soft: 1}}\n", false),
        ("    init: yes please\n", false),
    ] {
        let text = svc(extra);
        let (schema, types) =
            dockhand::load::schema_and_types_accept(FileKind::Stack, &text).expect("YAML");
        assert_eq!(schema, types, "schema and types disagree on {extra:?}");
        assert_eq!(schema, accepted, "{extra:?}");
    }
}

fn load_errors(stack: &str) -> String {
    use dockhand::load::{load, SourceFile};
    let files = vec![
        SourceFile {
            path: "dockhand.yaml".into(),
            text: "version: 1\n".into(),
        },
        SourceFile {
            path: "stacks/a.yaml".into(),
            text: stack.to_string(),
        },
    ];
    load(&files).expect_err("refused").to_string()
}

#[test]
fn health_disable_stands_alone_and_blue_green_needs_a_writable_root() {
    let e = load_errors(&format!(
        "stack: a\nservices:\n  web:\n    image: r/x@{D}\n    health: {{disable: true, cmd: ['true']}}\n"
    ));
    assert!(
        e.contains("stacks/a.yaml:5:")
            && e.contains("services.web.health.disable: health sets `disable: true` and a check")
            && e.contains("hint: keep `disable: true` alone"),
        "{e}"
    );
    let e = load_errors(&format!(
        "stack: a\nservices:\n  web:\n    image: r/x@{D}\n    read_only: true\n    health: {{cmd: ['true']}}\n    route: {{host: a.example, port: 80}}\n    release: {{strategy: blue-green}}\n"
    ));
    assert!(
        e.contains("blue-green services cannot have a read-only root file system")
            && e.contains("hint: dockhand holds a new color out of the proxy"),
        "{e}"
    );
    let e = load_errors(&format!(
        "stack: a\nservices:\n  web:\n    image: r/x@{D}\n    mem_limit: 512m\n"
    ));
    assert!(
        e.contains("services.web.mem_limit: \"512m\" does not match")
            && e.contains("hint: write a size with its unit, e.g. 512MiB"),
        "{e}"
    );
}

/// A port range is published port by port and each port reaches its own container port.
#[test]
fn a_port_range_is_published_and_reachable() {
    let s = Stack::new("optsports");
    // Three httpd on 8080..8082 in one container, each serving its own port number.
    let img = s.image_with(
        "ports",
        &[
            "/bin/sh",
            "-c",
            "for p in 8080 8081 8082; do mkdir -p /tmp/$p && echo $p > /tmp/$p/index.html && httpd -p $p -h /tmp/$p; done; exec sleep 3600",
        ],
    );
    let base = 20_000 + (std::process::id() % 20_000) as u16;
    let (a, b) = (base, base + 2);
    s.write(&format!(
        "services:\n  web:\n    image: {img}\n    ports: [\"127.0.0.1:{a}-{b}:8080-8082\"]\n"
    ));
    let r = s.dockhand(&["apply", "--yes"]);
    assert_eq!(r.code, 0, "{r:?}");
    let c = s.container("web");
    let bindings = inspect(&c, "{{json .HostConfig.PortBindings}}");
    for (i, want) in ["8080", "8081", "8082"].iter().enumerate() {
        let host = a + i as u16;
        assert!(
            bindings.contains(&format!(
                r#""{want}/tcp":[{{"HostIp":"127.0.0.1","HostPort":"{host}"}}]"#
            )),
            "{bindings}"
        );
        let mut body = String::new();
        for _ in 0..50 {
            if let Ok(r) = ureq::get(&format!("http://127.0.0.1:{host}/")).call() {
                body = r.into_string().unwrap_or_default();
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        assert_eq!(
            body.trim(),
            *want,
            "127.0.0.1:{host} reaches container port {want}"
        );
    }
    assert_eq!(s.dockhand(&["plan", "--detailed-exitcode"]).code, 0);
}
