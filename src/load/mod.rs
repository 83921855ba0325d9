//! Turning the files of a desired-state repository into a validated [`DesiredState`].
//!
//! Pipeline per file: YAML → JSON value with positions (`yaml`) → JSON Schema (`schema`) →
//! serde into the `model` types; then cross-file meaning (`validate`). Every problem from every
//! file is collected and returned together, each with file:line:column, field path and hint.
//!
//! This module is pure: it takes file contents, never reads the disk or git (that is `sources`).

pub mod diagnostic;
pub mod host_policy;
mod policy;
pub mod schema;
pub mod validate;
pub mod yaml;

use serde::de::DeserializeOwned;

pub use diagnostic::{Diagnostic, Diagnostics};
pub use host_policy::HostPolicy;
use schema::FileKind;
use yaml::{Pos, PosIndex};

use crate::model::{DesiredState, RepoConfig, Stack, StackFile};

/// Name of the repository settings file at the desired-state root.
pub const REPO_FILE: &str = "dockhand.yaml";
/// Folder holding one file per stack.
pub const STACKS_DIR: &str = "stacks";

/// Largest desired-state file dockhand reads, in bytes. Real stack files are a few KiB; a
/// commit is untrusted input, and the loader holds a whole file in memory.
pub const MAX_FILE_BYTES: usize = 1 << 20;
/// Largest desired state (all files together), in bytes.
pub const MAX_REPO_BYTES: usize = 8 << 20;
/// Nodes all files of a repository may build together, aliases counted at their full size
/// (each file is also held to [`yaml::Limits`]).
pub const MAX_REPO_NODES: usize = 100_000;

/// One file of the desired state: its path relative to the root, and its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceFile {
    pub path: String,
    pub text: String,
}

/// Whether `path` (relative to the root) is a file dockhand reads.
pub fn is_desired_state_file(path: &str) -> bool {
    path == REPO_FILE
        || path.strip_prefix("stacks/").is_some_and(|rest| {
            !rest.contains('/') && (rest.ends_with(".yaml") || rest.ends_with(".yml"))
        })
}

/// Loads and validates a whole desired state against the repository's own rules only (no
/// host policy): for tools and tests that never touch a host. Deploying verbs use
/// [`load_with`] (through [`crate::host::load`]).
///
/// # Errors
/// Every problem found, sorted by file and position.
pub fn load(files: &[SourceFile]) -> Result<DesiredState, Diagnostics> {
    load_checked(files, None)
}

/// [`load`], then the host policy's rules on every path, power, external object, registry and
/// route host as written, and whether the repository's `policy:` widens the host's (see
/// [`host_policy`]). The paths' resolved forms are checked at the edge
/// ([`crate::host::load`] with `host_policy::check_resolved`).
///
/// # Errors
/// Every problem found, sorted by file and position.
pub fn load_with(files: &[SourceFile], host: &HostPolicy) -> Result<DesiredState, Diagnostics> {
    load_checked(files, Some((host, None)))
}

/// [`load_with`], plus the host paths as the edge resolves them: `resolve` (given by the edge,
/// [`crate::host::resolve_paths`]) is asked for every path the desired state names, each is
/// checked again (`host_policy::check_resolved`), and the desired state returned names the
/// resolved paths. All problems, as written and as resolved, are reported together.
///
/// # Errors
/// Every problem found, sorted by file and position.
pub fn load_for_host(
    files: &[SourceFile],
    host: &HostPolicy,
    resolve: &mut dyn FnMut(&DesiredState) -> host_policy::ResolvedPaths,
) -> Result<DesiredState, Diagnostics> {
    load_checked(files, Some((host, Some(resolve))))
}

/// The edge's resolver of host paths, for [`load_for_host`].
type Resolver<'a> = &'a mut dyn FnMut(&DesiredState) -> host_policy::ResolvedPaths;

fn load_checked(
    files: &[SourceFile],
    host: Option<(&HostPolicy, Option<Resolver<'_>>)>,
) -> Result<DesiredState, Diagnostics> {
    let mut problems = Vec::new();
    let mut indexes = validate::Indexes::new();
    let mut budget = Budget::default();

    let config = match files.iter().find(|f| f.path == REPO_FILE) {
        None => {
            problems.push(
                Diagnostic::new(
                    REPO_FILE,
                    Pos { line: 1, col: 1 },
                    "",
                    "dockhand.yaml is missing",
                )
                .hint("create it at the desired-state root with at least `version: 1`"),
            );
            None
        }
        Some(f) => {
            load_one::<RepoConfig>(f, FileKind::Repo, &mut problems, &mut indexes, &mut budget)
        }
    };

    let mut stacks = Vec::new();
    let mut stack_files: Vec<&SourceFile> = files
        .iter()
        .filter(|f| f.path != REPO_FILE && is_desired_state_file(&f.path))
        .collect();
    stack_files.sort_by(|a, b| a.path.cmp(&b.path));
    // No stack file is a valid desired state: the project with nothing deployed. Deleting the
    // last stack file is how a repository decommissions a project (the plan removes what the
    // project owns, volumes kept), as deleting any other stack file removes that stack.
    for f in stack_files {
        if let Some(spec) =
            load_one::<StackFile>(f, FileKind::Stack, &mut problems, &mut indexes, &mut budget)
        {
            stacks.push(Stack {
                file: f.path.clone(),
                spec,
            });
        }
    }

    if let Some(config) = config {
        let desired = DesiredState { config, stacks };
        problems.extend(validate::check(&desired, &indexes));
        let mut resolved = None;
        if let Some((host, resolve)) = host {
            problems.extend(host_policy::check(&desired, &indexes, host));
            if let Some(resolve) = resolve {
                let paths = resolve(&desired);
                problems.extend(host_policy::check_resolved(
                    &desired, &indexes, host, &paths,
                ));
                resolved = Some(paths);
            }
        }
        if problems.is_empty() {
            return Ok(match resolved {
                Some(paths) => host_policy::with_resolved_paths(desired, &paths),
                None => desired,
            });
        }
    }
    Err(Diagnostics(problems).sorted())
}

/// What the files loaded so far used of the repository's budget.
#[derive(Default)]
struct Budget {
    bytes: usize,
    nodes: usize,
    /// Set once the budget is spent: later files are not parsed (one diagnostic says so).
    spent: bool,
}

fn load_one<T: DeserializeOwned>(
    file: &SourceFile,
    kind: FileKind,
    problems: &mut Vec<Diagnostic>,
    indexes: &mut validate::Indexes,
    budget: &mut Budget,
) -> Option<T> {
    let at_start = Pos { line: 1, col: 1 };
    if budget.spent {
        return None;
    }
    if file.text.len() > MAX_FILE_BYTES {
        problems.push(
            Diagnostic::new(
                &file.path,
                at_start,
                "",
                format!(
                    "file is {} bytes, over the limit of {MAX_FILE_BYTES} bytes (limit `max_file_bytes`)",
                    file.text.len()
                ),
            )
            .hint("a stack file is a few KiB; split the stack, or remove what dockhand does not read"),
        );
        return None;
    }
    budget.bytes += file.text.len();
    if budget.bytes > MAX_REPO_BYTES {
        budget.spent = true;
        problems.push(
            Diagnostic::new(
                &file.path,
                at_start,
                "",
                format!(
                    "the desired state is over {MAX_REPO_BYTES} bytes with this file (limit `max_repo_bytes`); it and the files after it were not read"
                ),
            )
            .hint("keep only dockhand.yaml and stacks/*.yaml under the desired-state path; large data does not belong there"),
        );
        return None;
    }
    let limits = yaml::Limits {
        max_nodes: yaml::Limits::default()
            .max_nodes
            .min(MAX_REPO_NODES.saturating_sub(budget.nodes)),
        ..yaml::Limits::default()
    };
    let (value, index) = match yaml::parse_counted(&file.text, limits) {
        Ok((value, index, nodes)) => {
            budget.nodes += nodes;
            (value, index)
        }
        Err(e) => {
            let repo_nodes_spent = e.limit == Some(yaml::Limit::Nodes)
                && limits.max_nodes < yaml::Limits::default().max_nodes;
            let d = match e.limit {
                None => Diagnostic::new(&file.path, e.pos, "", format!("invalid YAML: {}", e.message))
                    .hint("fix the YAML syntax (indentation, quotes, `key: value` pairs)"),
                Some(_) if repo_nodes_spent => {
                    budget.spent = true;
                    Diagnostic::new(
                        &file.path,
                        e.pos,
                        "",
                        format!("the desired state builds more than {MAX_REPO_NODES} YAML nodes with this file (limit `max_repo_nodes`); it and the files after it were not read"),
                    )
                    .hint("a repository of stacks builds a few thousand nodes: look for anchors and aliases that copy large parts many times")
                }
                Some(yaml::Limit::AliasNodes) => Diagnostic::new(&file.path, e.pos, "", e.message)
                    .hint("aliases may copy only a bounded amount (nested aliases multiply): write the repeated parts out, or share less"),
                Some(_) => Diagnostic::new(&file.path, e.pos, "", e.message)
                    .hint("a stack file builds a few hundred nodes: split the stack, or remove what dockhand does not read"),
            };
            problems.push(d);
            return None;
        }
    };
    let mut schema_problems = schema::check(kind, &file.path, &value, &index);
    nul_bytes(
        &file.path,
        &value,
        &index,
        &mut String::new(),
        &mut schema_problems,
    );
    let ok = schema_problems.is_empty();
    problems.extend(schema_problems);
    // Without the rejected parts, so that the cross-file checks still report what else is
    // wrong; the load fails anyway because `problems` is not empty.
    let value = if ok {
        value
    } else {
        schema::without_invalid_parts(kind, &value)
    };
    let typed = typed::<T>(&file.path, value, ok, &index, problems);
    indexes.insert(file.path.clone(), index);
    typed
}

/// Every key and string value holding a NUL byte, anywhere in a document (rule `nul_byte`):
/// no Docker field can carry one — the Engine and the kernel end a C string there — so such
/// a value would pass validation and fail half-way through an apply (a `command`, a
/// `working_dir`, a hook's `user`). `env`, `labels` and `route` have rules of their own that
/// say more, and are left to them.
fn nul_bytes(
    file: &str,
    value: &serde_json::Value,
    index: &PosIndex,
    pointer: &mut String,
    problems: &mut Vec<Diagnostic>,
) {
    let own_rule = {
        let mut parts = pointer.split('/').skip(1);
        parts.next() == Some("services")
            && parts
                .nth(1)
                .is_some_and(|f| matches!(f, "env" | "labels" | "route"))
    };
    if own_rule {
        return;
    }
    let refuse = |pos: Pos, pointer: &str, what: &str| {
        Diagnostic::new(
            file,
            pos,
            pointer,
            format!("{what} holds a NUL byte, which no Docker field can carry (rule `nul_byte`)"),
        )
        .hint("remove the NUL (\\0) escape from the YAML string")
    };
    match value {
        serde_json::Value::String(text) if text.contains('\0') => {
            problems.push(refuse(index.value(pointer), pointer, "this value"));
        }
        serde_json::Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                let len = pointer.len();
                pointer.push_str(&format!("/{i}"));
                nul_bytes(file, item, index, pointer, problems);
                pointer.truncate(len);
            }
        }
        serde_json::Value::Object(map) => {
            for (key, item) in map {
                let len = pointer.len();
                pointer.push('/');
                pointer.push_str(&yaml::escape_pointer_token(key));
                if key.contains('\0') {
                    problems.push(refuse(index.key(pointer), pointer, "this key"));
                } else {
                    nul_bytes(file, item, index, pointer, problems);
                }
                pointer.truncate(len);
            }
        }
        _ => {}
    }
}

/// The most typed-value failures reported per file; a file with more has bigger problems.
const MOST_TYPED_FAILURES: usize = 100;

/// Deserializes a schema-checked document into `T`. Types that parse further than their
/// schema pattern can still refuse a value here (a port out of range or an IP that is none,
/// a duration too long to wait): each refusal becomes a diagnostic at the value's position,
/// the value is dropped and the rest is tried again, so that every one is reported. After
/// schema errors (`schema_ok` false) the document lacks its rejected parts, so a failure that
/// is not one of those values (a missing field, a mount left without its target) is a
/// consequence of an error already reported: it is dropped without a word, and the file is
/// then not handed to the cross-file checks (what is left of it would only mislead them).
fn typed<T: DeserializeOwned>(
    file: &str,
    mut value: serde_json::Value,
    schema_ok: bool,
    index: &PosIndex,
    problems: &mut Vec<Diagnostic>,
) -> Option<T> {
    // Array elements dropped so far, as (array pointer, index in the document as written), so
    // that a later failure in the same array is reported at its written index.
    let mut dropped: Vec<(String, usize)> = Vec::new();
    let mut partial = false;
    for _ in 0..MOST_TYPED_FAILURES {
        let err = match serde_path_to_error::deserialize::<_, T>(&value) {
            Ok(v) => return (!partial).then_some(v),
            Err(e) => e,
        };
        let mut written = String::new();
        let mut current: Vec<Token> = Vec::new();
        for seg in err.path().iter() {
            match seg {
                serde_path_to_error::Segment::Seq { index } => {
                    let mut i = *index;
                    let mut before: Vec<usize> = dropped
                        .iter()
                        .filter(|(a, _)| *a == written)
                        .map(|(_, i)| *i)
                        .collect();
                    before.sort_unstable();
                    for d in before {
                        if d <= i {
                            i += 1;
                        }
                    }
                    written.push_str(&format!("/{i}"));
                    current.push(Token::Index(*index));
                }
                serde_path_to_error::Segment::Map { key } => {
                    written.push_str(&format!("/{}", yaml::escape_pointer_token(key)));
                    current.push(Token::Key(key.clone()));
                }
                // Enum variants and unknown steps have no place in the document.
                _ => break,
            }
        }
        let message = err.inner().to_string();
        let field = match current.last() {
            Some(Token::Key(k)) => k.as_str(),
            Some(Token::Index(_)) => written.rsplit('/').nth(1).unwrap_or_default(),
            None => "",
        };
        let hint = match field {
            "ports" => Some("write [IP:]HOST:CONTAINER[/tcp|udp] with ports from 1 to 65535"),
            "interval" | "timeout" | "start_period" | "start_interval" | "stop_grace_period"
            | "drain" => Some("write a duration such as 500ms, 1s or 2m30s"),
            _ => None,
        };
        match hint {
            Some(h) => problems
                .push(Diagnostic::new(file, index.value(&written), &written, message).hint(h)),
            None => {
                partial = true;
                // The schema is generated from these types, so this is a dockhand bug; say so.
                if schema_ok {
                    problems.push(
                        Diagnostic::new(file, index.value(&written), &written, message)
                            .hint("the schema accepted this value but dockhand's types did not: please report it"),
                    );
                }
            }
        }
        if !drop_at(&mut value, &current) {
            return None;
        }
        if let (Some(Token::Index(_)), Some(at)) = (current.last(), written.rfind('/')) {
            let orig = written[at + 1..].parse().unwrap_or(0);
            dropped.push((written[..at].to_string(), orig));
        }
    }
    None
}

/// One step of a path into a JSON document.
enum Token {
    Key(String),
    Index(usize),
}

/// Removes the node at `path` from `value`; `false` if there is none (the whole document).
fn drop_at(value: &mut serde_json::Value, path: &[Token]) -> bool {
    let Some((last, parents)) = path.split_last() else {
        return false;
    };
    let mut node = value;
    for t in parents {
        let next = match t {
            Token::Key(k) => node.get_mut(k.as_str()),
            Token::Index(i) => node.get_mut(*i),
        };
        match next {
            Some(n) => node = n,
            None => return false,
        }
    }
    match (last, node) {
        (Token::Key(k), serde_json::Value::Object(m)) => m.remove(k.as_str()).is_some(),
        (Token::Index(i), serde_json::Value::Array(a)) if *i < a.len() => {
            a.remove(*i);
            true
        }
        _ => false,
    }
}

/// Parses and schema-checks one document, for tests that compare schema and types.
pub fn schema_and_types_accept(kind: FileKind, text: &str) -> Option<(bool, bool)> {
    let (value, index): (serde_json::Value, PosIndex) = yaml::parse(text).ok()?;
    let schema_ok = schema::check(kind, "doc", &value, &index).is_empty();
    let types_ok = match kind {
        FileKind::Repo => serde_json::from_value::<RepoConfig>(value).is_ok(),
        FileKind::Stack => serde_json::from_value::<StackFile>(value).is_ok(),
        FileKind::HostPolicy => serde_json::from_value::<host_policy::HostPolicy>(value).is_ok(),
    };
    Some((schema_ok, types_ok))
}
