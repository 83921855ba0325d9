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
        Some(f) => load_one::<RepoConfig>(f, FileKind::Repo, &mut problems, &mut indexes),
    };

    let mut stacks = Vec::new();
    let mut stack_files: Vec<&SourceFile> = files
        .iter()
        .filter(|f| f.path != REPO_FILE && is_desired_state_file(&f.path))
        .collect();
    stack_files.sort_by(|a, b| a.path.cmp(&b.path));
    if stack_files.is_empty() {
        problems.push(
            Diagnostic::new(
                STACKS_DIR,
                Pos { line: 1, col: 1 },
                "",
                "no stack files found",
            )
            .hint("add stacks/<name>.yaml with `stack:` and `services:`"),
        );
    }
    for f in stack_files {
        if let Some(spec) = load_one::<StackFile>(f, FileKind::Stack, &mut problems, &mut indexes) {
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

fn load_one<T: DeserializeOwned>(
    file: &SourceFile,
    kind: FileKind,
    problems: &mut Vec<Diagnostic>,
    indexes: &mut validate::Indexes,
) -> Option<T> {
    let (value, index) = match yaml::parse(&file.text) {
        Ok(parsed) => parsed,
        Err(e) => {
            problems.push(
                Diagnostic::new(
                    &file.path,
                    e.pos,
                    "",
                    format!("invalid YAML: {}", e.message),
                )
                .hint("fix the YAML syntax (indentation, quotes, `key: value` pairs)"),
            );
            return None;
        }
    };
    let schema_problems = schema::check(kind, &file.path, &value, &index);
    let ok = schema_problems.is_empty();
    problems.extend(schema_problems);
    indexes.insert(file.path.clone(), index);
    if !ok {
        // Keep going without the rejected parts so that the cross-file checks still report
        // what else is wrong; the load fails anyway because `problems` is not empty.
        return serde_json::from_value::<T>(schema::without_invalid_parts(kind, &value)).ok();
    }
    match serde_json::from_value::<T>(value) {
        Ok(v) => Some(v),
        Err(e) => {
            // The schema is generated from these types, so this is a dockhand bug; say so.
            problems.push(
                Diagnostic::new(&file.path, Pos { line: 1, col: 1 }, "", format!("{e}"))
                    .hint("the schema accepted this document but dockhand's types did not: please report it"),
            );
            None
        }
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
