//! clap types of the daily-operation verbs (`logs`, `exec`, `down`), beside `args.rs` so
//! that verbs added in parallel do not touch the same lines. Like `args`, they never leave
//! `cli/`.

use clap::Args;

use super::args::SourceArgs;

/// Which project, when the source is not read for it.
#[derive(Debug, Clone, Args)]
pub struct ProjectArg {
    /// The project (`project:` in dockhand.yaml) to act on, without reading the source. Default:
    /// the source's.
    #[arg(long, env = "DOCKHAND_PROJECT")]
    pub project: Option<String>,
    #[command(flatten)]
    pub source: SourceArgs,
}

#[derive(Debug, Args)]
pub struct LogsArgs {
    /// The service, as STACK/SERVICE (or SERVICE when only one stack has it).
    pub service: String,
    /// Keep streaming new lines (Ctrl-C ends it).
    #[arg(short, long)]
    pub follow: bool,
    /// Only the last N lines.
    #[arg(short = 'n', long, value_name = "N")]
    pub tail: Option<u64>,
    /// Only lines since a duration back (30s, 10m, 2h30m) or a Unix timestamp in seconds.
    #[arg(long, value_name = "T")]
    pub since: Option<String>,
    /// Prefix each line with the Engine's timestamp.
    #[arg(short, long)]
    pub timestamps: bool,
    /// One JSON object per line on stdout: {"stream":"stdout"|"stderr","line":"…"}.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub scope: ProjectArg,
}

#[derive(Debug, Args)]
pub struct ExecArgs {
    /// The service, as STACK/SERVICE (or SERVICE when only one stack has it).
    pub service: String,
    /// Keep standard input open and forward it to the command.
    #[arg(short, long)]
    pub interactive: bool,
    /// Give the command a terminal (standard input must be one).
    #[arg(short, long)]
    pub tty: bool,
    /// Run as this user (`name`, `uid`, `user:group`), else the container's.
    #[arg(short, long)]
    pub user: Option<String>,
    /// Working directory inside the container.
    #[arg(short = 'w', long)]
    pub workdir: Option<String>,
    #[command(flatten)]
    pub scope: ProjectArg,
    /// The command and its arguments, after `--`.
    #[arg(last = true, required = true, value_name = "CMD")]
    pub cmd: Vec<String>,
}

#[derive(Debug, Args)]
pub struct DownArgs {
    /// Also delete the project's volumes, with their data.
    #[arg(long)]
    pub volumes: bool,
    /// Do not ask; required when standard input is not a terminal.
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Print the plan and the outcome as one JSON object (needs --yes when there is
    /// something to remove).
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub scope: ProjectArg,
}
