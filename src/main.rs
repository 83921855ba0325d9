//! `dockhand`: parse, set up logging, run one verb, map the outcome to an exit code.

// dockhand runs unattended with root through the Docker socket: a panic is an outage, so
// every failure is an error value with context. Tests may unwrap.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

use std::process::ExitCode;

use clap::Parser;
use dockhand::cli::{
    self,
    args::{self, Cli, LogFormat},
};

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    // The agent runs unattended: its journal should say what each pass did (every step of a
    // deploy, each fetch), where a one-shot verb already prints its progress on stderr.
    let agent = matches!(cli.command, args::Command::Run(_));
    let default = match (cli.verbose, agent) {
        (0, true) => "warn,dockhand=info",
        (0, false) => "warn",
        (1, _) => "dockhand=debug",
        _ => "dockhand=trace,info",
    };
    let mut filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    // At debug level the Engine client logs response bodies and at trace request bodies, and
    // a container's create request or inspect holds its env values: the HTTP stack never logs
    // below info, whatever was asked.
    for cap in ["bollard=info", "hyper=info", "hyper_util=info", "h2=info"] {
        if let Ok(d) = cap.parse() {
            filter = filter.add_directive(d);
        }
    }
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match cli.log_format {
        LogFormat::Json => logs.json().init(),
        LogFormat::Text => logs.init(),
    }
    match cli::run(cli).await {
        Ok(code) => code,
        Err(e) => {
            if let Some(r) = e.downcast_ref::<cli::Reported>() {
                eprintln!("{r}");
            } else {
                eprintln!("error: {}", dockhand::error_text(e.as_ref()));
            }
            ExitCode::FAILURE
        }
    }
}
