//! The desired-state loader and the planner on any bytes: `dockhand.yaml`, then stack files,
//! separated by NUL bytes (the corpus is the example repositories in that form). Nothing may
//! panic or hang; what loads must render, plan and print, and a host converged to it (with its
//! external networks and volumes present) must plan empty.
#![no_main]

use dockhand::load::{load, SourceFile};
use dockhand::model::actual::ActualObject;
use dockhand::plan::{plan, render, simulate::converged};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut parts = text.split('\0');
    let mut files = vec![SourceFile {
        path: "dockhand.yaml".into(),
        text: parts.next().unwrap_or_default().to_string(),
    }];
    for (i, stack) in parts.take(8).enumerate() {
        files.push(SourceFile {
            path: format!("stacks/s{i}.yaml"),
            text: stack.to_string(),
        });
    }
    match load(&files) {
        Ok(state) => {
            let desired = dockhand::spec::render(&state, &Default::default(), Some("fuzz"));
            let from_nothing = plan(&desired, &Default::default());
            let _ = render::text(&from_nothing, true);
            // Apply never creates external networks and volumes: they are the host's.
            let mut host = converged(&desired);
            for n in desired.networks.iter().filter(|n| n.external) {
                host.networks.push(ActualObject {
                    name: n.name.clone(),
                    owner_stack: None,
                    other_project: None,
                });
            }
            for v in desired.volumes.iter().filter(|v| v.external) {
                host.volumes.push(ActualObject {
                    name: v.name.clone(),
                    owner_stack: None,
                    other_project: None,
                });
            }
            assert!(
                plan(&desired, &host).is_empty(),
                "a host converged to a desired state must plan empty"
            );
        }
        Err(diagnostics) => {
            // A refusal must say something a user can act on.
            assert!(!diagnostics.to_string().trim().is_empty());
        }
    }
});
