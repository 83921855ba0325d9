//! The agent's own `process_*` metrics, read from `/proc/self` with the names, types and units
//! of the Prometheus client libraries' process collectors, so that stock dashboards and
//! alerts work unchanged. Edge code: it reads `/proc` (in-memory files, no disk) on each
//! scrape.
//!
//! Read with the `procfs` crate (what the `prometheus` crate's own process collector uses),
//! not that collector: dockhand renders its text format itself and needs no registry.

use std::fmt::Write as _;

/// What `/proc/self` says of the agent, at one scrape.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Process {
    /// User and system CPU time, in seconds.
    pub cpu_seconds: f64,
    /// Resident set size, in bytes.
    pub resident_bytes: u64,
    /// Virtual memory size, in bytes.
    pub virtual_bytes: u64,
    pub open_fds: u64,
    /// The soft limit on open file descriptors; `None` when unlimited.
    pub max_fds: Option<u64>,
    /// When the process started, in seconds since the Unix epoch.
    pub start_time_seconds: f64,
}

/// Reads `/proc/self`.
///
/// # Errors
/// `/proc` is not mounted or not readable (not Linux, a locked-down sandbox).
pub fn read() -> procfs::ProcResult<Process> {
    let me = procfs::process::Process::myself()?;
    let stat = me.stat()?;
    let ticks = procfs::ticks_per_second() as f64;
    let max_fds = match me.limits()?.max_open_files.soft_limit {
        procfs::process::LimitValue::Value(n) => Some(n),
        procfs::process::LimitValue::Unlimited => None,
    };
    Ok(Process {
        cpu_seconds: (stat.utime + stat.stime) as f64 / ticks,
        resident_bytes: stat.rss * procfs::page_size(),
        virtual_bytes: stat.vsize,
        open_fds: me.fd_count()? as u64,
        max_fds,
        // `starttime` counts clock ticks since boot.
        start_time_seconds: procfs::boot_time_secs()? as f64 + stat.starttime as f64 / ticks,
    })
}

/// The exposition of [`read`]; empty (the series absent, not wrong) when `/proc` cannot be
/// read, which is logged at debug level.
pub fn text() -> String {
    match read() {
        Ok(p) => render(&p),
        Err(e) => {
            tracing::debug!("metrics: /proc/self cannot be read: {e}");
            String::new()
        }
    }
}

fn render(p: &Process) -> String {
    let series: [(&str, &str, &str, Option<String>); 6] = [
        (
            "process_cpu_seconds_total",
            "counter",
            "Total user and system CPU time spent in seconds.",
            Some(p.cpu_seconds.to_string()),
        ),
        (
            "process_resident_memory_bytes",
            "gauge",
            "Resident memory size in bytes.",
            Some(p.resident_bytes.to_string()),
        ),
        (
            "process_virtual_memory_bytes",
            "gauge",
            "Virtual memory size in bytes.",
            Some(p.virtual_bytes.to_string()),
        ),
        (
            "process_open_fds",
            "gauge",
            "Number of open file descriptors.",
            Some(p.open_fds.to_string()),
        ),
        (
            "process_max_fds",
            "gauge",
            "Maximum number of open file descriptors.",
            p.max_fds.map(|m| m.to_string()),
        ),
        (
            "process_start_time_seconds",
            "gauge",
            "Start time of the process since unix epoch in seconds.",
            Some(p.start_time_seconds.to_string()),
        ),
    ];
    let mut out = String::new();
    for (name, kind, help, value) in series {
        // An unlimited descriptor limit has no number: the series is left out.
        if let Some(value) = value {
            let _ = write!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n"
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_reads_plausibly() {
        let p = read().unwrap();
        assert!(p.resident_bytes > 1024 * 1024, "{p:?}");
        assert!(p.virtual_bytes >= p.resident_bytes, "{p:?}");
        assert!(p.open_fds >= 3, "{p:?}");
        assert!(p.max_fds.is_none_or(|m| m >= p.open_fds), "{p:?}");
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        // A test binary started within the last hour, and not in the future (ticks are
        // 10 ms; the boot time is whole seconds).
        assert!(
            p.start_time_seconds <= now + 1.0 && p.start_time_seconds > now - 3600.0,
            "{p:?}, now {now}"
        );
        let text = text();
        assert!(text.contains("\nprocess_resident_memory_bytes "), "{text}");
        assert!(text.contains("# TYPE process_cpu_seconds_total counter\n"));
    }
}
