//! Creating and starting containers: the Engine's create body built from a desired container.

use std::collections::HashMap;

use bollard::models::{
    ContainerCreateBody, EndpointSettings, HealthConfig, HostConfig, HostConfigLogConfig, Mount,
    MountTmpfsOptions, MountType, NetworkConnectRequest, NetworkingConfig, PortBinding,
    ResourcesUlimits, RestartPolicy, RestartPolicyNameEnum,
};
use bollard::query_parameters::CreateContainerOptions;
use bollard::Docker;

use super::step;
use crate::apply::{ApplyError, StepError};
use crate::spec::{DesiredContainer, MountSpec};

fn read_env(c: &DesiredContainer) -> Result<Vec<String>, ApplyError> {
    let mut env: Vec<(String, String)> = Vec::new();
    if let Some(f) = &c.spec.env_file {
        // Regular files only, size-capped, never through a link (see crate::host).
        let pairs = crate::host::read_env_pairs(&f.path).map_err(|source| ApplyError::Step {
            container: c.name.clone(),
            what: "reading env_file",
            source: StepError::Host(source),
        })?;
        env.extend(pairs);
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
    let r = &s.runtime;
    Ok(ContainerCreateBody {
        image: Some(s.image.clone()),
        cmd: s.command.clone(),
        entrypoint: s.entrypoint.clone(),
        env: Some(read_env(c)?),
        labels: Some(c.labels.clone().into_iter().collect()),
        user: s.user.clone(),
        working_dir: s.working_dir.clone(),
        stop_timeout: s.stop_grace_secs.map(|g| g as i64),
        stop_signal: s.stop_signal.clone(),
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
            security_opt: (!s.host.security_opt.is_empty()).then(|| s.host.security_opt.clone()),
            sysctls: (!s.host.sysctls.is_empty())
                .then(|| s.host.sysctls.clone().into_iter().collect()),
            init: r.init.then_some(true),
            readonly_rootfs: r.read_only.then_some(true),
            extra_hosts: (!r.extra_hosts.is_empty()).then(|| r.extra_hosts.clone()),
            log_config: r.logging.as_ref().map(|l| HostConfigLogConfig {
                typ: Some(l.driver.clone()),
                config: Some(l.options.clone().into_iter().collect()),
            }),
            memory: r.memory,
            memory_reservation: r.memory_reservation,
            nano_cpus: r.nano_cpus,
            pids_limit: r.pids_limit,
            shm_size: r.shm_size,
            ulimits: (!r.ulimits.is_empty()).then(|| {
                r.ulimits
                    .iter()
                    .map(|u| ResourcesUlimits {
                        name: Some(u.name.clone()),
                        soft: Some(u.soft),
                        hard: Some(u.hard),
                    })
                    .collect()
            }),
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

pub(in crate::apply) async fn create(
    docker: &Docker,
    c: &DesiredContainer,
) -> Result<(), ApplyError> {
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
