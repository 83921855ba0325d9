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

mod deploys;
mod dir;
mod holds;
mod time;

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rusqlite::Connection;
use serde::Serialize;

pub use dir::{marker_key, state_dir};
use dir::{private_file, tighten};
pub use time::{format_utc, now_ms, rfc3339, ser_rfc3339, ser_rfc3339_opt};

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
    /// Some services were skipped (preflight failed for them or a service they depend on);
    /// everything else was applied.
    Partial,
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
            Outcome::Partial => "partial",
            Outcome::Interrupted => "interrupted",
        }
    }

    fn parse(s: &str) -> Outcome {
        match s {
            "running" => Outcome::Running,
            "succeeded" => Outcome::Succeeded,
            "rolled-back" => Outcome::RolledBack,
            "failed-preflight" => Outcome::FailedPreflight,
            "partial" => Outcome::Partial,
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
    #[serde(rename = "started_at", serialize_with = "time::ser_rfc3339")]
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
    /// Shown (JSON) as `started_at`, RFC 3339.
    #[serde(rename = "started_at", serialize_with = "time::ser_rfc3339")]
    pub started_ms: i64,
    /// Shown (JSON) as `finished_at`, RFC 3339; `null` while running.
    #[serde(rename = "finished_at", serialize_with = "time::ser_rfc3339_opt")]
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
    /// The source's head when the hold was set (JSON `source_head`: the `_at` suffix is kept
    /// for times there).
    #[serde(rename = "source_head")]
    pub source_at: String,
    pub reason: String,
    /// Shown (JSON) as `at`, RFC 3339.
    #[serde(rename = "at", serialize_with = "time::ser_rfc3339")]
    pub at_ms: i64,
}

/// A revision whose failed services are not tried again until a new revision arrives or
/// `apply --retry`; everything else of it is still applied and kept converged.
#[derive(Debug, Clone, Serialize)]
pub struct Quarantine {
    pub revision: String,
    pub deploy_id: i64,
    pub reason: String,
    /// Shown (JSON) as `at`, RFC 3339.
    #[serde(rename = "at", serialize_with = "time::ser_rfc3339")]
    pub at_ms: i64,
    /// The services whose release, first deploy or job failed. Empty: the whole revision
    /// (a quarantine recorded before services were, by an earlier dockhand).
    pub services: Vec<QuarantinedService>,
}

/// One service of a [`Quarantine`], and the deploy where it failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct QuarantinedService {
    pub stack: String,
    pub service: String,
    pub deploy_id: i64,
    /// The failure, redacted.
    pub reason: String,
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
-- The services a quarantine concerns (added after `quarantine`: a row there without rows
-- here is a whole revision, as an earlier dockhand recorded it; a table of its own, so that
-- an earlier binary reading this database still works).
CREATE TABLE IF NOT EXISTS quarantine_services (
    project   TEXT NOT NULL,
    revision  TEXT NOT NULL,
    stack     TEXT NOT NULL,
    service   TEXT NOT NULL,
    deploy_id INTEGER NOT NULL,
    reason    TEXT NOT NULL,
    PRIMARY KEY (project, revision, stack, service)
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
        store
            .quarantine("p", "aaa", first, "hook failed", &[])
            .unwrap();
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

    /// Issue 18: an agent meeting the same preflight failure at every resync recorded a new
    /// `failed-preflight` deploy each time (7 in 2 minutes). A repeat of the latest record at
    /// the same revision is folded into it; another error, or another revision, is recorded.
    #[test]
    fn a_repeated_failed_preflight_at_one_revision_is_recorded_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let lock = store.lock_apply().unwrap();
        let first = new(&store, &lock, "bad");
        let kept = store
            .finish_unless_repeated(first, Outcome::FailedPreflight, Some("no digest"))
            .unwrap();
        assert_eq!(kept, first);
        for _ in 0..3 {
            let again = new(&store, &lock, "bad");
            let kept = store
                .finish_unless_repeated(again, Outcome::FailedPreflight, Some("no digest"))
                .unwrap();
            assert_eq!(kept, first, "a repeat is folded into the first record");
        }
        let other_error = new(&store, &lock, "bad");
        let kept = store
            .finish_unless_repeated(other_error, Outcome::FailedPreflight, Some("port taken"))
            .unwrap();
        assert_eq!(kept, other_error);
        let other_rev = new(&store, &lock, "worse");
        let kept = store
            .finish_unless_repeated(other_rev, Outcome::FailedPreflight, Some("port taken"))
            .unwrap();
        assert_eq!(kept, other_rev);
        let all = store.deploys(Some("p"), None, 10).unwrap();
        let ids: Vec<i64> = all.iter().map(|d| d.id).collect();
        assert_eq!(ids, [other_rev, other_error, first]);
        assert!(all[2].steps.is_empty());
    }

    /// Issue 18 review (D): with a bad digest in place, each hand stop gave a pair of records,
    /// the `partial` correction and then another `failed-preflight` (the de-dup compared only
    /// with the latest record). A correction in between does not make the failure new; a
    /// success at that revision does.
    #[test]
    fn a_failed_preflight_is_recorded_once_across_the_corrections_between_its_repeats() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let lock = store.lock_apply().unwrap();
        let first = new(&store, &lock, "bad");
        store
            .finish_unless_repeated(first, Outcome::FailedPreflight, Some("no digest"))
            .unwrap();
        let mut corrections = Vec::new();
        for _ in 0..3 {
            let fix = new(&store, &lock, "bad");
            store
                .finish(fix, Outcome::Partial, Some("1 service(s) skipped"))
                .unwrap();
            corrections.push(fix);
            let again = new(&store, &lock, "bad");
            let kept = store
                .finish_unless_repeated(again, Outcome::FailedPreflight, Some("no digest"))
                .unwrap();
            assert_eq!(kept, first);
        }
        let good = new(&store, &lock, "bad");
        store.finish(good, Outcome::Succeeded, None).unwrap();
        let after = new(&store, &lock, "bad");
        let kept = store
            .finish_unless_repeated(after, Outcome::FailedPreflight, Some("no digest"))
            .unwrap();
        assert_eq!(kept, after, "after a success the failure is new again");
        let outcomes: Vec<Outcome> = store
            .deploys(Some("p"), None, 20)
            .unwrap()
            .iter()
            .rev()
            .map(|d| d.outcome)
            .collect();
        use Outcome::{FailedPreflight as F, Partial as P, Succeeded as S};
        assert_eq!(outcomes, [F, P, P, P, S, F]);
        assert_eq!(corrections.len(), 3);
    }

    /// Issue 18 review (B, E): a quarantine names the services that failed; a retry that
    /// carried one out ends its part, and the revision's quarantine ends with its last
    /// service. A quarantine without services (an earlier dockhand's) is the whole revision
    /// and only ends as a whole.
    #[test]
    fn a_quarantine_holds_its_services_and_ends_with_the_last() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let lock = store.lock_apply().unwrap();
        let svc = |s: &str| ("shop".to_string(), s.to_string());
        let d1 = new(&store, &lock, "r1");
        store.finish(d1, Outcome::Failed, Some("web sick")).unwrap();
        store
            .quarantine("p", "r1", d1, "web sick", &[svc("web")])
            .unwrap();
        let d2 = new(&store, &lock, "r1");
        store
            .finish(d2, Outcome::Failed, Some("job timed out"))
            .unwrap();
        store
            .quarantine("p", "r1", d2, "job timed out", &[svc("migrate")])
            .unwrap();
        let q = store.quarantined("p", "r1").unwrap().unwrap();
        assert_eq!((q.deploy_id, q.reason.as_str()), (d1, "web sick"));
        let names: Vec<(&str, i64)> = q
            .services
            .iter()
            .map(|s| (s.service.as_str(), s.deploy_id))
            .collect();
        assert_eq!(names, [("migrate", d2), ("web", d1)]);
        let all = store.deploys(Some("p"), None, 10).unwrap();
        assert!(all.iter().all(|d| d.quarantined), "{all:?}");

        store
            .release_quarantined_services("p", "r1", &[svc("web"), svc("other")])
            .unwrap();
        let q = store.quarantined("p", "r1").unwrap().unwrap();
        assert_eq!(q.services.len(), 1);
        assert_eq!(q.services[0].service, "migrate");
        store
            .release_quarantined_services("p", "r1", &[svc("migrate")])
            .unwrap();
        assert!(store.quarantined("p", "r1").unwrap().is_none());

        // The whole revision, as recorded before services were.
        store.quarantine("p", "r2", d2, "old", &[]).unwrap();
        store
            .release_quarantined_services("p", "r2", &[svc("web")])
            .unwrap();
        let q = store.quarantined("p", "r2").unwrap().unwrap();
        assert!(q.services.is_empty());
        store.release_quarantine("p", "r2").unwrap();
        assert!(store.quarantine_list("p").unwrap().is_empty());
    }
}
