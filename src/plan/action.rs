//! [`Action`]: one step of a plan, and the [`ReleaseStep`]s of a blue/green release.

use serde::Serialize;

use crate::model::Color;

use super::drift::Fix;
use super::FieldChange;
// Only the docs link to it (`Plan::waves`).
#[cfg(doc)]
use super::Plan;

/// One step of a plan.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Action {
    /// Create a network dockhand will own (`driver` unset: the Engine's default, bridge).
    CreateNetwork {
        stack: String,
        name: String,
        driver: Option<String>,
        internal: bool,
    },
    /// Create a named volume dockhand will own (`driver` unset: the Engine's default, local).
    CreateVolume {
        stack: String,
        name: String,
        driver: Option<String>,
    },
    /// Pull (if absent), create and start a container that does not exist.
    Create {
        stack: String,
        service: String,
        container: String,
        image: String,
        /// The `depends_on` wave it runs in (see [`Plan::waves`]).
        wave: usize,
    },
    /// Replace a container whose spec changed: pull, stop, create, start, remove the old one.
    Recreate {
        stack: String,
        service: String,
        container: String,
        image: String,
        changes: Vec<FieldChange>,
        wave: usize,
        /// The service's maintenance container takes the route while it is down.
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        maintenance: bool,
    },
    /// Start an existing, unchanged container that is not running.
    Start {
        stack: String,
        service: String,
        container: String,
        reason: String,
        wave: usize,
    },
    /// Put back in place what was changed by hand and the Engine can change back without a
    /// new container (a network reconnected with its alias, the restart policy updated, the
    /// name restored), then start it if it is not running (`start`, the reason). `changes`
    /// names each drifted field with what was found.
    Correct {
        stack: String,
        service: String,
        container: String,
        fixes: Vec<Fix>,
        changes: Vec<FieldChange>,
        #[serde(skip_serializing_if = "Option::is_none")]
        start: Option<String>,
        wave: usize,
    },
    /// Stop and remove a managed container that is no longer desired. `service` is its
    /// `dockhand.service` label (empty if it has none).
    Remove {
        stack: String,
        service: String,
        container: String,
        reason: String,
        /// Set when a container of another service starts on an owned volume this one mounts
        /// (a rename, a takeover): it is stopped and removed before wave `first` starts, not
        /// after the waves, so the volume never has two writers (see `plan/volumes.rs`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        first: Option<usize>,
    },
    /// Remove a managed network that is no longer declared.
    RemoveNetwork { stack: String, name: String },
    /// Delete a volume this project owns, with its data. Planned only by `dockhand down
    /// --volumes` ([`super::decommission`]): a volume no longer declared is otherwise kept.
    RemoveVolume { stack: String, name: String },
    /// Release a blue/green service to `color`: bring its container up (`step`), wait for the
    /// health gate, wait until the proxy routes to it, then retire `retire` (take it out of
    /// the proxy, drain, stop). The serving color is never stopped before the new one passed.
    Release {
        stack: String,
        service: String,
        container: String,
        color: Color,
        image: String,
        step: ReleaseStep,
        changes: Vec<FieldChange>,
        retire: Option<String>,
        wave: usize,
        /// The service's maintenance container takes the route while the release runs steps
        /// with downtime (`before`/`after_start` hooks).
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        maintenance: bool,
    },
    /// Take a running color that should not serve out of the proxy, then stop it.
    Retire {
        stack: String,
        service: String,
        container: String,
        reason: String,
        wave: usize,
    },
}

/// How a release brings up the container of its color.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ReleaseStep {
    /// The color has no container yet.
    Create,
    /// The color's container holds another spec (it is idle: not serving).
    Recreate,
    /// The color's container holds this spec but is stopped: the instant rollback path.
    Start,
    /// The container runs with this spec but has not passed its healthcheck yet (a release
    /// interrupted before the switch).
    Gate,
}

impl ReleaseStep {
    pub fn as_str(self) -> &'static str {
        match self {
            ReleaseStep::Create => "create",
            ReleaseStep::Recreate => "recreate",
            ReleaseStep::Start => "start",
            ReleaseStep::Gate => "already up",
        }
    }
}

impl Action {
    pub fn stack(&self) -> &str {
        match self {
            Action::CreateNetwork { stack, .. }
            | Action::CreateVolume { stack, .. }
            | Action::Create { stack, .. }
            | Action::Recreate { stack, .. }
            | Action::Start { stack, .. }
            | Action::Correct { stack, .. }
            | Action::Remove { stack, .. }
            | Action::RemoveNetwork { stack, .. }
            | Action::RemoveVolume { stack, .. }
            | Action::Release { stack, .. }
            | Action::Retire { stack, .. } => stack,
        }
    }

    /// The service this action converges (or, for a removal, the one the container belonged
    /// to); `None` for networks and volumes.
    pub fn service(&self) -> Option<&str> {
        match self {
            Action::Create { service, .. }
            | Action::Recreate { service, .. }
            | Action::Start { service, .. }
            | Action::Correct { service, .. }
            | Action::Remove { service, .. }
            | Action::Release { service, .. }
            | Action::Retire { service, .. } => Some(service),
            Action::CreateNetwork { .. }
            | Action::CreateVolume { .. }
            | Action::RemoveNetwork { .. }
            | Action::RemoveVolume { .. } => None,
        }
    }

    /// The `depends_on` wave a container action runs in; `None` for the actions that run
    /// before the waves (networks, volumes) or after them (removals).
    pub fn wave(&self) -> Option<usize> {
        match self {
            Action::Create { wave, .. }
            | Action::Recreate { wave, .. }
            | Action::Start { wave, .. }
            | Action::Correct { wave, .. }
            | Action::Release { wave, .. }
            | Action::Retire { wave, .. } => Some(*wave),
            _ => None,
        }
    }

    /// The container this action touches, if any.
    pub fn container(&self) -> Option<&str> {
        match self {
            Action::Create { container, .. }
            | Action::Recreate { container, .. }
            | Action::Start { container, .. }
            | Action::Correct { container, .. }
            | Action::Remove { container, .. }
            | Action::Release { container, .. }
            | Action::Retire { container, .. } => Some(container),
            _ => None,
        }
    }
}
