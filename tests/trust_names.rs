//! A commit cannot make two owners of one Docker name, smuggle NUL or `=` into the
//! environment, or make the loader allocate without bound. Each hostile commit is refused by
//! `load` with the rule (or limit) named and its file:line. The Engine half (apply changes
//! nothing; foreign containers in the way are never removed) is in tests/trust_apply.rs.

mod support;

use std::time::{Duration, Instant};

use dockhand::load::{load, SourceFile};
use support::hostile::{run_table, Case};

const IMG: &str = "127.0.0.1:5000/x/web:1";
const HEALTH: &str = "health: {cmd: [true]}";

/// A service; a name ending in ` #!` puts the marker on its key line.
fn svc(name: &str, extra: &str) -> String {
    let (name, mark) = match name.strip_suffix(" #!") {
        Some(n) => (n, " #!"),
        None => (name, ""),
    };
    format!("  {name}:{mark}\n    image: {IMG}\n{extra}")
}

fn bg(name: &str) -> String {
    svc(
        name,
        &format!("    route: {{host: {name}.localhost, port: 80}}\n    {HEALTH}\n    release: {{strategy: blue-green}}\n"),
    )
}

/// A nested-alias bomb of the finding's size, 447 bytes: nine levels of nine aliases (9^8
/// copies of level `a` if expanded: about 430 million nodes).
pub fn alias_bomb() -> String {
    let mut s = String::from("# nested aliases (9 levels of 9)\n");
    s.push_str(&format!("a: &a [{}]\n", vec!["\"lol\""; 9].join(", ")));
    let names: Vec<char> = "abcdefghi".chars().collect();
    for w in names.windows(2) {
        let (prev, cur) = (w[0], w[1]);
        s.push_str(&format!(
            "{cur}: &{cur} [{}]\n",
            vec![format!("*{prev}"); 9].join(", ")
        ));
    }
    s
}

fn name_cases() -> Vec<Case> {
    let one = |name, kind, body: String| {
        Case::new(name, kind, "rule `derived_name`")
            .stack("stacks/s.yaml", format!("stack: s\nservices:\n{body}"))
    };
    vec![
        one(
            "service named like a blue container",
            "suffix -blue",
            format!("{}{}", bg("web"), svc("web-blue #!", "")),
        ),
        one(
            "service named like a green container",
            "suffix -green",
            format!("{}{}", bg("web"), svc("web-green #!", "")),
        ),
        one(
            "service named like a maintenance container",
            "suffix -maint",
            format!(
                "{}{}",
                svc("web", &format!("    route: {{host: w.localhost, port: 80}}\n    release: {{maintenance: {{image: {IMG}}}}}\n")),
                svc("web-maintenance #!", "")
            ),
        ),
        one(
            "service named like a recreate's aside",
            "suffix -old",
            format!("{}{}", svc("web", ""), svc("web-dockhand-old #!", "")),
        ),
        one(
            "service named like a before hook's one-off",
            "hook one-off",
            format!(
                "{}{}",
                svc("web", "    hooks: {before: [[migrate]]}\n"),
                svc("web-hook-before0 #!", "")
            ),
        ),
        one(
            "service named like an after_start image hook's one-off",
            "hook one-off",
            format!(
                "{}{}",
                svc("web", &format!("    hooks: {{after_start: [{{command: [x], image: {IMG}}}]}}\n")),
                svc("web-hook-after-start0 #!", "")
            ),
        ),
        one(
            "blue/green color equal to another bg service's color",
            "suffix -blue",
            // `web-blue` as a bg service yields `s-web-blue-blue`; `web` yields `s-web-blue`:
            // no clash. But a plain service `web-blue-blue` clashes with bg `web-blue`.
            format!("{}{}", bg("web-blue"), svc("web-blue-blue #!", "")),
        ),
        // stacks/a-b.yaml is read before stacks/a.yaml (`-` sorts before `.`).
        Case::new("stack a service b-c vs stack a-b service c", "container", "rule `derived_name`")
            .stack("stacks/a.yaml", format!("stack: a\nservices:\n{}", svc("b-c #!", "")))
            .stack("stacks/a-b.yaml", format!("stack: a-b\nservices:\n{}", svc("c", ""))),
        Case::new("bg color of one stack equals a service of another", "suffix -blue", "rule `derived_name`")
            .stack(
                "stacks/a.yaml",
                format!("stack: a\nservices:\n{}", bg("web").replace("blue-green}", "blue-green} #!")),
            )
            .stack("stacks/a-web.yaml", format!("stack: a-web\nservices:\n{}", svc("blue", ""))),
        Case::new("network a/b_c vs a_b/c (`_`-joined)", "network", "rule `derived_name`")
            .stack("stacks/a.yaml", format!("stack: a\nnetworks:\n  b_c: {{}}\nservices:\n{}", svc("x", "")))
            .stack("stacks/a_b.yaml", format!("stack: a_b\nnetworks:\n  c: {{}} #!\nservices:\n{}", svc("y", ""))),
        Case::new("network name: set to another stack's derived name", "network", "rule `derived_name`")
            .stack("stacks/a.yaml", format!("stack: a\nnetworks:\n  net: {{}}\nservices:\n{}", svc("x", "")))
            .stack("stacks/b.yaml", format!("stack: b\nnetworks:\n  mine: {{name: a_net}} #!\nservices:\n{}", svc("y", ""))),
        Case::new("volume a/b_c vs a_b/c (`_`-joined)", "volume", "rule `derived_name`")
            .stack("stacks/a.yaml", format!("stack: a\nvolumes:\n  b_c: {{}}\nservices:\n{}", svc("x", "")))
            .stack("stacks/a_b.yaml", format!("stack: a_b\nvolumes:\n  c: {{}} #!\nservices:\n{}", svc("y", ""))),
        Case::new("volume name: set to another stack's derived name", "volume", "rule `derived_name`")
            .stack("stacks/a.yaml", format!("stack: a\nvolumes:\n  data: {{}}\nservices:\n{}", svc("x", "")))
            .stack("stacks/b.yaml", format!("stack: b\nvolumes:\n  v: {{name: a_data}} #!\nservices:\n{}", svc("y", ""))),
    ]
}

fn env_cases() -> Vec<Case> {
    let env = |name, rule, line: &str| {
        Case::new(name, "env", rule).stack(
            "stacks/s.yaml",
            format!("stack: s\nservices:\n  web:\n    image: {IMG}\n    env:\n      {line} #!\n"),
        )
    };
    vec![
        env("`=` in an env key", "rule `env_key`", "'A=B': x"),
        env("NUL in an env key", "rule `env_key`", "\"A\\0B\": x"),
        env("empty env key", "rule `env_key`", "'': x"),
        env("NUL in an env value", "rule `env_value`", "A: \"x\\0y\""),
    ]
}

fn yaml_cases() -> Vec<Case> {
    let bomb = alias_bomb();
    let marked = |text: &str, line_of: &str| {
        text.lines()
            .map(|l| {
                if l.starts_with(line_of) {
                    format!("{l} #!")
                } else {
                    l.to_string()
                }
            })
            .collect::<Vec<_>>()
            .join("\n")
            + "\n"
    };
    let stack = "stack: s\nservices:\n  web: {image: x}\n";
    // The fifth level's first alias crosses 10,000 copied nodes (90 + 819 + 7,380 before it).
    vec![
        Case::new("447-byte nested alias bomb in a stack", "yaml bomb", "yaml.max_alias_nodes")
            .stack("stacks/s.yaml", format!("{stack}{}", marked(&bomb, "e:"))),
        Case::new("nested alias bomb in dockhand.yaml", "yaml bomb", "yaml.max_alias_nodes")
            .repo(format!("version: 1\n{}", marked(&bomb, "e:")))
            .stack("stacks/s.yaml", stack),
        Case::new("alias bomb of maps", "yaml bomb", "yaml.max_alias_nodes").stack(
            "stacks/s.yaml",
            format!(
                "{stack}a: &a {{k0: x, k1: x, k2: x, k3: x, k4: x, k5: x, k6: x, k7: x, k8: x, k9: x}}\nb: &b {{k0: *a, k1: *a, k2: *a, k3: *a, k4: *a, k5: *a, k6: *a, k7: *a, k8: *a, k9: *a}}\nc: &c {{k0: *b, k1: *b, k2: *b, k3: *b, k4: *b, k5: *b, k6: *b, k7: *b, k8: *b, k9: *b}}\nd: [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c] #!\n"
            ),
        ),
        Case::new("one big anchor aliased many times", "yaml bomb", "yaml.max_alias_nodes").stack(
            "stacks/s.yaml",
            format!(
                "{stack}a: &a [{}]\nb: [{}] #!\n",
                vec!["x"; 2_000].join(", "),
                vec!["*a"; 10].join(", ")
            ),
        ),
        Case::new("100,000 nested block lists", "yaml depth", "yaml.max_depth")
            .stack("stacks/s.yaml", format!("{}x #!\n", "- ".repeat(100_000))),
        Case::new("deep block maps", "yaml depth", "yaml.max_depth").stack(
            "stacks/s.yaml",
            (0..100).map(|i| format!("{}k{i}:{}\n", " ".repeat(i), if i == 64 { " #!" } else { "" })).collect::<String>(),
        ),
        Case::new("200,000 nodes in a 400 KB list", "yaml nodes", "yaml.max_nodes").stack(
            "stacks/s.yaml",
            format!("x: [{}] #!\n", vec!["0"; 200_000].join(",")),
        ),
        Case::new("a stack file over 1 MiB", "file size", "max_file_bytes")
            .stack("stacks/s.yaml", format!("# #!\n{}", "#".repeat(1 << 20))),
        {
            // 9 files of 1,000,000 bytes each: the 9th crosses the 8 MiB repository budget.
            let mut c = Case::new("a repository over 8 MiB", "repo size", "max_repo_bytes");
            for i in 0..9 {
                let mark = if i == 8 { "# #!\n" } else { "#\n" };
                c = c.stack(&format!("stacks/s{i}.yaml"), format!("{mark}{}", "#".repeat(999_990)));
            }
            c
        },
        {
            // Each file builds 99,000 nodes (within its own limit); the sixth crosses 500,000.
            let mut c = Case::new("files within their limits, over the repository's", "repo nodes", "max_repo_nodes");
            for i in 0..6 {
                let mark = if i == 5 { " #!" } else { "" };
                c = c.stack(&format!("stacks/s{i}.yaml"), format!("x: [{}]{mark}\n", vec!["0"; 98_999].join(",")));
            }
            c
        },
    ]
}

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
