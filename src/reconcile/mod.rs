//! One reconcile, in the form both the one-shot verbs (`plan`, `apply`, `rollback`, `status`)
//! and the agent call:
//!
//! - [`pass`]: source snapshot → load → host checks → render → observe → plan
//!   ([`pass::PlanContext`]);
//! - [`lock`]: the apply lock, taken *before* the plan is computed, so the plan applied is the
//!   plan of the host as it is (nobody else changes it in between);
//! - [`record`]: the recorded apply (deploy record begin/finish, quarantine of a revision whose
//!   release rolled back, rollback holds), returning a typed [`record::Recorded`].
//!
//! It owns no loop (that is `daemon`), parses no flags and prints no user output besides what
//! apply's progress prints (that is `cli`). Errors are [`Error`], each with its cause as
//! `#[source]`; [`report`] prints one for a person.

pub mod down;
pub mod lock;
pub mod pass;
pub mod record;

pub use pass::Host;

use crate::apply::ApplyError;
use crate::history::StoreError;
use crate::load::Diagnostics;
use crate::observe::EngineError;
use crate::sources::SourceError;

/// Why a reconcile step could not go on. Each message says what and a `hint:` for what to do;
/// the cause (a git, Engine, store or apply error) is the `#[source]`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The desired state could not be read (the source, git, a signature).
    #[error(transparent)]
    Source(#[from] SourceError),
    /// The desired state does not load: every problem with its file:line and hint.
    #[error("invalid desired state ({origin}):\n{diagnostics}")]
    Invalid {
        origin: String,
        diagnostics: Diagnostics,
    },
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// The deploy record or the apply lock file.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The host policy file cannot be read or is invalid.
    #[error(transparent)]
    Policy(#[from] crate::host::PolicyFileError),
    /// Another apply held the lock for longer than this one would wait.
    #[error("another dockhand apply still holds {path} after {waited:?} (pid {holder})\n  hint: wait for it to finish (`ps -p {holder}` shows it); only one apply runs at a time per state directory")]
    LockTimeout {
        path: String,
        holder: String,
        waited: std::time::Duration,
    },
    /// A rollback holds the project at an earlier revision while the source has not moved.
    #[error("project {project} is held at {} by a rollback; nothing was changed\n  hint: `dockhand resume` ends the hold (a new commit on the source ends it too)", short(revision))]
    Held { project: String, revision: String },
    /// The revision's release (a first deploy, a job) failed before; what failed is not
    /// applied again by itself, and nothing else was left to do.
    #[error("revision {revision} is quarantined{}: deploy #{deploy_id} failed at {}:\n  {}\nnothing was changed.\n  hint: commit a fix (a new revision is applied normally), or `dockhand apply --retry` to try this one again", if services.is_empty() { String::new() } else { format!(" for {}", services.join(", ")) }, crate::history::format_utc(*at_ms), reason.lines().next().unwrap_or_default())]
    Quarantined {
        revision: String,
        deploy_id: i64,
        at_ms: i64,
        reason: String,
        /// `stack/service` of each quarantined service; empty: the whole revision.
        services: Vec<String>,
    },
    /// A recorded deploy whose release failed and put back what served: quarantined.
    #[error("deploy #{deploy} rolled back; revision {} is quarantined for the service that failed (it is not tried again until a new revision or `dockhand apply --retry`; everything else is still applied)", short(revision))]
    RolledBack {
        deploy: i64,
        revision: String,
        #[source]
        source: Box<ApplyError>,
    },
    /// A recorded deploy that failed otherwise (preflight, a step); `quarantined`: the
    /// revision, when a first deploy failed its health gate or a job failed.
    #[error("deploy #{deploy} {outcome}{}", match .quarantined { Some(r) => format!("; revision {} is quarantined for the service that failed: its first deploy never became healthy or its job failed (it is not tried again until a new revision or `dockhand apply --retry`; everything else is still applied)", short(r)), None => String::new() })]
    DeployFailed {
        deploy: i64,
        outcome: &'static str,
        quarantined: Option<String>,
        #[source]
        source: Box<ApplyError>,
    },
    /// `dockhand down` while an agent of the same state directory runs: it would deploy the
    /// project again from its source.
    #[error("an agent runs on this state directory ({socket}) and would deploy the project again from its source; nothing was changed\n  hint: stop the agent first (e.g. `systemctl stop dockhand`), or decommission through the repository: delete every stack file and commit (the agent removes the containers and networks; volumes stay)")]
    AgentRuns { socket: String },
    /// Apply refused before recording anything (conflicts, preflight with `--preflight-only`).
    #[error(transparent)]
    Apply(Box<ApplyError>),
}

impl From<ApplyError> for Error {
    fn from(e: ApplyError) -> Error {
        Error::Apply(Box::new(e))
    }
}

/// The first 12 characters of a commit id (or a `worktree:` revision).
pub fn short(revision: &str) -> &str {
    revision.get(..12).unwrap_or(revision)
}

/// One error for a person: `what: cause: cause`, then every `hint:` line of the chain (outer
/// first). A cause whose text its parent already shows is not repeated; a `git2` cause shows
/// its message only (its `Display` adds libgit2's class and code numbers). An invalid desired
/// state is already a full report (a hint under each problem) and is returned as it is.
///
/// Used by `main` and the agent, so a failure reads the same from either.
pub fn report(err: &(dyn std::error::Error + 'static)) -> String {
    if let Some(e @ Error::Invalid { .. }) = find::<Error>(err) {
        return e.to_string();
    }
    let mut what = String::new();
    let mut hints: Vec<String> = Vec::new();
    let mut cause = Some(err);
    while let Some(e) = cause {
        cause = e.source();
        let text = match e.downcast_ref::<git2::Error>() {
            Some(g) => g.message().to_string(),
            None => e.to_string(),
        };
        let mut body = Vec::new();
        for line in text.lines() {
            if line.trim_start().starts_with("hint:") {
                let hint = format!("  {}", line.trim_start());
                if !hints.contains(&hint) {
                    hints.push(hint);
                }
            } else {
                body.push(line);
            }
        }
        let body = body.join("\n");
        let body = body.trim_end();
        if body.is_empty() || what.contains(body) {
            continue;
        }
        if !what.is_empty() {
            what.push_str(": ");
        }
        what.push_str(body);
    }
    for h in hints {
        what.push('\n');
        what.push_str(&h);
    }
    what
}

/// The first error of type `T` in `err`'s chain.
pub fn find<'a, T: std::error::Error + 'static>(
    err: &'a (dyn std::error::Error + 'static),
) -> Option<&'a T> {
    let mut cause = Some(err);
    while let Some(e) = cause {
        if let Some(t) = e.downcast_ref::<T>() {
            return Some(t);
        }
        cause = e.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chain_prints_what_then_each_cause_once_then_the_hints() {
        let git = git2::Error::new(
            git2::ErrorCode::Auth,
            git2::ErrorClass::Net,
            "authentication failed",
        );
        let e = SourceError::Fetch {
            url: "https://h/a.git".into(),
            source: git,
        };
        let outer = anyhow::Error::new(e).context("syncing the source");
        assert_eq!(
            report(outer.as_ref()),
            "syncing the source: cannot fetch from https://h/a.git: authentication failed\n  hint: check the URL, the network, and the credentials (--git-token-file for https, --ssh-key or ssh-agent for ssh); what runs keeps running"
        );
    }

    #[test]
    fn a_cause_already_in_its_parents_text_is_not_repeated() {
        let io = std::io::Error::other("disk full");
        let e = StoreError::Dir {
            path: "/s".into(),
            source: io,
        };
        let text = report(&e);
        assert_eq!(text.matches("disk full").count(), 1, "{text}");
        assert!(text.ends_with("another directory"), "{text}");
        assert_eq!(text.lines().filter(|l| l.starts_with("  hint:")).count(), 1);
    }

    #[test]
    fn an_invalid_desired_state_is_printed_as_it_is() {
        let diagnostics = crate::load::load(&[crate::load::SourceFile {
            path: "dockhand.yaml".into(),
            text: "project: [".into(),
        }])
        .err()
        .unwrap();
        let e = Error::Invalid {
            origin: "directory /x".into(),
            diagnostics,
        };
        let wrapped = anyhow::Error::new(e);
        assert_eq!(report(wrapped.as_ref()), wrapped.to_string());
        assert!(report(wrapped.as_ref()).contains("  hint:"));
    }
}

#[cfg(test)]
mod report_tests {
    use super::report;
    use crate::apply::{ApplyError, StepError};

    #[test]
    fn report_prints_each_cause_once() {
        let e = ApplyError::Step {
            container: "web".into(),
            what: "reading env_file",
            source: StepError::Io {
                what: "/etc/web.env".into(),
                source: std::io::Error::new(std::io::ErrorKind::NotFound, "gone"),
            },
        };
        assert_eq!(
            report(&e),
            "web: reading env_file failed: /etc/web.env: gone"
        );
        let wrapped = anyhow::Error::new(e).context("deploy #3 failed");
        assert_eq!(
            report(wrapped.as_ref()),
            "deploy #3 failed: web: reading env_file failed: /etc/web.env: gone"
        );
    }
}
