//! Argo CD's two words for "how is it going", decided in one place for `status --json` and the
//! agent's `/status`: **sync** (does the host hold what the desired state says?) and
//! **health** (does what runs work?). They are separate questions, as in Argo: a container
//! with the desired spec that Docker calls unhealthy is `Synced` and `Degraded`, a container
//! that would be recreated but serves well is `OutOfSync` and `Healthy`. (dockhand's own
//! `in_sync` folds health in: it is true only when sync is `Synced` and nothing with the
//! desired spec is unhealthy.)
//!
//! Health of one container ([`container_health`]):
//!
//! | the container                                   | health        |
//! |-------------------------------------------------|---------------|
//! | does not exist                                  | `Missing`     |
//! | Docker health `unhealthy`, or the plan lists it unhealthy (`starting` past its start period) | `Degraded` |
//! | Docker health `starting` (within its start period) | `Progressing` |
//! | paused (`docker pause`)                         | `Suspended`   |
//! | restarting (crash loop)                         | `Degraded`    |
//! | a job: running / exited 0 / exited non-zero     | `Progressing` / `Healthy` / `Degraded` |
//! | an idle blue/green color (kept for rollback)    | `Healthy`     |
//! | running (healthy or without a healthcheck)      | `Healthy`     |
//! | any other service not running (stopped, created, dead) | `Degraded` |
//!
//! A whole project ([`overall`]) is `OutOfSync` when the plan has any action or conflict, and
//! its health is the worst of its containers' in Argo's order (`Healthy` < `Suspended` <
//! `Progressing` < `Missing` < `Degraded`), at least `Suspended` while a rollback holds the
//! project on an earlier revision (it waits for an outside event: a new commit or `dockhand
//! resume`). Pure: no I/O.

use serde::Serialize;

use crate::model::actual::{ActualContainer, Health, RunState};

/// Whether the host holds what the desired state says (Argo's sync status).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum SyncStatus {
    Synced,
    OutOfSync,
}

/// Whether what runs works (Argo's health status), in Argo's order from best to worst, so
/// `max` is the worse of two.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Default)]
pub enum HealthStatus {
    #[default]
    Healthy,
    /// Waiting for an outside event on purpose: a paused container, a rollback hold.
    Suspended,
    /// Not healthy yet, but may become so by itself (a healthcheck starting, a job running).
    Progressing,
    /// Should exist and does not.
    Missing,
    /// Exists and does not work, and will not by itself.
    Degraded,
}

/// What kind of container is judged: a job runs to completion; an idle blue/green color is
/// stopped on purpose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Service,
    Job,
    IdleColor,
}

/// The sync status of one container: `OutOfSync` when the plan changes it or a conflict
/// blocks it.
pub fn container_sync(changed: bool) -> SyncStatus {
    if changed {
        SyncStatus::OutOfSync
    } else {
        SyncStatus::Synced
    }
}

/// The health of one container (the table in the module docs). `listed_unhealthy`: the plan
/// lists it in `Plan::unhealthy` (unhealthy, or `starting` past its start period).
pub fn container_health(
    kind: Kind,
    listed_unhealthy: bool,
    c: Option<&ActualContainer>,
) -> HealthStatus {
    let Some(c) = c else {
        return HealthStatus::Missing;
    };
    if listed_unhealthy || c.health() == Health::Unhealthy {
        return HealthStatus::Degraded;
    }
    match (kind, c.state) {
        (_, RunState::Paused) => HealthStatus::Suspended,
        (_, RunState::Restarting) => HealthStatus::Degraded,
        (_, RunState::Running) if c.health() == Health::Starting => HealthStatus::Progressing,
        (Kind::Job, RunState::Running) => HealthStatus::Progressing,
        (Kind::Job, _) if c.exit_code() == Some(0) => HealthStatus::Healthy,
        (Kind::IdleColor, _) | (_, RunState::Running) => HealthStatus::Healthy,
        _ => HealthStatus::Degraded,
    }
}

/// The whole project's sync and health: `changes` — the plan has actions or conflicts;
/// `containers` — each container's health; `held` — a rollback holds the project.
pub fn overall(
    changes: bool,
    containers: impl IntoIterator<Item = HealthStatus>,
    held: bool,
) -> (SyncStatus, HealthStatus) {
    let floor = if held {
        HealthStatus::Suspended
    } else {
        HealthStatus::Healthy
    };
    let health = containers.into_iter().fold(floor, Ord::max);
    (container_sync(changes), health)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A listed container in `state` with Docker's `status` text.
    pub(crate) fn c(state: RunState, status: &str) -> ActualContainer {
        ActualContainer {
            id: "1".into(),
            name: "x".into(),
            state,
            status: status.into(),
            image: "i".into(),
            labels: Default::default(),
            attached: Default::default(),
            inspected: None,
        }
    }

    #[test]
    fn container_health_follows_argo_meanings() {
        use HealthStatus::*;
        let h =
            |kind, listed, state, status| container_health(kind, listed, Some(&c(state, status)));
        assert_eq!(container_health(Kind::Service, false, None), Missing);
        assert_eq!(
            h(Kind::Service, false, RunState::Running, "Up 3 minutes"),
            Healthy
        );
        assert_eq!(
            h(
                Kind::Service,
                false,
                RunState::Running,
                "Up 3 minutes (healthy)"
            ),
            Healthy
        );
        assert_eq!(
            h(
                Kind::Service,
                false,
                RunState::Running,
                "Up 3 minutes (unhealthy)"
            ),
            Degraded
        );
        assert_eq!(
            h(
                Kind::Service,
                false,
                RunState::Running,
                "Up 2 seconds (health: starting)"
            ),
            Progressing
        );
        assert_eq!(
            h(
                Kind::Service,
                true,
                RunState::Running,
                "Up 9 minutes (health: starting)"
            ),
            Degraded,
            "starting past its start period"
        );
        assert_eq!(
            h(
                Kind::Service,
                false,
                RunState::Exited,
                "Exited (0) 3 seconds ago"
            ),
            Degraded,
            "stopped by hand"
        );
        assert_eq!(
            h(
                Kind::Service,
                false,
                RunState::Restarting,
                "Restarting (1) 1 second ago"
            ),
            Degraded
        );
        assert_eq!(
            h(
                Kind::Service,
                false,
                RunState::Paused,
                "Up 3 minutes (Paused)"
            ),
            Suspended
        );
        assert_eq!(
            h(
                Kind::IdleColor,
                false,
                RunState::Exited,
                "Exited (143) 3 minutes ago"
            ),
            Healthy
        );
        assert_eq!(
            h(
                Kind::Job,
                false,
                RunState::Exited,
                "Exited (0) 3 seconds ago"
            ),
            Healthy
        );
        assert_eq!(
            h(
                Kind::Job,
                false,
                RunState::Exited,
                "Exited (1) 3 seconds ago"
            ),
            Degraded
        );
        assert_eq!(
            h(Kind::Job, false, RunState::Running, "Up 1 second"),
            Progressing
        );
    }

    #[test]
    fn overall_is_the_worst_and_a_hold_is_suspended() {
        use HealthStatus::*;
        assert_eq!(overall(false, [], false), (SyncStatus::Synced, Healthy));
        assert_eq!(
            overall(false, [Healthy, Healthy], true),
            (SyncStatus::Synced, Suspended)
        );
        assert_eq!(
            overall(true, [Healthy, Missing, Progressing], true),
            (SyncStatus::OutOfSync, Missing)
        );
        assert_eq!(overall(false, [Missing, Degraded], false).1, Degraded);
        assert_eq!(
            serde_json::to_value(overall(true, [Progressing], false)).unwrap(),
            serde_json::json!(["OutOfSync", "Progressing"])
        );
    }
}
