//! Scoping a failure: the services a failure concerns, and every service that depends on
//! them, are taken out of a plan; the rest of the plan is still whole and is carried out
//! (issue 18: one unpushed digest kept an unrelated, hand-stopped service down for 61 s).
//! Pure: apply and the agent say what failed, this decides what else must wait.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::model::actual::{Actual, ActualContainer, RunState};
use crate::spec::labels;
use crate::spec::Desired;

use super::{Action, Plan};

/// A service whose actions were taken out of a plan, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Skipped {
    pub stack: String,
    pub service: String,
    /// What failed for it, or which skipped service it depends on.
    pub reason: String,
}

/// `blocked` (stack, service → why) and, transitively, every desired service that depends on
/// one of them (`depends_on`, same stack), each with its reason; sorted by stack and service.
pub fn with_dependents(
    desired: &Desired,
    blocked: &BTreeMap<(String, String), String>,
) -> Vec<Skipped> {
    let mut out: BTreeMap<(String, String), String> = blocked.clone();
    loop {
        let mut added = false;
        for c in &desired.containers {
            let key = (c.stack.clone(), c.service.clone());
            if out.contains_key(&key) {
                continue;
            }
            let on = desired.containers.iter().find(|d| {
                d.stack == c.stack
                    && c.depends_on.contains(&d.name)
                    && out.contains_key(&(d.stack.clone(), d.service.clone()))
            });
            if let Some(d) = on {
                out.insert(
                    key,
                    format!("depends on `{}`, which was skipped", d.service),
                );
                added = true;
            }
        }
        if !added {
            break;
        }
    }
    out.into_iter()
        .map(|((stack, service), reason)| Skipped {
            stack,
            service,
            reason,
        })
        .collect()
}

impl Plan {
    /// Takes the conflicts that concern one desired service (a container in the way of its
    /// name, a route another project holds, a pinned color) out of the conflict list and
    /// skips that service and its dependents instead, the conflict's message and hint as the
    /// reason. Conflicts of networks and volumes stay: they still block the whole plan. For
    /// the agent, so that an object in one service's way never stops drift correction of the
    /// others; `dockhand plan` and `apply` show and refuse conflicts as they are.
    pub fn scope_conflicts(&mut self, desired: &Desired) {
        let mut blocked: BTreeMap<(String, String), String> = BTreeMap::new();
        self.conflicts.retain(|c| {
            let owner = desired.containers.iter().find(|d| {
                d.stack == c.stack && (d.name == c.name || d.container_names().contains(&c.name))
            });
            match owner {
                Some(d) => {
                    blocked
                        .entry((d.stack.clone(), d.service.clone()))
                        .or_insert_with(|| format!("{}\n  hint: {}", c.message, c.hint));
                    false
                }
                None => true,
            }
        });
        if !blocked.is_empty() {
            self.skip_services(with_dependents(desired, &blocked));
        }
    }

    /// Takes the services of a quarantine (stack, service → why) and their dependents out of
    /// the plan, those that have an action in it (their waits go too): a quarantined
    /// service keeps what runs now (a rolled-back release its serving color, a failed first
    /// deploy its container, for `docker logs`) and everything else converges. A skipped
    /// service whose last good container (one of its names in `actual`, not holding the
    /// quarantined spec) was stopped by hand or crashed gets an [`Action::Start`] of that
    /// container in the skipped action's wave instead: otherwise nothing would ever start
    /// it again. It is never recreated, and the quarantined spec is never started.
    pub fn skip_quarantined(
        &mut self,
        desired: &Desired,
        actual: &Actual,
        quarantined: &BTreeMap<(String, String), String>,
    ) {
        let all = with_dependents(desired, quarantined);
        let wave_of = |s: &Skipped| {
            self.actions
                .iter()
                .filter(|a| a.stack() == s.stack && a.service() == Some(&s.service))
                .filter_map(Action::wave)
                .min()
        };
        let skipped: Vec<(Skipped, usize)> = all
            .iter()
            .filter_map(|s| wave_of(s).map(|w| (s.clone(), w)))
            .collect();
        let starts: Vec<Action> = skipped
            .iter()
            .filter_map(|(s, wave)| {
                let direct = quarantined.contains_key(&(s.stack.clone(), s.service.clone()));
                last_good_start(desired, actual, s, direct, *wave)
            })
            .collect();
        if !skipped.is_empty() {
            self.skip_services(skipped.into_iter().map(|(s, _)| s).collect());
        }
        self.actions.extend(starts);
        // A wait serves the dependents of later waves: it stays only for a dependent that is
        // still started by this plan.
        let started = |stack: &str, name: &str| {
            desired.containers.iter().any(|c| {
                c.stack == stack
                    && c.depends_on.iter().any(|d| d == name)
                    && self
                        .actions
                        .iter()
                        .any(|a| a.stack() == stack && a.service() == Some(&c.service))
            })
        };
        let keep: Vec<bool> = self
            .waits
            .iter()
            .map(|w| {
                !all.iter()
                    .any(|s| s.stack == w.stack && s.service == w.service)
                    || desired
                        .containers
                        .iter()
                        .find(|c| c.stack == w.stack && c.service == w.service)
                        .is_some_and(|c| started(&c.stack, &c.name))
            })
            .collect();
        let mut keep = keep.into_iter();
        self.waits.retain(|_| keep.next().unwrap_or(true));
    }

    /// Takes the container actions, waits and notes of `skipped` services out of the plan and
    /// notes them in [`Plan::skipped`]. Callers pass a closed set ([`with_dependents`]), so
    /// nothing left waits for a skipped service. Networks, volumes and removals stay.
    pub fn skip_services(&mut self, skipped: Vec<Skipped>) {
        let keys: BTreeSet<(&str, &str)> = skipped
            .iter()
            .map(|s| (s.stack.as_str(), s.service.as_str()))
            .collect();
        let is_skipped = |stack: &str, service: Option<&str>, wave: Option<usize>| {
            wave.is_some() && service.is_some_and(|s| keys.contains(&(stack, s)))
        };
        let mut gone = Vec::new();
        self.actions.retain(|a| {
            let skip = is_skipped(a.stack(), a.service(), a.wave());
            if skip {
                gone.extend(a.container().map(str::to_string));
            }
            !skip
        });
        self.waits
            .retain(|w| !keys.contains(&(w.stack.as_str(), w.service.as_str())));
        for c in gone {
            self.notes.remove(&c);
        }
        self.skipped.extend(skipped);
    }
}

/// The start of `s`'s last good container, in `wave`: its container (a blue/green service's
/// color) that exists and is stopped, when no other of its containers runs (a serving color
/// keeps serving on its own). For a service quarantined itself (`direct`), never the one that
/// holds the quarantined (desired) spec; a dependent's own spec did not fail.
fn last_good_start(
    desired: &Desired,
    actual: &Actual,
    s: &Skipped,
    direct: bool,
    wave: usize,
) -> Option<Action> {
    let dc = desired
        .containers
        .iter()
        .find(|c| c.stack == s.stack && c.service == s.service)?;
    let want = dc.labels.get(labels::SPEC);
    let names = dc.container_names();
    let mine: Vec<&ActualContainer> = actual
        .managed
        .iter()
        .filter(|a| {
            names.contains(&a.name)
                && a.label(labels::STACK) == Some(s.stack.as_str())
                && a.label(labels::SERVICE) == Some(s.service.as_str())
        })
        .collect();
    if mine.iter().any(|a| a.state == RunState::Running) {
        return None;
    }
    let good = mine
        .into_iter()
        .filter(|a| !direct || a.label(labels::SPEC) != want.map(String::as_str))
        .find_map(|a| super::start_reason(dc, a).map(|why| (a, why)))?;
    Some(Action::Start {
        stack: s.stack.clone(),
        service: s.service.clone(),
        container: good.0.name.clone(),
        reason: format!(
            "quarantined revision: starting the last good container ({})",
            good.1
        ),
        wave,
    })
}
