//! `dockhand down`: the plan that decommissions a project. It is the one planner asked about
//! a desired state with nothing in it, so a decommission removes exactly what a repository
//! without stacks would remove (every container and network the project owns, by label),
//! plus, only when asked, the project's volumes.

use crate::model::actual::Actual;
use crate::spec::Desired;

use super::{plan, Action, Plan};

/// The plan that removes everything `project` owns in `actual`: its containers (both colors
/// of a blue/green service, maintenance and hook leftovers) and networks; its volumes too
/// when `volumes` (as [`Action::RemoveVolume`]s, last), else they stay in
/// [`Plan::kept_volumes`]. A network a foreign container still uses is in
/// [`Plan::kept_networks`], as in any plan. Objects of other projects and unowned ones are not
/// in `actual`'s owned lists, so they are never planned for.
pub fn decommission(project: &str, actual: &Actual, volumes: bool) -> Plan {
    let nothing = Desired {
        project: project.to_string(),
        ..Desired::default()
    };
    let mut p = plan(&nothing, actual);
    if volumes {
        for name in std::mem::take(&mut p.kept_volumes) {
            let stack = actual
                .volumes
                .iter()
                .find(|v| v.name == name)
                .and_then(|v| v.owner_stack.clone())
                .unwrap_or_default();
            p.actions.push(Action::RemoveVolume { stack, name });
        }
    }
    p
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::model::actual::{ActualContainer, ActualObject, Attached, RunState};
    use crate::spec::labels;

    fn container(name: &str, stack: &str, service: &str) -> ActualContainer {
        ActualContainer {
            id: format!("id-{name}"),
            name: name.into(),
            state: RunState::Running,
            status: "Up 3 minutes".into(),
            image: "r/x@sha256:00".into(),
            labels: BTreeMap::from([
                (labels::MANAGED.to_string(), "true".to_string()),
                (labels::PROJECT.to_string(), "p".to_string()),
                (labels::STACK.to_string(), stack.to_string()),
                (labels::SERVICE.to_string(), service.to_string()),
            ]),
            attached: Attached::default(),
            inspected: None,
        }
    }

    fn object(name: &str, owner: Option<&str>, other: Option<&str>) -> ActualObject {
        ActualObject {
            name: name.into(),
            owner_stack: owner.map(str::to_string),
            other_project: other.map(str::to_string),
        }
    }

    fn host() -> Actual {
        Actual {
            managed: vec![
                container("shop-web-blue", "shop", "web"),
                container("shop-web-green", "shop", "web"),
                container("shop-db", "shop", "db"),
            ],
            networks: vec![
                object("shop-net", Some("shop"), None),
                object("bridge", None, None),
                object("other-net", None, Some("other")),
            ],
            volumes: vec![
                object("shop-data", Some("shop"), None),
                object("handmade", None, None),
                object("other-data", None, Some("other")),
            ],
            ..Actual::default()
        }
    }

    #[test]
    fn down_removes_every_owned_container_and_network_and_keeps_volumes() {
        let p = decommission("p", &host(), false);
        let removed: Vec<String> = p
            .actions
            .iter()
            .map(|a| match a {
                Action::Remove { container, .. } => format!("container {container}"),
                Action::RemoveNetwork { name, .. } => format!("network {name}"),
                other => format!("unexpected {other:?}"),
            })
            .collect();
        assert_eq!(
            removed,
            [
                "container shop-db",
                "container shop-web-blue",
                "container shop-web-green",
                "network shop-net"
            ]
        );
        assert_eq!(p.kept_volumes, ["shop-data"]);
        assert!(p.conflicts.is_empty());
    }

    #[test]
    fn down_with_volumes_deletes_only_the_projects_volumes_last() {
        let p = decommission("p", &host(), true);
        assert!(p.kept_volumes.is_empty());
        assert_eq!(
            p.actions.last(),
            Some(&Action::RemoveVolume {
                stack: "shop".into(),
                name: "shop-data".into()
            })
        );
        assert_eq!(
            p.actions
                .iter()
                .filter(|a| matches!(a, Action::RemoveVolume { .. }))
                .count(),
            1
        );
        assert_eq!(
            super::super::render::summary_line(&p).split(',').next(),
            Some("0 to create")
        );
        assert_eq!(p.summary().remove, 5);
    }

    #[test]
    fn down_of_an_empty_host_is_an_empty_plan() {
        let mut h = host();
        h.managed.clear();
        h.networks.retain(|n| n.owner_stack.is_none());
        h.volumes.retain(|v| v.owner_stack.is_none());
        assert!(decommission("p", &h, true).is_empty());
    }
}
