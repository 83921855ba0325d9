//! The binary as users see it: snapshots of `plan` output on a real Engine, of a validation
//! error, and of `--help`. Unique names and digests are filtered so snapshots are stable.

mod support;

use support::{run, Stack};

fn stable(s: &Stack, text: &str) -> String {
    let digest = regex::Regex::new(r"sha256:[0-9a-f]{12,64}").unwrap();
    let tmp = s.path().to_string_lossy().to_string();
    digest
        .replace_all(
            &text.replace(&s.name, "[stack]").replace(&tmp, "[dir]"),
            "sha256:[digest]",
        )
        .into_owned()
}

#[test]
fn plan_output_for_create_then_change() {
    let s = Stack::new("cliplan");
    let v1 = s.image("v1");
    let body = |img: &str, mode: &str| {
        format!(
            "networks: {{backend: {{}}}}\nservices:\n  api:\n    image: {img}\n    networks: [backend]\n  web:\n    image: {img}\n    env: {{MODE: {mode}, TOKEN: t0ps3cret}}\n    networks: [backend]\n    depends_on: [api]\n"
        )
    };
    s.write(&body(&v1, "blue"));
    let first = s.dockhand(&["plan", "--detailed-exitcode"]);
    assert_eq!(first.code, 2, "{first:?}");
    insta::assert_snapshot!("plan_on_empty_host", stable(&s, &first.stdout));

    assert_eq!(s.dockhand(&["apply", "--yes"]).code, 0);
    let v2 = s.image("v2");
    s.write(&body(&v2, "green").replace(
        &format!("  api:\n    image: {v2}"),
        &format!("  api:\n    image: {v1}"),
    ));
    let changed = s.dockhand(&["diff"]);
    assert_eq!(changed.code, 0, "{changed:?}");
    assert!(!changed.stdout.contains("t0ps3cret"), "{changed:?}");
    insta::assert_snapshot!(
        "diff_after_env_and_image_change",
        stable(&s, &changed.stdout)
    );
}

#[test]
fn validation_error_names_file_line_field_and_fix() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("stacks")).unwrap();
    std::fs::write(dir.path().join("dockhand.yaml"), "version: 1\n").unwrap();
    std::fs::write(
        dir.path().join("stacks/bad.yaml"),
        "stack: bad\nservices:\n  web:\n    image: nginx:latest\n    restrat: always\n    ports: [\"80:80\", \"80:80\"]\n    mounts: [{bind: relative/path, target: /data}]\n    depends_on: [nope]\n",
    )
    .unwrap();
    let p = dir.path().to_string_lossy().to_string();
    let r = run(
        &["validate", "--source", &p, "--path", ".", "--worktree"],
        &[],
    );
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stdout.is_empty(), "{r:?}");
    insta::assert_snapshot!("validation_error", r.stderr.replace(&p, "[dir]"));
}

#[test]
fn help_explains_every_command() {
    let r = run(&["--help"], &[]);
    assert_eq!(r.code, 0, "{r:?}");
    insta::assert_snapshot!("help", r.stdout);
}
