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
use dockhand::reconcile;

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
    let json = cli.log_format == LogFormat::Json;
    if json {
        // Apply's progress is part of a JSON log whatever the level asked for: it is printed
        // as a log event where logging shows it and as a plain line otherwise
        // (`apply::progress`), and a JSON stderr holds nothing but JSON lines.
        if let Ok(d) = "dockhand::progress=info".parse() {
            filter = filter.add_directive(d);
        }
    }
    // Escape codes only for a terminal (NO_COLOR, CLICOLOR and TERM=dumb honoured): a journal,
    // a pipe or a log file gets plain text.
    let ansi = anstream::AutoStream::choice(&std::io::stderr()) != anstream::ColorChoice::Never;
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    if json {
        logs.json().init();
    } else {
        logs.init();
    }
    let json_out = cli.json();
    match cli::run(cli).await {
        Ok(code) => code,
        Err(e) => {
            if json_out && e.downcast_ref::<cli::json::Printed>().is_none() {
                // `--json`: stdout holds one JSON document whatever happened.
                println!("{}", cli::json::error(&e));
            }
            // An invalid desired state is a full report already (every problem, each with its
            // hint); anything else is one error chain.
            let text = match e.downcast_ref::<reconcile::Error>() {
                Some(invalid @ reconcile::Error::Invalid { .. }) => invalid.to_string(),
                _ => format!("error: {}", reconcile::report(e.as_ref())),
            };
            if json {
                tracing::error!("{text}");
            } else {
                eprintln!("{text}");
            }
            ExitCode::FAILURE
        }
    }
}
