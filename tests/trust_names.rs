//! A commit cannot make two owners of one Docker name, smuggle NUL or `=` into the
//! environment, or make the loader allocate without bound. Each hostile commit is refused by
//! `load` with the rule (or limit) named and its file:line. The Engine half (apply changes
//! nothing; foreign containers in the way are never removed) is in tests/trust_apply.rs.

mod support;

use std::time::{Duration, Instant};

use dockhand::load::{load, SourceFile};
use support::hostile::{alias_bomb, env_cases, name_cases, run_table, yaml_cases, IMG};

#[test]
fn derived_name_collisions_of_every_suffix_are_refused_naming_both_owners() {
    let cases = name_cases();
    run_table("names", &cases);
    // Both owners are named, each with file:line.
    let d = support::hostile::check(&cases[7]).expect("refused");
    assert!(d.message.contains("stacks/a-b.yaml:3"), "{}", d.message);
    assert!(
        d.message.contains("`b-c`") && d.message.contains("`c`"),
        "{}",
        d.message
    );
}

#[test]
fn env_keys_and_values_with_nul_or_equals_are_refused() {
    run_table("env", &env_cases());
}

#[test]
fn oversized_and_self_multiplying_yaml_is_refused_naming_the_limit() {
    run_table("yaml", &yaml_cases());
}

#[test]
fn the_447_byte_alias_bomb_is_refused_in_milliseconds() {
    let bomb = alias_bomb();
    assert_eq!(bomb.len(), 447);
    let files = vec![
        SourceFile {
            path: "dockhand.yaml".into(),
            text: "version: 1\n".into(),
        },
        SourceFile {
            path: "stacks/s.yaml".into(),
            text: bomb,
        },
    ];
    let t = Instant::now();
    let err = load(&files).expect_err("refused");
    let took = t.elapsed();
    assert!(err.to_string().contains("yaml.max_alias_nodes"), "{err}");
    assert!(took < Duration::from_millis(500), "took {took:?}");
    eprintln!("alias bomb refused in {took:?}");
}

fn vm_hwm_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|n| n.parse().ok())
        })
        .expect("VmHWM in /proc/self/status")
}

/// Run in a child process by the test below (alone, so that the peak is the bomb's): loads the
/// bomb and prints the peak resident memory before and after.
#[test]
fn alias_bomb_child() {
    if std::env::var_os("DOCKHAND_BOMB_CHILD").is_none() {
        return;
    }
    // Warm up first: the schema validators are compiled once per process (a fixed cost of
    // any load, not the bomb's).
    let cold = vm_hwm_kib();
    let warm = load(&[
        SourceFile {
            path: "dockhand.yaml".into(),
            text: "version: 1\npolicy: {require_digest: false}\n".into(),
        },
        SourceFile {
            path: "stacks/s.yaml".into(),
            text: format!("stack: s\nservices:\n  web: {{image: {IMG}}}\n"),
        },
    ]);
    assert!(warm.is_ok(), "{warm:?}");
    let before = vm_hwm_kib();
    let files = vec![
        SourceFile {
            path: "dockhand.yaml".into(),
            text: "version: 1\n".into(),
        },
        SourceFile {
            path: "stacks/s.yaml".into(),
            text: alias_bomb(),
        },
    ];
    let t = Instant::now();
    let refused = load(&files).is_err();
    let took = t.elapsed();
    println!(
        "BOMB refused={refused} hwm_cold_kib={cold} hwm_before_kib={before} hwm_after_kib={} micros={}",
        vm_hwm_kib(),
        took.as_micros()
    );
}

#[test]
fn the_alias_bomb_costs_a_few_mb_at_most_measured_in_a_child_process() {
    let out = std::process::Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "--exact",
            "alias_bomb_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("DOCKHAND_BOMB_CHILD", "1")
        .output()
        .expect("run the child");
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.contains("BOMB "))
        .unwrap_or_else(|| panic!("child printed no measurement:\n{text}"));
    let field = |k: &str| -> u64 {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(&format!("{k}=")))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{k} in {line}"))
    };
    assert!(line.contains("refused=true"), "{line}");
    let (cold, before, after) = (
        field("hwm_cold_kib"),
        field("hwm_before_kib"),
        field("hwm_after_kib"),
    );
    eprintln!(
        "alias bomb: peak RSS {after} KiB: +{} KiB for the bomb over a warmed-up loader ({before} KiB; the harness alone {cold} KiB), {} µs",
        after - before,
        field("micros")
    );
    assert!(after - before < 4 * 1024, "{line}");
    assert!(field("micros") < 500_000, "{line}");
}

/// The fuzz seeds of the alias-bomb family are files under fuzz/seeds/load_plan/ (dockhand.yaml,
/// then each stack, NUL-separated): each is refused by the loader in bounded time.
#[test]
fn the_alias_bomb_fuzz_seeds_are_refused_quickly() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz/seeds/load_plan");
    let mut n = 0;
    for entry in std::fs::read_dir(dir).expect("seed folder") {
        let path = entry.expect("entry").path();
        let bytes = std::fs::read(&path).expect("seed");
        let text = String::from_utf8_lossy(&bytes);
        let mut parts = text.split('\0');
        let mut files = vec![SourceFile {
            path: "dockhand.yaml".into(),
            text: parts.next().unwrap_or_default().to_string(),
        }];
        for (i, p) in parts.enumerate() {
            files.push(SourceFile {
                path: format!("stacks/s{i}.yaml"),
                text: p.to_string(),
            });
        }
        let t = Instant::now();
        let r = load(&files);
        assert!(r.is_err(), "{} loaded", path.display());
        assert!(
            t.elapsed() < Duration::from_secs(1),
            "{}: {:?}",
            path.display(),
            t.elapsed()
        );
        n += 1;
    }
    assert!(n >= 5, "only {n} seeds");
}

/// A huge blob is refused from its git object header, before it is read into memory; a huge
/// file in a directory from its size; a FIFO named dockhand.yaml is not opened (it would
/// block the read for ever).
#[test]
fn sources_refuse_oversized_files_before_reading_them_and_skip_fifos() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = dir.path();
    std::fs::create_dir_all(p.join("stacks")).expect("mkdir");
    std::fs::write(p.join("dockhand.yaml"), "version: 1\n").expect("write");
    std::fs::write(
        p.join("stacks/big.yaml"),
        format!("# {}\n", "x".repeat(2 << 20)),
    )
    .expect("write");
    support::git(p, &["init", "-q", "-b", "main"]);
    support::git(p, &["add", "-A"]);
    support::git(p, &["commit", "-q", "-m", "big"]);
    let err = dockhand::sources::from_git(p, None, ".").expect_err("refused");
    let text = err.to_string();
    assert!(
        text.contains("stacks/big.yaml") && text.contains("limit `max_file_bytes`"),
        "{text}"
    );
    let err = dockhand::sources::from_dir(p, ".").expect_err("refused");
    assert!(err.to_string().contains("limit `max_file_bytes`"), "{err}");

    // Nine files of 1,000,000 bytes: the ninth crosses the repository budget.
    std::fs::remove_file(p.join("stacks/big.yaml")).expect("rm");
    for i in 0..9 {
        std::fs::write(p.join(format!("stacks/s{i}.yaml")), "#".repeat(1_000_000)).expect("write");
    }
    let err = dockhand::sources::from_dir(p, ".").expect_err("refused");
    assert!(err.to_string().contains("limit `max_repo_bytes`"), "{err}");

    let fifo = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(fifo.path().join("stacks")).expect("mkdir");
    let made = std::process::Command::new("mkfifo")
        .arg(fifo.path().join("dockhand.yaml"))
        .status()
        .expect("mkfifo");
    assert!(made.success());
    let t = Instant::now();
    let snap = dockhand::sources::from_dir(fifo.path(), ".").expect("read");
    assert!(t.elapsed() < Duration::from_secs(2));
    assert!(snap.files.is_empty());
}

/// The NUL of a hostile env key is shown escaped in the field path, never raw.
#[test]
fn a_nul_in_a_key_is_printed_escaped() {
    let err = load(&[
        SourceFile {
            path: "dockhand.yaml".into(),
            text: "version: 1\npolicy: {require_digest: false}\n".into(),
        },
        SourceFile {
            path: "stacks/s.yaml".into(),
            text: format!(
                "stack: s\nservices:\n  web:\n    image: {IMG}\n    env:\n      \"A\\0B\": x\n"
            ),
        },
    ])
    .expect_err("refused")
    .to_string();
    assert!(!err.contains('\0'), "{err:?}");
    assert!(
        err.contains("stacks/s.yaml:6:") && err.contains("env.A\\u{0}B"),
        "{err}"
    );
}
