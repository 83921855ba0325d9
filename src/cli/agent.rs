//! `dockhand run`: the agent. It wires the triggers (startup, a source poll, Docker events for
//! this project's containers, a periodic resync, SIGHUP) into [`crate::daemon::run_loop`], and
//! each pass plans from scratch and applies as a recorded deploy, like `dockhand apply --yes`.
//! SIGTERM and SIGINT stop it after the pass in flight.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use tokio::sync::{mpsc, watch};

use super::args::RunArgs;
use super::{quarantine_refusal, recorded_apply, revision, snapshot, PlanContext};
use crate::daemon::{engine_events, run_loop, Backoff, Trigger};
use crate::history::Store;
use crate::plan::render;

fn duration(flag: &str, text: &str) -> Result<Duration> {
    crate::model::duration::parse(text)
        .filter(|d| !d.is_zero())
        .with_context(|| format!("--{flag} {text}: write a duration such as 500ms, 15s or 1m"))
}

pub async fn run(a: &RunArgs, state_dir: &Path) -> Result<ExitCode> {
    let poll = duration("poll", &a.poll)?;
    let resync = duration("resync", &a.resync)?;
    let docker = crate::observe::connect().await?;
    let store = Arc::new(Store::open(state_dir)?);
    let (queue, triggers) = mpsc::unbounded_channel();
    let (stop, stopped) = watch::channel(false);
    tokio::spawn(signals(stop, queue.clone()));
    tokio::spawn(every(resync, queue.clone(), || Some(Trigger::Resync)));
    let src = a.source.clone();
    let mut last_rev = None;
    tokio::spawn(every(poll, queue.clone(), move || {
        // A cheap look at the source: the commit (git) or a hash of the files (directory).
        let rev = snapshot(&src).ok().map(|s| revision(&s));
        if rev.is_some() && rev != last_rev {
            let changed = last_rev.is_some();
            last_rev.clone_from(&rev);
            return changed.then(|| Trigger::Source(rev.unwrap_or_default()));
        }
        None
    }));
    let _ = queue.send(Trigger::Startup);
    eprintln!(
        "dockhand agent: watching {} (poll {poll:?}, resync {resync:?}); SIGTERM stops it after the step in flight",
        a.source.source.as_deref().unwrap_or("the current repository")
    );

    // The project whose events are watched, and the quarantined revisions already reported.
    let seen: Arc<Mutex<(Option<String>, BTreeSet<String>)>> = Arc::default();
    let backoff: Arc<Mutex<Backoff>> = Arc::default();
    run_loop(triggers, Duration::from_millis(200), stopped, |batch| {
        let why: BTreeSet<String> = batch.iter().map(Trigger::describe).collect();
        let why = why.into_iter().collect::<Vec<_>>().join(", ");
        let docker = docker.clone();
        let store = store.clone();
        let queue = queue.clone();
        let src = a.source.clone();
        let seen = seen.clone();
        let backoff = backoff.clone();
        // Only drift (events, resyncs) backs off: a new revision or an operator's signal is
        // applied at once.
        let drift_only = batch
            .iter()
            .all(|t| matches!(t, Trigger::Engine { .. } | Trigger::Resync));
        async move {
            tracing::info!("reconcile ({why})");
            let ctx = match PlanContext::build(&src).await {
                Ok(ctx) => ctx,
                Err(e) => {
                    // A bad commit or a half-written file: nothing changes, the host keeps
                    // running what it runs; the next valid revision is applied.
                    eprintln!("desired state not applied ({why}): {e:#}");
                    return;
                }
            };
            let start_watching = {
                let mut seen = seen
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                let new = seen.0.as_deref() != Some(ctx.desired.project.as_str());
                seen.0 = Some(ctx.desired.project.clone());
                new
            };
            if start_watching {
                tokio::spawn(engine_events(
                    docker.clone(),
                    ctx.desired.project.clone(),
                    queue.clone(),
                ));
            }
            if ctx.plan.is_empty() {
                return;
            }
            if !ctx.plan.conflicts.is_empty() {
                eprintln!(
                    "not applied ({why}): {} conflict(s) with objects dockhand does not own:\n{}",
                    ctx.plan.conflicts.len(),
                    render::text(&ctx.plan, false)
                );
                return;
            }
            let rev = revision(&ctx.snapshot);
            match quarantine_refusal(&store, &ctx.desired.project, &rev) {
                Ok(Some(msg)) => {
                    let first = seen
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .1
                        .insert(rev);
                    if first {
                        eprintln!("not applied ({why}): {msg}");
                    }
                    return;
                }
                Ok(None) => {}
                Err(e) => {
                    eprintln!("not applied ({why}): {e:#}");
                    return;
                }
            }
            let touched: Vec<String> = ctx
                .plan
                .actions
                .iter()
                .filter_map(|a| a.container().map(str::to_string))
                .collect();
            if drift_only {
                let now = Instant::now();
                let b = backoff.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                let waits: Vec<(String, Duration)> = touched
                    .iter()
                    .filter_map(|n| b.wait(n, now).map(|w| (n.clone(), w)))
                    .collect();
                drop(b);
                if let Some(longest) = waits.iter().map(|(_, w)| *w).max() {
                    let names: Vec<&str> = waits.iter().map(|(n, _)| n.as_str()).collect();
                    eprintln!(
                        "degraded: {} keep(s) drifting (dying or being changed); next correction in {:.0?}\n  hint: `docker logs {}` shows why it exits",
                        names.join(", "),
                        longest,
                        names[0]
                    );
                    tokio::spawn(async move {
                        tokio::time::sleep(longest).await;
                        let _ = queue.send(Trigger::Resync);
                    });
                    return;
                }
                let mut b = backoff.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                for n in &touched {
                    b.record(n, now);
                }
            }
            println!("{}", render::text(&ctx.plan, false));
            if let Err(e) = recorded_apply(&docker, &store, &ctx, &format!("agent ({why})")).await {
                eprintln!("error: {e:#}");
            }
        }
    })
    .await;
    eprintln!("dockhand agent: stopped");
    Ok(ExitCode::SUCCESS)
}

/// Sends what `tick` returns every `period` until the queue is gone.
async fn every(
    period: Duration,
    queue: mpsc::UnboundedSender<Trigger>,
    mut tick: impl FnMut() -> Option<Trigger>,
) {
    let mut timer = tokio::time::interval(period);
    timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        timer.tick().await;
        if let Some(t) = tick() {
            if queue.send(t).is_err() {
                return;
            }
        }
        if queue.is_closed() {
            return;
        }
    }
}

async fn signals(stop: watch::Sender<bool>, queue: mpsc::UnboundedSender<Trigger>) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int), Ok(mut hup)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::hangup()),
    ) else {
        tracing::warn!("cannot install signal handlers");
        return;
    };
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = hup.recv() => { let _ = queue.send(Trigger::Signal); }
        }
    }
    eprintln!("dockhand agent: stopping after the step in flight");
    let _ = stop.send(true);
}
