//! The apply lock and the deploy record: starting, stepping, finishing and reading deploys.

use std::path::Path;

use rusqlite::{params, OptionalExtension};

use super::{
    now_ms, tighten, ApplyLock, Deploy, NewDeploy, Outcome, ServiceChange, StepRecord, Store,
    StoreError, FILE_MODE, LOCK_FILE,
};

impl Store {
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

    /// [`Store::finish`] for a deploy that changed nothing, unless it repeats an earlier one:
    /// when the latest earlier deploy of the project at the same revision *with the same
    /// outcome* has the same error, and no deploy at that revision succeeded since, this one
    /// is deleted (with its steps) and the earlier id is returned. So an agent that meets the
    /// same failure at every resync records it once, even when drift corrections (`partial`
    /// deploys that skip the same failing service) come in between. Returns the id that holds
    /// the record.
    pub fn finish_unless_repeated(
        &self,
        deploy: i64,
        outcome: Outcome,
        error: Option<&str>,
    ) -> Result<i64, StoreError> {
        self.with(|c| {
            let tx = c.unchecked_transaction()?;
            let previous: Option<(i64, String, String, Option<String>)> = tx
                .query_row(
                    "SELECT p.id, p.revision, p.outcome, p.error FROM deploys p, deploys d
                     WHERE d.id = ?1 AND p.project = d.project AND p.id < d.id AND p.revision = d.revision
                       AND p.outcome = ?2
                       AND NOT EXISTS (SELECT 1 FROM deploys s WHERE s.project = d.project
                           AND s.revision = d.revision AND s.id > p.id AND s.id < d.id
                           AND s.outcome = 'succeeded')
                     ORDER BY p.id DESC LIMIT 1",
                    params![deploy, outcome.as_str()],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
                )
                .optional()?;
            let kept = match previous {
                Some((id, _, o, e)) if o == outcome.as_str() && e.as_deref() == error => {
                    tx.execute("DELETE FROM steps WHERE deploy_id = ?1", params![deploy])?;
                    tx.execute(
                        "DELETE FROM deploy_services WHERE deploy_id = ?1",
                        params![deploy],
                    )?;
                    tx.execute("DELETE FROM deploys WHERE id = ?1", params![deploy])?;
                    id
                }
                _ => {
                    tx.execute(
                        "UPDATE deploys SET outcome = ?2, error = ?3, finished_ms = ?4 WHERE id = ?1",
                        params![deploy, outcome.as_str(), error, now_ms()],
                    )?;
                    deploy
                }
            };
            tx.commit()?;
            Ok(kept)
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
                        OR EXISTS (SELECT 1 FROM quarantine_services q WHERE q.deploy_id = d.id)
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
