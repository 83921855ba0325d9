//! What can go wrong in an apply: [`ApplyError`] and the causes it carries ([`StepError`],
//! [`PullError`]).

use super::preflight;
use crate::observe::EngineError;

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// Conflicts block the plan; the text counts them by kind ([`crate::plan::conflict_summary`]).
    #[error("{0}; nothing was changed\n  hint: see the plan above; resolve each `!` line and run apply again")]
    Conflicts(String),
    #[error("preflight failed; nothing was changed:\n{}", preflight::list(.0))]
    Preflight(Vec<preflight::Problem>),
    /// The plan names something the desired state it is applied with does not hold: they
    /// come from different revisions.
    #[error("the plan does not fit the desired state it is applied with: {what}; nothing was changed\n  hint: plan and apply from the same revision (`dockhand apply` plans afresh)")]
    PlanMismatch { what: String },
    /// The registry wants a login this host does not have (or refused it); `source` is
    /// [`PullError::Pull`] or [`PullError::Login`].
    #[error("cannot pull {image}: unauthorized: {source}; nothing was changed\n  hint: {}", crate::observe::auth::login_hint(.image))]
    PullUnauthorized {
        image: String,
        #[source]
        source: PullError,
    },
    #[error("cannot pull {image}: {source}; nothing was changed\n  hint: check that the tag and digest exist in the registry (the digest must be the manifest digest the registry serves) and that the registry is reachable")]
    Pull {
        image: String,
        #[source]
        source: PullError,
    },
    #[error("{container}: {what} failed: {source}")]
    Step {
        container: String,
        what: &'static str,
        #[source]
        source: StepError,
    },
    #[error("job {container} did not finish within its timeout of {}: it was stopped and removed\n  hint: raise `timeout:` on the job if it needs longer, or find why it hangs (run its command by hand)", crate::model::duration::Span::new(*.after))]
    JobTimeout {
        container: String,
        after: std::time::Duration,
    },
    #[error("{container} did not become healthy: {message}\n  hint: docker logs {container} shows its output; the container was left running for inspection")]
    Unhealthy { container: String, message: String },
    #[error("release to {container} stopped at the health gate: {cause}\n  {}\n  hint: docker logs {container} shows why; fix the image or its health settings and commit again", match .serving { Some(s) => format!("{s} was not touched and still serves"), None => "no other color was serving".to_string() })]
    GateFailed {
        container: String,
        serving: Option<String>,
        #[source]
        cause: Box<ApplyError>,
    },
    #[error("{container}: hook {hook} failed: {message}{}\n  hint: {}", if .output.trim().is_empty() { String::new() } else { format!("\n  last output:\n{}", .output.lines().map(|l| format!("    | {l}")).collect::<Vec<_>>().join("\n")) }, if *.engine { "the Engine failed under the hook, not the hook: once `docker info` answers, apply again (the revision is not quarantined)" } else { "the hook's full output is in `dockhand history`; fix the cause and commit again (or `dockhand apply --retry`)" })]
    Hook {
        container: String,
        hook: String,
        message: String,
        output: String,
        /// The Engine failed under the step (e.g. went away), not the step itself.
        engine: bool,
    },
    #[error("{container}: smoke check {check} failed: {message}\n  hint: fix the new version (or the check) and commit again; `dockhand history` has the step")]
    Smoke {
        container: String,
        check: String,
        message: String,
    },
    /// Preflight failed for some services: they (and their dependents) were skipped, and
    /// everything else was applied.
    #[error("{} service(s) skipped, everything else was applied:\n{}\n  hint: fix what each names (push the image, free the port, …) and commit again; the next pass applies them", .skipped.len(), .skipped.iter().map(|s| format!("  {}/{}: {}", s.stack, s.service, s.reason.replace('\n', "\n    "))).collect::<Vec<_>>().join("\n"))]
    Partial { skipped: Vec<crate::plan::Skipped> },
    /// A failed change was undone: `note` says what serves again.
    #[error("{cause}\n  {note}")]
    RolledBack {
        #[source]
        cause: Box<ApplyError>,
        note: String,
    },
    #[error("{name}: a container dockhand does not own holds this name (id {id}; {owner}); it was not stopped, renamed or removed\n  hint: dockhand only touches containers carrying its project's labels: if it is not needed, remove or rename it yourself (docker rm / docker rename {name} …), then apply again")]
    NotOwned {
        name: String,
        id: String,
        /// Whose it is, as far as its labels say.
        owner: String,
    },
    #[error(transparent)]
    Engine(#[from] EngineError),
}

/// Why a step ([`ApplyError::Step`]) failed.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    /// The Engine refused or failed the call (said plainly when it stopped answering).
    #[error("{}", crate::observe::describe(.0))]
    Engine(#[source] bollard::errors::Error),
    /// A file-system call on this host failed; `what` names the call and its path.
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    /// A host path a commit names failed its check or its no-follow file operation.
    #[error("{0}")]
    Host(#[source] crate::host::HostPathError),
    /// Something dockhand checks did not hold (an exit code, a deadline, an answer), in words.
    #[error("{0}")]
    Check(String),
    /// The new container of a recreate failed; `restored` says whether the previous one was
    /// put back and started.
    #[error("{cause}; {restored}")]
    Recreate {
        #[source]
        cause: Box<ApplyError>,
        restored: String,
    },
}

/// Why an image could not be made present ([`ApplyError::Pull`]).
#[derive(Debug, thiserror::Error)]
pub enum PullError {
    /// The Engine's pull failed (registry error, unknown digest, network).
    #[error("{0}")]
    Pull(#[source] bollard::errors::Error),
    /// This host's login for the registry cannot be used.
    #[error("{0}")]
    Login(#[source] crate::observe::auth::AuthError),
    #[error("pulled, but cannot inspect it: {0}")]
    Inspect(#[source] bollard::errors::Error),
    #[error("the pulled image does not carry the pinned digest")]
    DigestMismatch,
    /// The Engine reported no progress for this long (a stalled registry or network).
    #[error("no progress for {}s; the pull was abandoned", .0.as_secs())]
    Stalled(std::time::Duration),
}

impl ApplyError {
    /// A new version failed its gate or a hook and what served before serves again: the
    /// revision should not be tried again by itself.
    pub fn rolled_back(&self) -> bool {
        match self {
            ApplyError::GateFailed { .. } => true,
            // The Engine failing under a step says nothing about the revision: the deploy is
            // recorded as failed, and the revision is tried again.
            ApplyError::RolledBack { cause, .. } => !cause.engine_failed(),
            _ => false,
        }
    }

    /// The apply error this one wraps (a failed gate's, a rolled back change's, a failed
    /// recreate's): its `source`, typed. (`source()` yields the `Box` holding it, which does
    /// not downcast to `ApplyError`.)
    pub fn cause(&self) -> Option<&ApplyError> {
        match self {
            ApplyError::GateFailed { cause, .. } | ApplyError::RolledBack { cause, .. } => {
                Some(cause)
            }
            ApplyError::Step {
                source: StepError::Recreate { cause, .. },
                ..
            } => Some(cause),
            _ => None,
        }
    }

    /// The Engine failed, not the release.
    pub fn engine_failed(&self) -> bool {
        match self {
            ApplyError::Engine(_) => true,
            ApplyError::Hook { engine, .. } => *engine,
            ApplyError::RolledBack { cause, .. } => cause.engine_failed(),
            _ => false,
        }
    }
}
