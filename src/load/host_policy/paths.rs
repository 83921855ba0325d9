//! Host paths a desired state names ([`PathSite`]), what the edge found at each
//! ([`ResolvedPath`]), and the pure path helpers the checks share.

use std::collections::BTreeMap;
use std::path::{Component, Path};

use super::PathUse;
use crate::load::policy::hook_steps;
use crate::load::yaml::escape_pointer_token;
use crate::model::{DesiredState, HookStep, Mount};

/// A host path after the edge resolved it: symlinks and `..` followed, and what it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedPath {
    /// The canonical path (for a path that does not exist yet: its deepest existing folder,
    /// resolved, with the rest appended).
    pub path: String,
    pub kind: HostFileKind,
}

/// What is at a resolved host path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostFileKind {
    Missing,
    Dir,
    File {
        size: u64,
    },
    Fifo,
    CharDevice,
    BlockDevice,
    Socket,
    /// A symlink whose target does not exist (it would be followed once its target appears).
    DanglingSymlink,
    /// The edge could not look (permissions, an I/O error): the message.
    Unreadable(String),
}

impl HostFileKind {
    pub(super) fn describe(&self) -> String {
        match self {
            HostFileKind::Missing => "missing".into(),
            HostFileKind::Dir => "a directory".into(),
            HostFileKind::File { size } => format!("a file of {size} bytes"),
            HostFileKind::Fifo => "a FIFO (named pipe)".into(),
            HostFileKind::CharDevice => "a character device".into(),
            HostFileKind::BlockDevice => "a block device".into(),
            HostFileKind::Socket => "a socket".into(),
            HostFileKind::DanglingSymlink => "a symlink to nothing".into(),
            HostFileKind::Unreadable(e) => format!("unreadable ({e})"),
        }
    }
}

/// Each host path as written → what the edge found (see [`crate::host::resolve_paths`]).
pub type ResolvedPaths = BTreeMap<String, ResolvedPath>;

/// One place a commit names a host path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathSite {
    /// The stack file.
    pub file: String,
    /// JSON pointer of the field.
    pub pointer: String,
    pub stack: String,
    pub use_: PathUse,
    /// A bind mount with `create`: dockhand makes the directory (and chmods/chowns it).
    pub create: bool,
    pub path: String,
}

/// Every host path the desired state names: service and hook bind sources, env files, rotate
/// directories.
pub fn path_sites(desired: &DesiredState) -> Vec<PathSite> {
    let mut out = Vec::new();
    for stack in &desired.stacks {
        for (name, svc) in &stack.spec.services {
            let base = format!("/services/{}", escape_pointer_token(name));
            let mut site = |pointer: String, use_: PathUse, create: bool, path: &str| {
                out.push(PathSite {
                    file: stack.file.clone(),
                    pointer,
                    stack: stack.name().to_string(),
                    use_,
                    create,
                    path: path.to_string(),
                });
            };
            if let Some(f) = &svc.env_file {
                site(format!("{base}/env_file"), PathUse::EnvFile, false, f);
            }
            for (i, m) in svc.mounts.iter().enumerate() {
                if let Mount::Bind(b) = m {
                    site(
                        format!("{base}/mounts/{i}/bind"),
                        PathUse::Bind,
                        b.create.is_some(),
                        &b.bind,
                    );
                }
            }
            for (ptr, step) in hook_steps(svc) {
                let HookStep::Detailed(d) = step else {
                    continue;
                };
                for (i, m) in d.mounts.iter().enumerate() {
                    if let Mount::Bind(b) = m {
                        site(
                            format!("{base}{ptr}/mounts/{i}/bind"),
                            PathUse::Bind,
                            b.create.is_some(),
                            &b.bind,
                        );
                    }
                }
                if let Some(r) = &d.rotate {
                    site(
                        format!("{base}{ptr}/rotate/dir"),
                        PathUse::Rotate,
                        false,
                        &r.dir,
                    );
                }
            }
        }
    }
    out
}

/// `desired` with every host path replaced by its resolved form, so that what apply creates,
/// reads, mounts and rotates is the path that was checked (apply refuses to go through any
/// symlink: see [`crate::host`]).
pub fn with_resolved_paths(mut desired: DesiredState, resolved: &ResolvedPaths) -> DesiredState {
    let fix = |p: &mut String| {
        if let Some(r) = resolved.get(p.as_str()) {
            p.clone_from(&r.path);
        }
    };
    for stack in &mut desired.stacks {
        for svc in stack.spec.services.values_mut() {
            if let Some(f) = &mut svc.env_file {
                fix(f);
            }
            for m in &mut svc.mounts {
                if let Mount::Bind(b) = m {
                    fix(&mut b.bind);
                }
            }
            if let Some(hooks) = &mut svc.hooks {
                for step in hooks
                    .before
                    .iter_mut()
                    .chain(hooks.after_start.iter_mut())
                    .chain(hooks.after_switch.iter_mut())
                {
                    let HookStep::Detailed(d) = step else {
                        continue;
                    };
                    for m in &mut d.mounts {
                        if let Mount::Bind(b) = m {
                            fix(&mut b.bind);
                        }
                    }
                    if let Some(r) = &mut d.rotate {
                        fix(&mut r.dir);
                    }
                }
            }
        }
    }
    desired
}

/// Whether route host `name` matches `pattern`: equal, or `*.domain` and `name` ends with
/// `.domain` (one label or more before it). Case-insensitive, as DNS is.
pub(super) fn host_matches(name: &str, pattern: &str) -> bool {
    let name = name.to_ascii_lowercase();
    let pattern = pattern.to_ascii_lowercase();
    match pattern.strip_prefix("*.") {
        Some(domain) => name
            .strip_suffix(domain)
            .is_some_and(|head| head.len() > 1 && head.ends_with('.')),
        None => name == pattern,
    }
}

/// Absolute, and no `.` or `..` component.
pub(super) fn is_clean_abs(path: &str) -> bool {
    path.starts_with('/')
        && Path::new(path)
            .components()
            .all(|c| matches!(c, Component::RootDir | Component::Normal(_)))
}

/// Whether `path` is `root` or below it, component by component.
pub(super) fn under(path: &str, root: &str) -> bool {
    Path::new(path).starts_with(root)
}

pub(super) fn overlaps(a: &str, b: &str) -> bool {
    under(a, b) || under(b, a)
}

pub(super) fn path_len(p: &str) -> usize {
    Path::new(p).components().count()
}
