//! Running release hooks: `exec` in a running container or a one-off container, each with a
//! deadline, its output captured (the last lines go to the deploy record, redacted), and
//! stop-on-failure: the first failing step ends the phase with [`ApplyError::Hook`].
//!
//! Also the two small exec helpers releases need: a command's exit code (the gate's own probe)
//! and a file flag set or cleared as root.

use std::time::{Duration, Instant};

use bollard::exec::{StartExecOptions, StartExecResults};
use bollard::models::ExecConfig;
use bollard::query_parameters::{LogsOptions, WaitContainerOptions};
use bollard::Docker;
use futures_util::StreamExt;

use super::container;
use super::progress::Progress;
use super::ApplyError;
use crate::history::{now_ms, StepRecord};
use crate::observe::describe;
use crate::spec::{labels, DesiredContainer, HookPlace, HookSpec};

/// Lines of output kept for the record and the error.
const TAIL_LINES: usize = 20;

/// Runs `steps` in order for the release of `c`; `new_container` is where bare commands exec.
///
/// # Errors
/// The first step that fails, times out or cannot be started.
pub async fn run_phase(
    docker: &Docker,
    c: &DesiredContainer,
    new_container: &str,
    steps: &[HookSpec],
    progress: &Progress,
) -> Result<(), ApplyError> {
    for hook in steps {
        let started_ms = now_ms();
        let t = Instant::now();
        progress.line(&format!(
            "{}: hook {}: {}",
            c.name,
            hook.label,
            hook.command.join(" ")
        ));
        let timeout = Duration::from_millis(hook.timeout_ms);
        let result = match &hook.place {
            HookPlace::NewContainer => exec(docker, new_container, &hook.command, timeout).await,
            HookPlace::Exec {
                service,
                containers,
            } => match running_one(docker, containers).await {
                Some(name) => exec(docker, &name, &hook.command, timeout).await,
                None => Err(HookRun {
                    output: String::new(),
                    message: format!("service `{service}` has no running container to exec in"),
                    engine: false,
                }),
            },
            HookPlace::OneOff { image, mounts } => {
                one_off(docker, c, hook, image, mounts, timeout).await
            }
        };
        let result = match (result, &hook.rotate) {
            (Ok(mut out), Some((dir, keep))) => match crate::host::rotate(dir, *keep as usize) {
                Ok(n) => {
                    out.push_str(&format!("\n[dockhand] rotated {dir}: removed {n} old file(s), kept the newest {keep}"));
                    Ok(out)
                }
                Err(e) => Err(HookRun {
                    output: out,
                    message: format!("rotating {dir}: {e}"),
                    engine: false,
                }),
            },
            (r, _) => r,
        };
        let (output, error, engine) = match &result {
            Ok(out) => (tail(out), String::new(), false),
            Err(e) => (tail(&e.output), e.message.clone(), e.engine),
        };
        let output = progress.redactor().redact(&output);
        progress.record(StepRecord {
            target: c.name.clone(),
            name: format!("hook {}", hook.label),
            started_ms,
            duration_ms: i64::try_from(t.elapsed().as_millis()).unwrap_or(i64::MAX),
            outcome: if result.is_ok() { "ok" } else { "failed" }.into(),
            output: output.clone(),
            error: error.clone(),
        });
        if result.is_err() {
            return Err(ApplyError::Hook {
                container: c.name.clone(),
                hook: hook.label.clone(),
                message: progress.redactor().redact(&error),
                output,
                engine,
            });
        }
        progress.line(&format!(
            "{}: hook {} passed in {:.1}s",
            c.name,
            hook.label,
            t.elapsed().as_secs_f64()
        ));
    }
    Ok(())
}

/// Why a step failed, with whatever it printed.
#[derive(Debug)]
struct HookRun {
    output: String,
    message: String,
    /// The Engine failed (unreachable, refused the call), not the step: no verdict on the
    /// revision.
    engine: bool,
}

fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.len().saturating_sub(TAIL_LINES);
    lines[start..].join("\n")
}

async fn running_one(docker: &Docker, names: &[String]) -> Option<String> {
    for n in names {
        if let Ok(info) = docker.inspect_container(n, None).await {
            if info.state.and_then(|s| s.running) == Some(true) {
                return Some(n.clone());
            }
        }
    }
    None
}

/// Runs `cmd` in `container` and returns its output; non-zero exit is an error.
async fn exec(
    docker: &Docker,
    container: &str,
    cmd: &[String],
    timeout: Duration,
) -> Result<String, HookRun> {
    let fail = |message: String| HookRun {
        output: String::new(),
        message,
        engine: true,
    };
    let created = docker
        .create_exec(
            container,
            ExecConfig {
                cmd: Some(cmd.to_vec()),
                attach_stdout: Some(true),
                attach_stderr: Some(true),
                ..Default::default()
            },
        )
        .await
        .map_err(|e| fail(format!("cannot exec in {container}: {}", describe(&e))))?;
    let started = docker
        .start_exec(&created.id, None::<StartExecOptions>)
        .await
        .map_err(|e| fail(format!("cannot start exec in {container}: {e}")))?;
    let mut out = String::new();
    if let StartExecResults::Attached { mut output, .. } = started {
        let collect = async {
            while let Some(chunk) = output.next().await {
                match chunk {
                    Ok(c) => out.push_str(&String::from_utf8_lossy(&c.into_bytes())),
                    Err(e) => return Err(e.to_string()),
                }
            }
            Ok(())
        };
        match tokio::time::timeout(timeout, collect).await {
            Err(_) => {
                return Err(HookRun {
                    output: out,
                    message: format!(
                        "timed out after {:.0}s (the process may still run in {container})",
                        timeout.as_secs_f64()
                    ),
                    engine: false,
                })
            }
            Ok(Err(e)) => {
                return Err(HookRun {
                    output: out,
                    message: format!("reading its output: {e}"),
                    engine: true,
                })
            }
            Ok(Ok(())) => {}
        }
    }
    let code = match docker.inspect_exec(&created.id).await {
        Ok(i) => i.exit_code,
        Err(e) => {
            return Err(HookRun {
                output: out,
                message: format!("cannot read its exit code: {}", describe(&e)),
                engine: true,
            })
        }
    };
    match code {
        Some(0) => Ok(out),
        other => Err(HookRun {
            output: out,
            message: format!(
                "exited with {}",
                other.map_or_else(|| "an unknown code".to_string(), |c| c.to_string())
            ),
            engine: false,
        }),
    }
}

/// Runs the step in a container of its own (the service's env and networks, the step's image
/// and mounts) and removes it afterwards, whatever happened.
async fn one_off(
    docker: &Docker,
    c: &DesiredContainer,
    hook: &HookSpec,
    image: &str,
    mounts: &[crate::spec::MountSpec],
    timeout: Duration,
) -> Result<String, HookRun> {
    let mut job = c.clone();
    job.name = crate::spec::hook_container_name(&c.name, &hook.label);
    job.spec.image = image.to_string();
    job.spec.command = Some(hook.command.clone());
    job.spec.mounts = mounts.to_vec();
    job.spec.ports.clear();
    job.spec.healthcheck = None;
    job.spec.restart = crate::model::RestartPolicy::No;
    job.labels = [
        (labels::MANAGED, "true"),
        (
            labels::PROJECT,
            c.labels
                .get(labels::PROJECT)
                .map(String::as_str)
                .unwrap_or_default(),
        ),
        (labels::STACK, c.stack.as_str()),
        (labels::SERVICE, c.service.as_str()),
        (labels::ROLE, "hook"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    // A leftover from an interrupted run carries our labels: clear it. A container that does
    // not (validation keeps dockhand's own names apart) is not ours to remove: the step fails.
    let project = container::project_of(c);
    if let Err(e) = container::remove(docker, project, &job.name).await {
        return Err(HookRun {
            output: String::new(),
            message: e.to_string(),
            engine: !matches!(e, crate::apply::ApplyError::NotOwned { .. }),
        });
    }
    let result = async {
        container::create(docker, &job).await.map_err(|e| HookRun {
            output: String::new(),
            message: e.to_string(),
            engine: true,
        })?;
        container::start(docker, &job.name)
            .await
            .map_err(|e| HookRun {
                output: String::new(),
                message: e.to_string(),
                engine: true,
            })?;
        let mut wait = docker.wait_container(&job.name, None::<WaitContainerOptions>);
        let code = match tokio::time::timeout(timeout, wait.next()).await {
            Err(_) => None,
            Ok(Some(Ok(r))) => Some(r.status_code),
            // bollard reports a non-zero exit as an error carrying the code.
            Ok(Some(Err(bollard::errors::Error::DockerContainerWaitError { code, .. }))) => {
                Some(code)
            }
            Ok(Some(Err(e))) => {
                return Err(HookRun {
                    output: logs(docker, &job.name).await,
                    message: format!("waiting for it: {}", describe(&e)),
                    engine: true,
                })
            }
            Ok(None) => Some(-1),
        };
        let output = logs(docker, &job.name).await;
        match code {
            Some(0) => Ok(output),
            Some(code) => Err(HookRun {
                output,
                message: format!("exited with {code}"),
                engine: false,
            }),
            None => Err(HookRun {
                output,
                message: format!("timed out after {:.0}s", timeout.as_secs_f64()),
                engine: false,
            }),
        }
    }
    .await;
    let _ = container::remove(docker, project, &job.name).await;
    result
}

async fn logs(docker: &Docker, name: &str) -> String {
    let mut stream = docker.logs(
        name,
        Some(LogsOptions {
            stdout: true,
            stderr: true,
            tail: TAIL_LINES.to_string(),
            ..Default::default()
        }),
    );
    let mut out = String::new();
    while let Some(Ok(chunk)) = stream.next().await {
        out.push_str(&String::from_utf8_lossy(&chunk.into_bytes()));
    }
    out
}

/// Exit code of `cmd` run in `container` as `user` (default: the container's own, as Docker's
/// healthcheck runs it), None when it could not run: the release gate's own probe, polled much
/// faster than Docker's healthcheck interval.
pub async fn exit_code(
    docker: &Docker,
    container: &str,
    cmd: &[String],
    user: Option<&str>,
) -> Option<i64> {
    let created = docker
        .create_exec(
            container,
            ExecConfig {
                cmd: Some(cmd.to_vec()),
                attach_stdout: Some(false),
                attach_stderr: Some(false),
                user: user.map(str::to_string),
                ..Default::default()
            },
        )
        .await
        .ok()?;
    docker
        .start_exec(
            &created.id,
            Some(StartExecOptions {
                detach: true,
                ..Default::default()
            }),
        )
        .await
        .ok()?;
    for _ in 0..600 {
        let info = docker.inspect_exec(&created.id).await.ok()?;
        if info.running != Some(true) {
            return info.exit_code;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::tail;

    #[test]
    fn tail_keeps_the_last_lines() {
        let text: String = (1..=30).map(|i| format!("line {i}\n")).collect();
        let t = tail(&text);
        assert!(t.starts_with("line 11") && t.ends_with("line 30"));
    }
}
