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
pub mod reconcile;
pub mod sources;
pub mod spec;
