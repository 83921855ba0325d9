//! Planning a blue/green service from the colors found running on the host.

use std::collections::{BTreeSet, HashMap};

use crate::model::actual::{ActualContainer, RunState};
use crate::model::{Color, KeepIdle};
use crate::spec::{labels, DesiredContainer};

use super::drift::{self, Drift};
use super::{
    field_changes, maintenance_during, Action, Conflict, ConflictKind, FieldChange, Plan,
    ReleaseStep,
};

/// One blue/green service. Which color serves is read back from the containers alone (running
/// and healthy), so a release interrupted at any step is picked up where it stopped.
///
/// A color's container renamed by hand (`docker rename`) is found by its labels and still
/// counts as that color; it is named in `claimed` unless a release replaces it (then it is a
/// leftover, removed after the waves). What the Engine reports of a color that stays is
/// checked for hand edits ([`drift::drift`]): fixed in place when the Engine allows it, else
/// by a release to the other color (the serving one is never stopped first).
#[allow(clippy::too_many_arguments)]
pub(super) fn plan_blue_green(
    dc: &DesiredContainer,
    bg: &crate::spec::BlueGreen,
    wave: usize,
    by_name: &HashMap<&str, &ActualContainer>,
    wanted: &BTreeSet<String>,
    claimed: &mut BTreeSet<String>,
    key: &crate::spec::MarkerKey,
    p: &mut Plan,
) {
    let name = |c: Color| format!("{}-{}", dc.name, c.as_str());
    let found: HashMap<Color, &ActualContainer> = Color::ALL
        .into_iter()
        .filter_map(|c| {
            let ac = by_name
                .get(name(c).as_str())
                .copied()
                .or_else(|| renamed_color(dc, c, by_name, wanted, claimed))?;
            Some((c, ac))
        })
        .collect();
    let get = |c: Color| found.get(&c).copied();
    let renamed = |c: Color| get(c).is_some_and(|a| a.name != name(c));
    let want = dc.labels.get(labels::SPEC).map(String::as_str);
    let matches = |a: &ActualContainer| a.label(labels::SPEC) == want && a.image == dc.spec.image;
    // Only a container that holds the desired spec is judged against it field by field.
    let drift_of = |c: Color| -> Drift {
        get(c)
            .filter(|a| matches(a))
            .map(|a| drift::drift(&dc.colored(c), a, key))
            .unwrap_or_default()
    };
    // The containers this plan leaves under their color: a renamed one among them is renamed
    // back rather than removed as a leftover.
    let mut kept: Vec<Color> = Vec::new();

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
    // Judged whether it serves (kept, or replaced by a release) or is about to serve.
    let target_drift = drift_of(target);
    match get(target) {
        Some(t) if matches(t) && t.serving() && target_drift.recreate && bg.active.is_some() => {
            p.conflicts.push(Conflict {
                stack: dc.stack.clone(),
                name: name(target),
                kind: ConflictKind::PinnedActive,
                message: format!(
                    "`release.active: {}` pins the serving color, and `{}` was changed by hand ({})",
                    target.as_str(),
                    t.name,
                    fields(&target_drift)
                ),
                hint: format!(
                    "only a new container puts this back, and a blue/green service never replaces its serving container in place: set `active: {}` to release it with a swap, or drop `active`",
                    other.as_str()
                ),
            });
            kept.extend([target, other]);
        }
        Some(t) if matches(t) && t.serving() && target_drift.recreate => {
            // Changed by hand beyond what the Engine can undo in place: a normal release to a
            // new container of the other color, which serves before this one is drained.
            // A renamed idle container is not taken for the new one: its name is free, and
            // it is a leftover, removed after the waves.
            let step = if get(other).is_some() && !renamed(other) {
                ReleaseStep::Recreate
            } else {
                ReleaseStep::Create
            };
            kept.push(target);
            p.actions.push(Action::Release {
                stack: dc.stack.clone(),
                service: dc.service.clone(),
                container: name(other),
                color: other,
                image: dc.image_ref.clone(),
                step,
                changes: target_drift.changes,
                retire: Some(t.name.clone()),
                wave,
                maintenance: maintenance_during(dc),
            });
        }
        Some(t) if matches(t) && t.serving() => {
            kept.push(target);
            if let Some(o) = get(other) {
                if o.state == RunState::Running {
                    p.actions.push(Action::Retire {
                        stack: dc.stack.clone(),
                        service: dc.service.clone(),
                        container: o.name.clone(),
                        reason: format!("{} serves; only one color runs", name(target)),
                        wave,
                    });
                    kept.push(other);
                } else if bg.keep_idle == KeepIdle::Removed {
                    p.actions.push(Action::Remove {
                        stack: dc.stack.clone(),
                        service: dc.service.clone(),
                        container: o.name.clone(),
                        reason: "idle color (keep_idle: removed)".into(),
                        first: None,
                    });
                } else {
                    // The stopped idle color is what the next release may start: put back
                    // now what can be; what cannot makes that release a new container.
                    kept.push(other);
                    correct(dc, other, o, drift_of(other), wave, p);
                }
            }
            if !correct(dc, target, t, target_drift, wave, p) {
                p.unchanged.push(name(target));
            }
        }
        Some(_) if Some(target) == serving => {
            // Only reachable with `active` pinning the serving color while its spec changed.
            kept.extend([target, other]);
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
                // Renamed by hand: its name is free for a new container, and it is a leftover.
                Some(a) if a.name != name(target) => (
                    ReleaseStep::Create,
                    vec![FieldChange {
                        field: "name".into(),
                        before: vec![format!("{} renamed to {} by hand", name(target), a.name)],
                        after: vec![format!("a new {}", name(target))],
                    }],
                ),
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
                // The color about to serve was changed by hand: a new container, so that it
                // serves as the spec says (a fix in place would race the release).
                Some(_) if !target_drift.changes.is_empty() => {
                    (ReleaseStep::Recreate, target_drift.changes)
                }
                Some(a) if a.state == RunState::Running => (ReleaseStep::Gate, Vec::new()),
                Some(_) => (ReleaseStep::Start, Vec::new()),
            };
            if get(other).is_some() {
                kept.push(other);
            }
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
    for c in kept {
        if let Some(a) = get(c).filter(|_| renamed(c)) {
            claimed.insert(a.name.clone());
        }
    }
}

/// Puts `color`'s container `ac` back in place (renamed back first when it was renamed) if it
/// drifted only in ways the Engine can undo; `d` is its drift. Whether anything was planned.
fn correct(
    dc: &DesiredContainer,
    color: Color,
    ac: &ActualContainer,
    d: Drift,
    wave: usize,
    p: &mut Plan,
) -> bool {
    let want = format!("{}-{}", dc.name, color.as_str());
    let (mut fixes, mut changes) = if d.recreate {
        (Vec::new(), Vec::new())
    } else {
        (d.fixes, d.changes)
    };
    if ac.name != want {
        let (fix, change) = drift::renamed(&want, &ac.name);
        fixes.insert(0, fix);
        changes.insert(0, change);
    }
    if fixes.is_empty() {
        return false;
    }
    p.actions.push(Action::Correct {
        stack: dc.stack.clone(),
        service: dc.service.clone(),
        container: want,
        fixes,
        changes,
        start: None,
        wave,
    });
    true
}

/// The drifted fields of `d`, for a message: "resources (by hand), env (by hand)".
fn fields(d: &Drift) -> String {
    let names: BTreeSet<&str> = d.changes.iter().map(|c| c.field.as_str()).collect();
    names.into_iter().collect::<Vec<_>>().join(", ")
}

/// A container of `dc`'s `color` that a human renamed: this project's (it is among the managed
/// containers), with the service's and the color's labels, no role, under a name no desired
/// container uses and not already claimed. The first by name (the Engine's list order is not
/// promised).
fn renamed_color<'a>(
    dc: &DesiredContainer,
    color: Color,
    by_name: &HashMap<&str, &'a ActualContainer>,
    wanted: &BTreeSet<String>,
    claimed: &BTreeSet<String>,
) -> Option<&'a ActualContainer> {
    by_name
        .values()
        .copied()
        .filter(|c| {
            !wanted.contains(&c.name)
                && !claimed.contains(&c.name)
                && c.label(labels::ROLE).is_none()
                && c.label(labels::STACK) == Some(dc.stack.as_str())
                && c.label(labels::SERVICE) == Some(dc.service.as_str())
                && c.label(labels::COLOR) == Some(color.as_str())
        })
        .min_by(|a, b| a.name.cmp(&b.name))
}
