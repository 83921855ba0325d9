//! `dockhand plan` and `dockhand diff`: what apply would change, changing nothing (no lock, no
//! record).

use std::path::Path;
use std::process::ExitCode;

use anyhow::Result;

use super::args::{DiffArgs, PlanArgs, SourceArgs};
use super::{json, settings};
use crate::plan::render;
use crate::reconcile::pass::PlanContext;
use crate::sources::Fetch;

pub async fn plan(a: &PlanArgs, state_dir: &Path) -> Result<ExitCode> {
    let ctx = show(&a.source, state_dir, a.json.json, false).await?;
    Ok(detailed_exit(a.detailed_exitcode, &ctx.plan))
}

/// Plans and prints the plan (`diffs`: with every field change), as text or as the plan
/// shape.
async fn show(
    src: &SourceArgs,
    state_dir: &Path,
    as_json: bool,
    diffs: bool,
) -> Result<PlanContext> {
    let source = settings::source(src, state_dir, Fetch::OnRead)?;
    let ctx = PlanContext::connect_and_build(&source, &settings::host(src, state_dir)?).await?;
    if as_json {
        json::print(json::PLAN_VERSION, &plan_doc(&ctx))?;
    } else {
        println!("source: {}\n", ctx.snapshot.origin);
        super::colour::print_plan(&render::text(&ctx.plan, diffs));
    }
    Ok(ctx)
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

/// `diff --json` is `plan --json`: the plan's JSON holds every field change already.
pub async fn diff(a: &DiffArgs, state_dir: &Path) -> Result<ExitCode> {
    show(&a.source, state_dir, a.json.json, true).await?;
    Ok(ExitCode::SUCCESS)
}

/// The plan with where it was planned from, as `plan --json`, `apply --json` and `rollback
/// --json` show it.
pub(super) fn plan_doc(ctx: &PlanContext) -> serde_json::Value {
    let mut doc = serde_json::Map::new();
    doc.insert("source".into(), ctx.snapshot.origin.clone().into());
    doc.insert("revision".into(), ctx.revision().into());
    if let serde_json::Value::Object(plan) = render::json_doc(&ctx.plan) {
        doc.extend(plan);
    }
    serde_json::Value::Object(doc)
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
