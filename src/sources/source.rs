//! Which kind of source the flags name, decided once ([`Source::resolve`], the only copy of
//! the decision table), and the one way to read a snapshot from it ([`Source::read`]).
//!
//! Edge module: probes the file system and git (is this path a repository?) when resolving,
//! and reads through [`super::from_dir`], [`super::from_git`] and [`super::remote`].

use std::path::{Path, PathBuf};

use super::remote::{self, Auth, Remote};
use super::{from_dir, from_git, Snapshot, SourceError};

/// Whether reading a remote source may ask the remote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fetch {
    /// One-shot verbs: sync the branch (or fetch a commit the mirror lacks) before reading.
    OnRead,
    /// The agent: read the mirror as the poller last synced it, so drift is corrected while
    /// the remote is unreachable.
    Never,
}

/// What every kind of source shares: the folder with dockhand.yaml and whose signatures count.
#[derive(Debug, Clone)]
pub struct Files {
    /// Folder inside the source that holds dockhand.yaml and stacks/ (`--path`).
    pub path: String,
    /// Only commits signed by a key in this allowed-signers file are read (`--allowed-signers`).
    pub allowed_signers: Option<PathBuf>,
}

/// Where the desired state is read from, resolved once from the flags.
#[derive(Debug, Clone)]
pub enum Source {
    /// A remote repository, read from its bare mirror under the state directory.
    Remote {
        remote: Remote,
        /// A commit named by `--ref` (read from the mirror instead of the branch head).
        commit: Option<String>,
        fetch: Fetch,
        files: Files,
    },
    /// A local git repository at a ref (default `HEAD`), read from its object database.
    Git {
        repo: PathBuf,
        reference: Option<String>,
        files: Files,
    },
    /// A plain directory that is not a git repository.
    Dir { root: PathBuf, files: Files },
    /// The files on disk of a work tree (`--worktree`), uncommitted edits included.
    Worktree { root: PathBuf, files: Files },
}

/// The flags that name a source, as plain values (the CLI's clap types stay in `cli`).
#[derive(Debug, Clone)]
pub struct Wanted<'a> {
    /// `--source`: a path or a remote URL; `None` is the repository around `cwd`, else `cwd`.
    pub location: Option<&'a str>,
    /// `--ref`: a branch, tag or commit.
    pub reference: Option<&'a str>,
    /// `--worktree`.
    pub worktree: bool,
    pub cwd: &'a Path,
    /// Where remote mirrors live (`<state-dir>/sources`).
    pub mirrors: &'a Path,
    pub auth: Auth,
    pub allow_force_push: bool,
}

/// A 7- to 40-digit hex string: a commit id rather than a branch name.
pub fn looks_like_commit(r: &str) -> bool {
    (7..=40).contains(&r.len()) && r.chars().all(|c| c.is_ascii_hexdigit())
}

impl Source {
    /// The decision table: which kind of source `w` names.
    ///
    /// | `--source`          | `--worktree` | kind                                         |
    /// |---------------------|--------------|----------------------------------------------|
    /// | given               | yes          | `Worktree` at that path                      |
    /// | none                | yes          | `Worktree` at the repository around cwd (else cwd) |
    /// | a remote URL        | no           | `Remote` (a commit-like `--ref` is a commit) |
    /// | a git repository    | no           | `Git` at `--ref`                             |
    /// | another path        | no           | `Dir` (`--ref` is refused)                   |
    /// | none                | no           | `Git` around cwd, else `Dir` at cwd          |
    ///
    /// # Errors
    /// [`SourceError::RefOnDir`] for `--ref` on a plain directory.
    pub fn resolve(w: &Wanted<'_>, files: Files, fetch: Fetch) -> Result<Source, SourceError> {
        let cwd = w.cwd.to_path_buf();
        Ok(match (w.location, w.worktree) {
            (Some(s), true) => Source::Worktree {
                root: PathBuf::from(s),
                files,
            },
            (None, true) => Source::Worktree {
                root: super::discover_repo(&cwd).unwrap_or(cwd),
                files,
            },
            (Some(s), false) if remote::is_remote(s) => {
                let commit = w.reference.filter(|r| looks_like_commit(r));
                Source::Remote {
                    remote: Remote {
                        url: s.to_string(),
                        // A commit id in --ref is read from the mirror; anything else names
                        // the branch to follow.
                        branch: w
                            .reference
                            .filter(|r| !looks_like_commit(r))
                            .map(Into::into),
                        mirror: remote::mirror_dir(w.mirrors, s),
                        auth: w.auth.clone(),
                        allow_force_push: w.allow_force_push,
                        allowed_signers: files.allowed_signers.clone(),
                    },
                    commit: commit.map(Into::into),
                    fetch,
                    files,
                }
            }
            (Some(s), false) if git2::Repository::open(s).is_ok() => Source::Git {
                repo: PathBuf::from(s),
                reference: w.reference.map(Into::into),
                files,
            },
            (Some(s), false) => match w.reference {
                Some(r) => {
                    return Err(SourceError::RefOnDir {
                        location: s.to_string(),
                        reference: r.to_string(),
                    })
                }
                None => Source::Dir {
                    root: PathBuf::from(s),
                    files,
                },
            },
            (None, false) => match super::discover_repo(&cwd) {
                Some(repo) => Source::Git {
                    repo,
                    reference: w.reference.map(Into::into),
                    files,
                },
                None => Source::Dir { root: cwd, files },
            },
        })
    }

    pub fn files(&self) -> &Files {
        match self {
            Source::Remote { files, .. }
            | Source::Git { files, .. }
            | Source::Dir { files, .. }
            | Source::Worktree { files, .. } => files,
        }
    }

    /// The remote behind a `Remote` source (the agent's poller syncs it).
    pub fn remote(&self) -> Option<&Remote> {
        match self {
            Source::Remote { remote, .. } => Some(remote),
            _ => None,
        }
    }

    /// The folder holding dockhand.yaml when this source reads plain files (a directory or a
    /// work tree), to watch for edits; `None` for a git commit.
    pub fn files_dir(&self) -> Option<PathBuf> {
        match self {
            Source::Dir { root, files } | Source::Worktree { root, files } => {
                Some(root.join(&files.path))
            }
            Source::Remote { .. } | Source::Git { .. } => None,
        }
    }

    /// Reads the desired state: at `commit` when given (a rollback, a held or last good
    /// revision), else the source's own revision (the ref, the followed branch head, the
    /// files on disk). With `--allowed-signers`, only a commit signed by an allowed key is
    /// returned.
    ///
    /// # Errors
    /// Anything [`SourceError`] names: a directory or ref that is not there, a remote that
    /// cannot be reached (only with [`Fetch::OnRead`]), a commit the mirror lacks, a missing
    /// or bad signature, a commit asked of a source that is not a git repository.
    pub fn read(&self, commit: Option<&str>) -> Result<Snapshot, SourceError> {
        let path = self.files().path.as_str();
        let snap = match (self, commit) {
            (
                Source::Remote {
                    remote,
                    commit: pinned,
                    fetch,
                    ..
                },
                at,
            ) => read_remote(remote, at.or(pinned.as_deref()), *fetch, path)?,
            (
                Source::Git {
                    repo, reference, ..
                },
                at,
            ) => from_git(repo, at.or(reference.as_deref()), path)?,
            (Source::Dir { root, .. } | Source::Worktree { root, .. }, None) => {
                from_dir(root, path)?
            }
            // A work tree's recorded revisions are commits of the repository it belongs to.
            (Source::Worktree { root, .. }, Some(c)) if git2::Repository::open(root).is_ok() => {
                from_git(root, Some(c), path)?
            }
            (Source::Dir { root, .. } | Source::Worktree { root, .. }, Some(c)) => {
                return Err(SourceError::NotGit {
                    location: root.display().to_string(),
                    commit: c.to_string(),
                })
            }
        };
        if let Some(signers) = &self.files().allowed_signers {
            let (Some(commit), Some(repo)) = (&snap.commit, &snap.repo) else {
                return Err(SourceError::FilesNotSigned {
                    origin: snap.origin,
                });
            };
            let who = super::signature::verify(repo, commit, signers)?;
            tracing::info!("commit {} signed by {who}", &commit[..12.min(commit.len())]);
        }
        Ok(snap)
    }
}

/// A remote source: a commit (asked for, or named by --ref) is read from the mirror, fetched
/// first if the mirror lacks it and fetching is allowed; otherwise the branch is synced
/// (unless [`Fetch::Never`]) and its followed commit read.
fn read_remote(
    remote: &Remote,
    commit: Option<&str>,
    fetch: Fetch,
    path: &str,
) -> Result<Snapshot, SourceError> {
    let shown = remote::display_url(&remote.url);
    let read = |c: &str| from_git(remote.mirror(), Some(c), path).map(|s| relabel(s, &shown));
    if let Some(c) = commit {
        if let Ok(snap) = read(c) {
            return Ok(snap);
        }
        if fetch == Fetch::Never {
            return Err(SourceError::NotInMirror {
                url: shown,
                commit: c.to_string(),
            });
        }
        remote.sync()?;
        return read(c);
    }
    let head = match fetch {
        Fetch::Never => remote
            .followed()
            .ok_or_else(|| SourceError::NeverFetched { url: shown.clone() })?,
        Fetch::OnRead => remote.sync()?.commit,
    };
    read(&head)
}

/// Names the remote, not the mirror, in a snapshot's origin.
fn relabel(mut snap: Snapshot, url: &str) -> Snapshot {
    if let Some(commit) = &snap.commit {
        let at = &commit[..12.min(commit.len())];
        let path = snap
            .origin
            .rsplit_once(", ")
            .map_or("", |(_, p)| p)
            .to_string();
        snap.origin = format!("git {url} @ {at}, {path}");
    }
    snap
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files() -> Files {
        Files {
            path: ".".into(),
            allowed_signers: None,
        }
    }

    fn resolve(
        location: Option<&str>,
        reference: Option<&str>,
        worktree: bool,
        cwd: &Path,
    ) -> Result<Source, SourceError> {
        let w = Wanted {
            location,
            reference,
            worktree,
            cwd,
            mirrors: Path::new("/state/sources"),
            auth: Auth::default(),
            allow_force_push: false,
        };
        Source::resolve(&w, files(), Fetch::OnRead)
    }

    #[test]
    fn the_decision_table_names_each_kind_once() {
        let tmp = tempfile::tempdir().unwrap();
        let plain = tmp.path().join("plain");
        std::fs::create_dir(&plain).unwrap();
        let repo = tmp.path().join("repo");
        git2::Repository::init(&repo).unwrap();
        let p = plain.to_str().unwrap();
        let r = repo.to_str().unwrap();

        assert!(
            matches!(resolve(Some(p), None, true, &plain), Ok(Source::Worktree { root, .. }) if root == plain)
        );
        assert!(
            matches!(resolve(None, None, true, &plain), Ok(Source::Worktree { root, .. }) if root == plain)
        );
        assert!(
            matches!(resolve(Some(r), Some("main"), false, &plain), Ok(Source::Git { repo: g, reference: Some(m), .. }) if g == repo && m == "main")
        );
        assert!(
            matches!(resolve(Some(p), None, false, &plain), Ok(Source::Dir { root, .. }) if root == plain)
        );
        assert!(matches!(
            resolve(Some(p), Some("main"), false, &plain),
            Err(SourceError::RefOnDir { .. })
        ));
        assert!(
            matches!(resolve(None, None, false, &plain), Ok(Source::Dir { root, .. }) if root == plain)
        );
        let Ok(Source::Git { repo: found, .. }) = resolve(None, None, false, &repo) else {
            panic!("the repository around cwd is a git source");
        };
        assert_eq!(found.canonicalize().unwrap(), repo.canonicalize().unwrap());

        let Ok(Source::Remote { remote, commit, .. }) =
            resolve(Some("https://h/ops/d.git"), Some("3f9c2e1"), false, &plain)
        else {
            panic!("a URL is a remote source");
        };
        assert_eq!((remote.branch, commit.as_deref()), (None, Some("3f9c2e1")));
        assert!(remote.mirror.starts_with("/state/sources"));
        let Ok(Source::Remote { remote, commit, .. }) =
            resolve(Some("https://h/ops/d.git"), Some("main"), false, &plain)
        else {
            panic!("a URL is a remote source");
        };
        assert_eq!((remote.branch.as_deref(), commit), (Some("main"), None));
    }

    #[test]
    fn a_commit_of_a_plain_directory_is_refused_by_type() {
        let tmp = tempfile::tempdir().unwrap();
        let src = Source::Dir {
            root: tmp.path().to_path_buf(),
            files: files(),
        };
        assert!(matches!(
            src.read(Some("3f9c2e1")),
            Err(SourceError::NotGit { .. })
        ));
        assert_eq!(src.files_dir(), Some(tmp.path().join(".")));
    }
}
