//! Shared helpers for tests that drive the real Docker Engine and the local registry.
//! Each test owns a uniquely named stack; [`Stack`]'s drop removes everything carrying that
//! stack's labels (and any foreign container the test registered), even when the test fails.

#![allow(dead_code)]

pub mod agent;
pub mod counting_proxy;
pub mod githttp;
pub mod hostile;
pub mod image;
pub mod own_engine;
pub mod traefik;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

pub fn registry() -> String {
    std::env::var("DOCKHAND_TEST_REGISTRY").unwrap_or_else(|_| "127.0.0.1:5000".into())
}

/// Fails loudly (never skips) when the Engine or the registry is missing.
pub fn require_env() {
    let ok = Command::new("docker")
        .args(["info", "--format", "{{.ServerVersion}}"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(ok, "no Docker Engine answers (docker info failed): these tests need a real Engine.\n  hint: run scripts/test-env.sh (as root) to install and start one");
    assert!(
        image::registry_up(&registry()),
        "no registry answers at http://{}/v2/: these tests need a real local registry.\n  hint: run scripts/test-env.sh (as root) to start one",
        registry()
    );
}

pub fn docker(args: &[&str]) -> Output {
    Command::new("docker")
        .args(args)
        .output()
        .expect("running docker")
}

pub fn docker_ok(args: &[&str]) -> String {
    let out = docker(args);
    assert!(
        out.status.success(),
        "docker {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A unique lowercase name: test-local counter, process id and time, so parallel tests and
/// reruns never collide.
pub fn unique(prefix: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "{prefix}{}x{}x{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst),
        nanos % 100_000
    )
}

/// A test's stack: its desired-state directory and the cleanup guard.
pub struct Stack {
    pub name: String,
    pub dir: tempfile::TempDir,
    pub foreign: Vec<String>,
}

impl Stack {
    pub fn new(prefix: &str) -> Stack {
        require_env();
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(dir.path().join("stacks")).expect("mkdir");
        let name = unique(prefix);
        // Each test is its own project, so that one test's plan never prunes another's stack.
        std::fs::write(
            dir.path().join("dockhand.yaml"),
            format!("version: 1\nproject: {name}\n"),
        )
        .expect("write");
        Stack {
            name,
            dir,
            foreign: Vec::new(),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes `stacks/<name>.yaml` with `body` (everything after the `stack:` line).
    pub fn write(&self, body: &str) {
        std::fs::write(
            self.path().join(format!("stacks/{}.yaml", self.name)),
            format!("stack: {}\n{body}", self.name),
        )
        .expect("write stack");
    }

    /// Pushes an image unique to this stack; `marker` makes its digest differ from others.
    pub fn image(&self, marker: &str) -> String {
        self.image_with(marker, &["/bin/httpd", "-f", "-p", "8080", "-h", "/www"])
    }

    /// [`Stack::image`] with another command (e.g. one that starts serving late).
    pub fn image_with(&self, marker: &str, cmd: &[&str]) -> String {
        let layer = image::layer(&[("index.html", marker), ("readyz", "ok\n")]);
        let repo = format!("dockhand-test/{}", self.name);
        let digest = image::push(&registry(), &repo, marker, &layer, cmd).expect("push test image");
        format!("{}/{repo}:{marker}@{digest}", registry())
    }

    pub fn container(&self, service: &str) -> String {
        format!("{}-{service}", self.name)
    }

    /// `args` followed by the flags that point dockhand at this stack's files and record.
    pub fn with_source(&self, args: &[&str]) -> Vec<String> {
        let mut full: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        full.extend([
            "--source".to_string(),
            self.path().to_string_lossy().to_string(),
            "--path".to_string(),
            ".".to_string(),
            "--worktree".to_string(),
            "--state-dir".to_string(),
            self.state_dir().to_string_lossy().to_string(),
        ]);
        full
    }

    /// Runs the dockhand binary on this stack's directory.
    pub fn dockhand(&self, args: &[&str]) -> Run {
        self.dockhand_env(args, &[])
    }

    /// [`Stack::dockhand`] with extra environment (e.g. DOCKER_HOST).
    pub fn dockhand_env(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        let full = self.with_source(args);
        let full: Vec<&str> = full.iter().map(String::as_str).collect();
        run(&full, env)
    }

    /// Starts the dockhand binary on this stack's directory with stderr piped (to watch its
    /// progress lines and kill it at a chosen step).
    pub fn spawn_dockhand(&self, args: &[&str]) -> std::process::Child {
        let p = self.path().to_string_lossy().to_string();
        let state = self.state_dir().to_string_lossy().to_string();
        Command::new(bin())
            .args(args)
            .args([
                "--source",
                &p,
                "--path",
                ".",
                "--worktree",
                "--state-dir",
                &state,
            ])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("starting dockhand")
    }

    /// This test's deploy record directory (beside, not inside, the desired state).
    pub fn state_dir(&self) -> std::path::PathBuf {
        self.path().join("state")
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        let label = format!("label=dockhand.stack={}", self.name);
        let ids = docker(&["ps", "-aq", "--filter", &label]);
        for id in String::from_utf8_lossy(&ids.stdout).split_whitespace() {
            let _ = docker(&["rm", "-f", id]);
        }
        for f in &self.foreign {
            let _ = docker(&["rm", "-f", f]);
        }
        let nets = docker(&["network", "ls", "-q", "--filter", &label]);
        for id in String::from_utf8_lossy(&nets.stdout).split_whitespace() {
            let _ = docker(&["network", "rm", id]);
        }
        let vols = docker(&["volume", "ls", "-q", "--filter", &label]);
        for id in String::from_utf8_lossy(&vols.stdout).split_whitespace() {
            let _ = docker(&["volume", "rm", id]);
        }
    }
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl std::fmt::Debug for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {}\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// The binary under test: `DOCKHAND_BIN` (scripts/bench.sh points it at the release build,
/// the one users run) or the one cargo built for this target.
pub fn bin() -> PathBuf {
    std::env::var_os("DOCKHAND_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_dockhand")))
}

/// Which binary runs, for benchmark reports: the release build users run (scripts/bench.sh
/// sets `DOCKHAND_BIN`) or cargo's own for this target.
pub fn bin_description() -> String {
    match std::env::var("DOCKHAND_BIN") {
        Ok(p) => format!("binary {p}"),
        Err(_) => format!(
            "cargo's {} binary",
            if cfg!(debug_assertions) {
                "debug"
            } else {
                "bench-profile"
            }
        ),
    }
}

/// Runs `cmd` with `input` on its standard input (then closed) and its output captured.
pub fn output_with_stdin(mut cmd: Command, input: &[u8]) -> Output {
    use std::io::Write as _;
    let mut child = cmd
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawning");
    let mut stdin = child.stdin.take().expect("piped stdin");
    stdin.write_all(input).expect("writing stdin");
    drop(stdin);
    child.wait_with_output().expect("waiting")
}

pub fn run(args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut cmd = Command::new(bin());
    cmd.args(args).stdin(std::process::Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("running dockhand");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Runs git in `dir` as a test identity; panics with git's message on failure.
pub fn git(dir: &Path, args: &[&str]) {
    let out = Command::new("git")
        .args([
            "-c",
            "user.name=dockhand-test",
            "-c",
            "user.email=ops@dockhand.invalid",
            "-c",
            "gpg.format=ssh",
        ])
        .args(args)
        .current_dir(dir)
        .output()
        .expect("git");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Makes the stack's folder a git repository whose `origin` is a bare repository beside it,
/// as a hosted remote would be; returns the remote's file:// URL.
pub fn origin(dir: &Path) -> String {
    std::fs::write(dir.join(".gitignore"), "state/\nremote.git/\nmoved.git/\n").expect("write");
    git(dir, &["init", "-q", "-b", "main"]);
    git(dir, &["init", "-q", "--bare", "-b", "main", "remote.git"]);
    let bare = dir.join("remote.git");
    git(dir, &["remote", "add", "origin", &bare.to_string_lossy()]);
    format!("file://{}", bare.display())
}

/// Writes the stack file, commits it and pushes to `origin` (forced when asked).
pub fn push(s: &Stack, text: &str, msg: &str, force: bool) {
    s.write(text);
    git(s.path(), &["add", "-A"]);
    git(s.path(), &["commit", "-q", "-m", msg]);
    let mut args = vec!["push", "-q", "origin", "main"];
    if force {
        args.insert(1, "--force");
    }
    git(s.path(), &args);
}
