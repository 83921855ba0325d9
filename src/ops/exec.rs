//! A command in a service's live container, as `docker exec` runs it: output streamed (stdout
//! and stderr apart, or one terminal stream with a TTY), standard input forwarded when asked,
//! the command's exit code returned.

use std::io::Write;

use bollard::container::LogOutput;
use bollard::exec::{StartExecOptions, StartExecResults};
use bollard::models::ExecConfig;
use bollard::query_parameters::ResizeExecOptionsBuilder;
use bollard::Docker;
use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;

use super::OpsError;
use crate::model::actual::{ActualContainer, RunState};
use crate::observe::EngineError;

/// What to run and how.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Options {
    pub cmd: Vec<String>,
    /// Forward this process's standard input to the command (until it ends).
    pub interactive: bool,
    /// Give the command a terminal (this terminal switched to raw mode meanwhile).
    pub tty: bool,
    /// `user[:group]` to run as, else the container's.
    pub user: Option<String>,
    pub workdir: Option<String>,
}

/// Runs `options.cmd` in `container` and returns its exit code (`None`: the Engine did not
/// say).
///
/// # Errors
/// [`OpsError::NotRunning`]; [`OpsError::Terminal`] when `tty` and this terminal cannot be
/// switched to raw mode; [`OpsError::Engine`].
pub async fn run(
    docker: &Docker,
    container: &ActualContainer,
    options: &Options,
) -> Result<Option<i64>, OpsError> {
    if container.state != RunState::Running {
        return Err(OpsError::NotRunning {
            container: container.name.clone(),
            status: container.status.clone(),
        });
    }
    let name = container.name.as_str();
    let created = docker
        .create_exec(
            &container.id,
            ExecConfig {
                cmd: Some(options.cmd.clone()),
                attach_stdin: Some(options.interactive),
                attach_stdout: Some(true),
                attach_stderr: Some(true),
                tty: Some(options.tty),
                user: options.user.clone(),
                working_dir: options.workdir.clone(),
                ..Default::default()
            },
        )
        .await
        .map_err(EngineError::api(format!("creating an exec in {name}")))?;
    // Raw before the command starts, so nothing it prints is cooked; restored on drop.
    let raw = if options.tty {
        Some(RawTerminal::enter()?)
    } else {
        None
    };
    let started = docker
        .start_exec(
            &created.id,
            Some(StartExecOptions {
                detach: false,
                tty: options.tty,
                output_capacity: None,
            }),
        )
        .await
        .map_err(EngineError::api(format!("starting the exec in {name}")))?;
    if let Some((rows, cols)) = raw.as_ref().and_then(RawTerminal::size) {
        // The command still runs with a default size if this fails: not worth stopping it.
        let _ = docker
            .resize_exec(
                &created.id,
                ResizeExecOptionsBuilder::new()
                    .h(i32::from(rows))
                    .w(i32::from(cols))
                    .build(),
            )
            .await;
    }
    if let StartExecResults::Attached { mut output, input } = started {
        if options.interactive {
            tokio::spawn(forward_stdin(input));
        }
        let (mut out, mut err) = (std::io::stdout(), std::io::stderr());
        while let Some(chunk) = output.next().await {
            let chunk = chunk.map_err(EngineError::api(format!(
                "reading the exec's output in {name}"
            )))?;
            let written = match chunk {
                LogOutput::StdErr { message } => err.write_all(&message).and_then(|()| err.flush()),
                LogOutput::StdOut { message } | LogOutput::Console { message } => {
                    out.write_all(&message).and_then(|()| out.flush())
                }
                LogOutput::StdIn { .. } => Ok(()),
            };
            // Nobody reads our output any more: let the command run on, as a pipe would.
            if written.is_err() {
                break;
            }
        }
    }
    drop(raw);
    let inspected = docker
        .inspect_exec(&created.id)
        .await
        .map_err(EngineError::api(format!(
            "reading the exec's exit code in {name}"
        )))?;
    Ok(inspected.exit_code)
}

/// Copies standard input into the exec until it ends, then half-closes, so the command
/// reads end-of-file (`echo x | dockhand exec … -i -- cat`). Read on a thread of its own:
/// a blocking read of a terminal cannot be cancelled, and on tokio's blocking pool it would
/// hold the process open after the command ended.
async fn forward_stdin(mut input: std::pin::Pin<Box<dyn tokio::io::AsyncWrite + Send>>) {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<u8>>(16);
    std::thread::spawn(move || {
        let mut stdin = std::io::stdin();
        let mut buf = vec![0u8; 8192];
        loop {
            match std::io::Read::read(&mut stdin, &mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if tx.blocking_send(buf[..n].to_vec()).is_err() {
                        break;
                    }
                }
            }
        }
    });
    while let Some(bytes) = rx.recv().await {
        if input.write_all(&bytes).await.is_err() || input.flush().await.is_err() {
            return;
        }
    }
    let _ = input.shutdown().await;
}

/// This process's standard input switched to raw mode (keys go to the command as typed,
/// Ctrl-C included), put back as it was when dropped.
struct RawTerminal {
    saved: rustix::termios::Termios,
}

impl RawTerminal {
    fn enter() -> Result<RawTerminal, OpsError> {
        let stdin = std::io::stdin();
        let fail = |what| {
            move |e: rustix::io::Errno| OpsError::Terminal {
                what,
                source: e.into(),
            }
        };
        let saved = rustix::termios::tcgetattr(&stdin).map_err(fail("reading its mode"))?;
        let mut raw = saved.clone();
        raw.make_raw();
        rustix::termios::tcsetattr(&stdin, rustix::termios::OptionalActions::Now, &raw)
            .map_err(fail("switching it to raw mode"))?;
        Ok(RawTerminal { saved })
    }

    /// Rows and columns.
    fn size(&self) -> Option<(u16, u16)> {
        let ws = rustix::termios::tcgetwinsize(std::io::stdin()).ok()?;
        (ws.ws_row > 0 && ws.ws_col > 0).then_some((ws.ws_row, ws.ws_col))
    }
}

impl Drop for RawTerminal {
    fn drop(&mut self) {
        let _ = rustix::termios::tcsetattr(
            std::io::stdin(),
            rustix::termios::OptionalActions::Now,
            &self.saved,
        );
    }
}
