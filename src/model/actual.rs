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
}

impl ActualContainer {
    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels.get(key).map(String::as_str)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ActualObject {
    pub name: String,
    /// The `dockhand.stack` label, when dockhand owns the object.
    pub owner_stack: Option<String>,
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
}
