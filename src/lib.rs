//! dockhand: a declarative, GitOps-style reconciler for plain Docker hosts.
//!
//! Reconcile = source → load/validate → observe → plan → apply. See ARCHITECTURE.md.

// dockhand runs unattended with root through the Docker socket: a panic is an outage, so
// every failure is an error value with context. Tests may unwrap.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod apply;
pub mod cli;
pub mod daemon;
pub mod history;
pub mod host;
pub mod load;
pub mod model;
pub mod observe;
pub mod pin;
pub mod plan;
pub mod sources;
pub mod spec;

/// An error and its causes on one line, `outer: cause: cause`, for people. dockhand's errors
/// name their cause in their own message and also keep it as `source` (so callers can decide
/// by type); a cause whose text is already part of the line is therefore left out, where
/// `anyhow`'s `{:#}` would print it again.
pub fn error_text(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let text = c.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        cause = c.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::error_text;
    use crate::apply::{ApplyError, StepError};

    #[test]
    fn error_text_prints_each_cause_once() {
        let e = ApplyError::Step {
            container: "web".into(),
            what: "reading env_file",
            source: StepError::Io {
                what: "/etc/web.env".into(),
                source: std::io::Error::new(std::io::ErrorKind::NotFound, "gone"),
            },
        };
        assert_eq!(
            error_text(&e),
            "web: reading env_file failed: /etc/web.env: gone"
        );
        let wrapped = anyhow::Error::new(e).context("deploy #3 failed");
        assert_eq!(
            error_text(wrapped.as_ref()),
            "deploy #3 failed: web: reading env_file failed: /etc/web.env: gone"
        );
        // What `{:#}` prints: every cause again.
        assert_eq!(
            format!("{wrapped:#}"),
            "deploy #3 failed: web: reading env_file failed: /etc/web.env: gone: /etc/web.env: gone: gone"
        );
    }
}
