//! The Engine calls behind each plan action.

mod correct;
mod create;
mod replace;
mod wait;

pub use correct::correct;
pub(super) use create::create;
pub use create::{create_and_start, start};
pub use replace::replace;
pub use wait::{wait_exit, wait_ready};

use std::time::{Duration, Instant};

use bollard::models::{NetworkCreateRequest, VolumeCreateRequest};
use bollard::query_parameters::{CreateImageOptions, RemoveContainerOptions, StopContainerOptions};
use bollard::Docker;
use futures_util::StreamExt;

use super::progress::Progress;
use super::{ApplyError, PullError, StepError};
use crate::model::BindCreate;
use crate::observe::EngineError;
use crate::spec::{labels, DesiredContainer};

pub(super) fn step(
    container: &str,
    what: &'static str,
) -> impl FnOnce(bollard::errors::Error) -> ApplyError {
    let container = container.to_string();
    move |e| ApplyError::Step {
        container,
        what,
        source: StepError::Engine(e),
    }
}

fn is_not_found(e: &bollard::errors::Error) -> bool {
    matches!(
        e,
        bollard::errors::Error::DockerResponseServerError {
            status_code: 404,
            ..
        }
    )
}

/// How long an image pull may go without any progress from the Engine.
pub const PULL_STALL: Duration = Duration::from_secs(120);

/// Makes `image` (`repo@sha256:…`) present locally; returns whether it had to be pulled.
/// A digest-pinned image already present is content-addressed, so it is not pulled again.
pub async fn ensure_image(
    docker: &Docker,
    logins: &crate::observe::auth::RegistryAuth,
    image: &str,
    progress: &Progress,
) -> Result<bool, ApplyError> {
    match docker.inspect_image(image).await {
        Ok(_) => return Ok(false),
        Err(e) if is_not_found(&e) => {}
        Err(e) => return Err(EngineError::api(format!("inspecting image {image}"))(e).into()),
    }
    let credentials = logins
        .for_image(image)
        .await
        .map_err(|e| ApplyError::PullUnauthorized {
            image: image.to_string(),
            source: PullError::Login(e),
        })?;
    progress.line(&format!("pulling {image}"));
    let started = Instant::now();
    let mut stream = docker.create_image(
        Some(CreateImageOptions {
            from_image: Some(image.to_string()),
            ..Default::default()
        }),
        None,
        credentials,
    );
    let mut last_report = Instant::now();
    loop {
        // The Engine reports every layer's progress about once a second; a pull that says
        // nothing for PULL_STALL is stuck, and would hold the apply lock with it.
        let Ok(next) = tokio::time::timeout(PULL_STALL, stream.next()).await else {
            return Err(ApplyError::Pull {
                image: image.to_string(),
                source: PullError::Stalled(PULL_STALL),
            });
        };
        let Some(item) = next else { break };
        match item {
            Ok(info) => {
                if last_report.elapsed() > Duration::from_secs(2) {
                    last_report = Instant::now();
                    let status = info.status.unwrap_or_default();
                    progress.line(&format!(
                        "pulling {image}: {status} ({:.0}s)",
                        started.elapsed().as_secs_f64()
                    ));
                }
            }
            Err(e) if crate::observe::auth::is_unauthorized(&e) => {
                return Err(ApplyError::PullUnauthorized {
                    image: image.to_string(),
                    source: PullError::Pull(e),
                })
            }
            Err(e) => {
                return Err(ApplyError::Pull {
                    image: image.to_string(),
                    source: PullError::Pull(e),
                })
            }
        }
    }
    // Verify that what we got is what we asked for.
    let inspected = docker
        .inspect_image(image)
        .await
        .map_err(|e| ApplyError::Pull {
            image: image.to_string(),
            source: PullError::Inspect(e),
        })?;
    if let Some((_, digest)) = image.split_once('@') {
        let ok = inspected
            .repo_digests
            .unwrap_or_default()
            .iter()
            .any(|d| d.ends_with(&format!("@{digest}")));
        if !ok {
            return Err(ApplyError::Pull {
                image: image.to_string(),
                source: PullError::DigestMismatch,
            });
        }
    }
    progress.line(&format!(
        "pulled {image} in {:.1}s",
        started.elapsed().as_secs_f64()
    ));
    Ok(true)
}

pub async fn create_network(
    docker: &Docker,
    project: &str,
    stack: &str,
    name: &str,
    driver: Option<&str>,
    internal: bool,
) -> Result<(), ApplyError> {
    docker
        .create_network(NetworkCreateRequest {
            name: name.to_string(),
            driver: driver.map(str::to_string),
            internal: Some(internal),
            labels: Some(labels::owned_object(project, stack).into_iter().collect()),
            ..Default::default()
        })
        .await
        .map_err(EngineError::api(format!("creating network {name}")))?;
    Ok(())
}

pub async fn create_volume(
    docker: &Docker,
    project: &str,
    stack: &str,
    name: &str,
    driver: Option<&str>,
) -> Result<(), ApplyError> {
    docker
        .create_volume(VolumeCreateRequest {
            name: Some(name.to_string()),
            driver: driver.map(str::to_string),
            labels: Some(labels::owned_object(project, stack).into_iter().collect()),
            ..Default::default()
        })
        .await
        .map_err(EngineError::api(format!("creating volume {name}")))?;
    Ok(())
}

/// A network or volume of this project, for [`remove_owned_object`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Object {
    Network,
    Volume,
}

/// Removes the network or volume `name` when its labels, read right before, say `project`
/// owns it. `Ok(None)`: removed (or already gone); `Ok(Some(why))`: left in place, and why
/// (not this project's, or the Engine refused: still in use).
///
/// # Errors
/// The Engine could not be asked.
pub async fn remove_owned_object(
    docker: &Docker,
    project: &str,
    kind: Object,
    name: &str,
) -> Result<Option<String>, ApplyError> {
    let what = match kind {
        Object::Network => "network",
        Object::Volume => "volume",
    };
    let found = match kind {
        Object::Network => docker
            .inspect_network(name, None)
            .await
            .map(|n| (n.id.unwrap_or_default(), n.labels.unwrap_or_default())),
        Object::Volume => docker
            .inspect_volume(name)
            .await
            .map(|v| (v.name, v.labels)),
    };
    let (id, l) = match found {
        Ok(found) => found,
        Err(e) if is_not_found(&e) => return Ok(None),
        Err(e) => return Err(EngineError::api(format!("inspecting {what} {name}"))(e).into()),
    };
    let get = |k: &str| l.get(k).map(String::as_str);
    if get(labels::MANAGED) != Some("true") || get(labels::PROJECT) != Some(project) {
        return Ok(Some(format!(
            "not removed: its labels do not say project `{project}` owns it"
        )));
    }
    let removed = match kind {
        Object::Network => docker.remove_network(&id).await,
        Object::Volume => {
            docker
                .remove_volume(&id, None::<bollard::query_parameters::RemoveVolumeOptions>)
                .await
        }
    };
    Ok(match removed {
        Err(e) if !is_not_found(&e) => Some(crate::observe::short_error(&e)),
        _ => None,
    })
}

/// Creates a bind source directory (and parents) with the declared mode and owner. An
/// existing directory gets the mode and owner applied too, so a fix in git fixes the host.
/// Never through a symlink (see [`crate::host::ensure_dir`]).
pub fn ensure_bind_dir(path: &str, create: &BindCreate) -> Result<(), StepError> {
    crate::host::ensure_dir(path, create.mode.as_deref(), create.owner.as_deref())
        .map_err(StepError::Host)
}

/// The project a desired container (or a one-off made from it) belongs to.
pub(super) fn project_of(c: &DesiredContainer) -> &str {
    c.labels
        .get(labels::PROJECT)
        .map(String::as_str)
        .unwrap_or_default()
}

/// The id of the container called `name`, if there is one and `project` owns it
/// (`dockhand.managed=true`, `dockhand.project=<project>`); `None` if there is none. Asked
/// right before each stop, remove and rename, which then act on the id: dockhand never stops,
/// renames or removes by name a container that is not its own.
///
/// # Errors
/// [`ApplyError::NotOwned`] when a container without this project's labels holds the name;
/// an Engine error when the Engine cannot be asked.
pub(super) async fn owned(
    docker: &Docker,
    project: &str,
    name: &str,
) -> Result<Option<String>, ApplyError> {
    let info = match docker.inspect_container(name, None).await {
        Ok(info) => info,
        Err(e) if is_not_found(&e) => return Ok(None),
        Err(e) => return Err(step(name, "ownership check")(e)),
    };
    let l = info.config.and_then(|c| c.labels).unwrap_or_default();
    let get = |k: &str| l.get(k).map(String::as_str);
    let id = info.id.unwrap_or_default();
    if get(labels::MANAGED) == Some("true") && get(labels::PROJECT) == Some(project) {
        return Ok(Some(id));
    }
    Err(ApplyError::NotOwned {
        name: name.to_string(),
        id: id.chars().take(12).collect(),
        owner: match (get(labels::MANAGED), get(labels::PROJECT)) {
            (Some("true"), Some(p)) => format!("it belongs to dockhand project `{p}`"),
            _ => "it has no dockhand labels".to_string(),
        },
    })
}

/// Removes `name` (forcibly: it may still run) if `project` owns it; a missing one counts as
/// removed.
///
/// # Errors
/// [`ApplyError::NotOwned`] (nothing is removed), or the Engine's refusal.
pub(super) async fn remove(docker: &Docker, project: &str, name: &str) -> Result<(), ApplyError> {
    let Some(id) = owned(docker, project, name).await? else {
        return Ok(());
    };
    match docker
        .remove_container(
            &id,
            Some(RemoveContainerOptions {
                force: true,
                v: false,
                ..Default::default()
            }),
        )
        .await
    {
        Err(e) if !is_not_found(&e) => Err(step(name, "remove")(e)),
        _ => Ok(()),
    }
}

/// Stops `name` if `project` owns it; one that is already stopped (304) or missing counts as
/// stopped.
///
/// # Errors
/// [`ApplyError::NotOwned`] (nothing is stopped), or the Engine's refusal.
pub(super) async fn stop(
    docker: &Docker,
    project: &str,
    name: &str,
    grace: Option<Duration>,
) -> Result<(), ApplyError> {
    let Some(id) = owned(docker, project, name).await? else {
        return Ok(());
    };
    // `None` leaves the container's own stop timeout (set from `stop_grace_period` at create).
    let t = grace.map(|g| i32::try_from(g.as_secs()).unwrap_or(i32::MAX));
    match docker
        .stop_container(
            &id,
            Some(StopContainerOptions {
                t,
                ..Default::default()
            }),
        )
        .await
    {
        Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 304 | 404,
            ..
        })
        | Ok(()) => Ok(()),
        Err(e) => Err(step(name, "stop")(e)),
    }
}

/// Stops and removes `name` if `project` owns it (see [`owned`]).
pub async fn stop_and_remove(
    docker: &Docker,
    project: &str,
    name: &str,
    grace: Option<Duration>,
) -> Result<(), ApplyError> {
    stop(docker, project, name, grace).await?;
    remove(docker, project, name).await
}
