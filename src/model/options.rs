//! Container options that real stacks set besides image, env and mounts: the init process,
//! `/etc/hosts` entries, the log driver, resource limits, a read-only root, ulimits, the size
//! of `/dev/shm`, security options and sysctls. Field names are compose's where compose has
//! one (`mem_limit`, `cpus`, `pids_limit`, `shm_size`, …), so a compose user finds them.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::parse_size;

/// A size above zero: a number and a unit, as [`super::SIZE_PATTERN`] (`512MiB`, `1GB`).
pub const BYTES_PATTERN: &str = r"^0*[1-9][0-9]*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)$";

/// An `extra_hosts` entry: `HOST:IP` (compose's spelling), e.g. `db.internal:10.0.0.5` or
/// `host.docker.internal:host-gateway`. An IPv6 address follows the first `:` as written.
pub const EXTRA_HOST_PATTERN: &str =
    r"^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?:([0-9a-fA-F:.]+|host-gateway)$";

/// A size in bytes, written as [`BYTES_PATTERN`] (`512MiB`, `1GB`, `65536B`): parsed at load.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Bytes(pub u64);

impl Bytes {
    /// The value as the Engine's API takes it (`i64` bytes), saturated.
    pub fn as_i64(self) -> i64 {
        i64::try_from(self.0).unwrap_or(i64::MAX)
    }
}

impl Serialize for Bytes {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&format_args!("{}B", self.0))
    }
}

impl<'de> Deserialize<'de> for Bytes {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        parse_size(&text)
            .filter(|b| *b > 0)
            .map(Bytes)
            .ok_or_else(|| {
                serde::de::Error::custom(format!(
                    "`{text}` is not a valid size (write e.g. 512MiB, 1GB or 65536B)"
                ))
            })
    }
}

impl JsonSchema for Bytes {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Bytes".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "A size: a number and a unit (B, KB, MB, GB, TB, KiB, MiB, GiB, TiB), e.g. `512MiB`.",
            "type": "string",
            "pattern": BYTES_PATTERN,
        })
    }
}

/// `logging`: the container's log driver and its options (Docker's `--log-driver` and
/// `--log-opt`), e.g. `{driver: json-file, options: {max-size: 10m, max-file: "3"}}`. Option
/// values are hidden in plans and labels like env values (a driver may take a token).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Logging {
    /// Log driver, e.g. `json-file`, `local`, `journald`, `syslog`, `none`.
    #[schemars(regex(pattern = r"^[a-z0-9][a-z0-9_.-]*$"))]
    #[serde(deserialize_with = "super::checked::name")]
    pub driver: String,
    /// The driver's options (`--log-opt KEY=VALUE`); numbers are written as YAML writes them.
    #[serde(default)]
    pub options: BTreeMap<String, super::EnvValue>,
}

/// One `ulimits` entry: a single number (soft = hard), or `{soft, hard}` (compose's forms).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum Ulimit {
    Single(i64),
    Pair { soft: i64, hard: i64 },
}

impl Ulimit {
    /// `(soft, hard)`.
    pub fn limits(self) -> (i64, i64) {
        match self {
            Ulimit::Single(n) => (n, n),
            Ulimit::Pair { soft, hard } => (soft, hard),
        }
    }
}

/// The sysctls Docker accepts in a container's own namespaces (IPC and, without
/// `network_mode: host`, network): everything else reaches the host's kernel, a host power.
pub fn namespaced_sysctl(name: &str, host_network: bool) -> bool {
    const IPC: [&str; 8] = [
        "kernel.msgmax",
        "kernel.msgmnb",
        "kernel.msgmni",
        "kernel.sem",
        "kernel.shmall",
        "kernel.shmmax",
        "kernel.shmmni",
        "kernel.shm_rmid_forced",
    ];
    IPC.contains(&name)
        || name.starts_with("fs.mqueue.")
        || (!host_network && name.starts_with("net."))
}

/// Whether a `security_opt` entry only tightens or names the sandbox (a label, an AppArmor
/// profile the host loaded, `no-new-privileges`). Everything else (`seccomp=…`, any
/// `unconfined`, `label=disable`, `systempaths=unconfined`) loosens it: a host power.
pub fn harmless_security_opt(opt: &str) -> bool {
    let (key, value) = match opt.split_once(['=', ':']) {
        Some((k, v)) => (k, Some(v)),
        None => (opt, None),
    };
    match (key, value) {
        ("no-new-privileges", None | Some("true")) => true,
        ("label", Some(v)) => ["user:", "role:", "type:", "level:"]
            .iter()
            .any(|p| v.starts_with(p)),
        ("apparmor", Some(v)) => !v.is_empty() && v != "unconfined",
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_to_bytes_and_refuse_other_spellings() {
        let b: Bytes = serde_json::from_str("\"512MiB\"").unwrap();
        assert_eq!(b, Bytes(512 << 20));
        assert_eq!(serde_json::to_string(&b).unwrap(), "\"536870912B\"");
        for bad in ["\"512m\"", "\"0B\"", "\"MiB\"", "512"] {
            assert!(serde_json::from_str::<Bytes>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn only_loosening_security_options_are_powers() {
        for ok in [
            "no-new-privileges",
            "no-new-privileges:true",
            "no-new-privileges=true",
            "label=type:svirt_apache_t",
            "apparmor=docker-nginx",
        ] {
            assert!(harmless_security_opt(ok), "{ok}");
        }
        for risky in [
            "seccomp=unconfined",
            "seccomp:unconfined",
            "apparmor=unconfined",
            "apparmor:unconfined",
            "label=disable",
            "label:disable",
            "systempaths=unconfined",
            "seccomp={}",
            "no-new-privileges=false",
            "nonsense",
        ] {
            assert!(!harmless_security_opt(risky), "{risky}");
        }
    }

    #[test]
    fn namespaced_sysctls_are_ipc_mqueue_and_net_without_host_network() {
        assert!(namespaced_sysctl("net.core.somaxconn", false));
        assert!(!namespaced_sysctl("net.core.somaxconn", true));
        assert!(namespaced_sysctl("kernel.shmmax", true));
        assert!(namespaced_sysctl("fs.mqueue.msg_max", false));
        assert!(!namespaced_sysctl("kernel.panic", false));
        assert!(!namespaced_sysctl("vm.overcommit_memory", false));
    }
}
