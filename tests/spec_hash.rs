//! Spec-hash stability: what dockhand renders for every repository it ships or tests — the
//! `dockhand.spec` hash label, the `dockhand.spec-doc` label and the full spec JSON of every
//! container (maintenance containers included), plus the rendered timings that live outside
//! the spec — is snapshotted. A container whose hash changes is recreated on the next pass,
//! so a refactor of the model, the loader or the renderer must leave every snapshot here
//! byte-identical: upgrading dockhand must recreate no container. A snapshot that changes on
//! purpose (a new field in the spec) is a behaviour change and says so in its commit.
//!
//! Pure: load + render, no Engine.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use dockhand::load::{load, SourceFile};
use dockhand::spec::{labels, render, sha256_hex, DesiredContainer, HostFacts, MarkerKey};

/// Every container `render` wants for the repository at `files`, as text.
fn rendered(files: &[SourceFile]) -> String {
    let state = load(files).unwrap_or_else(|d| panic!("repository is invalid:\n{d}"));
    // Env files live on the host; give each a stand-in hash derived from its path, so that
    // the `env_file` field is rendered with a value.
    let env_files: BTreeMap<String, String> = state
        .stacks
        .iter()
        .flat_map(|s| s.spec.services.values())
        .filter_map(|svc| svc.env_file.clone())
        .map(|p| {
            let h = sha256_hex(p.as_bytes());
            (p, h)
        })
        .collect();
    // A fixed marker key stands for the host's (issue 17: markers are keyed per host).
    let facts = HostFacts {
        env_files,
        marker_key: MarkerKey::new([7; 32]),
    };
    let desired = render(&state, &facts, Some("0123456789abcdef"));
    let mut out = String::new();
    for c in &desired.containers {
        container(&mut out, c);
        if let Some(m) = &c.maintenance {
            container(&mut out, &m.container);
        }
    }
    out
}

fn container(out: &mut String, c: &DesiredContainer) {
    let label = |k: &str| c.labels.get(k).cloned().unwrap_or_default();
    let _ = writeln!(out, "== {}", c.name);
    // The hash of the redacted spec, which the `dockhand.spec` label carries (maintenance
    // containers carry no spec labels: they are recreated on every release).
    let _ = writeln!(out, "spec-hash: {}", c.spec.hash(&MarkerKey::new([7; 32])));
    if c.labels.contains_key(labels::SPEC) {
        assert_eq!(
            label(labels::SPEC),
            c.spec.hash(&MarkerKey::new([7; 32])),
            "{}: label vs spec",
            c.name
        );
        let _ = writeln!(out, "spec-doc:  {}", label(labels::SPEC_DOC));
    }
    let _ = writeln!(
        out,
        "spec:      {}",
        serde_json::to_string(&c.spec).expect("spec serializes")
    );
    // Rendered outside the spec (no hash covers them), but parsed from the same durations.
    let mut timings = Vec::new();
    if let Some(bg) = &c.blue_green {
        timings.push(format!("drain={}ms", bg.drain_ms));
    }
    for h in c
        .hooks
        .before
        .iter()
        .chain(&c.hooks.after_start)
        .chain(&c.hooks.after_switch)
    {
        timings.push(format!("{}={}ms", h.label, h.timeout_ms));
    }
    for s in &c.smoke {
        timings.push(format!("{}={}ms", s.label, s.timeout_ms));
    }
    if !timings.is_empty() {
        let _ = writeln!(out, "timings:   {}", timings.join(" "));
    }
}

/// The files of a repository directory (`dockhand.yaml` and `stacks/*.yaml`).
fn repo(dir: &Path) -> Vec<SourceFile> {
    dockhand::sources::from_dir(dir, ".")
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .files
}

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn embedded_desired_state() {
    insta::assert_snapshot!(rendered(&repo(&root().join("desired-state"))));
}

#[test]
fn every_example() {
    let mut seen = 0;
    let mut dirs: Vec<_> = std::fs::read_dir(root().join("examples"))
        .expect("examples/")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.join("dockhand.yaml").exists())
        .collect();
    dirs.sort();
    for dir in dirs {
        let name = dir
            .file_name()
            .expect("dir name")
            .to_string_lossy()
            .into_owned();
        insta::assert_snapshot!(format!("example_{name}"), rendered(&repo(&dir)));
        seen += 1;
    }
    assert_eq!(seen, 4, "examples/ changed: review the list");
}

/// One repository that uses every setting of the format at least once.
#[test]
fn every_setting() {
    insta::assert_snapshot!(rendered(&repo(&root().join("tests/fixtures/everything"))));
}

/// The valid stack fixtures the loader tests hold both the schema and the types to.
#[test]
fn valid_stack_fixtures() {
    let dir = root().join("tests/fixtures/stack/valid");
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .expect("fixtures")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .collect();
    paths.sort();
    assert!(paths.len() >= 3);
    for p in paths {
        let name = p.file_stem().expect("stem").to_string_lossy().into_owned();
        let files = vec![
            SourceFile {
                path: "dockhand.yaml".into(),
                text: "version: 1\n".into(),
            },
            SourceFile {
                path: format!("stacks/{name}.yaml"),
                text: std::fs::read_to_string(&p).expect("fixture"),
            },
        ];
        insta::assert_snapshot!(format!("fixture_{name}"), rendered(&files));
    }
}
