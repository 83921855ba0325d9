//! Carrying out a plan against the Engine, strategy `recreate`.
//!
//! Order, and the promise each step keeps:
//! 1. **Refuse** on conflicts (objects dockhand does not own), then **preflight** (see
//!    [`preflight`]): every failed check is reported together and nothing has been touched.
//! 2. **Pull** every image a create/recreate needs, by digest, and check the digest. A failure
//!    here also leaves the host untouched.
//! 3. Create bind directories, owned networks and volumes.
//! 4. Containers wave by wave in `depends_on` order, independent ones in parallel. Per
//!    container: `before` hooks, create (or recreate), wait until ready (healthy if it has a
//!    healthcheck, then dockhand's own `http`/`tcp` probes; exited 0 for a job), `after_start`
//!    hooks, smoke checks, `after_switch` hooks. A recreate keeps the old container (stopped
//!    and renamed) until the new one is ready, its `after_start` hooks and smoke checks
//!    passed, and puts it back otherwise; a maintenance container holds the route meanwhile.
//!    Blue/green services are released in their wave too (see [`release`]), so they can be
//!    dependencies like any other service.
//! 5. Remove managed containers and networks that are no longer desired. Volumes are never
//!    removed here.
//!
//! Edge module: bollard and the file system. It executes the plan's actions and decides
//! nothing on its own.

mod container;
mod hooks;
mod maintenance;
pub mod preflight;
mod probe;
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
    #[error("{container}: hook {hook} failed: {message}{}\n  hint: {}", if .output.trim().is_empty() { String::new() } else { format!("\n  last output:\n{}", .output.lines().map(|l| format!("    | {l}")).collect::<Vec<_>>().join("\n")) }, if *.engine { "the Engine failed under the hook, not the hook: once `docker info` answers, apply again (the revision is not quarantined)" } else { "the hook's full output is in `dockhand history`; fix the cause and commit again (or `dockhand apply --retry`)" })]
    Hook {
        container: String,
        hook: String,
        message: String,
        output: String,
        /// The Engine failed under the step (e.g. went away), not the step itself.
        engine: bool,
    },
    #[error("{container}: smoke check {check} failed: {message}\n  hint: fix the new version (or the check) and commit again; `dockhand history` has the step")]
    Smoke {
        container: String,
        check: String,
        message: String,
    },
    // No `#[source]`: the message already holds the cause, and an error chain would print it
    // twice.
    #[error("{cause}\n  {note}")]
    RolledBack {
        cause: Box<ApplyError>,
        note: String,
    },
    #[error("{name}: a container dockhand does not own holds this name (id {id}; {owner}); it was not stopped, renamed or removed\n  hint: dockhand only touches containers carrying its project's labels: if it is not needed, remove or rename it yourself (docker rm / docker rename {name} …), then apply again")]
    NotOwned {
        name: String,
        id: String,
        /// Whose it is, as far as its labels say.
        owner: String,
    },
    #[error(transparent)]
    Engine(#[from] EngineError),
}

impl ApplyError {
    /// A new version failed its gate or a hook and what served before serves again: the
    /// revision should not be tried again by itself.
    pub fn rolled_back(&self) -> bool {
        match self {
            ApplyError::GateFailed { .. } => true,
            // The Engine failing under a step says nothing about the revision: the deploy is
            // recorded as failed, and the revision is tried again.
            ApplyError::RolledBack { cause, .. } => !cause.engine_failed(),
            _ => false,
        }
    }

    /// The Engine failed, not the release.
    pub fn engine_failed(&self) -> bool {
        match self {
            ApplyError::Engine(_) => true,
            ApplyError::Hook { engine, .. } => *engine,
            ApplyError::RolledBack { cause, .. } => cause.engine_failed(),
            _ => false,
        }
    }
}

#[derive(Debug, Default, Clone)]
pub struct ApplyOptions {
    pub checks: preflight::Checks,
    /// Run the checks, then stop.
    pub preflight_only: bool,
}

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
    options: &ApplyOptions,
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

    progress
        .step("host", "preflight", async {
            let problems = preflight::run(docker, &changing, &options.checks).await;
            if problems.is_empty() {
                Ok(())
            } else {
                Err(ApplyError::Preflight(problems))
            }
        })
        .await?;
    progress.line("preflight: all checks passed");
    if options.preflight_only {
        return Ok(ApplyReport::default());
    }
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

    // Container actions by the desired container they converge (a blue/green service's
    // `Release` or `Retire` by its base name), so that each runs in its dependency wave.
    let by_service: HashMap<(&str, &str), &DesiredContainer> = desired
        .containers
        .iter()
        .map(|c| ((c.stack.as_str(), c.service.as_str()), c))
        .collect();
    let actions: HashMap<&str, &Action> = plan
        .actions
        .iter()
        .filter_map(|a| match a {
            Action::Create { container, .. }
            | Action::Recreate { container, .. }
            | Action::Start { container, .. } => Some((container.as_str(), a)),
            Action::Release { stack, service, .. } | Action::Retire { stack, service, .. } => {
                by_service
                    .get(&(stack.as_str(), service.as_str()))
                    .map(|c| (c.name.as_str(), a))
            }
            _ => None,
        })
        .collect();
    let api = desired.traefik_api.as_deref();
    let needed_by_later: BTreeSet<&str> = desired
        .containers
        .iter()
        .flat_map(|c| c.depends_on.iter().map(String::as_str))
        .collect();
    for wave in waves(desired) {
        let work: Vec<(&DesiredContainer, &Action)> = wave
            .iter()
            .filter_map(|c| actions.get(c.name.as_str()).map(|a| (*c, *a)))
            .collect();
        // Every started change runs to its end (a recreate puts its old container back, a
        // release leaves one color serving) even when a sibling fails: the first error is
        // reported once all of them have settled.
        let done: Vec<Result<&'static str, ApplyError>> = stream::iter(
            work.into_iter()
                .map(|(c, a)| converge_one(docker, c, a, api, progress)),
        )
        .buffer_unordered(PARALLEL)
        .collect()
        .await;
        for what in done {
            match what? {
                "created" => report.created += 1,
                "recreated" => report.recreated += 1,
                "released" => report.released += 1,
                "retired" => report.removed += 1,
                _ => report.started += 1,
            }
        }
        // Unchanged dependencies of later waves must be up too before those start.
        let to_wait: Vec<&DesiredContainer> = wave
            .iter()
            .copied()
            .filter(|c| {
                !actions.contains_key(c.name.as_str()) && needed_by_later.contains(c.name.as_str())
            })
            .collect();
        stream::iter(to_wait.into_iter().map(|c| async move {
            if c.job {
                container::wait_exit(docker, c, progress).await
            } else if started_is_enough(desired, &c.name) {
                Ok(())
            } else if c.blue_green.is_some() {
                release::wait_serving(docker, c, progress).await
            } else {
                container::wait_ready(docker, c, progress).await
            }
        }))
        .buffer_unordered(PARALLEL)
        .try_collect::<Vec<()>>()
        .await?;
    }

    for a in &plan.actions {
        match a {
            Action::Remove {
                container: name, ..
            } => {
                progress.line(&format!("{name}: stopping and removing"));
                progress
                    .step(
                        name,
                        "remove",
                        container::stop_and_remove(
                            docker,
                            &desired.project,
                            name,
                            Duration::from_secs(10),
                        ),
                    )
                    .await?;
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

/// One container of a wave, from its `before` hooks to its `after_switch` hooks (a blue/green
/// service: its whole release, or the retire of a color that should not serve).
async fn converge_one(
    docker: &Docker,
    c: &DesiredContainer,
    action: &Action,
    api: Option<&str>,
    progress: &Progress,
) -> Result<&'static str, ApplyError> {
    let name = c.name.as_str();
    match action {
        Action::Release {
            color,
            step,
            retire,
            ..
        } => {
            let color = crate::model::Color::parse(color).unwrap_or(crate::model::Color::Blue);
            let target = format!("{name}-{}", color.as_str());
            let r = release::Release {
                base: c,
                color,
                step: *step,
                retire: retire.as_deref(),
                api,
            };
            progress
                .step(&target, "release", release::release(docker, r, progress))
                .await?;
            return Ok("released");
        }
        Action::Retire { container: old, .. } => {
            progress
                .step(
                    old,
                    "retire",
                    release::retire(docker, c, old, api, progress),
                )
                .await?;
            return Ok("retired");
        }
        _ => {}
    }
    // Ready means healthy for a service, exited 0 for a job; then the `after_start` hooks.
    let verify = || async {
        if c.job {
            progress
                .step(
                    name,
                    "wait completed",
                    container::wait_exit(docker, c, progress),
                )
                .await?;
        } else {
            progress
                .step(name, "wait ready", async {
                    container::wait_ready(docker, c, progress).await?;
                    probe::wait_pass(
                        docker,
                        name,
                        probe::network_of(c),
                        &c.probes,
                        c.spec
                            .healthcheck
                            .as_ref()
                            .map_or(Duration::from_secs(60), |h| h.deadline()),
                        progress,
                    )
                    .await
                })
                .await?;
        }
        hooks::run_phase(docker, c, name, &c.hooks.after_start, progress).await?;
        probe::smoke(docker, c, name, progress).await
    };
    let what = match action {
        Action::Create { .. } => {
            hooks::run_phase(docker, c, name, &c.hooks.before, progress).await?;
            progress.line(&format!("{name}: creating"));
            progress
                .step(name, "create", container::create_and_start(docker, c))
                .await?;
            verify().await?;
            "created"
        }
        Action::Recreate { .. } => {
            let recreate = async {
                hooks::run_phase(docker, c, name, &c.hooks.before, progress).await?;
                progress.line(&format!("{name}: recreating"));
                progress
                    .step(name, "recreate", container::replace(docker, c, verify()))
                    .await
            };
            match &c.maintenance {
                Some(m) if !c.job => {
                    let drain = crate::spec::DEFAULT_DRAIN_MS;
                    maintenance::up(docker, m, api, drain, progress).await?;
                    let result = recreate.await;
                    maintenance::leave(docker, m, api, drain, result, progress).await?;
                }
                _ => recreate.await?,
            }
            "recreated"
        }
        _ => {
            progress.line(&format!("{name}: starting"));
            progress
                .step(name, "start", container::start(docker, name))
                .await?;
            if c.job {
                container::wait_exit(docker, c, progress).await?;
            } else {
                container::wait_ready(docker, c, progress).await?;
            }
            return Ok("started");
        }
    };
    hooks::run_phase(docker, c, name, &c.hooks.after_switch, progress).await?;
    Ok(what)
}

/// Whether every dependent of `name` only asks for it to have started.
fn started_is_enough(desired: &Desired, name: &str) -> bool {
    let mut asked = desired
        .containers
        .iter()
        .filter_map(|d| d.conditions.get(name))
        .peekable();
    asked.peek().is_some() && asked.all(|c| *c == crate::model::Condition::Started)
}

async fn pull_all(
    docker: &Docker,
    changing: &[&DesiredContainer],
    progress: &Progress,
) -> Result<usize, ApplyError> {
    let images: BTreeSet<&str> = changing.iter().flat_map(|c| c.images()).collect();
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
