//! `dockhand run` as a child process for the benchmarks: its stderr in a file, its HTTP port,
//! its /metrics, and its resource use read from /proc. Killed on drop.

#![allow(dead_code)]

use std::io::{BufRead, Write};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::Stack;

pub struct Agent {
    pub child: Child,
    log: std::path::PathBuf,
    /// Every stderr line with the moment it arrived (for phase timings).
    lines: Arc<Mutex<Vec<(Instant, String)>>>,
}

impl Agent {
    pub fn start(s: &Stack, extra: &[&str]) -> Agent {
        Agent::start_env(s, extra, &[])
    }

    /// [`Agent::start`] with extra environment (e.g. DOCKER_HOST through a counting proxy).
    pub fn start_env(s: &Stack, extra: &[&str], env: &[(&str, &str)]) -> Agent {
        let p = s.path().to_string_lossy().to_string();
        let state = s.state_dir().to_string_lossy().to_string();
        let mut args = vec!["run", "--source", &p, "--path", ".", "--worktree"];
        args.extend(["--state-dir", &state, "--listen", "127.0.0.1:0"]);
        args.extend(extra);
        Agent::spawn_env(s, &args, env)
    }

    /// The binary with exactly `args` (e.g. `run` on a remote), its log beside the stack.
    pub fn spawn(s: &Stack, args: &[&str]) -> Agent {
        Agent::spawn_env(s, args, &[])
    }

    pub fn spawn_env(s: &Stack, args: &[&str], env: &[(&str, &str)]) -> Agent {
        let log = s.path().join("agent.log");
        let mut cmd = Command::new(super::bin());
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("starting dockhand run");
        let lines: Arc<Mutex<Vec<(Instant, String)>>> = Arc::default();
        let (sink, stderr) = (lines.clone(), child.stderr.take().expect("stderr"));
        let mut file = std::fs::File::create(&log).expect("agent log");
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                let _ = writeln!(file, "{line}");
                sink.lock().expect("lock").push((Instant::now(), line));
            }
        });
        Agent { child, log, lines }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// When the first stderr line containing `text` arrived after `after`.
    pub fn line_after(&self, after: Instant, text: &str) -> Option<Instant> {
        self.lines
            .lock()
            .expect("lock")
            .iter()
            .find(|(t, l)| *t >= after && l.contains(text))
            .map(|(t, _)| *t)
    }

    /// The agent's HTTP address, from its "listening on" line.
    pub fn addr(&self) -> String {
        let t = Instant::now();
        loop {
            if let Some(a) = self
                .log()
                .lines()
                .find_map(|l| l.split("listening on http://").nth(1))
                .and_then(|r| r.split_whitespace().next())
            {
                return a.to_string();
            }
            assert!(t.elapsed() < Duration::from_secs(30), "{}", self.log());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// (RSS bytes, CPU seconds used so far) from /proc.
    pub fn usage(&self) -> (u64, f64) {
        let rss_kb = self.status_kb("VmRSS:");
        let pid = self.child.id();
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        // Fields after the command name (which may hold spaces): utime is the 12th, stime the 13th.
        let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
        let f: Vec<u64> = rest
            .split_whitespace()
            .map(|x| x.parse().unwrap_or(0))
            .collect();
        let ticks = f.get(11).copied().unwrap_or(0) + f.get(12).copied().unwrap_or(0);
        (rss_kb * 1024, ticks as f64 / 100.0)
    }

    /// A `kB` line of /proc/PID/status, in kB.
    pub fn status_kb(&self, key: &str) -> u64 {
        let pid = self.child.id();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    }

    /// Polls /status until the agent reports the desired state converged.
    pub fn wait_in_sync(&self, addr: &str, within: Duration) {
        let t = Instant::now();
        while !get(addr, "/status").contains("\"in_sync\": true") {
            assert!(t.elapsed() < within, "not in sync:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn get(addr: &str, path: &str) -> String {
    let r = ureq::get(&format!("http://{addr}{path}"))
        .timeout(Duration::from_secs(10))
        .call();
    r.ok()
        .and_then(|r| r.into_string().ok())
        .unwrap_or_default()
}

/// One unlabelled sample of the agent's /metrics (NaN when absent).
pub fn metric(addr: &str, name: &str) -> f64 {
    get(addr, "/metrics")
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(f64::NAN)
}
