//! `dockhand history`: the deploy record as a table (newest first) or one deploy in full.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{bail, Result};

use super::args::HistoryArgs;
use super::{json, settings, table};
use crate::history::{format_utc, Deploy, Store};
use crate::reconcile::pass;
use crate::sources::Fetch;

/// `dockhand history`: the deploy record, newest first, or one deploy in full.
pub fn run(a: &HistoryArgs, state_dir: &Path) -> Result<ExitCode> {
    let project = settings::source(&a.source, state_dir, Fetch::OnRead)
        .ok()
        .and_then(|source| {
            let host = settings::host(&a.source, state_dir).ok()?;
            pass::load(&source, &host, None).ok()
        })
        .map(|(_, d)| d.config.project);
    let Some(store) = Store::open_existing(state_dir)? else {
        if a.json.json && a.id.is_none() {
            json::print(json::HISTORY_VERSION, &serde_json::json!({ "deploys": [] }))?;
            return Ok(ExitCode::SUCCESS);
        }
        if a.id.is_some() {
            bail!(
                "no deploy record in {}\n  hint: `dockhand apply` writes one; pass --state-dir if it lives elsewhere",
                state_dir.display()
            );
        }
        println!(
                "no deploy record in {} yet\n  hint: `dockhand apply` writes one; pass --state-dir if it lives elsewhere",
                state_dir.display()
            );
        return Ok(ExitCode::SUCCESS);
    };
    if let Some(id) = a.id {
        let Some(d) = store.deploy(project.as_deref(), id)? else {
            bail!(
                "no deploy #{id} in {}\n  hint: `dockhand history` lists them",
                store.path().display()
            );
        };
        if a.json.json {
            json::print(json::HISTORY_VERSION, &d)?;
        } else {
            print!("{}", detail(&d));
        }
    } else {
        let deploys = store.deploys(project.as_deref(), a.stack.as_deref(), a.limit)?;
        if a.json.json {
            json::print(
                json::HISTORY_VERSION,
                &serde_json::json!({ "deploys": deploys }),
            )?;
        } else {
            print!("{}", table(&deploys));
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn duration(d: &Deploy) -> String {
    d.finished_ms.map_or_else(
        || "-".to_string(),
        |f| format!("{:.1}s", (f - d.started_ms) as f64 / 1000.0),
    )
}

fn short_rev(rev: &str) -> String {
    match rev.strip_prefix("worktree:") {
        Some(h) => format!("worktree:{}", &h[..h.len().min(8)]),
        None => rev.chars().take(12).collect(),
    }
}

fn outcome(d: &Deploy) -> String {
    let mut s = d.outcome.as_str().to_string();
    if d.quarantined {
        s.push_str(", quarantined");
    }
    s
}

pub fn table(deploys: &[Deploy]) -> String {
    if deploys.is_empty() {
        return "no deploys recorded yet\n".to_string();
    }
    let rows: Vec<[String; 7]> = deploys
        .iter()
        .map(|d| {
            let stacks: std::collections::BTreeSet<&str> =
                d.services.iter().map(|s| s.stack.as_str()).collect();
            [
                format!("#{}", d.id),
                format_utc(d.started_ms),
                d.trigger.clone(),
                short_rev(&d.revision),
                outcome(d),
                duration(d),
                format!(
                    "{}{}",
                    stacks.into_iter().collect::<Vec<_>>().join(","),
                    d.error
                        .as_deref()
                        .and_then(|e| e.lines().next())
                        .map(|e| format!(" — {e}"))
                        .unwrap_or_default()
                ),
            ]
        })
        .collect();
    table::render(
        [
            "DEPLOY",
            "STARTED (UTC)",
            "TRIGGER",
            "REVISION",
            "OUTCOME",
            "TOOK",
            "STACKS / ERROR",
        ],
        &rows,
    )
}

/// One deploy: what changed, every step, hook output.
pub fn detail(d: &Deploy) -> String {
    let mut out = format!(
        "deploy #{} ({})\n  started:  {}\n  took:     {}\n  trigger:  {}\n  revision: {}\n  source:   {}\n  plan:     {}\n  outcome:  {}\n",
        d.id,
        d.project,
        format_utc(d.started_ms),
        duration(d),
        d.trigger,
        d.revision,
        d.source,
        d.summary,
        outcome(d)
    );
    if let Some(e) = &d.error {
        out.push_str("  error:\n");
        for l in e.lines() {
            out.push_str(&format!("    {l}\n"));
        }
    }
    out.push_str("\nservices:\n");
    let rows: Vec<[String; 4]> = d
        .services
        .iter()
        .map(|s| {
            [
                s.container.clone(),
                s.action.clone(),
                s.image_before
                    .as_deref()
                    .map(crate::plan::render::short_image)
                    .unwrap_or_else(|| "-".into()),
                s.image_after
                    .as_deref()
                    .map(crate::plan::render::short_image)
                    .unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    out.push_str(&indent(&table::render(
        ["CONTAINER", "ACTION", "BEFORE", "AFTER"],
        &rows,
    )));
    out.push_str("\nsteps:\n");
    let rows: Vec<[String; 5]> = d
        .steps
        .iter()
        .map(|s| {
            [
                format!("+{:.1}s", (s.started_ms - d.started_ms) as f64 / 1000.0),
                s.target.clone(),
                s.name.clone(),
                format!("{:.1}s", s.duration_ms as f64 / 1000.0),
                if s.error.is_empty() {
                    s.outcome.clone()
                } else {
                    format!(
                        "{}: {}",
                        s.outcome,
                        s.error.lines().next().unwrap_or_default()
                    )
                },
            ]
        })
        .collect();
    out.push_str(&indent(&table::render(
        ["AT", "TARGET", "STEP", "TOOK", "OUTCOME"],
        &rows,
    )));
    for s in d.steps.iter().filter(|s| !s.output.trim().is_empty()) {
        out.push_str(&format!(
            "\noutput of {} {} (last lines):\n",
            s.target, s.name
        ));
        for l in s.output.lines() {
            out.push_str(&format!("    | {l}\n"));
        }
    }
    out
}

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("  {l}\n")).collect()
}
