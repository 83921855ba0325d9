//! Drift as the Engine reports it: what a human changed with the docker CLI on a container
//! whose spec label still matches (the label only says what dockhand created, not what the
//! container is now).
//!
//! Pure: the facts come in as [`ActualContainer`] data (the list call's networks, labels and
//! image; an inspect's restart policy, aliases, limits and env marks when the full observe made
//! one). Each drifted field is named with what was found; the fixes the Engine allows in place
//! (reconnect a network with its alias, `docker update --restart`, rename back) are preferred,
//! anything else (a resource limit Docker cannot lift, env, labels) needs a recreate.

use std::collections::BTreeSet;

use serde::Serialize;

use crate::model::actual::ActualContainer;
use crate::spec::{labels, DesiredContainer, MarkerKey};

use super::FieldChange;

/// One change apply makes in place to put a container back, in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "fix", rename_all = "snake_case")]
pub enum Fix {
    /// `docker rename <from> <container>`.
    Rename { from: String },
    /// `docker network disconnect <network> <container>` (attached by hand, or attached
    /// without its alias; a [`Fix::Connect`] follows then).
    Disconnect { network: String },
    /// `docker network connect --alias … <network> <container>`.
    Connect {
        network: String,
        aliases: Vec<String>,
    },
    /// `docker update --restart <restart> <container>`.
    Restart { restart: String },
}

/// What drifted on one container and how to put it back.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Drift {
    /// The in-place fixes, in the order apply runs them.
    pub fixes: Vec<Fix>,
    /// Every drifted field: `field`, what was found (`before`), what it goes back to (`after`).
    pub changes: Vec<FieldChange>,
    /// Something drifted that the Engine cannot change back in place.
    pub recreate: bool,
}

/// Suffix of the field of a change made by hand that only a recreate undoes (`resources (by
/// hand)`): the plan always shows its lines.
pub const BY_HAND: &str = " (by hand)";

fn change(field: &str, before: String, after: String) -> FieldChange {
    FieldChange {
        field: field.into(),
        before: vec![before],
        after: vec![after],
    }
}

/// The fix and the plan line for a container `want` that a human renamed to `have`.
pub(super) fn renamed(want: &str, have: &str) -> (Fix, FieldChange) {
    (
        Fix::Rename { from: have.into() },
        change(
            "name",
            format!("{want} renamed to {have} by hand"),
            format!("rename back to {want}"),
        ),
    )
}

/// The drift of `ac` (already known to carry `dc`'s spec label and image) from `dc`.
pub(super) fn drift(dc: &DesiredContainer, ac: &ActualContainer, key: &MarkerKey) -> Drift {
    let mut d = Drift::default();
    let spec = &dc.spec;
    let want_aliases = vec![dc.alias.clone()];
    // A container without networks is on Docker's default bridge, and one with the host's
    // network has none of its own: neither is anything a stack declares.
    if !spec.host.network && !spec.networks.is_empty() {
        let attached: BTreeSet<&str> = ac.attached.networks.iter().map(String::as_str).collect();
        for net in spec
            .networks
            .iter()
            .filter(|n| !attached.contains(n.as_str()))
        {
            d.fixes.push(Fix::Connect {
                network: net.clone(),
                aliases: want_aliases.clone(),
            });
            d.changes.push(change(
                "networks",
                format!("{net} disconnected by hand"),
                format!("reconnect {net}, alias {}", dc.alias),
            ));
        }
        for net in attached
            .iter()
            .filter(|n| !spec.networks.iter().any(|s| s == *n))
        {
            d.fixes.push(Fix::Disconnect {
                network: net.to_string(),
            });
            d.changes.push(change(
                "networks",
                format!("{net} connected by hand"),
                format!("disconnect {net}"),
            ));
        }
        if let Some(seen) = &ac.inspected {
            // The Engine adds the container's short id as an alias of its own.
            let short_id: String = ac.id.chars().take(12).collect();
            for net in spec
                .networks
                .iter()
                .filter(|n| attached.contains(n.as_str()))
            {
                let Some(have) = seen.networks.get(net) else {
                    continue;
                };
                let have: BTreeSet<&str> = have
                    .iter()
                    .map(String::as_str)
                    .filter(|a| *a != short_id)
                    .collect();
                if have != BTreeSet::from([dc.alias.as_str()]) {
                    d.fixes.push(Fix::Disconnect {
                        network: net.clone(),
                    });
                    d.fixes.push(Fix::Connect {
                        network: net.clone(),
                        aliases: want_aliases.clone(),
                    });
                    let have: Vec<&str> = have.into_iter().collect();
                    d.changes.push(change(
                        "network aliases",
                        format!("{net}: [{}] (reconnected by hand)", have.join(", ")),
                        format!("reconnect {net}, alias {}", dc.alias),
                    ));
                }
            }
        }
    }
    let Some(seen) = &ac.inspected else {
        labels_drift(dc, ac, &mut d);
        return d;
    };
    let want_restart = spec.restart.as_docker();
    let have_restart = if seen.restart.is_empty() {
        "no"
    } else {
        seen.restart.as_str()
    };
    if have_restart != want_restart {
        d.fixes.push(Fix::Restart {
            restart: want_restart.into(),
        });
        d.changes.push(change(
            "restart",
            format!("{have_restart} (docker update)"),
            want_restart.into(),
        ));
    }
    let want_limits = spec.runtime.limits();
    let mut have_limits: Vec<(String, i64)> = seen
        .limits
        .iter()
        // The Engine derives the swap limit from a memory limit (twice it) when none is given.
        .filter(|(k, _)| !(k == "memory_swap" && spec.runtime.memory.is_some()))
        .cloned()
        .collect();
    have_limits.sort();
    if have_limits != want_limits {
        // Docker's update ignores a zero limit and refuses -1: a limit set by hand cannot be
        // lifted in place, only by a new container.
        d.recreate = true;
        let show = |l: &[(String, i64)]| -> Vec<String> {
            l.iter().map(|(k, v)| format!("{k}={v}")).collect()
        };
        let mut before: Vec<String> = show(&have_limits)
            .into_iter()
            .map(|l| format!("{l} (docker update)"))
            .collect();
        if before.is_empty() {
            before.push("no limits (docker update)".into());
        }
        let after = if want_limits.is_empty() {
            vec!["no limits (as the spec says)".into()]
        } else {
            show(&want_limits)
        };
        d.changes.push(FieldChange {
            field: format!("resources{BY_HAND}"),
            before,
            after,
        });
    }
    let want_env = spec.redacted(key).env;
    let env_drift: Vec<String> = want_env
        .iter()
        .filter(|(k, v)| seen.env.get(*k) != Some(*v))
        .map(|(k, _)| {
            if seen.env.contains_key(k) {
                format!("{k}=(hidden, value changed)")
            } else {
                format!("{k} missing")
            }
        })
        .collect();
    d.needs_recreate("env", env_drift);
    labels_drift(dc, ac, &mut d);
    d
}

/// Labels cannot be changed on a container, only on a new one made by hand with dockhand's
/// spec label copied. `dockhand.commit` follows the revision without a new spec.
fn labels_drift(dc: &DesiredContainer, ac: &ActualContainer, d: &mut Drift) {
    let off: Vec<String> = dc
        .labels
        .iter()
        .filter(|(k, _)| k.as_str() != labels::COMMIT)
        .filter(|(k, v)| ac.label(k) != Some(v.as_str()))
        .map(|(k, v)| match ac.label(k) {
            Some(have) => format!("{k}={have} (want {v})"),
            None => format!("{k} missing"),
        })
        .collect();
    d.needs_recreate("labels", off);
}

impl Drift {
    /// `field` differs as `found` says (nothing when empty), and only a new container made
    /// from the spec puts it back.
    fn needs_recreate(&mut self, field: &str, found: Vec<String>) {
        if found.is_empty() {
            return;
        }
        self.recreate = true;
        self.changes.push(FieldChange {
            field: format!("{field}{BY_HAND}"),
            before: found,
            after: vec!["as the spec says".into()],
        });
    }
}
