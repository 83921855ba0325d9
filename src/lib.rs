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
pub mod notify;
pub mod observe;
pub mod ops;
pub mod pin;
pub mod plan;
pub mod reconcile;
pub mod sources;
pub mod spec;

/// `<crate version> (commit <40 hex digits>)`, or `(commit unknown)` for a build outside git
/// (set by build.rs).
pub const VERSION: &str = env!("DOCKHAND_LONG_VERSION");

/// The git commit this binary was built from (40 hex digits); `None` when built outside git.
pub const GIT_COMMIT: Option<&str> = if env!("DOCKHAND_GIT_COMMIT").is_empty() {
    None
} else {
    Some(env!("DOCKHAND_GIT_COMMIT"))
};
