//! What the Docker Engine holds, as far as planning needs: plain data filled in by `observe`.

use std::collections::BTreeMap;

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RunState {
    Created,
    Running,
    Paused,
    Restarting,
    Exited,
    Dead,
    Other,
}

impl RunState {
    pub fn parse(state: &str) -> RunState {
        match state {
            "created" => RunState::Created,
            "running" => RunState::Running,
            "paused" => RunState::Paused,
            "restarting" => RunState::Restarting,
            "exited" => RunState::Exited,
            "dead" => RunState::Dead,
            _ => RunState::Other,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ActualContainer {
    pub id: String,
    pub name: String,
    pub state: RunState,
    /// Docker's human status, e.g. `Exited (0) 3 minutes ago`.
    pub status: String,
    /// The image reference the container was created from.
    pub image: String,
    pub labels: BTreeMap<String, String>,
    /// Networks it is attached to and named volumes it mounts, as the list call reports them:
    /// what lets a no-op pass confirm networks and volumes without listing them.
    #[serde(skip)]
    pub attached: Attached,
    /// What only an inspect shows, read by the full observe; `None` for a read from the list
    /// alone (the agent's cheap pass), where nothing beyond the list is judged.
    #[serde(skip)]
    pub inspected: Option<Inspected>,
}

/// The settings of a container that a human can change with the docker CLI and the list call
/// cannot show, as the Engine reports them (`docker inspect`). Plain data: the planner judges.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Inspected {
    /// Restart policy name as the Engine spells it (`no`, `always`, `unless-stopped`,
    /// `on-failure`; an empty name reads as `no`).
    pub restart: String,
    /// Network name → its aliases on that network (the Engine adds the short id itself).
    pub networks: std::collections::BTreeMap<String, Vec<String>>,
    /// Resource limits set to anything but "unlimited", as `(name, value)` in the Engine's
    /// units (`memory` bytes, `nano_cpus` 1e-9 CPUs, …), sorted by name. dockhand sets none.
    pub limits: Vec<(String, i64)>,
    /// Env variable name → keyed mark of its value (as in the spec's redacted form), so that
    /// no secret value is held.
    pub env: std::collections::BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Attached {
    pub networks: Vec<String>,
    pub volumes: Vec<String>,
}

/// Docker's health verdict, as the list call reports it inside `status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    /// No healthcheck.
    None,
    Starting,
    Healthy,
    Unhealthy,
}

impl ActualContainer {
    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels.get(key).map(String::as_str)
    }

    /// Read from `status` (`Up 3 minutes (healthy)`), so that no inspect is needed.
    pub fn health(&self) -> Health {
        if self.status.ends_with("(healthy)") {
            Health::Healthy
        } else if self.status.ends_with("(unhealthy)") {
            Health::Unhealthy
        } else if self.status.ends_with("(health: starting)") {
            Health::Starting
        } else {
            Health::None
        }
    }

    /// The exit code of an exited container, read from `status` (`Exited (0) 3 seconds ago`).
    pub fn exit_code(&self) -> Option<i64> {
        let rest = self.status.strip_prefix("Exited (")?;
        rest.split(')').next()?.parse().ok()
    }

    /// How long it has been up at least, read from `status` (`Up 3 minutes (…)`: 180 s) the
    /// way Docker words it (`Less than a second`, `About a minute`, `N hours`, …); `None` when
    /// it is not up. A lower bound, so "past its start period" is never claimed too early.
    pub fn uptime(&self) -> Option<std::time::Duration> {
        let rest = self.status.strip_prefix("Up ")?;
        let rest = rest.split(" (").next()?.trim();
        let secs = match rest {
            "Less than a second" => 0,
            "About a minute" => 60,
            "About an hour" => 3600,
            _ => {
                let (n, unit) = rest.split_once(' ')?;
                let n: u64 = n.parse().ok()?;
                let unit = unit.trim_end_matches('s');
                n * match unit {
                    "second" => 1,
                    "minute" => 60,
                    "hour" => 3600,
                    "day" => 86_400,
                    "week" => 7 * 86_400,
                    "month" => 30 * 86_400,
                    "year" => 365 * 86_400,
                    _ => return None,
                }
            }
        };
        Some(std::time::Duration::from_secs(secs))
    }

    /// Running and, if it has a healthcheck, healthy: what Traefik sends traffic to.
    pub fn serving(&self) -> bool {
        self.state == RunState::Running && matches!(self.health(), Health::None | Health::Healthy)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ActualObject {
    pub name: String,
    /// The `dockhand.stack` label, when dockhand owns the object.
    pub owner_stack: Option<String>,
    /// The `dockhand.project` label, when *another* dockhand project owns the object (a
    /// conflict names it, and never suggests taking its object over).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub other_project: Option<String>,
}

/// The Engine's state relevant to a plan.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Actual {
    /// Containers carrying `dockhand.managed=true`.
    pub managed: Vec<ActualContainer>,
    /// Containers without dockhand's labels that hold a name dockhand wants.
    pub foreign: Vec<ActualContainer>,
    pub networks: Vec<ActualObject>,
    pub volumes: Vec<ActualObject>,
    /// Hosts that containers of *other* dockhand projects on this Engine route through
    /// Traefik (read from their rule labels by `observe::others`): a route of this project
    /// to one of them is a conflict.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub other_routes: Vec<OtherRoute>,
    /// Per owned network the plan would remove (and only those: it costs an inspect each),
    /// the containers attached to it that this project does not own, by name. The Engine
    /// refuses to remove a network in use, so the planner keeps these instead.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub network_users: BTreeMap<String, Vec<String>>,
}

/// A host another dockhand project routes, and which of its containers does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OtherRoute {
    pub project: String,
    pub container: String,
    /// Lowercased, as Traefik compares hosts.
    pub host: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn up(status: &str) -> ActualContainer {
        ActualContainer {
            id: "1".into(),
            name: "x".into(),
            state: RunState::Running,
            status: status.into(),
            image: "i".into(),
            labels: BTreeMap::new(),
            attached: Attached::default(),
            inspected: None,
        }
    }

    /// Docker's wording (go-units `HumanDuration`), read as a lower bound in seconds.
    #[test]
    fn uptime_is_read_from_dockers_words() {
        let secs = |s: &str| up(s).uptime().map(|d| d.as_secs());
        assert_eq!(secs("Up Less than a second"), Some(0));
        assert_eq!(secs("Up 1 second (health: starting)"), Some(1));
        assert_eq!(secs("Up 45 seconds (health: starting)"), Some(45));
        assert_eq!(secs("Up About a minute (healthy)"), Some(60));
        assert_eq!(secs("Up 3 minutes (unhealthy)"), Some(180));
        assert_eq!(secs("Up About an hour"), Some(3600));
        assert_eq!(secs("Up 5 hours"), Some(5 * 3600));
        assert_eq!(secs("Up 3 days"), Some(3 * 86_400));
        assert_eq!(secs("Up 2 weeks (Paused)"), Some(14 * 86_400));
        assert_eq!(secs("Exited (0) 3 seconds ago"), None);
        assert_eq!(secs("Restarting (1) 2 seconds ago"), None);
    }
}
