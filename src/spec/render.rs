//! [`render`]: the walk from the validated model to a [`Desired`], with the per-service
//! helpers it uses (healthchecks, probes, mounts, hooks, the maintenance container).

use std::collections::BTreeMap;

use crate::model::image::ImageRef;
use crate::model::{
    BindCreate, Bytes, Color, DesiredState, Health, HookStep, KeepIdle, Mount, Naming,
    RestartPolicy, Span, StackFile, Strategy,
};

use super::{
    labels, probe_command, traefik, with_drain, BlueGreen, ContainerSpec, Desired,
    DesiredContainer, DesiredNetwork, DesiredVolume, EnvFileRef, HealthSpec, HookPlace, HookSpec,
    HostAccess, HostFacts, LogSpec, MaintenanceSpec, MountSpec, ProbeSpec, Runtime, ServiceHooks,
    SmokeSpec, UlimitSpec, DEFAULT_DRAIN_MS, DEFAULT_HOOK_TIMEOUT_MS, DEFAULT_SMOKE_TIMEOUT_MS,
    DRAIN_DIR, DRAIN_FLAG,
};

fn ms(span: &Option<Span>) -> Option<u64> {
    span.map(Span::as_millis)
}

fn health_spec(h: &Health) -> Option<HealthSpec> {
    let test = match (&h.cmd, &h.shell) {
        // Docker's own spelling of "no healthcheck, not even the image's".
        _ if h.disable => vec!["NONE".to_string()],
        (Some(cmd), _) => std::iter::once("CMD".to_string())
            .chain(cmd.iter().cloned())
            .collect(),
        (None, Some(sh)) => vec!["CMD-SHELL".to_string(), sh.clone()],
        // An http-only health block is dockhand's own probe, not a Docker healthcheck.
        (None, None) => return None,
    };
    Some(HealthSpec {
        test,
        interval_ms: ms(&h.interval),
        timeout_ms: ms(&h.timeout),
        retries: h.retries,
        start_period_ms: ms(&h.start_period),
        start_interval_ms: ms(&h.start_interval),
    })
}

/// Renders the whole desired state. `commit` is recorded in labels, not in the spec hash, so
/// a commit that does not change a service does not recreate it.
pub fn render(desired: &DesiredState, facts: &HostFacts, commit: Option<&str>) -> Desired {
    let env_files = &facts.env_files;
    let mut out = Desired {
        project: desired.config.project.clone(),
        traefik_api: desired.config.traefik.api.clone(),
        marker_key: facts.marker_key.clone(),
        ..Desired::default()
    };
    let naming = Naming::of(&desired.config);
    let other = naming.other(&desired.config.project);
    for stack in &desired.stacks {
        let s = &stack.spec;
        out.stacks.push(s.stack.clone());
        for (key, n) in &s.networks {
            out.networks.push(DesiredNetwork {
                stack: s.stack.clone(),
                name: naming.object(&s.stack, key, n.name.as_deref(), n.external),
                driver: n.driver.clone(),
                internal: n.internal,
                external: n.external,
            });
        }
        for (key, v) in &s.volumes {
            let name = naming.object(&s.stack, key, v.name.as_deref(), v.external);
            let elsewhere = other.object(&s.stack, key, v.name.as_deref(), v.external);
            out.volumes.push(DesiredVolume {
                stack: s.stack.clone(),
                other_spelling: (elsewhere != name).then_some(elsewhere),
                name,
                driver: v.driver.clone(),
                external: v.external,
                shared: v.shared,
            });
        }
        for (svc_name, svc) in &s.services {
            let name = naming.container(&s.stack, svc_name);
            let image = ImageRef::parse(&svc.image)
                .map(|r| r.pull_ref())
                .unwrap_or_else(|_| svc.image.clone());
            let net_name = |key: &String| {
                s.networks
                    .get(key)
                    .map(|n| naming.object(&s.stack, key, n.name.as_deref(), n.external))
                    .unwrap_or_else(|| key.clone())
            };
            let mut bind_creates = Vec::new();
            let mut bind_required = Vec::new();
            let mounts: Vec<MountSpec> = svc
                .mounts
                .iter()
                .map(|m| mount_spec(naming, s, m, &mut bind_creates, &mut bind_required))
                .collect();
            let blue_green =
                svc.release
                    .as_ref()
                    .filter(|r| r.strategy == Strategy::BlueGreen)
                    .map(|r| BlueGreen {
                        active: r.active,
                        keep_idle: r.keep_idle.unwrap_or(KeepIdle::Stopped),
                        drain_ms: r.drain.map_or(DEFAULT_DRAIN_MS, Span::as_millis),
                        traefik_service: svc.route.as_ref().map(|_| {
                            traefik::router_name(&desired.config.project, &s.stack, svc_name)
                        }),
                        proxy_network: desired
                            .config
                            .traefik
                            .network
                            .clone()
                            .or_else(|| svc.networks.first().map(net_name)),
                        probe: svc
                            .health
                            .as_ref()
                            .and_then(health_spec)
                            .map(|h| probe_command(&h.test))
                            .unwrap_or_default(),
                    });
            let mut mounts = mounts;
            if blue_green.is_some() {
                mounts.push(MountSpec::Tmpfs {
                    target: DRAIN_DIR.into(),
                    size: Some(65_536),
                });
            }
            let mut spec_labels = svc.labels.clone();
            if let Some(route) = &svc.route {
                let router = traefik::router_name(&desired.config.project, &s.stack, svc_name);
                spec_labels.extend(traefik::labels(&desired.config.traefik, &router, route));
            }
            let mut ports: Vec<_> = svc
                .ports
                .iter()
                .flat_map(|p| p.mappings().iter().cloned())
                .collect();
            ports.sort_by_cached_key(ToString::to_string);
            let restart = if svc.job {
                RestartPolicy::No
            } else {
                svc.restart
                    .or(desired.config.defaults.restart)
                    .unwrap_or(RestartPolicy::UnlessStopped)
            };
            let hooks = svc.hooks.as_ref().map_or_else(ServiceHooks::default, |h| {
                let mut ctx = HookCtx {
                    naming,
                    stack: s,
                    image: &image,
                    mounts: &mounts,
                    creates: &mut bind_creates,
                    required: &mut bind_required,
                };
                ServiceHooks {
                    before: render_hooks("before", &h.before, true, &mut ctx),
                    after_start: render_hooks("after_start", &h.after_start, false, &mut ctx),
                    after_switch: render_hooks("after_switch", &h.after_switch, false, &mut ctx),
                }
            });
            let spec = ContainerSpec {
                image,
                command: svc.command.clone(),
                entrypoint: svc.entrypoint.clone(),
                env: svc
                    .env
                    .iter()
                    .map(|(k, v)| (k.clone(), v.render()))
                    .collect(),
                env_file: svc.env_file.as_ref().map(|path| EnvFileRef {
                    path: path.clone(),
                    sha256: env_files.get(path).cloned().unwrap_or_default(),
                }),
                ports,
                networks: svc.networks.iter().map(net_name).collect(),
                mounts,
                restart,
                healthcheck: svc.health.as_ref().and_then(health_spec).map(|h| {
                    if blue_green.is_some() {
                        with_drain(h)
                    } else {
                        h
                    }
                }),
                labels: spec_labels,
                user: svc.user.clone(),
                working_dir: svc.working_dir.clone(),
                stop_grace_secs: svc.stop_grace_period.map(Span::as_secs_ceil),
                stop_signal: svc.stop_signal.clone(),
                host: HostAccess::of(svc),
                runtime: runtime(svc),
            };
            let labels = labels::ownership(
                &desired.config.project,
                &s.stack,
                svc_name,
                &spec,
                commit,
                &facts.marker_key,
            );
            let probes = svc.health.as_ref().map_or_else(Vec::new, |h| {
                h.http
                    .iter()
                    .map(http_probe)
                    .chain(h.tcp.iter().map(|t| ProbeSpec::Tcp { port: t.port }))
                    .collect()
            });
            let release = svc.release.as_ref();
            let smoke = release.map_or_else(Vec::new, |r| {
                r.smoke
                    .iter()
                    .enumerate()
                    .filter_map(|(i, c)| {
                        let probe = match (&c.http, &c.tcp, &c.cmd) {
                            (Some(h), _, _) => http_probe(h),
                            (None, Some(t), _) => ProbeSpec::Tcp { port: t.port },
                            (None, None, Some(cmd)) => ProbeSpec::Exec {
                                command: cmd.clone(),
                            },
                            (None, None, None) => return None,
                        };
                        Some(SmokeSpec {
                            label: format!("smoke[{i}]"),
                            probe,
                            timeout_ms: ms(&c.timeout).unwrap_or(DEFAULT_SMOKE_TIMEOUT_MS),
                        })
                    })
                    .collect()
            });
            let maintenance = match (release.and_then(|r| r.maintenance.as_ref()), &svc.route) {
                (Some(m), Some(route)) => Some(maintenance_spec(
                    desired,
                    &s.stack,
                    svc_name,
                    &name,
                    m,
                    route,
                    &spec.networks,
                )),
                _ => None,
            };
            out.containers.push(DesiredContainer {
                stack: s.stack.clone(),
                service: svc_name.clone(),
                depends_on: ordering_deps(naming, &s.stack, svc),
                conditions: svc
                    .depends_on
                    .entries()
                    .into_iter()
                    .map(|(d, c)| (naming.container(&s.stack, d), c))
                    .collect(),
                job: svc.job,
                job_timeout: svc.timeout.map_or(crate::model::JOB_TIMEOUT, Span::get),
                hooks,
                bind_creates,
                bind_required,
                labels,
                alias: svc_name.clone(),
                image_ref: svc.image.clone(),
                blue_green,
                probes,
                smoke,
                maintenance,
                name,
                spec,
            });
        }
    }
    out
}

/// A service's runtime options in the Engine's units.
fn runtime(svc: &crate::model::Service) -> Runtime {
    Runtime {
        init: svc.init,
        read_only: svc.read_only,
        extra_hosts: svc.extra_hosts.clone(),
        logging: svc.logging.as_ref().map(|l| LogSpec {
            driver: l.driver.clone(),
            options: l
                .options
                .iter()
                .map(|(k, v)| (k.clone(), v.render()))
                .collect(),
        }),
        memory: svc.mem_limit.map(Bytes::as_i64),
        memory_reservation: svc.mem_reservation.map(Bytes::as_i64),
        // Rounded to whole nano-CPUs, as `docker run --cpus` does.
        nano_cpus: svc.cpus.map(|c| (c * 1e9).round() as i64),
        pids_limit: svc.pids_limit,
        shm_size: svc.shm_size.map(Bytes::as_i64),
        ulimits: svc
            .ulimits
            .iter()
            .map(|(name, u)| {
                let (soft, hard) = u.limits();
                UlimitSpec {
                    name: name.clone(),
                    soft,
                    hard,
                }
            })
            .collect(),
    }
}

/// What a service must come after: its `depends_on`, and the services its hooks exec in (a
/// backup hook in `db` needs `db` running before the release starts).
fn ordering_deps(naming: Naming, stack: &str, svc: &crate::model::Service) -> Vec<String> {
    let mut deps: Vec<String> = svc
        .depends_on
        .names()
        .map(|d| naming.container(stack, d))
        .collect();
    if let Some(h) = &svc.hooks {
        for step in h.before.iter().chain(&h.after_start).chain(&h.after_switch) {
            if let HookStep::Detailed(d) = step {
                if let Some(other) = &d.service {
                    let name = naming.container(stack, other);
                    if !deps.contains(&name) {
                        deps.push(name);
                    }
                }
            }
        }
    }
    deps
}

fn http_probe(h: &crate::model::HttpProbe) -> ProbeSpec {
    ProbeSpec::Http {
        port: h.port,
        path: h.path.clone(),
        status: h.status.codes(),
        body: h.body.clone(),
    }
}

/// The maintenance container of service `svc` (container base name `name`): the route's rule
/// at the top priority, its own Traefik service, owned by dockhand like the service itself.
fn maintenance_spec(
    desired: &DesiredState,
    stack: &str,
    svc: &str,
    name: &str,
    m: &crate::model::Maintenance,
    route: &crate::model::Route,
    networks: &[String],
) -> MaintenanceSpec {
    let mname = format!("{name}-maintenance");
    let router = traefik::maintenance_router_name(&desired.config.project, stack, svc);
    let mroute = crate::model::Route {
        port: m.port.unwrap_or(route.port),
        priority: Some(traefik::MAINTENANCE_PRIORITY),
        ..route.clone()
    };
    let proxy_network = desired
        .config
        .traefik
        .network
        .clone()
        .filter(|n| networks.contains(n))
        .or_else(|| networks.first().cloned());
    let spec = ContainerSpec {
        image: ImageRef::parse(&m.image).map_or_else(|_| m.image.clone(), |r| r.pull_ref()),
        command: m.command.clone(),
        entrypoint: None,
        env: BTreeMap::new(),
        env_file: None,
        ports: Vec::new(),
        networks: proxy_network.iter().cloned().collect(),
        mounts: vec![MountSpec::Tmpfs {
            target: DRAIN_DIR.into(),
            size: Some(65_536),
        }],
        // It stays up across a daemon restart until dockhand takes it down: a host that
        // reboots half way through a migration keeps showing the page.
        restart: RestartPolicy::UnlessStopped,
        healthcheck: Some(HealthSpec {
            test: vec!["CMD-SHELL".into(), format!("test ! -e {DRAIN_FLAG}")],
            interval_ms: Some(1_000),
            timeout_ms: Some(2_000),
            retries: Some(1),
            start_period_ms: None,
            start_interval_ms: None,
        }),
        labels: traefik::labels(&desired.config.traefik, &router, &mroute),
        user: None,
        working_dir: None,
        stop_grace_secs: Some(5),
        stop_signal: None,
        host: HostAccess::default(),
        runtime: Runtime::default(),
    };
    let mut all_labels = spec.labels.clone();
    all_labels.extend(labels::maintenance(&desired.config.project, stack, svc));
    let container = DesiredContainer {
        stack: stack.to_string(),
        service: svc.to_string(),
        name: mname.clone(),
        image_ref: m.image.clone(),
        depends_on: Vec::new(),
        conditions: BTreeMap::new(),
        job: false,
        job_timeout: crate::model::JOB_TIMEOUT,
        hooks: ServiceHooks::default(),
        bind_creates: Vec::new(),
        bind_required: Vec::new(),
        labels: all_labels,
        alias: format!("{svc}-maintenance"),
        blue_green: None,
        probes: Vec::new(),
        smoke: Vec::new(),
        maintenance: None,
        spec,
    };
    MaintenanceSpec {
        container: Box::new(container),
        traefik_service: router,
        proxy_network,
    }
}

/// One declared mount as Docker gets it; bind sources are noted as to-create or must-exist.
fn mount_spec(
    naming: Naming,
    stack: &StackFile,
    m: &Mount,
    creates: &mut Vec<(String, BindCreate)>,
    required: &mut Vec<String>,
) -> MountSpec {
    match m {
        Mount::Bind(b) => {
            match &b.create {
                Some(c) => creates.push((b.bind.clone(), c.clone())),
                None => required.push(b.bind.clone()),
            }
            MountSpec::Bind {
                source: b.bind.clone(),
                target: b.target.clone(),
                read_only: b.read_only,
            }
        }
        Mount::Volume(v) => MountSpec::Volume {
            source: stack
                .volumes
                .get(&v.volume)
                .map(|d| naming.object(&stack.stack, &v.volume, d.name.as_deref(), d.external))
                .unwrap_or_else(|| v.volume.clone()),
            target: v.target.clone(),
            read_only: v.read_only,
        },
        Mount::Tmpfs(t) => MountSpec::Tmpfs {
            target: t.tmpfs.clone(),
            size: t.size,
        },
    }
}

/// What rendering a service's hooks needs from the service around them.
struct HookCtx<'a> {
    naming: Naming<'a>,
    stack: &'a StackFile,
    image: &'a str,
    mounts: &'a [MountSpec],
    creates: &'a mut Vec<(String, BindCreate)>,
    required: &'a mut Vec<String>,
}

/// Resolves each step to where it runs. A bare command runs in the new container, except in
/// `before`, where there is none yet: it runs in a one-off container from the new image with
/// the service's mounts (the migration pattern).
fn render_hooks(
    phase: &str,
    steps: &[HookStep],
    before: bool,
    cx: &mut HookCtx<'_>,
) -> Vec<HookSpec> {
    steps
        .iter()
        .enumerate()
        .map(|(i, step)| {
            let label = format!("{phase}[{i}]");
            let one_off_new = || HookPlace::OneOff {
                image: cx.image.to_string(),
                mounts: cx.mounts.to_vec(),
            };
            match step {
                HookStep::Command(command) => HookSpec {
                    label,
                    command: command.clone(),
                    place: if before {
                        one_off_new()
                    } else {
                        HookPlace::NewContainer
                    },
                    timeout_ms: DEFAULT_HOOK_TIMEOUT_MS,
                    rotate: None,
                },
                HookStep::Detailed(d) => {
                    let place = if let Some(svc) = &d.service {
                        let base = cx.naming.container(&cx.stack.stack, svc);
                        let bg = cx.stack.services.get(svc).is_some_and(|o| {
                            o.release
                                .as_ref()
                                .is_some_and(|r| r.strategy == Strategy::BlueGreen)
                        });
                        HookPlace::Exec {
                            service: svc.clone(),
                            containers: if bg {
                                Color::ALL
                                    .iter()
                                    .map(|c| format!("{base}-{}", c.as_str()))
                                    .collect()
                            } else {
                                vec![base]
                            },
                        }
                    } else if d.image.is_some() || !d.mounts.is_empty() || before {
                        let image = d
                            .image
                            .as_deref()
                            .map(|i| {
                                ImageRef::parse(i).map_or_else(|_| i.to_string(), |r| r.pull_ref())
                            })
                            .unwrap_or_else(|| cx.image.to_string());
                        let mut mounts = if d.image.is_none() {
                            cx.mounts.to_vec()
                        } else {
                            Vec::new()
                        };
                        for m in &d.mounts {
                            mounts.push(mount_spec(
                                cx.naming,
                                cx.stack,
                                m,
                                cx.creates,
                                cx.required,
                            ));
                        }
                        HookPlace::OneOff { image, mounts }
                    } else {
                        HookPlace::NewContainer
                    };
                    HookSpec {
                        label,
                        command: d.command.clone(),
                        place,
                        timeout_ms: ms(&d.timeout).unwrap_or(DEFAULT_HOOK_TIMEOUT_MS),
                        rotate: d.rotate.as_ref().map(|r| (r.dir.clone(), r.keep)),
                    }
                }
            }
        })
        .collect()
}
