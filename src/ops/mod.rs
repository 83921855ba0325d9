//! Daily operations on a project's live containers: `dockhand logs` and `dockhand exec`.
//!
//! - [`live`]: which container is a service's live one, found by labels alone (under
//!   blue/green the serving color's; a job's last run). The choice is pure
//!   ([`live::choose`]); [`live::find`] lists the project's containers (one call) and asks it.
//! - [`logs`]: the Engine's log stream of that container, stdout and stderr kept apart.
//! - [`exec`]: a command in it, interactive on a terminal, its exit code passed through.
//!
//! Edge module (bollard, the terminal). Reads only, except what the command run by `exec`
//! does; never touches a container this project does not own (the lookup only sees those).

pub mod exec;
pub mod live;
pub mod logs;

use crate::observe::EngineError;

/// Why a daily operation could not run. Each says what and a `hint:`.
#[derive(Debug, thiserror::Error)]
pub enum OpsError {
    #[error("`{text}` is not a service: write STACK/SERVICE (or SERVICE when only one stack has it)\n  hint: `dockhand status` lists the services")]
    BadTarget { text: String },
    /// The desired state does not declare it.
    #[error("service `{target}` is not in the desired state of project `{project}`\n  hint: declared services: {declared}")]
    UnknownService {
        project: String,
        target: String,
        declared: String,
    },
    /// No container of the service exists on this Engine.
    #[error(
        "service `{target}` of project `{project}` has no container on this Engine\n  hint: {hint}"
    )]
    NoContainer {
        project: String,
        target: String,
        hint: String,
    },
    #[error("service `{service}` is in several stacks ({stacks})\n  hint: name it as STACK/SERVICE, e.g. {example}")]
    Ambiguous {
        service: String,
        stacks: String,
        example: String,
    },
    #[error("container {container} is not running ({status}), so nothing can run in it\n  hint: `dockhand logs` shows its output; `dockhand apply` starts it again")]
    NotRunning { container: String, status: String },
    #[error("`{since}` is not a time for --since\n  hint: a duration back from now (30s, 10m, 2h30m) or a Unix timestamp in seconds")]
    BadSince { since: String },
    #[error("the terminal: {what}: {source}")]
    Terminal {
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Engine(#[from] EngineError),
}
