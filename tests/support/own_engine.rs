//! A second, real Docker Engine that belongs to one test, so the test can restart it.
//!
//! The Engine every other test shares must never be restarted, and a second dockerd beside
//! it in the same network namespace is not safe: it manages its own `docker0` and iptables
//! rules, and on this Engine that deleted the host's `docker0`. So this one runs in a
//! network namespace of its own (its own `docker0`, bridges and iptables), in a private
//! mount namespace (its mounts vanish with it), with its own config file, data root, exec
//! root, pid file, socket, managed containerd and containerd namespaces. The host's links,
//! routes, rules and daemon are never touched.
//!
//! Images pull exactly as on the shared Engine: a forwarder listens inside the namespace on
//! the registry's own 127.0.0.1 port and connects out to the real registry, so the same
//! `127.0.0.1:PORT/repo:tag@sha256:…` references resolve to the same digests.

#![allow(dead_code)]

use std::fs::File;
use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::sched::{setns, CloneFlags};

pub struct OwnEngine {
    netns: String,
    dir: tempfile::TempDir,
    child: Option<Child>,
    starts: u32,
    forwarder_stop: Arc<AtomicBool>,
}

impl OwnEngine {
    /// Starts the Engine and waits until it answers. Needs root and `dockerd` on PATH (the
    /// machine's Engine package); fails loudly, never skips, when either is missing.
    pub fn start(prefix: &str) -> OwnEngine {
        super::require_env();
        let netns = super::unique(prefix);
        let out = Command::new("ip")
            .args(["netns", "add", &netns])
            .output()
            .expect("running ip (iproute2)");
        assert!(
            out.status.success(),
            "this test runs its own dockerd in a network namespace of its own and needs root: ip netns add: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let dir = tempfile::Builder::new()
            .prefix("dh-engine")
            .tempdir()
            .expect("tempdir");
        let mut e = OwnEngine {
            netns,
            dir,
            child: None,
            starts: 0,
            forwarder_stop: Arc::new(AtomicBool::new(false)),
        };
        e.ip(&["link", "set", "lo", "up"]);
        // No daemon.json of the machine's (it names the shared Engine's data root).
        std::fs::write(e.dir.path().join("daemon.json"), "{}\n").expect("daemon.json");
        e.forward_registry();
        e.launch();
        e
    }

    /// `DOCKER_HOST` for dockhand and the docker CLI.
    pub fn host(&self) -> String {
        format!("unix://{}", self.socket().display())
    }

    fn socket(&self) -> PathBuf {
        self.dir.path().join("docker.sock")
    }

    fn netns_path(&self) -> PathBuf {
        Path::new("/var/run/netns").join(&self.netns)
    }

    fn ip(&self, args: &[&str]) {
        let out = Command::new("ip")
            .args(["-n", &self.netns])
            .args(args)
            .output()
            .expect("ip");
        assert!(
            out.status.success(),
            "ip -n {} {args:?}: {out:?}",
            self.netns
        );
    }

    /// The docker CLI against this Engine.
    pub fn docker(&self, args: &[&str]) -> Output {
        Command::new("docker")
            .env("DOCKER_HOST", self.host())
            .args(args)
            .output()
            .expect("running docker")
    }

    pub fn docker_ok(&self, args: &[&str]) -> String {
        let out = self.docker(args);
        assert!(
            out.status.success(),
            "docker {args:?} on the test's own Engine failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// Starts dockerd on this Engine's data root and waits (at most 60 s) until it answers.
    pub fn launch(&mut self) {
        assert!(self.child.is_none(), "the Engine is already running");
        self.starts += 1;
        let d = self.dir.path();
        let log = File::create(d.join(format!("dockerd.{}.log", self.starts))).expect("log");
        let ns = format!("--net={}", self.netns_path().display());
        let cns = format!("dh{}", self.netns);
        let child = Command::new("nsenter")
            .arg(&ns)
            .args(["unshare", "--mount", "--propagation", "slave", "dockerd"])
            .arg("--config-file")
            .arg(d.join("daemon.json"))
            .arg("--host")
            .arg(self.host())
            .arg("--data-root")
            .arg(d.join("data"))
            .arg("--exec-root")
            .arg(d.join("exec"))
            .arg("--pidfile")
            .arg(d.join("docker.pid"))
            // vfs works on any file system, including the overlay this machine's root may be.
            .args(["--storage-driver", "vfs", "--iptables=false"])
            .args(["--containerd-namespace", &cns])
            .args(["--containerd-plugins-namespace", &format!("{cns}p")])
            .args(["--shutdown-timeout", "5"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("starting dockerd (from the machine's docker.io package): {e}")
            });
        self.child = Some(child);
        let started = Instant::now();
        loop {
            let ok = self
                .docker(&["version", "--format", "{{.Server.Version}}"])
                .status
                .success();
            if ok {
                break;
            }
            if let Some(c) = self.child.as_mut() {
                if let Ok(Some(status)) = c.try_wait() {
                    self.child = None;
                    panic!(
                        "the test's own dockerd exited {status} at start:\n{}",
                        self.log_tail()
                    );
                }
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "the test's own dockerd did not answer within 60 s:\n{}",
                self.log_tail()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Stops dockerd as `systemctl stop docker` would (SIGTERM: it stops the containers and
    /// its containerd, then exits); SIGKILL after `within`.
    pub fn stop(&mut self, within: Duration) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let started = Instant::now();
        while started.elapsed() < within {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Stop then start, as `systemctl restart docker`; returns how long the Engine was away.
    pub fn restart(&mut self) -> Duration {
        let started = Instant::now();
        self.stop(Duration::from_secs(60));
        self.launch();
        started.elapsed()
    }

    fn log_tail(&self) -> String {
        let mut text = String::new();
        let path = self.dir.path().join(format!("dockerd.{}.log", self.starts));
        if let Ok(mut f) = File::open(path) {
            let _ = f.read_to_string(&mut text);
        }
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// Listens inside the namespace on the registry's port and pipes each connection to the
    /// real registry. The listening socket is made after `setns` into the namespace, and the
    /// thread returns to the host's namespace before it connects out.
    fn forward_registry(&self) {
        let registry = super::registry();
        let port: u16 = registry
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("registry port");
        let target = File::open(self.netns_path()).expect("open netns");
        let stop = self.forwarder_stop.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let home = File::open("/proc/thread-self/ns/net").expect("own netns");
            let bound = setns(&target, CloneFlags::CLONE_NEWNET)
                .map_err(|e| format!("setns: {e}"))
                .and_then(|_| {
                    TcpListener::bind(("127.0.0.1", port)).map_err(|e| format!("bind: {e}"))
                });
            let back = setns(&home, CloneFlags::CLONE_NEWNET);
            let listener = match (bound, back) {
                (Ok(l), Ok(())) => l,
                (Err(e), _) => return tx.send(Err(e)).unwrap_or(()),
                (_, Err(e)) => return tx.send(Err(format!("setns back: {e}"))).unwrap_or(()),
            };
            listener.set_nonblocking(true).expect("nonblocking");
            let _ = tx.send(Ok(()));
            while !stop.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((client, _)) => {
                        let _ = client.set_nonblocking(false);
                        let Ok(upstream) = TcpStream::connect(&registry) else {
                            continue;
                        };
                        pipe(client, upstream);
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        });
        let ready = rx
            .recv_timeout(Duration::from_secs(10))
            .unwrap_or_else(|_| Err("no answer".into()));
        assert!(
            ready.is_ok(),
            "forwarding the registry into the test's namespace: {ready:?}"
        );
    }
}

fn pipe(a: TcpStream, b: TcpStream) {
    for (mut from, mut to) in [
        (a.try_clone().expect("clone"), b.try_clone().expect("clone")),
        (b, a),
    ] {
        std::thread::spawn(move || {
            let _ = std::io::copy(&mut from, &mut to);
            let _ = to.shutdown(std::net::Shutdown::Write);
        });
    }
}

impl Drop for OwnEngine {
    fn drop(&mut self) {
        // Containers first, while the Engine answers: they run in namespaces of their own,
        // which the sweep of this Engine's namespace below would not reach.
        if self.child.is_some() {
            let ids = self.docker(&["ps", "-aq"]);
            let ids = String::from_utf8_lossy(&ids.stdout).to_string();
            let ids: Vec<&str> = ids.split_whitespace().collect();
            if !ids.is_empty() {
                let mut args = vec!["rm", "-f"];
                args.extend(ids);
                let _ = self.docker(&args);
            }
        }
        self.stop(Duration::from_secs(30));
        self.forwarder_stop.store(true, Ordering::SeqCst);
        // Anything of this Engine's still alive (a shim, a container): it lives in the
        // namespace, so the namespace names every one of them.
        if let Ok(out) = Command::new("ip")
            .args(["netns", "pids", &self.netns])
            .output()
        {
            for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                if let Ok(pid) = pid.parse::<i32>() {
                    let _ = nix::sys::signal::kill(
                        nix::unistd::Pid::from_raw(pid),
                        nix::sys::signal::Signal::SIGKILL,
                    );
                }
            }
        }
        let _ = Command::new("ip")
            .args(["netns", "del", &self.netns])
            .status();
    }
}
