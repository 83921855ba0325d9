//! Replacing a container in place, with the old one set aside and put back on failure.

use bollard::query_parameters::RenameContainerOptions;
use bollard::Docker;

use super::create::{create_and_start, start};
use super::{owned, project_of, remove, step, stop};
use crate::apply::{ApplyError, StepError};
use crate::spec::DesiredContainer;

/// Renames `from` to `to` if `project` owns `from`.
pub(super) async fn rename(
    docker: &Docker,
    project: &str,
    from: &str,
    to: &str,
) -> Result<(), ApplyError> {
    let Some(id) = owned(docker, project, from).await? else {
        return Err(ApplyError::Step {
            container: from.to_string(),
            what: "rename",
            source: StepError::Check("no such container".into()),
        });
    };
    docker
        .rename_container(
            &id,
            RenameContainerOptions {
                name: to.to_string(),
            },
        )
        .await
        .map_err(step(from, "rename"))
}

/// Replaces a container: the old one is stopped and set aside under another name, the new one
/// created and started and then `verify`d (ready, hooks passed); if any of that fails the new
/// one is removed and the old one put back and started again.
///
/// # Errors
/// [`ApplyError::NotOwned`] before anything is touched when the aside name is held by a
/// container this project does not own.
pub async fn replace(
    docker: &Docker,
    c: &DesiredContainer,
    verify: impl std::future::Future<Output = Result<(), ApplyError>>,
) -> Result<(), ApplyError> {
    let project = project_of(c);
    let aside = c.aside_name();
    // A leftover from an interrupted run is ours (same labels); clear it. Anything else
    // holding the name stops the recreate here, before the old container is touched.
    remove(docker, project, &aside).await?;
    let grace = Some(c.stop_grace());
    stop(docker, project, &c.name, grace).await?;
    rename(docker, project, &c.name, &aside)
        .await
        .map_err(|e| match e {
            ApplyError::Step {
                container, source, ..
            } => ApplyError::Step {
                container,
                what: "rename old container",
                source,
            },
            other => other,
        })?;
    let created = create_and_start(docker, c).await;
    let result = match created {
        Ok(()) => verify.await,
        Err(e) => Err(e),
    };
    match result {
        Ok(()) => {
            let _ = remove(docker, project, &aside).await;
            Ok(())
        }
        Err(err)
            if matches!(
                err,
                ApplyError::Hook { .. } | ApplyError::Unhealthy { .. } | ApplyError::Smoke { .. }
            ) =>
        {
            let _ = remove(docker, project, &c.name).await;
            let restored = restore(docker, project, &aside, &c.name).await;
            Err(ApplyError::RolledBack {
                cause: Box::new(err),
                note: match restored {
                    Ok(()) => format!(
                        "the new {} was removed; the previous container was restored and started",
                        c.name
                    ),
                    Err(e) => format!(
                        "restoring the previous container also failed: {e} (it is kept as {aside} until the next apply)"
                    ),
                },
            })
        }
        Err(err) => {
            let _ = remove(docker, project, &c.name).await;
            let restored = restore(docker, project, &aside, &c.name).await;
            Err(ApplyError::Step {
                container: c.name.clone(),
                what: "recreate",
                source: StepError::Recreate {
                    cause: Box::new(err),
                    restored: match restored {
                        Ok(()) => "the previous container was restored and started".into(),
                        Err(e) => format!("restoring the previous container also failed: {e} (it is kept as {aside})"),
                    },
                },
            })
        }
    }
}

async fn restore(
    docker: &Docker,
    project: &str,
    aside: &str,
    name: &str,
) -> Result<(), ApplyError> {
    rename(docker, project, aside, name).await?;
    start(docker, name).await
}
