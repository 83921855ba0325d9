//! The desired-state format v1: the Rust types that `dockhand.yaml` and `stacks/<stack>.yaml`
//! deserialize into, and from which the JSON Schemas in `schemas/` are generated.
//!
//! This module owns the *shape* of the format. It does no I/O and knows nothing about Docker,
//! git or files on disk: loading lives in `load/`, rendering to a container spec in `spec/`.
//! Every type denies unknown fields so that a typo is an error, not a silently ignored key.

pub mod actual;
mod checked;
mod config;
pub mod duration;
pub mod image;
mod options;
mod port;
mod release;

pub use config::{Defaults, Names, Policy, Power, RepoConfig, TraefikConfig, TraefikDialect};
pub use duration::Span;
pub use options::{
    harmless_security_opt, namespaced_sysctl, Bytes, Logging, Ulimit, EXTRA_HOST_PATTERN,
};
pub use port::{PortMapping, Ports, Protocol};
pub use release::{
    parse_size, Color, HookDetail, HookStep, Hooks, KeepIdle, Maintenance, Preflight, Release,
    Rotate, Strategy, SIZE_PATTERN,
};

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Regex every stack, service, network and volume name must match. Lowercase only, so that
/// container names derived from them are valid Docker names and unambiguous.
pub const NAME_PATTERN: &str = r"^[a-z0-9][a-z0-9_.-]*$";
/// A duration such as `500ms`, `1s`, `2m30s`.
pub const DURATION_PATTERN: &str = r"^([0-9]+(ms|s|m|h))+$";
/// An octal file mode such as `0755` or `2775`.
/// How long a `job` may run when its `timeout` is not set (the 10m its doc states): long enough for a migration of a
/// large database, short enough that a hung job does not hold the apply lock for good.
pub const JOB_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(600);
pub const MODE_PATTERN: &str = r"^[0-7]{3,4}$";
pub const OWNER_PATTERN: &str = r"^[0-9]+(:[0-9]+)?$";
pub const HOST_PATTERN: &str = r"^[A-Za-z0-9*]([A-Za-z0-9.-]*[A-Za-z0-9])?$";
pub const PATH_PATTERN: &str = r"^/";
/// A stop signal: a name such as `SIGTERM`, `SIGUSR1`, `SIGRTMIN+3` (Docker's spelling), or a
/// number such as `15`.
pub const SIGNAL_PATTERN: &str = r"^(SIG[A-Z0-9]+([+-][0-9]+)?|[0-9]{1,2})$";
/// `[IP:]HOST:CONTAINER[/tcp|udp|sctp]`.
pub const PORT_PATTERN: &str = r"^(\[?[0-9a-fA-F:.]+\]?:)?[0-9]{1,5}:[0-9]{1,5}(/(tcp|udp|sctp))?$";
/// An entry of `ports:`: [`PORT_PATTERN`], or a range `[IP:]H1-H2:C1-C2[/proto]`.
pub const PORTS_PATTERN: &str = r"^(\[?[0-9a-fA-F:.]+\]?:)?[0-9]{1,5}(-[0-9]{1,5})?:[0-9]{1,5}(-[0-9]{1,5})?(/(tcp|udp|sctp))?$";

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
    /// Containers of different services may run on this volume at the same time while one
    /// replaces another (a rename, a service taking over the volume). Unset, dockhand stops
    /// and removes the old container before the new one starts, so a database directory
    /// never has two writers.
    #[serde(default)]
    pub shared: bool,
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
    /// Published ports, `[IP:]HOST:CONTAINER[/proto]`, or a range of them of the same length,
    /// `[IP:]H1-H2:C1-C2[/proto]` (e.g. `8080-8082:8080-8082`).
    #[serde(default)]
    pub ports: Vec<Ports>,
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
    /// For a `job`: how long it may run before it is stopped and removed and the deploy fails
    /// (default 10m). Only allowed with `job: true`.
    #[serde(default)]
    #[schemars(regex(pattern = DURATION_PATTERN))]
    pub timeout: Option<Span>,
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default)]
    pub working_dir: Option<String>,
    /// Time between SIGTERM and SIGKILL when the container is stopped.
    #[serde(default)]
    #[schemars(regex(pattern = DURATION_PATTERN))]
    pub stop_grace_period: Option<Span>,
    /// Signal Docker sends to stop the container (its `StopSignal`), e.g. `SIGQUIT` or
    /// `SIGUSR1`; the image's `STOPSIGNAL`, else `SIGTERM`, when unset. Every stop dockhand
    /// makes (remove, recreate, retire, maintenance) sends it, then waits `stop_grace_period`.
    #[serde(default, deserialize_with = "checked::signal_opt")]
    #[schemars(regex(pattern = SIGNAL_PATTERN))]
    pub stop_signal: Option<String>,
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
    /// Run Docker's init (tini) as PID 1: it reaps zombies and forwards signals.
    #[serde(default)]
    pub init: bool,
    /// Extra `/etc/hosts` entries, `HOST:IP` (`IP` may be `host-gateway`).
    #[serde(default, deserialize_with = "checked::extra_host_vec")]
    #[schemars(inner(regex(pattern = EXTRA_HOST_PATTERN)))]
    pub extra_hosts: Vec<String>,
    /// Log driver and options; the Engine's default driver when unset.
    #[serde(default)]
    pub logging: Option<Logging>,
    /// Memory limit (Docker's `--memory`), e.g. `512MiB`.
    #[serde(default)]
    pub mem_limit: Option<Bytes>,
    /// Memory soft limit (Docker's `--memory-reservation`), e.g. `256MiB`.
    #[serde(default)]
    pub mem_reservation: Option<Bytes>,
    /// CPU limit in CPUs (Docker's `--cpus`), e.g. `0.5` or `2`.
    #[serde(default, deserialize_with = "checked::cpus")]
    #[schemars(range(min = 0.001, max = 1024.0))]
    pub cpus: Option<f64>,
    /// Most processes the container may run (Docker's `--pids-limit`).
    #[serde(default, deserialize_with = "checked::pids_limit")]
    #[schemars(range(min = 1))]
    pub pids_limit: Option<i64>,
    /// Size of `/dev/shm` (Docker's `--shm-size`; 64MiB when unset), e.g. `1GiB`.
    #[serde(default)]
    pub shm_size: Option<Bytes>,
    /// Mount the container's root file system read-only (mount or tmpfs what it writes).
    #[serde(default)]
    pub read_only: bool,
    /// Resource limits by name (`nofile`, `nproc`, `core`, …): a number, or `{soft, hard}`.
    #[serde(default)]
    pub ulimits: BTreeMap<String, Ulimit>,
    /// Docker security options, e.g. `no-new-privileges:true`, `apparmor=PROFILE`. Anything
    /// that loosens the sandbox (`seccomp=…`, `…=unconfined`, `label=disable`) is denied
    /// unless the stack is allowed `security_opt`.
    #[serde(default)]
    pub security_opt: Vec<String>,
    /// Kernel parameters in the container's namespaces, e.g. `net.core.somaxconn: 1024`.
    /// Others (outside the IPC and network namespaces, or any with `network_mode: host`)
    /// reach the host's kernel and are denied unless the stack is allowed `sysctls`.
    #[serde(default)]
    pub sysctls: BTreeMap<String, EnvValue>,
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

impl RestartPolicy {
    /// Docker's name for it (`docker update --restart <name>`, `HostConfig.RestartPolicy.Name`).
    pub fn as_docker(self) -> &'static str {
        match self {
            RestartPolicy::No => "no",
            RestartPolicy::Always => "always",
            RestartPolicy::UnlessStopped => "unless-stopped",
            RestartPolicy::OnFailure => "on-failure",
        }
    }
}

/// Health of a service. `cmd` or `shell` becomes the Docker healthcheck; `http` and `tcp` are
/// dockhand's own probes, run from the host against the container's address. A new version is
/// ready when every check it declares passes; release gates poll them every 100 ms.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Health {
    /// `true`: turn off the healthcheck the image declares (Docker's `--no-healthcheck`);
    /// nothing else may be set then.
    #[serde(default)]
    pub disable: bool,
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

/// The Docker names a project derives, spelled as its `names:` setting says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Naming<'a> {
    /// `Some(project)` under `names: project`.
    prefix: Option<&'a str>,
}

impl<'a> Naming<'a> {
    pub fn of(config: &'a RepoConfig) -> Naming<'a> {
        Naming::new(&config.project, config.names)
    }

    pub fn new(project: &'a str, names: Names) -> Naming<'a> {
        Naming {
            prefix: (names == Names::Project).then_some(project),
        }
    }

    /// The same project under the other `names:` spelling: where its objects were, or will
    /// be, after the setting changes.
    pub fn other(self, project: &'a str) -> Naming<'a> {
        Naming {
            prefix: match self.prefix {
                Some(_) => None,
                None => Some(project),
            },
        }
    }

    /// Container name of a service: `<stack>-<service>`, or `<project>-<stack>-<service>`.
    pub fn container(self, stack: &str, service: &str) -> String {
        match self.prefix {
            Some(p) => format!("{p}-{}", container_name(stack, service)),
            None => container_name(stack, service),
        }
    }

    /// Docker name of a network or volume declared under `key` in `stack`: the explicit
    /// `name:`, else `<key>` for an external one, else `<stack>_<key>` or
    /// `<project>_<stack>_<key>`.
    pub fn object(self, stack: &str, key: &str, explicit: Option<&str>, external: bool) -> String {
        match (self.prefix, explicit, external) {
            (Some(p), None, false) => format!("{p}_{}", object_name(stack, key, None, false)),
            _ => object_name(stack, key, explicit, external),
        }
    }
}

/// Container name of a service (`<stack>-<service>`) under `names: stack`; see [`Naming`].
pub fn container_name(stack: &str, service: &str) -> String {
    format!("{stack}-{service}")
}

/// Docker name of a network or volume declared under `key` in `stack`, under `names: stack`;
/// see [`Naming`].
pub fn object_name(stack: &str, key: &str, explicit: Option<&str>, external: bool) -> String {
    match (explicit, external) {
        (Some(name), _) => name.to_string(),
        (None, true) => key.to_string(),
        (None, false) => format!("{stack}_{key}"),
    }
}
