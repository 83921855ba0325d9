//! What a registry serves for a tag, asked through the Engine (`GET /distribution/{name}/json`),
//! so that the Engine's own registry settings (insecure registries, mirrors) apply and dockhand
//! carries no registry client of its own.

use std::time::Duration;

use bollard::Docker;
use futures_util::stream::{self, StreamExt};

use super::auth::{self, RegistryAuth};

/// The digest `reference` (`repo:tag`) points to in its registry now, asked with this host's
/// login for that registry (see [`RegistryAuth`]). A refusal for want of a login says so
/// (`log in to REGISTRY on this host: …`).
pub async fn resolve(
    docker: &Docker,
    logins: &RegistryAuth,
    reference: &str,
) -> Result<String, String> {
    let credentials = logins
        .for_image(reference)
        .await
        .map_err(|e| e.to_string())?;
    let ask = docker.inspect_registry_image(reference, credentials);
    match tokio::time::timeout(Duration::from_secs(20), ask).await {
        Err(_) => Err(format!(
            "the registry of {reference} did not answer within 20s"
        )),
        Ok(Err(e)) if auth::is_unauthorized(&e) => Err(format!(
            "unauthorized: {}: {}",
            auth::login_hint(reference),
            super::short_error(&e)
        )),
        Ok(Err(bollard::errors::Error::DockerResponseServerError {
            status_code,
            message,
        })) => Err(format!("{message} ({status_code})")),
        Ok(Err(e)) => Err(e.to_string()),
        Ok(Ok(info)) => info
            .descriptor
            .digest
            .filter(|d| d.starts_with("sha256:"))
            .ok_or_else(|| format!("the registry gave no digest for {reference}")),
    }
}

/// [`resolve`] for each reference, a few at a time, in the order given.
pub async fn resolve_all(
    docker: &Docker,
    logins: &RegistryAuth,
    references: &[String],
) -> Vec<Result<String, String>> {
    stream::iter(references.iter().map(|r| resolve(docker, logins, r)))
        .buffered(4)
        .collect()
        .await
}
