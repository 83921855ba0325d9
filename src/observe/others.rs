//! Other dockhand projects on this Engine: the hosts their containers route through Traefik.
//!
//! Two projects on one host share one proxy; a route of this project to a host another
//! project already serves would split (or steal) that host's traffic. `observe` lists every
//! dockhand-managed container once; this module turns the other projects' ones into
//! [`OtherRoute`]s for the planner, which reports a conflict. Read-only: nothing here touches
//! another project's objects.

use crate::model::actual::{ActualContainer, OtherRoute};
use crate::spec::{labels, traefik};

/// The hosts routed by `containers` that belong to a dockhand project other than `project`
/// (running or not: a stopped container routes again when started), sorted.
pub fn routes(project: &str, containers: &[ActualContainer]) -> Vec<OtherRoute> {
    let mut out: Vec<OtherRoute> = containers
        .iter()
        .filter(|c| c.label(labels::MANAGED) == Some("true"))
        .filter(|c| c.label(labels::PROJECT).is_some_and(|p| p != project))
        .flat_map(|c| {
            traefik::routed_hosts(&c.labels)
                .into_iter()
                .map(|host| OtherRoute {
                    project: c.label(labels::PROJECT).unwrap_or_default().to_string(),
                    container: c.name.clone(),
                    host,
                })
        })
        .collect();
    out.sort_by(|a, b| {
        (&a.host, &a.project, &a.container).cmp(&(&b.host, &b.project, &b.container))
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::actual::{Attached, RunState};

    fn container(name: &str, labels: &[(&str, &str)]) -> ActualContainer {
        ActualContainer {
            id: name.into(),
            name: name.into(),
            state: RunState::Running,
            status: String::new(),
            image: String::new(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            attached: Attached::default(),
            inspected: None,
        }
    }

    #[test]
    fn only_other_projects_hosts_are_read() {
        let cs = [
            container(
                "a-web",
                &[
                    ("dockhand.managed", "true"),
                    ("dockhand.project", "a"),
                    (
                        "traefik.http.routers.x.rule",
                        "Host(`Shop.Example`) && PathPrefix(`/`)",
                    ),
                ],
            ),
            container(
                "b-web",
                &[
                    ("dockhand.managed", "true"),
                    ("dockhand.project", "b"),
                    ("traefik.http.routers.y.rule", "Host(`b.example`)"),
                ],
            ),
            container(
                "c-web",
                &[
                    ("dockhand.managed", "true"),
                    ("dockhand.project", "c"),
                    ("traefik.enable", "false"),
                    ("traefik.http.routers.z.rule", "Host(`c.example`)"),
                ],
            ),
            container(
                "hand-made",
                &[("traefik.http.routers.h.rule", "Host(`h.example`)")],
            ),
        ];
        let r = routes("b", &cs);
        assert_eq!(
            r,
            vec![OtherRoute {
                project: "a".into(),
                container: "a-web".into(),
                host: "shop.example".into(),
            }]
        );
    }
}
