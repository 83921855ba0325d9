//! A container's logs through the Engine's logs API, stdout and stderr kept apart.

use std::io::Write;

use bollard::container::LogOutput;
use bollard::query_parameters::LogsOptionsBuilder;
use bollard::Docker;
use futures_util::StreamExt;

use super::OpsError;
use crate::observe::EngineError;

/// What to read of the log.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Options {
    /// Keep streaming new lines until the container stops (or the reader goes away).
    pub follow: bool,
    /// Only the last N lines of what is there already.
    pub tail: Option<u64>,
    /// Only lines written at or after this Unix time, in seconds.
    pub since: Option<i64>,
    /// Each line with the Engine's RFC 3339 timestamp.
    pub timestamps: bool,
}

/// `--since`: a duration back from `now` (`10m`, `2h30m`) or a Unix timestamp in seconds.
///
/// # Errors
/// [`OpsError::BadSince`].
pub fn parse_since(text: &str, now: i64) -> Result<i64, OpsError> {
    if let Ok(ts) = text.parse::<i64>() {
        return Ok(ts);
    }
    crate::model::duration::parse(text)
        .and_then(|d| i64::try_from(d.as_secs()).ok())
        .map(|back| now.saturating_sub(back))
        .ok_or_else(|| OpsError::BadSince { since: text.into() })
}

/// Where the lines go: the container's stdout to `out` and its stderr to `err`, or, as
/// `json`, both to `out` as one object per line: `{"stream":"stdout","line":"…"}` (the line
/// without its newline; invalid UTF-8 replaced).
pub struct Sink<O, E> {
    pub out: O,
    pub err: E,
    pub json: bool,
}

/// Streams `container`'s log into `sink` until the Engine ends it (at once without
/// `follow`). A reader that went away (a closed pipe) ends it quietly.
///
/// # Errors
/// [`OpsError::Engine`] when the Engine refuses or the stream breaks.
pub async fn stream<O: Write, E: Write>(
    docker: &Docker,
    container: &str,
    options: &Options,
    sink: &mut Sink<O, E>,
) -> Result<(), OpsError> {
    let mut q = LogsOptionsBuilder::new()
        .stdout(true)
        .stderr(true)
        .follow(options.follow)
        .timestamps(options.timestamps)
        .tail(
            &options
                .tail
                .map_or_else(|| "all".to_string(), |n| n.to_string()),
        );
    if let Some(since) = options.since {
        q = q.since(i32::try_from(since).unwrap_or(i32::MAX));
    }
    let mut logs = docker.logs(container, Some(q.build()));
    while let Some(chunk) = logs.next().await {
        let chunk = chunk.map_err(EngineError::api(format!("reading the logs of {container}")))?;
        match write(sink, &chunk) {
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(()),
            // Our own stdout cannot be written: nothing is left to show the lines to.
            Err(_) => return Ok(()),
            Ok(()) => {}
        }
    }
    Ok(())
}

fn write<O: Write, E: Write>(sink: &mut Sink<O, E>, chunk: &LogOutput) -> std::io::Result<()> {
    let (name, bytes) = match chunk {
        LogOutput::StdErr { message } => ("stderr", message),
        LogOutput::StdOut { message } | LogOutput::Console { message } => ("stdout", message),
        LogOutput::StdIn { .. } => return Ok(()),
    };
    if sink.json {
        let text = String::from_utf8_lossy(bytes);
        for line in text.split_inclusive('\n') {
            let line = line.strip_suffix('\n').unwrap_or(line);
            let obj = serde_json::json!({"stream": name, "line": line});
            writeln!(sink.out, "{obj}")?;
        }
        return sink.out.flush();
    }
    if name == "stderr" {
        sink.err.write_all(bytes)?;
        sink.err.flush()
    } else {
        sink.out.write_all(bytes)?;
        sink.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_is_a_duration_back_or_a_timestamp() {
        assert_eq!(parse_since("10m", 10_000).unwrap(), 9_400);
        assert_eq!(parse_since("1h30m", 10_000).unwrap(), 4_600);
        assert_eq!(parse_since("1700000000", 10_000).unwrap(), 1_700_000_000);
        assert!(parse_since("yesterday", 10_000).is_err());
        assert!(parse_since("", 10_000).is_err());
    }

    #[test]
    fn streams_stay_apart_and_json_is_one_object_per_line() {
        let mut sink = Sink {
            out: Vec::new(),
            err: Vec::new(),
            json: false,
        };
        let out = LogOutput::StdOut {
            message: "a\n".into(),
        };
        let err = LogOutput::StdErr {
            message: "b\n".into(),
        };
        write(&mut sink, &out).unwrap();
        write(&mut sink, &err).unwrap();
        assert_eq!((&sink.out[..], &sink.err[..]), (&b"a\n"[..], &b"b\n"[..]));
        let mut sink = Sink {
            out: Vec::new(),
            err: Vec::new(),
            json: true,
        };
        write(&mut sink, &err).unwrap();
        let two = LogOutput::StdOut {
            message: "x\ny\n".into(),
        };
        write(&mut sink, &two).unwrap();
        assert_eq!(
            String::from_utf8(sink.out).unwrap(),
            "{\"stream\":\"stderr\",\"line\":\"b\"}\n{\"stream\":\"stdout\",\"line\":\"x\"}\n{\"stream\":\"stdout\",\"line\":\"y\"}\n"
        );
        assert!(sink.err.is_empty());
    }
}
