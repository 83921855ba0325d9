//! Every verb's `--json` on the real Engine (issue 20 item 3): one JSON document on stdout, an
//! integer `version`, RFC 3339 (UTC) times, integer ids, the error object under `--json`, and
//! `status`'s Argo words for a host in sync, a stopped service, an unhealthy container and a
//! rollback hold.

mod support;

use std::time::{Duration, Instant};

use serde_json::Value;
use support::{docker_ok, Stack};

/// The shape rules every `--json` document keeps: `version` an integer ≥ 1; every time (a
/// key `at` or ending in `_at`) an RFC 3339 UTC string or null; every id (`id` or ending in
/// `_id`) an integer or null; no `_ms` key but durations (`duration_ms`, `took_ms`).
fn check_shape(what: &str, stdout: &str) -> Value {
    let doc: Value = serde_json::from_str(stdout)
        .unwrap_or_else(|e| panic!("{what}: not one JSON document ({e}):\n{stdout}"));
    assert!(
        doc["version"].as_u64().is_some_and(|v| v >= 1),
        "{what}: no integer version: {doc:#}"
    );
    let rfc3339 = jsonschema::options()
        .should_validate_formats(true)
        .build(&serde_json::json!({"type": "string", "format": "date-time", "pattern": "Z$"}))
        .unwrap();
    walk(&doc, &mut |key, v| {
        if key == "at" || key.ends_with("_at") {
            if !v.is_null() {
                assert!(
                    rfc3339.is_valid(v),
                    "{what}: {key} = {v} is not RFC 3339 UTC"
                );
            }
        } else if key == "id" || key.ends_with("_id") {
            assert!(
                v.is_null() || v.is_i64(),
                "{what}: {key} = {v} is not an integer"
            );
        } else {
            assert!(
                !key.ends_with("_ms") || key == "duration_ms" || key == "took_ms",
                "{what}: {key} is a raw millisecond time"
            );
        }
    });
    doc
}

fn walk(v: &Value, f: &mut dyn FnMut(&str, &Value)) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                f(k, v);
                walk(v, f);
            }
        }
        Value::Array(a) => a.iter().for_each(|v| walk(v, f)),
        _ => {}
    }
}

fn status(s: &Stack, args: &[&str]) -> (i32, Value) {
    let mut full = vec!["status", "--json", "--offline"];
    full.extend(args);
    let r = s.dockhand(&full);
    (r.code, check_shape("status", &r.stdout))
}

/// The one row of `service`.
fn row<'a>(doc: &'a Value, container: &str) -> &'a Value {
    doc["services"]
        .as_array()
        .and_then(|rows| rows.iter().find(|r| r["container"] == container))
        .unwrap_or_else(|| panic!("no row for {container}: {doc:#}"))
}

fn words(v: &Value) -> (&str, &str) {
    (
        v["sync"].as_str().unwrap_or("?"),
        v["health"].as_str().unwrap_or("?"),
    )
}

fn wait_for(what: &str, limit: Duration, mut ok: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ok() {
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn every_verb_json_is_versioned_with_rfc3339_times_and_status_speaks_argo() {
    let s = Stack::new("json");
    let img = s.image("v1");
    let web = s.container("web");
    // Healthy until /tmp/sick exists.
    s.write(&format!(
        "services:\n  web:\n    image: {img}\n    health: {{cmd: [sh, -c, 'test ! -f /tmp/sick'], interval: 1s, timeout: 1s, retries: 1}}\n    stop_grace_period: 1s\n  side:\n    image: {img}\n    stop_grace_period: 1s\n"
    ));

    let r = s.dockhand(&["validate", "--json"]);
    assert_eq!(r.code, 0, "{r:?}");
    let v = check_shape("validate", &r.stdout);
    assert_eq!(v["valid"], true);
    assert_eq!(v["project"], s.name.as_str());
    assert_eq!(v["services"], 2);

    let r = s.dockhand(&["plan", "--json"]);
    assert_eq!(r.code, 0, "{r:?}");
    let p = check_shape("plan", &r.stdout);
    assert_eq!(p["actions"].as_array().map(Vec::len), Some(2), "{p:#}");
    let r = s.dockhand(&["diff", "--json"]);
    assert_eq!(check_shape("diff", &r.stdout)["summary"], p["summary"]);

    // --json asks no questions: without --yes it refuses, as a JSON error object.
    let r = s.dockhand(&["apply", "--json"]);
    assert_eq!(r.code, 1, "{r:?}");
    let e = check_shape("apply error", &r.stdout);
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("without confirmation"),
        "{e:#}"
    );
    assert!(
        e["error"]["hints"][0].as_str().unwrap().contains("--yes"),
        "{e:#}"
    );

    let r = s.dockhand(&["apply", "--yes", "--json"]);
    assert_eq!(r.code, 0, "{r:?}");
    let a = check_shape("apply", &r.stdout);
    assert_eq!(a["outcome"], "succeeded", "{a:#}");
    let deploy = a["deploy_id"].as_i64().expect("deploy id");
    assert!(a["took_ms"].is_u64(), "{a:#}");
    assert_eq!(a["report"]["created"], 2, "{a:#}");
    assert_eq!(a["agent"], Value::Null);
    assert!(!r.stderr.is_empty(), "progress stays on stderr");
    let r = s.dockhand(&["apply", "--yes", "--json"]);
    assert_eq!(check_shape("apply", &r.stdout)["outcome"], "no-changes");

    // In sync and healthy.
    let (code, st) = status(&s, &[]);
    assert_eq!(code, 0, "{st:#}");
    assert_eq!(words(&st), ("Synced", "Healthy"), "{st:#}");
    assert_eq!(words(row(&st, &web)), ("Synced", "Healthy"), "{st:#}");
    assert_eq!(row(&st, &web)["deploy_id"], deploy, "{st:#}");
    assert!(row(&st, &web)["deployed_at"].is_string(), "{st:#}");

    // history: the list and one deploy.
    let r = s.dockhand(&["history", "--json"]);
    let h = check_shape("history", &r.stdout);
    assert_eq!(h["deploys"][0]["id"], deploy, "{h:#}");
    assert!(h["deploys"][0]["started_at"].is_string(), "{h:#}");
    assert!(h["deploys"][0]["finished_at"].is_string(), "{h:#}");
    assert!(
        h["deploys"][0]["steps"][0]["started_at"].is_string(),
        "{h:#}"
    );
    let r = s.dockhand(&["history", "--json", "--id", &deploy.to_string()]);
    assert_eq!(check_shape("history --id", &r.stdout)["id"], deploy);
    let r = s.dockhand(&["history", "--json", "--id", "999"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(check_shape("history error", &r.stdout)["error"]["message"].is_string());

    // A container that fell ill keeps its spec: Synced, Degraded.
    docker_ok(&["exec", &web, "touch", "/tmp/sick"]);
    wait_for("web unhealthy", Duration::from_secs(30), || {
        docker_ok(&["inspect", "--format", "{{.State.Health.Status}}", &web]) == "unhealthy"
    });
    let (code, st) = status(&s, &[]);
    assert_eq!(code, 2, "not in sync: {st:#}");
    assert_eq!(words(row(&st, &web)), ("Synced", "Degraded"), "{st:#}");
    assert_eq!(words(&st), ("Synced", "Degraded"), "{st:#}");
    assert_eq!(st["in_sync"], false);

    // A service stopped by hand: it exists and does not run, and apply would start it.
    let side = s.container("side");
    docker_ok(&["stop", "-t", "1", &side]);
    let (code, st) = status(&s, &[]);
    assert_eq!(code, 2, "{st:#}");
    assert_eq!(words(row(&st, &side)), ("OutOfSync", "Degraded"), "{st:#}");
    assert_eq!(words(&st), ("OutOfSync", "Degraded"), "{st:#}");

    // Removed: Missing.
    docker_ok(&["rm", "-f", &side]);
    let (_, st) = status(&s, &[]);
    assert_eq!(words(row(&st, &side)), ("OutOfSync", "Missing"), "{st:#}");

    // An invalid desired state: every problem, machine-readable.
    s.write("services:\n  web:\n    imag: nope\n");
    let r = s.dockhand(&["validate", "--json"]);
    assert_eq!(r.code, 1, "{r:?}");
    let e = check_shape("validate error", &r.stdout);
    let problems = e["error"]["problems"].as_array().expect("problems");
    assert!(!problems.is_empty(), "{e:#}");
    assert!(
        problems[0]["line"].is_u64() && problems[0]["file"].is_string(),
        "{e:#}"
    );
    assert!(
        r.stderr.contains("invalid desired state"),
        "and the text on stderr: {r:?}"
    );

    // schema and pin.
    let out = s.path().join("schemas");
    let out = out.to_string_lossy().to_string();
    let r = support::run(&["schema", "--json", "--out", &out], &[]);
    assert_eq!(r.code, 0, "{r:?}");
    let written = check_shape("schema", &r.stdout)["written"].clone();
    let written = written.as_array().expect("written");
    assert!(written.len() >= 2, "{written:?}");
    assert!(written
        .iter()
        .all(|p| std::path::Path::new(p.as_str().unwrap()).is_file()));
    s.write(&format!("services:\n  web:\n    image: {img}\n"));
    let src = s.path().to_string_lossy().to_string();
    let r = support::run(
        &["pin", "--json", "--check", "--source", &src, "--path", "."],
        &[],
    );
    assert_eq!(r.code, 0, "{r:?}");
    let p = check_shape("pin", &r.stdout);
    assert_eq!(p["sites"][0]["result"], "pinned", "{p:#}");
    assert_eq!(p["sites"][0]["line"], 4, "{p:#}");
    assert_eq!(p["pending"], 0);

    // A deploy that fails is the deploy shape with its error (one document), exit 1.
    let (repo, _) = img.split_once('@').unwrap();
    s.write(&format!(
        "services:\n  web:\n    image: {repo}@sha256:{}\n",
        "1".repeat(64)
    ));
    let r = s.dockhand(&["apply", "--yes", "--json"]);
    assert_eq!(r.code, 1, "{r:?}");
    let a = check_shape("failed apply", &r.stdout);
    assert_eq!(a["outcome"], "failed-preflight", "{a:#}");
    assert!(
        a["deploy_id"].as_i64().is_some_and(|id| id > deploy),
        "{a:#}"
    );
    assert!(
        a["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{a:#}"
    );
    assert!(
        r.stderr.contains("error: "),
        "the report on stderr too: {r:?}"
    );
}

/// A rollback holds the project on an earlier revision until a new commit or `resume`: Argo's
/// `Suspended` (waiting for an outside event). `rollback --json` and `resume --json` too.
#[test]
fn a_rollback_hold_is_suspended_and_rollback_and_resume_speak_json() {
    let s = Stack::new("jsonhold");
    let (v1, v2) = (s.image("v1"), s.image("v2"));
    let dir = s.path().to_path_buf();
    std::fs::write(dir.join(".gitignore"), "state/\n").unwrap();
    support::git(&dir, &["init", "-q", "-b", "main"]);
    let src = dir.to_string_lossy().to_string();
    let state = s.state_dir().to_string_lossy().to_string();
    let on_git = |verb: &[&str]| {
        let mut args: Vec<&str> = verb.to_vec();
        args.extend(["--source", &src, "--path", ".", "--state-dir", &state]);
        support::run(&args, &[])
    };
    for img in [&v1, &v2] {
        s.write(&format!(
            "services:\n  web:\n    image: {img}\n    stop_grace_period: 1s\n"
        ));
        support::git(&dir, &["add", "-A"]);
        support::git(&dir, &["commit", "-q", "-m", img]);
        let r = on_git(&["apply", "--yes", "--json"]);
        assert_eq!(r.code, 0, "{r:?}");
    }
    let r = on_git(&["rollback", "--yes", "--json"]);
    assert_eq!(r.code, 0, "{r:?}");
    let rb = check_shape("rollback", &r.stdout);
    assert_eq!(rb["outcome"], "succeeded", "{rb:#}");
    assert!(rb["deploy_id"].is_i64(), "{rb:#}");
    assert_eq!(rb["hold"]["revision"], rb["revision"], "{rb:#}");
    assert!(rb["hold"]["at"].is_string(), "{rb:#}");

    let r = on_git(&["status", "--json", "--offline"]);
    let st = check_shape("status", &r.stdout);
    // The host runs v1 while the source says v2.
    assert_eq!(words(&st), ("OutOfSync", "Suspended"), "{st:#}");
    assert_eq!(
        words(&st["services"][0]),
        ("OutOfSync", "Healthy"),
        "{st:#}"
    );
    assert!(st["hold"]["at"].is_string(), "{st:#}");

    let r = on_git(&["resume", "--json"]);
    assert_eq!(r.code, 0, "{r:?}");
    let re = check_shape("resume", &r.stdout);
    assert_eq!(re["released"], true, "{re:#}");
    assert_eq!(re["agent"], Value::Null, "no agent runs here: {re:#}");
    let r = on_git(&["status", "--json", "--offline"]);
    assert_eq!(
        words(&check_shape("status", &r.stdout)),
        ("OutOfSync", "Healthy")
    );
}
