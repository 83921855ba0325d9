//! The command-line edge: resolves settings once, runs one verb, maps the outcome to an exit
//! code. The only module that prints user output (stdout) besides apply's progress (stderr).

pub mod args;

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use serde::Serialize;

use crate::apply::progress::Progress;
use crate::load::schema::FileKind;
use crate::model::actual::{Actual, RunState};
use crate::model::DesiredState;
use crate::plan::{render, Action, Plan};
use crate::sources::{self, Snapshot};
use crate::spec::{labels, Desired};
use args::{Command, SourceArgs};

/// Exit code for "the plan has changes" with `--detailed-exitcode`.
const EXIT_CHANGES: u8 = 2;

/// An error already shown to the user in full (validation diagnostics).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Reported(pub String);

pub async fn run(cli: args::Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Validate(src) => {
            let (snap, desired) = load(&src)?;
            let services: usize = desired.stacks.iter().map(|s| s.spec.services.len()).sum();
            println!(
                "{}: valid ({} stack(s), {services} service(s))",
                snap.origin,
                desired.stacks.len()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Plan(a) => {
            let ctx = PlanContext::build(&a.source).await?;
            if a.json {
                println!("{}", render::json(&ctx.plan));
            } else {
                println!("source: {}\n", ctx.snapshot.origin);
                print!("{}", render::text(&ctx.plan, false));
            }
            Ok(if a.detailed_exitcode && !ctx.plan.is_empty() {
                ExitCode::from(EXIT_CHANGES)
            } else {
                ExitCode::SUCCESS
            })
        }
        Command::Diff(src) => {
            let ctx = PlanContext::build(&src).await?;
            println!("source: {}\n", ctx.snapshot.origin);
            print!("{}", render::text(&ctx.plan, true));
            Ok(ExitCode::SUCCESS)
        }
        Command::Apply(a) => apply(&a).await,
        Command::Status(a) => {
            let ctx = PlanContext::build(&a.source).await?;
            let rows = status_rows(&ctx.desired, &ctx.actual, &ctx.plan);
            if a.json {
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else {
                println!("source: {}\n", ctx.snapshot.origin);
                print!("{}", status_table(&rows));
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Schema { out } => {
            std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
            for kind in [FileKind::Repo, FileKind::Stack] {
                let path = out.join(kind.schema_file());
                std::fs::write(&path, crate::load::schema::schema_text(kind))
                    .with_context(|| format!("writing {}", path.display()))?;
                println!("wrote {}", path.display());
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Reads the source named by the flags (see `SourceArgs` for the defaults).
pub fn snapshot(src: &SourceArgs) -> Result<Snapshot> {
    let cwd = std::env::current_dir().context("reading the current directory")?;
    let snap = match (&src.source, src.worktree) {
        (Some(s), true) => sources::from_dir(Path::new(s), &src.path)?,
        (None, true) => sources::from_dir(&sources::discover_repo(&cwd).unwrap_or(cwd), &src.path)?,
        (Some(s), false) => {
            let path: PathBuf = sources::local_repo_path(s)?;
            if git2::Repository::open(&path).is_ok() {
                sources::from_git(&path, src.reference.as_deref(), &src.path)?
            } else if src.reference.is_some() || s.starts_with("file://") {
                bail!("{s} is not a git repository, so --ref cannot be used\n  hint: point --source at a git repository, or drop --ref to read a plain directory");
            } else {
                sources::from_dir(&path, &src.path)?
            }
        }
        (None, false) => match sources::discover_repo(&cwd) {
            Some(repo) => sources::from_git(&repo, src.reference.as_deref(), &src.path)?,
            None => sources::from_dir(&cwd, &src.path)?,
        },
    };
    Ok(snap)
}

fn load(src: &SourceArgs) -> Result<(Snapshot, DesiredState)> {
    let snap = snapshot(src)?;
    match crate::load::load(&snap.files) {
        Ok(d) => Ok((snap, d)),
        Err(diags) => {
            Err(Reported(format!("invalid desired state ({}):\n{diags}", snap.origin)).into())
        }
    }
}

/// Everything a plan-based verb needs, gathered once.
struct PlanContext {
    snapshot: Snapshot,
    desired: Desired,
    actual: Actual,
    plan: Plan,
}

impl PlanContext {
    async fn build(src: &SourceArgs) -> Result<PlanContext> {
        let (snapshot, state) = load(src)?;
        let env_hashes = crate::host::hash_env_files(&state).map_err(|errs| {
            Reported(
                errs.iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("\n")
                    + "\nnothing was changed.",
            )
        })?;
        let desired = crate::spec::render(&state, &env_hashes, snapshot.commit.as_deref());
        let docker = crate::observe::connect().await?;
        let names: Vec<String> = desired
            .containers
            .iter()
            .flat_map(crate::spec::DesiredContainer::container_names)
            .collect();
        let actual = crate::observe::observe(&docker, &desired.project, &names).await?;
        let plan = crate::plan::plan(&desired, &actual);
        Ok(PlanContext {
            snapshot,
            desired,
            actual,
            plan,
        })
    }
}

async fn apply(a: &args::ApplyArgs) -> Result<ExitCode> {
    let ctx = PlanContext::build(&a.source).await?;
    println!("source: {}\n", ctx.snapshot.origin);
    print!("{}", render::text(&ctx.plan, false));
    if ctx.plan.actions.is_empty() && ctx.plan.conflicts.is_empty() {
        return Ok(ExitCode::SUCCESS);
    }
    if !ctx.plan.conflicts.is_empty() {
        return Err(crate::apply::ApplyError::Conflicts(ctx.plan.conflicts.len()).into());
    }
    if !a.yes {
        if !std::io::stdin().is_terminal() {
            bail!("refusing to apply without confirmation: standard input is not a terminal\n  hint: review the plan above and pass --yes to apply it");
        }
        print!("\nApply these changes? Only 'yes' is accepted: ");
        std::io::stdout().flush()?;
        let mut answer = String::new();
        std::io::stdin().read_line(&mut answer)?;
        if answer.trim() != "yes" {
            println!("Apply cancelled; nothing was changed.");
            return Ok(ExitCode::SUCCESS);
        }
    }
    let docker = crate::observe::connect().await?;
    let progress = Progress::new(false);
    let started = std::time::Instant::now();
    let report = crate::apply::apply(&docker, &ctx.plan, &ctx.desired, &progress).await?;
    println!(
        "\nApply complete in {:.1}s: {} created, {} recreated, {} started, {} removed{}; {} image(s) pulled.",
        started.elapsed().as_secs_f64(),
        report.created,
        report.recreated,
        report.started,
        report.removed,
        if report.released > 0 {
            format!(", {} released blue/green", report.released)
        } else {
            String::new()
        },
        report.pulled
    );
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, Serialize)]
struct StatusRow {
    stack: String,
    service: String,
    container: String,
    /// running, stopped, missing, drifted, conflict or undesired.
    state: String,
    image: String,
    commit: String,
    detail: String,
}

fn status_rows(desired: &Desired, actual: &Actual, plan: &Plan) -> Vec<StatusRow> {
    let mut rows = Vec::new();
    for d in &desired.containers {
        let blue_green = d.blue_green.is_some();
        for name in d.container_names() {
            let ac = actual.managed.iter().find(|c| c.name == name);
            let action = plan
                .actions
                .iter()
                .find(|a| a.container() == Some(name.as_str()));
            let conflict = plan.conflicts.iter().find(|c| c.name == name);
            let (state, detail) = match (conflict, action, ac) {
                (Some(c), _, _) => ("conflict", c.message.clone()),
                (_, Some(Action::Create { .. }), _) => ("missing", String::new()),
                (_, Some(Action::Recreate { changes, .. }), _) => (
                    "drifted",
                    format!(
                        "{} differ",
                        changes
                            .iter()
                            .map(|c| c.field.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ),
                (_, Some(Action::Start { reason, .. }), _) => ("stopped", reason.clone()),
                (_, Some(Action::Release { step, .. }), _) => (
                    "to release",
                    format!("next release goes here ({})", step.as_str()),
                ),
                (_, Some(Action::Retire { reason, .. }), _) => ("to retire", reason.clone()),
                (_, _, Some(c)) if blue_green && c.serving() => ("serving", c.status.clone()),
                (_, _, Some(c)) if c.state == RunState::Running => ("running", c.status.clone()),
                (_, _, Some(c)) if blue_green => (
                    "idle",
                    format!("kept for rollback; {}", c.status.to_lowercase()),
                ),
                (_, _, None) if blue_green => continue,
                _ => ("unknown", String::new()),
            };
            rows.push(StatusRow {
                stack: d.stack.clone(),
                service: d.service.clone(),
                container: name.clone(),
                state: state.into(),
                image: ac.map(|c| c.image.clone()).unwrap_or_default(),
                commit: ac
                    .and_then(|c| c.label(labels::COMMIT))
                    .unwrap_or_default()
                    .to_string(),
                detail,
            });
        }
    }
    for a in &plan.actions {
        if let Action::Remove {
            stack,
            container,
            reason,
        } = a
        {
            let ac = actual.managed.iter().find(|c| &c.name == container);
            rows.push(StatusRow {
                stack: stack.clone(),
                service: ac
                    .and_then(|c| c.label(labels::SERVICE))
                    .unwrap_or_default()
                    .into(),
                container: container.clone(),
                state: "undesired".into(),
                image: ac.map(|c| c.image.clone()).unwrap_or_default(),
                commit: ac
                    .and_then(|c| c.label(labels::COMMIT))
                    .unwrap_or_default()
                    .into(),
                detail: reason.clone(),
            });
        }
    }
    rows
}

fn status_table(rows: &[StatusRow]) -> String {
    let header = [
        "STACK",
        "SERVICE",
        "CONTAINER",
        "STATE",
        "IMAGE",
        "COMMIT",
        "DETAIL",
    ];
    let cells: Vec<[String; 7]> = rows
        .iter()
        .map(|r| {
            [
                r.stack.clone(),
                r.service.clone(),
                r.container.clone(),
                r.state.clone(),
                render::short_image(&r.image),
                r.commit.chars().take(12).collect(),
                r.detail.clone(),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &cells {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cols: Vec<&str>| {
        let mut s = String::new();
        for (i, c) in cols.iter().enumerate() {
            if i + 1 == cols.len() {
                s.push_str(c);
            } else {
                s.push_str(&format!("{c:<w$}  ", w = widths[i]));
            }
        }
        s.trim_end().to_string() + "\n"
    };
    let mut out = line(header.to_vec());
    for row in &cells {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out
}
