//! Planning a blue/green service from the colors found running on the host.

use std::collections::HashMap;

use crate::model::actual::{ActualContainer, RunState};
use crate::model::{Color, KeepIdle};
use crate::spec::{labels, DesiredContainer};

use super::{
    field_changes, maintenance_during, Action, Conflict, ConflictKind, FieldChange, Plan,
    ReleaseStep,
};

/// One blue/green service. Which color serves is read back from the containers alone (running
/// and healthy), so a release interrupted at any step is picked up where it stopped.
pub(super) fn plan_blue_green(
    dc: &DesiredContainer,
    bg: &crate::spec::BlueGreen,
    wave: usize,
    by_name: &HashMap<&str, &ActualContainer>,
    key: &crate::spec::MarkerKey,
    p: &mut Plan,
) {
    let name = |c: Color| format!("{}-{}", dc.name, c.as_str());
    let get = |c: Color| by_name.get(name(c).as_str()).copied();
    let want = dc.labels.get(labels::SPEC).map(String::as_str);
    let matches = |a: &ActualContainer| a.label(labels::SPEC) == want && a.image == dc.spec.image;

    let serving_colors: Vec<Color> = Color::ALL
        .into_iter()
        .filter(|&c| get(c).is_some_and(ActualContainer::serving))
        .collect();
    // Both serve only when a release stopped between the switch and the retire: the one that
    // holds the desired spec passed its gate, so it is the one that stays.
    let serving = match serving_colors.as_slice() {
        [] => None,
        [one] => Some(*one),
        both => both.iter().copied().max_by_key(|&c| {
            (
                get(c).is_some_and(matches),
                Some(c) == bg.active,
                c == Color::Blue,
            )
        }),
    };
    let target = match bg.active {
        Some(c) => c,
        None => match serving {
            Some(s) if get(s).is_some_and(matches) => s,
            _ => Color::ALL
                .into_iter()
                .find(|&c| Some(c) != serving && get(c).is_some_and(matches))
                .unwrap_or_else(|| serving.map_or(Color::Blue, Color::other)),
        },
    };
    let other = target.other();
    match get(target) {
        Some(t) if matches(t) && t.serving() => {
            if let Some(o) = get(other) {
                if o.state == RunState::Running {
                    p.actions.push(Action::Retire {
                        stack: dc.stack.clone(),
                        service: dc.service.clone(),
                        container: o.name.clone(),
                        reason: format!("{} serves; only one color runs", name(target)),
                        wave,
                    });
                } else if bg.keep_idle == KeepIdle::Removed {
                    p.actions.push(Action::Remove {
                        stack: dc.stack.clone(),
                        service: dc.service.clone(),
                        container: o.name.clone(),
                        reason: "idle color (keep_idle: removed)".into(),
                        first: None,
                    });
                }
            }
            p.unchanged.push(name(target));
        }
        Some(_) if Some(target) == serving => {
            // Only reachable with `active` pinning the serving color while its spec changed.
            p.conflicts.push(Conflict {
                stack: dc.stack.clone(),
                name: name(target),
                kind: ConflictKind::PinnedActive,
                message: format!(
                    "`release.active: {}` pins the serving color, and the spec of `{}` changed",
                    target.as_str(),
                    dc.service
                ),
                hint: format!(
                    "a blue/green service never replaces its serving container in place: set `active: {}` to release this change with a swap, or drop `active` to alternate automatically",
                    other.as_str()
                ),
            });
        }
        t => {
            let (step, changes) = match t {
                None => (ReleaseStep::Create, Vec::new()),
                Some(a) if !matches(a) => {
                    let mut changes = field_changes(a, &dc.spec.redacted(key));
                    if changes.is_empty() {
                        changes.push(FieldChange {
                            field: "image (running)".into(),
                            before: vec![a.image.clone()],
                            after: vec![dc.spec.image.clone()],
                        });
                    }
                    (ReleaseStep::Recreate, changes)
                }
                Some(a) if a.state == RunState::Running => (ReleaseStep::Gate, Vec::new()),
                Some(_) => (ReleaseStep::Start, Vec::new()),
            };
            p.actions.push(Action::Release {
                stack: dc.stack.clone(),
                service: dc.service.clone(),
                container: name(target),
                color: target,
                image: dc.image_ref.clone(),
                step,
                changes,
                retire: get(other)
                    .filter(|o| o.state == RunState::Running)
                    .map(|o| o.name.clone()),
                wave,
                maintenance: maintenance_during(dc),
            });
        }
    }
}
