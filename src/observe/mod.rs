//! Reading the Docker Engine: the managed containers, networks and volumes, and any foreign
//! container squatting on a name dockhand wants.
//!
//! Edge module (bollard). One label-filtered container list decides "nothing changed"; the
//! network and volume lists run concurrently with it. A second container list, filtered by
//! name, happens only when a desired container is missing, to find name clashes.

use std::collections::{BTreeMap, HashMap};

use bollard::query_parameters::{ListContainersOptions, ListNetworksOptions, ListVolumesOptions};
use bollard::Docker;

pub mod auth;
pub mod others;
pub mod registry;

use crate::model::actual::{Actual, ActualContainer, ActualObject, Attached, Inspected, RunState};
use crate::spec::labels;
use crate::spec::MarkerKey;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("cannot reach the Docker Engine ({host}): {source}\n  hint: is dockerd running and is its socket readable by this user? Set DOCKER_HOST to point elsewhere")]
    Unreachable {
        host: String,
        #[source]
        source: bollard::errors::Error,
    },
    #[error("Docker Engine error while {what}: {source}")]
    Api {
        what: String,
        #[source]
        source: bollard::errors::Error,
    },
}

/// The Engine's answer as one short line: its message and HTTP status.
pub fn short_error(e: &bollard::errors::Error) -> String {
    match e {
        bollard::errors::Error::DockerResponseServerError {
            status_code,
            message,
        } => format!("{message} ({status_code})"),
        other => other.to_string(),
    }
}

impl EngineError {
    pub fn api(what: impl Into<String>) -> impl FnOnce(bollard::errors::Error) -> EngineError {
        let what = what.into();
        move |source| EngineError::Api { what, source }
    }
}

/// Whether `e` means the Engine itself did not answer (its socket refused or dropped the
/// connection, or the call timed out), as opposed to the Engine answering with an error.
fn engine_gone(e: &bollard::errors::Error) -> bool {
    use bollard::errors::Error as E;
    matches!(
        e,
        E::HyperLegacyError { .. }
            | E::IOError { .. }
            | E::HyperResponseError { .. }
            | E::RequestTimeoutError
            | E::SocketNotFoundError(_)
    )
}

/// `e` as a reader should see it: a lost connection says which Engine went away and what
/// that usually means, instead of the HTTP client's wording alone.
pub fn describe(e: &bollard::errors::Error) -> String {
    if engine_gone(e) {
        format!(
            "the Docker Engine ({}) stopped answering, was it restarted? ({e})",
            host_description()
        )
    } else {
        e.to_string()
    }
}

fn host_description() -> String {
    std::env::var("DOCKER_HOST").unwrap_or_else(|_| "unix:///var/run/docker.sock".into())
}

/// Connects to the Engine named by `DOCKER_HOST` (default: the local socket) and agrees on an
/// API version with it, so that old (20.10) and new engines both work.
pub async fn connect() -> Result<Docker, EngineError> {
    let host = host_description();
    let docker = Docker::connect_with_defaults().map_err(|source| EngineError::Unreachable {
        host: host.clone(),
        source,
    })?;
    docker
        .negotiate_version()
        .await
        .map_err(|source| EngineError::Unreachable { host, source })
}

fn filter(key: &str, values: Vec<String>) -> Option<HashMap<String, Vec<String>>> {
    Some(HashMap::from([(key.to_string(), values)]))
}

fn to_container(c: bollard::models::ContainerSummary) -> ActualContainer {
    let name = c
        .names
        .unwrap_or_default()
        .into_iter()
        .next()
        .map(|n| n.trim_start_matches('/').to_string())
        .unwrap_or_default();
    ActualContainer {
        id: c.id.unwrap_or_default(),
        name,
        state: RunState::parse(&c.state.map(|s| s.to_string()).unwrap_or_default()),
        status: c.status.unwrap_or_default(),
        image: c.image.unwrap_or_default(),
        labels: c.labels.unwrap_or_default().into_iter().collect(),
        attached: Attached {
            networks: c
                .network_settings
                .and_then(|n| n.networks)
                .map(|n| n.into_keys().collect())
                .unwrap_or_default(),
            volumes: c
                .mounts
                .unwrap_or_default()
                .into_iter()
                .filter(|m| m.typ.as_deref() == Some("volume"))
                .filter_map(|m| m.name)
                .collect(),
        },
        inspected: None,
    }
}

/// How many inspects the full observe runs at once: enough to hide the Engine's latency,
/// few enough not to crowd out the agent's other calls.
const INSPECT_CONCURRENCY: usize = 8;

/// What the list call cannot show of each container in `managed` (see [`Inspected`]),
/// inspected concurrently (bounded). A container removed since the list stays without it.
async fn inspect_all(
    docker: &Docker,
    managed: &mut [ActualContainer],
    key: &MarkerKey,
) -> Result<(), EngineError> {
    use futures_util::{StreamExt, TryStreamExt};
    let found: Vec<Option<Inspected>> =
        futures_util::stream::iter(managed.iter().map(|c| inspect(docker, &c.id, key)))
            .buffered(INSPECT_CONCURRENCY)
            .try_collect()
            .await?;
    for (c, i) in managed.iter_mut().zip(found) {
        c.inspected = i;
    }
    Ok(())
}

async fn inspect(
    docker: &Docker,
    id: &str,
    key: &MarkerKey,
) -> Result<Option<Inspected>, EngineError> {
    let info = match docker.inspect_container(id, None).await {
        Ok(info) => info,
        Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 404, ..
        }) => return Ok(None),
        Err(e) => return Err(EngineError::api(format!("inspecting container {id}"))(e)),
    };
    let host = info.host_config.unwrap_or_default();
    let restart = host
        .restart_policy
        .and_then(|r| r.name)
        .map(|n| n.to_string())
        .unwrap_or_default();
    let mut limits: Vec<(String, i64)> = [
        ("blkio_weight", host.blkio_weight.map(i64::from)),
        ("cpu_period", host.cpu_period),
        ("cpu_quota", host.cpu_quota),
        ("cpu_shares", host.cpu_shares),
        ("memory", host.memory),
        ("memory_reservation", host.memory_reservation),
        ("memory_swap", host.memory_swap),
        ("nano_cpus", host.nano_cpus),
        ("pids_limit", host.pids_limit),
    ]
    .into_iter()
    // Unset reads as 0 or null; Docker writes -1 for "unlimited" swap and pids.
    .filter_map(|(k, v)| v.filter(|v| *v > 0).map(|v| (k.to_string(), v)))
    .collect();
    if let Some(cpus) = host.cpuset_cpus.filter(|c| !c.is_empty()) {
        limits.push(("cpuset_cpus".into(), cpus.split(',').count() as i64));
    }
    let networks = info
        .network_settings
        .and_then(|n| n.networks)
        .unwrap_or_default()
        .into_iter()
        .map(|(name, e)| (name, e.aliases.unwrap_or_default()))
        .collect();
    let env = info
        .config
        .and_then(|c| c.env)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|kv| {
            let (k, v) = kv.split_once('=')?;
            // The same form as the spec's redacted env, so the planner compares marks only.
            Some((k.to_string(), crate::spec::env_marker(key, v)))
        })
        .collect();
    Ok(Some(Inspected {
        restart,
        networks,
        limits,
        env,
    }))
}

/// The owning stack, when the object belongs to `project` (another project's objects are
/// as foreign to this one as hand-made ones).
fn owner(project: &str, labels_map: Option<&HashMap<String, String>>) -> Option<String> {
    let l = labels_map?;
    owned_by(project, |k| l.get(k).map(String::as_str))
        .then(|| l.get(labels::STACK).cloned().unwrap_or_default())
}

/// The project of a managed object that is not `project`'s.
fn other_project(project: &str, labels_map: Option<&HashMap<String, String>>) -> Option<String> {
    let l = labels_map?;
    (l.get(labels::MANAGED).map(String::as_str) == Some("true"))
        .then(|| l.get(labels::PROJECT).cloned())
        .flatten()
        .filter(|p| p != project)
}

fn owned_by<'a>(project: &str, get: impl Fn(&str) -> Option<&'a str>) -> bool {
    get(labels::MANAGED) == Some("true") && get(labels::PROJECT) == Some(project)
}

/// This project's containers alone: one list call, what a no-op pass of the agent needs (see
/// [`crate::plan::infer`]).
pub async fn list_managed(
    docker: &Docker,
    project: &str,
) -> Result<Vec<ActualContainer>, EngineError> {
    let managed = docker
        .list_containers(Some(ListContainersOptions {
            all: true,
            filters: filter("label", labels::project_filters(project)),
            ..Default::default()
        }))
        .await
        .map_err(EngineError::api("listing containers"))?;
    Ok(managed.into_iter().map(to_container).collect())
}

/// Observes everything a plan needs. `wanted` are the container names the desired state uses;
/// each of the project's containers is inspected too (see [`Inspected`]), its env values
/// marked with `key`.
pub async fn observe(
    docker: &Docker,
    project: &str,
    wanted: &[String],
    key: &MarkerKey,
) -> Result<Actual, EngineError> {
    let networks = docker.list_networks(Some(ListNetworksOptions::default()));
    let volumes = docker.list_volumes(Some(ListVolumesOptions::default()));
    // Every project's managed containers in the one list call a pass already made: ours are
    // planned for, the others' Traefik rules tell which hosts they route.
    let all_managed = async {
        docker
            .list_containers(Some(ListContainersOptions {
                all: true,
                filters: filter("label", vec![format!("{}=true", labels::MANAGED)]),
                ..Default::default()
            }))
            .await
            .map(|cs| cs.into_iter().map(to_container).collect::<Vec<_>>())
            .map_err(EngineError::api("listing containers"))
    };
    let (all_managed, networks, volumes) = tokio::try_join!(
        all_managed,
        async { networks.await.map_err(EngineError::api("listing networks")) },
        async { volumes.await.map_err(EngineError::api("listing volumes")) },
    )?;

    let other_routes = others::routes(project, &all_managed);
    let mut managed: Vec<ActualContainer> = all_managed
        .into_iter()
        .filter(|c| owned_by(project, |k| c.label(k)))
        .collect();
    inspect_all(docker, &mut managed, key).await?;
    let missing: Vec<String> = wanted
        .iter()
        .filter(|w| !managed.iter().any(|m| &m.name == *w))
        .cloned()
        .collect();
    let mut foreign = Vec::new();
    if !missing.is_empty() {
        // Docker's name filter is a regex; anchor it so `web` does not match `web2`.
        let patterns = missing
            .iter()
            .map(|n| format!("^/{}$", regex_escape(n)))
            .collect();
        let found = docker
            .list_containers(Some(ListContainersOptions {
                all: true,
                filters: filter("name", patterns),
                ..Default::default()
            }))
            .await
            .map_err(EngineError::api("looking up container names"))?;
        foreign = found
            .into_iter()
            .map(to_container)
            .filter(|c| missing.contains(&c.name) && !owned_by(project, |k| c.label(k)))
            .collect();
    }

    let networks = networks
        .into_iter()
        .map(|n| ActualObject {
            owner_stack: owner(project, n.labels.as_ref()),
            other_project: other_project(project, n.labels.as_ref()),
            name: n.name.unwrap_or_default(),
        })
        .collect();
    let volumes = volumes
        .volumes
        .unwrap_or_default()
        .into_iter()
        .map(|v| ActualObject {
            owner_stack: owner(project, Some(&v.labels)),
            other_project: other_project(project, Some(&v.labels)),
            name: v.name,
        })
        .collect();
    Ok(Actual {
        managed,
        foreign,
        networks,
        volumes,
        other_routes,
        network_users: BTreeMap::new(),
    })
}

/// For each of `networks` (owned networks a plan would remove), the containers attached to it
/// that `actual` does not hold as this project's, by name; networks with none are left out.
/// One inspect per network, so callers ask only for the few a plan would remove.
///
/// # Errors
/// [`EngineError`] when an inspect fails for another reason than the network being gone.
pub async fn network_users(
    docker: &Docker,
    actual: &Actual,
    networks: &[String],
) -> Result<BTreeMap<String, Vec<String>>, EngineError> {
    let ours: std::collections::HashSet<&str> =
        actual.managed.iter().map(|c| c.id.as_str()).collect();
    let mut out = BTreeMap::new();
    for name in networks {
        let inspected = match docker.inspect_network(name, None).await {
            Ok(n) => n,
            // Removed since the list: nothing holds it.
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => continue,
            Err(e) => return Err(EngineError::api(format!("inspecting network {name}"))(e)),
        };
        let mut users: Vec<String> = inspected
            .containers
            .unwrap_or_default()
            .into_iter()
            .filter(|(id, _)| !ours.contains(id.as_str()))
            .map(|(id, ep)| ep.name.unwrap_or(id))
            .collect();
        if !users.is_empty() {
            users.sort();
            out.insert(name.clone(), users);
        }
    }
    Ok(out)
}

fn regex_escape(name: &str) -> String {
    name.chars()
        .flat_map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                vec![c]
            } else {
                vec!['\\', c]
            }
        })
        .collect()
}
