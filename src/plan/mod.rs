//! The one place that decides what to change: `plan(desired, actual) -> Plan`.
//!
//! Pure: no I/O, no clock, no randomness; the same inputs always give the same plan. `plan`,
//! `diff`, `apply` and `status` all call it, and the plan is plain data (`Serialize`) so it can
//! be shown, stored and replayed. It never holds a secret: env values appear only as markers.

mod action;
mod blue_green;
mod dependencies;
mod down;
pub mod drift;
pub mod infer;
mod notes;
pub mod render;
mod scope;
pub mod services;
pub mod simulate;
pub mod status;
mod volumes;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::Serialize;

use crate::model::actual::{Actual, ActualContainer, ActualObject, Health, RunState};
use crate::spec::labels;
use crate::spec::{ContainerSpec, Desired, DesiredContainer};

pub use action::{Action, ReleaseStep};
pub use dependencies::dependency_levels;
pub use down::decommission;
pub use scope::{with_dependents, Skipped};

use blue_green::plan_blue_green;
use dependencies::waits;
use notes::release_notes;

/// One field of a container spec that differs, rendered as lines (env values hidden).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldChange {
    pub field: String,
    pub before: Vec<String>,
    pub after: Vec<String>,
}

/// Something that blocks apply: an object in the way that dockhand must not touch, an external
/// object that is missing, or a pin that forbids the change. `kind` says which, so that
/// messages, hints and the apply refusal name the right cause.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Conflict {
    pub stack: String,
    pub name: String,
    /// Flattened: `"kind": "other_project", "project": "staging"` beside `name`.
    #[serde(flatten)]
    pub kind: ConflictKind,
    pub message: String,
    pub hint: String,
}

/// Why a [`Conflict`] blocks apply. Serialized as `{"kind": "not_owned"}`,
/// `{"kind": "other_project", "project": "staging"}`, ….
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ConflictKind {
    /// A container, network or volume made by hand (no dockhand labels) holds a wanted name.
    NotOwned,
    /// An object of another dockhand project on this Engine holds a wanted name or route: it
    /// is that project's, so the hint never suggests removing it.
    OtherProject { project: String },
    /// A network or volume declared `external: true` does not exist.
    MissingExternal,
    /// `release.active` pins the serving color of a blue/green service whose spec changed.
    PinnedActive,
    /// An owned volume is missing under its name, and this project owns `volume`, its name
    /// under the other `names:` spelling: the data is there, and a new empty volume would
    /// silently replace it.
    DataElsewhere { volume: String },
}

impl ConflictKind {
    /// A few words for counts: "not owned by dockhand", "owned by another dockhand project", ….
    pub fn label(&self) -> &'static str {
        match self {
            ConflictKind::NotOwned => "with objects dockhand does not own",
            ConflictKind::OtherProject { .. } => "with objects of another dockhand project",
            ConflictKind::MissingExternal => "with missing external objects",
            ConflictKind::PinnedActive => "with a pinned `release.active`",
            ConflictKind::DataElsewhere { .. } => "with volume data under the other `names:`",
        }
    }
}

/// "2 conflict(s) with objects dockhand does not own, 1 with a pinned `release.active`": the
/// conflicts counted by kind, in the order the kinds first appear.
pub fn conflict_summary(conflicts: &[Conflict]) -> String {
    let mut counts: Vec<(&'static str, usize)> = Vec::new();
    for c in conflicts {
        let l = c.kind.label();
        match counts.iter_mut().find(|(k, _)| *k == l) {
            Some((_, n)) => *n += 1,
            None => counts.push((l, 1)),
        }
    }
    counts
        .iter()
        .enumerate()
        .map(|(i, (l, n))| {
            if i == 0 {
                format!("{n} conflict(s) {l}")
            } else {
                format!("{n} {l}")
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// A desired container that exists with the desired spec but is not healthy: there is
/// nothing to change, yet the host is not in sync ([`Plan::in_sync`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NotHealthy {
    pub stack: String,
    pub service: String,
    pub container: String,
    /// Why, for people: "Docker reports it unhealthy (Up 3 minutes (unhealthy))".
    pub reason: String,
}

/// An owned network no longer declared that cannot be removed: containers dockhand does not
/// own are attached to it (the Engine refuses to remove a network in use). Reported, not
/// planned, so the plan converges.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeptNetwork {
    pub stack: String,
    pub name: String,
    /// The attached containers, by name.
    pub attached: Vec<String>,
}

/// An unchanged container that a later wave depends on: once the actions of wave `wave`
/// settled, apply waits until it reached `until` before the next wave starts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Wait {
    pub stack: String,
    pub service: String,
    /// The service's container (a blue/green service's base name).
    pub container: String,
    pub wave: usize,
    pub until: Until,
}

/// What an unchanged dependency must have reached before its dependents' wave starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Until {
    /// A job: exited with code 0.
    Completed,
    /// Running, and healthy if it has a healthcheck.
    Ready,
    /// A blue/green service: one of its colors running and healthy.
    Serving,
}

/// The container work of one `depends_on` wave: its actions run in parallel, then its waits.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Wave<'a> {
    pub index: usize,
    pub actions: Vec<&'a Action>,
    pub waits: Vec<&'a Wait>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Plan {
    /// In execution order: networks and volumes, containers wave by wave in dependency order
    /// (each carries its wave), removals.
    pub actions: Vec<Action>,
    /// Unchanged containers that later waves wait for, in wave order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub waits: Vec<Wait>,
    /// Desired containers that already match.
    pub unchanged: Vec<String>,
    pub conflicts: Vec<Conflict>,
    /// Owned volumes no longer declared: kept, because data is never deleted implicitly.
    pub kept_volumes: Vec<String>,
    /// Owned networks no longer declared that containers dockhand does not own still use.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub kept_networks: Vec<KeptNetwork>,
    /// Unchanged containers that are not healthy: nothing to apply, but not in sync.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unhealthy: Vec<NotHealthy>,
    /// Per changed container, what else its change runs or implies (hooks, downtime).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub notes: BTreeMap<String, Vec<String>>,
    /// Services taken out of this plan because something failed for them or a service they
    /// depend on ([`Plan::skip_services`]); everything else is carried out.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub skipped: Vec<Skipped>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Summary {
    pub create: usize,
    pub recreate: usize,
    pub start: usize,
    /// Containers put back in place (drift the Engine can undo without a new container);
    /// left out of JSON when zero, as plans without drift always read.
    #[serde(skip_serializing_if = "is_zero")]
    pub correct: usize,
    pub remove: usize,
    pub release: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

impl Plan {
    /// Nothing to apply and nothing that blocks it (unhealthy containers may remain: see
    /// [`Plan::in_sync`]).
    pub fn is_empty(&self) -> bool {
        self.actions.is_empty() && self.conflicts.is_empty()
    }

    /// The host is as the desired state says: nothing to apply, nothing blocking, and every
    /// unchanged container healthy.
    pub fn in_sync(&self) -> bool {
        self.is_empty() && self.unhealthy.is_empty()
    }

    /// Takes the actions of `stacks` out of the plan (stacks whose drift is only reported);
    /// returns them. Stacks never depend on each other, so what stays is a whole plan.
    pub fn split_off_stacks(&mut self, stacks: &BTreeSet<String>) -> Vec<Action> {
        let (held, kept) = std::mem::take(&mut self.actions)
            .into_iter()
            .partition(|a| stacks.contains(a.stack()));
        self.actions = kept;
        self.conflicts.retain(|c| !stacks.contains(&c.stack));
        // Stacks never depend on each other: nothing left waits for a held stack.
        self.waits.retain(|w| !stacks.contains(&w.stack));
        self.unhealthy.retain(|u| !stacks.contains(&u.stack));
        let held: Vec<Action> = held;
        for a in &held {
            if let Some(c) = a.container() {
                self.notes.remove(c);
            }
        }
        held
    }

    /// The container actions wave by wave, each with the waits that follow it: what apply
    /// runs between creating networks and volumes and the removals. Every index from 0 to the
    /// last wave with work is present, so a wave that only waits is not skipped.
    pub fn waves(&self) -> Vec<Wave<'_>> {
        let last = self
            .actions
            .iter()
            .filter_map(Action::wave)
            .chain(self.waits.iter().map(|w| w.wave))
            .max();
        let Some(last) = last else {
            return Vec::new();
        };
        (0..=last)
            .map(|index| Wave {
                index,
                actions: self
                    .actions
                    .iter()
                    .filter(|a| a.wave() == Some(index))
                    .collect(),
                waits: self.waits.iter().filter(|w| w.wave == index).collect(),
            })
            .collect()
    }

    pub fn summary(&self) -> Summary {
        let mut s = Summary::default();
        for a in &self.actions {
            match a {
                Action::CreateNetwork { .. }
                | Action::CreateVolume { .. }
                | Action::Create { .. } => s.create += 1,
                Action::Recreate { .. } => s.recreate += 1,
                Action::Start { .. } => s.start += 1,
                Action::Correct { .. } => s.correct += 1,
                Action::Remove { .. }
                | Action::RemoveNetwork { .. }
                | Action::RemoveVolume { .. }
                | Action::Retire { .. } => s.remove += 1,
                Action::Release { .. } => s.release += 1,
            }
        }
        s
    }
}

/// A route of this project to a host that a container of another dockhand project on this
/// Engine routes: both would get the host's traffic, so it blocks apply.
fn other_project_routes(desired: &Desired, actual: &Actual, p: &mut Plan) {
    if actual.other_routes.is_empty() {
        return;
    }
    for dc in &desired.containers {
        for host in crate::spec::traefik::routed_hosts(&dc.labels) {
            for other in actual.other_routes.iter().filter(|o| o.host == host) {
                p.conflicts.push(Conflict {
                    stack: dc.stack.clone(),
                    name: dc.name.clone(),
                    kind: ConflictKind::OtherProject {
                        project: other.project.clone(),
                    },
                    message: format!(
                        "host `{host}` is already routed by container `{}` of dockhand project `{}` on this host",
                        other.container, other.project
                    ),
                    hint: format!(
                        "one host is served by one project: route `{}` to another host, or remove the route from project `{}` first",
                        dc.service, other.project
                    ),
                });
            }
        }
    }
}

/// The conflict for a container of `dc`'s name that this project does not own: made by hand
/// (the hint says how to clear it), or of another dockhand project (named; the hint never
/// suggests removing it, since that would take down the other project's service).
fn squatter_conflict(dc: &DesiredContainer, f: &ActualContainer) -> Conflict {
    let other_project = (f.label(labels::MANAGED) == Some("true"))
        .then(|| f.label(labels::PROJECT))
        .flatten();
    match other_project {
        Some(project) => Conflict {
            stack: dc.stack.clone(),
            name: dc.name.clone(),
            kind: ConflictKind::OtherProject {
                project: project.to_string(),
            },
            message: format!(
                "container `{}` ({}, image {}) is owned by dockhand project `{project}`",
                f.name, f.status, f.image
            ),
            hint: format!(
                "it is project `{project}`'s and must stay: set `names: project` in dockhand.yaml so that this project's names start with its own, or give stack `{}` or service `{}` another name",
                dc.stack, dc.service
            ),
        },
        None => Conflict {
            stack: dc.stack.clone(),
            name: dc.name.clone(),
            kind: ConflictKind::NotOwned,
            message: format!(
                "container `{}` ({}, image {}) exists but was not created by dockhand",
                f.name, f.status, f.image
            ),
            hint: format!(
                "dockhand never touches containers it does not own: remove or rename it (docker rm -f {}) to let dockhand manage `{}`",
                f.name, dc.service
            ),
        },
    }
}

/// The conflict for an owned network or volume (`what`) of `stack` whose name another dockhand
/// project's object holds: named, and never to be taken over or removed.
fn other_project_object(what: &str, stack: &str, name: &str, project: &str) -> Conflict {
    Conflict {
        stack: stack.to_string(),
        name: name.to_string(),
        kind: ConflictKind::OtherProject {
            project: project.to_string(),
        },
        message: format!("{what} `{name}` is owned by dockhand project `{project}`"),
        hint: format!(
            "it is project `{project}`'s and must stay: set `names: project` in dockhand.yaml so that this project's names start with its own, or give this {what} another `name:` in stack `{stack}`"
        ),
    }
}

/// Decides what to change so that `actual` matches `desired`.
pub fn plan(desired: &Desired, actual: &Actual) -> Plan {
    let mut p = Plan::default();
    let desired_stacks: BTreeSet<&str> = desired.stacks.iter().map(String::as_str).collect();

    // Networks and volumes first: containers need them.
    let nets: HashMap<&str, &ActualObject> = actual
        .networks
        .iter()
        .map(|n| (n.name.as_str(), n))
        .collect();
    let vols: HashMap<&str, &ActualObject> = actual
        .volumes
        .iter()
        .map(|v| (v.name.as_str(), v))
        .collect();
    for net in desired.networks.iter().filter(|n| !n.external) {
        match nets.get(net.name.as_str()) {
            None => p.actions.push(Action::CreateNetwork {
                stack: net.stack.clone(),
                name: net.name.clone(),
                driver: net.driver.clone(),
                internal: net.internal,
            }),
            Some(a) if a.owner_stack.is_none() && a.other_project.is_some() => {
                p.conflicts.push(other_project_object(
                    "network",
                    &net.stack,
                    &net.name,
                    a.other_project.as_deref().unwrap_or_default(),
                ))
            }
            Some(a) if a.owner_stack.is_none() => p.conflicts.push(Conflict {
                stack: net.stack.clone(),
                name: net.name.clone(),
                kind: ConflictKind::NotOwned,
                message: format!("network `{}` exists but dockhand does not own it", net.name),
                hint: "declare it with `external: true` to use it as it is, or give dockhand's network another `name`".into(),
            }),
            Some(_) => {}
        }
    }
    for net in desired.networks.iter().filter(|n| n.external) {
        if !nets.contains_key(net.name.as_str()) {
            p.conflicts.push(Conflict {
                stack: net.stack.clone(),
                name: net.name.clone(),
                kind: ConflictKind::MissingExternal,
                message: format!("external network `{}` does not exist", net.name),
                hint: format!("create it (docker network create {}) or drop `external: true` so dockhand owns it", net.name),
            });
        }
    }
    for vol in &desired.volumes {
        let found = vols.get(vol.name.as_str());
        let elsewhere = vol
            .other_spelling
            .as_deref()
            .and_then(|n| vols.get(n))
            .filter(|a| a.owner_stack.as_deref() == Some(vol.stack.as_str()));
        match (found, vol.external) {
            (None, false) if elsewhere.is_some() => {
                let old = elsewhere.map(|a| a.name.clone()).unwrap_or_default();
                p.conflicts.push(Conflict {
                    stack: vol.stack.clone(),
                    name: vol.name.clone(),
                    kind: ConflictKind::DataElsewhere { volume: old.clone() },
                    message: format!(
                        "volume `{}` does not exist, but this project's volume `{old}` of stack `{}` holds its data under the other `names:` spelling; creating `{}` would start the stack on an empty volume",
                        vol.name, vol.stack, vol.name
                    ),
                    hint: format!(
                        "dockhand never moves data: keep using it with `name: {old}` on this volume in stack `{}`, or set `names:` in dockhand.yaml back",
                        vol.stack
                    ),
                });
            }
            (None, false) => p.actions.push(Action::CreateVolume {
                stack: vol.stack.clone(),
                name: vol.name.clone(),
                driver: vol.driver.clone(),
            }),
            (None, true) => p.conflicts.push(Conflict {
                stack: vol.stack.clone(),
                name: vol.name.clone(),
                kind: ConflictKind::MissingExternal,
                message: format!("external volume `{}` does not exist", vol.name),
                hint: format!(
                    "create it (docker volume create {}) or drop `external: true`",
                    vol.name
                ),
            }),
            (Some(a), false) if a.owner_stack.is_none() && a.other_project.is_some() => {
                p.conflicts.push(other_project_object(
                    "volume",
                    &vol.stack,
                    &vol.name,
                    a.other_project.as_deref().unwrap_or_default(),
                ))
            }
            (Some(a), false) if a.owner_stack.is_none() => p.conflicts.push(Conflict {
                stack: vol.stack.clone(),
                name: vol.name.clone(),
                kind: ConflictKind::NotOwned,
                message: format!("volume `{}` exists but dockhand does not own it", vol.name),
                hint: "declare it with `external: true` to use its data without owning it".into(),
            }),
            _ => {}
        }
    }

    // Containers, in dependency order so that apply (and the reader) sees dependencies first.
    let by_name: HashMap<&str, &ActualContainer> = actual
        .managed
        .iter()
        .map(|c| (c.name.as_str(), c))
        .collect();
    let foreign: HashMap<&str, &ActualContainer> = actual
        .foreign
        .iter()
        .map(|c| (c.name.as_str(), c))
        .collect();
    let wanted: BTreeSet<String> = desired
        .containers
        .iter()
        .flat_map(DesiredContainer::container_names)
        .collect();
    // Managed containers taken as a service's container renamed by hand.
    let mut claimed: BTreeSet<String> = BTreeSet::new();
    let levels = dependency_levels(desired);
    for (wave, dc) in levels
        .iter()
        .enumerate()
        .flat_map(|(w, level)| level.iter().map(move |dc| (w, *dc)))
    {
        let image = dc.image_ref.clone();
        let squatter = dc
            .container_names()
            .into_iter()
            .find_map(|n| foreign.get(n.as_str()).copied());
        if let Some(f) = squatter {
            p.conflicts.push(squatter_conflict(dc, f));
            continue;
        }
        if let Some(bg) = &dc.blue_green {
            plan_blue_green(
                dc,
                bg,
                wave,
                &by_name,
                &wanted,
                &mut claimed,
                &desired.marker_key,
                &mut p,
            );
            continue;
        }
        let want_hash = dc.labels.get(labels::SPEC).map(String::as_str);
        // A container of this service renamed by hand: renamed back when nothing else it
        // drifted needs a new container.
        let renamed = match by_name.get(dc.name.as_str()) {
            Some(_) => None,
            None => renamed_by_hand(dc, actual, &wanted, want_hash, &claimed)
                .map(|ac| (ac, drift::drift(dc, ac, &desired.marker_key)))
                .filter(|(_, d)| !d.recreate),
        };
        if let Some((ac, _)) = &renamed {
            claimed.insert(ac.name.clone());
        }
        let found = by_name
            .get(dc.name.as_str())
            .copied()
            .or(renamed.as_ref().map(|(ac, _)| *ac));
        let Some(ac) = found else {
            p.actions.push(Action::Create {
                stack: dc.stack.clone(),
                service: dc.service.clone(),
                container: dc.name.clone(),
                image,
                wave,
            });
            continue;
        };
        // The hash was computed once at render time, into the label the container will carry.
        let mut changes = Vec::new();
        if ac.label(labels::SPEC) != want_hash {
            changes = field_changes(ac, &dc.spec.redacted(&desired.marker_key));
        } else if ac.image != dc.spec.image {
            changes.push(FieldChange {
                field: "image (running)".into(),
                before: vec![ac.image.clone()],
                after: vec![dc.spec.image.clone()],
            });
        }
        let verify = !dc.hooks.after_start.is_empty() || !dc.smoke.is_empty();
        if changes.is_empty() && verify && by_name.contains_key(dc.aside_name().as_str()) {
            // The previous container is still set aside: the recreate that started this one
            // never reached its end (the Engine went away, dockhand was killed), so its
            // after_start hooks and smoke checks may not have run to success. Do it again.
            changes.push(FieldChange {
                field: "release".into(),
                before: vec![format!(
                    "interrupted ({} still set aside; after_start hooks and smoke checks unconfirmed)",
                    dc.aside_name()
                )],
                after: vec!["recreated and verified".into()],
            });
        }
        // The label matches: what the Engine reports may still have been changed by hand.
        let mut fixes = Vec::new();
        let mut drifted = Vec::new();
        if changes.is_empty() {
            let d = match renamed {
                Some((_, d)) => d,
                None => drift::drift(dc, ac, &desired.marker_key),
            };
            if d.recreate {
                changes = d.changes;
            } else {
                fixes = d.fixes;
                drifted = d.changes;
            }
            if ac.name != dc.name {
                let (fix, change) = drift::renamed(&dc.name, &ac.name);
                fixes.insert(0, fix);
                drifted.insert(0, change);
            }
        }
        if !changes.is_empty() {
            p.actions.push(Action::Recreate {
                stack: dc.stack.clone(),
                service: dc.service.clone(),
                container: dc.name.clone(),
                image,
                changes,
                wave,
                maintenance: maintenance_during(dc),
            });
        } else if !fixes.is_empty() {
            p.actions.push(Action::Correct {
                stack: dc.stack.clone(),
                service: dc.service.clone(),
                container: dc.name.clone(),
                fixes,
                changes: drifted,
                start: start_reason(dc, ac),
                wave,
            });
        } else if let Some(reason) = start_reason(dc, ac) {
            p.actions.push(Action::Start {
                stack: dc.stack.clone(),
                service: dc.service.clone(),
                container: dc.name.clone(),
                reason,
                wave,
            });
        } else {
            p.unchanged.push(dc.name.clone());
            if let Some(reason) = not_healthy(dc, ac) {
                p.unhealthy.push(NotHealthy {
                    stack: dc.stack.clone(),
                    service: dc.service.clone(),
                    container: dc.name.clone(),
                    reason,
                });
            }
        }
    }

    other_project_routes(desired, actual, &mut p);

    // Managed containers nobody wants any more.
    let mut extra: Vec<&ActualContainer> = actual
        .managed
        .iter()
        .filter(|c| !wanted.contains(&c.name) && !claimed.contains(&c.name))
        .collect();
    extra.sort_by(|a, b| a.name.cmp(&b.name));
    for c in extra {
        let stack = c.label(labels::STACK).unwrap_or_default().to_string();
        let service = c.label(labels::SERVICE).unwrap_or_default().to_string();
        let reason = if c.label(labels::ROLE) == Some(labels::ROLE_MAINTENANCE) {
            format!("maintenance container of `{service}` left by an interrupted release")
        } else if desired
            .containers
            .iter()
            .any(|d| d.stack == stack && d.service == service && d.aside_name() == c.name)
        {
            format!("previous container of `{service}`, set aside by an interrupted recreate")
        } else if !desired_stacks.contains(stack.as_str()) {
            format!("stack `{stack}` is no longer in the desired state")
        } else if desired
            .containers
            .iter()
            .any(|d| d.stack == stack && d.service == service)
        {
            format!("leftover container of service `{service}` (not the name dockhand uses now)")
        } else {
            format!("service `{service}` is no longer in the desired state")
        };
        p.actions.push(Action::Remove {
            stack,
            service,
            container: c.name.clone(),
            reason,
            first: None,
        });
    }

    // Sorted by name: the Engine lists objects in no promised order, and the plan must not
    // depend on it (the determinism property test found this).
    let declared_nets: BTreeSet<&str> = desired.networks.iter().map(|n| n.name.as_str()).collect();
    let stale_nets: BTreeMap<&str, &str> = actual
        .networks
        .iter()
        .filter(|n| !declared_nets.contains(n.name.as_str()))
        .filter_map(|n| Some((n.name.as_str(), n.owner_stack.as_deref()?)))
        .collect();
    for (name, stack) in stale_nets {
        // The Engine refuses to remove a network a container is attached to; planning the
        // removal again on every pass would never converge.
        if let Some(users) = actual.network_users.get(name) {
            p.kept_networks.push(KeptNetwork {
                stack: stack.to_string(),
                name: name.to_string(),
                attached: users.clone(),
            });
            continue;
        }
        p.actions.push(Action::RemoveNetwork {
            stack: stack.to_string(),
            name: name.to_string(),
        });
    }
    let declared_vols: BTreeSet<&str> = desired.volumes.iter().map(|v| v.name.as_str()).collect();
    let kept: BTreeSet<&str> = actual
        .volumes
        .iter()
        .filter(|v| v.owner_stack.is_some() && !declared_vols.contains(v.name.as_str()))
        .map(|v| v.name.as_str())
        .collect();
    p.kept_volumes = kept.into_iter().map(str::to_string).collect();
    volumes::order_handovers(desired, actual, &mut p);
    p.waits = waits(desired, &levels, &p.actions);
    p.notes = release_notes(desired, &p.actions);
    p
}

/// Why a running container holding the desired spec is not healthy, if it is not: Docker
/// calls it `unhealthy`, or it is still `starting` although it has been up longer than its
/// healthcheck's start period (read from the list call's status: no clock here).
fn not_healthy(dc: &DesiredContainer, ac: &ActualContainer) -> Option<String> {
    match ac.health() {
        Health::Unhealthy => Some(format!("Docker reports it unhealthy ({})", ac.status)),
        Health::Starting => {
            let start_period = std::time::Duration::from_millis(
                dc.spec
                    .healthcheck
                    .as_ref()
                    .and_then(|h| h.start_period_ms)
                    .unwrap_or(0),
            );
            let up = ac.uptime()?;
            (up > start_period).then(|| {
                format!(
                    "its healthcheck has not passed yet, {}s after start, past its start period of {}s ({})",
                    up.as_secs(),
                    start_period.as_secs(),
                    ac.status
                )
            })
        }
        Health::None | Health::Healthy => None,
    }
}

/// Why an unchanged container must be started, if it must: not running, unless it is a job
/// that runs or completed for this spec, or Docker's restart policy is bringing it back.
fn start_reason(dc: &DesiredContainer, ac: &ActualContainer) -> Option<String> {
    let done_job = dc.job
        && (ac.state == RunState::Running
            || (ac.state == RunState::Exited && ac.exit_code() == Some(0)));
    // A restarting container: starting it as well would only race the Engine's own back-off.
    if done_job || ac.state == RunState::Restarting || ac.state == RunState::Running {
        return None;
    }
    Some(if ac.status.is_empty() {
        format!("container is {:?}", ac.state).to_lowercase()
    } else {
        format!("container is {}", ac.status.to_lowercase())
    })
}

/// A container of `dc`'s service that a human renamed (`docker rename`): this project's, with
/// the service's labels and spec label, no role (not a maintenance or hook container), under a
/// name no desired container uses and not already claimed. The first by name, so that the plan
/// does not depend on the Engine's list order.
fn renamed_by_hand<'a>(
    dc: &DesiredContainer,
    actual: &'a Actual,
    wanted: &BTreeSet<String>,
    want_hash: Option<&str>,
    claimed: &BTreeSet<String>,
) -> Option<&'a ActualContainer> {
    if dc.blue_green.is_some() || want_hash.is_none() {
        return None;
    }
    actual
        .managed
        .iter()
        .filter(|c| {
            !wanted.contains(&c.name)
                && !claimed.contains(&c.name)
                && c.name != dc.aside_name()
                && c.label(labels::ROLE).is_none()
                && c.label(labels::STACK) == Some(dc.stack.as_str())
                && c.label(labels::SERVICE) == Some(dc.service.as_str())
                && c.label(labels::SPEC) == want_hash
                && c.image == dc.spec.image
        })
        .min_by(|a, b| a.name.cmp(&b.name))
}

/// Whether the service's maintenance container takes the route while `dc` changes: a
/// recreate or a release with downtime ([`DesiredContainer::change_has_downtime`]) of a
/// service that has one, never a job. The one place this is decided; apply follows the flag
/// on the action, and the plan's notes say it.
fn maintenance_during(dc: &DesiredContainer) -> bool {
    dc.maintenance.is_some() && !dc.job && dc.change_has_downtime()
}

fn field_changes(actual: &ActualContainer, want: &ContainerSpec) -> Vec<FieldChange> {
    let want = serde_json::to_value(want).unwrap_or_default();
    let have = actual
        .label(labels::SPEC_DOC)
        .and_then(|doc| serde_json::from_str::<serde_json::Value>(doc).ok());
    let Some(have) = have else {
        return vec![FieldChange {
            field: "spec".into(),
            before: vec!["(recorded by another dockhand version)".into()],
            after: vec![format!(
                "spec {}",
                &crate::spec::sha256_hex(want.to_string().as_bytes())[..12]
            )],
        }];
    };
    let empty = serde_json::Map::new();
    let have = have.as_object().unwrap_or(&empty);
    let want = want.as_object().unwrap_or(&empty);
    let fields: BTreeSet<&String> = have.keys().chain(want.keys()).collect();
    let mut out = Vec::new();
    for f in fields {
        let (a, b) = (have.get(f), want.get(f));
        if a == b {
            continue;
        }
        out.push(FieldChange {
            field: f.clone(),
            before: render::value_lines(f, a, b),
            after: render::value_lines(f, b, a),
        });
    }
    out
}
