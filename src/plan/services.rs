//! What a plan and the host it was made of say about each desired service: in sync or not,
//! healthy or not. A view for the agent's `/status` and `/metrics`, not a decision: the
//! actions stay [`Plan::actions`]. Pure, like the planner.

use serde::Serialize;

use super::Plan;
use crate::model::actual::{Actual, ActualContainer, RunState};
use crate::spec::Desired;

/// One desired service as the agent's last pass left it; each flag is one `/metrics` gauge
/// (`dockhand_service_<flag>{stack,service}`, 0 or 1).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ServiceState {
    pub stack: String,
    pub service: String,
    /// Nothing left to change for it (no action, conflict, or container with the desired spec
    /// that is not healthy).
    pub in_sync: bool,
    /// A job's last run exited 0 (or still runs); a blue/green service has a serving color;
    /// any other service's container runs and, with a healthcheck, Docker calls it healthy
    /// (`starting` is not yet healthy).
    pub healthy: bool,
    /// Not healthy with the desired spec, or its corrections are backed off (crash loop).
    pub degraded: bool,
    /// Its change belongs to a quarantined revision: not applied until a new revision or
    /// `dockhand apply --retry`.
    pub quarantined: bool,
    /// A rollback holds the project (every service) on an earlier revision.
    pub held: bool,
    /// The containers it may use (both colors of a blue/green service).
    #[serde(skip)]
    pub containers: Vec<String>,
}

impl ServiceState {
    /// Whether `container` is one of this service's.
    pub fn has(&self, container: &str) -> bool {
        self.containers.iter().any(|c| c == container)
    }
}

/// Every desired service, in the desired state's order: `in_sync`, `healthy` and `degraded`
/// (not healthy with the desired spec) as `plan` and `actual` say; `quarantined` and `held`
/// false (the agent knows those).
pub fn service_states(desired: &Desired, actual: &Actual, plan: &Plan) -> Vec<ServiceState> {
    desired
        .containers
        .iter()
        .map(|d| {
            let containers = d.container_names();
            let mine = |name: &str| containers.iter().any(|c| c == name);
            let found: Vec<&ActualContainer> =
                actual.managed.iter().filter(|c| mine(&c.name)).collect();
            let sick = plan.unhealthy.iter().any(|u| mine(&u.container));
            let changing = plan
                .actions
                .iter()
                .any(|a| a.stack() == d.stack && a.service() == Some(d.service.as_str()))
                || plan
                    .conflicts
                    .iter()
                    .any(|c| c.stack == d.stack && mine(&c.name));
            let healthy = !sick
                && if d.job {
                    found
                        .iter()
                        .any(|c| c.state == RunState::Running || c.exit_code() == Some(0))
                } else {
                    // One serving container: the only one, or a blue/green service's color.
                    found.iter().any(|c| c.serving())
                };
            ServiceState {
                stack: d.stack.clone(),
                service: d.service.clone(),
                in_sync: !changing && !sick,
                healthy,
                degraded: sick,
                quarantined: false,
                held: false,
                containers,
            }
        })
        .collect()
}

/// Calls `f` on the state of every service that has an action in `plan`, except those in
/// `skipped` (left out of an apply).
pub fn for_changed(
    states: &mut [ServiceState],
    plan: &Plan,
    skipped: &[super::Skipped],
    mut f: impl FnMut(&mut ServiceState),
) {
    for s in states.iter_mut() {
        let changed = plan
            .actions
            .iter()
            .any(|a| a.stack() == s.stack && a.service() == Some(s.service.as_str()));
        let left_out = skipped
            .iter()
            .any(|k| k.stack == s.stack && k.service == s.service);
        if changed && !left_out {
            f(s);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::{load, SourceFile};
    use crate::model::actual::RunState;
    use crate::plan::simulate::converged;

    const IMG: &str = "r/x@sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

    fn desired() -> Desired {
        let files = [
            SourceFile {
                path: "dockhand.yaml".into(),
                text: "version: 1\nproject: p\n".into(),
            },
            SourceFile {
                path: "stacks/s.yaml".into(),
                text: format!(
                    "stack: s\nservices:\n  web:\n    image: {IMG}\n  migrate:\n    image: {IMG}\n    job: true\n"
                ),
            },
        ];
        let state = load(&files).unwrap();
        crate::spec::render(&state, &Default::default(), Some("c0ffee"))
    }

    fn flags(states: &[ServiceState], service: &str) -> (bool, bool, bool) {
        let s = states.iter().find(|s| s.service == service).unwrap();
        (s.in_sync, s.healthy, s.degraded)
    }

    #[test]
    fn each_service_is_judged_by_its_own_containers() {
        let d = desired();
        let host = converged(&d);
        let states = service_states(&d, &host, &crate::plan::plan(&d, &host));
        assert_eq!(flags(&states, "web"), (true, true, false));
        assert_eq!(flags(&states, "migrate"), (true, true, false), "exited 0");

        let mut stopped = host.clone();
        let web = stopped
            .managed
            .iter_mut()
            .find(|c| c.name == "s-web")
            .unwrap();
        web.state = RunState::Exited;
        web.status = "Exited (137) 5 seconds ago".into();
        let plan = crate::plan::plan(&d, &stopped);
        let states = service_states(&d, &stopped, &plan);
        assert_eq!(flags(&states, "web"), (false, false, false), "to start");
        assert_eq!(flags(&states, "migrate"), (true, true, false));

        let mut sick = host.clone();
        sick.managed
            .iter_mut()
            .find(|c| c.name == "s-web")
            .unwrap()
            .status = "Up 3 minutes (unhealthy)".into();
        let plan = crate::plan::plan(&d, &sick);
        assert!(
            plan.actions.is_empty(),
            "nothing to change, yet not in sync"
        );
        let mut states = service_states(&d, &sick, &plan);
        assert_eq!(flags(&states, "web"), (false, false, true));

        // A deploy that changed the job: it alone is marked, skipped services are not.
        let mut gone = host.clone();
        gone.managed.retain(|c| c.name != "s-migrate");
        let plan = crate::plan::plan(&d, &gone);
        let mut marked = Vec::new();
        for_changed(&mut states, &plan, &[], |s| marked.push(s.service.clone()));
        assert_eq!(marked, ["migrate"]);
        let skipped = [crate::plan::Skipped {
            stack: "s".into(),
            service: "migrate".into(),
            reason: "preflight failed".into(),
        }];
        for_changed(&mut states, &plan, &skipped, |_| panic!("skipped"));
    }
}
