//! systemd's notify protocol for `Type=notify` units, through the `sd-notify` crate: `READY=1`
//! once the agent serves its port and made its first pass, `STATUS=` after each pass,
//! `WATCHDOG=1` every half of `WATCHDOG_USEC` while the worker loop is alive, `STOPPING=1` as
//! soon as a stop is asked for. Without `NOTIFY_SOCKET` (not started by systemd) every notice
//! is a no-op.
//!
//! The watchdog pings come from the worker loop's own task ([`supervise`] polls the loop and
//! the ping timer in one future): a worker whose thread blocks (a deadlock, a call that never
//! returns) or whose loop has ended stops pinging, and systemd restarts it after
//! `WatchdogSec`. A long pass (a release waiting for its gate) keeps pinging: it is alive.

use std::future::Future;
use std::time::Duration;

use sd_notify::NotifyState;
use tokio::sync::watch;
use tokio::time::MissedTickBehavior;

/// Sends `states` to systemd; a failure is logged and otherwise ignored (the agent's work does
/// not depend on its supervisor hearing about it).
pub(super) fn notify(states: &[NotifyState]) {
    if let Err(e) = sd_notify::notify(states) {
        tracing::warn!("cannot notify systemd (NOTIFY_SOCKET): {e}");
    }
}

/// How often to ping the watchdog: half of `WATCHDOG_USEC` (as sd_watchdog_enabled(3) asks);
/// `None` when systemd set no watchdog for this process.
pub(super) fn watchdog_period() -> Option<Duration> {
    sd_notify::watchdog_enabled()
        .map(|d| d / 2)
        .filter(|d| !d.is_zero())
}

/// Runs `work` (the worker loop) to its end, calling `ping` every `period` from the same task,
/// and `stopping` once when `shutdown` turns true (the loop then finishes its pass in flight).
pub(super) async fn supervise(
    work: impl Future<Output = ()>,
    mut shutdown: watch::Receiver<bool>,
    period: Option<Duration>,
    mut ping: impl FnMut(),
    mut stopping: impl FnMut(),
) {
    tokio::pin!(work);
    // Without a watchdog the timer never fires; one that fell behind (the task was not polled)
    // does not make up the missed pings in a burst.
    let mut timer = tokio::time::interval(period.unwrap_or(Duration::from_secs(86_400)));
    timer.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut stop_seen = *shutdown.borrow();
    if stop_seen {
        stopping();
    }
    loop {
        tokio::select! {
            // A loop that ended pings no more, even if a tick is due at the same moment.
            biased;
            () = &mut work => {
                // An idle loop returns on the stop request before this select sees it.
                if !stop_seen && *shutdown.borrow() {
                    stopping();
                }
                return;
            }
            _ = timer.tick(), if period.is_some() => ping(),
            changed = shutdown.changed(), if !stop_seen => {
                // A dropped sender is no stop request, but nothing more will come from it.
                stop_seen = changed.is_err() || *shutdown.borrow();
                if changed.is_ok() && stop_seen {
                    stopping();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use std::time::Instant;

    #[tokio::test(start_paused = true)]
    async fn a_long_pass_keeps_pinging_and_a_stop_is_announced_once() {
        let pings = Arc::new(Mutex::new(0u32));
        let stops = Arc::new(Mutex::new(0u32));
        let (stop, stopped) = watch::channel(false);
        let (p, s) = (pings.clone(), stops.clone());
        let work = async move {
            tokio::time::sleep(Duration::from_secs(10)).await;
            stop.send(true).unwrap();
            // The pass in flight after the stop request: still alive, still pinging.
            tokio::time::sleep(Duration::from_secs(5)).await;
            stop.send(true).unwrap();
        };
        supervise(
            work,
            stopped,
            Some(Duration::from_secs(1)),
            move || *p.lock().unwrap() += 1,
            move || *s.lock().unwrap() += 1,
        )
        .await;
        // At once, then one a second until the loop ends at 15 s.
        assert_eq!(*pings.lock().unwrap(), 15);
        assert_eq!(*stops.lock().unwrap(), 1);
    }

    /// A worker whose thread blocks stops pinging: this test breaks if the pings are sent from
    /// another task than the worker loop's.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_blocked_worker_stops_pinging() {
        let pings: Arc<Mutex<Vec<Instant>>> = Arc::default();
        let (_stop, stopped) = watch::channel(false);
        let seen = pings.clone();
        let work = async {
            tokio::time::sleep(Duration::from_millis(300)).await;
            // A deadlock for 800 ms: the thread is stuck, the task cannot be polled.
            std::thread::sleep(Duration::from_millis(800));
            tokio::time::sleep(Duration::from_millis(300)).await;
        };
        supervise(
            work,
            stopped,
            Some(Duration::from_millis(50)),
            move || seen.lock().unwrap().push(Instant::now()),
            || {},
        )
        .await;
        let pings = pings.lock().unwrap();
        let gaps: Vec<Duration> = pings.windows(2).map(|w| w[1] - w[0]).collect();
        let longest = gaps.iter().max().copied().unwrap_or_default();
        assert!(longest >= Duration::from_millis(750), "{gaps:?}");
        // Before and after the block it pinged on time (about 6 + 6 pings).
        assert!(pings.len() >= 8, "{} pings: {gaps:?}", pings.len());
        assert_eq!(
            gaps.iter()
                .filter(|g| **g > Duration::from_millis(200))
                .count(),
            1
        );
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_loop_that_returns_on_the_stop_request_still_announces_it() {
        let (stop, stopped) = watch::channel(false);
        let mut loop_sees = stopped.clone();
        let mut stops = 0;
        let work = async move {
            // Like `run_loop` between passes: it returns as soon as the stop request comes.
            loop_sees.changed().await.unwrap();
        };
        let asker = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(3)).await;
            stop.send(true).unwrap();
            stop
        });
        supervise(work, stopped, None, || {}, || stops += 1).await;
        drop(asker.await);
        assert_eq!(stops, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn without_a_watchdog_nothing_pings() {
        let (_stop, stopped) = watch::channel(false);
        let mut pings = 0;
        supervise(
            tokio::time::sleep(Duration::from_secs(100_000)),
            stopped,
            None,
            || pings += 1,
            || {},
        )
        .await;
        assert_eq!(pings, 0);
    }
}
