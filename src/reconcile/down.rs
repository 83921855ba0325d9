//! `dockhand down`: decommissioning a project on this host, as one recorded deploy.
//!
//! The plan is [`crate::plan::decommission`] (the one planner against an empty desired state):
//! every container and network whose labels say this project owns it, its volumes only when
//! asked. It needs no source, only the project's name, so a host whose repository is gone can
//! still be cleared. The caller holds the apply lock from before [`plan`] until [`record`]
//! returned, as for any change.

use std::path::Path;
use std::sync::Arc;

use crate::history::{ApplyLock, Store};
use crate::model::actual::Actual;
use crate::plan::Plan;
use crate::spec::Desired;

use super::record::{self, Deploy, Recorded};
use super::Error;

/// The revision a decommission is recorded under (there is no commit to name). `dockhand
/// rollback` never picks it as a target.
pub const REVISION: &str = "down";

/// A decommission, planned.
pub struct Down {
    /// Nothing but the project (and the host's marker key): what is wanted after a down.
    pub desired: Desired,
    pub actual: Actual,
    pub plan: Plan,
}

/// Refuses while an agent listens on `state_dir`'s control socket: it follows a source that
/// still holds the project's stacks and would deploy them again at its next pass.
///
/// # Errors
/// [`Error::AgentRuns`].
pub async fn refuse_if_agent(state_dir: &Path) -> Result<(), Error> {
    let socket = crate::daemon::control::socket_path(state_dir);
    match tokio::net::UnixStream::connect(&socket).await {
        Ok(_) => Err(Error::AgentRuns {
            socket: socket.display().to_string(),
        }),
        Err(_) => Ok(()),
    }
}

/// Reads what `project` owns on the Engine and plans its removal (`volumes`: its volumes
/// too). Changes nothing.
///
/// # Errors
/// [`Error::Store`] (the marker key), [`Error::Engine`].
pub async fn plan(
    docker: &bollard::Docker,
    project: &str,
    state_dir: &Path,
    volumes: bool,
) -> Result<Down, Error> {
    let marker_key = crate::history::marker_key(state_dir)?;
    let mut actual = crate::observe::observe(docker, project, &[], &marker_key).await?;
    let plan = super::pass::plan_with_network_users(docker, &mut actual, |a| {
        crate::plan::decommission(project, a, volumes)
    })
    .await?;
    Ok(Down {
        desired: Desired {
            project: project.to_string(),
            marker_key,
            ..Desired::default()
        },
        actual,
        plan,
    })
}

/// Carries out `down.plan` as one recorded deploy (revision [`REVISION`], trigger `down`),
/// and ends a rollback hold of the project when it succeeded: nothing is held any more.
///
/// # Errors
/// As [`record::apply_deploy`] (only when nothing could be recorded).
pub async fn record(
    docker: &bollard::Docker,
    store: &Arc<Store>,
    lock: &ApplyLock,
    down: &Down,
    origin: &str,
) -> Result<Recorded, Error> {
    let deploy = Deploy {
        revision: REVISION.to_string(),
        origin,
        plan: &down.plan,
        desired: &down.desired,
        actual: &down.actual,
        options: crate::apply::ApplyOptions::default(),
        // A decommission creates nothing, so it holds no env value to mask.
        redactor: crate::apply::progress::Redactor::new(Vec::new()),
    };
    let recorded = record::apply_deploy(docker, store, lock, &deploy, "down").await?;
    if matches!(recorded, Recorded::Succeeded { .. }) {
        store.release_hold(&down.desired.project)?;
    }
    Ok(recorded)
}
