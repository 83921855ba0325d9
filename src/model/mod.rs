//! The desired-state format v1: the Rust types that `dockhand.yaml` and `stacks/<stack>.yaml`
//! deserialize into, and from which the JSON Schemas in `schemas/` are generated.
//!
//! This module owns the *shape* of the format. It does no I/O and knows nothing about Docker,
//! git or files on disk: loading lives in `load/`, rendering to a container spec in `spec/`.
//! Every type denies unknown fields so that a typo is an error, not a silently ignored key.

pub mod actual;
mod checked;
pub mod duration;
pub mod image;

pub use duration::Span;

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Regex every stack, service, network and volume name must match. Lowercase only, so that
/// container names derived from them are valid Docker names and unambiguous.
pub const NAME_PATTERN: &str = r"^[a-z0-9][a-z0-9_.-]*$";
/// A duration such as `500ms`, `1s`, `2m30s`.
pub const DURATION_PATTERN: &str = r"^([0-9]+(ms|s|m|h))+$";
/// An octal file mode such as `0755` or `2775`.
pub const MODE_PATTERN: &str = r"^[0-7]{3,4}$";
pub const OWNER_PATTERN: &str = r"^[0-9]+(:[0-9]+)?$";
pub const HOST_PATTERN: &str = r"^[A-Za-z0-9*]([A-Za-z0-9.-]*[A-Za-z0-9])?$";
pub const PATH_PATTERN: &str = r"^/";
/// `[IP:]HOST:CONTAINER[/tcp|udp|sctp]`.
pub const PORT_PATTERN: &str = r"^(\[?[0-9a-fA-F:.]+\]?:)?[0-9]{1,5}:[0-9]{1,5}(/(tcp|udp|sctp))?$";

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

/// `stacks/<stack>.yaml`: one stack of services with the networks and volumes it owns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(
    title = "dockhand stack",
    description = "One stack of services (format v1)."
)]
pub struct StackFile {
    /// Stack name; prefixes every container, network and volume it owns.
    #[schemars(regex(pattern = NAME_PATTERN))]
    #[serde(deserialize_with = "checked::name")]
    pub stack: String,
    /// Networks this stack uses. Owned ones are created as `<stack>_<name>`.
    #[serde(default, deserialize_with = "checked::named_map")]
    #[schemars(extend("propertyNames" = {"pattern": "^[a-z0-9][a-z0-9_.-]*$"}))]
    pub networks: BTreeMap<String, NetworkDecl>,
    /// Named volumes this stack uses. Owned ones are created as `<stack>_<name>` and never
    /// deleted unless asked explicitly.
    #[serde(default, deserialize_with = "checked::named_map")]
    #[schemars(extend("propertyNames" = {"pattern": "^[a-z0-9][a-z0-9_.-]*$"}))]
    pub volumes: BTreeMap<String, VolumeDecl>,
    /// The services, by name.
    #[schemars(extend("propertyNames" = {"pattern": "^[a-z0-9][a-z0-9_.-]*$"}))]
    #[serde(deserialize_with = "checked::named_map")]
    pub services: BTreeMap<String, Service>,
    /// What the agent does when this stack's containers are changed by hand (stopped,
    /// removed, replaced): `correct` puts them back (default); `report` only reports the drift
    /// (status, logs, metrics) and leaves the host alone until the next deploy.
    #[serde(default)]
    pub drift: DriftPolicy,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum DriftPolicy {
    #[default]
    Correct,
    Report,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NetworkDecl {
    /// Use an existing network that dockhand does not own (never created or removed).
    #[serde(default)]
    pub external: bool,
    /// Docker name; defaults to `<stack>_<key>` (owned) or `<key>` (external).
    #[serde(default)]
    pub name: Option<String>,
    /// Network driver for owned networks (default `bridge`).
    #[serde(default)]
    pub driver: Option<String>,
    /// No outside connectivity.
    #[serde(default)]
    pub internal: bool,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VolumeDecl {
    /// Use an existing volume that dockhand does not own.
    #[serde(default)]
    pub external: bool,
    /// Docker name; defaults to `<stack>_<key>` (owned) or `<key>` (external).
    #[serde(default)]
    pub name: Option<String>,
    /// Volume driver for owned volumes (default `local`).
    #[serde(default)]
    pub driver: Option<String>,
}

/// One service: one container (or two, blue and green, once releases land).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Service {
    /// `registry/repo:tag@sha256:<64 hex>`; the tag is for humans, the digest is the truth.
    pub image: String,
    /// Arguments replacing the image's CMD (exec form).
    #[serde(default)]
    pub command: Option<Vec<String>>,
    /// Replaces the image's ENTRYPOINT (exec form).
    #[serde(default)]
    pub entrypoint: Option<Vec<String>>,
    /// Environment variables. Values are never printed by dockhand.
    #[serde(default)]
    pub env: BTreeMap<String, EnvValue>,
    /// Absolute path of a host file of `KEY=VALUE` lines; hashed for change detection, never
    /// printed, never stored in git.
    #[serde(default)]
    pub env_file: Option<String>,
    /// Published ports, `[IP:]HOST:CONTAINER[/proto]`.
    #[serde(default)]
    #[schemars(inner(regex(pattern = PORT_PATTERN)))]
    pub ports: Vec<PortMapping>,
    /// Keys of `networks:` in this stack to attach to.
    #[serde(default)]
    pub networks: Vec<String>,
    #[serde(default)]
    pub mounts: Vec<Mount>,
    #[serde(default)]
    pub restart: Option<RestartPolicy>,
    /// Docker healthcheck (and, from the release work on, dockhand's own probe).
    #[serde(default)]
    pub health: Option<Health>,
    /// HTTP route through Traefik, rendered as labels.
    #[serde(default)]
    pub route: Option<Route>,
    /// Extra container labels. Keys starting with `dockhand.` are reserved; `traefik.` keys
    /// need the `traefik_labels` power (use `route:` instead).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Services (in this stack) that must be up before this one starts: a list of names
    /// (running, and healthy if they have a healthcheck) or a map of name to condition.
    #[serde(default)]
    pub depends_on: DependsOn,
    /// A one-off job (a migration, a backup): it runs to completion once per change of its
    /// spec, is never restarted, and an exit code other than 0 fails the deploy.
    #[serde(default)]
    pub job: bool,
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default)]
    pub working_dir: Option<String>,
    /// Time between SIGTERM and SIGKILL when the container is stopped.
    #[serde(default)]
    #[schemars(regex(pattern = DURATION_PATTERN))]
    pub stop_grace_period: Option<Span>,
    /// How a new version replaces the old one.
    #[serde(default)]
    pub release: Option<Release>,
    /// Commands run around a release.
    #[serde(default)]
    pub hooks: Option<Hooks>,
    /// Full access to the host's devices and kernel (Docker's `--privileged`). Denied by policy
    /// unless the stack is allowed `privileged` (`policy.allow` in dockhand.yaml).
    #[serde(default)]
    pub privileged: bool,
    /// `host`: share the host's network stack (no isolation; `ports` and `networks` do not
    /// apply). Denied unless the stack is allowed `host_network`.
    #[serde(default)]
    pub network_mode: Option<HostMode>,
    /// `host`: see and signal every process of the host. Denied unless allowed `host_pid`.
    #[serde(default)]
    pub pid: Option<HostMode>,
    /// Linux capabilities to add, e.g. `NET_ADMIN`. Denied unless allowed `cap_add`.
    #[serde(default)]
    pub cap_add: Vec<String>,
    /// Linux capabilities to drop (always allowed), e.g. `ALL`.
    #[serde(default)]
    pub cap_drop: Vec<String>,
    /// Host devices, `HOST_PATH[:CONTAINER_PATH[:PERMISSIONS]]`. Denied unless allowed
    /// `devices`.
    #[serde(default)]
    pub devices: Vec<String>,
}

/// A namespace shared with the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum HostMode {
    Host,
}

/// `depends_on`: `[db, cache]` or `{db: healthy, migrate: completed}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum DependsOn {
    Names(Vec<String>),
    Conditions(BTreeMap<String, Condition>),
}

impl Default for DependsOn {
    fn default() -> Self {
        DependsOn::Names(Vec::new())
    }
}

impl DependsOn {
    /// Each dependency with its condition; a bare name means [`Condition::Ready`].
    pub fn entries(&self) -> Vec<(&str, Condition)> {
        match self {
            DependsOn::Names(n) => n.iter().map(|n| (n.as_str(), Condition::Ready)).collect(),
            DependsOn::Conditions(m) => m.iter().map(|(n, c)| (n.as_str(), *c)).collect(),
        }
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.entries().into_iter().map(|(n, _)| n)
    }
}

/// What a dependency must have reached before its dependents start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Condition {
    /// Running.
    Started,
    /// Running and healthy (requires a healthcheck).
    Healthy,
    /// Running, and healthy if it has a healthcheck (what a bare name means).
    Ready,
    /// Exited with code 0 (a `job`).
    Completed,
}

/// An environment value; numbers and booleans are written as YAML writes them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum EnvValue {
    String(String),
    Integer(i64),
    Float(f64),
    Bool(bool),
}

impl EnvValue {
    pub fn render(&self) -> String {
        match self {
            EnvValue::String(s) => s.clone(),
            EnvValue::Integer(i) => i.to_string(),
            EnvValue::Float(f) => f.to_string(),
            EnvValue::Bool(b) => b.to_string(),
        }
    }
}

/// A mount: exactly one of `bind`, `volume` or `tmpfs`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum Mount {
    Bind(BindMount),
    Volume(VolumeMount),
    Tmpfs(TmpfsMount),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BindMount {
    /// Absolute host path.
    pub bind: String,
    /// Absolute path in the container.
    pub target: String,
    #[serde(default)]
    pub read_only: bool,
    /// Create the host directory if missing, with this mode and owner.
    #[serde(default)]
    pub create: Option<BindCreate>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BindCreate {
    /// Octal mode, e.g. `"2775"` (setgid, group-writable).
    #[serde(default, deserialize_with = "checked::mode_opt")]
    #[schemars(regex(pattern = MODE_PATTERN))]
    pub mode: Option<String>,
    /// `UID[:GID]` to chown the directory to.
    #[serde(default, deserialize_with = "checked::owner_opt")]
    #[schemars(regex(pattern = OWNER_PATTERN))]
    pub owner: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VolumeMount {
    /// Key of `volumes:` in this stack.
    pub volume: String,
    pub target: String,
    #[serde(default)]
    pub read_only: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TmpfsMount {
    /// Absolute path in the container.
    pub tmpfs: String,
    /// Size limit in bytes.
    #[serde(default)]
    pub size: Option<u64>,
}

// Docker's restart policy. Its serde form (`no`, `always`, `unless-stopped`, `on-failure`)
// is Docker's own name, which the container spec holds (and hashes). A plain comment, not a
// doc comment: schemars would put it into the committed schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum RestartPolicy {
    No,
    Always,
    UnlessStopped,
    OnFailure,
}

/// Health of a service. `cmd` or `shell` becomes the Docker healthcheck; `http` and `tcp` are
/// dockhand's own probes, run from the host against the container's address. A new version is
/// ready when every check it declares passes; release gates poll them every 100 ms.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Health {
    /// Exec-form command run in the container; exit 0 means healthy.
    #[serde(default)]
    pub cmd: Option<Vec<String>>,
    /// Shell-form command (`/bin/sh -c`), if the image has a shell.
    #[serde(default)]
    pub shell: Option<String>,
    /// HTTP probe run by dockhand from the host against the container's address.
    #[serde(default)]
    pub http: Option<HttpProbe>,
    /// TCP probe run by dockhand from the host: the port accepts a connection.
    #[serde(default)]
    pub tcp: Option<TcpProbe>,
    #[serde(default)]
    #[schemars(regex(pattern = DURATION_PATTERN))]
    pub interval: Option<Span>,
    #[serde(default)]
    #[schemars(regex(pattern = DURATION_PATTERN))]
    pub timeout: Option<Span>,
    #[serde(default, deserialize_with = "checked::retries")]
    #[schemars(range(min = 1, max = 1000))]
    pub retries: Option<u32>,
    #[serde(default)]
    #[schemars(regex(pattern = DURATION_PATTERN))]
    pub start_period: Option<Span>,
    #[serde(default)]
    #[schemars(regex(pattern = DURATION_PATTERN))]
    pub start_interval: Option<Span>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HttpProbe {
    #[schemars(range(min = 1, max = 65535))]
    #[serde(deserialize_with = "checked::port_number")]
    pub port: u16,
    #[serde(default = "root_path")]
    pub path: String,
    /// Status that counts as passing, or a list of them (e.g. `[200, 503]` to accept
    /// "degraded"); default 200.
    #[serde(default)]
    pub status: StatusCodes,
    /// Substring the body must contain, e.g. `'"ready": true'`.
    #[serde(default)]
    pub body: Option<String>,
}

/// One HTTP status code or a list of them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum StatusCodes {
    One(#[schemars(range(min = 100, max = 599))] u16),
    Any(#[schemars(inner(range(min = 100, max = 599)), length(min = 1))] Vec<u16>),
}

impl Default for StatusCodes {
    fn default() -> Self {
        StatusCodes::One(200)
    }
}

impl StatusCodes {
    pub fn codes(&self) -> Vec<u16> {
        match self {
            StatusCodes::One(c) => vec![*c],
            StatusCodes::Any(v) => v.clone(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TcpProbe {
    #[schemars(range(min = 1, max = 65535))]
    #[serde(deserialize_with = "checked::port_number")]
    pub port: u16,
}

/// A smoke check run once against the new version: exactly one of `http`, `tcp` or `cmd`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Check {
    #[serde(default)]
    pub http: Option<HttpProbe>,
    #[serde(default)]
    pub tcp: Option<TcpProbe>,
    /// Exec-form command run in the new container; exit 0 passes.
    #[serde(default)]
    pub cmd: Option<Vec<String>>,
    /// Longest the check may take (default 10s).
    #[serde(default)]
    #[schemars(regex(pattern = DURATION_PATTERN))]
    pub timeout: Option<Span>,
}

fn root_path() -> String {
    "/".into()
}

/// An HTTP route through Traefik.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Route {
    /// Host name matched by the router.
    #[schemars(regex(pattern = HOST_PATTERN))]
    #[serde(deserialize_with = "checked::host")]
    pub host: String,
    /// Optional path prefix, starting with `/`.
    #[serde(default, deserialize_with = "checked::path_opt")]
    #[schemars(regex(pattern = PATH_PATTERN))]
    pub path: Option<String>,
    /// Container port Traefik sends traffic to.
    #[schemars(range(min = 1, max = 65535))]
    #[serde(deserialize_with = "checked::port_number")]
    pub port: u16,
    #[serde(default)]
    pub entrypoints: Vec<String>,
    #[serde(default)]
    pub tls: bool,
    #[serde(default)]
    pub cert_resolver: Option<String>,
    #[serde(default)]
    pub middlewares: Vec<String>,
    #[serde(default)]
    pub priority: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Release {
    #[serde(default)]
    pub strategy: Strategy,
    /// The serving color, declared in git (blue-green only).
    #[serde(default)]
    pub active: Option<Color>,
    /// What happens to the retired color (blue-green only).
    #[serde(default)]
    pub keep_idle: Option<KeepIdle>,
    /// Time the retired color keeps serving in-flight requests before it is stopped.
    #[serde(default)]
    #[schemars(regex(pattern = DURATION_PATTERN))]
    pub drain: Option<Span>,
    /// Checks run once against the new version after it took traffic and before the old one
    /// is retired (blue-green), or once it is ready (recreate). A failure rolls back: the
    /// old color, still running, serves alone again; the old container is restored.
    #[serde(default)]
    pub smoke: Vec<Check>,
    /// A container that takes the route while the release runs steps with downtime
    /// (`before` hooks, or the gap of a recreate), and leaves once the new version serves.
    #[serde(default)]
    pub maintenance: Option<Maintenance>,
}

/// The maintenance page of a routed service (seed 000's cutover container).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Maintenance {
    /// `repo:tag@sha256:…`, like any service image.
    pub image: String,
    #[serde(default)]
    pub command: Option<Vec<String>>,
    /// Container port Traefik sends traffic to (default: the route's port).
    #[serde(default, deserialize_with = "checked::port_number_opt")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: Option<u16>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Strategy {
    #[default]
    Recreate,
    BlueGreen,
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum Color {
    Blue,
    Green,
}

impl Color {
    pub const ALL: [Color; 2] = [Color::Blue, Color::Green];

    pub fn as_str(self) -> &'static str {
        match self {
            Color::Blue => "blue",
            Color::Green => "green",
        }
    }

    pub fn other(self) -> Color {
        match self {
            Color::Blue => Color::Green,
            Color::Green => Color::Blue,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum KeepIdle {
    Stopped,
    Removed,
}

/// Release hooks. Each step is either a bare command (exec form, run in the service's new
/// container) or an object saying where it runs.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Hooks {
    /// Before the new version starts (e.g. a database dump).
    #[serde(default)]
    pub before: Vec<HookStep>,
    /// In the new container once healthy, before it receives traffic (migrate, collectstatic).
    #[serde(default)]
    pub after_start: Vec<HookStep>,
    /// After the new version serves (cache warm-up, notifications).
    #[serde(default)]
    pub after_switch: Vec<HookStep>,
}

impl Hooks {
    pub fn is_empty(&self) -> bool {
        self.before.is_empty() && self.after_start.is_empty() && self.after_switch.is_empty()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum HookStep {
    Command(Vec<String>),
    Detailed(HookDetail),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HookDetail {
    /// Exec-form command.
    pub command: Vec<String>,
    /// Run with `exec` in this running service instead of the new container.
    #[serde(default)]
    pub service: Option<String>,
    /// Run in a one-off container from this image instead.
    #[serde(default)]
    pub image: Option<String>,
    #[serde(default)]
    pub mounts: Vec<Mount>,
    /// Longest the step may run (default 5m); a step that runs over fails the release.
    #[serde(default)]
    #[schemars(regex(pattern = DURATION_PATTERN))]
    pub timeout: Option<Span>,
    /// After the step succeeds, keep only the newest `keep` files in this host directory
    /// (backups written through a bind mount).
    #[serde(default)]
    pub rotate: Option<Rotate>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Rotate {
    /// Absolute host directory.
    #[serde(deserialize_with = "checked::abs_path")]
    #[schemars(regex(pattern = PATH_PATTERN))]
    pub dir: String,
    #[schemars(range(min = 1))]
    pub keep: u32,
}

/// Checks run before anything is touched.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Preflight {
    /// Least free space on the Docker data root, e.g. `2GB`, `10GiB`, `500MB` (default 1GB).
    #[serde(default = "default_min_free", deserialize_with = "checked::size")]
    #[schemars(regex(pattern = SIZE_PATTERN))]
    pub min_free_disk: String,
}

impl Default for Preflight {
    fn default() -> Self {
        Preflight {
            min_free_disk: default_min_free(),
        }
    }
}

fn default_min_free() -> String {
    "1GB".into()
}

/// A size such as `500MB`, `2GB`, `10GiB`.
pub const SIZE_PATTERN: &str = r"^[0-9]+(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)$";

/// Bytes in a size written as [`SIZE_PATTERN`].
pub fn parse_size(text: &str) -> Option<u64> {
    let split = text.find(|c: char| !c.is_ascii_digit())?;
    let (n, unit) = text.split_at(split);
    let n: u64 = n.parse().ok()?;
    let mult: u64 = match unit {
        "B" => 1,
        "KB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        "TB" => 1_000_000_000_000,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "TiB" => 1 << 40,
        _ => return None,
    };
    n.checked_mul(mult)
}

/// A repository after loading and validation: the settings and every stack.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DesiredState {
    pub config: RepoConfig,
    pub stacks: Vec<Stack>,
}

/// A validated stack, with the file it came from.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Stack {
    pub file: String,
    pub spec: StackFile,
}

impl Stack {
    pub fn name(&self) -> &str {
        &self.spec.stack
    }
}

/// Container name of a service (`<stack>-<service>`).
pub fn container_name(stack: &str, service: &str) -> String {
    format!("{stack}-{service}")
}

/// Docker name of a network or volume declared under `key` in `stack`.
pub fn object_name(stack: &str, key: &str, explicit: Option<&str>, external: bool) -> String {
    match (explicit, external) {
        (Some(name), _) => name.to_string(),
        (None, true) => key.to_string(),
        (None, false) => format!("{stack}_{key}"),
    }
}

/// A published port, parsed at load from `[IP:]HOST:CONTAINER[/proto]` ([`PORT_PATTERN`], ports
/// from 1 to 65535, a valid IP). Serialized back as `[IP:]HOST:CONTAINER/proto` with the
/// protocol always written and an IPv6 address without its brackets: the form the container
/// spec (and so its hash) has always held.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PortMapping {
    /// Empty means all interfaces.
    pub host_ip: String,
    pub host_port: u16,
    pub container_port: u16,
    pub protocol: Protocol,
}

/// The transport of a published port (`tcp` unless written).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Tcp,
    Udp,
    Sctp,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Sctp => "sctp",
        }
    }
}

impl PortMapping {
    /// `None` for anything [`PORT_PATTERN`] and the ranges do not allow.
    pub fn parse(text: &str) -> Option<PortMapping> {
        static PATTERN: std::sync::OnceLock<Option<regex::Regex>> = std::sync::OnceLock::new();
        let shaped = PATTERN
            .get_or_init(|| regex::Regex::new(PORT_PATTERN).ok())
            .as_ref()
            .is_some_and(|r| r.is_match(text));
        if !shaped {
            return None;
        }
        let (rest, protocol) = match text.rsplit_once('/') {
            Some((rest, "tcp")) => (rest, Protocol::Tcp),
            Some((rest, "udp")) => (rest, Protocol::Udp),
            Some((rest, "sctp")) => (rest, Protocol::Sctp),
            Some(_) => return None,
            None => (text, Protocol::Tcp),
        };
        let (rest, container) = rest.rsplit_once(':')?;
        let (ip, host) = match rest.rsplit_once(':') {
            Some((ip, host)) => (ip.trim_start_matches('[').trim_end_matches(']'), host),
            None => ("", rest),
        };
        let host_port: u16 = host.parse().ok().filter(|p| *p > 0)?;
        let container_port: u16 = container.parse().ok().filter(|p| *p > 0)?;
        if !ip.is_empty() && ip.parse::<std::net::IpAddr>().is_err() {
            return None;
        }
        Some(PortMapping {
            host_ip: ip.to_string(),
            host_port,
            container_port,
            protocol,
        })
    }

    /// Whether two mappings would fight over the same host socket.
    pub fn clashes_with(&self, other: &PortMapping) -> bool {
        let any = |ip: &str| ip.is_empty() || ip == "0.0.0.0" || ip == "::";
        self.host_port == other.host_port
            && self.protocol == other.protocol
            && (self.host_ip == other.host_ip || any(&self.host_ip) || any(&other.host_ip))
    }

    /// The host side, `[IP:]HOST/proto`: what binds on the host.
    pub fn host_side(&self) -> String {
        let ip = if self.host_ip.is_empty() {
            String::new()
        } else {
            format!("{}:", self.host_ip)
        };
        format!("{ip}{}/{}", self.host_port, self.protocol.as_str())
    }
}

impl std::fmt::Display for PortMapping {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if !self.host_ip.is_empty() {
            write!(f, "{}:", self.host_ip)?;
        }
        write!(
            f,
            "{}:{}/{}",
            self.host_port,
            self.container_port,
            self.protocol.as_str()
        )
    }
}

impl Serialize for PortMapping {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for PortMapping {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        PortMapping::parse(&text).ok_or_else(|| {
            serde::de::Error::custom(format!("`{text}` is not a valid port mapping"))
        })
    }
}

impl JsonSchema for PortMapping {
    fn inline_schema() -> bool {
        true
    }

    fn schema_name() -> std::borrow::Cow<'static, str> {
        String::schema_name()
    }

    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        String::json_schema(generator)
    }
}

#[cfg(test)]
mod port_tests {
    use super::PortMapping;

    #[test]
    fn parses_ports_with_and_without_ip() {
        let p = PortMapping::parse("127.0.0.1:8080:80").unwrap();
        assert_eq!(
            (p.host_ip.as_str(), p.host_port, p.container_port),
            ("127.0.0.1", 8080, 80)
        );
        assert_eq!(
            PortMapping::parse("53:53/udp").unwrap().protocol,
            super::Protocol::Udp
        );
        assert!(PortMapping::parse("0:80").is_none());
        assert!(PortMapping::parse("99999:80").is_none());
        assert!(PortMapping::parse("nope:1:2").is_none());
        assert!(
            PortMapping::parse("abc:1:2").is_none(),
            "hex-looking, but no IP"
        );
        assert!(PortMapping::parse("80").is_none());
        assert!(PortMapping::parse("1:2/quic").is_none());
    }

    /// The rendered form is what container specs have always held (their hash depends on it),
    /// and it parses back to the same mapping (a spec-doc label is read back).
    #[test]
    fn renders_the_spec_form_and_reads_it_back() {
        for (written, rendered) in [
            ("8080:80", "8080:80/tcp"),
            ("127.0.0.1:8443:443/tcp", "127.0.0.1:8443:443/tcp"),
            ("[::1]:5353:53/udp", "::1:5353:53/udp"),
            ("0.0.0.0:9000:9000/sctp", "0.0.0.0:9000:9000/sctp"),
        ] {
            let p = PortMapping::parse(written).unwrap();
            assert_eq!(p.to_string(), rendered);
            assert_eq!(PortMapping::parse(rendered), Some(p.clone()));
            let json = serde_json::to_string(&p).unwrap();
            assert_eq!(json, format!("\"{rendered}\""));
            assert_eq!(serde_json::from_str::<PortMapping>(&json).unwrap(), p);
        }
        assert_eq!(
            PortMapping::parse("127.0.0.1:8080:80").unwrap().host_side(),
            "127.0.0.1:8080/tcp"
        );
        let err = serde_json::from_str::<PortMapping>("\"0:80\"").unwrap_err();
        assert!(
            err.to_string()
                .contains("`0:80` is not a valid port mapping"),
            "{err}"
        );
    }

    #[test]
    fn wildcard_ip_clashes_with_specific_ip() {
        let a = PortMapping::parse("8080:80").unwrap();
        let b = PortMapping::parse("127.0.0.1:8080:81").unwrap();
        let c = PortMapping::parse("127.0.0.2:8080:81").unwrap();
        assert!(a.clashes_with(&b));
        assert!(!b.clashes_with(&c));
    }
}
