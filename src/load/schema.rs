//! The JSON Schemas of the desired-state files and the host policy, generated from the types in `model`, and validation of a
//! parsed document against them with errors mapped back to YAML positions.
//!
//! `schemas/*.schema.json` in the repository are these generated schemas, written out for
//! editors (`# yaml-language-server: $schema=…`); a test fails when they drift apart.

use std::sync::OnceLock;

use jsonschema::error::ValidationErrorKind;
use jsonschema::Validator;
use serde_json::Value;

use super::diagnostic::Diagnostic;
use super::yaml::{escape_pointer_token, PosIndex};
use crate::model::{RepoConfig, StackFile};

/// Which of the two file kinds a document is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    Repo,
    Stack,
    /// The host's own policy file (see [`super::host_policy`]).
    HostPolicy,
}

impl FileKind {
    /// File name of the schema under `schemas/`.
    pub fn schema_file(self) -> &'static str {
        match self {
            FileKind::Repo => "dockhand.schema.json",
            FileKind::Stack => "stack.schema.json",
            FileKind::HostPolicy => "policy.schema.json",
        }
    }

    /// Every kind, in the order `dockhand schema` writes them.
    pub const ALL: [FileKind; 3] = [FileKind::Repo, FileKind::Stack, FileKind::HostPolicy];
}

/// The schema for `kind`, as generated from the Rust types.
pub fn schema(kind: FileKind) -> Value {
    let schema = match kind {
        FileKind::Repo => schemars::schema_for!(RepoConfig),
        FileKind::Stack => schemars::schema_for!(StackFile),
        FileKind::HostPolicy => schemars::schema_for!(super::host_policy::HostPolicy),
    };
    schema.to_value()
}

/// The schema as written to `schemas/` (pretty JSON with a trailing newline).
pub fn schema_text(kind: FileKind) -> String {
    let mut text = serde_json::to_string_pretty(&schema(kind)).unwrap_or_default();
    text.push('\n');
    text
}

fn validator(kind: FileKind) -> &'static (Validator, Value) {
    static REPO: OnceLock<(Validator, Value)> = OnceLock::new();
    static STACK: OnceLock<(Validator, Value)> = OnceLock::new();
    static HOST_POLICY: OnceLock<(Validator, Value)> = OnceLock::new();
    let cell = match kind {
        FileKind::Repo => &REPO,
        FileKind::Stack => &STACK,
        FileKind::HostPolicy => &HOST_POLICY,
    };
    cell.get_or_init(|| {
        let schema = schema(kind);
        // The schema is generated from our own types, so failing to compile it is a bug in
        // dockhand, not in the user's input.
        #[allow(clippy::expect_used)]
        let v = jsonschema::validator_for(&schema).expect("generated schema compiles");
        (v, schema)
    })
}

/// Validates `value` against the schema of `kind`; every violation becomes a diagnostic.
pub fn check(kind: FileKind, file: &str, value: &Value, index: &PosIndex) -> Vec<Diagnostic> {
    let (validator, schema) = validator(kind);
    let mut out = Vec::new();
    for err in validator.iter_errors(value) {
        report(&err, schema, file, index, &mut out);
    }
    out
}

/// A copy of `value` without the parts the schema rejects: unknown keys and invalid values are
/// dropped. The loader deserializes this copy so that a typo in one field does not hide the
/// cross-file problems of the rest (a dropped required field still stops the file).
pub fn without_invalid_parts(kind: FileKind, value: &Value) -> Value {
    let (validator, _) = validator(kind);
    let mut pointers: Vec<String> = Vec::new();
    for err in validator.iter_errors(value) {
        let at = err.instance_path().as_str().to_string();
        match err.kind() {
            ValidationErrorKind::AdditionalProperties { unexpected } => pointers.extend(
                unexpected
                    .iter()
                    .map(|k| format!("{at}/{}", escape_pointer_token(k))),
            ),
            _ => pointers.push(at),
        }
    }
    // Deepest and last first, so that removing an array element does not shift the index of
    // another pointer still to be removed.
    pointers.sort_by(|a, b| {
        let key = |p: &str| {
            p.split('/')
                .map(|t| t.parse::<usize>().map_or(Err(t.to_string()), Ok))
                .collect::<Vec<_>>()
        };
        key(b).cmp(&key(a))
    });
    pointers.dedup();
    let mut out = value.clone();
    for p in pointers {
        remove_pointer(&mut out, &p);
    }
    out
}

fn remove_pointer(value: &mut Value, pointer: &str) {
    let Some((parent, last)) = pointer.rsplit_once('/') else {
        return;
    };
    let last = last.replace("~1", "/").replace("~0", "~");
    match value.pointer_mut(parent) {
        Some(Value::Object(map)) => {
            map.shift_remove(&last);
        }
        Some(Value::Array(items)) => {
            if let Ok(i) = last.parse::<usize>() {
                if i < items.len() {
                    items.remove(i);
                }
            }
        }
        _ => {}
    }
}

fn report(
    err: &jsonschema::ValidationError<'_>,
    schema: &Value,
    file: &str,
    index: &PosIndex,
    out: &mut Vec<Diagnostic>,
) {
    let pointer = err.instance_path().as_str().to_string();
    match err.kind() {
        ValidationErrorKind::AdditionalProperties { unexpected } => {
            let allowed = allowed_properties(schema, err.schema_path().as_str());
            for key in unexpected {
                let key_ptr = format!("{pointer}/{}", escape_pointer_token(key));
                let hint = match closest(key, &allowed) {
                    Some(best) => {
                        format!(
                            "did you mean `{best}`? allowed here: {}",
                            allowed.join(", ")
                        )
                    }
                    None if allowed.is_empty() => "remove it".to_string(),
                    None => format!("allowed here: {}", allowed.join(", ")),
                };
                out.push(
                    Diagnostic::new(
                        file,
                        index.key(&key_ptr),
                        &pointer,
                        format!("unknown field `{key}`"),
                    )
                    .hint(hint),
                );
            }
            return;
        }
        ValidationErrorKind::PropertyNames { error } => {
            let key = error.instance().as_str().unwrap_or_default().to_string();
            let key_ptr = format!("{pointer}/{}", escape_pointer_token(&key));
            out.push(
                Diagnostic::new(file, index.key(&key_ptr), &pointer, format!("name `{key}` is not allowed"))
                    .hint("names use lowercase letters, digits, `.`, `_` and `-`, and start with a letter or digit"),
            );
            return;
        }
        ValidationErrorKind::AnyOf { context } | ValidationErrorKind::OneOfNotValid { context } => {
            // Report the errors of the alternative the author most likely meant: the one that
            // got furthest (not a bare type mismatch at this node), with the fewest errors.
            let is_type_miss = |branch: &Vec<jsonschema::ValidationError<'static>>| {
                branch.iter().all(|e| {
                    e.instance_path().as_str() == pointer
                        && matches!(e.kind(), ValidationErrorKind::Type { .. })
                })
            };
            if let Some(branch) = context
                .iter()
                .filter(|b| !b.is_empty() && !is_type_miss(b))
                .min_by_key(|b| b.len())
            {
                for e in branch {
                    report(e, schema, file, index, out);
                }
                return;
            }
        }
        _ => {}
    }
    // Environment values may be secrets: never echo them back.
    let secret = pointer.contains("/env/");
    let message = if secret {
        err.masked().to_string()
    } else {
        err.to_string()
    };
    let message = tidy(&message);
    let pos = if matches!(err.kind(), ValidationErrorKind::Required { .. }) {
        index.key(&pointer)
    } else {
        index.value(&pointer)
    };
    let mut d = Diagnostic::new(file, pos, &pointer, message);
    if let Some(h) = hint_for(&pointer, err.kind()) {
        d = d.hint(h);
    }
    out.push(d);
}

/// jsonschema's messages quote the whole offending value; long objects are cut to stay readable.
fn tidy(message: &str) -> String {
    if message.chars().count() > 200 {
        let cut: String = message.chars().take(160).collect();
        format!("{cut}…")
    } else {
        message.to_string()
    }
}

fn allowed_properties(schema: &Value, schema_path: &str) -> Vec<String> {
    // `…/additionalProperties` → the object schema that holds `properties`.
    let parent = schema_path
        .strip_suffix("/additionalProperties")
        .unwrap_or(schema_path);
    let mut keys: Vec<String> = schema
        .pointer(parent)
        .and_then(|s| s.get("properties"))
        .and_then(Value::as_object)
        .map(|p| p.keys().cloned().collect())
        .unwrap_or_default();
    keys.sort();
    keys
}

/// The allowed name closest to a misspelt one, if it is close enough to be a likely typo.
fn closest<'a>(key: &str, allowed: &'a [String]) -> Option<&'a str> {
    allowed
        .iter()
        .map(|a| (edit_distance(key, a), a))
        .filter(|(d, a)| *d <= 2.max(a.len() / 4))
        .min_by_key(|(d, _)| *d)
        .map(|(_, a)| a.as_str())
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur.push((prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

fn hint_for(pointer: &str, kind: &ValidationErrorKind) -> Option<String> {
    let segments: Vec<&str> = pointer.split('/').collect();
    let field = segments
        .iter()
        .rev()
        .find(|s| !s.is_empty() && !s.bytes().all(|b| b.is_ascii_digit()))
        .copied()
        .unwrap_or("");
    let in_list = |name: &str| segments.iter().rev().nth(1) == Some(&name);
    let hint = match kind {
        ValidationErrorKind::Required { property } => {
            format!("add `{}:` here", property.as_str().unwrap_or("?"))
        }
        _ if field == "ports" || in_list("ports") => {
            "write a port as [IP:]HOST:CONTAINER[/tcp|udp], e.g. \"127.0.0.1:8080:80\", or a range of the same length, e.g. \"8080-8082:8080-8082\"".into()
        }
        _ if matches!(
            field,
            "interval"
                | "timeout"
                | "start_period"
                | "start_interval"
                | "stop_grace_period"
                | "drain"
        ) =>
        {
            "write a duration such as 500ms, 1s or 2m30s".into()
        }
        _ if matches!(field, "mem_limit" | "mem_reservation" | "shm_size") => {
            "write a size with its unit, e.g. 512MiB, 1GiB or 500MB (compose's `512m` is 512MiB)"
                .into()
        }
        _ if field == "extra_hosts" || in_list("extra_hosts") => {
            "write HOST:IP, e.g. db.internal:10.0.0.5 or host.docker.internal:host-gateway".into()
        }
        _ if field == "stack" => {
            "use lowercase letters, digits, `.`, `_` and `-`, starting with a letter or digit"
                .into()
        }
        _ if in_list("mounts") || field == "mounts" => {
            "a mount is one of {bind: /host/path, target: /path}, {volume: NAME, target: /path} \
             or {tmpfs: /path}"
                .into()
        }
        _ if segments.contains(&"env") => "env values are strings, numbers or booleans".into(),
        _ if segments.contains(&"hooks") => {
            "a hook step is a command list such as [python, manage.py, migrate] or \
             {command: [...], service: NAME}"
                .into()
        }
        ValidationErrorKind::Type { .. } => {
            "check the type expected for this field in schemas/".into()
        }
        ValidationErrorKind::Enum { options } => format!("use one of {options}"),
        _ => return None,
    };
    Some(hint)
}
