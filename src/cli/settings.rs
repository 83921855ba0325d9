//! Settings resolved once: clap has already merged flags > environment > defaults into the
//! `args` types; this turns them into typed values ([`Source`], [`daemon::Settings`]) and
//! refuses what cannot work, before anything runs. Nothing downstream sees a clap type.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};

use super::args::{RunArgs, SourceArgs};
use crate::daemon::{self, Webhook};
use crate::sources::remote::{display_url, Auth};
use crate::sources::{Fetch, Files, Source, Wanted};

/// Where remote sources are mirrored under the state directory.
const MIRRORS: &str = "sources";

/// The source the flags name (see [`Source::resolve`] for the decision table).
///
/// # Errors
/// The current directory cannot be read; `--ref` on a plain directory.
pub fn source(a: &SourceArgs, state_dir: &Path, fetch: Fetch) -> Result<Source> {
    let cwd = std::env::current_dir().context("reading the current directory")?;
    let mirrors = state_dir.join(MIRRORS);
    let wanted = Wanted {
        location: a.source.as_deref(),
        reference: a.reference.as_deref(),
        worktree: a.worktree,
        cwd: &cwd,
        mirrors: &mirrors,
        auth: Auth {
            token_file: a.git_token_file.clone(),
            ssh_key: a.ssh_key.clone(),
        },
        allow_force_push: a.allow_force_push,
    };
    let files = Files {
        path: a.path.clone(),
        allowed_signers: a.allowed_signers.clone(),
    };
    Ok(Source::resolve(&wanted, files, fetch)?)
}

/// This host's policy and state directory (see [`crate::reconcile::Host`]).
///
/// # Errors
/// The host policy file cannot be read or is invalid.
pub fn host(a: &SourceArgs, state_dir: &Path) -> Result<crate::reconcile::Host> {
    Ok(crate::reconcile::Host::read(
        a.policy.as_deref(),
        state_dir,
        a.registry_auth.as_deref(),
    )?)
}

/// The host's notification sinks (`--notify`, else the default file when it exists).
///
/// # Errors
/// As [`crate::notify::read`].
pub fn notify(flag: Option<&Path>) -> Result<Vec<crate::notify::Sink>> {
    Ok(crate::notify::read(flag)?)
}

/// The agent's settings. Its passes read a remote's mirror as the poller synced it.
///
/// # Errors
/// A duration that is not one (or zero), an address that does not resolve, a webhook secret
/// file that cannot be read or is empty, a notification file that is not valid; and as
/// [`source`].
pub fn agent(
    a: &RunArgs,
    state_dir: &Path,
    notify_file: Option<&Path>,
) -> Result<daemon::Settings> {
    let poll = duration("poll", &a.poll)?;
    let resync = duration("resync", &a.resync)?;
    let listen = listen(&a.listen)?;
    let webhook = match &a.webhook_secret_file {
        Some(path) => Some(Webhook {
            secret: daemon::http::read_secret(path)?,
            branch: a.source.reference.clone(),
        }),
        None => None,
    };
    Ok(daemon::Settings {
        source: source(&a.source, state_dir, Fetch::Never)?,
        host: host(&a.source, state_dir)?,
        label: a
            .source
            .source
            .as_deref()
            .map_or_else(|| "the current repository".into(), display_url),
        state_dir: state_dir.to_path_buf(),
        poll,
        resync,
        listen,
        webhook,
        notify: notify(notify_file)?,
    })
}

fn duration(flag: &str, text: &str) -> Result<Duration> {
    crate::model::duration::parse(text)
        .filter(|d| !d.is_zero())
        .with_context(|| format!("--{flag} {text}: write a duration such as 500ms, 15s or 1m"))
}

/// `off`, or an address (a host name is resolved now, once).
fn listen(text: &str) -> Result<Option<SocketAddr>> {
    if text == "off" {
        return Ok(None);
    }
    let addr = text
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .with_context(|| {
            format!("--listen {text}: not an address\n  hint: write HOST:PORT, such as 127.0.0.1:9587, or `off`")
        })?;
    Ok(Some(addr))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn run_args(extra: &[&str]) -> RunArgs {
        let mut argv = vec!["dockhand", "run"];
        if !extra.contains(&"--source") {
            argv.extend(["--source", "/nonexistent-dir"]);
        }
        argv.extend(extra);
        match super::super::args::Cli::parse_from(argv).command {
            super::super::args::Command::Run(a) => a,
            _ => unreachable!(),
        }
    }

    #[test]
    fn agent_settings_are_typed_once() {
        let s = agent(
            &run_args(&[
                "--poll",
                "500ms",
                "--resync",
                "2m",
                "--listen",
                "127.0.0.1:0",
            ]),
            Path::new("/state"),
            None,
        )
        .unwrap();
        assert_eq!(s.poll, Duration::from_millis(500));
        assert_eq!(s.resync, Duration::from_secs(120));
        assert_eq!(s.listen, Some("127.0.0.1:0".parse().unwrap()));
        assert!(s.webhook.is_none());
        assert!(matches!(s.source, Source::Dir { .. }));
        let off = agent(&run_args(&["--listen", "off"]), Path::new("/state"), None).unwrap();
        assert_eq!(off.listen, None);
    }

    #[test]
    fn bad_agent_settings_are_refused_before_anything_runs() {
        let err = |extra: &[&str]| {
            format!(
                "{:#}",
                agent(&run_args(extra), Path::new("/state"), None)
                    .err()
                    .unwrap()
            )
        };
        assert!(err(&["--poll", "soon"]).contains("write a duration"));
        assert!(err(&["--resync", "0s"]).contains("--resync"));
        assert!(err(&["--listen", "not-an-address"]).contains("--listen"));
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("secret");
        std::fs::write(&empty, "\n").unwrap();
        let e = err(&["--webhook-secret-file", empty.to_str().unwrap()]);
        assert!(e.contains("empty") && e.contains("hint:"), "{e}");
    }

    #[test]
    fn a_remote_agent_reads_its_mirror_and_never_the_network() {
        let s = agent(
            &run_args(&["--source", "https://bot:tok@h/ops/d.git", "--ref", "main"]),
            Path::new("/state"),
            None,
        )
        .unwrap();
        let Source::Remote { remote, fetch, .. } = &s.source else {
            panic!("{:?}", s.source);
        };
        assert_eq!(*fetch, Fetch::Never);
        assert!(remote.mirror.starts_with("/state/sources"));
        assert_eq!(remote.branch.as_deref(), Some("main"));
        assert!(!s.label.contains("tok"), "{}", s.label);
    }
}
