//! Handover of an owned volume between services: a container that is removed (a renamed
//! service, one that is no longer desired) and a container of another service that starts on
//! the same owned volume in this plan must never run at once, or a database directory has two
//! writers (issue 18: `db` → `database` had 10 s of both). [`order_handovers`] moves such a
//! removal in front of the wave that starts the new container and says so in its reason,
//! unless the volume is declared `shared: true`.

use std::collections::{BTreeMap, BTreeSet};

use crate::model::actual::Actual;
use crate::spec::{labels, Desired, MountSpec};

use super::{Action, Plan};

/// Sets `first` on every `Remove` whose container mounts an owned, non-shared volume that a
/// container of another service starts on in this plan (create, recreate, start, release), to
/// the earliest such wave, and adds why to its reason. Pure; the order of everything else is
/// unchanged.
pub(super) fn order_handovers(desired: &Desired, actual: &Actual, p: &mut Plan) {
    let guarded: BTreeSet<&str> = desired
        .volumes
        .iter()
        .filter(|v| !v.external && !v.shared)
        .map(|v| v.name.as_str())
        .collect();
    if guarded.is_empty() {
        return;
    }
    // Per guarded volume, the containers about to start on it: (wave, stack, service, container).
    let mut starting: BTreeMap<&str, Vec<(usize, &str, &str, &str)>> = BTreeMap::new();
    for a in &p.actions {
        let (Some(wave), Some(service), Some(container)) = (a.wave(), a.service(), a.container())
        else {
            continue;
        };
        if matches!(a, Action::Retire { .. }) {
            continue;
        }
        let Some(dc) = desired
            .containers
            .iter()
            .find(|d| d.stack == a.stack() && d.service == service)
        else {
            continue;
        };
        for m in &dc.spec.mounts {
            if let MountSpec::Volume { source, .. } = m {
                if let Some(v) = guarded.get(source.as_str()) {
                    starting
                        .entry(v)
                        .or_default()
                        .push((wave, a.stack(), service, container));
                }
            }
        }
    }
    if starting.is_empty() {
        return;
    }
    let mut firsts: Vec<(usize, usize, String)> = Vec::new();
    for (i, a) in p.actions.iter().enumerate() {
        let Action::Remove {
            stack,
            service,
            container,
            ..
        } = a
        else {
            continue;
        };
        let Some(old) = actual.managed.iter().find(|c| &c.name == container) else {
            continue;
        };
        // The label, not the action's field: a leftover container's action may name no service.
        let old_service = old.label(labels::SERVICE).unwrap_or(service.as_str());
        let old_stack = old.label(labels::STACK).unwrap_or(stack.as_str());
        let mut earliest: Option<(usize, &str, &str)> = None;
        for v in &old.attached.volumes {
            for &(wave, s, svc, new) in starting.get(v.as_str()).into_iter().flatten() {
                // A service's own replacement already stops the old container first.
                if s == old_stack && svc == old_service {
                    continue;
                }
                if earliest.is_none_or(|(w, _, _)| wave < w) {
                    earliest = Some((wave, v.as_str(), new));
                }
            }
        }
        if let Some((wave, volume, new)) = earliest {
            firsts.push((
                i,
                wave,
                format!(
                    "; stopped first: shares volume `{volume}` with {new}, which starts after it"
                ),
            ));
        }
    }
    for (i, wave, note) in firsts {
        if let Some(Action::Remove { reason, first, .. }) = p.actions.get_mut(i) {
            *first = Some(wave);
            reason.push_str(&note);
        }
    }
}
