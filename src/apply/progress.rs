//! Progress lines for long work: one plain line per step on stderr with the elapsed time, so
//! that a terminal and a log file read the same.

use std::time::Instant;

#[derive(Debug)]
pub struct Progress {
    start: Instant,
    quiet: bool,
}

impl Progress {
    pub fn new(quiet: bool) -> Self {
        Progress {
            start: Instant::now(),
            quiet,
        }
    }

    pub fn line(&self, message: &str) {
        tracing::debug!(target: "dockhand::progress", "{message}");
        if !self.quiet {
            eprintln!("[{:>6.1}s] {message}", self.start.elapsed().as_secs_f64());
        }
    }
}
