//! The edge between a commit and the host's files: the host policy file, every host path a
//! commit names (resolved and checked before anything plans with it), and the few operations
//! dockhand does on such paths — read an env file, create a bind directory, rotate backups,
//! and re-check a bind source right before a container is created.
//!
//! # Guarantees
//! - A path a commit names is checked as written and again as resolved (symlinks and `..`
//!   followed) against the host policy ([`crate::load::host_policy`]); what plans and apply
//!   then use is the resolved path.
//! - Nothing is created, chmod-ed, chown-ed, read or deleted through a symlink: every
//!   operation walks the path from `/` one component at a time with `O_NOFOLLOW`, and a link
//!   anywhere (one a container planted after the check, say) is refused.
//! - An env file is read only if it is a regular file of at most
//!   [`ENV_FILE_MAX_BYTES`] bytes; a FIFO or a device is refused from its metadata, and the
//!   open is non-blocking, so neither can hang dockhand.
//! - A rotate deletes only regular files directly in its directory (never a link's target,
//!   never a folder).

mod envfile;
mod paths;

pub use envfile::EnvSyntax;

pub use paths::{ensure_dir, open_dir, recheck_bind_source, rotate};
use paths::{read_nofollow, read_regular};

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use crate::load::host_policy::{
    self, HostFileKind, HostPolicy, ResolvedPath, ResolvedPaths, DEFAULT_POLICY_FILE,
    ENV_FILE_MAX_BYTES,
};
use crate::load::{Diagnostics, SourceFile};
use crate::model::DesiredState;
use crate::spec::{EnvFileHashes, HostFacts, MarkerKey};

/// Largest host policy file dockhand reads (bytes).
const POLICY_MAX_BYTES: u64 = 1024 * 1024;

/// Why dockhand refused or failed an operation on a host path.
#[derive(Debug, thiserror::Error)]
pub enum HostPathError {
    #[error("{path}: `{component}` is a symbolic link, and dockhand never follows one in a host path a commit names\n  hint: a container may have planted it in a folder it mounts; remove the link (the checked path is the real folder)")]
    Symlink { path: String, component: String },
    #[error("{path} is {kind}, not {wanted}\n  hint: name {wanted} here")]
    WrongKind {
        path: String,
        kind: String,
        wanted: &'static str,
    },
    #[error("{path} is {size} bytes, more than the {max} dockhand reads\n  hint: an env file holds KEY=VALUE lines; put large data in a bind mount")]
    TooLarge { path: String, size: u64, max: u64 },
    #[error(
        "{path} is not an absolute path without `.` or `..`\n  hint: write the host path in full"
    )]
    NotClean { path: String },
    #[error("{path}: {source}\n  hint: write it as for `docker compose` (`KEY=value`, quotes around a value with spaces, `#` or line breaks); dockhand checks it against compose's reading")]
    EnvSyntax {
        path: String,
        #[source]
        source: EnvSyntax,
    },
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

impl HostPathError {
    fn io(path: &str, e: impl Into<std::io::Error>) -> HostPathError {
        HostPathError::Io {
            path: path.to_string(),
            source: e.into(),
        }
    }

    /// Whether the path (or a folder on it) does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, HostPathError::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound)
    }
}

#[derive(Debug, thiserror::Error)]
#[error("env file {path} (service `{service}` in {file}) cannot be read: {source}\n  hint: create it on this host with KEY=VALUE lines, readable by dockhand; it is never stored in git")]
pub struct EnvFileError {
    pub path: String,
    pub service: String,
    pub file: String,
    #[source]
    pub source: HostPathError,
}

/// The host policy file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum PolicyFileError {
    #[error("cannot read the host policy {path}: {source}\n  hint: fix the file, or point --policy (DOCKHAND_POLICY) at the right one; without a file at {DEFAULT_POLICY_FILE} the built-in defaults hold")]
    Read {
        path: String,
        #[source]
        source: HostPathError,
    },
    #[error("invalid host policy {path}:\n{diagnostics}\n  hint: its schema is schemas/policy.schema.json; dockhand deploys nothing until it is fixed")]
    Invalid {
        path: String,
        diagnostics: Diagnostics,
    },
}

/// The host policy in force: the file `flag` names (it must exist), else
/// [`DEFAULT_POLICY_FILE`] if it exists, else the built-in defaults. `state_dir` (and the
/// default state directory) are protected in any case.
///
/// # Errors
/// The file cannot be read, or is invalid (every problem with its line).
pub fn read_policy(flag: Option<&Path>, state_dir: &Path) -> Result<HostPolicy, PolicyFileError> {
    let file = match flag {
        Some(f) => Some(f.to_path_buf()),
        None => Some(PathBuf::from(DEFAULT_POLICY_FILE)).filter(|p| p.exists()),
    };
    let policy = match file {
        None => HostPolicy::default(),
        Some(file) => {
            let shown = file.display().to_string();
            let bytes =
                read_regular(&file, POLICY_MAX_BYTES).map_err(|source| PolicyFileError::Read {
                    path: shown.clone(),
                    source,
                })?;
            let text = String::from_utf8(bytes).map_err(|e| PolicyFileError::Read {
                path: shown.clone(),
                source: HostPathError::io(
                    &shown,
                    std::io::Error::new(std::io::ErrorKind::InvalidData, e),
                ),
            })?;
            HostPolicy::parse(&text, &shown).map_err(|diagnostics| PolicyFileError::Invalid {
                path: shown,
                diagnostics,
            })?
        }
    };
    let mut dirs = vec![crate::history::DEFAULT_STATE_DIR.to_string()];
    if let Ok(abs) = std::path::absolute(state_dir) {
        dirs.push(abs.to_string_lossy().into_owned());
    }
    if let Ok(real) = std::fs::canonicalize(state_dir) {
        dirs.push(real.to_string_lossy().into_owned());
    }
    let dirs: Vec<&str> = dirs.iter().map(String::as_str).collect();
    Ok(policy.with_state_dirs(&dirs))
}

/// Loads the desired state for this host: the repository's rules and the host policy's on
/// every path as written and as resolved here (see [`crate::load::load_for_host`]). The
/// desired state returned names the resolved paths.
///
/// # Errors
/// Every problem, each with its file:line and rule.
pub fn load(files: &[SourceFile], host: &HostPolicy) -> Result<DesiredState, Diagnostics> {
    crate::load::load_for_host(files, host, &mut resolve_paths)
}

/// Every host path the desired state names, resolved (see [`ResolvedPath`]).
pub fn resolve_paths(desired: &DesiredState) -> ResolvedPaths {
    host_policy::path_sites(desired)
        .into_iter()
        .map(|s| s.path)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .map(|p| {
            let r = resolve(Path::new(&p));
            (p, r)
        })
        .collect()
}

/// Resolves symlinks and `..` in `path`; for a path that does not exist, its deepest existing
/// folder is resolved and the rest appended.
fn resolve(path: &Path) -> ResolvedPath {
    match std::fs::canonicalize(path) {
        Ok(real) => {
            let kind = match std::fs::metadata(&real) {
                Ok(m) => kind_of(&m),
                Err(e) => HostFileKind::Unreadable(e.to_string()),
            };
            ResolvedPath {
                path: real.to_string_lossy().into_owned(),
                kind,
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            // Climb to the deepest part that exists; a link found on the way points nowhere.
            let mut rest: Vec<OsString> = Vec::new();
            let mut at = path.to_path_buf();
            let mut kind = HostFileKind::Missing;
            loop {
                match std::fs::symlink_metadata(&at) {
                    Ok(m) => {
                        if m.file_type().is_symlink() && std::fs::canonicalize(&at).is_err() {
                            kind = HostFileKind::DanglingSymlink;
                        }
                        break;
                    }
                    Err(_) => {
                        let (Some(name), Some(parent)) = (at.file_name(), at.parent()) else {
                            break;
                        };
                        rest.push(name.to_os_string());
                        at = parent.to_path_buf();
                    }
                }
            }
            if kind == HostFileKind::DanglingSymlink {
                // The link itself is reported; its folder is where it sits.
                let parent = at.parent().map(Path::to_path_buf).unwrap_or_default();
                let mut p = std::fs::canonicalize(&parent).unwrap_or(parent);
                if let Some(n) = at.file_name() {
                    p.push(n);
                }
                for r in rest.iter().rev() {
                    p.push(r);
                }
                return ResolvedPath {
                    path: p.to_string_lossy().into_owned(),
                    kind,
                };
            }
            let mut p = std::fs::canonicalize(&at).unwrap_or(at);
            for r in rest.iter().rev() {
                p.push(r);
            }
            ResolvedPath {
                path: p.to_string_lossy().into_owned(),
                kind,
            }
        }
        Err(e) => ResolvedPath {
            path: path.to_string_lossy().into_owned(),
            kind: HostFileKind::Unreadable(e.to_string()),
        },
    }
}

fn kind_of(m: &std::fs::Metadata) -> HostFileKind {
    use std::os::unix::fs::FileTypeExt;
    let t = m.file_type();
    if t.is_dir() {
        HostFileKind::Dir
    } else if t.is_file() {
        HostFileKind::File { size: m.len() }
    } else if t.is_fifo() {
        HostFileKind::Fifo
    } else if t.is_char_device() {
        HostFileKind::CharDevice
    } else if t.is_block_device() {
        HostFileKind::BlockDevice
    } else if t.is_socket() {
        HostFileKind::Socket
    } else {
        HostFileKind::DanglingSymlink
    }
}

/// What rendering needs from the host: a keyed mark of every env file's contents (marks
/// hide the contents like env markers: see [`MarkerKey`]) and the key. Lists every env file
/// that cannot be read (preflight reports them all together; a plan still shows everything
/// else).
pub fn facts(desired: &DesiredState, key: MarkerKey) -> (HostFacts, Vec<EnvFileError>) {
    let mut env_files = EnvFileHashes::new();
    let mut errors = Vec::new();
    let mut seen = BTreeSet::new();
    for stack in &desired.stacks {
        for (name, svc) in &stack.spec.services {
            let Some(path) = &svc.env_file else { continue };
            if !seen.insert(path.clone()) {
                continue;
            }
            match read_env_pairs(path) {
                Ok(pairs) => {
                    env_files.insert(path.clone(), env_file_mark(&key, pairs));
                }
                Err(source) => errors.push(EnvFileError {
                    path: path.clone(),
                    service: name.clone(),
                    file: stack.file.clone(),
                    source,
                }),
            }
        }
    }
    (
        HostFacts {
            env_files,
            marker_key: key,
        },
        errors,
    )
}

/// The values in the env files the desired state names (those that can be read): what must
/// never appear in output or records.
pub fn env_file_values(desired: &DesiredState) -> Vec<String> {
    let mut out = Vec::new();
    for stack in &desired.stacks {
        for svc in stack.spec.services.values() {
            if let Some(pairs) = svc.env_file.as_deref().and_then(|p| read_env_pairs(p).ok()) {
                out.extend(pairs.into_iter().map(|(_, v)| v));
            }
        }
    }
    out
}

/// The keyed mark of an env file (see [`MarkerKey::mark`]), over what the file gives the
/// container rather than its bytes: the pairs of [`parse_env_file`], the last of a repeated
/// key winning (as the Engine applies a repeated `Env` entry), sorted by key. A comment, a
/// blank line, an `export ` prefix, quotes or a reordering therefore keep the mark (and the
/// services using the file are not recreated); a changed, added or removed value changes it.
///
/// Shape: 64 lowercase hex characters. Each pair is encoded with its lengths
/// (`<len>:<key><len>:<value>`), so no two different sets of pairs encode the same.
pub fn env_file_mark(key: &MarkerKey, pairs: Vec<(String, String)>) -> String {
    let pairs: BTreeMap<String, String> = pairs.into_iter().collect();
    let mut canonical = String::new();
    for (k, v) in &pairs {
        canonical.push_str(&format!("{}:{k}{}:{v}", k.len(), v.len()));
    }
    key.mark(canonical.as_bytes())
}

/// Parses an env file as `docker compose` reads one (see `host/envfile.rs`); a `${VAR}` the file
/// does not define is taken from dockhand's environment, as compose takes the shell's.
///
/// # Errors
/// [`EnvSyntax`] names the first line that cannot be read as compose reads it (never its
/// text, which may hold a secret).
pub fn parse_env_file(text: &str) -> Result<Vec<(String, String)>, EnvSyntax> {
    envfile::parse_with(text, &|name| std::env::var(name).ok())
}

/// Reads and parses an env file ([`read_env_file`], then [`parse_env_file`]).
///
/// # Errors
/// [`HostPathError`]: what [`read_env_file`] refuses, or [`HostPathError::EnvSyntax`].
pub fn read_env_pairs(path: &str) -> Result<Vec<(String, String)>, HostPathError> {
    let text = read_env_file(path)?;
    parse_env_file(&text).map_err(|source| HostPathError::EnvSyntax {
        path: path.to_string(),
        source,
    })
}

/// Reads an env file: a regular file reached without any symlink, at most
/// [`ENV_FILE_MAX_BYTES`], UTF-8. Its metadata is checked before it is opened, and the open is
/// non-blocking, so a FIFO or a device can neither hang nor be read.
///
/// # Errors
/// [`HostPathError`]: a link on the way, not a regular file, too large, or an I/O error.
pub fn read_env_file(path: &str) -> Result<String, HostPathError> {
    let bytes = read_nofollow(path, ENV_FILE_MAX_BYTES)?;
    String::from_utf8(bytes).map_err(|e| {
        HostPathError::io(
            path,
            std::io::Error::new(std::io::ErrorKind::InvalidData, e),
        )
    })
}

#[cfg(test)]
mod tests {
    use nix::sys::stat::Mode;

    use super::*;

    /// Issue 18, item 6: the mark follows what the file gives the container, not its bytes.
    #[test]
    fn env_file_mark_ignores_comments_blank_lines_and_order_but_not_values() {
        let key = MarkerKey::new([7; 32]);
        let base = mark(&key, "A=1\nB=two\n");
        assert_eq!(base.len(), 64);
        for same in [
            "A=1\nB=two\n# a comment appended\n",
            "A=1\nB=two\n\n\n",
            "# header\nB=two\nA=1",
            "export A=1\nB=\"two\"\n",
            "A=0\nA=1\nB=two\n",
        ] {
            assert_eq!(mark(&key, same), base, "{same:?}");
        }
        for different in [
            "A=1\nB=three\n",
            "A=1\n",
            "A=1\nB=two\nC=\n",
            "A=1\nB=two\nA=2\n",
            "A=1B=\nB=two\n",
        ] {
            assert_ne!(mark(&key, different), base, "{different:?}");
        }
        assert_ne!(
            mark(&MarkerKey::new([8; 32]), "A=1\nB=two\n"),
            base,
            "the mark is keyed"
        );
    }

    fn mark(key: &MarkerKey, text: &str) -> String {
        env_file_mark(key, parse_env_file(text).unwrap())
    }

    #[test]
    fn env_file_lines() {
        let parsed = parse_env_file("# c\nA=1\nexport B=\"two words\"\n\nC='x'\n").unwrap();
        assert_eq!(
            parsed,
            vec![
                ("A".into(), "1".into()),
                ("B".into(), "two words".into()),
                ("C".into(), "x".into())
            ]
        );
    }

    /// Issue 19, item 4: what the three findings got wrong, as compose reads them.
    #[test]
    fn env_file_inline_comment_multiline_value_and_bom_read_as_compose_does() {
        let parsed = parse_env_file(
            "\u{feff}FIRST=1\nA=value # comment\nCERT=\"-----BEGIN-----\nabc\n-----END-----\"\n",
        )
        .unwrap();
        assert_eq!(
            parsed,
            vec![
                ("FIRST".into(), "1".into()),
                ("A".into(), "value".into()),
                ("CERT".into(), "-----BEGIN-----\nabc\n-----END-----".into()),
            ]
        );
    }

    /// A line dockhand cannot read is refused by its number, and its text (maybe a secret)
    /// is not in the error.
    #[test]
    fn env_file_unreadable_line_is_named_by_number_without_its_text() {
        let e = parse_env_file("A=1\n\nsecret-without-equals\nB=2\n").unwrap_err();
        assert_eq!(e.line, 3);
        let text = e.to_string();
        assert!(text.starts_with("line 3: a key without `=`"), "{text}");
        assert!(!text.contains("secret"), "{text}");
        let e = parse_env_file("A=1\nQ=\"unclosed hunter2\n").unwrap_err();
        assert_eq!(e.line, 2);
        assert!(!e.to_string().contains("hunter2"));
    }

    #[test]
    fn env_files_are_regular_small_and_reached_without_links() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().canonicalize().unwrap();
        let ok = base.join("ok.env");
        std::fs::write(&ok, "A=1\n").unwrap();
        assert_eq!(read_env_file(ok.to_str().unwrap()).unwrap(), "A=1\n");

        let fifo = base.join("fifo.env");
        nix::unistd::mkfifo(&fifo, Mode::from_bits_truncate(0o600)).unwrap();
        let e = read_env_file(fifo.to_str().unwrap()).unwrap_err();
        assert!(
            matches!(e, HostPathError::WrongKind { ref kind, .. } if kind.contains("FIFO")),
            "{e}"
        );

        let big = base.join("big.env");
        std::fs::write(&big, vec![b'x'; ENV_FILE_MAX_BYTES as usize + 1]).unwrap();
        assert!(matches!(
            read_env_file(big.to_str().unwrap()),
            Err(HostPathError::TooLarge { .. })
        ));

        let link = base.join("link.env");
        std::os::unix::fs::symlink(&ok, &link).unwrap();
        assert!(matches!(
            read_env_file(link.to_str().unwrap()),
            Err(HostPathError::Symlink { .. })
        ));
        let linked_dir = base.join("d");
        std::os::unix::fs::symlink(&base, &linked_dir).unwrap();
        let through = linked_dir.join("ok.env");
        assert!(matches!(
            read_env_file(through.to_str().unwrap()),
            Err(HostPathError::Symlink { .. })
        ));
        assert!(read_env_file("/dev/null").is_err());
    }

    #[test]
    fn ensure_dir_never_goes_through_a_link() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().canonicalize().unwrap();
        let outside = base.join("outside");
        std::fs::create_dir(&outside).unwrap();
        std::fs::set_permissions(&outside, std::fs::Permissions::from_mode(0o700)).unwrap();
        let root = base.join("root");
        std::fs::create_dir(&root).unwrap();
        std::os::unix::fs::symlink(&outside, root.join("link")).unwrap();
        let e = ensure_dir(
            root.join("link").to_str().unwrap(),
            Some("0777"),
            Some("1234"),
        )
        .unwrap_err();
        assert!(matches!(e, HostPathError::Symlink { .. }), "{e}");
        let e =
            ensure_dir(root.join("link/sub").to_str().unwrap(), Some("0777"), None).unwrap_err();
        assert!(matches!(e, HostPathError::Symlink { .. }), "{e}");
        let m = std::fs::metadata(&outside).unwrap();
        assert_eq!(m.permissions().mode() & 0o7777, 0o700);
        assert!(!outside.join("sub").exists());

        let made = root.join("a/b");
        ensure_dir(made.to_str().unwrap(), Some("2775"), None).unwrap();
        assert_eq!(
            std::fs::metadata(&made).unwrap().permissions().mode() & 0o7777,
            0o2775
        );
    }

    #[test]
    fn rotate_keeps_the_newest_regular_files_and_never_follows_links() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().canonicalize().unwrap();
        let backups = base.join("backups");
        std::fs::create_dir(&backups).unwrap();
        let victim_dir = base.join("victim");
        std::fs::create_dir(&victim_dir).unwrap();
        let victim = victim_dir.join("precious");
        std::fs::write(&victim, "keep me").unwrap();
        for (i, name) in ["a.sql", "b.sql", "c.sql", "d.sql"].iter().enumerate() {
            let p = backups.join(name);
            std::fs::write(&p, "x").unwrap();
            let t =
                std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1000 + i as u64);
            std::fs::File::options()
                .write(true)
                .open(&p)
                .unwrap()
                .set_modified(t)
                .unwrap();
        }
        std::os::unix::fs::symlink(&victim, backups.join("0-link.sql")).unwrap();
        std::fs::create_dir(backups.join("sub")).unwrap();
        assert_eq!(rotate(backups.to_str().unwrap(), 2).unwrap(), 2);
        let mut left: Vec<String> = std::fs::read_dir(&backups)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, ["0-link.sql", "c.sql", "d.sql", "sub"]);
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep me");

        // The folder itself reached through a link: refused, nothing deleted.
        let link = base.join("linked");
        std::os::unix::fs::symlink(&victim_dir, &link).unwrap();
        assert!(matches!(
            rotate(link.to_str().unwrap(), 0),
            Err(HostPathError::Symlink { .. })
        ));
        assert!(victim.exists());
    }

    #[test]
    fn paths_resolve_through_links_and_missing_tails() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().canonicalize().unwrap();
        std::os::unix::fs::symlink("/etc", base.join("etc-link")).unwrap();
        let r = resolve(&base.join("etc-link/passwd"));
        assert_eq!(r.path, "/etc/passwd");
        let r = resolve(&base.join("etc-link/not/there"));
        assert_eq!(
            (r.path.as_str(), &r.kind),
            ("/etc/not/there", &HostFileKind::Missing)
        );
        std::os::unix::fs::symlink(base.join("nowhere"), base.join("dangling")).unwrap();
        let r = resolve(&base.join("dangling/x"));
        assert_eq!(r.kind, HostFileKind::DanglingSymlink);
    }
}
