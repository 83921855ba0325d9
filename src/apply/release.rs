//! Blue/green releases behind Traefik: the one place where dockhand changes what serves.
//!
//! Order, and the promise each step keeps (the serving color is never stopped before its
//! replacement passed; any failure before the retire leaves it serving):
//! 0. with `release.maintenance` and steps that imply downtime (`before`/`after_start` hooks),
//!    the maintenance container takes the route first (see [`super::maintenance`]);
//! 1. `before` hooks, then bring up the target color (create, recreate the idle container, or
//!    start it) with the hold flag set, so Docker cannot call it healthy yet;
//! 2. **health gate**: dockhand's own probes (the health test by exec, `health.http`,
//!    `health.tcp`, every 100 ms) must pass before the deadline, else the target is stopped
//!    and the release fails with the old color untouched; then the `after_start` hooks, then
//!    the hold is lifted and Docker's healthcheck turns healthy;
//! 3. **routed**: Traefik must send traffic to the target (asked through its API when
//!    `traefik.api` is set, else `release.drain` is waited out);
//! 4. **smoke** checks against the target while both colors serve; a failure drains the target
//!    back out and stops it, and the old color, never touched, serves alone again;
//! 5. **retire** the old color: set its drain flag so its healthcheck fails and Traefik takes
//!    it out of the load balancer, wait until it is out, then stop it (and remove it with
//!    `keep_idle: removed`). Stopping a container Traefik still routes to would send requests
//!    to an address nobody answers, so the order matters;
//! 6. the maintenance container leaves (the same drain), then the `after_switch` hooks.
//!
//! All state lives in the containers (labels, running, health), so a release interrupted at any
//! step is planned again from what the Engine shows.

use std::time::{Duration, Instant};

use bollard::exec::StartExecOptions;
use bollard::models::{ExecConfig, HealthStatusEnum};
use bollard::Docker;

use super::container::{self, step};
use super::progress::Progress;
use super::{hooks, maintenance, probe};
use super::{ApplyError, StepError};
use crate::model::{Color, KeepIdle};
use crate::plan::ReleaseStep;
use crate::spec::{BlueGreen, DesiredContainer, ProbeSpec, DRAIN_FLAG, HOLD_FLAG};
use bollard::query_parameters::UploadToContainerOptions;

/// One release, as the plan decided it (`Action::Release`).
pub struct Release<'a> {
    pub base: &'a DesiredContainer,
    pub color: Color,
    pub step: ReleaseStep,
    pub retire: Option<&'a str>,
    /// Traefik's API (`http://host:port`), when configured.
    pub api: Option<&'a str>,
    /// The maintenance container takes the route while the release runs.
    pub maintenance: bool,
}

/// The release settings of a blue/green service; a plan that releases a service the desired
/// state does not release blue/green comes from another revision.
fn bg(c: &DesiredContainer) -> Result<&BlueGreen, ApplyError> {
    c.blue_green
        .as_ref()
        .ok_or_else(|| ApplyError::PlanMismatch {
            what: format!("`{}` is not a blue/green service", c.service),
        })
}

pub async fn release(
    docker: &Docker,
    r: Release<'_>,
    progress: &Progress,
) -> Result<(), ApplyError> {
    let b = bg(r.base)?;
    let maintenance = match (r.maintenance, &r.base.maintenance) {
        (false, _) => None,
        (true, Some(m)) => Some(m),
        (true, None) => {
            return Err(ApplyError::PlanMismatch {
                what: format!("`{}` has no maintenance container", r.base.service),
            })
        }
    };
    if let Some(m) = maintenance {
        maintenance::up(docker, m, r.api, b.drain_ms, progress).await?;
    }
    let result = swap(docker, &r, b, progress).await;
    match maintenance {
        // It leaves once the new color serves alone, or the old one serves again.
        Some(m) => maintenance::leave(docker, m, r.api, b.drain_ms, result, progress).await?,
        None => result?,
    }
    let name = format!("{}-{}", r.base.name, r.color.as_str());
    hooks::run_phase(docker, r.base, &name, &r.base.hooks.after_switch, progress).await
}

async fn swap(
    docker: &Docker,
    r: &Release<'_>,
    b: &BlueGreen,
    progress: &Progress,
) -> Result<(), ApplyError> {
    let target = r.base.colored(r.color);
    let name = target.name.as_str();
    let started = Instant::now();
    hooks::run_phase(docker, r.base, name, &r.base.hooks.before, progress).await?;
    match r.step {
        ReleaseStep::Create => {
            progress.line(&format!("{name}: creating (blue/green)"));
            container::create(docker, &target).await?;
        }
        ReleaseStep::Recreate => {
            progress.line(&format!("{name}: replacing the idle container"));
            container::stop_and_remove(
                docker,
                container::project_of(r.base),
                name,
                Some(r.base.stop_grace()),
            )
            .await?;
            container::create(docker, &target).await?;
        }
        ReleaseStep::Start => {
            progress.line(&format!("{name}: starting the idle color"));
        }
        ReleaseStep::Gate => {}
    }
    if r.step != ReleaseStep::Gate {
        put_hold(docker, name).await?;
        container::start(docker, name).await?;
    }
    let fail = |e: ApplyError| async move {
        // The old color was never touched: it keeps serving. The failed one is stopped (kept
        // for `docker logs`), so it gets no traffic.
        let _ = container::stop(
            docker,
            container::project_of(r.base),
            name,
            Some(r.base.stop_grace()),
        )
        .await;
        e
    };
    if let Err(e) = gate(docker, &target, b, progress).await {
        return Err(fail(ApplyError::GateFailed {
            container: name.to_string(),
            serving: r.retire.map(str::to_string),
            cause: Box::new(e),
        })
        .await);
    }
    let untouched = |what: &str| match r.retire {
        Some(s) => format!("{name} {what}; {s} was not touched and still serves"),
        None => format!("{name} {what}"),
    };
    if let Err(e) =
        hooks::run_phase(docker, r.base, name, &r.base.hooks.after_start, progress).await
    {
        return Err(ApplyError::RolledBack {
            cause: Box::new(fail(e).await),
            note: untouched("never received traffic and was stopped"),
        });
    }
    clear_hold(docker, name).await?;
    container::wait_ready(docker, &target, progress).await?;
    wait_routing(docker, &Routed::color(b, name, r.api), true, progress).await?;
    progress.line(&format!(
        "{name}: serving ({:.1}s after start of release)",
        started.elapsed().as_secs_f64()
    ));
    if let Err(e) = probe::smoke(docker, r.base, name, progress).await {
        // The old color still runs and still serves: take the new one back out of the proxy
        // first, so that no request is sent to a stopping container.
        let undo = drain_out(docker, r.base, name, r.api, progress).await;
        let _ = container::stop(
            docker,
            container::project_of(r.base),
            name,
            Some(r.base.stop_grace()),
        )
        .await;
        return Err(ApplyError::RolledBack {
            cause: Box::new(e),
            note: match undo {
                Ok(()) => untouched("was taken out of the proxy and stopped"),
                Err(u) => untouched(&format!("was stopped ({u})")),
            },
        });
    }
    if let Some(old) = r.retire {
        retire(docker, r.base, old, r.api, progress).await?;
    }
    Ok(())
}

/// Waits until a color of `base` serves (running and healthy): what a dependent of an
/// unchanged blue/green service needs before it starts.
pub async fn wait_serving(
    docker: &Docker,
    base: &DesiredContainer,
    progress: &Progress,
) -> Result<(), ApplyError> {
    for color in Color::ALL {
        let c = base.colored(color);
        let running = docker
            .inspect_container(&c.name, None)
            .await
            .ok()
            .and_then(|i| i.state)
            .and_then(|s| s.running);
        if running == Some(true) {
            return container::wait_ready(docker, &c, progress).await;
        }
    }
    Err(ApplyError::Unhealthy {
        container: base.name.clone(),
        message: "neither color is running".into(),
    })
}

/// The gate of a held color: Docker cannot call it healthy yet, so dockhand runs the health
/// test itself (exec, as the container's user) together with its own `http`/`tcp` probes, every
/// 100 ms: readiness is noticed well within 250 ms, whatever the healthcheck interval.
async fn gate(
    docker: &Docker,
    target: &DesiredContainer,
    b: &BlueGreen,
    progress: &Progress,
) -> Result<(), ApplyError> {
    let deadline = target
        .spec
        .healthcheck
        .as_ref()
        .map_or(Duration::from_secs(60), |h| h.deadline());
    let mut probes = Vec::with_capacity(target.probes.len() + 1);
    if !b.probe.is_empty() {
        probes.push(ProbeSpec::Exec {
            command: b.probe.clone(),
        });
    }
    probes.extend(target.probes.iter().cloned());
    probe::wait_pass(
        docker,
        &target.name,
        probe::network_of(target),
        &probes,
        deadline,
        progress,
    )
    .await
}

/// Puts the hold flag into the stopped container's root file system.
async fn put_hold(docker: &Docker, name: &str) -> Result<(), ApplyError> {
    let mut tar = tar::Builder::new(Vec::new());
    let content = b"held by dockhand until the after_start hooks pass\n";
    let mut header = tar::Header::new_gnu();
    header.set_size(content.len() as u64);
    header.set_mode(0o666);
    header.set_cksum();
    let flag = HOLD_FLAG.trim_start_matches('/');
    let io = |source| ApplyError::Step {
        container: name.to_string(),
        what: "preparing the hold flag",
        source: StepError::Io {
            what: format!("packing {HOLD_FLAG}"),
            source,
        },
    };
    tar.append_data(&mut header, flag, &content[..])
        .map_err(io)?;
    let bytes = tar.into_inner().map_err(io)?;
    docker
        .upload_to_container(
            name,
            Some(UploadToContainerOptions {
                path: "/".into(),
                ..Default::default()
            }),
            bollard::body_full(bytes::Bytes::from(bytes)),
        )
        .await
        .map_err(step(name, "setting the hold flag"))
}

async fn clear_hold(docker: &Docker, name: &str) -> Result<(), ApplyError> {
    let cmd = vec![
        "/bin/sh".to_string(),
        "-c".to_string(),
        format!(": > {HOLD_FLAG}"),
    ];
    // As root: the flag was put there by the Engine, owned by root, whatever the image's user.
    match hooks::exit_code(docker, name, &cmd, Some("0")).await {
        Some(0) => Ok(()),
        other => Err(ApplyError::Step {
            container: name.to_string(),
            what: "clearing the hold flag",
            source: StepError::Check(format!("`: > {HOLD_FLAG}` exited with {other:?}")),
        }),
    }
}

/// Takes `old` out of the proxy, then stops it (or removes it with `keep_idle: removed`).
pub async fn retire(
    docker: &Docker,
    base: &DesiredContainer,
    old: &str,
    api: Option<&str>,
    progress: &Progress,
) -> Result<(), ApplyError> {
    // Draining execs in the container: make sure it is this project's before touching it
    // (stop and remove check again, by id).
    container::owned(docker, container::project_of(base), old).await?;
    progress.line(&format!("{old}: draining"));
    drain_out(docker, base, old, api, progress).await?;
    progress.line(&format!("{old}: out of the proxy, stopping"));
    let grace = Some(base.stop_grace());
    if bg(base)?.keep_idle == KeepIdle::Removed {
        container::stop_and_remove(docker, container::project_of(base), old, grace).await?;
        progress.line(&format!("{old}: retired and removed"));
    } else {
        container::stop(docker, container::project_of(base), old, grace).await?;
        progress.line(&format!(
            "{old}: retired (stopped, kept for instant rollback)"
        ));
    }
    Ok(())
}

/// Takes `name` out of the proxy: sets its drain flag, waits until Docker calls it unhealthy
/// and Traefik no longer lists it (or, without the flag, waits `drain`).
async fn drain_out(
    docker: &Docker,
    base: &DesiredContainer,
    name: &str,
    api: Option<&str>,
    progress: &Progress,
) -> Result<(), ApplyError> {
    let b = bg(base)?;
    let deadline = base
        .spec
        .healthcheck
        .as_ref()
        .map_or(Duration::from_secs(30), |h| h.deadline());
    drain_container(docker, &Routed::color(b, name, api), deadline, progress).await
}

/// A container Traefik routes to (a color, a maintenance container), and how to ask Traefik
/// about it.
pub(super) struct Routed<'a> {
    pub name: &'a str,
    /// Traefik's service the container is a server of.
    pub service: Option<&'a str>,
    /// The network Traefik reaches it on.
    pub network: Option<&'a str>,
    pub api: Option<&'a str>,
    /// What to wait instead when Traefik cannot be asked.
    pub drain_ms: u64,
}

impl<'a> Routed<'a> {
    fn color(b: &'a BlueGreen, name: &'a str, api: Option<&'a str>) -> Routed<'a> {
        Routed {
            name,
            service: b.traefik_service.as_deref(),
            network: b.proxy_network.as_deref(),
            api,
            drain_ms: b.drain_ms,
        }
    }
}

/// The drain of any container dockhand routes: its healthcheck fails on the flag, so Traefik
/// drops it.
pub(super) async fn drain_container(
    docker: &Docker,
    r: &Routed<'_>,
    deadline: Duration,
    progress: &Progress,
) -> Result<(), ApplyError> {
    let (name, drain_ms) = (r.name, r.drain_ms);
    match set_drain_flag(docker, name).await {
        Ok(()) => {
            wait_unhealthy(docker, name, deadline).await?;
            wait_routing(docker, r, false, progress).await
        }
        Err(why) => {
            // Without the flag Traefik learns of the stop only from the Engine's event; give it
            // the drain time to move new requests away first.
            progress.line(&format!(
                "{name}: cannot set the drain flag ({why}); waiting {drain_ms} ms before stopping"
            ));
            tokio::time::sleep(Duration::from_millis(drain_ms)).await;
            Ok(())
        }
    }
}

/// Creates the drain flag in `name`'s tmpfs, with `touch` or, failing that, the shell.
async fn set_drain_flag(docker: &Docker, name: &str) -> Result<(), String> {
    let mut last = String::new();
    for cmd in [
        vec!["touch", DRAIN_FLAG],
        vec!["/bin/sh", "-c", &format!(": > {DRAIN_FLAG}")],
    ] {
        let exec = docker
            .create_exec(
                name,
                ExecConfig {
                    cmd: Some(cmd.iter().map(|s| s.to_string()).collect()),
                    attach_stdout: Some(false),
                    attach_stderr: Some(false),
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| e.to_string())?;
        if let Err(e) = docker
            .start_exec(
                &exec.id,
                Some(StartExecOptions {
                    detach: true,
                    ..Default::default()
                }),
            )
            .await
        {
            last = e.to_string();
            continue;
        }
        for _ in 0..50 {
            let info = docker
                .inspect_exec(&exec.id)
                .await
                .map_err(|e| e.to_string())?;
            if info.running != Some(true) {
                if info.exit_code == Some(0) {
                    return Ok(());
                }
                last = format!("`{}` exited with {:?}", cmd.join(" "), info.exit_code);
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    Err(last)
}

/// Waits until Docker no longer calls `name` healthy (its healthcheck saw the drain flag).
async fn wait_unhealthy(docker: &Docker, name: &str, deadline: Duration) -> Result<(), ApplyError> {
    let started = Instant::now();
    while started.elapsed() < deadline {
        let info = docker
            .inspect_container(name, None)
            .await
            .map_err(step(name, "inspect"))?;
        let state = info.state.unwrap_or_default();
        let health = state.health.and_then(|h| h.status);
        if state.running != Some(true) || health != Some(HealthStatusEnum::HEALTHY) {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(ApplyError::Step {
        container: name.to_string(),
        what: "draining",
        source: StepError::Check(format!(
            "still healthy {:.0}s after its drain flag was set; it was not stopped",
            deadline.as_secs_f64()
        )),
    })
}

/// Waits until Traefik routes to `r` (`present`) or no longer does. With no API to ask,
/// waits `drain`.
pub(super) async fn wait_routing(
    docker: &Docker,
    r: &Routed<'_>,
    present: bool,
    progress: &Progress,
) -> Result<(), ApplyError> {
    let (name, drain_ms) = (r.name, r.drain_ms);
    let (Some(api), Some(service)) = (r.api, r.service) else {
        tokio::time::sleep(Duration::from_millis(drain_ms)).await;
        return Ok(());
    };
    let ip = probe::address(docker, name, r.network).await?;
    let path = format!("/api/http/services/{service}@docker");
    let deadline = Duration::from_millis(drain_ms.max(2_000) * 5);
    let host = api
        .strip_prefix("http://")
        .unwrap_or(api)
        .trim_end_matches('/');
    let started = Instant::now();
    let mut announced = started;
    loop {
        let answer = probe::http_get(host, &path, Duration::from_secs(5), 4 * 1024 * 1024).await;
        let routed = match answer {
            Ok((200, body)) => server_up(&body, &ip),
            Ok((404, _)) => false,
            Ok((status, _)) => {
                return Err(ApplyError::Step {
                    container: name.to_string(),
                    what: "asking Traefik",
                    source: StepError::Check(format!("GET {api}{path} answered {status}")),
                })
            }
            Err(e) => {
                return Err(ApplyError::Step {
                    container: name.to_string(),
                    what: "asking Traefik",
                    source: StepError::Check(format!(
                        "{e} (traefik.api is {api}; is Traefik's API enabled there?)"
                    )),
                })
            }
        };
        if routed == present {
            return Ok(());
        }
        if started.elapsed() > deadline {
            return Err(ApplyError::Step {
                container: name.to_string(),
                what: if present {
                    "waiting for Traefik to route to it"
                } else {
                    "waiting for Traefik to stop routing to it"
                },
                source: StepError::Check(format!(
                    "Traefik's service {service} still {} {ip} after {:.0}s",
                    if present { "lacks" } else { "lists" },
                    deadline.as_secs_f64()
                )),
            });
        }
        if announced.elapsed() > Duration::from_secs(2) {
            announced = Instant::now();
            progress.line(&format!("{name}: waiting for Traefik"));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Whether Traefik's service document lists a server at `ip` as UP.
fn server_up(body: &str, ip: &str) -> bool {
    let Ok(doc) = serde_json::from_str::<serde_json::Value>(body) else {
        return false;
    };
    doc.get("serverStatus")
        .and_then(|s| s.as_object())
        .is_some_and(|m| {
            m.iter().any(|(url, status)| {
                status == "UP"
                    && url
                        .strip_prefix("http://")
                        .is_some_and(|rest| rest.starts_with(&format!("{ip}:")))
            })
        })
}

#[cfg(test)]
mod tests {
    use super::server_up;

    #[test]
    fn server_up_matches_the_ip_exactly() {
        let body =
            r#"{"serverStatus":{"http://10.0.0.12:8080":"UP","http://10.0.0.3:8080":"DOWN"}}"#;
        assert!(server_up(body, "10.0.0.12"));
        assert!(!server_up(body, "10.0.0.1"));
        assert!(!server_up(body, "10.0.0.3"));
        assert!(!server_up("not json", "10.0.0.12"));
    }
}
