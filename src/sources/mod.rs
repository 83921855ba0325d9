//! Where the desired state comes from: a plain directory, or a git repository at a ref read
//! straight from the object database (no checkout, no working tree touched).
//!
//! Edge module: file system and git2 I/O. Returns file contents for `load` and names the
//! revision they came from.

use std::path::{Path, PathBuf};

use crate::load::{is_desired_state_file, SourceFile};

pub mod remote;
pub mod signature;
mod source;

pub use source::{looks_like_commit, Fetch, Files, Source, Wanted};

/// The files of a desired state and where they came from.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub files: Vec<SourceFile>,
    /// Human description, e.g. `git /srv/repo @ 1a2b3c4 (main), desired-state/`.
    pub origin: String,
    /// Full commit id when read from git.
    pub commit: Option<String>,
    /// The repository the commit was read from (a local repository or a remote's mirror).
    pub repo: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("cannot read desired state directory {path}: {source}\n  hint: check --source/--path; the directory must hold dockhand.yaml and stacks/")]
    Dir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot open git repository {location}\n  hint: pass --source with a local path or file:// URL of a git repository, or --worktree to read plain files")]
    Open {
        location: String,
        #[source]
        source: git2::Error,
    },
    #[error("cannot resolve ref `{reference}` in {location}\n  hint: use a branch, tag or commit id that exists (git log shows them)")]
    Ref {
        location: String,
        reference: String,
        #[source]
        source: git2::Error,
    },
    #[error("`{path}` does not exist in {location} at {commit}\n  hint: is the desired state committed? set --path to the folder holding dockhand.yaml")]
    MissingPath {
        location: String,
        commit: String,
        path: String,
    },
    #[error("cannot fetch from {url}\n  hint: check the URL, the network, and the credentials (--git-token-file for https, --ssh-key or ssh-agent for ssh); what runs keeps running")]
    Fetch {
        url: String,
        #[source]
        source: git2::Error,
    },
    #[error("git sync with {url} took longer than its deadline of {}s and was stopped\n  hint: the remote answers too slowly (a stalled server or network); what runs keeps running, and the next poll tries again", .limit.as_secs())]
    Deadline {
        url: String,
        limit: std::time::Duration,
        #[source]
        source: git2::Error,
    },
    #[error("branch `{branch}` does not exist in {url}\n  hint: set --ref to a branch the remote has (`git ls-remote --heads {url}` lists them)")]
    NoBranch { url: String, branch: String },
    #[error("{branch} of {url} was force-pushed: its head {} does not descend from {}, the commit dockhand follows; it keeps deploying {}\n  hint: if the rewrite is intended, pass --allow-force-push (DOCKHAND_ALLOW_FORCE_PUSH=true) to follow it", short(head), short(followed), short(followed))]
    ForcePush {
        url: String,
        branch: String,
        followed: String,
        head: String,
    },
    #[error("commit {commit} is refused: {why}\n  hint: deploy only commits signed (git commit -S, gpg.format=ssh) by a key in the allowed-signers file; a later signed commit is deployed as usual")]
    Unsigned { commit: String, why: String },
    #[error("{url} has not been fetched yet, and the remote could not be reached\n  hint: check the network and credentials, then run again")]
    NeverFetched { url: String },
    #[error("git error reading {location}\n  hint: the repository may be damaged; `git fsck` in it says more")]
    Git {
        location: String,
        #[source]
        source: git2::Error,
    },
    #[error("{location} is not a git repository, so no commit ({commit}) can be read from it\n  hint: point --source at a git repository to deploy recorded commits")]
    NotGit { location: String, commit: String },
    #[error("{location} is not a git repository, so --ref {reference} cannot be used\n  hint: point --source at a git repository, or drop --ref to read a plain directory")]
    RefOnDir { location: String, reference: String },
    #[error("commit {commit} is not in the mirror of {url}\n  hint: is it on the followed branch? `dockhand history` lists deployed commits")]
    NotInMirror { url: String, commit: String },
    #[error("{origin} holds files, not a signed commit, and --allowed-signers is set\n  hint: read a git commit (drop --worktree), or drop --allowed-signers")]
    FilesNotSigned { origin: String },
    #[error("{path} in {location}: {what} is {size} bytes, over the limit of {limit} bytes (limit `{rule}`); nothing was read further\n  hint: keep only dockhand.yaml and stacks/*.yaml (a few KiB each) under the desired-state path; large data does not belong there")]
    TooLarge {
        location: String,
        path: String,
        /// `the file` or `the desired state so far`.
        what: &'static str,
        size: u64,
        limit: usize,
        rule: &'static str,
    },
}

/// Counts the bytes of the files read so far against the loader's limits, before each file is
/// read (its size from the directory entry or the git object header), so that a hostile commit
/// cannot make dockhand read a huge file into memory just to refuse it.
struct SizeBudget {
    location: String,
    total: u64,
}

impl SizeBudget {
    fn admit(&mut self, path: &str, size: u64) -> Result<(), SourceError> {
        let too_large = |what, size, limit, rule| SourceError::TooLarge {
            location: self.location.clone(),
            path: path.to_string(),
            what,
            size,
            limit,
            rule,
        };
        if size > crate::load::MAX_FILE_BYTES as u64 {
            return Err(too_large(
                "the file",
                size,
                crate::load::MAX_FILE_BYTES,
                "max_file_bytes",
            ));
        }
        self.total += size;
        if self.total > crate::load::MAX_REPO_BYTES as u64 {
            return Err(too_large(
                "the desired state up to this file",
                self.total,
                crate::load::MAX_REPO_BYTES,
                "max_repo_bytes",
            ));
        }
        Ok(())
    }
}

/// Reads `root/path` from a plain directory.
pub fn from_dir(root: &Path, path: &str) -> Result<Snapshot, SourceError> {
    let dir = root.join(path);
    let mut files = Vec::new();
    let mut budget = SizeBudget {
        location: dir.display().to_string(),
        total: 0,
    };
    let mut read = |p: &Path| {
        let dir_err = |source| SourceError::Dir {
            path: p.to_path_buf(),
            source,
        };
        let len = std::fs::metadata(p).map_err(dir_err)?.len();
        budget.admit(&p.display().to_string(), len)?;
        std::fs::read_to_string(p).map_err(dir_err)
    };
    let repo_file = dir.join(crate::load::REPO_FILE);
    // A regular file only: a FIFO or device named dockhand.yaml would hang or flood the read.
    if repo_file.is_file() {
        files.push(SourceFile {
            path: crate::load::REPO_FILE.into(),
            text: read(&repo_file)?,
        });
    } else if !dir.is_dir() {
        return Err(SourceError::Dir {
            path: dir,
            source: std::io::Error::from(std::io::ErrorKind::NotFound),
        });
    }
    let stacks = dir.join(crate::load::STACKS_DIR);
    if stacks.is_dir() {
        let entries = std::fs::read_dir(&stacks).map_err(|source| SourceError::Dir {
            path: stacks.clone(),
            source,
        })?;
        for entry in entries {
            let entry = entry.map_err(|source| SourceError::Dir {
                path: stacks.clone(),
                source,
            })?;
            let name = entry.file_name().to_string_lossy().to_string();
            let rel = format!("stacks/{name}");
            if is_desired_state_file(&rel) && entry.path().is_file() {
                files.push(SourceFile {
                    path: rel,
                    text: read(&entry.path())?,
                });
            }
        }
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(Snapshot {
        files,
        origin: format!("directory {}", dir.display()),
        commit: None,
        repo: None,
    })
}

fn short(commit: &str) -> &str {
    commit.get(..12).unwrap_or(commit)
}

/// Reads `path` from the tree of `reference` (default `HEAD`) in the repository at `repo`.
pub fn from_git(repo: &Path, reference: Option<&str>, path: &str) -> Result<Snapshot, SourceError> {
    let location = repo.display().to_string();
    let git = |source: git2::Error| SourceError::Git {
        location: location.clone(),
        source,
    };
    let r = git2::Repository::open(repo).map_err(|source| SourceError::Open {
        location: location.clone(),
        source,
    })?;
    let reference = reference.unwrap_or("HEAD");
    let bad_ref = |source| SourceError::Ref {
        location: location.clone(),
        reference: reference.to_string(),
        source,
    };
    let object = r.revparse_single(reference).map_err(&bad_ref)?;
    let commit = object.peel_to_commit().map_err(&bad_ref)?;
    let commit_id = commit.id().to_string();
    let tree = commit.tree().map_err(git)?;
    let trimmed = path.trim_matches('/');
    let root = if trimmed.is_empty() || trimmed == "." {
        tree
    } else {
        let entry = tree
            .get_path(Path::new(trimmed))
            .map_err(|_| SourceError::MissingPath {
                location: location.clone(),
                commit: commit_id[..12].to_string(),
                path: trimmed.to_string(),
            })?;
        entry
            .to_object(&r)
            .and_then(|o| o.peel_to_tree())
            .map_err(git)?
    };
    let mut files = Vec::new();
    let odb = r.odb().map_err(git)?;
    let mut budget = SizeBudget {
        location: location.clone(),
        total: 0,
    };
    let mut blob_text = |entry: &git2::TreeEntry<'_>, rel: String| -> Result<(), SourceError> {
        // The size from the object header, before the blob is inflated into memory.
        let (size, _) = odb.read_header(entry.id()).map_err(git)?;
        budget.admit(&rel, size as u64)?;
        let blob = entry
            .to_object(&r)
            .and_then(|o| o.peel_to_blob())
            .map_err(git)?;
        files.push(SourceFile {
            path: rel,
            text: String::from_utf8_lossy(blob.content()).into_owned(),
        });
        Ok(())
    };
    if let Some(entry) = root.get_name(crate::load::REPO_FILE) {
        blob_text(&entry, crate::load::REPO_FILE.to_string())?;
    }
    if let Some(stacks) = root.get_name(crate::load::STACKS_DIR) {
        let stacks_tree = stacks
            .to_object(&r)
            .and_then(|o| o.peel_to_tree())
            .map_err(git)?;
        for entry in stacks_tree.iter() {
            let name = entry.name().unwrap_or_default().to_string();
            let rel = format!("stacks/{name}");
            if is_desired_state_file(&rel) && entry.kind() == Some(git2::ObjectType::Blob) {
                blob_text(&entry, rel)?;
            }
        }
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(Snapshot {
        files,
        origin: format!(
            "git {location} @ {} ({reference}), {trimmed}/",
            &commit_id[..12]
        ),
        commit: Some(commit_id),
        repo: Some(repo.to_path_buf()),
    })
}

/// Whether `dir` is inside a git work tree; returns the repository root.
pub fn discover_repo(dir: &Path) -> Option<PathBuf> {
    let r = git2::Repository::discover(dir).ok()?;
    r.workdir().map(Path::to_path_buf)
}
