//! dockhand side by side with docker compose v2 and the bare Engine API (issue 6), run with
//! `cargo bench --bench compare` (or `./scripts/bench.sh`, which runs every benchmark and
//! assembles one report):
//!
//! 1. **no-op pass** at 10 / 100 / 500 managed containers: `dockhand plan` (whole process), an
//!    agent's resync pass (`dockhand run`, its own pass timer), and `docker compose up -d` with
//!    nothing to change; Engine API calls per pass counted by a socket proxy;
//! 2. **bulk start** 0 → N: containers per second for `dockhand apply`, `docker compose up -d`
//!    and a bare bollard create+start loop at its best concurrency (swept first);
//! 3. **one change among 50 services**: time to converged after editing one service, against
//!    the bare API doing the same recreate (stop, remove, create, start);
//! 8. **planner scaling**: pure `plan()` at 10 / 100 / 1,000 / 10,000 services.
//!
//! The three tools run alternately in each round on the same engine, with the same image (by
//! digest, already present), one user network and no healthcheck, so the figures compare as
//! ratios. Also writes a PNG of the scaling curves (plotters).
//!
//! Under `cargo test --all-targets` (no `--bench`) it runs a smoke version (3 containers, one
//! round, compose included) so that it cannot rot. Report: stdout, target/bench/compare.md and
//! target/bench/compare.png. Every loop is bounded; every object carries a unique name and is
//! removed at the end, also on panic.

#[path = "../tests/support/mod.rs"]
mod support;

use std::collections::HashMap;
use std::process::Command;
use std::time::{Duration, Instant};

use bollard::models::{ContainerCreateBody, HostConfig, NetworkCreateRequest};
use bollard::query_parameters::{
    CreateContainerOptions, ListContainersOptions, ListNetworksOptions, RemoveContainerOptions,
    StopContainerOptions,
};
use bollard::Docker;
use futures_util::stream::{self, StreamExt};

use dockhand::load::{load, SourceFile};
use dockhand::plan::plan;
use dockhand::plan::simulate::converged;
use support::agent::{self as agent_http, Agent};
use support::counting_proxy::CountingProxy;
use support::Stack;

const STATE: &str = "/var/tmp/dockhand-test-env";

struct Config {
    full: bool,
    planner: Vec<usize>,
    sizes: Vec<usize>,
    /// Rounds per size; the largest size gets fewer (each round there is minutes of Engine work).
    rounds: fn(usize) -> usize,
    sweep_at: usize,
    sweep: Vec<usize>,
    noop_reps: usize,
    change_services: usize,
    change_reps: usize,
}

impl Config {
    fn new(full: bool) -> Config {
        let sizes = std::env::var("DOCKHAND_BENCH_SIZES")
            .ok()
            .map(|v| v.split(',').filter_map(|n| n.trim().parse().ok()).collect());
        if full {
            Config {
                full,
                planner: vec![10, 100, 1_000, 10_000],
                sizes: sizes.unwrap_or_else(|| vec![10, 100, 500]),
                // This Engine starts about 5 containers a second whoever asks, so one round at
                // 500 is some 7 minutes of Engine work for the three tools.
                rounds: |n| match n {
                    0..=10 => 3,
                    11..=100 => 2,
                    _ => 1,
                },
                sweep_at: 50,
                sweep: vec![1, 4, 8, 16],
                noop_reps: 10,
                change_services: 50,
                change_reps: 5,
            }
        } else {
            Config {
                full,
                planner: vec![10, 100],
                sizes: sizes.unwrap_or_else(|| vec![3]),
                rounds: |_| 1,
                sweep_at: 3,
                sweep: vec![1, 4],
                noop_reps: 2,
                change_services: 3,
                change_reps: 1,
            }
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    // `-- --replot REPORT.md`: draw the plot again from a kept report's own tables.
    if let Some(i) = args.iter().position(|a| a == "--replot") {
        let md = args.get(i + 1).expect("--replot needs the report's path");
        let text = std::fs::read_to_string(md).expect("read the report");
        let png = std::path::Path::new(md).with_file_name("compare.png");
        plot(&curves_from_report(&text), &png).expect("plot");
        println!("plot: {}", png.display());
        return;
    }
    let full = args.iter().any(|a| a == "--bench") && !args.iter().any(|a| a == "--smoke");
    let planner_only = args.iter().any(|a| a == "planner");
    let cfg = Config::new(full);
    let mut report = String::from("# dockhand beside docker compose and the bare Engine API\n\n");
    report += &machine();
    let mut curves = Curves::default();
    let planner = planner_scaling(&cfg.planner, &mut curves);
    if !planner_only {
        support::require_env();
        let bench = Bench::new();
        let mut floor = String::new();
        let best = bench.sweep(&cfg, &mut floor);
        report += &bench.scaling(&cfg, best, &mut curves);
        report += &bench.one_change(&cfg);
        report += &floor;
    }
    report += &planner;
    let out = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench");
    std::fs::create_dir_all(&out).expect("mkdir target/bench");
    let png = out.join(if full {
        "compare.png"
    } else {
        "compare-smoke.png"
    });
    match plot(&curves, &png) {
        Ok(()) => {
            report += &format!(
                "![scaling curves]({})\n",
                png.file_name()
                    .map_or(String::new(), |f| f.to_string_lossy().into_owned())
            )
        }
        Err(e) => report += &format!("(no plot: {e})\n"),
    }
    println!("{report}");
    let md = out.join(if full {
        "compare.md"
    } else {
        "compare-smoke.md"
    });
    std::fs::write(&md, &report).expect("write report");
    println!("report: {}\nplot: {}", md.display(), png.display());
}

fn machine() -> String {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0 / 1024.0);
    let docker = sh(
        "docker",
        &[
            "version",
            "--format",
            "{{.Server.Version}} (API {{.Server.APIVersion}})",
        ],
    );
    let compose = sh(&compose_bin(), &["version", "--short"]);
    format!(
        "Machine: {cpus} CPUs, {mem:.0} GiB, Linux {}, Docker Engine {docker}, docker compose {compose}, dockhand {} ({}).\n\n",
        sh("uname", &["-r"]),
        env!("CARGO_PKG_VERSION"),
        support::bin_description(),
    )
}

fn sh(cmd: &str, args: &[&str]) -> String {
    Command::new(cmd)
        .args(args)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|e| format!("({cmd} failed: {e})"))
}

/// Median and p95 (nearest rank) of a sample.
fn stats(v: &[f64]) -> (f64, f64) {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    let pick = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
    (pick(0.5), pick(0.95))
}

fn verdict(met: bool) -> &'static str {
    if met {
        "met"
    } else {
        "**missed**"
    }
}

/// The scaling curves for the plot: (x, y) per series.
#[derive(Default)]
struct Curves {
    noop: Vec<(&'static str, Vec<(f64, f64)>)>,
    bulk: Vec<(&'static str, Vec<(f64, f64)>)>,
    planner: Vec<(f64, f64)>,
}

fn push_point(
    series: &mut Vec<(&'static str, Vec<(f64, f64)>)>,
    name: &'static str,
    p: (f64, f64),
) {
    match series.iter_mut().find(|(n, _)| *n == name) {
        Some((_, v)) => v.push(p),
        None => series.push((name, vec![p])),
    }
}

// ---------------------------------------------------------------------------------------------
// 8. Planner scaling (pure).

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

fn planner_scaling(sizes: &[usize], curves: &mut Curves) -> String {
    let a = format!("sha256:{}", "a".repeat(64));
    let b = format!("sha256:{}", "b".repeat(64));
    let mut out = String::from(
        "## 8. Planner scaling\n\n`plan(desired, actual)` in process (pure: no I/O), over a converged host (no-op) and one where 10 % of the services changed; median and p95 of repeated runs. Target: linear, 1,000 services under 10 ms.\n\n\
         | services | no-op median | no-op p95 | 10 % changed median | per service (no-op) |\n|---:|---:|---:|---:|---:|\n",
    );
    let mut per_service = Vec::new();
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
            stats(&v)
        };
        let (noop, noop95) = time(&host);
        assert!(
            plan(&desired, &host).is_empty(),
            "converged host must plan empty"
        );
        let (chg, _) = time(&changed);
        curves.planner.push((n as f64, noop));
        per_service.push((n, noop * 1e3 / n as f64));
        out += &format!(
            "| {n} | {noop:.3} ms | {noop95:.3} ms | {chg:.3} ms | {:.2} µs |\n",
            noop * 1e3 / n as f64
        );
    }
    if let (Some(first), Some(last)) = (per_service.first(), per_service.last()) {
        let at_1000 = curves
            .planner
            .iter()
            .find(|(n, _)| *n == 1000.0)
            .map(|p| p.1);
        out += &format!(
            "\nPer-service cost from {} to {} services: {:.2} → {:.2} µs ({}). 1,000 services: {}.\n",
            first.0,
            last.0,
            first.1,
            last.1,
            if last.1 < first.1 * 2.0 {
                "linear"
            } else {
                "**worse than linear**"
            },
            at_1000.map_or("not run".into(), |ms| format!(
                "{ms:.2} ms, target < 10 ms {}",
                verdict(ms < 10.0)
            )),
        );
    }
    out + "\n"
}

// ---------------------------------------------------------------------------------------------
// The Engine side.

struct Bench {
    rt: tokio::runtime::Runtime,
    docker: Docker,
    img: String,
    compose: String,
}

/// What one round at one size measured, per tool.
#[derive(Default)]
struct Sample {
    bulk_s: HashMap<&'static str, Vec<f64>>,
    noop_ms: HashMap<&'static str, Vec<f64>>,
    calls: HashMap<&'static str, Vec<f64>>,
    /// The Engine calls of the last `dockhand plan` pass.
    plan_calls: Vec<String>,
    resync: Option<Resync>,
}

struct Resync {
    pass_ms: f64,
    passes: f64,
    calls_per_pass: f64,
    rss_peak: u64,
    cpu_pct: f64,
}

impl Bench {
    fn new() -> Bench {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(4)
            .enable_all()
            .build()
            .expect("tokio runtime");
        let docker = Docker::connect_with_local_defaults().expect("Docker socket");
        // PID 1 that leaves at once on SIGTERM, so that stops cost no grace period.
        let layer = support::image::layer(&[("index.html", "bench\n"), ("readyz", "ok\n")]);
        let cmd = [
            "/bin/sh",
            "-c",
            "trap 'exit 0' TERM; /bin/httpd -f -p 8080 -h /www & wait",
        ];
        let registry = support::registry();
        let digest = support::image::push(&registry, "dockhand-bench/app", "1", &layer, &cmd)
            .expect("push bench image");
        let img = format!("{registry}/dockhand-bench/app:1@{digest}");
        // Present before any timing, for every tool alike.
        support::docker_ok(&["pull", "-q", &img]);
        Bench {
            rt,
            docker,
            img,
            compose: compose_bin(),
        }
    }

    // -- the bare API floor ------------------------------------------------------------------

    /// Creates a network and `n` containers on it, `concurrency` at a time; returns seconds for
    /// the containers (the network is made before the clock starts, as the tools make theirs in
    /// their own first step).
    fn bare_up(&self, prefix: &str, n: usize, concurrency: usize) -> f64 {
        let docker = &self.docker;
        self.rt.block_on(async {
            docker
                .create_network(NetworkCreateRequest {
                    name: format!("{prefix}-net"),
                    labels: Some(HashMap::from([("dockhand-bench".into(), prefix.into())])),
                    ..Default::default()
                })
                .await
                .expect("create network");
            let t = Instant::now();
            let results: Vec<Result<(), bollard::errors::Error>> =
                stream::iter((0..n).map(|i| self.bare_create_start(prefix, i)))
                    .buffer_unordered(concurrency)
                    .collect()
                    .await;
            let took = t.elapsed().as_secs_f64();
            let errors: Vec<String> = results
                .into_iter()
                .filter_map(|r| r.err().map(|e| e.to_string()))
                .collect();
            assert!(errors.is_empty(), "bare API loop: {errors:?}");
            took
        })
    }

    async fn bare_create_start(
        &self,
        prefix: &str,
        i: usize,
    ) -> Result<(), bollard::errors::Error> {
        let name = format!("{prefix}-s{i}");
        self.docker
            .create_container(
                Some(CreateContainerOptions {
                    name: Some(name.clone()),
                    ..Default::default()
                }),
                ContainerCreateBody {
                    image: Some(self.img.clone()),
                    labels: Some(HashMap::from([("dockhand-bench".into(), prefix.into())])),
                    host_config: Some(HostConfig {
                        network_mode: Some(format!("{prefix}-net")),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
            )
            .await?;
        self.docker.start_container(&name, None).await
    }

    /// Removes every container and network carrying `label` (key=value), 16 at a time.
    fn remove_labelled(&self, label: &str) {
        let docker = &self.docker;
        self.rt.block_on(async {
            let filters = HashMap::from([("label".to_string(), vec![label.to_string()])]);
            let list = docker
                .list_containers(Some(ListContainersOptions {
                    all: true,
                    filters: Some(filters.clone()),
                    ..Default::default()
                }))
                .await
                .unwrap_or_default();
            stream::iter(list.into_iter().filter_map(|c| c.id))
                .for_each_concurrent(16, |id| async move {
                    let _ = docker
                        .remove_container(
                            &id,
                            Some(RemoveContainerOptions {
                                force: true,
                                v: true,
                                ..Default::default()
                            }),
                        )
                        .await;
                })
                .await;
            let nets = docker
                .list_networks(Some(ListNetworksOptions {
                    filters: Some(filters),
                }))
                .await
                .unwrap_or_default();
            for n in nets.into_iter().filter_map(|n| n.id) {
                let _ = docker.remove_network(&n).await;
            }
        });
    }

    fn running(&self, label: &str) -> usize {
        let filters = HashMap::from([
            ("label".to_string(), vec![label.to_string()]),
            ("status".to_string(), vec!["running".to_string()]),
        ]);
        self.rt
            .block_on(self.docker.list_containers(Some(ListContainersOptions {
                filters: Some(filters),
                ..Default::default()
            })))
            .map_or(0, |l| l.len())
    }

    /// The bare loop's rate at each concurrency; returns the best concurrency.
    fn sweep(&self, cfg: &Config, report: &mut String) -> usize {
        let n = cfg.sweep_at;
        *report += &format!(
            "## The floor: bare Engine API create+start loop\n\n{n} containers on one network, in process (bollard), at each concurrency; one run each, after a warm-up.\n\n| concurrency | seconds | containers/s |\n|---:|---:|---:|\n"
        );
        let mut best = (1, 0.0);
        // A warm-up run: the first containers after an idle spell are slower for every tool.
        let prefix = support::unique("cmpwarm");
        let _guard = Guard(self, format!("dockhand-bench={prefix}"));
        self.bare_up(&prefix, n.min(20), 4);
        drop(_guard);
        for &c in &cfg.sweep {
            let prefix = support::unique("cmpsweep");
            let guard = Guard(self, format!("dockhand-bench={prefix}"));
            let s = self.bare_up(&prefix, n, c);
            assert_eq!(self.running(&format!("dockhand-bench={prefix}")), n);
            drop(guard);
            let rate = n as f64 / s;
            eprintln!("bench: bare API, concurrency {c}: {rate:.1} containers/s");
            *report += &format!("| {c} | {s:.2} | {rate:.1} |\n");
            if rate > best.1 {
                best = (c, rate);
            }
        }
        *report += &format!(
            "\nBest: concurrency {} ({:.1} containers/s); the bare loop below runs at it. dockhand's apply runs 8 containers at a time.\n\n",
            best.0, best.1
        );
        best.0
    }

    // -- dockhand ----------------------------------------------------------------------------

    fn stack_body(&self, n: usize, env: Option<(usize, usize)>) -> String {
        let mut y = String::from("networks: {net: {}}\nservices:\n");
        for i in 0..n {
            y += &format!("  s{i}:\n    image: {}\n    networks: [net]\n", self.img);
            if let Some((which, value)) = env {
                if which == i {
                    y += &format!("    env: {{REV: \"{value}\"}}\n");
                }
            }
        }
        y
    }

    fn dockhand_round(&self, cfg: &Config, n: usize, sample: &mut Sample, resync: bool) {
        let s = Stack::new("cmpdh");
        let label = format!("dockhand.project={}", s.name);
        let _guard = Guard(self, label.clone());
        s.write(&self.stack_body(n, None));
        let t = Instant::now();
        let r = s.dockhand(&["apply", "--yes"]);
        let took = t.elapsed().as_secs_f64();
        assert_eq!(r.code, 0, "{r:?}");
        assert_eq!(self.running(&label), n, "dockhand must leave {n} running");
        sample.bulk_s.entry("dockhand").or_default().push(took);

        let proxy = CountingProxy::start(s.path());
        let host = proxy.host();
        for _ in 0..cfg.noop_reps {
            let t = Instant::now();
            let r = s.dockhand_env(&["plan", "--detailed-exitcode"], &[("DOCKER_HOST", &host)]);
            let ms = t.elapsed().as_secs_f64() * 1e3;
            assert_eq!(r.code, 0, "a no-op plan exits 0: {r:?}");
            sample.noop_ms.entry("dockhand plan").or_default().push(ms);
            let calls = proxy.take();
            sample
                .calls
                .entry("dockhand plan")
                .or_default()
                .push(calls.len() as f64);
            sample.plan_calls = calls;
        }
        // The floor: the one list call a pass cannot do without, timed in process.
        for _ in 0..cfg.noop_reps {
            let filters = HashMap::from([("label".to_string(), vec![label.clone()])]);
            let t = Instant::now();
            let listed = self
                .rt
                .block_on(self.docker.list_containers(Some(ListContainersOptions {
                    all: true,
                    filters: Some(filters),
                    ..Default::default()
                })))
                .expect("list containers");
            let ms = t.elapsed().as_secs_f64() * 1e3;
            assert_eq!(listed.len(), n);
            sample
                .noop_ms
                .entry("Engine: one container list")
                .or_default()
                .push(ms);
        }
        // The same pass without the proxy hop, which costs a copy of every byte.
        for _ in 0..cfg.noop_reps {
            let t = Instant::now();
            let r = s.dockhand(&["plan", "--detailed-exitcode"]);
            let ms = t.elapsed().as_secs_f64() * 1e3;
            assert_eq!(r.code, 0, "{r:?}");
            sample
                .noop_ms
                .entry("dockhand plan (direct)")
                .or_default()
                .push(ms);
        }
        if resync {
            sample.resync = Some(self.agent_resync(&s, &proxy, if cfg.full { 10 } else { 2 }));
        }
    }

    /// An agent resyncing every second over the stack: the agent's own pass timer, Engine calls
    /// per pass, and its memory and CPU while it does that.
    fn agent_resync(&self, s: &Stack, proxy: &CountingProxy, window_s: u64) -> Resync {
        let host = proxy.host();
        let agent = Agent::start_env(
            s,
            &["--poll", "1h", "--resync", "1s"],
            &[("DOCKER_HOST", &host)],
        );
        let addr = agent.addr();
        agent.wait_in_sync(&addr, Duration::from_secs(120));
        let count0 = agent_http::metric(&addr, "dockhand_reconcile_duration_seconds_count");
        let sum0 = agent_http::metric(&addr, "dockhand_reconcile_duration_seconds_sum");
        // Scrapes of /metrics are not Engine calls; the proxy sees only the agent's passes.
        proxy.take();
        let (_, cpu0) = agent.usage();
        let t = Instant::now();
        let mut peak = 0;
        while t.elapsed() < Duration::from_secs(window_s) {
            std::thread::sleep(Duration::from_millis(100));
            peak = peak.max(agent.usage().0);
        }
        let (_, cpu1) = agent.usage();
        let calls = proxy.take().len() as f64;
        let count1 = agent_http::metric(&addr, "dockhand_reconcile_duration_seconds_count");
        let sum1 = agent_http::metric(&addr, "dockhand_reconcile_duration_seconds_sum");
        let passes = count1 - count0;
        assert!(
            passes >= 1.0,
            "no resync pass in {window_s} s:\n{}",
            agent.log()
        );
        Resync {
            pass_ms: (sum1 - sum0) / passes * 1e3,
            passes,
            calls_per_pass: calls / passes,
            rss_peak: peak,
            cpu_pct: (cpu1 - cpu0) / t.elapsed().as_secs_f64() * 100.0,
        }
    }

    // -- compose -----------------------------------------------------------------------------

    fn compose_file(&self, dir: &std::path::Path, n: usize, env: Option<(usize, usize)>) -> String {
        let mut y = String::from("services:\n");
        for i in 0..n {
            y += &format!("  s{i}:\n    image: {}\n    networks: [net]\n", self.img);
            if let Some((which, value)) = env {
                if which == i {
                    y += &format!("    environment: {{REV: \"{value}\"}}\n");
                }
            }
        }
        y += "networks:\n  net: {}\n";
        let file = dir.join("compose.yaml");
        std::fs::write(&file, y).expect("write compose file");
        file.to_string_lossy().to_string()
    }

    fn compose_up(&self, project: &str, file: &str, docker_host: Option<&str>) -> f64 {
        let mut cmd = Command::new(&self.compose);
        cmd.args(["-p", project, "-f", file, "up", "-d", "--quiet-pull"]);
        if let Some(h) = docker_host {
            cmd.env("DOCKER_HOST", h);
        }
        let t = Instant::now();
        let out = cmd.output().expect("run docker compose");
        let took = t.elapsed().as_secs_f64();
        assert!(
            out.status.success(),
            "compose up failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        took
    }

    fn compose_round(&self, cfg: &Config, n: usize, sample: &mut Sample) {
        let project = support::unique("cmpco");
        let label = format!("com.docker.compose.project={project}");
        let _guard = Guard(self, label.clone());
        let dir = tempfile::tempdir().expect("tempdir");
        let file = self.compose_file(dir.path(), n, None);
        let took = self.compose_up(&project, &file, None);
        assert_eq!(self.running(&label), n, "compose must leave {n} running");
        sample.bulk_s.entry("compose").or_default().push(took);
        let proxy = CountingProxy::start(dir.path());
        let host = proxy.host();
        // compose is slow enough at 500 that fewer repetitions give the same picture.
        let reps = if n >= 500 {
            cfg.noop_reps.min(4)
        } else {
            cfg.noop_reps
        };
        for _ in 0..reps {
            let s = self.compose_up(&project, &file, Some(&host));
            sample
                .noop_ms
                .entry("compose up -d")
                .or_default()
                .push(s * 1e3);
            sample
                .calls
                .entry("compose up -d")
                .or_default()
                .push(proxy.take().len() as f64);
        }
    }

    fn bare_round(&self, n: usize, concurrency: usize, sample: &mut Sample) {
        let prefix = support::unique("cmpbare");
        let label = format!("dockhand-bench={prefix}");
        let _guard = Guard(self, label.clone());
        let took = self.bare_up(&prefix, n, concurrency);
        assert_eq!(self.running(&label), n);
        sample.bulk_s.entry("bare API").or_default().push(took);
    }

    // -- 1 and 2 -----------------------------------------------------------------------------

    fn scaling(&self, cfg: &Config, best: usize, curves: &mut Curves) -> String {
        let mut bulk_md = String::from(
            "## 2. Bulk start: 0 → N running containers\n\nWhole command for dockhand (`apply --yes`) and compose (`up -d`): process start, reading the files, network creation, containers. The bare loop is in process and excludes its network. Tools alternate within each round. Target: dockhand ≥ 0.9× the bare API's best and ≥ compose, zero errors.\n\n| N | rounds | tool | median s | p95 s | containers/s | × bare | target |\n|---:|---:|---|---:|---:|---:|---:|---|\n",
        );
        let mut noop_md = String::from(
            "## 1. No-op pass at N managed containers\n\nNothing to change. `dockhand plan` is the whole process (start, read files, observe, plan, print), through a counting proxy and straight to the socket; the agent's resync is its own pass timer (`dockhand_reconcile_duration_seconds`, a pass every second for a few seconds); compose is `up -d` through the proxy. Targets: one list call, under 30 ms at 500, ≥ 10× faster than compose.\n\n| N | pass | median ms | p95 ms | Engine API calls | × faster than compose |\n|---:|---|---:|---:|---:|---:|\n",
        );
        let mut footprint = String::new();
        let mut calls_md = String::new();
        for &n in &cfg.sizes {
            let rounds = (cfg.rounds)(n);
            let mut sample = Sample::default();
            for round in 0..rounds {
                eprintln!("bench: {n} containers, round {}/{rounds}", round + 1);
                let t = Instant::now();
                self.dockhand_round(cfg, n, &mut sample, round == 0);
                self.compose_round(cfg, n, &mut sample);
                self.bare_round(n, best, &mut sample);
                eprintln!(
                    "bench: round done in {:.0} s (dockhand {:.1} s, compose {:.1} s, bare {:.1} s)",
                    t.elapsed().as_secs_f64(),
                    sample.bulk_s["dockhand"][round],
                    sample.bulk_s["compose"][round],
                    sample.bulk_s["bare API"][round],
                );
            }
            let (bare, _) = stats(&sample.bulk_s["bare API"]);
            let (compose, _) = stats(&sample.bulk_s["compose"]);
            for tool in ["dockhand", "compose", "bare API"] {
                let (m, p95) = stats(&sample.bulk_s[tool]);
                let rate = n as f64 / m;
                push_point(&mut curves.bulk, tool, (n as f64, rate));
                let target = match tool {
                    "dockhand" => verdict(m <= bare / 0.9 && m <= compose).to_string(),
                    _ => String::new(),
                };
                bulk_md += &format!(
                    "| {n} | {rounds} | {tool} | {m:.2} | {p95:.2} | {rate:.1} | {:.2} | {target} |\n",
                    bare / m
                );
            }
            let (co, _) = stats(&sample.noop_ms["compose up -d"]);
            for pass in [
                "dockhand plan",
                "dockhand plan (direct)",
                "compose up -d",
                "Engine: one container list",
            ] {
                let (m, p95) = stats(&sample.noop_ms[pass]);
                let calls = sample
                    .calls
                    .get(pass)
                    .map_or(String::new(), |c| format!("{:.0}", stats(c).0));
                let name = match pass {
                    "dockhand plan" => "dockhand plan (through proxy)",
                    p => p,
                };
                noop_md += &format!(
                    "| {n} | {name} | {m:.1} | {p95:.1} | {calls} | {} |\n",
                    if pass == "compose up -d" || pass.starts_with("Engine") {
                        String::new()
                    } else {
                        format!("{:.1}×", co / m)
                    }
                );
                let series = match pass {
                    "dockhand plan (direct)" => "dockhand plan",
                    "compose up -d" => "compose up -d",
                    "Engine: one container list" => "Engine list call",
                    _ => continue,
                };
                push_point(&mut curves.noop, series, (n as f64, m));
            }
            if let Some(r) = &sample.resync {
                noop_md += &format!(
                    "| {n} | dockhand agent resync ({:.0} passes) | {:.1} | | {:.1} | {:.1}× |\n",
                    r.passes,
                    r.pass_ms,
                    r.calls_per_pass,
                    co / r.pass_ms
                );
                push_point(
                    &mut curves.noop,
                    "dockhand agent resync",
                    (n as f64, r.pass_ms),
                );
                calls_md = format!(
                    "Engine calls of one `dockhand plan` at {n}: `{}`. The agent keeps its connection, so its passes skip `/version`.\n\n",
                    sample.plan_calls.join("`, `")
                );
                footprint += &format!(
                    "| {n} | {:.1} MiB | {:.2} % |\n",
                    r.rss_peak as f64 / 1024.0 / 1024.0,
                    r.cpu_pct
                );
            }
        }
        let largest = cfg.sizes.iter().copied().max().unwrap_or(0);
        let noop_at_largest = curves
            .noop
            .iter()
            .find(|(n, _)| *n == "dockhand agent resync")
            .and_then(|(_, v)| v.iter().find(|p| p.0 == largest as f64))
            .map(|p| p.1);
        noop_md += &format!(
            "\nAt {largest}: the agent's pass {}; target < 30 ms: {}. A `dockhand plan` process adds its start-up, reading and printing to the same pass. The *Engine* row is the floor: the one container list call every pass needs, alone, in process.\n\n{calls_md}",
            noop_at_largest.map_or("not measured".into(), |ms| format!("{ms:.1} ms")),
            noop_at_largest.map_or("not measured", |ms| verdict(ms < 30.0)),
        );
        format!(
            "{noop_md}{bulk_md}\n## 7b. The agent while resyncing every second\n\nPeak RSS and CPU (share of one core) of `dockhand run --resync 1s` over the window of the no-op table above.\n\n| N | peak RSS | CPU |\n|---:|---:|---:|\n{footprint}\n"
        )
    }

    // -- 3 -----------------------------------------------------------------------------------

    fn one_change(&self, cfg: &Config) -> String {
        let n = cfg.change_services;
        let which = n / 2;
        eprintln!("bench: one change among {n} services");
        let mut dh = Vec::new();
        let mut co = Vec::new();
        let mut bare = Vec::new();

        let s = Stack::new("cmpchg");
        let dlabel = format!("dockhand.project={}", s.name);
        let _dguard = Guard(self, dlabel.clone());
        s.write(&self.stack_body(n, Some((which, 0))));
        let r = s.dockhand(&["apply", "--yes"]);
        assert_eq!(r.code, 0, "{r:?}");

        let project = support::unique("cmpchgco");
        let clabel = format!("com.docker.compose.project={project}");
        let _cguard = Guard(self, clabel.clone());
        let dir = tempfile::tempdir().expect("tempdir");
        let file = self.compose_file(dir.path(), n, Some((which, 0)));
        self.compose_up(&project, &file, None);

        let prefix = support::unique("cmpchgbare");
        let _bguard = Guard(self, format!("dockhand-bench={prefix}"));
        self.bare_up(&prefix, 1, 1);

        for rep in 1..=cfg.change_reps {
            s.write(&self.stack_body(n, Some((which, rep))));
            let t = Instant::now();
            let r = s.dockhand(&["apply", "--yes"]);
            dh.push(t.elapsed().as_secs_f64() * 1e3);
            assert_eq!(r.code, 0, "{r:?}");
            assert!(
                r.stderr.contains("recreat") || r.stdout.contains("recreat"),
                "one recreate expected: {r:?}"
            );
            assert_eq!(self.running(&dlabel), n);

            self.compose_file(dir.path(), n, Some((which, rep)));
            co.push(self.compose_up(&project, &file, None) * 1e3);
            assert_eq!(self.running(&clabel), n);

            bare.push(self.bare_recreate(&prefix) * 1e3);
        }
        let (d, d95) = stats(&dh);
        let (c, c95) = stats(&co);
        let (b, b95) = stats(&bare);
        format!(
            "## 3. One change among {n} services\n\nOne service's env edited, then `dockhand apply --yes` / `docker compose up -d` until converged (whole command), {} times each, alternating. The floor is the bare API recreating one container (stop, remove, create, start) in process. Target: dockhand ≤ floor + 10 ms, and compose must not beat it.\n\n| tool | median ms | p95 ms | over the floor |\n|---|---:|---:|---:|\n| dockhand apply | {d:.0} | {d95:.0} | {:+.0} ms |\n| docker compose up -d | {c:.0} | {c95:.0} | {:+.0} ms |\n| bare API recreate | {b:.0} | {b95:.0} | |\n\nTarget ≤ floor + 10 ms: {}; compose does not beat dockhand: {}.\n\n",
            cfg.change_reps,
            d - b,
            c - b,
            verdict(d <= b + 10.0),
            verdict(d <= c),
        )
    }

    fn bare_recreate(&self, prefix: &str) -> f64 {
        let name = format!("{prefix}-s0");
        self.rt.block_on(async {
            let t = Instant::now();
            self.docker
                .stop_container(
                    &name,
                    Some(StopContainerOptions {
                        t: Some(10),
                        ..Default::default()
                    }),
                )
                .await
                .expect("stop");
            self.docker
                .remove_container(&name, None::<RemoveContainerOptions>)
                .await
                .expect("remove");
            self.bare_create_start(prefix, 0).await.expect("create");
            t.elapsed().as_secs_f64()
        })
    }
}

/// Removes what carries a label when dropped, also on panic.
struct Guard<'a>(&'a Bench, String);

impl Drop for Guard<'_> {
    fn drop(&mut self) {
        self.0.remove_labelled(&self.1);
    }
}

fn compose_bin() -> String {
    let local = format!("{STATE}/bin/docker-compose");
    if std::path::Path::new(&local).exists() {
        local
    } else {
        "docker-compose".into()
    }
}

// ---------------------------------------------------------------------------------------------
// The plot.

/// The curves, read back from the tables of a report this harness wrote.
fn curves_from_report(md: &str) -> Curves {
    let mut c = Curves::default();
    let mut section = "";
    for line in md.lines() {
        if let Some(h) = line.strip_prefix("## ") {
            section = h.split('.').next().unwrap_or("");
            continue;
        }
        let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
        let num = |i: usize| -> Option<f64> {
            cells
                .get(i)?
                .trim_end_matches(" ms")
                .trim_end_matches(" s")
                .parse()
                .ok()
        };
        match (section, num(0)) {
            ("1", Some(n)) => {
                let series = match cells.get(1).copied().unwrap_or("") {
                    "dockhand plan (direct)" => "dockhand plan",
                    "compose up -d" => "compose up -d",
                    "Engine: one container list" => "Engine list call",
                    s if s.starts_with("dockhand agent resync") => "dockhand agent resync",
                    _ => continue,
                };
                if let Some(ms) = num(2) {
                    push_point(&mut c.noop, series, (n, ms));
                }
            }
            ("2", Some(n)) => {
                let series = match cells.get(2).copied().unwrap_or("") {
                    "dockhand" => "dockhand",
                    "compose" => "compose",
                    "bare API" => "bare API",
                    _ => continue,
                };
                if let Some(rate) = num(5) {
                    push_point(&mut c.bulk, series, (n, rate));
                }
            }
            ("8", Some(n)) => {
                if let Some(ms) = num(1) {
                    c.planner.push((n, ms));
                }
            }
            _ => {}
        }
    }
    c
}

const FONT: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";

fn plot(c: &Curves, path: &std::path::Path) -> Result<(), String> {
    use plotters::prelude::*;
    let font = std::fs::read(FONT).map_err(|e| {
        format!("{FONT}: {e} (Debian's fonts-dejavu-core; scripts/test-env.sh installs it)")
    })?;
    plotters::style::register_font(
        "sans-serif",
        FontStyle::Normal,
        Box::leak(font.into_boxed_slice()),
    )
    .map_err(|_| format!("{FONT} is not a usable font"))?;
    let root = BitMapBackend::new(path, (1500, 500)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let panels = root.split_evenly((1, 3));
    let colors = [RED, BLUE, GREEN, MAGENTA];
    let e = |e: DrawingAreaErrorKind<_>| e.to_string();

    let draw = |area: &DrawingArea<BitMapBackend, _>,
                title: &str,
                x_desc: &str,
                y_desc: &str,
                series: &[(&str, Vec<(f64, f64)>)],
                legend: SeriesLabelPosition|
     -> Result<(), String> {
        let xs = series.iter().flat_map(|s| s.1.iter().map(|p| p.0));
        let ys = series.iter().flat_map(|s| s.1.iter().map(|p| p.1));
        let (x0, x1) = xs.fold((f64::MAX, f64::MIN), |(a, b), x| (a.min(x), b.max(x)));
        let (y0, y1) = ys.fold((f64::MAX, f64::MIN), |(a, b), y| (a.min(y), b.max(y)));
        if x0 > x1 {
            return Ok(());
        }
        let mut builder = ChartBuilder::on(area);
        builder
            .caption(title, ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(60);
        let mut chart = builder
            .build_cartesian_2d(
                (x0.max(1.0) * 0.8..x1 * 1.25).log_scale(),
                (y0.max(1e-3) * 0.5..y1 * 2.0).log_scale(),
            )
            .map_err(e)?;
        // Log axes get a key point at every integer; label only 1-2-5 steps.
        let nice = |v: &f64| {
            let m = *v / 10f64.powf(v.log10().floor());
            if [1.0, 2.0, 5.0].iter().any(|k| (m - k).abs() < 1e-6) {
                if *v >= 1.0 {
                    format!("{v:.0}")
                } else {
                    format!("{v}")
                }
            } else {
                String::new()
            }
        };
        chart
            .configure_mesh()
            .x_desc(x_desc)
            .y_desc(y_desc)
            .x_label_formatter(&nice)
            .y_label_formatter(&nice)
            .light_line_style(WHITE.mix(0.0))
            .draw()
            .map_err(e)?;
        for (i, (name, pts)) in series.iter().enumerate() {
            let color = colors[i % colors.len()];
            chart
                .draw_series(LineSeries::new(pts.iter().copied(), color.stroke_width(2)))
                .map_err(e)?
                .label(*name)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
            chart
                .draw_series(pts.iter().map(|p| Circle::new(*p, 4, color.filled())))
                .map_err(e)?;
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .position(legend)
            .draw()
            .map_err(e)?;
        Ok(())
    };
    draw(
        &panels[0],
        "No-op pass (lower is better)",
        "managed containers",
        "ms per pass",
        &c.noop,
        SeriesLabelPosition::UpperLeft,
    )?;
    draw(
        &panels[1],
        "Bulk start (higher is better)",
        "containers started",
        "containers / s",
        &c.bulk,
        SeriesLabelPosition::LowerRight,
    )?;
    draw(
        &panels[2],
        "Pure planner (lower is better)",
        "services",
        "ms per plan",
        &[("plan() no-op", c.planner.clone())],
        SeriesLabelPosition::UpperLeft,
    )?;
    root.present().map_err(|e| e.to_string())?;
    Ok(())
}
