//! The Engine calls behind each plan action.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bollard::models::{
    ContainerCreateBody, EndpointSettings, HealthConfig, HealthStatusEnum, HostConfig, Mount,
    MountTmpfsOptions, MountType, NetworkConnectRequest, NetworkCreateRequest, NetworkingConfig,
    PortBinding, RestartPolicy, RestartPolicyNameEnum, VolumeCreateRequest,
};
use bollard::query_parameters::{
    CreateContainerOptions, CreateImageOptions, RemoveContainerOptions, RenameContainerOptions,
    StopContainerOptions,
};
use bollard::Docker;
use futures_util::StreamExt;

use super::progress::Progress;
use super::{ApplyError, PullError, StepError};
use crate::model::BindCreate;
use crate::observe::EngineError;
use crate::spec::{labels, DesiredContainer, MountSpec};

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

/// Makes `image` (`repo@sha256:…`) present locally; returns whether it had to be pulled.
/// A digest-pinned image already present is content-addressed, so it is not pulled again.
pub async fn ensure_image(
    docker: &Docker,
    image: &str,
    progress: &Progress,
) -> Result<bool, ApplyError> {
    match docker.inspect_image(image).await {
        Ok(_) => return Ok(false),
        Err(e) if is_not_found(&e) => {}
        Err(e) => return Err(EngineError::api(format!("inspecting image {image}"))(e).into()),
    }
    progress.line(&format!("pulling {image}"));
    let started = Instant::now();
    let mut stream = docker.create_image(
        Some(CreateImageOptions {
            from_image: Some(image.to_string()),
            ..Default::default()
        }),
        None,
        None,
    );
    let mut last_report = Instant::now();
    while let Some(item) = stream.next().await {
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

/// Creates a bind source directory (and parents) with the declared mode and owner. An
/// existing directory gets the mode and owner applied too, so a fix in git fixes the host.
/// Never through a symlink (see [`crate::host::ensure_dir`]).
pub fn ensure_bind_dir(path: &str, create: &BindCreate) -> Result<(), StepError> {
    crate::host::ensure_dir(path, create.mode.as_deref(), create.owner.as_deref())
        .map_err(StepError::Host)
}

fn read_env(c: &DesiredContainer) -> Result<Vec<String>, ApplyError> {
    let mut env: Vec<(String, String)> = Vec::new();
    if let Some(f) = &c.spec.env_file {
        // Regular files only, size-capped, never through a link (see crate::host).
        let text = crate::host::read_env_file(&f.path).map_err(|source| ApplyError::Step {
            container: c.name.clone(),
            what: "reading env_file",
            source: StepError::Host(source),
        })?;
        env.extend(crate::host::parse_env_file(&text));
    }
    // Values in the stack file win over the env file, as in compose.
    env.retain(|(k, _)| !c.spec.env.contains_key(k));
    env.extend(c.spec.env.iter().map(|(k, v)| (k.clone(), v.clone())));
    Ok(env.into_iter().map(|(k, v)| format!("{k}={v}")).collect())
}

fn ns(ms: Option<u64>) -> Option<i64> {
    ms.map(|m| (m as i64).saturating_mul(1_000_000))
}

fn create_body(c: &DesiredContainer) -> Result<ContainerCreateBody, ApplyError> {
    let s = &c.spec;
    let mut port_bindings: HashMap<String, Option<Vec<PortBinding>>> = HashMap::new();
    let mut exposed = Vec::new();
    for p in &s.ports {
        let key = format!("{}/{}", p.container_port, p.protocol.as_str());
        exposed.push(key.clone());
        port_bindings
            .entry(key)
            .or_insert_with(|| Some(Vec::new()))
            .get_or_insert_with(Vec::new)
            .push(PortBinding {
                host_ip: (!p.host_ip.is_empty()).then(|| p.host_ip.clone()),
                host_port: Some(p.host_port.to_string()),
            });
    }
    let mounts = s
        .mounts
        .iter()
        .map(|m| match m {
            MountSpec::Bind {
                source,
                target,
                read_only,
            } => Mount {
                typ: Some(MountType::BIND),
                source: Some(source.clone()),
                target: Some(target.clone()),
                read_only: Some(*read_only),
                ..Default::default()
            },
            MountSpec::Volume {
                source,
                target,
                read_only,
            } => Mount {
                typ: Some(MountType::VOLUME),
                source: Some(source.clone()),
                target: Some(target.clone()),
                read_only: Some(*read_only),
                ..Default::default()
            },
            MountSpec::Tmpfs { target, size } => Mount {
                typ: Some(MountType::TMPFS),
                target: Some(target.clone()),
                tmpfs_options: size.map(|b| MountTmpfsOptions {
                    size_bytes: Some(b as i64),
                    ..Default::default()
                }),
                ..Default::default()
            },
        })
        .collect();
    let restart = match s.restart {
        crate::model::RestartPolicy::No => RestartPolicyNameEnum::NO,
        crate::model::RestartPolicy::Always => RestartPolicyNameEnum::ALWAYS,
        crate::model::RestartPolicy::OnFailure => RestartPolicyNameEnum::ON_FAILURE,
        crate::model::RestartPolicy::UnlessStopped => RestartPolicyNameEnum::UNLESS_STOPPED,
    };
    let first_net = s.networks.first();
    Ok(ContainerCreateBody {
        image: Some(s.image.clone()),
        cmd: s.command.clone(),
        entrypoint: s.entrypoint.clone(),
        env: Some(read_env(c)?),
        labels: Some(c.labels.clone().into_iter().collect()),
        user: s.user.clone(),
        working_dir: s.working_dir.clone(),
        stop_timeout: s.stop_grace_secs.map(|g| g as i64),
        exposed_ports: (!exposed.is_empty()).then_some(exposed),
        healthcheck: s.healthcheck.as_ref().map(|h| HealthConfig {
            test: Some(h.test.clone()),
            interval: ns(h.interval_ms),
            timeout: ns(h.timeout_ms),
            retries: h.retries.map(i64::from),
            start_period: ns(h.start_period_ms),
            start_interval: ns(h.start_interval_ms),
        }),
        host_config: Some(HostConfig {
            port_bindings: (!port_bindings.is_empty()).then_some(port_bindings),
            restart_policy: Some(RestartPolicy {
                name: Some(restart),
                maximum_retry_count: None,
            }),
            mounts: Some(mounts),
            network_mode: if s.host.network {
                Some("host".into())
            } else {
                first_net.cloned()
            },
            pid_mode: s.host.pid.then(|| "host".into()),
            privileged: s.host.privileged.then_some(true),
            cap_add: (!s.host.cap_add.is_empty()).then(|| s.host.cap_add.clone()),
            cap_drop: (!s.host.cap_drop.is_empty()).then(|| s.host.cap_drop.clone()),
            devices: (!s.host.devices.is_empty())
                .then(|| s.host.devices.iter().map(|d| device(d)).collect()),
            ..Default::default()
        }),
        networking_config: first_net
            .filter(|_| !s.host.network)
            .map(|n| NetworkingConfig {
                endpoints_config: Some(HashMap::from([(
                    n.clone(),
                    EndpointSettings {
                        aliases: Some(vec![c.alias.clone()]),
                        ..Default::default()
                    },
                )])),
            }),
        ..Default::default()
    })
}

pub(super) async fn create(docker: &Docker, c: &DesiredContainer) -> Result<(), ApplyError> {
    // The plan checked each bind source as resolved; a container may have planted a link in
    // a folder it mounts since. Refuse one now rather than let the Engine follow it.
    for m in &c.spec.mounts {
        if let crate::spec::MountSpec::Bind { source, .. } = m {
            crate::host::recheck_bind_source(source).map_err(|e| ApplyError::Step {
                container: c.name.clone(),
                what: "checking bind source",
                source: StepError::Host(e),
            })?;
        }
    }
    docker
        .create_container(
            Some(CreateContainerOptions {
                name: Some(c.name.clone()),
                ..Default::default()
            }),
            create_body(c)?,
        )
        .await
        .map_err(step(&c.name, "create"))?;
    // The Engine attaches one network at create (API < 1.44); the rest are connected here.
    for net in c.spec.networks.iter().skip(1) {
        docker
            .connect_network(
                net,
                NetworkConnectRequest {
                    container: c.name.clone(),
                    endpoint_config: Some(EndpointSettings {
                        aliases: Some(vec![c.alias.clone()]),
                        ..Default::default()
                    }),
                },
            )
            .await
            .map_err(step(&c.name, "connecting network"))?;
    }
    Ok(())
}

pub async fn start(docker: &Docker, name: &str) -> Result<(), ApplyError> {
    docker
        .start_container(name, None)
        .await
        .map_err(step(name, "start"))
}

pub async fn create_and_start(docker: &Docker, c: &DesiredContainer) -> Result<(), ApplyError> {
    create(docker, c).await?;
    start(docker, &c.name).await
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
    grace: Duration,
) -> Result<(), ApplyError> {
    let Some(id) = owned(docker, project, name).await? else {
        return Ok(());
    };
    let t = Some(grace.as_secs() as i32);
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
    grace: Duration,
) -> Result<(), ApplyError> {
    stop(docker, project, name, grace).await?;
    remove(docker, project, name).await
}

/// Renames `from` to `to` if `project` owns `from`.
async fn rename(docker: &Docker, project: &str, from: &str, to: &str) -> Result<(), ApplyError> {
    let Some(id) = owned(docker, project, from).await? else {
        return Err(ApplyError::Step {
            container: from.to_string(),
            what: "rename",
            source: StepError::Check("no such container".into()),
        });
    };
    docker
        .rename_container(
            &id,
            RenameContainerOptions {
                name: to.to_string(),
            },
        )
        .await
        .map_err(step(from, "rename"))
}

/// Replaces a container: the old one is stopped and set aside under another name, the new one
/// created and started and then `verify`d (ready, hooks passed); if any of that fails the new
/// one is removed and the old one put back and started again.
///
/// # Errors
/// [`ApplyError::NotOwned`] before anything is touched when the aside name is held by a
/// container this project does not own.
pub async fn replace(
    docker: &Docker,
    c: &DesiredContainer,
    verify: impl std::future::Future<Output = Result<(), ApplyError>>,
) -> Result<(), ApplyError> {
    let project = project_of(c);
    let aside = c.aside_name();
    // A leftover from an interrupted run is ours (same labels); clear it. Anything else
    // holding the name stops the recreate here, before the old container is touched.
    remove(docker, project, &aside).await?;
    let grace = Duration::from_secs(c.spec.stop_grace_secs.unwrap_or(10));
    stop(docker, project, &c.name, grace).await?;
    rename(docker, project, &c.name, &aside)
        .await
        .map_err(|e| match e {
            ApplyError::Step {
                container, source, ..
            } => ApplyError::Step {
                container,
                what: "rename old container",
                source,
            },
            other => other,
        })?;
    let created = create_and_start(docker, c).await;
    let result = match created {
        Ok(()) => verify.await,
        Err(e) => Err(e),
    };
    match result {
        Ok(()) => {
            let _ = remove(docker, project, &aside).await;
            Ok(())
        }
        Err(err)
            if matches!(
                err,
                ApplyError::Hook { .. } | ApplyError::Unhealthy { .. } | ApplyError::Smoke { .. }
            ) =>
        {
            let _ = remove(docker, project, &c.name).await;
            let restored = restore(docker, project, &aside, &c.name).await;
            Err(ApplyError::RolledBack {
                cause: Box::new(err),
                note: match restored {
                    Ok(()) => format!(
                        "the new {} was removed; the previous container was restored and started",
                        c.name
                    ),
                    Err(e) => format!(
                        "restoring the previous container also failed: {e} (it is kept as {aside} until the next apply)"
                    ),
                },
            })
        }
        Err(err) => {
            let _ = remove(docker, project, &c.name).await;
            let restored = restore(docker, project, &aside, &c.name).await;
            Err(ApplyError::Step {
                container: c.name.clone(),
                what: "recreate",
                source: StepError::Recreate {
                    cause: Box::new(err),
                    restored: match restored {
                        Ok(()) => "the previous container was restored and started".into(),
                        Err(e) => format!("restoring the previous container also failed: {e} (it is kept as {aside})"),
                    },
                },
            })
        }
    }
}

async fn restore(
    docker: &Docker,
    project: &str,
    aside: &str,
    name: &str,
) -> Result<(), ApplyError> {
    rename(docker, project, aside, name).await?;
    start(docker, name).await
}

/// Waits until the job `c` has exited; an exit code other than 0 is an error.
pub async fn wait_exit(
    docker: &Docker,
    c: &DesiredContainer,
    progress: &Progress,
) -> Result<(), ApplyError> {
    let started = Instant::now();
    let mut announced = Instant::now();
    loop {
        let info = docker
            .inspect_container(&c.name, None)
            .await
            .map_err(step(&c.name, "inspect"))?;
        let state = info.state.unwrap_or_default();
        if state.running != Some(true) && state.restarting != Some(true) {
            return match state.exit_code {
                Some(0) => {
                    progress.line(&format!(
                        "{}: job completed in {:.1}s",
                        c.name,
                        started.elapsed().as_secs_f64()
                    ));
                    Ok(())
                }
                code => Err(ApplyError::Step {
                    container: c.name.clone(),
                    what: "job",
                    source: StepError::Check(format!(
                        "exited with {}\n  hint: docker logs {} shows why; dependents were not started",
                        code.unwrap_or(-1),
                        c.name
                    )),
                }),
            };
        }
        if announced.elapsed() > Duration::from_secs(5) {
            announced = Instant::now();
            progress.line(&format!(
                "{}: job running ({:.0}s)",
                c.name,
                started.elapsed().as_secs_f64()
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until `c` runs, and is healthy if it has a healthcheck.
pub async fn wait_ready(
    docker: &Docker,
    c: &DesiredContainer,
    progress: &Progress,
) -> Result<(), ApplyError> {
    let started = Instant::now();
    let deadline = c
        .spec
        .healthcheck
        .as_ref()
        .map_or(Duration::from_secs(30), |h| h.deadline());
    let mut announced = Instant::now();
    loop {
        let info = docker
            .inspect_container(&c.name, None)
            .await
            .map_err(step(&c.name, "inspect"))?;
        let state = info.state.unwrap_or_default();
        let running = state.running.unwrap_or(false);
        if !running && !state.restarting.unwrap_or(false) {
            return Err(ApplyError::Unhealthy {
                container: c.name.clone(),
                message: format!(
                    "it is not running (exit code {})",
                    state.exit_code.unwrap_or_default()
                ),
            });
        }
        match state.health.as_ref().and_then(|h| h.status) {
            None | Some(HealthStatusEnum::NONE) | Some(HealthStatusEnum::EMPTY) if running => {
                return Ok(())
            }
            Some(HealthStatusEnum::HEALTHY) => {
                if c.spec.healthcheck.is_some() {
                    progress.line(&format!(
                        "{}: healthy after {:.1}s",
                        c.name,
                        started.elapsed().as_secs_f64()
                    ));
                }
                return Ok(());
            }
            Some(HealthStatusEnum::UNHEALTHY) => {
                let last = state
                    .health
                    .and_then(|h| h.log)
                    .and_then(|l| l.last().cloned())
                    .and_then(|r| r.output)
                    .unwrap_or_default();
                return Err(ApplyError::Unhealthy {
                    container: c.name.clone(),
                    message: format!("healthcheck failed: {}", last.trim()),
                });
            }
            _ => {}
        }
        if started.elapsed() > deadline {
            return Err(ApplyError::Unhealthy {
                container: c.name.clone(),
                message: format!("still not healthy after {:.0}s", deadline.as_secs_f64()),
            });
        }
        if announced.elapsed() > Duration::from_secs(2) {
            announced = Instant::now();
            progress.line(&format!(
                "{}: waiting for healthy ({:.0}s)",
                c.name,
                started.elapsed().as_secs_f64()
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `HOST[:CONTAINER[:PERMISSIONS]]` as the Engine's device mapping.
fn device(text: &str) -> bollard::models::DeviceMapping {
    let mut parts = text.splitn(3, ':');
    let host = parts.next().unwrap_or_default().to_string();
    let inside = parts.next().map_or_else(|| host.clone(), str::to_string);
    let perms = parts.next().unwrap_or("rwm").to_string();
    bollard::models::DeviceMapping {
        path_on_host: Some(host),
        path_in_container: Some(inside),
        cgroup_permissions: Some(perms),
    }
}
