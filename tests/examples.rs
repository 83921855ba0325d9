//! Every example in `examples/` (one per runbook in the seeds) validates, and plans the
//! expected first deploy. Pure: no Docker; the plan is against an empty host.

use std::path::Path;

use dockhand::model::actual::{Actual, ActualObject};
use dockhand::plan::{self, render};

const EXAMPLES: [&str; 4] = [
    "django-traefik-v1",
    "api-blue-green",
    "backup-migrate-swap",
    "stop-if-upgrade",
];

fn plan_text(name: &str) -> String {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .join(name);
    let snap = dockhand::sources::from_dir(&dir, ".").expect("example readable");
    let state = dockhand::load::load(&snap.files)
        .unwrap_or_else(|d| panic!("example {name} is invalid:\n{d}"));
    // Env files live on the host, not in the example: plan with their hashes unknown.
    let desired = dockhand::spec::render(&state, &Default::default(), None);
    // The host already has the external networks the examples join (the proxy's).
    let actual = Actual {
        networks: desired
            .networks
            .iter()
            .filter(|n| n.external)
            .map(|n| ActualObject {
                name: n.name.clone(),
                owner_stack: None,
                other_project: None,
            })
            .collect(),
        ..Actual::default()
    };
    let p = plan::plan(&desired, &actual);
    assert!(p.conflicts.is_empty(), "{}", render::text(&p, false));
    assert!(!p.actions.is_empty());
    render::text(&p, false)
}

#[test]
fn every_example_validates_and_plans_its_first_deploy() {
    for name in EXAMPLES {
        insta::assert_snapshot!(name, plan_text(name));
    }
}

#[test]
fn the_list_covers_every_example_directory() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut found: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join("dockhand.yaml").exists())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    found.sort();
    let mut listed: Vec<&str> = EXAMPLES.to_vec();
    listed.sort();
    assert_eq!(found, listed);
}
