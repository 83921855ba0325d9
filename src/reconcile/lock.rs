//! Taking the apply lock ([`crate::history::Store::lock_apply`], an advisory `flock` per state
//! directory) with a bounded wait.
//!
//! Every verb that changes the host (apply, rollback, an agent pass) takes it *before* it reads
//! the host and plans, and holds it until its deploy is recorded: a plan made while another
//! apply runs would describe a host that is about to change. Waiting (rather than failing at
//! once) lets `dockhand apply` or `dockhand rollback` follow an agent pass that is finishing a
//! deploy; the wait is bounded so a stuck holder is reported by name instead of hanging a
//! terminal or the agent's loop.

use std::time::Duration;

use crate::history::{ApplyLock, Store, StoreError};

use super::Error;

/// How long a one-shot verb waits for another apply (an agent's deploy with image pulls and
/// blue/green gates takes minutes).
pub const CLI_WAIT: Duration = Duration::from_secs(600);
/// How long an agent pass waits: its loop (and SIGTERM) waits with it, and a pass that gives
/// up is simply queued again.
pub const AGENT_WAIT: Duration = Duration::from_secs(30);
/// How often the lock is tried again while waiting.
const RETRY: Duration = Duration::from_millis(100);

/// Takes the apply lock, waiting up to `limit` while another process holds it. While it waits
/// it prints one line on stderr naming the holder's pid.
///
/// # Errors
/// [`Error::LockTimeout`] (naming the lock file and the holder's pid) once `limit` passed;
/// [`Error::Store`] when the lock file cannot be opened (a read-only or missing state
/// directory).
pub async fn acquire(store: &Store, limit: Duration) -> Result<ApplyLock, Error> {
    let started = tokio::time::Instant::now();
    let mut told = false;
    loop {
        match store.lock_apply() {
            Ok(lock) => return Ok(lock),
            Err(StoreError::Busy { path, holder }) => {
                let waited = started.elapsed();
                if waited >= limit {
                    return Err(Error::LockTimeout {
                        path,
                        holder,
                        waited: limit,
                    });
                }
                if !told {
                    eprintln!(
                        "waiting for another dockhand apply to finish (pid {holder} holds {path}; up to {limit:?})"
                    );
                    told = true;
                }
                tokio::time::sleep(RETRY.min(limit - waited)).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// flock locks belong to an open file description, so a second `lock_apply` in the same
    /// process is refused like another process would be.
    #[tokio::test(start_paused = true)]
    async fn a_held_lock_is_waited_for_then_reported_with_its_holder() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let held = store.lock_apply().unwrap();
        let t0 = tokio::time::Instant::now();
        let err = acquire(&store, Duration::from_secs(5)).await.err().unwrap();
        assert_eq!(t0.elapsed(), Duration::from_secs(5));
        let Error::LockTimeout { holder, path, .. } = &err else {
            panic!("{err:?}");
        };
        assert_eq!(holder, &std::process::id().to_string());
        assert!(path.ends_with("apply.lock"), "{path}");
        assert!(err.to_string().contains(&format!("ps -p {holder}")));
        drop(held);
        assert!(acquire(&store, Duration::from_secs(5)).await.is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn the_lock_is_taken_as_soon_as_its_holder_lets_go() {
        let dir = tempfile::tempdir().unwrap();
        let store = std::sync::Arc::new(Store::open(dir.path()).unwrap());
        let held = store.lock_apply().unwrap();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(750)).await;
            drop(held);
        });
        let t0 = tokio::time::Instant::now();
        let lock = acquire(&store, Duration::from_secs(60)).await;
        assert!(lock.is_ok());
        assert!(t0.elapsed() < Duration::from_secs(1), "{:?}", t0.elapsed());
    }
}
