//! Runbook steps from a commit, on the real Engine: preflight, jobs and `depends_on`
//! conditions, release hooks with stop-on-failure, and the deploy record (`history`,
//! `status`, quarantine, a kill -9 mid-apply).

mod support;

use std::time::Duration;

use support::traefik::{Load, Traefik};
use support::{docker, docker_ok, Stack};

fn id(name: &str) -> String {
    docker_ok(&["inspect", "--format", "{{.Id}}", name])
}

fn history_json(s: &Stack) -> serde_json::Value {
    let r = s.dockhand(&["history", "--json"]);
    assert_eq!(r.code, 0, "{r:?}");
    serde_json::from_str::<serde_json::Value>(&r.stdout).expect("history --json")["deploys"].clone()
}

#[test]
fn preflight_reports_every_problem_in_one_run_and_changes_nothing() {
    let s = Stack::new("preflight");
    let img = s.image("v1");
    s.write(&format!("services:\n  keep:\n    image: {img}\n"));
    assert_eq!(s.dockhand(&["apply", "--yes"]).code, 0);
    let before = id(&s.container("keep"));

    // A port held by someone else (this test), a bind source that is not there, an env file
    // that is not there, and a digest the registry never saw.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let missing_dir = s.path().join("no-such-dir");
    let missing_env = s.path().join("no-such.env");
    let (repo, _) = img.split_once('@').unwrap();
    let ghost = format!("{repo}@sha256:{}", "1".repeat(64));
    s.write(&format!(
        "services:\n  keep:\n    image: {img}\n    env: {{CHANGED: \"1\"}}\n    ports: [\"127.0.0.1:{port}:8080\"]\n  media:\n    image: {img}\n    mounts: [{{bind: {}, target: /media}}]\n  app:\n    image: {img}\n    env_file: {}\n  ghost:\n    image: {ghost}\n",
        missing_dir.display(),
        missing_env.display()
    ));
    let r = s.dockhand(&["apply", "--yes"]);
    assert_eq!(r.code, 1, "{r:?}");
    for needle in [
        format!("host port 127.0.0.1:{port}/tcp is taken"),
        format!("bind source {} does not exist", missing_dir.display()),
        format!("env file {}", missing_env.display()),
        "available from its registry".to_string(),
        "nothing was changed".to_string(),
    ] {
        assert!(r.stderr.contains(&needle), "missing `{needle}` in {r:?}");
    }
    assert_eq!(id(&s.container("keep")), before, "keep was not recreated");
    for svc in ["media", "app", "ghost"] {
        assert!(!docker(&["inspect", &s.container(svc)]).status.success());
    }
    let h = history_json(&s);
    assert_eq!(h[0]["outcome"], "failed-preflight", "{h:#}");
    assert_eq!(h[1]["outcome"], "succeeded", "{h:#}");

    // --preflight-only runs the same checks and records nothing.
    let r = s.dockhand(&["apply", "--preflight-only"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert_eq!(history_json(&s).as_array().unwrap().len(), 2);
    drop(taken);
}

#[test]
fn healthy_dependency_and_completed_job_order_the_start_and_the_job_runs_once_per_change() {
    let s = Stack::new("jobs");
    let img = s.image("v1");
    let out = s.path().join("out");
    let body = |release: &str| {
        format!(
            "networks: {{net: {{}}}}\nservices:\n  db:\n    image: {img}\n    networks: [net]\n    health: {{cmd: [wget, -q, -O, /dev/null, 'http://127.0.0.1:8080/readyz'], interval: 500ms, retries: 20}}\n  migrate:\n    image: {img}\n    job: true\n    networks: [net]\n    env: {{RELEASE: \"{release}\"}}\n    command: [sh, -c, 'wget -q -O /dev/null http://db:8080/readyz && echo \"migrated $RELEASE\" >> /out/runs.log']\n    mounts: [{{bind: {}, target: /out, create: {{mode: \"0777\"}}}}]\n    depends_on: {{db: healthy}}\n  web:\n    image: {img}\n    networks: [net]\n    depends_on: {{migrate: completed}}\n",
            out.display()
        )
    };
    s.write(&body("1"));
    let r = s.dockhand(&["apply", "--yes"]);
    assert_eq!(r.code, 0, "{r:?}");
    let runs = || std::fs::read_to_string(out.join("runs.log")).unwrap_or_default();
    assert_eq!(
        runs(),
        "migrated 1\n",
        "the job reached the healthy db once"
    );
    let finished = docker_ok(&[
        "inspect",
        "--format",
        "{{.State.FinishedAt}}",
        &s.container("migrate"),
    ]);
    let web_started = docker_ok(&[
        "inspect",
        "--format",
        "{{.State.StartedAt}}",
        &s.container("web"),
    ]);
    assert!(
        web_started > finished,
        "web started {web_started}, job finished {finished}"
    );

    // Nothing changed: the completed job is not run again.
    let r = s.dockhand(&["plan", "--detailed-exitcode"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(s.dockhand(&["apply", "--yes"]).code, 0);
    assert_eq!(runs(), "migrated 1\n");

    // A new release of the job runs it once more.
    s.write(&body("2"));
    assert_eq!(s.dockhand(&["apply", "--yes"]).code, 0);
    assert_eq!(runs(), "migrated 1\nmigrated 2\n");
}

struct Release {
    s: Stack,
    traefik: Traefik,
    host: String,
    backups: std::path::PathBuf,
}

fn release_setup() -> Release {
    let (s, traefik, host) = Traefik::with_stack("hooks");
    let backups = s.path().join("backups");
    Release {
        s,
        traefik,
        host,
        backups,
    }
}

/// Seed 004 as a stack: a db, and a blue/green web whose release backs the db up (keeping 3),
/// migrates and collects static files before it gets traffic, and smoke-tests after.
fn release_body(x: &Release, img: &str, migrate: &str) -> String {
    format!(
        r#"networks: {{proxy: {{}}}}
services:
  db:
    image: {img}
    networks: [proxy]
    env: {{DB_PASSWORD: s3cr3t-db-pw}}
    mounts: [{{bind: {backups}, target: /backups, create: {{mode: "0777"}}}}]
  web:
    image: {img}
    networks: [proxy]
    env: {{API_TOKEN: t0k3n-never-shown}}
    route: {{host: {host}, port: 8080}}
    health: {{cmd: [wget, -q, -O, /dev/null, 'http://127.0.0.1:8080/readyz'], interval: 500ms, timeout: 2s, retries: 3}}
    stop_grace_period: 1s
    release: {{strategy: blue-green}}
    hooks:
      before:
        - service: db
          command: [sh, -c, 'echo "dump of $DB_PASSWORD" > /backups/db-$(cat /proc/sys/kernel/random/uuid).sql && echo backup written']
          rotate: {{dir: {backups}, keep: 3}}
      after_start:
        - [sh, -c, '{migrate}']
        - [sh, -c, 'echo collectstatic done']
      after_switch:
        - [wget, -q, -O, /dev/null, 'http://127.0.0.1:8080/readyz']
"#,
        backups = x.backups.display(),
        host = x.host,
    )
}

#[test]
fn release_hooks_run_in_order_and_a_failing_after_start_hook_never_serves() {
    let x = release_setup();
    let (v1, v2) = (x.s.image("v1"), x.s.image("v2"));
    // Five old backups: rotation keeps the newest three, the new dump among them.
    std::fs::create_dir_all(&x.backups).unwrap();
    for i in 0..5 {
        let p = x.backups.join(format!("old-{i}.sql"));
        std::fs::write(&p, "old").unwrap();
        let t = std::time::SystemTime::now() - Duration::from_secs(3600 - i * 60);
        std::fs::File::options()
            .write(true)
            .open(&p)
            .unwrap()
            .set_modified(t)
            .unwrap();
    }
    // db first (the before hook execs in it), then the release.
    x.s.write(&release_body(&x, &v1, "echo migrate 0041 ok"));
    let r = x.s.dockhand(&["apply", "--yes"]);
    assert_eq!(r.code, 0, "{r:?}");
    x.traefik.wait_for(&x.host, "v1", Duration::from_secs(20));
    let mut left: Vec<String> = std::fs::read_dir(&x.backups)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(left.len(), 3, "{left:?}");
    assert!(left.iter().any(|f| f.starts_with("db-")), "{left:?}");
    assert!(left.contains(&"old-4.sql".to_string()) && left.contains(&"old-3.sql".to_string()));

    let h = history_json(&x.s);
    let steps: Vec<String> = h[0]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap().to_string())
        .filter(|n| n.starts_with("hook"))
        .collect();
    assert_eq!(
        steps,
        [
            "hook before[0]",
            "hook after_start[0]",
            "hook after_start[1]",
            "hook after_switch[0]"
        ],
        "{h:#}"
    );

    // v2's migration fails: under load, v2 must never serve and v1 must serve throughout.
    x.s.write(&release_body(
        &x,
        &v2,
        "echo applying migration 0042; echo error: column already exists >&2; exit 3",
    ));
    let load = Load::start(x.traefik.web, &x.host, 200, Duration::from_secs(60));
    std::thread::sleep(Duration::from_millis(500));
    let r = x.s.dockhand(&["apply", "--yes"]);
    std::thread::sleep(Duration::from_millis(1500));
    let seen = load.finish();
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr.contains("hook after_start[0] failed")
            && r.stderr.contains("column already exists")
            && r.stderr.contains("quarantined"),
        "{r:?}"
    );
    let failed = seen.failed();
    assert!(
        failed.is_empty(),
        "{} failed: {:?}",
        failed.len(),
        &failed[..failed.len().min(5)]
    );
    assert!(
        seen.responses
            .iter()
            .all(|(_, _, body)| body.contains("v1")),
        "every response came from v1"
    );
    eprintln!(
        "failed hook under load: {} requests, 0 failed",
        seen.responses.len()
    );

    let h = history_json(&x.s);
    assert_eq!(h[0]["outcome"], "rolled-back", "{h:#}");
    assert_eq!(h[0]["quarantined"], true);
    let hook = h[0]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "hook after_start[0]")
        .expect("the failed hook is recorded");
    assert_eq!(hook["outcome"], "failed");
    assert!(hook["output"]
        .as_str()
        .unwrap()
        .contains("column already exists"));

    // The same revision is not tried again by itself.
    let r = x.s.dockhand(&["apply", "--yes"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("is quarantined"), "{r:?}");
    let status = x.s.dockhand(&["status"]);
    assert!(status.stdout.contains("quarantined:"), "{status:?}");

    // Secrets never reach the record or the output.
    let db = std::fs::read(x.s.state_dir().join("dockhand.db")).unwrap();
    let hist = x.s.dockhand(&["history", "--id", "2"]);
    for secret in ["s3cr3t-db-pw", "t0k3n-never-shown"] {
        assert!(
            !String::from_utf8_lossy(&db).contains(secret),
            "{secret} in the store"
        );
        assert!(!hist.stdout.contains(secret) && !r.stderr.contains(secret));
    }
}

#[test]
fn the_record_survives_a_kill_during_apply_and_history_reads_well() {
    let s = Stack::new("record");
    let img = s.image("v1");
    s.write(&format!("services:\n  web:\n    image: {img}\n"));
    assert_eq!(s.dockhand(&["apply", "--yes"]).code, 0);

    // A slow job keeps the apply busy; kill -9 it half way.
    s.write(&format!(
        "services:\n  web:\n    image: {img}\n  slow:\n    image: {img}\n    job: true\n    command: [sleep, '30']\n"
    ));
    let state = s.state_dir().to_string_lossy().to_string();
    let src = s.path().to_string_lossy().to_string();
    let mut child = std::process::Command::new(support::bin())
        .args([
            "apply",
            "--yes",
            "--source",
            &src,
            "--path",
            ".",
            "--worktree",
            "--state-dir",
            &state,
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Wait until the job container runs, then kill.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !docker(&["inspect", &s.container("slow")]).status.success() {
        assert!(std::time::Instant::now() < deadline, "job never started");
        std::thread::sleep(Duration::from_millis(100));
    }
    child.kill().unwrap();
    child.wait().unwrap();

    let h = history_json(&s);
    assert_eq!(h.as_array().unwrap().len(), 2, "{h:#}");
    assert_eq!(h[1]["outcome"], "succeeded");
    assert_eq!(h[0]["outcome"], "running");

    // The job still runs; make it quick and apply again: the killed deploy is marked.
    s.write(&format!(
        "services:\n  web:\n    image: {img}\n  slow:\n    image: {img}\n    job: true\n    command: [sleep, '0']\n"
    ));
    let r = s.dockhand(&["apply", "--yes"]);
    assert_eq!(r.code, 0, "{r:?}");
    let h = history_json(&s);
    let outcomes: Vec<&str> = h
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, ["succeeded", "interrupted", "succeeded"]);

    let table = s.dockhand(&["history"]);
    let status = s.dockhand(&["status"]);
    let mut settings = insta::Settings::clone_current();
    settings.add_filter(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ", "[time]");
    settings.add_filter(r"\d+\.\ds", "[took]");
    settings.add_filter(&s.name, "[stack]");
    settings.add_filter(r"worktree:[0-9a-f]{8}", "worktree:[rev]");
    settings.add_filter(r"/tmp/\.tmp\w+", "[dir]");
    settings.add_filter(r"sha256:[0-9a-f]{12}", "sha256:[digest]");
    settings.add_filter(r"(Up|Exited \(0\)) [^\n]*", "[docker status]");
    // Column widths follow the (per-run) stack name: compare content, not padding.
    settings.add_filter(r" {2,}", "  ");
    settings.add_filter(r" +\n", "\n");
    settings.bind(|| {
        insta::assert_snapshot!("history_table", table.stdout);
        insta::assert_snapshot!("status_table", status.stdout);
    });
}

/// Regression: `dockhand rollback` read the deploy record before it took the apply lock, so
/// while an agent was finishing a deploy (v2 running, its record not yet `succeeded`) it chose
/// the wrong "previous good" revision (it flaked
/// `agent::rollback_holds_across_polls_until_a_new_commit_or_resume`). Now it waits for the
/// lock, saying who holds it, and chooses its target from the record as it stands then.
#[test]
fn rollback_waits_for_the_apply_lock_and_chooses_its_target_under_it() {
    use std::io::BufRead;
    let s = Stack::new("rbwait");
    let (v1, v2) = (s.image("v1"), s.image("v2"));
    let web = s.container("web");
    let dir = s.path().to_path_buf();
    let body =
        |img: &str| format!("services:\n  web:\n    image: {img}\n    stop_grace_period: 1s\n");
    std::fs::write(dir.join(".gitignore"), "state/\n").unwrap();
    support::git(&dir, &["init", "-q", "-b", "main"]);
    let src = dir.to_string_lossy().to_string();
    let state = s.state_dir().to_string_lossy().to_string();
    let on_git = |verb: &[&str]| -> Vec<String> {
        let mut args: Vec<String> = verb.iter().map(|a| a.to_string()).collect();
        args.extend(["--source", &src, "--path", ".", "--state-dir", &state].map(String::from));
        args
    };
    let mut commits = Vec::new();
    for img in [&v1, &v2] {
        s.write(&body(img));
        support::git(&dir, &["add", "-A"]);
        support::git(&dir, &["commit", "-q", "-m", img]);
        let args = on_git(&["apply", "--yes"]);
        let r = support::run(&args.iter().map(String::as_str).collect::<Vec<_>>(), &[]);
        assert_eq!(r.code, 0, "{r:?}");
        let head = std::process::Command::new("git")
            .args(["rev-parse", "HEAD"])
            .current_dir(&dir)
            .output()
            .unwrap();
        commits.push(String::from_utf8(head.stdout).unwrap().trim().to_string());
    }

    // An agent finishing the v2 deploy: it holds the apply lock, and v2's record still says
    // `running`.
    let db = rusqlite::Connection::open(s.state_dir().join("dockhand.db")).unwrap();
    let set_v2 = |outcome: &str| {
        db.execute(
            "UPDATE deploys SET outcome = ?1 WHERE revision = ?2",
            rusqlite::params![outcome, commits[1]],
        )
        .unwrap();
    };
    set_v2("running");
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(s.state_dir().join("apply.lock"))
        .unwrap();
    let held = nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock)
        .map_err(|(_, e)| e)
        .unwrap();
    let mut rollback = std::process::Command::new(support::bin())
        .args(on_git(&["rollback", "--yes"]))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = std::io::BufReader::new(rollback.stderr.take().unwrap());
    let mut line = String::new();
    stderr.read_line(&mut line).unwrap();
    assert!(
        line.contains("waiting for another dockhand apply") && line.contains("apply.lock"),
        "{line}"
    );

    // The agent's deploy finishes: recorded, then the lock is let go.
    set_v2("succeeded");
    drop(held);
    let out = rollback.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{line}");
    assert!(
        stdout.contains(&format!("rollback to {}", commits[0])),
        "the target is the deploy before v2: {stdout}"
    );
    let image = docker_ok(&["inspect", "--format", "{{.Config.Image}}", &web]);
    assert!(
        image.ends_with(v1.split_once('@').unwrap().1),
        "{image} is not v1"
    );
}

/// Regression (issue 18 item 11): a job that never exits held the apply lock for good. With
/// `timeout: 2s` the job is stopped and removed at 2 s, the deploy fails and is recorded as
/// failed, and the next apply takes the lock at once.
#[test]
fn a_job_that_never_exits_is_stopped_at_its_timeout_and_fails_the_deploy() {
    let s = Stack::new("jobtimeout");
    let img = s.image("v1");
    // `sleep` as PID 1 ignores SIGTERM: the stop takes its whole grace period (1 s).
    s.write(&format!(
        "services:\n  hang:\n    image: {img}\n    job: true\n    timeout: 2s\n    stop_grace_period: 1s\n    command: [sleep, '3600']\n"
    ));
    let t0 = std::time::Instant::now();
    let r = s.dockhand(&["apply", "--yes"]);
    let took = t0.elapsed();
    eprintln!("lifecycle: job timeout 2s: apply failed after {took:?}");
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr
            .contains("did not finish within its timeout of 2s: it was stopped and removed"),
        "{r:?}"
    );
    assert!(r.stderr.contains("hint: raise `timeout:`"), "{r:?}");
    // 2 s of timeout and 1 s of grace; the rest is create, start and the record.
    assert!(took >= Duration::from_secs(3), "{took:?}");
    assert!(took < Duration::from_secs(8), "{took:?}");
    assert!(
        !docker(&["inspect", &s.container("hang")]).status.success(),
        "the timed-out job container is removed"
    );
    assert_eq!(history_json(&s)[0]["outcome"], "failed");

    // The lock is free: a fixed job deploys without waiting for anyone.
    s.write(&format!(
        "services:\n  hang:\n    image: {img}\n    job: true\n    timeout: 2s\n    command: [sleep, '0']\n"
    ));
    let r = s.dockhand(&["apply", "--yes"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(!r.stderr.contains("waiting for another"), "{r:?}");
}

/// `timeout` bounds a job; on a service it would promise something nothing enforces.
#[test]
fn a_timeout_on_a_service_that_is_not_a_job_is_refused() {
    let s = Stack::new("jobtimeoutsvc");
    let img = s.image("v1");
    s.write(&format!(
        "services:\n  web:\n    image: {img}\n    timeout: 2s\n"
    ));
    let r = s.dockhand(&["validate"]);
    assert_ne!(r.code, 0, "{r:?}");
    assert!(r.stderr.contains("this service is not a job"), "{r:?}");
}
