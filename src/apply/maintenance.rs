//! The maintenance container of a routed service (seed 000's cutover page): it takes the
//! service's route while a release has downtime, and leaves once the new version serves (or
//! the old one serves again).
//!
//! Its router has the route's rule at a priority above every route's, so while it is healthy
//! Traefik sends it every request. It leaves the way a retired color does: its drain flag
//! makes its healthcheck fail, Traefik drops it, and only then is it stopped and removed.

use std::time::Duration;

use bollard::Docker;

use super::container;
use super::progress::Progress;
use super::release::{drain_container, wait_routing, Routed};
use super::ApplyError;
use crate::spec::MaintenanceSpec;

fn routed<'a>(m: &'a MaintenanceSpec, api: Option<&'a str>, drain_ms: u64) -> Routed<'a> {
    Routed {
        name: &m.container.name,
        service: Some(&m.traefik_service),
        network: m.proxy_network.as_deref(),
        api,
        drain_ms,
    }
}

/// Brings the maintenance container up (or back, after an interrupted release) and waits
/// until Traefik routes to it.
pub async fn up(
    docker: &Docker,
    m: &MaintenanceSpec,
    api: Option<&str>,
    drain_ms: u64,
    progress: &Progress,
) -> Result<(), ApplyError> {
    let c = &m.container;
    let name = c.name.as_str();
    progress.line(&format!("{name}: taking the route for the release"));
    // A leftover of an interrupted release may hold an older spec (or a set drain flag):
    // start from a fresh one.
    let project = container::project_of(c);
    container::stop_and_remove(docker, project, name, Some(c.stop_grace())).await?;
    progress
        .step(name, "maintenance up", async {
            container::create_and_start(docker, c).await?;
            container::wait_ready(docker, c, progress).await?;
            wait_routing(docker, &routed(m, api, drain_ms), true, progress).await
        })
        .await
}

/// Takes the maintenance container out of the proxy and removes it, after the release ended
/// with `result`. A release error wins over a failure to leave (which is reported as a line).
pub async fn leave(
    docker: &Docker,
    m: &MaintenanceSpec,
    api: Option<&str>,
    drain_ms: u64,
    result: Result<(), ApplyError>,
    progress: &Progress,
) -> Result<(), ApplyError> {
    let name = m.container.name.as_str();
    let left = progress
        .step(name, "maintenance down", async {
            drain_container(
                docker,
                &routed(m, api, drain_ms),
                Duration::from_secs(15),
                progress,
            )
            .await?;
            container::stop_and_remove(
                docker,
                container::project_of(&m.container),
                name,
                Some(m.container.stop_grace()),
            )
            .await
        })
        .await;
    match (result, left) {
        (Ok(()), Ok(())) => {
            progress.line(&format!("{name}: route handed back, removed"));
            Ok(())
        }
        (Ok(()), Err(e)) => Err(e),
        (Err(e), Ok(())) => {
            progress.line(&format!(
                "{name}: route handed back after the failure, removed"
            ));
            Err(e)
        }
        (Err(e), Err(left)) => {
            progress.line(&format!(
                "{name}: could not take it down ({left}); it still holds the route: docker rm -f {name} once the service is fixed"
            ));
            Err(e)
        }
    }
}
