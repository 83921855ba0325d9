//! Release notes: what each change runs besides the container itself, said up front.

use std::collections::{BTreeMap, HashMap};

use crate::spec::{Desired, DesiredContainer};

use super::{render, Action};

/// What a change runs besides the container itself, said up front: the hooks in order, and
/// for `recreate` that the service is down until its replacement is ready.
pub(super) fn release_notes(
    desired: &Desired,
    actions: &[Action],
) -> BTreeMap<String, Vec<String>> {
    let by_service: HashMap<(&str, &str), &DesiredContainer> = desired
        .containers
        .iter()
        .map(|d| ((d.stack.as_str(), d.service.as_str()), d))
        .collect();
    let mut out = BTreeMap::new();
    for a in actions {
        let (stack, service, container, kind, maintenance) = match a {
            Action::Create {
                stack,
                service,
                container,
                ..
            } => (stack, service, container, Kind::Create, false),
            Action::Release {
                stack,
                service,
                container,
                maintenance,
                ..
            } => (stack, service, container, Kind::Release, *maintenance),
            Action::Recreate {
                stack,
                service,
                container,
                maintenance,
                ..
            } => (stack, service, container, Kind::Recreate, *maintenance),
            _ => continue,
        };
        let recreate = kind == Kind::Recreate;
        let Some(dc) = by_service.get(&(stack.as_str(), service.as_str())) else {
            continue;
        };
        let mut notes = Vec::new();
        let h = &dc.hooks;
        if kind != Kind::Create && !dc.probes.is_empty() {
            let probes: Vec<String> = dc.probes.iter().map(ToString::to_string).collect();
            notes.push(format!("gate: {}", probes.join(", ")));
        }
        for step in h.before.iter().chain(&h.after_start).chain(&h.after_switch) {
            let place = match &step.place {
                crate::spec::HookPlace::NewContainer => "in the new container".to_string(),
                crate::spec::HookPlace::Exec { service, .. } => format!("exec in {service}"),
                crate::spec::HookPlace::OneOff { image, .. } => {
                    format!("one-off container of {}", render::short_image(image))
                }
            };
            notes.push(format!(
                "hook {} ({place}): {}",
                step.label,
                step.command.join(" ")
            ));
        }
        for s in &dc.smoke {
            notes.push(format!("smoke {}: {}", s.label, s.probe));
        }
        let maintenance = dc.maintenance.as_ref().filter(|_| maintenance);
        if let Some(m) = maintenance {
            notes.push(format!(
                "maintenance: {} ({}) takes the route until the new version serves",
                m.container.name,
                render::short_image(&m.container.image_ref)
            ));
        }
        if recreate && !dc.job && maintenance.is_none() {
            notes.push(format!(
                "downtime: {container} is stopped until its replacement is ready{}",
                if h.after_start.is_empty() {
                    ""
                } else {
                    " and its after_start hooks passed"
                }
            ));
        }
        if !notes.is_empty() {
            out.insert(container.clone(), notes);
        }
    }
    out
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Create,
    Recreate,
    Release,
}
