//! Putting back in place what was changed by hand (a plan's [`Fix`]es): no new container, no
//! downtime beyond what the change itself caused.

use bollard::models::{
    ContainerUpdateBody, EndpointSettings, NetworkConnectRequest, NetworkDisconnectRequest,
    RestartPolicy, RestartPolicyNameEnum,
};
use bollard::Docker;

use super::replace::rename;
use super::{owned, project_of, step};
use crate::apply::{ApplyError, StepError};
use crate::plan::drift::Fix;
use crate::spec::DesiredContainer;

/// Makes `fixes` on `c`'s container, in order. Ownership is checked by label right before
/// each fix, which then acts on the id.
///
/// # Errors
/// [`ApplyError::NotOwned`] (nothing more is changed), a missing container, or the Engine's
/// refusal of a fix.
pub async fn correct(
    docker: &Docker,
    c: &DesiredContainer,
    fixes: &[Fix],
) -> Result<(), ApplyError> {
    let project = project_of(c);
    for fix in fixes {
        if let Fix::Rename { from } = fix {
            rename(docker, project, from, &c.name).await?;
            continue;
        }
        let Some(id) = owned(docker, project, &c.name).await? else {
            return Err(ApplyError::Step {
                container: c.name.clone(),
                what: "correct",
                source: StepError::Check("no such container".into()),
            });
        };
        match fix {
            Fix::Rename { .. } => {}
            Fix::Disconnect { network } => docker
                .disconnect_network(
                    network,
                    NetworkDisconnectRequest {
                        container: id,
                        force: Some(false),
                    },
                )
                .await
                .map_err(step(&c.name, "disconnecting network"))?,
            Fix::Connect { network, aliases } => docker
                .connect_network(
                    network,
                    NetworkConnectRequest {
                        container: id,
                        endpoint_config: Some(EndpointSettings {
                            aliases: Some(aliases.clone()),
                            ..Default::default()
                        }),
                    },
                )
                .await
                .map_err(step(&c.name, "reconnecting network"))?,
            Fix::Restart { restart } => {
                let name = match restart.as_str() {
                    "always" => RestartPolicyNameEnum::ALWAYS,
                    "unless-stopped" => RestartPolicyNameEnum::UNLESS_STOPPED,
                    "on-failure" => RestartPolicyNameEnum::ON_FAILURE,
                    _ => RestartPolicyNameEnum::NO,
                };
                docker
                    .update_container(
                        &id,
                        ContainerUpdateBody {
                            restart_policy: Some(RestartPolicy {
                                name: Some(name),
                                maximum_retry_count: None,
                            }),
                            ..Default::default()
                        },
                    )
                    .await
                    .map_err(step(&c.name, "updating restart policy"))?
            }
        }
    }
    Ok(())
}
