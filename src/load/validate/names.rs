//! Docker names a project derives (containers, networks, volumes) and the check that no two
//! owners claim one.

use std::collections::BTreeMap;

use super::{svc_ptr, Ctx};
use crate::load::yaml::escape_pointer_token;
use crate::model::{HookStep, Naming, Service, Stack, Strategy};

/// Who produces a Docker name, for the message that names both owners.
struct Owner {
    file: String,
    pointer: String,
    line: usize,
    what: String,
    /// `file#/services/<name>` (or the network's, volume's key): one clash between two
    /// owners is reported once, not once per suffix they share.
    unit: String,
}

/// Every Docker name the project derives (containers with all their suffixes, owned networks
/// and volumes), so that two owners of one name are refused at validation instead of fighting
/// over (or removing) each other's object at apply.
#[derive(Default)]
pub(in crate::load) struct DerivedNames {
    containers: BTreeMap<String, Owner>,
    networks: BTreeMap<String, Owner>,
    volumes: BTreeMap<String, Owner>,
    /// Pairs of owners already reported.
    reported: std::collections::BTreeSet<(String, String)>,
}

/// The containers a service may create, each with what it is and the field that asks for it:
/// its container (or `-blue`/`-green`), the `-dockhand-old` aside of a recreate, the
/// `-maintenance` container and the one-off container of each hook step that runs in one
/// (`<name>-hook-<phase><index>`, as `apply::hooks` names it).
pub fn derived_containers(
    naming: Naming<'_>,
    stack: &str,
    service: &str,
    svc: &Service,
) -> Vec<(String, String, String)> {
    let base = naming.container(stack, service);
    let p = |rest: &str| svc_ptr(service, rest);
    let mut out = Vec::new();
    let blue_green = svc
        .release
        .as_ref()
        .is_some_and(|r| r.strategy == Strategy::BlueGreen);
    if blue_green {
        for c in crate::model::Color::ALL {
            out.push((
                format!("{base}-{}", c.as_str()),
                format!("the {} container of `{service}`", c.as_str()),
                p("/release/strategy"),
            ));
        }
    } else {
        out.push((base.clone(), format!("service `{service}`"), p("")));
        out.push((
            format!("{base}-dockhand-old"),
            format!("the recreate aside of `{service}`"),
            p(""),
        ));
    }
    if svc
        .release
        .as_ref()
        .is_some_and(|r| r.maintenance.is_some())
    {
        out.push((
            format!("{base}-maintenance"),
            format!("the maintenance container of `{service}`"),
            p("/release/maintenance"),
        ));
    }
    if let Some(h) = &svc.hooks {
        for (phase, steps, before) in [
            ("before", &h.before, true),
            ("after_start", &h.after_start, false),
            ("after_switch", &h.after_switch, false),
        ] {
            for (i, step) in steps.iter().enumerate() {
                let one_off = match step {
                    HookStep::Command(_) => before,
                    HookStep::Detailed(d) => {
                        d.service.is_none() && (d.image.is_some() || !d.mounts.is_empty() || before)
                    }
                };
                if one_off {
                    out.push((
                        crate::spec::hook_container_name(&base, &format!("{phase}[{i}]")),
                        format!("the one-off container of `{service}`'s hook {phase}[{i}]"),
                        p(&format!("/hooks/{phase}/{i}")),
                    ));
                }
            }
        }
    }
    out
}

impl DerivedNames {
    fn claim(
        cx: &mut Ctx<'_>,
        map: &mut BTreeMap<String, Owner>,
        reported: &mut std::collections::BTreeSet<(String, String)>,
        kind: &str,
        name: String,
        owner: Owner,
    ) {
        match map.get(&name) {
            Some(first) => {
                if !reported.insert((first.unit.clone(), owner.unit.clone())) {
                    return;
                }
                cx.at_key(
                    &owner.file,
                    &owner.pointer,
                    format!(
                        "{kind} name `{name}` of {} is also the name of {} ({}:{}) (rule `derived_name`)",
                        owner.what, first.what, first.file, first.line
                    ),
                    "dockhand derives Docker names by joining stack, service and suffix with `-` (containers) or `_` (networks, volumes): rename one of the two so that they differ",
                );
            }
            None => {
                map.insert(name, owner);
            }
        }
    }

    fn owner(cx: &Ctx<'_>, file: &str, pointer: String, what: String, unit: &str) -> Owner {
        let line = cx.pos_key(file, &pointer).line;
        Owner {
            file: file.to_string(),
            pointer,
            line,
            what,
            unit: format!("{file}#{unit}"),
        }
    }

    /// Claims every name `stack` derives; a name claimed before is reported with both owners.
    pub(super) fn stack(&mut self, cx: &mut Ctx<'_>, naming: Naming<'_>, stack: &Stack) {
        let file = stack.file.as_str();
        let s = &stack.spec;
        for (service, svc) in &s.services {
            for (name, what, pointer) in derived_containers(naming, &s.stack, service, svc) {
                let owner = Self::owner(
                    cx,
                    file,
                    pointer,
                    format!("{what} in stack `{}`", s.stack),
                    &svc_ptr(service, ""),
                );
                Self::claim(
                    cx,
                    &mut self.containers,
                    &mut self.reported,
                    "container",
                    name,
                    owner,
                );
            }
        }
        for (kind, decls, map) in [
            (
                "network",
                s.networks
                    .iter()
                    .map(|(k, n)| (k, n.name.as_deref(), n.external))
                    .collect::<Vec<_>>(),
                &mut self.networks,
            ),
            (
                "volume",
                s.volumes
                    .iter()
                    .map(|(k, v)| (k, v.name.as_deref(), v.external))
                    .collect(),
                &mut self.volumes,
            ),
        ] {
            for (key, explicit, external) in decls {
                if external {
                    continue;
                }
                let name = naming.object(&s.stack, key, explicit, false);
                let pointer = format!("/{kind}s/{}", escape_pointer_token(key));
                let owner = Self::owner(
                    cx,
                    file,
                    pointer.clone(),
                    format!("{kind} `{key}` of stack `{}`", s.stack),
                    &pointer,
                );
                Self::claim(cx, map, &mut self.reported, kind, name, owner);
            }
        }
    }
}
