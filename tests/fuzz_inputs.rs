//! Hostile desired states: every example repository, mutated at random (bytes cut, inserted,
//! lines doubled or swapped, YAML-significant characters sprayed in), goes through the loader,
//! and when it loads, through rendering and the planner. None may panic or hang; what the
//! loader refuses must come with at least one located diagnostic. A bounded, coverage-blind
//! fuzzer that runs in the test suite; the seeds are the examples, so it walks near real input.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use dockhand::load::{load, SourceFile};
use dockhand::plan::plan;
use dockhand::plan::simulate::converged;
use dockhand::spec::render;
use proptest::prelude::*;

static LOADED: AtomicUsize = AtomicUsize::new(0);
static REFUSED: AtomicUsize = AtomicUsize::new(0);

/// No mutated input may panic or hang; and both outcomes must be reached, or the mutations are
/// too gentle (or too rough) to test much.
#[test]
fn mutations_reach_both_outcomes() {
    mutated_desired_states_never_panic_or_hang();
    let (ok, refused) = (
        LOADED.load(Ordering::Relaxed),
        REFUSED.load(Ordering::Relaxed),
    );
    eprintln!("mutated inputs: {ok} loaded and planned, {refused} refused with diagnostics");
    assert!(ok > 100 && refused > 100, "{ok} loaded, {refused} refused");
}

/// Every example repository's files, as the loader receives them.
fn seeds() -> Vec<Vec<SourceFile>> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut out = Vec::new();
    for entry in std::fs::read_dir(root).expect("examples/") {
        let dir = entry.expect("entry").path();
        let Ok(config) = std::fs::read_to_string(dir.join("dockhand.yaml")) else {
            continue;
        };
        let mut files = vec![SourceFile {
            path: "dockhand.yaml".into(),
            text: config,
        }];
        for stack in std::fs::read_dir(dir.join("stacks")).expect("stacks/") {
            let p = stack.expect("entry").path();
            files.push(SourceFile {
                path: format!("stacks/{}", p.file_name().unwrap().to_string_lossy()),
                text: std::fs::read_to_string(&p).expect("stack file"),
            });
        }
        out.push(files);
    }
    assert!(out.len() >= 4, "expected the example repositories");
    out
}

#[derive(Debug, Clone)]
enum Mutation {
    Cut { at: usize, len: usize },
    Insert { at: usize, text: String },
    DoubleLine(usize),
    SwapLines(usize, usize),
    Indent { line: usize, by: i8 },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let yamlish = prop::sample::select(vec![
        ":",
        "- ",
        "{",
        "}",
        "[",
        "]",
        "&a ",
        "*a",
        "<<: *a",
        "!!binary ",
        "\"",
        "'",
        "#",
        "|",
        ">",
        "\n",
        "  ",
        "\t",
        "~",
        "null",
        "-1",
        "99999999999999999999",
        "1e999",
        "\u{0}",
        "é",
        "@sha256:",
        "{{",
        "${X}",
        "0o777",
        "yes",
        ".inf",
        "? ",
        "---\n",
        "...\n",
    ]);
    prop_oneof![
        (any::<usize>(), 1usize..40).prop_map(|(at, len)| Mutation::Cut { at, len }),
        (any::<usize>(), prop::collection::vec(yamlish, 1..4)).prop_map(|(at, parts)| {
            Mutation::Insert {
                at,
                text: parts.concat(),
            }
        }),
        any::<usize>().prop_map(Mutation::DoubleLine),
        (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Mutation::SwapLines(a, b)),
        (any::<usize>(), -4i8..4).prop_map(|(line, by)| Mutation::Indent { line, by }),
    ]
}

fn apply(text: &str, m: &Mutation) -> String {
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let n = lines.len().max(1);
    match m {
        Mutation::Cut { at, len } => {
            let chars: Vec<char> = text.chars().collect();
            let at = at % chars.len().max(1);
            let end = (at + len).min(chars.len());
            return chars[..at].iter().chain(&chars[end..]).collect();
        }
        Mutation::Insert { at, text: ins } => {
            let chars: Vec<char> = text.chars().collect();
            let at = at % (chars.len() + 1);
            return chars[..at]
                .iter()
                .copied()
                .chain(ins.chars())
                .chain(chars[at..].iter().copied())
                .collect();
        }
        Mutation::DoubleLine(i) if !lines.is_empty() => {
            let l = lines[i % n].clone();
            lines.insert(i % n, l);
        }
        Mutation::SwapLines(a, b) if !lines.is_empty() => lines.swap(a % n, b % n),
        Mutation::Indent { line, by } if !lines.is_empty() => {
            let l = &mut lines[line % n];
            if *by > 0 {
                l.insert_str(0, &" ".repeat(*by as usize));
            } else {
                let strip = l.len() - l.trim_start().len();
                l.drain(..strip.min(by.unsigned_abs() as usize));
            }
        }
        _ => {}
    }
    lines.join("\n") + "\n"
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 3000,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// Run by [`mutations_reach_both_outcomes`], which then checks the mix of outcomes.
    fn mutated_desired_states_never_panic_or_hang(
        seed in any::<usize>(),
        file in any::<usize>(),
        mutations in prop::collection::vec(mutation(), 1..6),
    ) {
        let all = seeds();
        let mut files = all[seed % all.len()].clone();
        let i = file % files.len();
        for m in &mutations {
            files[i].text = apply(&files[i].text, m);
        }
        let started = Instant::now();
        let result = load(&files);
        let bucket = if result.is_ok() { &LOADED } else { &REFUSED };
        bucket.fetch_add(1, Ordering::Relaxed);
        match result {
            Ok(state) => {
                let desired = render(&state, &Default::default(), Some("c0ffee"));
                let empty = plan(&desired, &Default::default());
                let host = converged(&desired);
                let again = plan(&desired, &host);
                prop_assert!(again.actions.is_empty(), "a converged host still has work");
                prop_assert_eq!(plan(&desired, &Default::default()), empty);
            }
            Err(diags) => {
                let text = diags.to_string();
                prop_assert!(text.contains(".yaml"), "a refusal without a location:\n{}", text);
            }
        }
        prop_assert!(
            started.elapsed() < Duration::from_secs(5),
            "one input took {:?}",
            started.elapsed()
        );
    }
}
