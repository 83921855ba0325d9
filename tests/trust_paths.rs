//! Issue 17, a commit is untrusted input: the host policy, confined host paths, keyed env
//! markers and a private state directory.
//!
//! The table of hostile commits is run twice: through `dockhand validate` (no Docker: each is
//! refused with its rule and file:line, in bounded time — a FIFO must not hang it), and
//! through `dockhand apply --yes` on the real Engine (refused, no container created, and every
//! file of the scratch host tree — modes, owners, contents, link targets — byte-identical).

mod support;

use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use dockhand::load::host_policy::HostPolicy;
use dockhand::load::SourceFile;

const IMG: &str = "127.0.0.1:5000/dockhand-test/hostile:1@sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

/// A host policy confining every path use to a folder of the scratch tree.
const STRICT: &str =
    "bind_roots: [{S}/root]\nenv_file_roots: [{S}/env]\nrotate_roots: [{S}/backups]\n";

/// One hostile commit and the refusal it must get.
struct Case {
    name: &'static str,
    /// The host policy file (`{S}`: the scratch host tree); `None`: the built-in defaults.
    host: Option<&'static str>,
    /// Extra dockhand.yaml text (a repository `policy:`).
    repo: &'static str,
    /// The stack file after its `stack:` line (`{S}`, `{IMG}`).
    stack: &'static str,
    /// The rule the refusal names.
    rule: &'static str,
    /// The file it points at, and text on the line it points at.
    at: (&'static str, &'static str),
}

const CASES: &[Case] = &[
    Case {
        name: "rotate at dockhand's state directory (it wiped dockhand.db and apply.lock)",
        host: None,
        repo: "",
        stack: "services:\n  web:\n    image: {IMG}\n    hooks:\n      before:\n        - command: [\"true\"]\n          rotate: {dir: {S}/state, keep: 1}\n",
        rule: "state_dir",
        at: ("stack", "rotate:"),
    },
    Case {
        name: "rotate outside the host's rotate roots",
        host: Some(STRICT),
        repo: "",
        stack: "services:\n  web:\n    image: {IMG}\n    hooks:\n      before:\n        - command: [\"true\"]\n          rotate: {dir: {S}/outside, keep: 1}\n",
        rule: "rotate_roots",
        at: ("stack", "rotate:"),
    },
    Case {
        name: "rotate in a protected folder",
        host: None,
        repo: "",
        stack: "services:\n  web:\n    image: {IMG}\n    hooks:\n      before:\n        - command: [\"true\"]\n          rotate: {dir: /etc/ssl, keep: 1}\n",
        rule: "protected_paths",
        at: ("stack", "rotate:"),
    },
    Case {
        name: "rotate through a symlink in an allowed root pointing outside",
        host: Some(STRICT),
        repo: "",
        stack: "services:\n  web:\n    image: {IMG}\n    hooks:\n      before:\n        - command: [\"true\"]\n          rotate: {dir: {S}/backups/link, keep: 1}\n",
        rule: "rotate_roots",
        at: ("stack", "rotate:"),
    },
    Case {
        name: "env_file outside the host's env file roots",
        host: Some(STRICT),
        repo: "",
        stack: "services:\n  web:\n    image: {IMG}\n    env_file: {S}/secret.env\n",
        rule: "env_file_roots",
        at: ("stack", "env_file:"),
    },
    Case {
        name: "env_file of a root-only host file",
        host: None,
        repo: "",
        stack: "services:\n  web:\n    image: {IMG}\n    env_file: /etc/shadow\n",
        rule: "protected_paths",
        at: ("stack", "env_file:"),
    },
    Case {
        name: "env_file a FIFO (hung plan and the agent)",
        host: Some(STRICT),
        repo: "",
        stack: "services:\n  web:\n    image: {IMG}\n    env_file: {S}/env/fifo.env\n",
        rule: "env_file",
        at: ("stack", "env_file:"),
    },
    Case {
        name: "env_file a character device",
        host: Some(STRICT),
        repo: "",
        stack: "services:\n  web:\n    image: {IMG}\n    env_file: {S}/env/zero.env\n",
        rule: "env_file",
        at: ("stack", "env_file:"),
    },
    Case {
        name: "env_file of 2 MiB (an endless one grew dockhand to gigabytes)",
        host: Some(STRICT),
        repo: "",
        stack: "services:\n  web:\n    image: {IMG}\n    env_file: {S}/env/huge.env\n",
        rule: "env_file",
        at: ("stack", "env_file:"),
    },
    Case {
        name: "env_file through a symlink in an allowed root pointing outside",
        host: Some(STRICT),
        repo: "",
        stack: "services:\n  web:\n    image: {IMG}\n    env_file: {S}/env/link.env\n",
        rule: "env_file_roots",
        at: ("stack", "env_file:"),
    },
    Case {
        name: "bind through a symlink in an allowed root pointing outside",
        host: Some(STRICT),
        repo: "",
        stack: "services:\n  web:\n    image: {IMG}\n    mounts:\n      - {bind: {S}/root/link, target: /data}\n",
        rule: "bind_roots",
        at: ("stack", "bind:"),
    },
    Case {
        name: "create (chmod 0777, chown) through a symlink in an allowed root pointing outside",
        host: Some(STRICT),
        repo: "",
        stack: "services:\n  web:\n    image: {IMG}\n    mounts:\n      - {bind: {S}/root/link-out, target: /data, create: {mode: \"0777\", owner: \"1234:1234\"}}\n",
        rule: "bind_roots",
        at: ("stack", "bind:"),
    },
    Case {
        name: "create through a symlink to /etc under the defaults",
        host: None,
        repo: "",
        stack: "services:\n  web:\n    image: {IMG}\n    mounts:\n      - {bind: {S}/root/link, target: /data, create: {mode: \"0777\"}}\n",
        rule: "protected_paths",
        at: ("stack", "bind:"),
    },
    Case {
        name: "a hook's mount through a symlink",
        host: Some(STRICT),
        repo: "",
        stack: "services:\n  web:\n    image: {IMG}\n    hooks:\n      before:\n        - command: [\"true\"]\n          mounts:\n            - {bind: {S}/root/link, target: /hookmount}\n",
        rule: "bind_roots",
        at: ("stack", "/hookmount"),
    },
    Case {
        name: "`..` out of an allowed root",
        host: Some(STRICT),
        repo: "",
        stack: "services:\n  web:\n    image: {IMG}\n    mounts:\n      - {bind: {S}/root/../outside, target: /data}\n",
        rule: "host_path",
        at: ("stack", "bind:"),
    },
    Case {
        name: "create on a dangling symlink (it would be followed once its target appears)",
        host: Some(STRICT),
        repo: "",
        stack: "services:\n  web:\n    image: {IMG}\n    mounts:\n      - {bind: {S}/root/dangle, target: /data, create: {mode: \"0755\"}}\n",
        rule: "host_path",
        at: ("stack", "bind:"),
    },
    Case {
        name: "bind of a device node planted in an allowed root",
        host: Some(STRICT),
        repo: "",
        stack: "services:\n  web:\n    image: {IMG}\n    mounts:\n      - {bind: {S}/root/zero, target: /data}\n",
        rule: "host_path",
        at: ("stack", "bind:"),
    },
    Case {
        name: "bind of the host's root folder",
        host: None,
        repo: "",
        stack: "services:\n  web:\n    image: {IMG}\n    mounts:\n      - {bind: /, target: /host, read_only: true}\n",
        rule: "protected_paths",
        at: ("stack", "bind:"),
    },
    Case {
        name: "the Docker socket without the host granting it",
        host: None,
        repo: "",
        stack: "services:\n  web:\n    image: {IMG}\n    mounts:\n      - {bind: /var/run/docker.sock, target: /var/run/docker.sock}\n",
        rule: "docker_socket",
        at: ("stack", "bind:"),
    },
    Case {
        name: "another application's volume as external",
        host: None,
        repo: "",
        stack: "volumes:\n  x: {external: true, name: other-app-data}\nservices:\n  web:\n    image: {IMG}\n    mounts: [{volume: x, target: /data}]\n",
        rule: "external_volumes",
        at: ("stack", "other-app-data"),
    },
    Case {
        name: "an external network the host does not list",
        host: Some("external_networks: [proxy]\n"),
        repo: "",
        stack: "networks:\n  n: {external: true, name: other_backend}\nservices:\n  web:\n    image: {IMG}\n    networks: [n]\n",
        rule: "external_networks",
        at: ("stack", "other_backend"),
    },
    Case {
        name: "a route host the host does not serve for this repository",
        host: Some("route_hosts: [\"*.shop.localhost\"]\n"),
        repo: "",
        stack: "services:\n  web:\n    image: {IMG}\n    route: {host: victim.localhost, port: 8080}\n",
        rule: "route_hosts",
        at: ("stack", "route:"),
    },
    Case {
        name: "the repository grants itself `privileged` (the policy lived in the repo it polices)",
        host: None,
        repo: "policy:\n  allow:\n    {STACK}: [privileged]\n",
        stack: "services:\n  web:\n    image: {IMG}\n    privileged: true\n",
        rule: "host_policy",
        at: ("dockhand.yaml", "[privileged]"),
    },
    Case {
        name: "the repository widens the host's bind roots",
        host: Some(STRICT),
        repo: "policy:\n  bind_roots: [{S}]\n",
        stack: "services:\n  web:\n    image: {IMG}\n",
        rule: "host_policy",
        at: ("dockhand.yaml", "bind_roots"),
    },
    Case {
        name: "the repository widens the host's registries",
        host: Some("registries: [127.0.0.1:5000]\n"),
        repo: "policy:\n  registries: [ghcr.io]\n",
        stack: "services:\n  web:\n    image: {IMG}\n",
        rule: "host_policy",
        at: ("dockhand.yaml", "ghcr.io"),
    },
];

/// The scratch host tree every case is tried against: allowed roots holding links that lead
/// out, a FIFO, a device, a huge file, and an `outside` folder that must never change.
struct Scratch {
    _dir: tempfile::TempDir,
    s: PathBuf,
}

impl Scratch {
    fn new() -> Scratch {
        let dir = tempfile::tempdir().unwrap();
        let s = dir.path().canonicalize().unwrap();
        for d in ["root", "env", "backups", "outside", "state"] {
            std::fs::create_dir(s.join(d)).unwrap();
        }
        std::fs::set_permissions(s.join("outside"), std::fs::Permissions::from_mode(0o700))
            .unwrap();
        std::fs::write(s.join("outside/precious"), "host data\n").unwrap();
        std::fs::write(s.join("secret.env"), "ROOT_ONLY=hunter2\n").unwrap();
        let link = |target: &str, at: &str| {
            std::os::unix::fs::symlink(target, s.join(at)).unwrap();
        };
        link("/etc", "root/link");
        link(s.join("outside").to_str().unwrap(), "root/link-out");
        link(s.join("nowhere").to_str().unwrap(), "root/dangle");
        link("/etc/shadow", "env/link.env");
        link(s.join("outside").to_str().unwrap(), "backups/link");
        std::fs::write(s.join("env/ok.env"), "A=1\n").unwrap();
        nix::unistd::mkfifo(
            &s.join("env/fifo.env"),
            nix::sys::stat::Mode::from_bits_truncate(0o600),
        )
        .unwrap();
        nix::sys::stat::mknod(
            &s.join("env/zero.env"),
            nix::sys::stat::SFlag::S_IFCHR,
            nix::sys::stat::Mode::from_bits_truncate(0o600),
            nix::sys::stat::makedev(1, 5),
        )
        .unwrap();
        nix::sys::stat::mknod(
            &s.join("root/zero"),
            nix::sys::stat::SFlag::S_IFCHR,
            nix::sys::stat::Mode::from_bits_truncate(0o600),
            nix::sys::stat::makedev(1, 5),
        )
        .unwrap();
        std::fs::File::create(s.join("env/huge.env"))
            .unwrap()
            .set_len(2 * 1024 * 1024)
            .unwrap();
        for (i, f) in ["a.sql", "b.sql"].iter().enumerate() {
            std::fs::write(s.join("backups").join(f), format!("dump {i}\n")).unwrap();
        }
        Scratch { _dir: dir, s }
    }

    fn fill(&self, text: &str, stack: &str) -> String {
        text.replace("{S}", self.s.to_str().unwrap())
            .replace("{IMG}", IMG)
            .replace("{STACK}", stack)
    }

    /// Every entry of the tree outside the state directory: mode, owner, and contents or link
    /// target (FIFOs and devices by kind only: reading them is the attack).
    fn snapshot(&self) -> BTreeMap<PathBuf, String> {
        let mut out = BTreeMap::new();
        let mut todo = vec![self.s.clone()];
        while let Some(dir) = todo.pop() {
            for e in std::fs::read_dir(&dir).unwrap() {
                let p = e.unwrap().path();
                if p == self.s.join("state") {
                    continue;
                }
                let m = std::fs::symlink_metadata(&p).unwrap();
                let what = if m.file_type().is_symlink() {
                    format!("-> {}", std::fs::read_link(&p).unwrap().display())
                } else if m.is_dir() {
                    todo.push(p.clone());
                    "dir".into()
                } else if m.is_file() && m.len() < 4096 {
                    std::fs::read_to_string(&p).unwrap()
                } else {
                    format!("{:?} {}", m.file_type(), m.len())
                };
                out.insert(p, format!("{:o} {}:{} {what}", m.mode(), m.uid(), m.gid()));
            }
        }
        out
    }
}

/// A desired-state repository for one case (beside the scratch tree, not in it).
struct Repo {
    dir: tempfile::TempDir,
    stack: String,
    host: Option<PathBuf>,
    stack_text: String,
    repo_text: String,
}

fn repo_for(scratch: &Scratch, case: &Case) -> Repo {
    let dir = tempfile::tempdir().unwrap();
    let stack = support::unique("hostile");
    std::fs::create_dir(dir.path().join("stacks")).unwrap();
    let repo_text = format!(
        "version: 1\nproject: {stack}\n{}",
        scratch.fill(case.repo, &stack)
    );
    std::fs::write(dir.path().join("dockhand.yaml"), &repo_text).unwrap();
    let stack_text = format!("stack: {stack}\n{}", scratch.fill(case.stack, &stack));
    std::fs::write(dir.path().join(format!("stacks/{stack}.yaml")), &stack_text).unwrap();
    let host = case.host.map(|h| {
        let p = dir.path().join("host-policy.yaml");
        std::fs::write(&p, scratch.fill(h, &stack)).unwrap();
        p
    });
    Repo {
        dir,
        stack,
        host,
        stack_text,
        repo_text,
    }
}

impl Repo {
    /// `file:line:` the refusal must name.
    fn expected_at(&self, case: &Case) -> String {
        let (file, text, needle) = match case.at {
            ("stack", n) => (format!("stacks/{}.yaml", self.stack), &self.stack_text, n),
            (f, n) => (f.to_string(), &self.repo_text, n),
        };
        let line = text
            .lines()
            .position(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("{}: `{needle}` not in the file", case.name))
            + 1;
        format!("{file}:{line}:")
    }

    /// Runs dockhand on this repository (state in the scratch tree), killed after 30 s.
    fn dockhand(&self, scratch: &Scratch, args: &[&str]) -> (i32, String, Duration) {
        let mut cmd = Command::new(support::bin());
        cmd.args(args)
            .args(["--source", self.dir.path().to_str().unwrap()])
            .args(["--path", ".", "--worktree", "--state-dir"])
            .arg(scratch.s.join("state"))
            .env_remove("DOCKHAND_POLICY")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        if let Some(h) = &self.host {
            cmd.env("DOCKHAND_POLICY", h);
        }
        let t = Instant::now();
        let mut child = cmd.spawn().expect("starting dockhand");
        loop {
            if child.try_wait().unwrap().is_some() {
                break;
            }
            if t.elapsed() > Duration::from_secs(30) {
                let _ = child.kill();
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let out = child.wait_with_output().unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.code().unwrap_or(-1), text, t.elapsed())
    }
}

fn assert_refused(case: &Case, repo: &Repo, code: i32, out: &str, took: Duration) {
    assert!(
        took < Duration::from_secs(20),
        "{}: took {took:?} (hung?)\n{out}",
        case.name
    );
    assert_ne!(code, 0, "{}: accepted\n{out}", case.name);
    let at = repo.expected_at(case);
    let rule = format!("rule `{}`", case.rule);
    assert!(
        out.lines().any(|l| l.contains(&at) && l.contains(&rule)),
        "{}: expected a refusal at {at} naming {rule}, got:\n{out}",
        case.name
    );
    assert!(out.contains("hint:"), "{}: no hint\n{out}", case.name);
}

#[test]
fn hostile_commits_are_refused_by_validate_with_rule_and_line() {
    let scratch = Scratch::new();
    let before = scratch.snapshot();
    for case in CASES {
        let repo = repo_for(&scratch, case);
        let (code, out, took) = repo.dockhand(&scratch, &["validate"]);
        assert_refused(case, &repo, code, &out, took);
    }
    assert_eq!(
        scratch.snapshot(),
        before,
        "validate changed the host's files"
    );
}

#[test]
fn hostile_commits_change_nothing_on_apply() {
    support::require_env();
    let scratch = Scratch::new();
    let before = scratch.snapshot();
    for case in CASES {
        let repo = repo_for(&scratch, case);
        for verb in [&["plan"][..], &["apply", "--yes"][..]] {
            let (code, out, took) = repo.dockhand(&scratch, verb);
            assert_refused(case, &repo, code, &out, took);
        }
        let label = format!("label=dockhand.project={}", repo.stack);
        let made = support::docker_ok(&["ps", "-aq", "--filter", &label]);
        assert!(made.is_empty(), "{}: apply created {made}", case.name);
        assert_eq!(
            scratch.snapshot(),
            before,
            "{}: apply changed the host's files",
            case.name
        );
    }
}

/// A narrowing repository on a host that allows more: deployed on the real Engine; the same
/// repository widening one rule: refused, the running container untouched.
#[test]
fn a_repository_that_narrows_the_host_policy_applies_and_one_that_widens_is_refused() {
    let scratch = Scratch::new();
    let s = support::Stack::new("narrow");
    let img = s.image("v1");
    let reg = support::registry();
    let host = s.path().join("host-policy.yaml");
    let root = scratch.s.join("root");
    std::fs::write(
        &host,
        format!(
            "bind_roots: [{root}]\nenv_file_roots: [{env}]\nregistries: [{reg}]\nallow:\n  {st}: [cap_add, devices]\n",
            root = root.display(),
            env = scratch.s.join("env").display(),
            st = s.name
        ),
    )
    .unwrap();
    let narrow = |registries: &str| {
        format!(
            "version: 1\nproject: {st}\npolicy:\n  bind_roots: [{root}/app]\n  registries: [{registries}]\n  allow:\n    {st}: [cap_add]\n",
            st = s.name,
            root = root.display()
        )
    };
    std::fs::write(
        s.path().join("dockhand.yaml"),
        narrow(&format!("{reg}/dockhand-test")),
    )
    .unwrap();
    s.write(&format!(
        "services:\n  web:\n    image: {img}\n    cap_add: [NET_ADMIN]\n    env: {{PIN: \"482915\"}}\n    env_file: {}\n    mounts:\n      - {{bind: {}/app/media, target: /media, create: {{mode: \"2775\"}}}}\n    stop_grace_period: 1s\n",
        scratch.s.join("env/ok.env").display(),
        root.display()
    ));
    let host_env = host.to_string_lossy().to_string();
    let env = [("DOCKHAND_POLICY", host_env.as_str())];
    let r = s.dockhand_env(&["apply", "--yes"], &env);
    assert_eq!(r.code, 0, "{r:?}");
    let web = s.container("web");
    let id = support::docker_ok(&["inspect", "--format", "{{.Id}}", &web]);
    let caps = support::docker_ok(&["inspect", "--format", "{{.HostConfig.CapAdd}}", &web]);
    assert!(caps.contains("NET_ADMIN"), "{caps}");
    let mode = std::fs::metadata(root.join("app/media")).unwrap().mode() & 0o7777;
    assert_eq!(mode, 0o2775);

    // The label holds a keyed marker, not a plain hash a PIN could be tested against.
    let doc = support::docker_ok(&[
        "inspect",
        "--format",
        "{{index .Config.Labels \"dockhand.spec-doc\"}}",
        &web,
    ]);
    let plain = &dockhand::spec::sha256_hex(b"482915")[..12];
    assert!(doc.contains("<hidden:"), "{doc}");
    assert!(!doc.contains(plain) && !doc.contains("482915"), "{doc}");

    // State directory private, its files too.
    let state = s.state_dir();
    assert_eq!(std::fs::metadata(&state).unwrap().mode() & 0o777, 0o700);
    for f in ["dockhand.db", "apply.lock", "marker.key"] {
        let m = std::fs::metadata(state.join(f)).unwrap().mode() & 0o777;
        assert_eq!(m, 0o600, "{f}");
    }

    let again = s.dockhand_env(&["plan", "--detailed-exitcode"], &env);
    assert_eq!(again.code, 0, "{again:?}");

    // Widening one rule (registries) refuses the whole commit; nothing changes.
    std::fs::write(s.path().join("dockhand.yaml"), narrow("ghcr.io")).unwrap();
    let r = s.dockhand_env(&["apply", "--yes"], &env);
    assert_ne!(r.code, 0, "{r:?}");
    assert!(r.stderr.contains("rule `host_policy`"), "{r:?}");
    assert!(
        r.stderr.contains(&host_env),
        "the hint names the host policy file: {r:?}"
    );
    assert!(r.stderr.contains("dockhand.yaml:5:"), "{r:?}");
    let still = support::docker_ok(&["inspect", "--format", "{{.Id}}", &web]);
    assert_eq!(still, id);
}

fn load_state(dir: &Path) -> dockhand::model::DesiredState {
    let files = vec![
        SourceFile {
            path: "dockhand.yaml".into(),
            text: "version: 1\n".into(),
        },
        SourceFile {
            path: "stacks/a.yaml".into(),
            text: format!(
                "stack: a\nservices:\n  web:\n    image: {IMG}\n    env: {{PIN: \"048213\"}}\n    mounts: [{{bind: {}/m, target: /m}}]\n",
                dir.display()
            ),
        },
    ];
    dockhand::host::load(&files, &HostPolicy::default()).unwrap()
}

fn spec_doc(state: &dockhand::model::DesiredState, key: dockhand::spec::MarkerKey) -> String {
    let (facts, _) = dockhand::host::facts(state, key);
    let desired = dockhand::spec::render(state, &facts, None);
    desired.containers[0].labels["dockhand.spec-doc"].clone()
}

#[test]
fn hidden_markers_are_keyed_per_host_and_a_pin_is_not_recoverable_without_the_key() {
    let scratch = Scratch::new();
    let state = load_state(&scratch.s);
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let key_a = dockhand::history::marker_key(&a.path().join("state")).unwrap();
    let key_b = dockhand::history::marker_key(&b.path().join("state")).unwrap();
    // The same host reads the same key back.
    assert_eq!(
        dockhand::history::marker_key(&a.path().join("state")).unwrap(),
        key_a
    );
    let doc_a = spec_doc(&state, key_a.clone());
    let doc_b = spec_doc(&state, key_b);
    assert_ne!(doc_a, doc_b, "two hosts' keys gave the same marker");
    assert_eq!(
        doc_a,
        spec_doc(&state, key_a),
        "markers are stable on a host"
    );

    let marker = doc_a
        .split("<hidden:")
        .nth(1)
        .and_then(|r| r.split('>').next())
        .unwrap()
        .to_string();
    assert_eq!(marker.len(), 12);
    assert!(!doc_a.contains("048213"));
    // An attacker with the label and without the key tries every 6-digit PIN against a plain
    // hash (the old marker) and against a keyless HMAC: nothing matches.
    let zero = dockhand::spec::MarkerKey::default();
    let found = (0..1_000_000u32).map(|n| format!("{n:06}")).find(|pin| {
        dockhand::spec::sha256_hex(pin.as_bytes()).starts_with(&marker)
            || zero.mark(pin.as_bytes()).starts_with(&marker)
    });
    assert_eq!(found, None);
}

#[test]
fn the_state_directory_and_its_files_are_private_and_loose_ones_are_tightened() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    std::fs::create_dir(&state).unwrap();
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o755)).unwrap();
    for f in ["dockhand.db", "apply.lock"] {
        std::fs::write(state.join(f), "").unwrap();
        std::fs::set_permissions(state.join(f), std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    let store = dockhand::history::Store::open(&state).unwrap();
    let _lock = store.lock_apply().unwrap();
    dockhand::history::marker_key(&state).unwrap();
    assert_eq!(std::fs::metadata(&state).unwrap().mode() & 0o777, 0o700);
    for f in ["dockhand.db", "apply.lock", "marker.key"] {
        let m = std::fs::metadata(state.join(f)).unwrap().mode() & 0o777;
        assert_eq!(m, 0o600, "{f}");
    }
    // A fresh one is created private.
    let fresh = dir.path().join("fresh/state");
    dockhand::history::Store::open(&fresh).unwrap();
    assert_eq!(std::fs::metadata(&fresh).unwrap().mode() & 0o777, 0o700);
    assert_eq!(
        std::fs::metadata(fresh.join("dockhand.db")).unwrap().mode() & 0o777,
        0o600
    );
    // A key file that is not 32 bytes is refused, not silently replaced.
    std::fs::write(state.join("marker.key"), "short").unwrap();
    let e = dockhand::history::marker_key(&state)
        .unwrap_err()
        .to_string();
    assert!(e.contains("32 bytes") && e.contains("hint:"), "{e}");
}

/// The embedded demo passes under the built-in defaults; each example passes under the host
/// policy it ships (examples/<name>/host-policy.yaml), and its README names it.
#[test]
fn the_demo_and_the_examples_pass_under_the_host_policy() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let demo = dockhand::sources::from_dir(root, "desired-state").unwrap();
    let host = HostPolicy::builtin(&[dockhand::history::DEFAULT_STATE_DIR]);
    if let Err(d) = dockhand::load::load_with(&demo.files, &host) {
        panic!("the demo is refused by the built-in defaults:\n{d}");
    }
    for name in [
        "django-traefik-v1",
        "api-blue-green",
        "backup-migrate-swap",
        "stop-if-upgrade",
    ] {
        let dir = root.join("examples").join(name);
        let snap = dockhand::sources::from_dir(&dir, ".").unwrap();
        let file = dir.join("host-policy.yaml");
        let text =
            std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let host = HostPolicy::parse(&text, &file.display().to_string())
            .unwrap_or_else(|d| panic!("{d}"))
            .with_state_dirs(&[dockhand::history::DEFAULT_STATE_DIR]);
        if let Err(d) = dockhand::load::load_with(&snap.files, &host) {
            panic!("example {name} is refused by its host policy:\n{d}");
        }
        let readme = std::fs::read_to_string(dir.join("README.md")).unwrap();
        assert!(readme.contains("host-policy.yaml"), "{name}'s README");
    }
}

/// The plan checked a path that did not exist yet; then a container planted a link there
/// (to a folder outside the roots). Apply refuses before touching anything: the link's target
/// keeps its mode and owner, and no container is created.
#[tokio::test(flavor = "multi_thread")]
async fn a_link_planted_after_the_plan_is_refused_before_anything_is_touched() {
    let scratch = Scratch::new();
    let s = support::Stack::new("toctou");
    let img = s.image("v1");
    let data = scratch.s.join("root/data");
    s.write(&format!(
        "services:\n  web:\n    image: {img}\n    mounts:\n      - {{bind: {}, target: /data, create: {{mode: \"0777\", owner: \"1234:1234\"}}}}\n    stop_grace_period: 1s\n",
        data.display()
    ));
    let host = HostPolicy::parse(&scratch.fill(STRICT, &s.name), "host-policy.yaml").unwrap();
    let files = dockhand::sources::from_dir(s.path(), ".").unwrap().files;
    let state = dockhand::host::load(&files, &host).unwrap();
    let key = dockhand::history::marker_key(&s.state_dir()).unwrap();
    let (facts, _) = dockhand::host::facts(&state, key);
    let desired = dockhand::spec::render(&state, &facts, None);
    let docker = dockhand::observe::connect().await.unwrap();
    let names: Vec<String> = desired
        .containers
        .iter()
        .flat_map(dockhand::spec::DesiredContainer::container_names)
        .collect();
    let actual = dockhand::observe::observe(&docker, &desired.project, &names, &desired.marker_key)
        .await
        .unwrap();
    let plan = dockhand::plan::plan(&desired, &actual);
    assert!(!plan.is_empty());

    let before = scratch.snapshot();
    std::os::unix::fs::symlink(scratch.s.join("outside"), &data).unwrap();
    let before_link = {
        let mut b = before.clone();
        b.insert(data.clone(), scratch.snapshot().remove(&data).unwrap());
        b
    };
    let options = dockhand::apply::ApplyOptions {
        checks: Default::default(),
        preflight_only: false,
    };
    let progress = dockhand::apply::progress::Progress::new();
    let e = dockhand::apply::apply(&docker, &plan, &desired, &options, &progress)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("preflight failed") && e.contains("symbolic link"),
        "{e}"
    );
    assert_eq!(
        scratch.snapshot(),
        before_link,
        "apply went through the link"
    );
    let label = format!("label=dockhand.project={}", s.name);
    assert!(support::docker_ok(&["ps", "-aq", "--filter", &label]).is_empty());
}
