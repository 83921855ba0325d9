//! How a service is released: strategy, blue/green colors, maintenance page, hooks, volume
//! rotation and the preflight disk check (with [`parse_size`] for its sizes).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{checked, Check, Mount, Span, DURATION_PATTERN, PATH_PATTERN};

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
