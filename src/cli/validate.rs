//! `dockhand validate` and `dockhand schema`: the desired state checked, the schemas written.
//! Neither needs Docker.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result};

use super::args::SourceArgs;
use super::settings;
use crate::load::schema::FileKind;
use crate::reconcile::pass;
use crate::sources::Fetch;

pub fn run(src: &SourceArgs, state_dir: &Path) -> Result<ExitCode> {
    let source = settings::source(src, state_dir, Fetch::OnRead)?;
    let host = settings::host(src, state_dir)?;
    let (snap, desired) = pass::load(&source, &host, None)?;
    let services: usize = desired.stacks.iter().map(|s| s.spec.services.len()).sum();
    println!(
        "{}: valid ({} stack(s), {services} service(s))",
        snap.origin,
        desired.stacks.len()
    );
    Ok(ExitCode::SUCCESS)
}

pub fn schema(out: &Path) -> Result<ExitCode> {
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    for kind in FileKind::ALL {
        let path = out.join(kind.schema_file());
        std::fs::write(&path, crate::load::schema::schema_text(kind))
            .with_context(|| format!("writing {}", path.display()))?;
        println!("wrote {}", path.display());
    }
    Ok(ExitCode::SUCCESS)
}
