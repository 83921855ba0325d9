//! Preflight: the runbooks' "stop if" checks, run before anything is touched. Every check runs
//! and every failure is reported together, so one run tells the whole story:
//! - every image a change needs is present locally or in its registry, by digest;
//! - bind sources exist (or are declared with `create`), and none is reached through a
//!   symlink (one planted since the plan checked the path);
//! - env files can be read;
//! - host ports are free, or held by the very container being replaced;
//! - the Docker data root has at least `preflight.min_free_disk` free.
//!
//! Edge module: asks the Engine and the host file system; changes nothing.

use std::collections::{BTreeSet, HashMap};

use bollard::query_parameters::ListContainersOptions;
use bollard::Docker;

use crate::model::{PortMapping, Protocol};
use crate::observe::auth::RegistryAuth;
use crate::spec::DesiredContainer;

/// What preflight needs besides the plan.
#[derive(Debug, Clone, Default)]
pub struct Checks {
    /// Env files that could not be read.
    pub env_problems: Vec<EnvProblem>,
    /// Least free bytes on the Docker data root; `None` skips the check.
    pub min_free_disk: Option<u64>,
    /// This host's registry logins, for the digest check and the pulls.
    pub registry_auth: crate::observe::auth::RegistryAuth,
}

/// An env file that cannot be read: its path (as the stack file writes it) and the text
/// `host::EnvFileError` gives (message and hint).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvProblem {
    pub path: String,
    pub text: String,
}

/// One failed check. Each says what, where, and a `hint:` line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    /// An env file a service names cannot be read (the text `host::EnvFileError` gives).
    #[error("{}", .0.text)]
    EnvFile(EnvProblem),
    #[error("{container}: bind source {path} does not exist\n  hint: create it, or add `create: {{mode: \"0755\"}}` to the mount so dockhand creates it")]
    BindSourceMissing { container: String, path: String },
    /// A bind source turned into (or now passes through) a link, or is no longer what the plan
    /// checked: the text of the host check, with its hint.
    #[error("{container}: bind source {reason}")]
    BindSourceUnsafe { container: String, reason: String },
    /// The registry wants a login that this host does not have, or refused the one it has.
    #[error("image {image}: unauthorized: {reason}\n  hint: {}", crate::observe::auth::login_hint(.image))]
    RegistryUnauthorized { image: String, reason: String },
    /// A login exists but cannot be used (the text of `observe::auth::AuthError`).
    #[error("image {image}: {reason}")]
    RegistryLogin { image: String, reason: String },
    #[error("the registry of {image} did not answer within {}s\n  hint: check that the registry is up and reachable from the Docker host; what runs keeps running", REGISTRY_TIMEOUT.as_secs())]
    RegistrySilent { image: String },
    /// `reason` is the Engine's answer (its message and HTTP status).
    #[error("image {image} is neither on this host nor available from its registry: {reason}\n  hint: check that this digest was pushed (`docker buildx imagetools inspect` or the registry UI shows it) and that the registry is reachable from the Docker host")]
    ImageUnavailable { image: String, reason: String },
    /// `holders` empty: a process of the host, not a container.
    #[error("{container}: host port {} is taken by {}\n  hint: free the port, or publish another one in the stack file", .port.host_side(), if .holders.is_empty() { "a process on the host (not a container)".to_string() } else { format!("container {}", .holders.join(", ")) })]
    PortTaken {
        container: String,
        port: PortMapping,
        holders: Vec<String>,
    },
    #[error("only {} free on the Docker data root {root}, below preflight.min_free_disk ({})\n  hint: free space (docker image prune, old backups), or lower preflight.min_free_disk in dockhand.yaml", human_bytes(*.free), human_bytes(*.floor))]
    LowDisk { root: String, free: u64, floor: u64 },
}

impl Problem {
    /// The containers of `changing` this problem concerns (a bind source, a port, an image),
    /// or `None` when it concerns the whole host (free disk): then nothing is applied.
    pub fn containers<'a>(
        &self,
        changing: &[&'a DesiredContainer],
    ) -> Option<Vec<&'a DesiredContainer>> {
        let named = |name: &str| {
            changing
                .iter()
                .filter(|c| c.name == name)
                .copied()
                .collect()
        };
        match self {
            Problem::LowDisk { .. } => None,
            // Every service naming the file, not only the one the error names.
            Problem::EnvFile(e) => Some(
                changing
                    .iter()
                    .filter(|c| c.spec.env_file.as_ref().is_some_and(|f| f.path == e.path))
                    .copied()
                    .collect(),
            ),
            Problem::BindSourceMissing { container, .. }
            | Problem::BindSourceUnsafe { container, .. }
            | Problem::PortTaken { container, .. } => Some(named(container)),
            Problem::RegistrySilent { image }
            | Problem::ImageUnavailable { image, .. }
            | Problem::RegistryUnauthorized { image, .. }
            | Problem::RegistryLogin { image, .. } => Some(
                changing
                    .iter()
                    .filter(|c| c.images().contains(&image.as_str()))
                    .copied()
                    .collect(),
            ),
        }
    }
}

/// The problems as `ApplyError::Preflight` lists them: one indented block each, its hint
/// under it.
pub fn list(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(|p| indent(&p.to_string()))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Runs every check; returns the problems, empty when all passed.
pub async fn run(docker: &Docker, changing: &[&DesiredContainer], checks: &Checks) -> Vec<Problem> {
    let mut problems: Vec<Problem> = checks
        .env_problems
        .iter()
        .map(|p| Problem::EnvFile(p.clone()))
        .collect();

    for c in changing {
        // Each host path was checked as resolved when the plan was made; one a container turned
        // into (or routed through) a link since is refused here, before anything is touched.
        let creates = c.bind_creates.iter().map(|(p, _)| p);
        for path in c.bind_required.iter().chain(creates) {
            if let Err(e) = crate::host::recheck_bind_source(path) {
                problems.push(Problem::BindSourceUnsafe {
                    container: c.name.clone(),
                    reason: e.to_string(),
                });
            }
        }
        for path in &c.bind_required {
            if !std::path::Path::new(path).exists() {
                problems.push(Problem::BindSourceMissing {
                    container: c.name.clone(),
                    path: path.clone(),
                });
            }
        }
    }

    // The Engine answers these independently: ask at once, so a drift correction is not held
    // up by the sum of their round trips.
    let images: BTreeSet<&str> = changing.iter().flat_map(|c| c.images()).collect();
    let image_checks = futures_util::future::join_all(
        images
            .into_iter()
            .map(|image| image_problem(docker, &checks.registry_auth, image)),
    );
    let disk = async {
        match checks.min_free_disk {
            Some(floor) => disk_problem(docker, floor).await,
            None => None,
        }
    };
    let (images, ports, disk) = tokio::join!(image_checks, port_problems(docker, changing), disk);
    problems.extend(images.into_iter().flatten());
    problems.extend(ports);
    problems.extend(disk);
    problems
}

/// `text` as one block of the list: its first line indented by two, the rest (the hint) by
/// four.
fn indent(text: &str) -> String {
    text.lines()
        .enumerate()
        .map(|(i, l)| {
            if i == 0 {
                format!("  {l}")
            } else {
                format!(
                    "  {}",
                    l.trim_start_matches(' ').replace("hint:", "  hint:")
                )
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

const REGISTRY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(40);

async fn image_problem(docker: &Docker, logins: &RegistryAuth, image: &str) -> Option<Problem> {
    if docker.inspect_image(image).await.is_ok() {
        return None;
    }
    let credentials = match logins.for_image(image).await {
        Ok(c) => c,
        Err(e) => {
            return Some(Problem::RegistryLogin {
                image: image.to_string(),
                reason: e.to_string(),
            })
        }
    };
    // The Engine gives up on a silent registry after ~25 s; this bounds it on Engines that wait
    // longer, so a hung registry never hangs a deploy.
    let asked = tokio::time::timeout(
        REGISTRY_TIMEOUT,
        docker.inspect_registry_image(image, credentials),
    )
    .await;
    let Ok(answer) = asked else {
        return Some(Problem::RegistrySilent {
            image: image.to_string(),
        });
    };
    match answer {
        Ok(_) => None,
        // A registry that wants a login answers so for any name, pushed or not: never report
        // that as a missing digest.
        Err(e) if crate::observe::auth::is_unauthorized(&e) => {
            Some(Problem::RegistryUnauthorized {
                image: image.to_string(),
                reason: crate::observe::short_error(&e),
            })
        }
        Err(e) => Some(Problem::ImageUnavailable {
            image: image.to_string(),
            reason: crate::observe::short_error(&e),
        }),
    }
}

/// Host ports of the containers about to be created, recreated or started.
async fn port_problems(docker: &Docker, changing: &[&DesiredContainer]) -> Vec<Problem> {
    let mut problems = Vec::new();
    for c in changing {
        for p in &c.spec.ports {
            if port_free(p) {
                continue;
            }
            let holders = publishers(docker, p.host_port).await;
            // The container being replaced holds the port until it is stopped: that is fine.
            if !holders.is_empty() && holders.iter().all(|h| h == &c.name || h == &c.aside_name()) {
                continue;
            }
            problems.push(Problem::PortTaken {
                container: c.name.clone(),
                port: p.clone(),
                holders,
            });
        }
    }
    problems
}

/// Whether dockhand itself can bind the port now (on the address the mapping names).
fn port_free(p: &PortMapping) -> bool {
    let ip = if p.host_ip.is_empty() {
        "0.0.0.0"
    } else {
        p.host_ip.as_str()
    };
    let addr = if ip.contains(':') {
        format!("[{ip}]:{}", p.host_port)
    } else {
        format!("{ip}:{}", p.host_port)
    };
    match p.protocol {
        Protocol::Udp => std::net::UdpSocket::bind(&addr).is_ok(),
        // std has no SCTP socket: a TCP bind on the port is the closest check there is.
        Protocol::Tcp | Protocol::Sctp => std::net::TcpListener::bind(&addr).is_ok(),
    }
}

/// Names of containers (any owner) that publish `port`.
async fn publishers(docker: &Docker, port: u16) -> Vec<String> {
    let filters = HashMap::from([("publish".to_string(), vec![port.to_string()])]);
    docker
        .list_containers(Some(ListContainersOptions {
            all: false,
            filters: Some(filters),
            ..Default::default()
        }))
        .await
        .unwrap_or_default()
        .into_iter()
        .filter_map(|c| c.names.and_then(|n| n.first().cloned()))
        .map(|n| n.trim_start_matches('/').to_string())
        .collect()
}

async fn disk_problem(docker: &Docker, floor: u64) -> Option<Problem> {
    let root = docker.info().await.ok()?.docker_root_dir?;
    // dockhand may run where the data root is not visible (a remote Engine): then say nothing
    // rather than guess.
    let stat = nix::sys::statvfs::statvfs(root.as_str()).ok()?;
    let free = stat.blocks_available().saturating_mul(stat.fragment_size());
    (free < floor).then_some(Problem::LowDisk { root, free, floor })
}

pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KB", "MB", "GB", "TB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1000.0 && u + 1 < UNITS.len() {
        v /= 1000.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}
