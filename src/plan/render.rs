//! Showing a plan to people (`terraform plan`-style text) and machines (JSON).

use std::fmt::Write;

use serde_json::Value;
use similar::{ChangeTag, TextDiff};

use super::{Action, Plan};

/// Lines for one spec field. For env, values are never shown: a key whose marker differs from
/// the other side's reads as changed, the rest as hidden.
pub fn value_lines(field: &str, value: Option<&Value>, other: Option<&Value>) -> Vec<String> {
    let Some(value) = value else {
        return Vec::new();
    };
    match (field, value) {
        ("env", Value::Object(map)) => map
            .keys()
            .map(|k| match other.and_then(|o| o.get(k)) {
                Some(theirs) if Some(theirs) != map.get(k) => {
                    format!("{k}=(hidden, value changed)")
                }
                _ => format!("{k}=(hidden)"),
            })
            .collect(),
        ("env_file", Value::Object(map)) => vec![format!(
            "{} (contents {})",
            map.get("path").and_then(Value::as_str).unwrap_or("?"),
            map.get("sha256")
                .and_then(Value::as_str)
                .map(|h| format!("sha256:{}", &h[..h.len().min(12)]))
                .unwrap_or_else(|| "unreadable".into())
        )],
        (_, Value::Object(map)) => map
            .iter()
            .map(|(k, v)| format!("{k}={}", scalar(v)))
            .collect(),
        (_, Value::Array(items)) => items.iter().map(scalar).collect(),
        _ => vec![scalar(value)],
    }
}

fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Object(m) => m
            .iter()
            .map(|(k, v)| format!("{k}={}", scalar(v)))
            .collect::<Vec<_>>()
            .join(" "),
        other => other.to_string(),
    }
}

/// Shortens `repo@sha256:<64 hex>` to 12 hex characters for the one-line views.
pub fn short_image(image: &str) -> String {
    match image.split_once("@sha256:") {
        Some((repo, hex)) if hex.len() > 12 => format!("{repo}@sha256:{}", &hex[..12]),
        _ => image.to_string(),
    }
}

/// Text rendering. `detailed` adds the field-by-field diff of every recreate (`dockhand diff`).
pub fn text(plan: &Plan, detailed: bool) -> String {
    let mut out = String::new();
    let mut stacks: Vec<&str> = plan
        .actions
        .iter()
        .map(Action::stack)
        .chain(plan.conflicts.iter().map(|c| c.stack.as_str()))
        .collect();
    stacks.sort();
    stacks.dedup();
    for stack in stacks {
        let _ = writeln!(out, "stack {stack}");
        for a in plan.actions.iter().filter(|a| a.stack() == stack) {
            match a {
                Action::CreateNetwork { name, .. } => {
                    let _ = writeln!(out, "  + network {name}");
                }
                Action::CreateVolume { name, .. } => {
                    let _ = writeln!(out, "  + volume {name}");
                }
                Action::Create {
                    container, image, ..
                } => {
                    let _ = writeln!(out, "  + container {container}  ({})", short_image(image));
                }
                Action::Recreate {
                    container, changes, ..
                } => {
                    let fields: Vec<&str> = changes.iter().map(|c| c.field.as_str()).collect();
                    let _ = writeln!(
                        out,
                        "  ~ container {container}  (recreate: {} changed)",
                        fields.join(", ")
                    );
                    write_changes(&mut out, changes, detailed);
                }
                Action::Start {
                    container, reason, ..
                } => {
                    let _ = writeln!(out, "  > container {container}  (start: {reason})");
                }
                Action::Correct {
                    container,
                    changes,
                    start,
                    ..
                } => {
                    let mut fields: Vec<&str> = changes.iter().map(|c| c.field.as_str()).collect();
                    fields.dedup();
                    let then = match start {
                        Some(reason) => format!("; then start: {reason}"),
                        None => String::new(),
                    };
                    let _ = writeln!(
                        out,
                        "  ~ container {container}  (correct in place: {} changed by hand{then})",
                        fields.join(", ")
                    );
                    for c in changes {
                        let _ = writeln!(
                            out,
                            "      {}: {} → {}",
                            c.field,
                            c.before.join(", "),
                            c.after.join(", ")
                        );
                    }
                }
                Action::Remove {
                    container, reason, ..
                } => {
                    let _ = writeln!(out, "  - container {container}  ({reason})");
                }
                Action::RemoveNetwork { name, .. } => {
                    let _ = writeln!(out, "  - network {name}  (no longer declared)");
                }
                Action::RemoveVolume { name, .. } => {
                    let _ = writeln!(out, "  - volume {name}  (deleted with its data: --volumes)");
                }
                Action::Release {
                    container,
                    image,
                    step,
                    changes,
                    retire,
                    ..
                } => {
                    let then = match retire {
                        Some(old) => format!(", switch from {old}, retire {old}"),
                        None => ", switch".into(),
                    };
                    let fields: Vec<&str> = changes.iter().map(|c| c.field.as_str()).collect();
                    let changed = if fields.is_empty() {
                        String::new()
                    } else {
                        format!("; {} changed", fields.join(", "))
                    };
                    let _ = writeln!(
                        out,
                        "  ~ container {container}  (release {}: {}, health gate{then}{changed})",
                        short_image(image),
                        step.as_str()
                    );
                    write_changes(&mut out, changes, detailed);
                }
                Action::Retire {
                    container, reason, ..
                } => {
                    let _ = writeln!(
                        out,
                        "  - container {container}  (retire: drain, stop; {reason})"
                    );
                }
            }
            if let Some(notes) = a.container().and_then(|c| plan.notes.get(c)) {
                for n in notes {
                    let _ = writeln!(out, "      {n}");
                }
            }
        }
        for c in plan.conflicts.iter().filter(|c| c.stack == stack) {
            let _ = writeln!(out, "  ! {}: {}\n      hint: {}", c.name, c.message, c.hint);
        }
    }
    for sk in &plan.skipped {
        let _ = writeln!(
            out,
            "skipped {}/{} (the rest goes on): {}",
            sk.stack,
            sk.service,
            sk.reason.lines().next().unwrap_or_default()
        );
    }
    if !plan.kept_volumes.is_empty() {
        let _ = writeln!(
            out,
            "volumes no longer declared, kept (dockhand never deletes data unless asked): {}",
            plan.kept_volumes.join(", ")
        );
    }
    for k in &plan.kept_networks {
        let _ = writeln!(
            out,
            "network {} is no longer declared but kept: in use by {} (not this project's)\n  hint: dockhand removes it once nothing else is attached (docker network disconnect {} {})",
            k.name,
            k.attached.join(", "),
            k.name,
            k.attached.first().map_or("<container>", String::as_str)
        );
    }
    for u in &plan.unhealthy {
        let _ = writeln!(
            out,
            "! container {} ({}/{}) is not healthy: {}\n    hint: docker logs {} shows why; it has the desired spec, so a fix comes with a new commit (or it recovers by itself)",
            u.container, u.stack, u.service, u.reason, u.container
        );
    }
    if plan.is_empty() && !plan.unhealthy.is_empty() {
        let _ = writeln!(
            out,
            "No changes to apply, but not in sync: {} container(s) not healthy.",
            plan.unhealthy.len()
        );
        return out;
    }
    if plan.is_empty() {
        let _ = writeln!(
            out,
            "No changes. The host matches the desired state ({} containers).",
            plan.unchanged.len()
        );
        return out;
    }
    let _ = writeln!(out, "\nPlan: {}.", summary_line(plan));
    if !plan.conflicts.is_empty() {
        let _ = writeln!(
            out,
            "{} conflict{} must be resolved before apply.",
            plan.conflicts.len(),
            if plan.conflicts.len() == 1 { "" } else { "s" }
        );
    }
    out
}

/// `1 to create, 0 to recreate, …`: the plan in one line (also stored with each deploy).
pub fn summary_line(plan: &Plan) -> String {
    let s = plan.summary();
    let release = if s.release > 0 {
        format!(", {} to release blue/green", s.release)
    } else {
        String::new()
    };
    // Only when there is one, so that plans without drift read as they always did.
    let correct = if s.correct > 0 {
        format!(", {} to correct in place", s.correct)
    } else {
        String::new()
    };
    format!(
        "{} to create, {} to recreate, {} to start{correct}, {} to remove{release}",
        s.create, s.recreate, s.start, s.remove
    )
}

fn write_changes(out: &mut String, changes: &[super::FieldChange], detailed: bool) {
    for c in changes {
        let always = c.field == "image"
            || c.field == "image (running)"
            || c.field.ends_with(super::drift::BY_HAND);
        if detailed || always {
            let _ = writeln!(out, "      {}:", c.field);
            let before: Vec<&str> = c.before.iter().map(String::as_str).collect();
            let after: Vec<&str> = c.after.iter().map(String::as_str).collect();
            let diff = TextDiff::from_slices(&before, &after);
            for change in diff.iter_all_changes() {
                let sign = match change.tag() {
                    ChangeTag::Delete => '-',
                    ChangeTag::Insert => '+',
                    ChangeTag::Equal => ' ',
                };
                if detailed || change.tag() != ChangeTag::Equal {
                    let _ = writeln!(out, "        {sign} {}", change.value());
                }
            }
        }
    }
}

/// Machine rendering: the plan plus its summary. Container actions carry their `wave`;
/// `waits` lists the unchanged dependencies apply waits for after each wave.
pub fn json(plan: &Plan) -> String {
    serde_json::to_string_pretty(&json_doc(plan)).unwrap_or_default()
}

/// [`json`] as a value, for outputs that embed the plan.
pub fn json_doc(plan: &Plan) -> serde_json::Value {
    serde_json::json!({
        "summary": plan.summary(),
        "actions": plan.actions,
        "waits": plan.waits,
        "unchanged": plan.unchanged,
        "conflicts": plan.conflicts,
        "kept_volumes": plan.kept_volumes,
        "kept_networks": plan.kept_networks,
        "unhealthy": plan.unhealthy,
        "in_sync": plan.in_sync(),
    })
}
