//! Rendering the validated model into exactly what dockhand will ask Docker for: one
//! [`ContainerSpec`] per service, plus the networks and volumes a stack owns.
//!
//! Pure: no I/O. Host facts it needs (env file hashes) come in as arguments. The spec is
//! hashed into the `dockhand.spec` label; a redacted copy ([`ContainerSpec::redacted`]) is
//! stored in `dockhand.spec-doc` so that a later plan can say *which* fields changed from a
//! single list call, without inspecting containers and without ever holding a secret value.

pub mod labels;
mod markers;
mod render;
pub mod traefik;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::model::{BindCreate, Color, Condition, KeepIdle, PortMapping, RestartPolicy};

pub use markers::{sha256_hex, MarkerKey};
pub use render::render;

/// The container dockhand creates for a service. Field order is fixed, maps are sorted, so
/// the serialized form (and its hash) is stable.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContainerSpec {
    pub image: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env_file: Option<EnvFileRef>,
    /// Sorted by their text form (`[IP:]HOST:CONTAINER/proto`), as they have always been
    /// hashed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<PortMapping>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub networks: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mounts: Vec<MountSpec>,
    pub restart: RestartPolicy,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<HealthSpec>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_grace_secs: Option<u64>,
    /// Docker's `StopSignal`: what every stop sends first (absent: the image's, else SIGTERM).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_signal: Option<String>,
    /// Host-level access beyond the sandbox; absent from the spec (and its hash) when none.
    #[serde(default, skip_serializing_if = "HostAccess::is_none")]
    pub host: HostAccess,
    /// Runtime options (init, limits, logging, …); absent from the spec (and its hash) when
    /// none is set, so containers that set none keep their hash.
    #[serde(default, skip_serializing_if = "Runtime::is_none")]
    pub runtime: Runtime,
}

/// Runtime options of a container, in the Engine's units (bytes, nano-CPUs). Each one is
/// left out of the serialized spec when unset.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Runtime {
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub init: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub read_only: bool,
    /// `HOST:IP` entries for `/etc/hosts`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extra_hosts: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logging: Option<LogSpec>,
    /// Bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<i64>,
    /// Bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_reservation: Option<i64>,
    /// CPUs × 10⁹ (Docker's `NanoCpus`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nano_cpus: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pids_limit: Option<i64>,
    /// Bytes of `/dev/shm`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shm_size: Option<i64>,
    /// Sorted by name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ulimits: Vec<UlimitSpec>,
}

impl Runtime {
    pub fn is_none(&self) -> bool {
        *self == Runtime::default()
    }

    /// The limits an inspect reports for this spec, named as [`crate::model::actual::Inspected`]
    /// names them, sorted: what drift compares with what it finds.
    pub fn limits(&self) -> Vec<(String, i64)> {
        let mut out: Vec<(String, i64)> = [
            ("memory", self.memory),
            ("memory_reservation", self.memory_reservation),
            ("nano_cpus", self.nano_cpus),
            ("pids_limit", self.pids_limit),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| (k.to_string(), v)))
        .collect();
        out.sort();
        out
    }
}

/// A log driver and its options (values hidden in the redacted spec).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogSpec {
    pub driver: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub options: BTreeMap<String, String>,
}

/// One ulimit: `name` (`nofile`, …) with its soft and hard values.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UlimitSpec {
    pub name: String,
    pub soft: i64,
    pub hard: i64,
}

/// What a container may reach of its host beyond its own sandbox (policy decides who may).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct HostAccess {
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub privileged: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub network: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub pid: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cap_add: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cap_drop: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub devices: Vec<String>,
    /// Docker security options as written (loosening ones need the `security_opt` power).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub security_opt: Vec<String>,
    /// Kernel parameters, name to value.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub sysctls: BTreeMap<String, String>,
}

impl HostAccess {
    pub fn is_none(&self) -> bool {
        *self == HostAccess::default()
    }

    fn of(svc: &crate::model::Service) -> HostAccess {
        HostAccess {
            privileged: svc.privileged,
            network: svc.network_mode.is_some(),
            pid: svc.pid.is_some(),
            cap_add: svc.cap_add.clone(),
            cap_drop: svc.cap_drop.clone(),
            devices: svc.devices.clone(),
            security_opt: svc.security_opt.clone(),
            sysctls: svc
                .sysctls
                .iter()
                .map(|(k, v)| (k.clone(), v.render()))
                .collect(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvFileRef {
    pub path: String,
    /// sha256 of the file contents.
    pub sha256: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum MountSpec {
    Bind {
        source: String,
        target: String,
        read_only: bool,
    },
    Volume {
        source: String,
        target: String,
        read_only: bool,
    },
    Tmpfs {
        target: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        size: Option<u64>,
    },
}

/// Docker healthcheck; durations in milliseconds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthSpec {
    pub test: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_period_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_interval_ms: Option<u64>,
}

impl HealthSpec {
    /// How long Docker can take to call a starting container unhealthy, plus slack.
    pub fn deadline(&self) -> std::time::Duration {
        let interval = self.interval_ms.unwrap_or(30_000);
        let timeout = self.timeout_ms.unwrap_or(30_000);
        let retries = u64::from(self.retries.unwrap_or(3));
        let start = self.start_period_ms.unwrap_or(0);
        std::time::Duration::from_millis(start + (interval + timeout) * (retries + 1) + 10_000)
    }
}

impl ContainerSpec {
    /// The same spec with every env value replaced by a marker, safe to store and print:
    /// `<hidden:` + the first 12 hex digits of HMAC-SHA256(`key`, value) + `>`. Markers differ
    /// when values differ, so a diff still shows which keys changed; without the host's key a
    /// marker cannot be tested against guesses (a PIN, a dictionary word), as a plain hash
    /// could be from `docker inspect`.
    pub fn redacted(&self, key: &MarkerKey) -> ContainerSpec {
        let mut out = self.clone();
        for value in out.env.values_mut() {
            *value = env_marker(key, value);
        }
        // A log driver may take a token or a URL with credentials.
        if let Some(l) = &mut out.runtime.logging {
            for value in l.options.values_mut() {
                *value = env_marker(key, value);
            }
        }
        out
    }

    /// Hash of the redacted spec: what `dockhand.spec` holds.
    pub fn hash(&self, key: &MarkerKey) -> String {
        let doc = serde_json::to_vec(&self.redacted(key)).unwrap_or_default();
        sha256_hex(&doc)
    }
}

/// The marker an env value is replaced by in a redacted spec (see [`ContainerSpec::redacted`]).
pub fn env_marker(key: &MarkerKey, value: &str) -> String {
    format!("<hidden:{}>", &key.mark(value.as_bytes())[..12])
}

/// Facts about the host that rendering needs, gathered at the edge ([`crate::host`]).
#[derive(Debug, Clone, Default)]
pub struct HostFacts {
    /// Keyed marks of each env file's contents (see [`EnvFileHashes`]).
    pub env_files: EnvFileHashes,
    /// The key for hidden-value markers.
    pub marker_key: MarkerKey,
}

/// A container dockhand wants, with everything apply needs besides the spec.
#[derive(Debug, Clone, PartialEq)]
pub struct DesiredContainer {
    pub stack: String,
    pub service: String,
    pub name: String,
    pub spec: ContainerSpec,
    /// The image as written in the stack file (`repo:tag@sha256:…`): what plans show, since
    /// the tag is what people recognise. `spec.image` is the digest-only pull reference.
    pub image_ref: String,
    /// Container names this one waits for.
    pub depends_on: Vec<String>,
    /// What each of `depends_on` must reach first (keyed by container name).
    pub conditions: BTreeMap<String, Condition>,
    /// A one-off job: runs to completion once per spec, never restarted.
    pub job: bool,
    /// How long a job may run before it is stopped and removed and the deploy fails (not part
    /// of the container spec: changing it recreates nothing).
    pub job_timeout: std::time::Duration,
    /// Release hooks, resolved to where each step runs.
    pub hooks: ServiceHooks,
    /// Host directories to create before start, with mode and owner.
    pub bind_creates: Vec<(String, BindCreate)>,
    /// Bind sources that must already exist.
    pub bind_required: Vec<String>,
    /// All labels the container is created with (spec labels + ownership).
    pub labels: BTreeMap<String, String>,
    /// Network alias (the service name) so that siblings reach it by name.
    pub alias: String,
    /// Set for `strategy: blue-green`: `name` is then the service's base name, and the
    /// containers are `<name>-blue` and `<name>-green` (see [`DesiredContainer::colored`]).
    pub blue_green: Option<BlueGreen>,
    /// dockhand's own readiness probes (`health.http`, `health.tcp`): not part of the container,
    /// so changing them never recreates it.
    pub probes: Vec<ProbeSpec>,
    /// `release.smoke`: run once against the new version; a failure rolls back.
    pub smoke: Vec<SmokeSpec>,
    /// `release.maintenance`: takes the route while the release has downtime.
    pub maintenance: Option<MaintenanceSpec>,
}

/// A check dockhand runs itself against a container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ProbeSpec {
    /// GET `path` on the container's address; passes on one of `status` (and `body` found).
    Http {
        port: u16,
        path: String,
        status: Vec<u16>,
        #[serde(skip_serializing_if = "Option::is_none")]
        body: Option<String>,
    },
    /// The port accepts a TCP connection.
    Tcp { port: u16 },
    /// The command exits 0 when exec'd in the container (as its own user).
    Exec { command: Vec<String> },
}

impl std::fmt::Display for ProbeSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProbeSpec::Http {
                port,
                path,
                status,
                body,
            } => {
                let codes: Vec<String> = status.iter().map(u16::to_string).collect();
                write!(f, "GET :{port}{path} → {}", codes.join("|"))?;
                if let Some(b) = body {
                    write!(f, " containing {b:?}")?;
                }
                Ok(())
            }
            ProbeSpec::Tcp { port } => write!(f, "TCP :{port}"),
            ProbeSpec::Exec { command } => write!(f, "`{}`", command.join(" ")),
        }
    }
}

/// One smoke check of `release.smoke`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SmokeSpec {
    /// `smoke[0]`, …: how records and errors name it.
    pub label: String,
    pub probe: ProbeSpec,
    pub timeout_ms: u64,
}

/// A smoke check may take this long unless it says otherwise.
pub const DEFAULT_SMOKE_TIMEOUT_MS: u64 = 10_000;

/// The maintenance container of a routed service: `<name>-maintenance`, with a router on the
/// same rule at a priority above any route's, so Traefik sends it everything while it runs.
/// Its healthcheck only tests the drain flag (so the image needs `/bin/sh`): that is how it
/// leaves the proxy before it is stopped, without a failed request.
#[derive(Debug, Clone, PartialEq)]
pub struct MaintenanceSpec {
    pub container: Box<DesiredContainer>,
    /// Traefik's service name for it (to ask the API whether it routes).
    pub traefik_service: String,
    /// The network Traefik reaches it on.
    pub proxy_network: Option<String>,
}

/// The hooks of one service by phase.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct ServiceHooks {
    pub before: Vec<HookSpec>,
    pub after_start: Vec<HookSpec>,
    pub after_switch: Vec<HookSpec>,
}

impl ServiceHooks {
    pub fn is_empty(&self) -> bool {
        self.before.is_empty() && self.after_start.is_empty() && self.after_switch.is_empty()
    }
}

/// One hook step, ready to run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HookSpec {
    /// `before[0]`, `after_start[1]`, …: how records and errors name it.
    pub label: String,
    pub command: Vec<String>,
    pub place: HookPlace,
    pub timeout_ms: u64,
    /// Keep only the newest `keep` files of this host directory after success.
    pub rotate: Option<(String, u32)>,
}

/// Where a hook step runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum HookPlace {
    /// `exec` in the service's new container.
    NewContainer,
    /// `exec` in another service's running container (any of these names, for blue/green).
    Exec {
        service: String,
        containers: Vec<String>,
    },
    /// A one-off container from `image` with the service's env and networks and these mounts,
    /// removed afterwards.
    OneOff {
        image: String,
        mounts: Vec<MountSpec>,
    },
}

/// A hook step may run this long unless it says otherwise.
pub const DEFAULT_HOOK_TIMEOUT_MS: u64 = 300_000;

/// How a blue/green service is released.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BlueGreen {
    /// The color git pins as serving; `None` alternates on each new spec.
    pub active: Option<Color>,
    pub keep_idle: KeepIdle,
    /// Wait for the proxy to pick up a change when its API cannot be asked.
    pub drain_ms: u64,
    /// Traefik's service name (`<name>@docker` in its API) and the port it routes to.
    pub traefik_service: Option<String>,
    /// The network Traefik reaches the containers on.
    pub proxy_network: Option<String>,
    /// The service's own health test as an exec command (without the drain and hold
    /// wrappers): dockhand runs it itself during the gate, with [`DesiredContainer::probes`].
    pub probe: Vec<String>,
}

/// The Engine's stop timeout when a container sets none (`docker stop` without `-t`).
pub const DOCKER_STOP_SECS: u64 = 10;

/// Inside every blue/green container: a tmpfs (empty on every start) holding the drain flag
/// that the wrapped healthcheck tests, so that dockhand can take a color out of the proxy
/// (unhealthy containers get no traffic from Traefik) before stopping it.
pub const DRAIN_DIR: &str = "/.dockhand";
pub const DRAIN_FLAG: &str = "/.dockhand/drain";
/// In the root file system of every blue/green container: put there (non-empty) before the
/// first start, so the container cannot turn healthy (and so cannot receive traffic) until
/// dockhand's own gate passed (its probes every 100 ms, then the `after_start` hooks) and it
/// empties the file. The gate therefore does not wait for Docker's healthcheck interval, and
/// dockhand-only checks (`health.http` with a body match, smoke of hooks) really gate traffic.
/// Emptying needs only the shell the healthcheck already uses (no `rm` in the image), and the
/// file lives outside the tmpfs so that a restart does not bring the hold back.
pub const HOLD_FLAG: &str = "/.dockhand-hold";

impl DesiredContainer {
    /// The container of one color of a blue/green service: its name and `dockhand.color`.
    pub fn colored(&self, color: Color) -> DesiredContainer {
        let mut c = self.clone();
        c.name = format!("{}-{}", self.name, color.as_str());
        c.labels
            .insert(labels::COLOR.to_string(), color.as_str().to_string());
        c
    }

    /// Every image a change of this service runs: its own, one-off hook containers', and its
    /// maintenance container's. Preflight checks them all and apply pulls them all before
    /// anything is touched.
    pub fn images(&self) -> Vec<&str> {
        let h = &self.hooks;
        let mut out = vec![self.spec.image.as_str()];
        for step in h.before.iter().chain(&h.after_start).chain(&h.after_switch) {
            if let HookPlace::OneOff { image, .. } = &step.place {
                out.push(image);
            }
        }
        if let Some(m) = &self.maintenance {
            out.push(&m.container.spec.image);
        }
        out
    }

    /// Whether replacing this service's running version has steps during which it should not
    /// serve, so that its maintenance container (if any) takes the route: a recreate has a
    /// gap; a blue/green release has none unless it runs hooks before the new version serves
    /// (a migration may break what the old version relies on).
    pub fn change_has_downtime(&self) -> bool {
        self.blue_green.is_none()
            || !self.hooks.before.is_empty()
            || !self.hooks.after_start.is_empty()
    }

    /// Where a recreate keeps the previous container until the new one is verified. Found
    /// at plan time, it means a recreate was interrupted before its end.
    pub fn aside_name(&self) -> String {
        format!("{}-dockhand-old", self.name)
    }

    /// How long a stop of this service's container waits after the stop signal before the
    /// Engine kills it: `stop_grace_period` in whole seconds (rounded up), else Docker's
    /// default of 10 s. Every stop path (remove, recreate, retire, maintenance) uses it.
    pub fn stop_grace(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.spec.stop_grace_secs.unwrap_or(DOCKER_STOP_SECS))
    }

    /// Every container name this service may use.
    pub fn container_names(&self) -> Vec<String> {
        match &self.blue_green {
            None => vec![self.name.clone()],
            Some(_) => Color::ALL
                .iter()
                .map(|c| format!("{}-{}", self.name, c.as_str()))
                .collect(),
        }
    }
}

/// The one-off container a hook step runs in: `<base>-hook-<label>` with the label's
/// brackets dropped and `_` written `-` (`before[0]` → `web-hook-before0`). `load::validate`
/// refuses a project where this equals another container's name.
pub fn hook_container_name(base: &str, label: &str) -> String {
    format!(
        "{base}-hook-{}",
        label.replace(['[', ']'], "").replace('_', "-")
    )
}

/// A Docker healthcheck test (`CMD …` or `CMD-SHELL …`) as a command to exec.
fn probe_command(test: &[String]) -> Vec<String> {
    match test.first().map(String::as_str) {
        Some("CMD-SHELL") => vec![
            "/bin/sh".into(),
            "-c".into(),
            test.get(1).cloned().unwrap_or_default(),
        ],
        _ => test.iter().skip(1).cloned().collect(),
    }
}

/// `$0` of the wrapper shell (what `sh` prints in its own error messages).
const WRAPPER_NAME: &str = "dockhand-health";

/// The healthcheck of a blue/green container: the service's own test, failing while the drain
/// flag exists or the hold flag is not empty.
///
/// Shape: `["CMD", "/bin/sh", "-c", <gate> && exec …, "dockhand-health", <user args>…]`. The
/// user's test is never spliced into the wrapper script: a `CMD-SHELL` text is passed as its
/// own argument and run with `/bin/sh -c "$1"`, a `CMD` list is run with `exec "$@"`, so any
/// shell text (a trailing `# comment`, a trailing `;`, newlines, quotes) means what it means
/// alone. Docker runs `CMD-SHELL` with `/bin/sh -c` on Linux, so the inner shell is the same.
fn with_drain(mut h: HealthSpec) -> HealthSpec {
    let mut test: Vec<String> = vec![
        "CMD".into(),
        "/bin/sh".into(),
        "-c".into(),
        String::new(),
        WRAPPER_NAME.into(),
    ];
    let gate = format!("test ! -e {DRAIN_FLAG} && test ! -s {HOLD_FLAG}");
    match h.test.first().map(String::as_str) {
        Some("CMD-SHELL") => {
            test[3] = format!("{gate} && exec /bin/sh -c \"$1\"");
            test.push(h.test.get(1).cloned().unwrap_or_default());
        }
        _ => {
            test[3] = format!("{gate} && exec \"$@\"");
            test.extend(h.test.iter().skip(1).cloned());
        }
    }
    h.test = test;
    h
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DesiredNetwork {
    pub stack: String,
    pub name: String,
    pub driver: Option<String>,
    pub internal: bool,
    pub external: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DesiredVolume {
    pub stack: String,
    pub name: String,
    /// Its name under the other `names:` spelling (an owned volume without an explicit
    /// `name:`): where its data is if the setting changed since it was created.
    pub other_spelling: Option<String>,
    pub driver: Option<String>,
    pub external: bool,
    /// `shared: true`: containers of different services may run on it at once during a
    /// handover (see `plan`'s ordering of removals).
    pub shared: bool,
}

/// Everything dockhand wants on the host.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Desired {
    /// Ownership scope (`project` in dockhand.yaml).
    pub project: String,
    pub stacks: Vec<String>,
    pub containers: Vec<DesiredContainer>,
    pub networks: Vec<DesiredNetwork>,
    pub volumes: Vec<DesiredVolume>,
    /// `traefik.api` from dockhand.yaml: where releases confirm routing changes.
    pub traefik_api: Option<String>,
    /// The host's key for hidden-value markers (see [`ContainerSpec::redacted`]).
    pub marker_key: MarkerKey,
}

/// Default `release.drain`: longer than Traefik's default provider throttle (2 s), so that a
/// change it has been told about has taken effect.
pub const DEFAULT_DRAIN_MS: u64 = 3_000;

/// A mark of each env file's contents (HMAC-SHA256 under the host's [`MarkerKey`]), keyed by
/// path (read at the edge).
pub type EnvFileHashes = BTreeMap<String, String>;

#[cfg(test)]
mod tests {
    use super::*;

    fn health(test: &[&str]) -> HealthSpec {
        HealthSpec {
            test: test.iter().map(|s| s.to_string()).collect(),
            interval_ms: Some(1_000),
            timeout_ms: None,
            retries: Some(3),
            start_period_ms: None,
            start_interval_ms: None,
        }
    }

    /// Runs a wrapped test the way Docker runs a `CMD` healthcheck (exec of the list) on this
    /// machine, whose root has neither the drain nor the hold flag, and returns its exit code.
    fn run(wrapped: &HealthSpec) -> i32 {
        assert_eq!(wrapped.test[0], "CMD");
        std::process::Command::new(&wrapped.test[1])
            .args(&wrapped.test[2..])
            .status()
            .expect("run /bin/sh")
            .code()
            .expect("exit code")
    }

    fn shell(text: &str) -> i32 {
        run(&with_drain(health(&["CMD-SHELL", text])))
    }

    #[test]
    fn wrapped_shell_test_keeps_the_user_text_as_one_argument() {
        let w = with_drain(health(&["CMD-SHELL", "curl -f x # probe"]));
        assert_eq!(
            w.test,
            vec![
                "CMD",
                "/bin/sh",
                "-c",
                "test ! -e /.dockhand/drain && test ! -s /.dockhand-hold && exec /bin/sh -c \"$1\"",
                "dockhand-health",
                "curl -f x # probe",
            ]
        );
        assert_eq!(w.interval_ms, Some(1_000));
        assert_eq!(w.retries, Some(3));
    }

    #[test]
    fn wrapped_shell_test_with_a_trailing_comment_passes_and_fails_as_the_text_does() {
        assert_eq!(shell("true # always healthy"), 0);
        assert_eq!(shell("false # never healthy"), 1);
    }

    #[test]
    fn wrapped_shell_test_with_a_trailing_semicolon_or_ampersand_runs() {
        assert_eq!(shell("true;"), 0);
        assert_eq!(shell("false ;"), 1);
        assert_eq!(shell("true &&\ntrue"), 0);
    }

    #[test]
    fn wrapped_shell_test_with_newlines_runs_every_line() {
        assert_eq!(shell("true\n# a comment line\n\nexit 3\n"), 3);
        assert_eq!(shell("set -e\nfalse\ntrue"), 1);
    }

    #[test]
    fn wrapped_shell_test_keeps_quotes_and_dollars() {
        assert_eq!(shell(r#"test "$(echo 'a  b')" = 'a  b'"#), 0);
        assert_eq!(shell(r#"x='it'"'"'s'; test "$x" = "it's""#), 0);
        assert_eq!(
            shell("test \"$1\" = ''"),
            0,
            "$1 of the inner shell is empty"
        );
    }

    #[test]
    fn wrapped_exec_test_passes_every_argument_verbatim() {
        let w = with_drain(health(&[
            "CMD",
            "sh",
            "-c",
            "test \"$0\" = 'a b # c'",
            "a b # c",
        ]));
        assert_eq!(
            &w.test[4..],
            [
                "dockhand-health",
                "sh",
                "-c",
                "test \"$0\" = 'a b # c'",
                "a b # c"
            ]
        );
        assert_eq!(run(&w), 0);
        assert_eq!(run(&with_drain(health(&["CMD", "false"]))), 1);
    }
}
