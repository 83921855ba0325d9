//! Registry credentials found the way the docker CLI and compose find them, for the pulls and
//! registry questions dockhand asks the Engine (the Engine itself keeps no login: the client
//! sends one with each request, in `X-Registry-Auth`).
//!
//! The file is a docker CLI `config.json`: `--registry-auth FILE` (`DOCKHAND_REGISTRY_AUTH`),
//! else `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`. Its `auths`, `credsStore`
//! and `credHelpers` are read by the `docker_credential` crate, which runs the
//! `docker-credential-*` helpers (their `get` protocol). The file is read again for each
//! image, so a `docker login` on the host takes effect on the next pass.
//!
//! # Guarantees
//! - A credential is only ever handed to bollard for one request. It is not `Debug`-printed,
//!   logged, or put into an error: errors name the registry and the kind of failure only
//!   (a helper's own output is left out, as it may echo what it was given).

use std::path::{Path, PathBuf};

use bollard::auth::DockerCredentials;
use docker_credential::{CredentialRetrievalError, DockerCredential};

use crate::model::image::ImageRef;

/// The registry name Docker Hub's logins are stored under.
const DOCKER_HUB: &str = "https://index.docker.io/v1/";

/// Where this host's registry logins are read from (decided once, from the settings).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RegistryAuth {
    /// `None`: no file to read (no `--registry-auth`, and neither `DOCKER_CONFIG` nor `HOME`).
    file: Option<PathBuf>,
    /// Named with `--registry-auth`: a missing file is an error, not "no logins".
    explicit: bool,
}

/// A login that exists but cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot use the login for {registry} in {file}: {why}\n  hint: run `docker login {registry}` on this host again, or fix the file (--registry-auth / DOCKER_CONFIG)")]
pub struct AuthError {
    pub registry: String,
    pub file: String,
    pub why: String,
}

impl RegistryAuth {
    /// `flag` (`--registry-auth`), else the docker CLI's own file from the environment.
    pub fn resolve(flag: Option<&Path>) -> RegistryAuth {
        match flag {
            Some(f) => RegistryAuth {
                file: Some(f.to_path_buf()),
                explicit: true,
            },
            None => RegistryAuth {
                file: std::env::var_os("DOCKER_CONFIG")
                    .map(PathBuf::from)
                    .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".docker")))
                    .map(|dir| dir.join("config.json")),
                explicit: false,
            },
        }
    }

    /// The file logins are read from, if any.
    pub fn file(&self) -> Option<&Path> {
        self.file.as_deref()
    }

    /// The credentials for the registry of `image` (a reference as in a stack file), or
    /// `None` when the file has no login for it (the image is then asked for anonymously).
    ///
    /// # Errors
    /// [`AuthError`]: the file named with `--registry-auth` is missing or unreadable, the
    /// login in it cannot be decoded, or its credential helper failed.
    pub async fn for_image(&self, image: &str) -> Result<Option<DockerCredentials>, AuthError> {
        let Some(file) = self.file.clone() else {
            return Ok(None);
        };
        let registry = registry_of(image);
        let fail = |why: String| AuthError {
            registry: registry.clone(),
            file: file.display().to_string(),
            why,
        };
        let (path, server, explicit) = (file.clone(), registry.clone(), self.explicit);
        // A credential helper is a process dockhand waits for: off the async workers, with
        // the read of the file.
        let found = tokio::task::spawn_blocking(move || match std::fs::read(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !explicit => Ok(None),
            Err(e) => Err(e.to_string()),
            Ok(bytes) => Ok(Some(docker_credential::get_credential_from_reader(
                bytes.as_slice(),
                &server,
            ))),
        })
        .await
        .map_err(|e| fail(e.to_string()))?
        .map_err(fail)?;
        let Some(found) = found else {
            return Ok(None);
        };
        let credential = match found {
            Ok(c) => c,
            Err(CredentialRetrievalError::NoCredentialConfigured) => return Ok(None),
            Err(e) => return Err(fail(describe(&e))),
        };
        let serveraddress = Some(registry.clone());
        Ok(Some(match credential {
            DockerCredential::UsernamePassword(username, password) => DockerCredentials {
                username: Some(username),
                password: Some(password),
                serveraddress,
                ..Default::default()
            },
            DockerCredential::IdentityToken(token) => DockerCredentials {
                identitytoken: Some(token),
                serveraddress,
                ..Default::default()
            },
        }))
    }
}

/// The crate's error without a helper's output (which may echo a secret).
fn describe(e: &CredentialRetrievalError) -> String {
    match e {
        CredentialRetrievalError::HelperFailure { helper, .. } => {
            format!("the credential helper {helper} failed")
        }
        CredentialRetrievalError::HelperCommunicationError => {
            "its credential helper could not be run (is docker-credential-… on PATH?)".into()
        }
        other => other.to_string(),
    }
}

/// The registry host of `image` as the docker CLI keys its logins: the first path component
/// when it names a host (has a `.` or `:`, or is `localhost`), else Docker Hub.
pub fn registry_of(image: &str) -> String {
    let repository = ImageRef::parse(image)
        .map(|r| r.repository)
        .unwrap_or_else(|_| image.to_string());
    match repository.split_once('/') {
        Some((first, _)) if first.contains(['.', ':']) || first == "localhost" => first.to_string(),
        _ => DOCKER_HUB.to_string(),
    }
}

/// Whether the Engine's answer means the registry wants a login it did not get (or refused
/// the one it got). The Engine passes the registry's refusal on as text only (`no basic auth
/// credentials`, `unauthorized: …`, `denied: …`, Docker Hub's `pull access denied … may
/// require 'docker login'`), often under a 500, so the text is all there is to go by.
pub fn is_unauthorized(e: &bollard::errors::Error) -> bool {
    match e {
        bollard::errors::Error::DockerResponseServerError {
            status_code,
            message,
        } => {
            let m = message.to_ascii_lowercase();
            *status_code == 401
                || m.contains("no basic auth credentials")
                || m.contains("unauthorized")
                || m.contains("authentication required")
                || m.contains("denied")
        }
        _ => false,
    }
}

/// The line every "needs a login" report carries.
pub fn login_hint(image: &str) -> String {
    let registry = registry_of(image);
    format!("log in to {registry} on this host: `docker login {registry}` (dockhand reads $DOCKER_CONFIG/config.json or ~/.docker/config.json, or the file --registry-auth names)")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn engine(status_code: u16, message: &str) -> bollard::errors::Error {
        bollard::errors::Error::DockerResponseServerError {
            status_code,
            message: message.into(),
        }
    }

    #[test]
    fn the_engines_login_refusals_are_unauthorized_and_nothing_else_is() {
        for (code, m) in [
            (
                500,
                "Get \"http://r/v2/a/manifests/v1\": no basic auth credentials",
            ),
            (401, "whatever the registry said"),
            (500, "unauthorized: authentication required"),
            (500, "denied: requested access to the resource is denied"),
            (
                404,
                "pull access denied for x, repository does not exist or may require 'docker login'",
            ),
        ] {
            assert!(is_unauthorized(&engine(code, m)), "{code} {m}");
        }
        for (code, m) in [
            (404, "manifest unknown"),
            (
                500,
                "received unexpected HTTP status: 500 Internal Server Error",
            ),
        ] {
            assert!(!is_unauthorized(&engine(code, m)), "{code} {m}");
        }
    }

    #[test]
    fn registry_of_follows_the_docker_cli() {
        assert_eq!(registry_of("127.0.0.1:5000/demo/web:1"), "127.0.0.1:5000");
        assert_eq!(registry_of("ghcr.io/acme/api@sha256:00"), "ghcr.io");
        assert_eq!(registry_of("localhost/x"), "localhost");
        assert_eq!(registry_of("library/busybox:1"), DOCKER_HUB);
        assert_eq!(registry_of("busybox"), DOCKER_HUB);
    }
}
