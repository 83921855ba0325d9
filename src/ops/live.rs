//! A service's live container, by labels: never by guessing names, because a blue/green
//! service's container changes color with each release.

use std::cmp::Reverse;
use std::collections::BTreeSet;

use bollard::Docker;

use super::OpsError;
use crate::model::actual::{ActualContainer, RunState};
use crate::spec::labels;

/// `STACK/SERVICE`, or `SERVICE` alone (then the one stack that has it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub stack: Option<String>,
    pub service: String,
}

impl Target {
    /// # Errors
    /// [`OpsError::BadTarget`] for an empty part or more than one `/`.
    pub fn parse(text: &str) -> Result<Target, OpsError> {
        let bad = || OpsError::BadTarget { text: text.into() };
        let mut parts = text.split('/');
        let (a, b) = (parts.next(), parts.next());
        if parts.next().is_some() {
            return Err(bad());
        }
        match (a, b) {
            (Some(s), Some(v)) if !s.is_empty() && !v.is_empty() => Ok(Target {
                stack: Some(s.into()),
                service: v.into(),
            }),
            (Some(v), None) if !v.is_empty() => Ok(Target {
                stack: None,
                service: v.into(),
            }),
            _ => Err(bad()),
        }
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.stack {
            Some(s) => write!(f, "{s}/{}", self.service),
            None => f.write_str(&self.service),
        }
    }
}

/// The live container of `target` among `containers` (this project's, as listed):
/// a container of the service (its `dockhand.stack`/`dockhand.service` labels; no
/// `dockhand.role`, so not a maintenance or hook container), the best by
/// 1. serving (running, and healthy if it has a healthcheck: what the proxy routes to), so
///    under blue/green the serving color, and the idle or retired one never;
/// 2. running;
/// 3. the most recently started (while a release has both colors serving, the new one);
/// 4. the name, so the answer never depends on the Engine's list order.
///
/// A stopped container is still an answer (a job's last run, a crashed service): its logs
/// are what one wants to read.
///
/// # Errors
/// [`OpsError::Ambiguous`] when `target` names no stack and several stacks have the
/// service; `Ok(None)` when no container of it exists.
pub fn choose<'a>(
    containers: &'a [ActualContainer],
    target: &Target,
) -> Result<Option<&'a ActualContainer>, OpsError> {
    let of_service: Vec<&ActualContainer> = containers
        .iter()
        .filter(|c| c.label(labels::ROLE).is_none())
        .filter(|c| c.label(labels::SERVICE) == Some(target.service.as_str()))
        .filter(|c| {
            target
                .stack
                .as_deref()
                .is_none_or(|s| c.label(labels::STACK) == Some(s))
        })
        .collect();
    let stacks: BTreeSet<&str> = of_service
        .iter()
        .filter_map(|c| c.label(labels::STACK))
        .collect();
    if stacks.len() > 1 {
        let stacks: Vec<&str> = stacks.into_iter().collect();
        return Err(OpsError::Ambiguous {
            service: target.service.clone(),
            example: format!("{}/{}", stacks[0], target.service),
            stacks: stacks.join(", "),
        });
    }
    Ok(of_service.into_iter().max_by_key(|c| {
        (
            c.serving(),
            c.state == RunState::Running,
            Reverse(c.uptime().unwrap_or(std::time::Duration::MAX)),
            Reverse(c.name.clone()),
        )
    }))
}

/// The services that have containers, as `stack/service`, for hints.
pub fn services(containers: &[ActualContainer]) -> Vec<String> {
    let all: BTreeSet<String> = containers
        .iter()
        .filter(|c| c.label(labels::ROLE).is_none())
        .filter_map(|c| {
            Some(format!(
                "{}/{}",
                c.label(labels::STACK)?,
                c.label(labels::SERVICE)?
            ))
        })
        .collect();
    all.into_iter().collect()
}

/// Lists `project`'s containers (one call) and picks `target`'s live one ([`choose`]).
///
/// # Errors
/// [`OpsError::NoContainer`] (with the services that do have one), [`OpsError::Ambiguous`],
/// [`OpsError::Engine`].
pub async fn find(
    docker: &Docker,
    project: &str,
    target: &Target,
) -> Result<ActualContainer, OpsError> {
    let containers = crate::observe::list_managed(docker, project).await?;
    if let Some(c) = choose(&containers, target)? {
        return Ok(c.clone());
    }
    let known = services(&containers);
    let hint = if known.is_empty() {
        format!("project `{project}` has no containers here: `dockhand apply` deploys it (or is --project right?)")
    } else {
        format!(
            "it is not deployed (`dockhand plan` shows why); services with a container: {}",
            known.join(", ")
        )
    };
    Err(OpsError::NoContainer {
        project: project.into(),
        target: target.to_string(),
        hint,
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::model::actual::Attached;

    fn c(name: &str, stack: &str, service: &str, state: RunState, status: &str) -> ActualContainer {
        ActualContainer {
            id: name.into(),
            name: name.into(),
            state,
            status: status.into(),
            image: "i".into(),
            labels: BTreeMap::from([
                (labels::STACK.to_string(), stack.to_string()),
                (labels::SERVICE.to_string(), service.to_string()),
            ]),
            attached: Attached::default(),
            inspected: None,
        }
    }

    fn pick(cs: &[ActualContainer], t: &str) -> Option<String> {
        choose(cs, &Target::parse(t).unwrap())
            .unwrap()
            .map(|c| c.name.clone())
    }

    #[test]
    fn the_serving_color_is_live_whatever_the_list_order() {
        let green = c(
            "s-web-green",
            "s",
            "web",
            RunState::Running,
            "Up 5 seconds (healthy)",
        );
        let blue = c(
            "s-web-blue",
            "s",
            "web",
            RunState::Exited,
            "Exited (0) 3 seconds ago",
        );
        for cs in [vec![green.clone(), blue.clone()], vec![blue, green]] {
            assert_eq!(pick(&cs, "s/web").as_deref(), Some("s-web-green"));
            assert_eq!(pick(&cs, "web").as_deref(), Some("s-web-green"));
        }
    }

    #[test]
    fn an_unhealthy_or_starting_color_loses_to_the_serving_one_and_both_serving_takes_the_newest() {
        let old = c(
            "s-web-blue",
            "s",
            "web",
            RunState::Running,
            "Up 2 hours (healthy)",
        );
        let gating = c(
            "s-web-green",
            "s",
            "web",
            RunState::Running,
            "Up 2 seconds (health: starting)",
        );
        assert_eq!(
            pick(&[gating.clone(), old.clone()], "s/web").as_deref(),
            Some("s-web-blue")
        );
        let new = c(
            "s-web-green",
            "s",
            "web",
            RunState::Running,
            "Up 4 seconds (healthy)",
        );
        assert_eq!(pick(&[old, new], "s/web").as_deref(), Some("s-web-green"));
    }

    #[test]
    fn a_jobs_last_run_is_found_and_roles_and_other_services_are_not() {
        let mut maint = c(
            "s-web-maintenance",
            "s",
            "web",
            RunState::Running,
            "Up 1 second",
        );
        maint
            .labels
            .insert(labels::ROLE.into(), labels::ROLE_MAINTENANCE.into());
        let job = c(
            "s-migrate",
            "s",
            "migrate",
            RunState::Exited,
            "Exited (0) 1 minute ago",
        );
        let cs = [maint, job];
        assert_eq!(pick(&cs, "s/migrate").as_deref(), Some("s-migrate"));
        assert_eq!(pick(&cs, "s/web"), None);
        assert_eq!(pick(&cs, "t/migrate"), None);
        assert_eq!(services(&cs), ["s/migrate"]);
    }

    #[test]
    fn a_service_in_two_stacks_needs_its_stack() {
        let cs = [
            c("a-web", "a", "web", RunState::Running, "Up 1 second"),
            c("b-web", "b", "web", RunState::Running, "Up 1 second"),
        ];
        let err = choose(&cs, &Target::parse("web").unwrap()).unwrap_err();
        assert!(err.to_string().contains("a/web"), "{err}");
        assert_eq!(pick(&cs, "b/web").as_deref(), Some("b-web"));
    }

    #[test]
    fn targets_parse_and_bad_ones_are_refused() {
        assert_eq!(
            Target::parse("shop/web").unwrap(),
            Target {
                stack: Some("shop".into()),
                service: "web".into()
            }
        );
        for bad in ["", "/web", "shop/", "a/b/c"] {
            assert!(Target::parse(bad).is_err(), "{bad}");
        }
    }
}
