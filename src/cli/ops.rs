//! `dockhand logs`, `dockhand exec` and `dockhand down`: the project comes from `--project`
//! or the source's dockhand.yaml; the work is in [`crate::ops`] and
//! [`crate::reconcile::down`].

use std::io::IsTerminal;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{anyhow, bail, Result};

use super::apply::confirm;
use super::ops_args::{DownArgs, ExecArgs, LogsArgs, ProjectArg};
use super::settings;
use crate::history::Store;
use crate::model::actual::ActualContainer;
use crate::model::DesiredState;
use crate::ops::live::Target;
use crate::ops::{self, OpsError};
use crate::plan::{render, Action};
use crate::reconcile::down;
use crate::reconcile::lock;
use crate::reconcile::record::Recorded;
use crate::sources::Fetch;

/// The project acted on, and its desired state when it was read from the source.
struct Scope {
    project: String,
    state: Option<DesiredState>,
}

/// `--project`, else the source's: its files are loaded for their names only (no host policy,
/// no Engine), so a commit that does not pass them still shows its logs.
fn scope(p: &ProjectArg, state_dir: &Path) -> Result<Scope> {
    if let Some(project) = &p.project {
        return Ok(Scope {
            project: project.clone(),
            state: None,
        });
    }
    let source = settings::source(&p.source, state_dir, Fetch::OnRead)?;
    let snap = source.read(None)?;
    let state = crate::load::load(&snap.files).map_err(|d| {
        anyhow!(
            "the desired state ({}) does not load, so its project is unknown:\n{d}\n  hint: name the project with --project",
            snap.origin
        )
    })?;
    Ok(Scope {
        project: state.config.project.clone(),
        state: Some(state),
    })
}

/// The live container of `target`; when it has none and the desired state does not declare
/// it either, says so instead.
async fn live(docker: &bollard::Docker, scope: &Scope, target: &Target) -> Result<ActualContainer> {
    let found = ops::live::find(docker, &scope.project, target).await;
    let (Err(OpsError::NoContainer { .. }), Some(state)) = (&found, &scope.state) else {
        return Ok(found?);
    };
    let declared: Vec<String> = state
        .stacks
        .iter()
        .flat_map(|s| {
            s.spec
                .services
                .keys()
                .map(move |v| format!("{}/{v}", s.spec.stack))
        })
        .collect();
    let known = declared.iter().any(|d| {
        let (stack, service) = d.split_once('/').unwrap_or_default();
        service == target.service && target.stack.as_deref().is_none_or(|s| s == stack)
    });
    if known {
        return Ok(found?);
    }
    Err(OpsError::UnknownService {
        project: scope.project.clone(),
        target: target.to_string(),
        declared: if declared.is_empty() {
            "none".into()
        } else {
            declared.join(", ")
        },
    }
    .into())
}

pub async fn logs(a: &LogsArgs, state_dir: &Path) -> Result<ExitCode> {
    let target = Target::parse(&a.service)?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    let since = a
        .since
        .as_deref()
        .map(|s| ops::logs::parse_since(s, now))
        .transpose()?;
    let scope = scope(&a.scope, state_dir)?;
    let docker = crate::observe::connect().await?;
    let c = live(&docker, &scope, &target).await?;
    if std::io::stderr().is_terminal() && !a.json {
        eprintln!("{target}: {} ({})", c.name, c.status);
    }
    let options = ops::logs::Options {
        follow: a.follow,
        tail: a.tail,
        since,
        timestamps: a.timestamps,
    };
    let mut sink = ops::logs::Sink {
        out: std::io::stdout(),
        err: std::io::stderr(),
        json: a.json,
    };
    ops::logs::stream(&docker, &c.id, &options, &mut sink).await?;
    Ok(ExitCode::SUCCESS)
}

pub async fn exec(a: &ExecArgs, state_dir: &Path) -> Result<ExitCode> {
    let target = Target::parse(&a.service)?;
    if a.tty && !std::io::stdin().is_terminal() {
        bail!("-t needs a terminal, and standard input is not one\n  hint: drop -t (keep -i to pipe input into the command)");
    }
    let scope = scope(&a.scope, state_dir)?;
    let docker = crate::observe::connect().await?;
    let c = live(&docker, &scope, &target).await?;
    let options = ops::exec::Options {
        cmd: a.cmd.clone(),
        interactive: a.interactive,
        tty: a.tty,
        user: a.user.clone(),
        workdir: a.workdir.clone(),
    };
    let code = ops::exec::run(&docker, &c, &options).await?;
    // As a shell reports it: the low 8 bits. No code from the Engine is a failure.
    Ok(ExitCode::from(code.map_or(1, |c| (c & 0xff) as u8)))
}

pub async fn down(a: &DownArgs, state_dir: &Path) -> Result<ExitCode> {
    let project = scope(&a.scope, state_dir)?.project;
    let docker = crate::observe::connect().await?;
    down::refuse_if_agent(state_dir).await?;
    let store = Arc::new(Store::open(state_dir)?);
    // Before reading the host, as for apply: nothing else changes it until this is recorded.
    let held = lock::acquire(&store, lock::CLI_WAIT).await?;
    let d = down::plan(&docker, &project, state_dir, a.volumes).await?;
    let kept_volumes = if d.plan.kept_volumes.is_empty() {
        String::new()
    } else {
        format!(
            "\nIts volumes are kept: {} (`dockhand down --volumes` deletes them).",
            d.plan.kept_volumes.join(", ")
        )
    };
    if d.plan.actions.is_empty() {
        if a.json {
            print_json(&project, &d.plan, None);
        } else {
            println!("Nothing to remove: project {project} has no containers or networks on this Engine.{kept_volumes}");
        }
        return Ok(ExitCode::SUCCESS);
    }
    if a.json {
        if !a.yes {
            bail!("refusing to remove anything without confirmation: --json prints no plan to confirm\n  hint: review `dockhand down` without --json, then pass --yes");
        }
    } else {
        println!("project: {project}\n");
        super::colour::print_plan(&render::text(&d.plan, false));
    }
    let deletes_data = d
        .plan
        .actions
        .iter()
        .any(|x| matches!(x, Action::RemoveVolume { .. }));
    let question = if deletes_data {
        "Remove all of this, and DELETE these volumes with their data?"
    } else {
        "Remove all of this?"
    };
    if !confirm(a.yes, a.json, question)? {
        println!("Down cancelled; nothing was changed.");
        return Ok(ExitCode::SUCCESS);
    }
    let origin = format!(
        "dockhand down --project {project}{}",
        if a.volumes { " --volumes" } else { "" }
    );
    let recorded = down::record(&docker, &store, &held, &d, &origin).await?;
    drop(held);
    if a.json {
        print_json(&project, &d.plan, Some(&recorded));
    } else if let Recorded::Succeeded {
        deploy,
        report,
        took,
    } = &recorded
    {
        println!(
            "\nDown complete in {:.1}s: {} removed. Recorded as deploy #{deploy}.{kept_volumes}",
            took.as_secs_f64(),
            report.removed
        );
    }
    recorded.into_result()?;
    Ok(ExitCode::SUCCESS)
}

/// `{"project", "plan", "deploy", "outcome", "removed"}`; `deploy` and `outcome` are null
/// when there was nothing to do.
fn print_json(project: &str, plan: &crate::plan::Plan, recorded: Option<&Recorded>) {
    let (deploy, removed) = match recorded {
        Some(Recorded::Succeeded { deploy, report, .. }) => (Some(*deploy), report.removed),
        Some(Recorded::RolledBack { deploy, .. } | Recorded::Failed { deploy, .. }) => {
            (Some(*deploy), 0)
        }
        None => (None, 0),
    };
    let out = serde_json::json!({
        "project": project,
        "plan": plan,
        "deploy": deploy,
        "outcome": recorded.map(|r| r.outcome().as_str()),
        "removed": removed,
    });
    println!("{out}");
}
