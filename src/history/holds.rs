//! Quarantined revisions and holds of a project.

use rusqlite::{params, OptionalExtension};

use super::{now_ms, Hold, Quarantine, Store, StoreError};

impl Store {
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
}
