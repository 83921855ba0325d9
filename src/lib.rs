//! dockhand: a declarative, GitOps-style reconciler for plain Docker hosts.
//!
//! Reconcile = source → load/validate → observe → plan → apply. See ARCHITECTURE.md.

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
