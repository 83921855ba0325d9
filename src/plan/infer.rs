//! Networks and volumes confirmed from the container list alone, so that a pass with nothing
//! to do costs the Engine one call.
//!
//! The Engine refuses to remove a network a running container is attached to, or a volume any
//! container mounts. So when every declared network is attached to a running container of the
//! project, and every declared volume is mounted by one, they all exist, and they are the ones
//! those containers were created on (dockhand created the containers only after the network
//! and volume checks passed). A missing container needs no proof here: the plan then creates
//! it, and a plan with work in it always comes from a full read. What this cannot see is an
//! object nobody uses: an unused declared network (maybe removed by hand) makes it answer
//! `None`; a stale network no longer declared, or a squatter on a blue/green service's idle
//! name, stays unseen until the next full read, which the agent makes at each new revision and
//! every five minutes.

use std::collections::BTreeSet;

use crate::model::actual::{Actual, ActualContainer, ActualObject, RunState};
use crate::spec::Desired;

/// The host as the plan needs to see it, built from `managed` (this project's containers)
/// alone, when the containers prove every declared network and volume; `None` otherwise.
pub fn from_containers(desired: &Desired, managed: Vec<ActualContainer>) -> Option<Actual> {
    let attached: BTreeSet<&str> = managed
        .iter()
        .filter(|c| c.state == RunState::Running)
        .flat_map(|c| c.attached.networks.iter().map(String::as_str))
        .collect();
    let mounted: BTreeSet<&str> = managed
        .iter()
        .flat_map(|c| c.attached.volumes.iter().map(String::as_str))
        .collect();
    let networks_proven = desired
        .networks
        .iter()
        .all(|n| attached.contains(n.name.as_str()));
    let volumes_proven = desired
        .volumes
        .iter()
        .all(|v| mounted.contains(v.name.as_str()));
    if !(networks_proven && volumes_proven) {
        return None;
    }
    let object = |stack: &str, name: &str, external: bool| ActualObject {
        name: name.to_string(),
        owner_stack: (!external).then(|| stack.to_string()),
        other_project: None,
    };
    Some(Actual {
        networks: desired
            .networks
            .iter()
            .map(|n| object(&n.stack, &n.name, n.external))
            .collect(),
        volumes: desired
            .volumes
            .iter()
            .map(|v| object(&v.stack, &v.name, v.external))
            .collect(),
        managed,
        foreign: Vec::new(),
        // Read only by a full observe: a route taken since is caught at the next one.
        other_routes: Vec::new(),
        network_users: Default::default(),
    })
}
