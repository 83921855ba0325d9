//! Quarantined revisions and holds of a project.

use rusqlite::{params, OptionalExtension};

use super::{now_ms, Hold, Quarantine, QuarantinedService, Store, StoreError};

impl Store {
    /// Quarantines `services` (stack, service) of `revision`, failed in `deploy` for
    /// `reason` (redacted), adding them to those quarantined already. No services: the whole
    /// revision.
    ///
    /// # Errors
    /// The record cannot be written.
    pub fn quarantine(
        &self,
        project: &str,
        revision: &str,
        deploy: i64,
        reason: &str,
        services: &[(String, String)],
    ) -> Result<(), StoreError> {
        self.with(|c| {
            let tx = c.unchecked_transaction()?;
            // The first failure stays the revision's; later ones add their services.
            tx.execute(
                "INSERT OR IGNORE INTO quarantine VALUES (?1, ?2, ?3, ?4, ?5)",
                params![project, revision, deploy, reason, now_ms()],
            )?;
            for (stack, service) in services {
                tx.execute(
                    "INSERT OR REPLACE INTO quarantine_services VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    params![project, revision, stack, service, deploy, reason],
                )?;
            }
            tx.commit()
        })
    }

    /// Ends the quarantine of `revision`, all its services.
    pub fn release_quarantine(&self, project: &str, revision: &str) -> Result<(), StoreError> {
        self.with(|c| {
            let tx = c.unchecked_transaction()?;
            tx.execute(
                "DELETE FROM quarantine WHERE project = ?1 AND revision = ?2",
                params![project, revision],
            )?;
            tx.execute(
                "DELETE FROM quarantine_services WHERE project = ?1 AND revision = ?2",
                params![project, revision],
            )?;
            tx.commit()
        })
    }

    /// Ends the quarantine of `services` of `revision` (a retry carried them out); the
    /// revision's quarantine ends with its last service. A whole-revision quarantine (no
    /// services recorded) is left as it is.
    pub fn release_quarantined_services(
        &self,
        project: &str,
        revision: &str,
        services: &[(String, String)],
    ) -> Result<(), StoreError> {
        self.with(|c| {
            let tx = c.unchecked_transaction()?;
            let mut released = 0;
            for (stack, service) in services {
                released += tx.execute(
                    "DELETE FROM quarantine_services WHERE project = ?1 AND revision = ?2 AND stack = ?3 AND service = ?4",
                    params![project, revision, stack, service],
                )?;
            }
            let left: i64 = tx.query_row(
                "SELECT COUNT(*) FROM quarantine_services WHERE project = ?1 AND revision = ?2",
                params![project, revision],
                |r| r.get(0),
            )?;
            if released > 0 && left == 0 {
                tx.execute(
                    "DELETE FROM quarantine WHERE project = ?1 AND revision = ?2",
                    params![project, revision],
                )?;
            }
            tx.commit()
        })
    }

    pub fn quarantined(
        &self,
        project: &str,
        revision: &str,
    ) -> Result<Option<Quarantine>, StoreError> {
        Ok(self
            .quarantines(project, Some(revision))?
            .into_iter()
            .next())
    }

    pub fn quarantine_list(&self, project: &str) -> Result<Vec<Quarantine>, StoreError> {
        self.quarantines(project, None)
    }

    /// The quarantines of `project` (of `revision` only, when given), newest first, each
    /// with its services.
    fn quarantines(
        &self,
        project: &str,
        revision: Option<&str>,
    ) -> Result<Vec<Quarantine>, StoreError> {
        self.with(|c| {
            let mut st = c.prepare(
                "SELECT revision, deploy_id, reason, at_ms FROM quarantine
                 WHERE project = ?1 AND (?2 IS NULL OR revision = ?2) ORDER BY at_ms DESC",
            )?;
            let mut all: Vec<Quarantine> = st
                .query_map(params![project, revision], |r| {
                    Ok(Quarantine {
                        revision: r.get(0)?,
                        deploy_id: r.get(1)?,
                        reason: r.get(2)?,
                        at_ms: r.get(3)?,
                        services: Vec::new(),
                    })
                })?
                .collect::<rusqlite::Result<_>>()?;
            let mut svc = c.prepare(
                "SELECT stack, service, deploy_id, reason FROM quarantine_services
                 WHERE project = ?1 AND revision = ?2 ORDER BY stack, service",
            )?;
            for q in &mut all {
                q.services = svc
                    .query_map(params![project, q.revision], |r| {
                        Ok(QuarantinedService {
                            stack: r.get(0)?,
                            service: r.get(1)?,
                            deploy_id: r.get(2)?,
                            reason: r.get(3)?,
                        })
                    })?
                    .collect::<rusqlite::Result<_>>()?;
            }
            Ok(all)
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
}
