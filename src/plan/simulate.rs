//! A model of what `apply` does to the host, as pure data: `effect(plan, desired, actual)`
//! returns the `Actual` a successful apply would leave behind.
//!
//! The planner's central promise is "apply the plan, plan again, nothing to do". The property
//! tests, the fuzz targets and the planner benchmark check that promise through this model,
//! so it must follow the executor's rules exactly: created containers carry the labels
//! `DesiredContainer::labels` holds, removed ones disappear, conflicts change nothing.

use crate::model::actual::{Actual, ActualContainer, ActualObject, Attached, Inspected, RunState};
use crate::model::KeepIdle;
use crate::spec::{Desired, DesiredContainer, MarkerKey, MountSpec};

use super::drift::Fix;
use super::{Action, Plan};

/// The container a successful create or recreate of `dc` leaves running, as a full read (with
/// inspect) sees it; `key` marks its env values as observe does.
pub fn running(dc: &DesiredContainer, key: &MarkerKey) -> ActualContainer {
    ActualContainer {
        id: format!("sim-{}", dc.name),
        name: dc.name.clone(),
        state: if dc.job {
            RunState::Exited
        } else {
            RunState::Running
        },
        status: if dc.job {
            "Exited (0) 1 second ago".into()
        } else if dc.spec.healthcheck.is_some() {
            "Up 1 second (healthy)".into()
        } else {
            "Up 1 second".into()
        },
        image: dc.spec.image.clone(),
        labels: dc.labels.clone(),
        attached: Attached {
            networks: dc.spec.networks.clone(),
            volumes: dc
                .spec
                .mounts
                .iter()
                .filter_map(|m| match m {
                    MountSpec::Volume { source, .. } => Some(source.clone()),
                    _ => None,
                })
                .collect(),
        },
        inspected: Some(Inspected {
            restart: dc.spec.restart.as_docker().into(),
            networks: dc
                .spec
                .networks
                .iter()
                .map(|n| (n.clone(), vec![dc.alias.clone()]))
                .collect(),
            limits: Vec::new(),
            env: dc.spec.redacted(key).env,
        }),
    }
}

/// The host after every action of `plan` succeeded.
pub fn effect(plan: &Plan, desired: &Desired, actual: &Actual) -> Actual {
    let mut out = actual.clone();
    let wanted = |name: &str| desired.containers.iter().find(|c| c.name == name);
    for action in &plan.actions {
        match action {
            Action::CreateNetwork { stack, name, .. } => out.networks.push(ActualObject {
                name: name.clone(),
                owner_stack: Some(stack.clone()),
                other_project: None,
            }),
            Action::CreateVolume { stack, name, .. } => out.volumes.push(ActualObject {
                name: name.clone(),
                owner_stack: Some(stack.clone()),
                other_project: None,
            }),
            Action::Create { container, .. } | Action::Recreate { container, .. } => {
                out.managed.retain(|c| &c.name != container);
                if let Some(dc) = wanted(container) {
                    out.managed.push(running(dc, &desired.marker_key));
                }
            }
            Action::Start { container, .. } => {
                let job = wanted(container).is_some_and(|d| d.job);
                for c in out.managed.iter_mut().filter(|c| &c.name == container) {
                    started(c, job);
                }
            }
            Action::Correct {
                container,
                fixes,
                start,
                ..
            } => {
                let job = wanted(container).is_some_and(|d| d.job);
                for fix in fixes {
                    fixed(&mut out, container, fix);
                }
                if start.is_some() {
                    for c in out.managed.iter_mut().filter(|c| &c.name == container) {
                        started(c, job);
                    }
                }
            }
            Action::Remove { container, .. } => out.managed.retain(|c| &c.name != container),
            Action::RemoveNetwork { name, .. } => out.networks.retain(|n| &n.name != name),
            Action::RemoveVolume { name, .. } => out.volumes.retain(|v| &v.name != name),
            Action::Release {
                stack,
                service,
                container,
                color,
                retire,
                ..
            } => {
                let dc = desired
                    .containers
                    .iter()
                    .find(|c| &c.stack == stack && &c.service == service);
                let Some(dc) = dc else {
                    continue;
                };
                out.managed.retain(|c| &c.name != container);
                out.managed
                    .push(running(&dc.colored(*color), &desired.marker_key));
                if let Some(old) = retire {
                    retired(&mut out, old, dc);
                }
            }
            Action::Retire {
                stack,
                service,
                container,
                ..
            } => {
                if let Some(dc) = desired
                    .containers
                    .iter()
                    .find(|c| &c.stack == stack && &c.service == service)
                {
                    retired(&mut out, container, dc);
                }
            }
        }
    }
    out
}

/// A retired color: stopped, or gone with `keep_idle: removed`.
fn retired(out: &mut Actual, name: &str, dc: &DesiredContainer) {
    let removed = dc
        .blue_green
        .as_ref()
        .is_some_and(|bg| bg.keep_idle == KeepIdle::Removed);
    if removed {
        out.managed.retain(|c| c.name != name);
    } else {
        for c in out.managed.iter_mut().filter(|c| c.name == name) {
            c.state = RunState::Exited;
            c.status = "Exited (143) 1 second ago".into();
        }
    }
}

/// The host as it is right after a clean apply of `desired` on an empty Engine.
pub fn converged(desired: &Desired) -> Actual {
    effect(
        &super::plan(desired, &Actual::default()),
        desired,
        &Actual::default(),
    )
}

/// A started container: a job runs to success, a service runs.
fn started(c: &mut ActualContainer, job: bool) {
    if job {
        c.state = RunState::Exited;
        c.status = "Exited (0) 1 second ago".into();
    } else {
        c.state = RunState::Running;
        c.status = "Up 1 second".into();
    }
}

/// One in-place fix of an [`Action::Correct`] of `container`, as apply makes it.
fn fixed(out: &mut Actual, container: &str, fix: &Fix) {
    if let Fix::Rename { from } = fix {
        for c in out.managed.iter_mut().filter(|c| &c.name == from) {
            c.name = container.to_string();
        }
        return;
    }
    for c in out.managed.iter_mut().filter(|c| c.name == container) {
        match fix {
            Fix::Rename { .. } => {}
            Fix::Disconnect { network } => {
                c.attached.networks.retain(|n| n != network);
                if let Some(i) = &mut c.inspected {
                    i.networks.remove(network);
                }
            }
            Fix::Connect { network, aliases } => {
                c.attached.networks.push(network.clone());
                if let Some(i) = &mut c.inspected {
                    i.networks.insert(network.clone(), aliases.clone());
                }
            }
            Fix::Restart { restart } => {
                if let Some(i) = &mut c.inspected {
                    i.restart = restart.clone();
                }
            }
        }
    }
}
