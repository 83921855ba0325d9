//! Waiting for a job to exit or a service to become ready.

use std::time::{Duration, Instant};

use bollard::models::HealthStatusEnum;
use bollard::Docker;

use super::step;
use crate::apply::progress::Progress;
use crate::apply::{ApplyError, StepError};
use crate::spec::DesiredContainer;

/// Waits until the job `c` has exited, at most `c.job_timeout`.
///
/// # Errors
/// An exit code other than 0; [`ApplyError::JobTimeout`] once the timeout passed, after the
/// job was stopped (its stop grace period) and removed, so a hung job never holds the apply
/// lock past its timeout.
pub async fn wait_exit(
    docker: &Docker,
    c: &DesiredContainer,
    progress: &Progress,
) -> Result<(), ApplyError> {
    let started = Instant::now();
    let mut announced = Instant::now();
    loop {
        if started.elapsed() >= c.job_timeout {
            progress.line(&format!(
                "{}: job still running after its timeout; stopping and removing it",
                c.name
            ));
            super::stop_and_remove(docker, super::project_of(c), &c.name, None).await?;
            return Err(ApplyError::JobTimeout {
                container: c.name.clone(),
                after: c.job_timeout,
            });
        }
        let info = docker
            .inspect_container(&c.name, None)
            .await
            .map_err(step(&c.name, "inspect"))?;
        let state = info.state.unwrap_or_default();
        if state.running != Some(true) && state.restarting != Some(true) {
            return match state.exit_code {
                Some(0) => {
                    progress.line(&format!(
                        "{}: job completed in {:.1}s",
                        c.name,
                        started.elapsed().as_secs_f64()
                    ));
                    Ok(())
                }
                code => Err(ApplyError::Step {
                    container: c.name.clone(),
                    what: "job",
                    source: StepError::Check(format!(
                        "exited with {}\n  hint: docker logs {} shows why; dependents were not started",
                        code.unwrap_or(-1),
                        c.name
                    )),
                }),
            };
        }
        if announced.elapsed() > Duration::from_secs(5) {
            announced = Instant::now();
            progress.line(&format!(
                "{}: job running ({:.0}s)",
                c.name,
                started.elapsed().as_secs_f64()
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until `c` runs, and is healthy if it has a healthcheck.
pub async fn wait_ready(
    docker: &Docker,
    c: &DesiredContainer,
    progress: &Progress,
) -> Result<(), ApplyError> {
    let started = Instant::now();
    let deadline = c
        .spec
        .healthcheck
        .as_ref()
        .map_or(Duration::from_secs(30), |h| h.deadline());
    let mut announced = Instant::now();
    loop {
        let info = docker
            .inspect_container(&c.name, None)
            .await
            .map_err(step(&c.name, "inspect"))?;
        let state = info.state.unwrap_or_default();
        let running = state.running.unwrap_or(false);
        if !running && !state.restarting.unwrap_or(false) {
            return Err(ApplyError::Unhealthy {
                container: c.name.clone(),
                message: format!(
                    "it is not running (exit code {})",
                    state.exit_code.unwrap_or_default()
                ),
            });
        }
        match state.health.as_ref().and_then(|h| h.status) {
            None | Some(HealthStatusEnum::NONE) | Some(HealthStatusEnum::EMPTY) if running => {
                return Ok(())
            }
            Some(HealthStatusEnum::HEALTHY) => {
                if c.spec.healthcheck.is_some() {
                    progress.line(&format!(
                        "{}: healthy after {:.1}s",
                        c.name,
                        started.elapsed().as_secs_f64()
                    ));
                }
                return Ok(());
            }
            Some(HealthStatusEnum::UNHEALTHY) => {
                let last = state
                    .health
                    .and_then(|h| h.log)
                    .and_then(|l| l.last().cloned())
                    .and_then(|r| r.output)
                    .unwrap_or_default();
                return Err(ApplyError::Unhealthy {
                    container: c.name.clone(),
                    message: format!("healthcheck failed: {}", last.trim()),
                });
            }
            _ => {}
        }
        if started.elapsed() > deadline {
            return Err(ApplyError::Unhealthy {
                container: c.name.clone(),
                message: format!("still not healthy after {:.0}s", deadline.as_secs_f64()),
            });
        }
        if announced.elapsed() > Duration::from_secs(2) {
            announced = Instant::now();
            progress.line(&format!(
                "{}: waiting for healthy ({:.0}s)",
                c.name,
                started.elapsed().as_secs_f64()
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
