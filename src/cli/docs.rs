//! `dockhand completions` and `dockhand man`: shell completion scripts and manual pages,
//! generated from the clap types in `args`, so they always name the verbs and flags this binary
//! has. Neither needs Docker or a state directory.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::CommandFactory;

use super::args::Cli;

/// Writes the completion script for `shell` to stdout.
pub fn completions(shell: clap_complete::Shell) -> Result<ExitCode> {
    let mut cmd = Cli::command();
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut cmd, "dockhand", &mut out);
    write_stdout(&out)
}

/// Writes dockhand(1) to stdout, or, with `dir`, dockhand.1 and one page per verb
/// (dockhand-plan.1, …) into `dir`.
pub fn man(dir: Option<&Path>) -> Result<ExitCode> {
    let cmd = Cli::command();
    match dir {
        Some(dir) => {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            clap_mangen::generate_to(cmd, dir)
                .with_context(|| format!("writing manual pages into {}", dir.display()))?;
            println!("wrote manual pages into {}", dir.display());
            Ok(ExitCode::SUCCESS)
        }
        None => {
            let mut out = Vec::new();
            // The page footer has room for the version, not the commit (the VERSION section
            // shows both).
            clap_mangen::Man::new(cmd)
                .source(format!("dockhand {}", env!("CARGO_PKG_VERSION")))
                .render(&mut out)
                .context("rendering the manual page")?;
            write_stdout(&out)
        }
    }
}

fn write_stdout(bytes: &[u8]) -> Result<ExitCode> {
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(bytes).and_then(|()| stdout.flush()) {
        Ok(()) => Ok(ExitCode::SUCCESS),
        // `dockhand man | head` closes the pipe early: not an error worth a report.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(ExitCode::SUCCESS),
        Err(e) => Err(e).context("writing to stdout"),
    }
}
