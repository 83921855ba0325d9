//! Ordering: [`dependency_levels`] puts desired containers in waves, and `waits` says what
//! an unchanged container must reach before a later wave starts.

use std::collections::{BTreeSet, HashMap};

use crate::model::Condition;
use crate::spec::{Desired, DesiredContainer};

use super::{Action, Until, Wait};

/// Unchanged containers that a later wave depends on, with what they must reach: a job its
/// exit 0, a blue/green service a serving color, anything else ready; none when every
/// dependent only asks for `started` (it was running when the host was read).
pub(super) fn waits(
    desired: &Desired,
    levels: &[Vec<&DesiredContainer>],
    actions: &[Action],
) -> Vec<Wait> {
    let acted: BTreeSet<(&str, &str)> = actions
        .iter()
        .filter(|a| a.wave().is_some())
        .filter_map(|a| Some((a.stack(), a.service()?)))
        .collect();
    let needed: BTreeSet<&str> = desired
        .containers
        .iter()
        .flat_map(|c| c.depends_on.iter().map(String::as_str))
        .collect();
    let started_is_enough = |name: &str| {
        let mut asked = desired
            .containers
            .iter()
            .filter_map(|d| d.conditions.get(name))
            .peekable();
        asked.peek().is_some() && asked.all(|c| *c == Condition::Started)
    };
    let mut out = Vec::new();
    for (wave, level) in levels.iter().enumerate() {
        for dc in level {
            if acted.contains(&(dc.stack.as_str(), dc.service.as_str()))
                || !needed.contains(dc.name.as_str())
                || started_is_enough(&dc.name)
            {
                continue;
            }
            out.push(Wait {
                stack: dc.stack.clone(),
                service: dc.service.clone(),
                container: dc.name.clone(),
                wave,
                until: if dc.job {
                    Until::Completed
                } else if dc.blue_green.is_some() {
                    Until::Serving
                } else {
                    Until::Ready
                },
            });
        }
    }
    out
}

/// Desired containers in levels: level 0 depends on nothing, each later level only on earlier
/// ones, each level sorted by name so the result is deterministic. Kahn's algorithm, linear in
/// containers plus edges. Validation guarantees there are no cycles; should one slip through,
/// the containers on it form a last level rather than being lost.
pub fn dependency_levels(desired: &Desired) -> Vec<Vec<&DesiredContainer>> {
    let index: HashMap<&str, usize> = desired
        .containers
        .iter()
        .enumerate()
        .map(|(i, c)| (c.name.as_str(), i))
        .collect();
    let mut waiting_on = vec![0usize; desired.containers.len()];
    let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); desired.containers.len()];
    for (i, c) in desired.containers.iter().enumerate() {
        let deps: BTreeSet<usize> = c
            .depends_on
            .iter()
            .filter_map(|d| index.get(d.as_str()).copied())
            .filter(|&d| d != i)
            .collect();
        waiting_on[i] = deps.len();
        for d in deps {
            dependents[d].push(i);
        }
    }
    let by_name = |mut level: Vec<usize>| {
        level.sort_by(|&a, &b| desired.containers[a].name.cmp(&desired.containers[b].name));
        level
    };
    let mut levels = Vec::new();
    let mut placed = vec![false; desired.containers.len()];
    let mut current = by_name(
        (0..desired.containers.len())
            .filter(|&i| waiting_on[i] == 0)
            .collect(),
    );
    while !current.is_empty() {
        let mut next = Vec::new();
        for &i in &current {
            placed[i] = true;
            for &d in &dependents[i] {
                waiting_on[d] -= 1;
                if waiting_on[d] == 0 {
                    next.push(d);
                }
            }
        }
        levels.push(current.iter().map(|&i| &desired.containers[i]).collect());
        current = by_name(next);
    }
    let stuck = by_name(
        (0..desired.containers.len())
            .filter(|&i| !placed[i])
            .collect(),
    );
    if !stuck.is_empty() {
        levels.push(stuck.iter().map(|&i| &desired.containers[i]).collect());
    }
    levels
}
