//! A remote git source (`https://`, `ssh://`, `user@host:path` or `file://`), kept as a bare
//! mirror under the state directory. Nothing is ever re-cloned: a sync asks the remote for the
//! branch head first (one round trip, no objects), fetches only when that head is not already
//! in the mirror, and follows it only as a fast-forward of what was followed before, unless
//! force-pushes are allowed. What was followed is the ref `refs/dockhand/followed/<branch>`,
//! so every reader (the agent's passes, `plan`, `rollback`) can read it without the network.
//!
//! Edge module: git2 network and object-database I/O.

use std::cell::Cell;
use std::path::{Path, PathBuf};

use git2::{CredentialType, Direction, FetchOptions, Oid, RemoteCallbacks, Repository};

use super::SourceError;

/// The branch key used when `--ref` is not given: the remote's default branch.
const DEFAULT_BRANCH: &str = "HEAD";

/// How to authenticate to the remote. Secrets are read from files, never from flags, so they
/// do not show in `ps` or shell history.
#[derive(Debug, Clone, Default)]
pub struct Auth {
    /// File holding an access token, sent as the password of HTTP basic auth.
    pub token_file: Option<PathBuf>,
    /// Private key for ssh; without it the ssh agent (`SSH_AUTH_SOCK`) is asked.
    pub ssh_key: Option<PathBuf>,
}

/// A remote source and its mirror.
#[derive(Debug, Clone)]
pub struct Remote {
    pub url: String,
    /// Branch to follow; `None` follows the remote's default branch.
    pub branch: Option<String>,
    pub mirror: PathBuf,
    pub auth: Auth,
    /// Follow a branch whose new head does not descend from the one followed before.
    pub allow_force_push: bool,
    /// Follow only heads signed by a key in this allowed-signers file.
    pub allowed_signers: Option<PathBuf>,
}

/// What one sync did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Synced {
    /// The commit now followed.
    pub commit: String,
    /// The commit followed before, when the head moved.
    pub moved_from: Option<String>,
    /// Objects received; 0 when the head had not moved or was already in the mirror.
    pub received_objects: usize,
    pub received_bytes: usize,
}

/// Whether `source` names a remote repository (anything git would fetch over a transport).
pub fn is_remote(source: &str) -> bool {
    if source.contains("://") {
        return true;
    }
    // scp-like `git@host:path`; a local path with a colon and an @ that exists stays local.
    source.contains('@') && source.contains(':') && !Path::new(source).exists()
}

/// `url` with its user part (`user`, `user:password`, or a token given as the user, as in
/// `https://TOKEN@host/repo`) replaced by `***`, for messages, logs and records. A user part
/// cannot be told apart from a token, so all of it is hidden. scp-like `git@host:path` has no
/// secret in it and is kept.
pub fn display_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let (authority, path) = rest.split_at(rest.find(['/', '?', '#']).unwrap_or(rest.len()));
    // A query string may carry a token too (`?private_token=…`, `?access_token=…`): it is
    // never part of what names a repository, so none of it is shown.
    let path = match path.split_once(['?', '#']) {
        Some((p, _)) => format!("{p}?***"),
        None => path.to_string(),
    };
    match authority.rsplit_once('@') {
        Some((_, host)) => format!("{scheme}://***@{host}{path}"),
        None => format!("{scheme}://{authority}{path}"),
    }
}

/// `text` (an error from libgit2, which may quote the URL it was given) with `url`'s user
/// part hidden wherever it appears.
pub fn mask_url_in(text: &str, url: &str) -> String {
    let shown = display_url(url);
    let mut out = text.replace(url, &shown);
    if let Some(user) = url
        .split_once("://")
        .and_then(|(_, rest)| rest.split(['/', '?', '#']).next())
        .and_then(|authority| authority.rsplit_once('@'))
        .map(|(user, _)| user)
    {
        hide_user(&mut out, user);
    }
    if let Some((_, query)) = url.split_once('?') {
        // Each query value on its own too: libgit2 may quote the URL cut or re-encoded.
        for pair in query.split(['&', '#']) {
            let value = pair.split_once('=').map_or(pair, |(_, v)| v);
            if value.len() >= 8 {
                out = out.replace(value, "***");
            }
        }
    }
    out
}

fn hide_user(out: &mut String, user: &str) {
    match user.split_once(':') {
        // `user:password`: the password wherever it shows; the user name is no secret.
        Some((_, password)) if !password.is_empty() => *out = out.replace(password, "***"),
        Some(_) => {}
        // A token given as the user. Short user names (`git`, `oauth2`) are not tokens,
        // and hiding every `git` in a message would garble it.
        None if user.len() >= 8 => *out = out.replace(user, "***"),
        None => {}
    }
}

/// How long a git network operation may wait: to connect, and for each read or write.
/// Without them an unreachable or silent remote hangs the agent's poller for good.
pub const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
pub const IO_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);
/// How long one whole sync (the branch-head check and the fetch) may take. The socket
/// timeouts bound each read, not a remote that trickles a byte at a time; past this deadline
/// the transfer is stopped from libgit2's progress callbacks, and the agent stops waiting for
/// the sync (see `daemon::triggers::GitSync`).
pub const SYNC_DEADLINE: std::time::Duration = std::time::Duration::from_secs(120);

/// Sets libgit2's global socket timeouts ([`CONNECT_TIMEOUT`], [`IO_TIMEOUT`]) once, before
/// the first network operation.
fn network_timeouts() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let ms = |d: std::time::Duration| i32::try_from(d.as_millis()).unwrap_or(i32::MAX);
        // SAFETY: the options are plain C globals that libgit2 reads when it opens a socket.
        // git2 asks that they be set before other threads exist because the write is not
        // synchronised with such reads; here every socket dockhand opens is opened by
        // `Remote::sync`, after this `Once`, which orders the write before all those reads.
        unsafe {
            let _ = git2::opts::set_server_connect_timeout_in_milliseconds(ms(CONNECT_TIMEOUT));
            let _ = git2::opts::set_server_timeout_in_milliseconds(ms(IO_TIMEOUT));
        }
    });
}

/// Where the mirror of `url` lives under `root`: a readable name plus a hash, so two URLs never
/// share a mirror.
pub fn mirror_dir(root: &Path, url: &str) -> PathBuf {
    let hash = crate::spec::sha256_hex(url.as_bytes());
    // The name shown on disk leaves out any query string (it may hold a token); the hash
    // still tells two URLs apart.
    let tail: String = url
        .split(['?', '#'])
        .next()
        .unwrap_or(url)
        .trim_end_matches('/')
        .trim_end_matches(".git")
        .rsplit(['/', ':'])
        .next()
        .unwrap_or("repo")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .take(40)
        .collect();
    root.join(format!("{tail}-{}.git", &hash[..12]))
}

/// Decides whether a new head may be followed. Pure, so the rule is tested without git.
pub fn follow_decision(
    followed: Option<Oid>,
    head: Oid,
    descends: bool,
    allow_force_push: bool,
) -> Follow {
    match followed {
        None => Follow::First,
        Some(old) if old == head => Follow::Same,
        Some(_) if descends => Follow::FastForward,
        Some(_) if allow_force_push => Follow::Forced,
        Some(_) => Follow::Refused,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Follow {
    First,
    Same,
    FastForward,
    Forced,
    Refused,
}

impl Remote {
    fn key(&self) -> &str {
        self.branch.as_deref().unwrap_or(DEFAULT_BRANCH)
    }

    fn followed_ref(&self) -> String {
        format!("refs/dockhand/followed/{}", self.key())
    }

    /// The cause is kept as the error's source. Call sites pass a reference
    /// (`map_err(|e| self.err(&e))`) and `git2::Error` is not `Clone`, so an equal one is built.
    fn err(&self, e: &git2::Error) -> SourceError {
        SourceError::Fetch {
            url: display_url(&self.url),
            source: git2::Error::new(e.code(), e.class(), mask_url_in(e.message(), &self.url)),
        }
    }

    /// [`Remote::err`], or [`SourceError::Deadline`] when the sync ran past `deadline` (a
    /// callback stopped it, or the socket timed out after it).
    fn late(&self, e: &git2::Error, deadline: &Deadline) -> SourceError {
        match self.err(e) {
            SourceError::Fetch { url, source } if deadline.passed() => SourceError::Deadline {
                url,
                limit: deadline.limit,
                source,
            },
            other => other,
        }
    }

    fn open(&self) -> Result<Repository, SourceError> {
        if let Ok(r) = Repository::open_bare(&self.mirror) {
            return Ok(r);
        }
        // A mirror holds the desired state's whole history: private like the rest of the
        // state directory (0700), also when `plan` or `validate` is the first to create it.
        {
            use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
            let dir = |source| SourceError::Dir {
                path: self.mirror.clone(),
                source,
            };
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&self.mirror)
                .map_err(dir)?;
            if let Some(mirrors) = self.mirror.parent() {
                std::fs::set_permissions(mirrors, std::fs::Permissions::from_mode(0o700))
                    .map_err(dir)?;
            }
        }
        Repository::init_bare(&self.mirror).map_err(|source| SourceError::Open {
            location: self.mirror.display().to_string(),
            source,
        })
    }

    /// The commit last followed, read from the mirror without the network.
    pub fn followed(&self) -> Option<String> {
        let r = Repository::open_bare(&self.mirror).ok()?;
        r.refname_to_id(&self.followed_ref())
            .ok()
            .map(|o| o.to_string())
    }

    /// The mirror's path, for reading commits from it.
    pub fn mirror(&self) -> &Path {
        &self.mirror
    }

    /// Asks the remote where the branch is (the cheap check), fetches only when needed, and
    /// moves the followed ref if the new head may be followed.
    ///
    /// # Errors
    /// [`SourceError::Deadline`] when it ran past [`SYNC_DEADLINE`]; the other
    /// [`SourceError`]s for an unreachable remote, a missing branch, a refused force-push or
    /// an unsigned head.
    pub fn sync(&self) -> Result<Synced, SourceError> {
        self.sync_within(SYNC_DEADLINE)
    }

    fn sync_within(&self, limit: std::time::Duration) -> Result<Synced, SourceError> {
        network_timeouts();
        let repo = self.open()?;
        let tries = Cell::new(0);
        let deadline = Deadline::new(limit);
        let mut remote = repo.remote_anonymous(&self.url).map_err(|e| self.err(&e))?;
        let (refname, head) = {
            let conn = remote
                .connect_auth(
                    Direction::Fetch,
                    Some(callbacks(&self.auth, &tries, &deadline)),
                    None,
                )
                .map_err(|e| self.late(&e, &deadline))?;
            let heads = conn.list().map_err(|e| self.late(&e, &deadline))?;
            let wanted = match &self.branch {
                Some(b) => format!("refs/heads/{b}"),
                None => heads
                    .iter()
                    .find(|h| h.name() == "HEAD")
                    .and_then(|h| h.symref_target().map(str::to_string))
                    .unwrap_or_else(|| "refs/heads/main".to_string()),
            };
            let head = heads
                .iter()
                .find(|h| h.name() == wanted)
                .map(git2::RemoteHead::oid)
                .ok_or_else(|| SourceError::NoBranch {
                    url: display_url(&self.url),
                    branch: wanted.trim_start_matches("refs/heads/").to_string(),
                })?;
            (wanted, head)
        };
        let followed = repo.refname_to_id(&self.followed_ref()).ok();
        let (mut objects, mut bytes) = (0, 0);
        if followed != Some(head) && repo.find_commit(head).is_err() {
            tracing::info!(
                "{} moved to {}; fetching",
                refname.trim_start_matches("refs/heads/"),
                &head.to_string()[..12]
            );
            let spec = format!("+{refname}:refs/dockhand/fetched/{}", self.key());
            let mut opts = FetchOptions::new();
            opts.remote_callbacks(callbacks(&self.auth, &tries, &deadline));
            opts.download_tags(git2::AutotagOption::None);
            remote
                .fetch(&[spec.as_str()], Some(&mut opts), None)
                .map_err(|e| self.late(&e, &deadline))?;
            let stats = remote.stats();
            objects = stats.received_objects();
            bytes = stats.received_bytes();
            tracing::info!(
                "fetched {} from {}: {objects} objects, {bytes} bytes",
                &head.to_string()[..12],
                display_url(&self.url)
            );
        }
        let descends = match followed {
            Some(old) if old != head => repo
                .graph_descendant_of(head, old)
                .map_err(|e| self.err(&e))?,
            _ => false,
        };
        if let (Some(signers), true) = (&self.allowed_signers, followed != Some(head)) {
            // An unsigned head is not followed: passes keep reading the last signed commit,
            // so drift is still corrected while the branch waits for a signed one.
            super::signature::verify(&self.mirror, &head.to_string(), signers)?;
        }
        let decision = follow_decision(followed, head, descends, self.allow_force_push);
        let branch = refname.trim_start_matches("refs/heads/").to_string();
        match decision {
            Follow::Same => {}
            Follow::Refused => {
                return Err(SourceError::ForcePush {
                    url: display_url(&self.url),
                    branch,
                    followed: followed.map(|o| o.to_string()).unwrap_or_default(),
                    head: head.to_string(),
                })
            }
            Follow::Forced => tracing::warn!(
                "{branch} of {} was force-pushed: following {} (was {})",
                display_url(&self.url),
                &head.to_string()[..12],
                followed
                    .map(|o| o.to_string()[..12].to_string())
                    .unwrap_or_default()
            ),
            Follow::First | Follow::FastForward => {}
        }
        if decision != Follow::Same {
            repo.reference(&self.followed_ref(), head, true, "dockhand: follow")
                .map_err(|e| self.err(&e))?;
        }
        Ok(Synced {
            commit: head.to_string(),
            moved_from: followed.filter(|o| *o != head).map(|o| o.to_string()),
            received_objects: objects,
            received_bytes: bytes,
        })
    }
}

/// Credentials for libgit2, which asks again after each refusal: a bounded number of tries turns
/// a wrong token into an error instead of a loop.
/// When a sync must be over.
struct Deadline {
    at: std::time::Instant,
    limit: std::time::Duration,
}

impl Deadline {
    fn new(limit: std::time::Duration) -> Deadline {
        Deadline {
            at: std::time::Instant::now() + limit,
            limit,
        }
    }

    fn passed(&self) -> bool {
        std::time::Instant::now() >= self.at
    }
}

fn callbacks<'a>(
    auth: &'a Auth,
    tries: &'a Cell<u32>,
    deadline: &'a Deadline,
) -> RemoteCallbacks<'a> {
    let mut cb = RemoteCallbacks::new();
    // Returning false stops the transfer; libgit2 calls these as data arrives, so a remote
    // that trickles bytes is stopped at the deadline.
    cb.transfer_progress(move |_| !deadline.passed());
    cb.sideband_progress(move |_| !deadline.passed());
    cb.credentials(move |_url, user, allowed| {
        tries.set(tries.get() + 1);
        if tries.get() > 3 {
            return Err(git2::Error::from_str(
                "authentication failed: the remote refused the credentials (check the token or key, and that it may read the repository)",
            ));
        }
        if allowed.contains(CredentialType::USERNAME) {
            return git2::Cred::username(user.unwrap_or("git"));
        }
        if allowed.contains(CredentialType::SSH_KEY) {
            let user = user.unwrap_or("git");
            return match &auth.ssh_key {
                Some(key) => git2::Cred::ssh_key(user, None, key, None),
                None => git2::Cred::ssh_key_from_agent(user),
            };
        }
        if allowed.contains(CredentialType::USER_PASS_PLAINTEXT) {
            if let Some(file) = &auth.token_file {
                let token = std::fs::read_to_string(file).map_err(|e| {
                    git2::Error::from_str(&format!(
                        "cannot read the git token file {}: {e}",
                        file.display()
                    ))
                })?;
                // GitHub takes any user name with a token; GitLab wants `oauth2` or the
                // token's user, which a URL's user part can give.
                return git2::Cred::userpass_plaintext(
                    user.unwrap_or("x-access-token"),
                    token.trim(),
                );
            }
        }
        Err(git2::Error::from_str(
            "the remote asks for credentials: pass --git-token-file (https) or --ssh-key (ssh, or load the key into ssh-agent)",
        ))
    });
    cb
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A transfer still running at the sync's deadline is stopped from libgit2's progress
    /// callback and reported as [`SourceError::Deadline`]; within it the same sync succeeds.
    #[test]
    fn a_fetch_past_its_deadline_is_stopped_and_named() {
        let dir = tempfile::tempdir().unwrap();
        let origin = Repository::init(dir.path().join("origin")).unwrap();
        let sig = git2::Signature::now("t", "t@example.com").unwrap();
        let blob = origin.blob(b"stack: s\n").unwrap();
        let mut tree = origin.treebuilder(None).unwrap();
        tree.insert("dockhand.yaml", blob, 0o100644).unwrap();
        let tree = origin.find_tree(tree.write().unwrap()).unwrap();
        origin
            .commit(Some("refs/heads/main"), &sig, &sig, "one", &tree, &[])
            .unwrap();
        let remote = Remote {
            url: format!("file://{}", dir.path().join("origin").display()),
            branch: Some("main".into()),
            mirror: dir.path().join("mirror.git"),
            auth: Auth::default(),
            allow_force_push: false,
            allowed_signers: None,
        };
        let err = remote
            .sync_within(std::time::Duration::ZERO)
            .expect_err("a fetch past its deadline");
        assert!(matches!(err, SourceError::Deadline { .. }), "{err:?}");
        assert!(
            err.to_string().contains("took longer than its deadline"),
            "{err}"
        );
        assert!(remote.followed().is_none());
        assert!(remote.sync().is_ok());
        assert!(remote.followed().is_some());
    }

    #[test]
    fn remote_urls_are_told_from_paths() {
        assert!(is_remote("https://example.com/ops/desired.git"));
        assert!(is_remote("ssh://git@example.com/ops/desired.git"));
        assert!(is_remote("git@example.com:ops/desired.git"));
        assert!(is_remote("file:///srv/desired.git"));
        assert!(!is_remote("/srv/desired"));
        assert!(!is_remote("desired-state"));
    }

    /// Regression (issue 17): a token given as the user part of an https URL
    /// (`https://TOKEN@host/…`) was printed in errors.
    #[test]
    fn tokens_in_urls_are_hidden() {
        assert_eq!(
            display_url("https://bot:s3cret@example.com/a.git"),
            "https://***@example.com/a.git"
        );
        assert_eq!(
            display_url("https://ghp_t0ken@example.com/a.git"),
            "https://***@example.com/a.git"
        );
        assert_eq!(
            display_url("https://example.com/a@b.git"),
            "https://example.com/a@b.git"
        );
        assert_eq!(display_url("git@h:a.git"), "git@h:a.git");
        let url = "https://bot:s3cret@example.com/a.git";
        let said = mask_url_in(
            "unexpected http status code: 401 for https://bot:s3cret@example.com/a.git/info/refs; user bot:s3cret; password s3cret",
            url,
        );
        assert!(!said.contains("s3cret"), "{said}");
        assert!(
            said.contains("https://***@example.com/a.git/info/refs"),
            "{said}"
        );
        let said = mask_url_in("failed for ghp_t0ken", "https://ghp_t0ken@h/a.git");
        assert_eq!(said, "failed for ***");
        // Found by review (issue 17): a token in the query string was printed in full.
        let url = "https://127.0.0.1:1/x.git?private_token=S3CRETTOK";
        assert_eq!(display_url(url), "https://127.0.0.1:1/x.git?***");
        let said = mask_url_in(
            &format!("cannot fetch from {url}: refused; token S3CRETTOK"),
            url,
        );
        assert!(!said.contains("S3CRETTOK"), "{said}");
    }

    #[test]
    fn mirrors_are_named_after_the_repository_and_never_shared() {
        let a = mirror_dir(Path::new("/s"), "https://h/ops/desired.git");
        let b = mirror_dir(Path::new("/s"), "https://other/ops/desired.git");
        assert!(a.to_string_lossy().starts_with("/s/desired-"));
        assert_ne!(a, b);
        // A query string (which may hold a token) never names a folder on disk.
        let q = mirror_dir(Path::new("/s"), "https://h/x.git?private_token=S3CRETTOK");
        assert!(!q.to_string_lossy().contains("S3CRET"), "{q:?}");
    }

    #[test]
    fn only_fast_forwards_are_followed_unless_allowed() {
        let (a, b) = (
            Oid::from_bytes(&[1; 20]).unwrap(),
            Oid::from_bytes(&[2; 20]).unwrap(),
        );
        assert_eq!(follow_decision(None, a, false, false), Follow::First);
        assert_eq!(follow_decision(Some(a), a, false, false), Follow::Same);
        assert_eq!(
            follow_decision(Some(a), b, true, false),
            Follow::FastForward
        );
        assert_eq!(follow_decision(Some(a), b, false, false), Follow::Refused);
        assert_eq!(follow_decision(Some(a), b, false, true), Follow::Forced);
    }
}
