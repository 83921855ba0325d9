//! What a registry serves for a tag, asked through the Engine (`GET /distribution/{name}/json`),
//! so that the Engine's own registry settings (insecure registries, mirrors) apply and dockhand
//! carries no registry client of its own.

use std::time::Duration;

use bollard::Docker;
use futures_util::stream::{self, StreamExt};

/// The digest `reference` (`repo:tag`) points to in its registry now.
pub async fn resolve(docker: &Docker, reference: &str) -> Result<String, String> {
    let ask = docker.inspect_registry_image(reference, None);
    match tokio::time::timeout(Duration::from_secs(20), ask).await {
        Err(_) => Err(format!(
            "the registry of {reference} did not answer within 20s"
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
pub async fn resolve_all(docker: &Docker, references: &[String]) -> Vec<Result<String, String>> {
    stream::iter(references.iter().map(|r| resolve(docker, r)))
        .buffered(4)
        .collect()
        .await
}
