//! Carrying out a plan against the Engine, strategy `recreate`.
//!
//! Order, and the promise each step keeps:
//! 1. **Refuse** on conflicts (objects dockhand does not own) and on missing bind sources:
//!    nothing has been touched.
//! 2. **Pull** every image a create/recreate needs, by digest, and check the digest. A failure
//!    here also leaves the host untouched.
//! 3. Create bind directories, owned networks and volumes.
//! 4. Containers wave by wave in `depends_on` order, independent ones in parallel; a
//!    dependency with a healthcheck must be healthy before its dependents start. A recreate
//!    keeps the old container (stopped and renamed) until the new one has started, and puts it
//!    back if the new one cannot be created or started.
//! 5. Remove managed containers and networks that are no longer desired. Volumes are never
//!    removed here.
//!
//! Edge module: bollard and the file system. It executes the plan's actions and decides
//! nothing on its own.

mod container;
pub mod progress;
mod release;

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use bollard::Docker;
use futures_util::stream::{self, StreamExt, TryStreamExt};

use crate::observe::EngineError;
use crate::plan::{Action, Plan};
use crate::spec::{Desired, DesiredContainer};
use progress::Progress;

/// How many containers are created or started at the same time.
const PARALLEL: usize = 8;

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("{0} conflict(s) with objects dockhand does not own; nothing was changed\n  hint: see the plan above; resolve each `!` line and run apply again")]
    Conflicts(usize),
    #[error("preflight failed; nothing was changed:\n{}", .0.join("\n"))]
    Preflight(Vec<String>),
    #[error("cannot pull {image}: {message}; nothing was changed\n  hint: check that the tag and digest exist in the registry (the digest must be the manifest digest the registry serves) and that the registry is reachable")]
    Pull { image: String, message: String },
    #[error("{container}: {what} failed: {message}")]
    Step {
        container: String,
        what: &'static str,
        message: String,
    },
    #[error("{container} did not become healthy: {message}\n  hint: docker logs {container} shows its output; the container was left running for inspection")]
    Unhealthy { container: String, message: String },
    #[error("release to {container} stopped at the health gate: {message}\n  {}\n  hint: docker logs {container} shows why; fix the image or its health settings and commit again", match .serving { Some(s) => format!("{s} was not touched and still serves"), None => "no other color was serving".to_string() })]
    GateFailed {
        container: String,
        serving: Option<String>,
        message: String,
    },
    #[error(transparent)]
    Engine(#[from] EngineError),
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ApplyOptions {}

/// What apply did, for the summary line.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ApplyReport {
    pub pulled: usize,
    pub created: usize,
    pub recreated: usize,
    pub started: usize,
    pub removed: usize,
    pub released: usize,
}

/// Executes `plan`. `desired` supplies the full container specs (with env values), which the
/// plan deliberately does not carry.
///
/// # Errors
/// See [`ApplyError`]; each says whether anything was changed.
pub async fn apply(
    docker: &Docker,
    plan: &Plan,
    desired: &Desired,
    progress: &Progress,
) -> Result<ApplyReport, ApplyError> {
    if !plan.conflicts.is_empty() {
        return Err(ApplyError::Conflicts(plan.conflicts.len()));
    }
    let specs: HashMap<&str, &DesiredContainer> = desired
        .containers
        .iter()
        .map(|c| (c.name.as_str(), c))
        .collect();
    let changing: Vec<&DesiredContainer> = plan
        .actions
        .iter()
        .filter_map(|a| match a {
            Action::Create { container, .. } | Action::Recreate { container, .. } => {
                specs.get(container.as_str()).copied()
            }
            Action::Release { stack, service, .. } => desired
                .containers
                .iter()
                .find(|c| &c.stack == stack && &c.service == service),
            _ => None,
        })
        .collect();

    preflight(&changing)?;
    let mut report = ApplyReport {
        pulled: pull_all(docker, &changing, progress).await?,
        ..Default::default()
    };

    for c in &changing {
        for (path, create) in &c.bind_creates {
            container::ensure_bind_dir(path, create).map_err(|message| ApplyError::Step {
                container: c.name.clone(),
                what: "creating bind directory",
                message,
            })?;
        }
    }
    for a in &plan.actions {
        match a {
            Action::CreateNetwork { stack, name } => {
                let net = desired.networks.iter().find(|n| &n.name == name);
                progress.line(&format!("network {name}: creating"));
                container::create_network(docker, &desired.project, stack, name, net).await?;
            }
            Action::CreateVolume { stack, name } => {
                let vol = desired.volumes.iter().find(|v| &v.name == name);
                progress.line(&format!("volume {name}: creating"));
                container::create_volume(docker, &desired.project, stack, name, vol).await?;
            }
            _ => {}
        }
    }

    let actions: HashMap<&str, &Action> = plan
        .actions
        .iter()
        .filter(|a| {
            matches!(
                a,
                Action::Create { .. } | Action::Recreate { .. } | Action::Start { .. }
            )
        })
        .filter_map(|a| a.container().map(|n| (n, a)))
        .collect();
    let waves = waves(desired);
    let needed_by_later: BTreeSet<&str> = desired
        .containers
        .iter()
        .flat_map(|c| c.depends_on.iter().map(String::as_str))
        .collect();
    for wave in waves {
        let work: Vec<(&DesiredContainer, &Action)> = wave
            .iter()
            .filter_map(|c| actions.get(c.name.as_str()).map(|a| (*c, *a)))
            .collect();
        let done: Vec<&'static str> = stream::iter(work.into_iter().map(|(c, a)| async move {
            match a {
                Action::Create { .. } => {
                    progress.line(&format!("{}: creating", c.name));
                    container::create_and_start(docker, c)
                        .await
                        .map(|_| "created")
                }
                Action::Recreate { .. } => {
                    progress.line(&format!("{}: recreating", c.name));
                    container::replace(docker, c).await.map(|_| "recreated")
                }
                _ => {
                    progress.line(&format!("{}: starting", c.name));
                    container::start(docker, &c.name).await.map(|_| "started")
                }
            }
        }))
        .buffer_unordered(PARALLEL)
        .try_collect()
        .await?;
        for what in done {
            match what {
                "created" => report.created += 1,
                "recreated" => report.recreated += 1,
                _ => report.started += 1,
            }
        }
        // Changed containers, and dependencies of later waves, must be up (healthy if they
        // have a healthcheck) before the next wave starts.
        let to_wait: Vec<&DesiredContainer> = wave
            .iter()
            .copied()
            .filter(|c| {
                actions.contains_key(c.name.as_str()) || needed_by_later.contains(c.name.as_str())
            })
            .collect();
        stream::iter(
            to_wait
                .into_iter()
                .map(|c| container::wait_ready(docker, c, progress)),
        )
        .buffer_unordered(PARALLEL)
        .try_collect::<Vec<()>>()
        .await?;
    }

    // Blue/green releases, after the waves so that what they depend on is up.
    for a in &plan.actions {
        let base = |stack: &str, service: &str| {
            desired
                .containers
                .iter()
                .find(|c| c.stack == stack && c.service == service)
        };
        match a {
            Action::Release {
                stack,
                service,
                color,
                step,
                retire,
                ..
            } => {
                let (Some(b), Some(color)) =
                    (base(stack, service), crate::model::Color::parse(color))
                else {
                    continue;
                };
                release::release(
                    docker,
                    release::Release {
                        base: b,
                        color,
                        step: *step,
                        retire: retire.as_deref(),
                        api: desired.traefik_api.as_deref(),
                    },
                    progress,
                )
                .await?;
                report.released += 1;
            }
            Action::Retire {
                stack,
                service,
                container: old,
                ..
            } => {
                if let Some(b) = base(stack, service) {
                    release::retire(docker, b, old, desired.traefik_api.as_deref(), progress)
                        .await?;
                    report.removed += 1;
                }
            }
            _ => {}
        }
    }

    for a in &plan.actions {
        match a {
            Action::Remove {
                container: name, ..
            } => {
                progress.line(&format!("{name}: stopping and removing"));
                container::stop_and_remove(docker, name, Duration::from_secs(10)).await?;
                report.removed += 1;
            }
            Action::RemoveNetwork { name, .. } => {
                progress.line(&format!("network {name}: removing"));
                if let Err(e) = docker.remove_network(name).await {
                    // A network still used by a container dockhand does not own is left alone.
                    progress.line(&format!("network {name}: kept ({e})"));
                }
            }
            _ => {}
        }
    }
    Ok(report)
}

fn preflight(changing: &[&DesiredContainer]) -> Result<(), ApplyError> {
    let mut problems = Vec::new();
    for c in changing {
        for path in &c.bind_required {
            if !std::path::Path::new(path).exists() {
                problems.push(format!(
                    "  {}: bind source {path} does not exist\n    hint: create it, or add `create: {{mode: \"0755\"}}` to the mount so dockhand creates it",
                    c.name
                ));
            }
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(ApplyError::Preflight(problems))
    }
}

async fn pull_all(
    docker: &Docker,
    changing: &[&DesiredContainer],
    progress: &Progress,
) -> Result<usize, ApplyError> {
    let images: BTreeSet<&str> = changing.iter().map(|c| c.spec.image.as_str()).collect();
    let pulled: Vec<bool> = stream::iter(
        images
            .into_iter()
            .map(|image| container::ensure_image(docker, image, progress)),
    )
    .buffer_unordered(4)
    .try_collect()
    .await?;
    Ok(pulled.into_iter().filter(|p| *p).count())
}

/// Containers grouped so that each group depends only on earlier groups.
fn waves(desired: &Desired) -> Vec<Vec<&DesiredContainer>> {
    crate::plan::dependency_levels(desired)
}
