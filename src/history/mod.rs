//! The deploy record: one row per deploy (what triggered it, which revision, which images ran
//! before and after, every step with its duration and outcome, hook output tails, the final
//! outcome) and the list of quarantined revisions, in an embedded SQLite database under the
//! state directory (default `/var/lib/dockhand/dockhand.db`).
//!
//! Edge module: file I/O only. It stores what apply reports and never decides anything.
//!
//! The state directory also holds the apply lock and the per-host key of hidden-value markers
//! ([`marker_key`]); it is kept 0700 and its files 0600 (existing ones are tightened on open),
//! since the record holds hook output and the key must stay secret.
//!
//! # Guarantees
//! - Crash-safe: every write is its own transaction in WAL mode with `synchronous=FULL`, so a
//!   process killed mid-write loses at most that write, never an earlier record.
//! - One apply at a time per state directory ([`Store::lock_apply`], an advisory `flock`), which
//!   also tells us that a deploy still marked `running` belongs to a dead process: it is marked
//!   `interrupted` when the next apply starts.
//! - Secret-free: callers store redacted text only (see `apply::progress::Redactor`).

mod time;

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;

pub use time::{format_utc, now_ms};

/// Where the state lives unless `--state-dir` / `DOCKHAND_STATE_DIR` say otherwise.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/dockhand";
const DB_FILE: &str = "dockhand.db";
const LOCK_FILE: &str = "apply.lock";
/// The per-host key of hidden-value markers (see [`crate::spec::MarkerKey`]).
const KEY_FILE: &str = "marker.key";
/// Mode of the state directory: only its owner may list or enter it.
const DIR_MODE: u32 = 0o700;
/// Mode of every file in it (record, lock, key).
const FILE_MODE: u32 = 0o600;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot use the state directory {path}: {source}\n  hint: run as a user that can write there, or pass --state-dir (or DOCKHAND_STATE_DIR) to use another directory")]
    Dir {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("deploy record {path}: {source}\n  hint: check free space and permissions on the state directory; the running containers were not touched by this error")]
    Db {
        path: String,
        #[source]
        source: rusqlite::Error,
    },
    #[error("another dockhand apply holds {path} (pid in the file: {holder})\n  hint: wait for it to finish; only one apply runs at a time per state directory")]
    Busy { path: String, holder: String },
    #[error("marker key {path} is unusable: {reason}\n  hint: remove it and dockhand makes a new one (each service with env values or an env file is then recreated once, as its markers change)")]
    Key { path: String, reason: String },
}

/// How a deploy ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    Running,
    Succeeded,
    /// A release failed its gate or a hook; what served before still serves.
    RolledBack,
    Failed,
    FailedPreflight,
    /// The process died mid-deploy (found by the next apply).
    Interrupted,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Running => "running",
            Outcome::Succeeded => "succeeded",
            Outcome::RolledBack => "rolled-back",
            Outcome::Failed => "failed",
            Outcome::FailedPreflight => "failed-preflight",
            Outcome::Interrupted => "interrupted",
        }
    }

    fn parse(s: &str) -> Outcome {
        match s {
            "running" => Outcome::Running,
            "succeeded" => Outcome::Succeeded,
            "rolled-back" => Outcome::RolledBack,
            "failed-preflight" => Outcome::FailedPreflight,
            "interrupted" => Outcome::Interrupted,
            _ => Outcome::Failed,
        }
    }
}

/// What is known when a deploy starts.
#[derive(Debug, Clone)]
pub struct NewDeploy<'a> {
    pub project: &'a str,
    pub trigger: &'a str,
    /// Commit id, or `worktree:<hash>` for uncommitted files.
    pub revision: &'a str,
    pub source: &'a str,
    pub services: &'a [ServiceChange],
    /// The plan's summary line.
    pub summary: &'a str,
}

/// One container a deploy changes, with the image before and after.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServiceChange {
    pub stack: String,
    pub service: String,
    pub container: String,
    pub action: String,
    pub image_before: Option<String>,
    pub image_after: Option<String>,
}

/// One step of a deploy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StepRecord {
    pub target: String,
    pub name: String,
    pub started_ms: i64,
    pub duration_ms: i64,
    /// `ok` or `failed`.
    pub outcome: String,
    /// Last lines of output (hooks), redacted.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub output: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub error: String,
}

/// A deploy as `history` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct Deploy {
    pub id: i64,
    pub project: String,
    pub started_ms: i64,
    pub finished_ms: Option<i64>,
    pub trigger: String,
    pub revision: String,
    pub source: String,
    pub summary: String,
    pub outcome: Outcome,
    pub error: Option<String>,
    pub quarantined: bool,
    pub services: Vec<ServiceChange>,
    pub steps: Vec<StepRecord>,
}

/// A rollback that holds: the project stays on `revision` until the source moves past
/// `source_at` (the head when the rollback was made) or `dockhand resume`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Hold {
    pub revision: String,
    pub source_at: String,
    pub reason: String,
    pub at_ms: i64,
}

/// A revision that is not applied again until a new one arrives or `apply --retry`.
#[derive(Debug, Clone, Serialize)]
pub struct Quarantine {
    pub revision: String,
    pub deploy_id: i64,
    pub reason: String,
    pub at_ms: i64,
}

/// The open database. Cheap to share: the connection sits behind a mutex because apply records
/// steps from parallel tasks; each write is short.
pub struct Store {
    path: PathBuf,
    conn: Mutex<Connection>,
}

/// Held for the length of an apply; dropping it releases the lock.
pub struct ApplyLock {
    _lock: nix::fcntl::Flock<std::fs::File>,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS deploys (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    project     TEXT NOT NULL,
    started_ms  INTEGER NOT NULL,
    finished_ms INTEGER,
    trigger     TEXT NOT NULL,
    revision    TEXT NOT NULL,
    source      TEXT NOT NULL,
    summary     TEXT NOT NULL,
    outcome     TEXT NOT NULL,
    error       TEXT
);
CREATE TABLE IF NOT EXISTS deploy_services (
    deploy_id    INTEGER NOT NULL REFERENCES deploys(id),
    stack        TEXT NOT NULL,
    service      TEXT NOT NULL,
    container    TEXT NOT NULL,
    action       TEXT NOT NULL,
    image_before TEXT,
    image_after  TEXT,
    PRIMARY KEY (deploy_id, container)
);
CREATE TABLE IF NOT EXISTS steps (
    deploy_id   INTEGER NOT NULL REFERENCES deploys(id),
    seq         INTEGER NOT NULL,
    target      TEXT NOT NULL,
    name        TEXT NOT NULL,
    started_ms  INTEGER NOT NULL,
    duration_ms INTEGER NOT NULL,
    outcome     TEXT NOT NULL,
    output      TEXT NOT NULL DEFAULT '',
    error       TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (deploy_id, seq)
);
CREATE TABLE IF NOT EXISTS quarantine (
    project   TEXT NOT NULL,
    revision  TEXT NOT NULL,
    deploy_id INTEGER NOT NULL,
    reason    TEXT NOT NULL,
    at_ms     INTEGER NOT NULL,
    PRIMARY KEY (project, revision)
);
CREATE TABLE IF NOT EXISTS hold (
    project    TEXT PRIMARY KEY,
    revision   TEXT NOT NULL,
    source_at  TEXT NOT NULL,
    reason     TEXT NOT NULL,
    at_ms      INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS deploys_project ON deploys(project, id);
";

/// Creates the state directory (mode 0700) or tightens an existing one to 0700: it holds the
/// deploy record (hook output, revisions), the marker key and remote mirrors.
///
/// # Errors
/// [`StoreError::Dir`] when it cannot be created or its mode set.
pub fn state_dir(dir: &Path) -> Result<(), StoreError> {
    use std::os::unix::fs::DirBuilderExt;
    let io = |source| StoreError::Dir {
        path: dir.display().to_string(),
        source,
    };
    if !dir.is_dir() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(DIR_MODE)
            .create(dir)
            .map_err(io)?;
    }
    let file = std::fs::File::open(dir).map_err(io)?;
    tighten(&file, DIR_MODE).map_err(io)
}

/// Creates `path` empty with mode 0600 unless it exists, and tightens it to 0600 (it never
/// follows a symlink there, and a FIFO planted there cannot block it).
fn private_file(path: &Path) -> Result<(), StoreError> {
    use std::os::unix::fs::OpenOptionsExt;
    let io = |source| StoreError::Dir {
        path: path.display().to_string(),
        source,
    };
    // Read-only when it exists, so that reading the record still works on a read-only file
    // system (tightening an already private file writes nothing).
    let file = match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK)
        .open(path)
    {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(FILE_MODE)
            .custom_flags(nix::libc::O_NOFOLLOW)
            .open(path),
        other => other,
    }
    .map_err(io)?;
    tighten(&file, FILE_MODE).map_err(io)
}

/// Clears every permission bit outside `mode` (group and others), keeping the rest.
fn tighten(file: &std::fs::File, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let now = file.metadata()?.permissions().mode() & 0o7777;
    if now & !mode != 0 {
        file.set_permissions(std::fs::Permissions::from_mode(now & mode))?;
    }
    Ok(())
}

/// The host's key for hidden-value markers, in `dir` (the state directory): read, or made on
/// first use from the system's random source (32 bytes, mode 0600, written beside and linked
/// into place, so that two processes starting at once end up with the same key).
///
/// # Errors
/// The state directory or the key cannot be created or read ([`StoreError::Dir`]), or the key
/// file is not a regular file of 32 bytes ([`StoreError::Key`]).
pub fn marker_key(dir: &Path) -> Result<crate::spec::MarkerKey, StoreError> {
    use std::io::{Read, Write};
    use std::os::unix::fs::OpenOptionsExt;
    state_dir(dir)?;
    let path = dir.join(KEY_FILE);
    let shown = path.display().to_string();
    let io = |source| StoreError::Dir {
        path: shown.clone(),
        source,
    };
    let open = || {
        std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK)
            .open(&path)
    };
    let file = match open() {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut bytes = [0u8; 32];
            getrandom::fill(&mut bytes).map_err(|e| StoreError::Key {
                path: shown.clone(),
                reason: format!("no random bytes from the system: {e}"),
            })?;
            let tmp = dir.join(format!("{KEY_FILE}.{}.tmp", std::process::id()));
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(FILE_MODE)
                .custom_flags(nix::libc::O_NOFOLLOW)
                .open(&tmp)
                .map_err(io)?;
            let written = f.write_all(&bytes).and_then(|()| f.sync_all());
            // A link never replaces: if another process made the key meanwhile, theirs stands.
            let linked = written.and_then(|()| match std::fs::hard_link(&tmp, &path) {
                Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => Err(e),
                _ => Ok(()),
            });
            let _ = std::fs::remove_file(&tmp);
            linked.map_err(io)?;
            open().map_err(io)?
        }
        Err(e) => return Err(io(e)),
    };
    let meta = file.metadata().map_err(io)?;
    if !meta.is_file() || meta.len() != 32 {
        return Err(StoreError::Key {
            path: shown,
            reason: format!(
                "expected a regular file of 32 bytes, found {} of {} bytes",
                if meta.is_file() {
                    "a file"
                } else {
                    "something else"
                },
                meta.len()
            ),
        });
    }
    tighten(&file, FILE_MODE).map_err(io)?;
    let mut bytes = [0u8; 32];
    (&file).read_exact(&mut bytes).map_err(io)?;
    Ok(crate::spec::MarkerKey::new(bytes))
}

impl Store {
    /// Opens (creating if needed) the store in `dir`.
    ///
    /// # Errors
    /// The directory cannot be created or the database cannot be opened or migrated.
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        state_dir(dir)?;
        let path = dir.join(DB_FILE);
        // Created 0600 before SQLite opens it (SQLite would create it 0644, readable by every
        // user); its -wal and -shm files take the database's mode.
        private_file(&path)?;
        let db = |source| StoreError::Db {
            path: path.display().to_string(),
            source,
        };
        let conn = Connection::open(&path).map_err(db)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(db)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(db)?;
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(db)?;
        conn.execute_batch(SCHEMA).map_err(db)?;
        for side in ["-wal", "-shm"] {
            let p = dir.join(format!("{DB_FILE}{side}"));
            if p.exists() {
                private_file(&p)?;
            }
        }
        Ok(Store {
            path,
            conn: Mutex::new(conn),
        })
    }

    /// Opens the store only if it exists (read-only verbs must not create state).
    pub fn open_existing(dir: &Path) -> Result<Option<Store>, StoreError> {
        if dir.join(DB_FILE).exists() {
            Store::open(dir).map(Some)
        } else {
            Ok(None)
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn err(&self, source: rusqlite::Error) -> StoreError {
        StoreError::Db {
            path: self.path.display().to_string(),
            source,
        }
    }

    fn with<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T, StoreError> {
        let conn = self
            .conn
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&conn).map_err(|e| self.err(e))
    }

    /// Takes the per-state-directory apply lock, without waiting.
    ///
    /// # Errors
    /// [`StoreError::Busy`] when another apply holds it.
    pub fn lock_apply(&self) -> Result<ApplyLock, StoreError> {
        let dir = self.path.parent().unwrap_or(Path::new("."));
        let lock_path = dir.join(LOCK_FILE);
        let io = |source| StoreError::Dir {
            path: lock_path.display().to_string(),
            source,
        };
        let file = {
            use std::os::unix::fs::OpenOptionsExt;
            std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .read(true)
                .write(true)
                .mode(FILE_MODE)
                .custom_flags(nix::libc::O_NOFOLLOW)
                .open(&lock_path)
                .map_err(io)?
        };
        tighten(&file, FILE_MODE).map_err(io)?;
        let mut lock =
            match nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock) {
                Ok(l) => l,
                Err((_, _)) => {
                    let holder = std::fs::read_to_string(&lock_path).unwrap_or_default();
                    return Err(StoreError::Busy {
                        path: lock_path.display().to_string(),
                        holder: holder.trim().to_string(),
                    });
                }
            };
        use std::io::{Seek, Write};
        let _ = lock.set_len(0);
        let _ = lock.rewind();
        let _ = write!(lock, "{}", std::process::id());
        Ok(ApplyLock { _lock: lock })
    }

    /// Records the start of a deploy and returns its id. Marks deploys left `running` by a dead
    /// process as interrupted first; the caller holds the apply lock, so none can be alive.
    pub fn begin(&self, d: &NewDeploy<'_>, _lock: &ApplyLock) -> Result<i64, StoreError> {
        self.with(|c| {
            let tx = c.unchecked_transaction()?;
            tx.execute(
                "UPDATE deploys SET outcome = 'interrupted', error = 'dockhand stopped before this deploy finished' WHERE outcome = 'running' AND project = ?1",
                params![d.project],
            )?;
            tx.execute(
                "INSERT INTO deploys (project, started_ms, trigger, revision, source, summary, outcome) VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'running')",
                params![d.project, now_ms(), d.trigger, d.revision, d.source, d.summary],
            )?;
            let id = tx.last_insert_rowid();
            for s in d.services {
                tx.execute(
                    "INSERT OR REPLACE INTO deploy_services VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                    params![id, s.stack, s.service, s.container, s.action, s.image_before, s.image_after],
                )?;
            }
            tx.commit()?;
            Ok(id)
        })
    }

    pub fn record_step(&self, deploy: i64, step: &StepRecord) -> Result<(), StoreError> {
        self.with(|c| {
            c.execute(
                "INSERT INTO steps (deploy_id, seq, target, name, started_ms, duration_ms, outcome, output, error)
                 VALUES (?1, (SELECT COALESCE(MAX(seq), 0) + 1 FROM steps WHERE deploy_id = ?1), ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![deploy, step.target, step.name, step.started_ms, step.duration_ms, step.outcome, step.output, step.error],
            )?;
            Ok(())
        })
    }

    pub fn finish(
        &self,
        deploy: i64,
        outcome: Outcome,
        error: Option<&str>,
    ) -> Result<(), StoreError> {
        self.with(|c| {
            c.execute(
                "UPDATE deploys SET outcome = ?2, error = ?3, finished_ms = ?4 WHERE id = ?1",
                params![deploy, outcome.as_str(), error, now_ms()],
            )?;
            Ok(())
        })
    }

    pub fn quarantine(
        &self,
        project: &str,
        revision: &str,
        deploy: i64,
        reason: &str,
    ) -> Result<(), StoreError> {
        self.with(|c| {
            c.execute(
                "INSERT OR REPLACE INTO quarantine VALUES (?1, ?2, ?3, ?4, ?5)",
                params![project, revision, deploy, reason, now_ms()],
            )?;
            Ok(())
        })
    }

    pub fn release_quarantine(&self, project: &str, revision: &str) -> Result<(), StoreError> {
        self.with(|c| {
            c.execute(
                "DELETE FROM quarantine WHERE project = ?1 AND revision = ?2",
                params![project, revision],
            )?;
            Ok(())
        })
    }

    pub fn quarantined(
        &self,
        project: &str,
        revision: &str,
    ) -> Result<Option<Quarantine>, StoreError> {
        self.with(|c| {
            c.query_row(
                "SELECT revision, deploy_id, reason, at_ms FROM quarantine WHERE project = ?1 AND revision = ?2",
                params![project, revision],
                |r| {
                    Ok(Quarantine {
                        revision: r.get(0)?,
                        deploy_id: r.get(1)?,
                        reason: r.get(2)?,
                        at_ms: r.get(3)?,
                    })
                },
            )
            .optional()
        })
    }

    pub fn set_hold(&self, project: &str, hold: &Hold) -> Result<(), StoreError> {
        self.with(|c| {
            c.execute(
                "INSERT OR REPLACE INTO hold VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    project,
                    hold.revision,
                    hold.source_at,
                    hold.reason,
                    hold.at_ms
                ],
            )?;
            Ok(())
        })
    }

    pub fn hold(&self, project: &str) -> Result<Option<Hold>, StoreError> {
        self.with(|c| {
            c.query_row(
                "SELECT revision, source_at, reason, at_ms FROM hold WHERE project = ?1",
                params![project],
                |r| {
                    Ok(Hold {
                        revision: r.get(0)?,
                        source_at: r.get(1)?,
                        reason: r.get(2)?,
                        at_ms: r.get(3)?,
                    })
                },
            )
            .optional()
        })
    }

    /// Ends the hold of `project`; returns whether there was one.
    pub fn release_hold(&self, project: &str) -> Result<bool, StoreError> {
        self.with(|c| Ok(c.execute("DELETE FROM hold WHERE project = ?1", params![project])? > 0))
    }

    pub fn quarantine_list(&self, project: &str) -> Result<Vec<Quarantine>, StoreError> {
        self.with(|c| {
            let mut st = c.prepare(
                "SELECT revision, deploy_id, reason, at_ms FROM quarantine WHERE project = ?1 ORDER BY at_ms DESC",
            )?;
            let rows = st.query_map(params![project], |r| {
                Ok(Quarantine {
                    revision: r.get(0)?,
                    deploy_id: r.get(1)?,
                    reason: r.get(2)?,
                    at_ms: r.get(3)?,
                })
            })?;
            rows.collect()
        })
    }

    /// Deploys of `project`, newest first; with `stack`, only those that changed it.
    pub fn deploys(
        &self,
        project: Option<&str>,
        stack: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Deploy>, StoreError> {
        self.query_deploys(project, stack, None, limit)
    }

    fn query_deploys(
        &self,
        project: Option<&str>,
        stack: Option<&str>,
        id: Option<i64>,
        limit: usize,
    ) -> Result<Vec<Deploy>, StoreError> {
        self.with(|c| {
            let mut st = c.prepare(
                "SELECT d.id, d.project, d.started_ms, d.finished_ms, d.trigger, d.revision, d.source, d.summary, d.outcome, d.error,
                        EXISTS (SELECT 1 FROM quarantine q WHERE q.deploy_id = d.id)
                 FROM deploys d
                 WHERE (?1 IS NULL OR d.project = ?1)
                   AND (?2 IS NULL OR EXISTS (SELECT 1 FROM deploy_services s WHERE s.deploy_id = d.id AND s.stack = ?2))
                   AND (?4 IS NULL OR d.id = ?4)
                 ORDER BY d.id DESC LIMIT ?3",
            )?;
            let limit = i64::try_from(limit).unwrap_or(i64::MAX);
            let mut deploys: Vec<Deploy> = st
                .query_map(params![project, stack, limit, id], |r| {
                    Ok(Deploy {
                        id: r.get(0)?,
                        project: r.get(1)?,
                        started_ms: r.get(2)?,
                        finished_ms: r.get(3)?,
                        trigger: r.get(4)?,
                        revision: r.get(5)?,
                        source: r.get(6)?,
                        summary: r.get(7)?,
                        outcome: Outcome::parse(&r.get::<_, String>(8)?),
                        error: r.get(9)?,
                        quarantined: r.get(10)?,
                        services: Vec::new(),
                        steps: Vec::new(),
                    })
                })?
                .collect::<rusqlite::Result<_>>()?;
            let mut svc = c.prepare(
                "SELECT stack, service, container, action, image_before, image_after FROM deploy_services WHERE deploy_id = ?1 ORDER BY stack, container",
            )?;
            let mut steps = c.prepare(
                "SELECT target, name, started_ms, duration_ms, outcome, output, error FROM steps WHERE deploy_id = ?1 ORDER BY seq",
            )?;
            for d in &mut deploys {
                d.services = svc
                    .query_map(params![d.id], |r| {
                        Ok(ServiceChange {
                            stack: r.get(0)?,
                            service: r.get(1)?,
                            container: r.get(2)?,
                            action: r.get(3)?,
                            image_before: r.get(4)?,
                            image_after: r.get(5)?,
                        })
                    })?
                    .collect::<rusqlite::Result<_>>()?;
                d.steps = steps
                    .query_map(params![d.id], |r| {
                        Ok(StepRecord {
                            target: r.get(0)?,
                            name: r.get(1)?,
                            started_ms: r.get(2)?,
                            duration_ms: r.get(3)?,
                            outcome: r.get(4)?,
                            output: r.get(5)?,
                            error: r.get(6)?,
                        })
                    })?
                    .collect::<rusqlite::Result<_>>()?;
            }
            Ok(deploys)
        })
    }

    /// One deploy by id.
    pub fn deploy(&self, project: Option<&str>, id: i64) -> Result<Option<Deploy>, StoreError> {
        Ok(self.query_deploys(project, None, Some(id), 1)?.pop())
    }

    /// For each container, the last successful deploy that created or changed it: what
    /// `status` shows as "deployed when, by which deploy".
    pub fn last_deploys(&self, project: &str) -> Result<Vec<(String, i64, i64)>, StoreError> {
        self.with(|c| {
            let mut st = c.prepare(
                "SELECT s.container, MAX(d.id), d.finished_ms FROM deploy_services s JOIN deploys d ON d.id = s.deploy_id
                 WHERE d.project = ?1 AND d.outcome = 'succeeded' AND s.action != 'remove'
                 GROUP BY s.container",
            )?;
            let rows = st.query_map(params![project], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get::<_, Option<i64>>(2)?.unwrap_or(0)))
            })?;
            rows.collect()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new(store: &Store, lock: &ApplyLock, rev: &str) -> i64 {
        let services = [ServiceChange {
            stack: "shop".into(),
            service: "web".into(),
            container: "shop-web".into(),
            action: "recreate".into(),
            image_before: Some("r/web@sha256:1".into()),
            image_after: Some("r/web:2@sha256:2".into()),
        }];
        store
            .begin(
                &NewDeploy {
                    project: "p",
                    trigger: "cli",
                    revision: rev,
                    source: "test",
                    services: &services,
                    summary: "0 to create, 1 to recreate",
                },
                lock,
            )
            .unwrap()
    }

    #[test]
    fn records_steps_outcomes_quarantine_and_marks_dead_deploys_interrupted() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let lock = store.lock_apply().unwrap();
        assert!(matches!(store.lock_apply(), Err(StoreError::Busy { .. })));
        let first = new(&store, &lock, "aaa");
        store
            .record_step(
                first,
                &StepRecord {
                    target: "shop-web".into(),
                    name: "hook after_start[0]".into(),
                    started_ms: 1,
                    duration_ms: 2,
                    outcome: "failed".into(),
                    output: "boom".into(),
                    error: "exited with 3".into(),
                },
            )
            .unwrap();
        store
            .finish(first, Outcome::RolledBack, Some("hook failed"))
            .unwrap();
        store.quarantine("p", "aaa", first, "hook failed").unwrap();
        // A deploy left running (its process died) is marked when the next one begins.
        let second = new(&store, &lock, "bbb");
        let third = new(&store, &lock, "bbb");
        store.finish(third, Outcome::Succeeded, None).unwrap();

        let all = store.deploys(Some("p"), None, 10).unwrap();
        let outcomes: Vec<_> = all.iter().map(|d| (d.id, d.outcome)).collect();
        assert_eq!(
            outcomes,
            [
                (third, Outcome::Succeeded),
                (second, Outcome::Interrupted),
                (first, Outcome::RolledBack)
            ]
        );
        assert!(all[2].quarantined);
        assert_eq!(all[2].steps[0].output, "boom");
        assert_eq!(
            store.quarantined("p", "aaa").unwrap().unwrap().deploy_id,
            first
        );
        assert!(store.quarantined("p", "bbb").unwrap().is_none());
        assert_eq!(
            store.deploys(Some("p"), Some("other"), 10).unwrap().len(),
            0
        );
        assert_eq!(store.deploys(Some("other"), None, 10).unwrap().len(), 0);
        store.release_quarantine("p", "aaa").unwrap();
        assert!(store.quarantine_list("p").unwrap().is_empty());
        let last = store.last_deploys("p").unwrap();
        assert_eq!(last, [("shop-web".to_string(), third, last[0].2)]);
        drop(lock);
        assert!(store.lock_apply().is_ok());
    }
}
