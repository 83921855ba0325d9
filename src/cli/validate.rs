//! `dockhand validate` and `dockhand schema`: the desired state checked, the schemas written.
//! Neither needs Docker.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result};

use super::args::ValidateArgs;
use super::{json, settings};
use crate::load::schema::FileKind;
use crate::reconcile::pass;
use crate::sources::Fetch;

/// Exit 0 valid; 1 invalid (every problem, each with its hint) or unreadable.
pub fn run(a: &ValidateArgs, state_dir: &Path) -> Result<ExitCode> {
    let source = settings::source(&a.source, state_dir, Fetch::OnRead)?;
    let host = settings::host(&a.source, state_dir)?;
    let (snap, desired) = pass::load(&source, &host, None)?;
    let services: usize = desired.stacks.iter().map(|s| s.spec.services.len()).sum();
    if a.json.json {
        json::print(
            json::VALIDATE_VERSION,
            &serde_json::json!({
                "valid": true,
                "source": snap.origin,
                "revision": pass::revision(&snap),
                "project": desired.config.project,
                "stacks": desired.stacks.iter().map(|s| s.name()).collect::<Vec<_>>(),
                "services": services,
            }),
        )?;
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{}: valid ({} stack(s), {services} service(s))",
        snap.origin,
        desired.stacks.len()
    );
    Ok(ExitCode::SUCCESS)
}

pub fn schema(out: &Path, as_json: bool) -> Result<ExitCode> {
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let mut written = Vec::new();
    for kind in FileKind::ALL {
        let path = out.join(kind.schema_file());
        std::fs::write(&path, crate::load::schema::schema_text(kind))
            .with_context(|| format!("writing {}", path.display()))?;
        if !as_json {
            println!("wrote {}", path.display());
        }
        written.push(path);
    }
    if as_json {
        json::print(
            json::SCHEMA_VERSION,
            &serde_json::json!({ "written": written }),
        )?;
    }
    Ok(ExitCode::SUCCESS)
}
