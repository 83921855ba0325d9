//! Progress and the step journal of one apply.
//!
//! Every step shows once on stderr: a plain line with the elapsed time, or a log event where
//! logging shows progress (see [`Progress::line`]), and, when a deploy record is open, is written to it with its duration,
//! outcome and output tail as soon as it ends — a crash loses at most the step in flight.
//! Long waits print a line every few seconds with the time waited so far.
//!
//! Text that reaches the record passes through a [`Redactor`] first: env values of the desired
//! state never appear in it, even when a hook prints its environment.

use std::fmt::Display;
use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use crate::history::{now_ms, StepRecord, Store};

/// Whether progress is shown as log events (the subscriber `main` set up enables target
/// `dockhand::progress` at info) rather than as plain lines.
fn logged() -> bool {
    tracing::enabled!(target: "dockhand::progress", tracing::Level::INFO)
}

/// A progress line outside an apply (e.g. `pin` asking registries), shown once like
/// [`Progress::line`]'s, without the elapsed time.
pub fn note(message: &str) {
    if logged() {
        tracing::info!(target: "dockhand::progress", "{message}");
    } else {
        eprintln!("{message}");
    }
}

/// Replaces known secret values in free text with `***`.
#[derive(Debug, Default, Clone)]
pub struct Redactor {
    secrets: Vec<String>,
}

impl Redactor {
    /// Values shorter than 4 characters are not redacted: masking every `1` or `on` in hook
    /// output would hide more than it protects.
    pub fn new(values: impl IntoIterator<Item = String>) -> Redactor {
        let mut secrets: Vec<String> = values.into_iter().filter(|v| v.len() >= 4).collect();
        // Longest first, so a value that contains another is masked whole.
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        secrets.dedup();
        Redactor { secrets }
    }

    pub fn redact(&self, text: &str) -> String {
        let mut out = text.to_string();
        for s in &self.secrets {
            if out.contains(s.as_str()) {
                out = out.replace(s.as_str(), "***");
            }
        }
        out
    }
}

struct Journal {
    store: Arc<Store>,
    deploy: i64,
}

pub struct Progress {
    start: Instant,
    journal: Option<Journal>,
    redactor: Redactor,
}

impl std::fmt::Debug for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Progress")
            .field("recording", &self.journal.is_some())
            .finish_non_exhaustive()
    }
}

impl Default for Progress {
    fn default() -> Self {
        Progress::new()
    }
}

impl Progress {
    /// Lines on stderr only; see [`Progress::recording`] to journal the steps too.
    pub fn new() -> Self {
        Progress {
            start: Instant::now(),
            journal: None,
            redactor: Redactor::default(),
        }
    }

    /// Also write every step to `deploy` in `store`.
    #[must_use]
    pub fn recording(mut self, store: Arc<Store>, deploy: i64) -> Self {
        self.journal = Some(Journal { store, deploy });
        self
    }

    #[must_use]
    pub fn redacting(mut self, redactor: Redactor) -> Self {
        self.redactor = redactor;
        self
    }

    pub fn redactor(&self) -> &Redactor {
        &self.redactor
    }

    /// Shows one progress line, once: as an info event of target `dockhand::progress` where
    /// logging shows it (the agent, `--log-format json`, `-v`), else as a plain line on stderr
    /// with the elapsed time, for the person at a one-shot verb.
    pub fn line(&self, message: &str) {
        let elapsed = self.start.elapsed().as_secs_f64();
        if logged() {
            tracing::info!(target: "dockhand::progress", elapsed_s = elapsed, "{message}");
        } else {
            eprintln!("[{elapsed:>6.1}s] {message}");
        }
    }

    /// Runs `work` as the step `name` of `target`, recording its duration and outcome.
    pub async fn step<T, E: Display>(
        &self,
        target: &str,
        name: &str,
        work: impl Future<Output = Result<T, E>>,
    ) -> Result<T, E> {
        let started_ms = now_ms();
        let t = Instant::now();
        let result = work.await;
        let (outcome, error) = match &result {
            Ok(_) => ("ok", String::new()),
            Err(e) => ("failed", e.to_string()),
        };
        self.record(StepRecord {
            target: target.to_string(),
            name: name.to_string(),
            started_ms,
            duration_ms: i64::try_from(t.elapsed().as_millis()).unwrap_or(i64::MAX),
            outcome: outcome.to_string(),
            output: String::new(),
            error,
        });
        result
    }

    /// Records a finished step (redacting its output and error first) in the deploy record,
    /// when one is open.
    pub fn record(&self, mut step: StepRecord) {
        step.output = self.redactor.redact(&step.output);
        step.error = self.redactor.redact(&step.error);
        if let Some(j) = &self.journal {
            if let Err(e) = j.store.record_step(j.deploy, &step) {
                // The deploy goes on: losing a journal line must not stop a release half way.
                self.line(&format!("warning: deploy record not updated: {e}"));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Redactor;

    #[test]
    fn masks_longest_value_first_and_skips_short_ones() {
        let r = Redactor::new(["hunter2".into(), "hunter2-extra".into(), "on".into()]);
        assert_eq!(
            r.redact("pw=hunter2-extra old=hunter2 debug=on"),
            "pw=*** old=*** debug=on"
        );
    }
}
