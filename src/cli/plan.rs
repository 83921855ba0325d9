//! `dockhand plan` and `dockhand diff`: what apply would change, changing nothing (no lock, no
//! record).

use std::path::Path;
use std::process::ExitCode;

use anyhow::Result;

use super::args::{PlanArgs, SourceArgs};
use super::settings;
use crate::plan::render;
use crate::reconcile::pass::PlanContext;
use crate::sources::Fetch;

pub async fn plan(a: &PlanArgs, state_dir: &Path) -> Result<ExitCode> {
    let source = settings::source(&a.source, state_dir, Fetch::OnRead)?;
    let ctx =
        PlanContext::connect_and_build(&source, &settings::host(&a.source, state_dir)?).await?;
    if a.json {
        println!("{}", render::json(&ctx.plan));
    } else {
        println!("source: {}\n", ctx.snapshot.origin);
        super::colour::print_plan(&render::text(&ctx.plan, false));
    }
    Ok(detailed_exit(a.detailed_exitcode, &ctx.plan))
}

/// `--detailed-exitcode`: 1 when conflicts block apply (apply would refuse, so a script must
/// not read it as "changes to apply"), 2 when there are changes or a container is not
/// healthy (not in sync, see [`crate::plan::Plan::in_sync`]), 0 when the host is in sync.
fn detailed_exit(detailed: bool, plan: &crate::plan::Plan) -> ExitCode {
    if !detailed {
        ExitCode::SUCCESS
    } else if !plan.conflicts.is_empty() {
        ExitCode::from(super::EXIT_BLOCKED)
    } else if !plan.in_sync() {
        ExitCode::from(super::EXIT_CHANGES)
    } else {
        ExitCode::SUCCESS
    }
}

pub async fn diff(src: &SourceArgs, state_dir: &Path) -> Result<ExitCode> {
    let source = settings::source(src, state_dir, Fetch::OnRead)?;
    let ctx = PlanContext::connect_and_build(&source, &settings::host(src, state_dir)?).await?;
    println!("source: {}\n", ctx.snapshot.origin);
    super::colour::print_plan(&render::text(&ctx.plan, true));
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{Conflict, ConflictKind, Plan};

    #[test]
    fn blocking_conflicts_exit_1_changes_2_nothing_0() {
        let mut p = Plan::default();
        assert_eq!(detailed_exit(true, &p), ExitCode::SUCCESS);
        p.unchanged.push("x".into());
        assert_eq!(detailed_exit(true, &p), ExitCode::SUCCESS);
        p.conflicts.push(Conflict {
            stack: "s".into(),
            name: "s-web".into(),
            kind: ConflictKind::NotOwned,
            message: String::new(),
            hint: String::new(),
        });
        assert_eq!(detailed_exit(true, &p), ExitCode::from(1));
        assert_eq!(detailed_exit(false, &p), ExitCode::SUCCESS);
    }
}
