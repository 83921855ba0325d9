//! `dockhand.yaml`: repository settings ([`RepoConfig`]), Traefik settings, defaults and the
//! host policy with its [`Power`]s.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{checked, Preflight, RestartPolicy, NAME_PATTERN};

/// `dockhand.yaml`: settings that apply to every stack in the repository.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(
    title = "dockhand.yaml",
    description = "Repository settings for dockhand (format v1)."
)]
pub struct RepoConfig {
    /// Format version; must be 1.
    #[schemars(range(min = 1, max = 1))]
    #[serde(deserialize_with = "checked::version")]
    pub version: u32,
    /// Scope of ownership on the host: dockhand only plans for, and only ever removes, objects
    /// labelled with this project. Two repositories deploying to one host need two projects.
    #[serde(default = "default_project", deserialize_with = "checked::name")]
    #[schemars(regex(pattern = NAME_PATTERN))]
    pub project: String,
    /// How Docker names are spelled: `stack` (default) gives `<stack>-<service>` and
    /// `<stack>_<key>`, as every earlier version did; `project` gives
    /// `<project>-<stack>-<service>` and `<project>_<stack>_<key>`, so that two projects with
    /// the same stack and service names can share a host. Changing it on a deployed project
    /// recreates its containers, and the plan refuses while an owned volume holds its data
    /// under the other spelling.
    #[serde(default)]
    pub names: Names,
    /// How `route:` blocks are rendered as Traefik labels.
    #[serde(default)]
    pub traefik: TraefikConfig,
    /// Defaults applied to every service that does not set the field itself.
    #[serde(default)]
    pub defaults: Defaults,
    /// Rules every commit must satisfy before it is applied.
    #[serde(default)]
    pub policy: Policy,
    /// Host checks run before anything is touched.
    #[serde(default)]
    pub preflight: Preflight,
}

/// How a project spells the Docker names it derives (`names:` in dockhand.yaml).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Names {
    /// `<stack>-<service>`, `<stack>_<key>`: names without the project (every earlier
    /// version's spelling).
    #[default]
    Stack,
    /// `<project>-<stack>-<service>`, `<project>_<stack>_<key>`: the project is a namespace.
    Project,
}

/// Traefik settings shared by all routed services.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TraefikConfig {
    /// Label dialect: `v2`/`v3` (routers and services) or `v1` (Traefik 1.7 frontends).
    #[serde(default)]
    pub dialect: TraefikDialect,
    /// Docker network Traefik reaches containers on (rendered as `traefik.docker.network`).
    #[serde(default)]
    pub network: Option<String>,
    /// Entrypoints routers attach to when a route does not name its own.
    #[serde(default)]
    pub entrypoints: Vec<String>,
    /// Certificate resolver used by routes with `tls: true` that do not name one.
    #[serde(default)]
    pub cert_resolver: Option<String>,
    /// Traefik's API (`http://HOST:PORT`, v2/v3). When set, blue/green releases confirm that
    /// Traefik routes to the new color before retiring the old one, and that it stopped
    /// routing to the old one before stopping it, instead of waiting `release.drain`.
    #[serde(default)]
    pub api: Option<String>,
}

impl Default for TraefikConfig {
    fn default() -> Self {
        TraefikConfig {
            dialect: TraefikDialect::V3,
            network: None,
            entrypoints: Vec::new(),
            cert_resolver: None,
            api: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
pub enum TraefikDialect {
    #[serde(rename = "v1")]
    V1,
    #[serde(rename = "v2")]
    V2,
    #[default]
    #[serde(rename = "v3")]
    V3,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Defaults {
    /// Restart policy for services that do not set `restart`.
    #[serde(default)]
    pub restart: Option<RestartPolicy>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// Reject images that are not pinned by `@sha256:` digest (default true).
    #[serde(default = "yes")]
    pub require_digest: bool,
    /// Host folders that bind mounts may come from (each one and what is below it). Unset:
    /// any absolute path. The Docker socket needs `docker_socket` in `allow` whatever this says.
    #[serde(default)]
    pub bind_roots: Option<Vec<String>>,
    /// Registries images may come from: a host (`ghcr.io`, `127.0.0.1:5000`) or a host and
    /// namespace (`ghcr.io/acme`). Unset: any. Docker Hub images count as `docker.io/...`.
    #[serde(default)]
    pub registries: Option<Vec<String>>,
    /// Per stack, the host-level powers it may use; every other stack is denied them.
    #[serde(default)]
    pub allow: BTreeMap<String, Vec<Power>>,
}

/// What a container can do to its host beyond its own sandbox.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Power {
    Privileged,
    HostNetwork,
    HostPid,
    CapAdd,
    Devices,
    /// Mounting the Docker socket (or a folder holding it): root on the host.
    DockerSocket,
    /// Setting `traefik.*` keys in raw `labels:`: such a label can route any host on the
    /// proxy (another stack's too) at any priority. `route:` needs no power.
    TraefikLabels,
    /// A `security_opt` that loosens the sandbox: `seccomp=…`, `apparmor=unconfined`,
    /// `label=disable`, `systempaths=unconfined`.
    SecurityOpt,
    /// A sysctl outside the container's own IPC and network namespaces (it reaches the
    /// host's kernel), or any sysctl with `network_mode: host`.
    Sysctls,
}

impl Power {
    pub fn as_str(self) -> &'static str {
        match self {
            Power::Privileged => "privileged",
            Power::HostNetwork => "host_network",
            Power::HostPid => "host_pid",
            Power::CapAdd => "cap_add",
            Power::Devices => "devices",
            Power::DockerSocket => "docker_socket",
            Power::TraefikLabels => "traefik_labels",
            Power::SecurityOpt => "security_opt",
            Power::Sysctls => "sysctls",
        }
    }
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            require_digest: true,
            bind_roots: None,
            registries: None,
            allow: BTreeMap::new(),
        }
    }
}

fn default_project() -> String {
    "default".into()
}

fn yes() -> bool {
    true
}
