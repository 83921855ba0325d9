//! dockhand: a declarative, GitOps-style reconciler for plain Docker hosts.
//!
//! Reconcile = source → load/validate → observe → plan → apply. See ARCHITECTURE.md.

pub mod load;
pub mod model;
pub mod plan;
pub mod spec;
pub mod host;
pub mod sources;
pub mod observe;
pub mod apply;
pub mod cli;
