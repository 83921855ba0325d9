//! Issue 19, item 1: images in a registry that needs a login. A real `docker-registry` with
//! htpasswd auth on its own 127.0.0.1 port (started here), the docker CLI's own `docker login`
//! into a test-owned DOCKER_CONFIG as the reference for the config file, a credential helper
//! on PATH, and `--registry-auth FILE`. The password must be absent from every output and
//! the deploy record.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use base64::Engine as _;
use support::{docker, Stack};

const USER: &str = "deployer";
/// Distinct enough that finding it anywhere is a leak, not a coincidence.
const PASSWORD: &str = "pw-Zq7-never-shown-41c";

/// A registry of this test's own that wants `USER`/`PASSWORD`; killed (and its images
/// removed from the Engine) on drop.
struct AuthRegistry {
    addr: String,
    child: Child,
    _dir: tempfile::TempDir,
    pulled: Vec<String>,
}

impl AuthRegistry {
    fn start() -> AuthRegistry {
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new("htpasswd")
            .args(["-Bbn", USER, PASSWORD])
            .output()
            .expect("htpasswd (apache2-utils) is needed: run scripts/test-env.sh");
        assert!(out.status.success());
        std::fs::write(dir.path().join("htpasswd"), &out.stdout).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let addr = format!("127.0.0.1:{port}");
        let config = format!(
            "version: 0.1\nlog: {{level: warn}}\nstorage:\n  filesystem: {{rootdirectory: {root}}}\nhttp:\n  addr: {addr}\nauth:\n  htpasswd:\n    realm: dockhand-test\n    path: {htpasswd}\n",
            root = dir.path().join("data").display(),
            htpasswd = dir.path().join("htpasswd").display(),
        );
        std::fs::write(dir.path().join("registry.yml"), config).unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(dir.path().join("registry.yml"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("docker-registry is needed: run scripts/test-env.sh");
        let r = AuthRegistry {
            addr,
            child,
            _dir: dir,
            pulled: Vec::new(),
        };
        for _ in 0..100 {
            // Up when it answers at all: without a login that is a 401.
            match ureq::get(&format!("http://{}/v2/", r.addr)).call() {
                Err(ureq::Error::Status(401, _)) => return r,
                Ok(_) => panic!("the test registry did not ask for a login"),
                Err(_) => std::thread::sleep(std::time::Duration::from_millis(100)),
            }
        }
        panic!("the test registry at {} did not come up", r.addr);
    }

    fn basic() -> String {
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"));
        format!("Basic {token}")
    }

    /// Pushes an image unique to `s` (with the login); returns `repo:tag` and the digest.
    fn push(&mut self, s: &Stack, marker: &str) -> (String, String) {
        let layer = support::image::layer(&[("index.html", marker)]);
        let repo = format!("private/{}", s.name);
        let digest = support::image::push_as(
            &self.addr,
            Some(&AuthRegistry::basic()),
            &repo,
            marker,
            &layer,
            &["/bin/httpd", "-f", "-p", "8080", "-h", "/www"],
        )
        .expect("push with the login");
        let tagged = format!("{}/{repo}:{marker}", self.addr);
        self.pulled.push(format!("{tagged}@{digest}"));
        self.pulled.push(format!("{}/{repo}@{digest}", self.addr));
        (tagged, digest)
    }
}

impl Drop for AuthRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        for image in &self.pulled {
            let _ = docker(&["rmi", "-f", image]);
        }
    }
}

/// `docker login` into a fresh DOCKER_CONFIG, as a compose user's host has it.
fn docker_login(config: &Path, registry: &str) {
    let mut login = Command::new("docker");
    login
        .env("DOCKER_CONFIG", config)
        .args(["login", registry, "-u", USER, "--password-stdin"]);
    let out = support::output_with_stdin(login, PASSWORD.as_bytes());
    assert!(
        out.status.success(),
        "docker login: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn env_of(config: &Path) -> Vec<(&'static str, String)> {
    vec![("DOCKER_CONFIG", config.to_string_lossy().to_string())]
}

fn dockhand(s: &Stack, args: &[&str], env: &[(&str, String)]) -> support::Run {
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    s.dockhand_env(args, &env)
}

/// Everything the record directory holds, as text (the SQLite file and its WAL).
fn record_bytes(s: &Stack) -> String {
    let mut all = String::new();
    for e in std::fs::read_dir(s.state_dir()).unwrap() {
        let p: PathBuf = e.unwrap().path();
        if p.is_file() {
            all.push_str(&String::from_utf8_lossy(&std::fs::read(p).unwrap()));
        }
    }
    all
}

fn assert_no_secret(what: &str, text: &str) {
    let basic = AuthRegistry::basic();
    let encoded = basic.trim_start_matches("Basic ");
    assert!(!text.contains(PASSWORD), "the password is in {what}");
    assert!(!text.contains(encoded), "the encoded login is in {what}");
    assert!(
        !text.to_ascii_lowercase().contains("x-registry-auth"),
        "the login header is in {what}"
    );
}

#[test]
fn a_registry_that_needs_a_login_works_after_docker_login_and_says_unauthorized_without() {
    let mut reg = AuthRegistry::start();
    let s = Stack::new("regauth");
    let (tagged, digest) = reg.push(&s, "v1");
    let pinned = format!("{tagged}@{digest}");
    s.write(&format!("services:\n  web:\n    image: {pinned}\n"));
    let web = s.container("web");

    // No login: refused at preflight as unauthorized, with the login hint, nothing created.
    let empty = tempfile::tempdir().unwrap();
    let r = dockhand(&s, &["apply", "--yes"], &env_of(empty.path()));
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("unauthorized"), "{r:?}");
    assert!(
        r.stderr
            .contains(&format!("log in to {} on this host", reg.addr)),
        "{r:?}"
    );
    assert!(
        !r.stderr.contains("check that this digest was pushed"),
        "{r:?}"
    );
    assert!(!docker(&["inspect", &web]).status.success());

    // `pin` without a login: the same word, the file untouched.
    let file = s.path().join(format!("stacks/{}.yaml", s.name));
    std::fs::write(
        &file,
        format!(
            "stack: {}\nservices:\n  web:\n    image: {tagged}\n",
            s.name
        ),
    )
    .unwrap();
    let src = s.path().to_string_lossy().to_string();
    let pin_args = ["pin", "--source", src.as_str(), "--path", "."];
    let pin_env = |config: &Path| vec![("DOCKER_CONFIG", config.to_string_lossy().to_string())];
    let run_pin = |config: &Path| {
        let env = pin_env(config);
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        support::run(&pin_args, &env)
    };
    let p = run_pin(empty.path());
    assert_eq!(p.code, 1, "{p:?}");
    assert!(p.stdout.contains("unauthorized: log in to"), "{p:?}");

    // `docker login` (the CLI's own config file): pin, preflight, pull and status work.
    let config = tempfile::tempdir().unwrap();
    docker_login(config.path(), &reg.addr);
    let written = std::fs::read_to_string(config.path().join("config.json")).unwrap();
    assert!(written.contains(&reg.addr), "{written}");
    let p = run_pin(config.path());
    assert_eq!(p.code, 0, "{p:?}");
    assert!(
        std::fs::read_to_string(&file).unwrap().contains(&pinned),
        "pin wrote the digest the registry serves"
    );
    let a = dockhand(&s, &["-vv", "apply", "--yes"], &env_of(config.path()));
    assert_eq!(a.code, 0, "{a:?}");
    assert!(
        a.stdout.contains("1 image(s) pulled")
            && a.stderr.contains(&format!("pulled {}", reg.addr)),
        "{a:?}"
    );
    let running = support::docker_ok(&["inspect", "-f", "{{.Config.Image}}", &web]);
    assert!(
        running.starts_with(&reg.addr) && running.ends_with(&format!("@{digest}")),
        "{running} is not the pinned {pinned}"
    );
    let st = dockhand(&s, &["status"], &env_of(config.path()));
    assert_eq!(st.code, 0, "{st:?}");
    assert!(
        !st.stdout.contains("tag moved") && !st.stderr.contains("unauthorized"),
        "{st:?}"
    );
    let hist = dockhand(&s, &["history"], &env_of(config.path()));

    for (what, text) in [
        ("apply without login", format!("{}{}", r.stdout, r.stderr)),
        ("pin", format!("{}{}", p.stdout, p.stderr)),
        ("apply at -vv", format!("{}{}", a.stdout, a.stderr)),
        ("status", format!("{}{}", st.stdout, st.stderr)),
        ("history", format!("{}{}", hist.stdout, hist.stderr)),
        ("the record", record_bytes(&s)),
    ] {
        assert_no_secret(what, &text);
    }
}

#[test]
fn a_credential_helper_and_an_explicit_registry_auth_file_are_used() {
    let mut reg = AuthRegistry::start();
    let s = Stack::new("reghelp");
    let (tagged, digest) = reg.push(&s, "v1");
    let pinned = format!("{tagged}@{digest}");
    s.write(&format!("services:\n  web:\n    image: {pinned}\n"));

    // `credHelpers` → `docker-credential-test get`, the helper protocol: the server on
    // stdin, `{"Username", "Secret"}` out. It logs what it was asked for.
    let bin = tempfile::tempdir().unwrap();
    let asked = bin.path().join("asked");
    let helper = bin.path().join("docker-credential-test");
    std::fs::write(
        &helper,
        format!(
            "#!/bin/sh\n[ \"$1\" = get ] || exit 1\nread server\necho \"$server\" >> {}\nprintf '{{\"ServerURL\":\"%s\",\"Username\":\"{USER}\",\"Secret\":\"{PASSWORD}\"}}' \"$server\"\n",
            asked.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let config = tempfile::tempdir().unwrap();
    std::fs::write(
        config.path().join("config.json"),
        format!("{{\"credHelpers\": {{\"{}\": \"test\"}}}}", reg.addr),
    )
    .unwrap();
    let path = format!(
        "{}:{}",
        bin.path().display(),
        std::env::var("PATH").unwrap()
    );
    let mut env = env_of(config.path());
    env.push(("PATH", path));
    let a = dockhand(&s, &["apply", "--yes"], &env);
    assert_eq!(a.code, 0, "{a:?}");
    assert_eq!(
        std::fs::read_to_string(&asked).unwrap().lines().next(),
        Some(reg.addr.as_str()),
        "the helper was asked for the registry"
    );
    assert_no_secret("apply with a helper", &format!("{}{}", a.stdout, a.stderr));

    // `credsStore`: the same helper for every registry. Preflight asks the registry (the
    // image is no longer on the host), and passes only with the login.
    let _ = docker(&["rmi", "-f", &pinned]);
    let store = tempfile::tempdir().unwrap();
    std::fs::write(
        store.path().join("config.json"),
        "{\"credsStore\": \"test\"}",
    )
    .unwrap();
    let mut env = env_of(store.path());
    env.push((
        "PATH",
        format!(
            "{}:{}",
            bin.path().display(),
            std::env::var("PATH").unwrap()
        ),
    ));
    let p = dockhand(&s, &["apply", "--preflight-only"], &env);
    assert_eq!(p.code, 0, "{p:?}");
    let empty = tempfile::tempdir().unwrap();
    let p = dockhand(&s, &["apply", "--preflight-only"], &env_of(empty.path()));
    assert_eq!(p.code, 1, "{p:?}");
    assert!(p.stderr.contains("unauthorized"), "{p:?}");

    // `--registry-auth FILE` wins over DOCKER_CONFIG (here: no logins at all).
    let (tagged2, digest2) = reg.push(&s, "v2");
    let pinned2 = format!("{tagged2}@{digest2}");
    s.write(&format!("services:\n  web:\n    image: {pinned2}\n"));
    let login_dir = tempfile::tempdir().unwrap();
    docker_login(login_dir.path(), &reg.addr);
    let file = login_dir.path().join("config.json");
    let empty = tempfile::tempdir().unwrap();
    let file_arg = file.to_string_lossy().to_string();
    let a = dockhand(
        &s,
        &["apply", "--yes", "--registry-auth", &file_arg],
        &env_of(empty.path()),
    );
    assert_eq!(a.code, 0, "{a:?}");
    assert_no_secret(
        "apply with --registry-auth",
        &format!("{}{}", a.stdout, a.stderr),
    );
    assert_no_secret("the record", &record_bytes(&s));

    // A named file that is missing is an error, not "no login".
    let missing = empty.path().join("nope.json").to_string_lossy().to_string();
    s.write(&format!("services:\n  web:\n    image: {pinned}\n"));
    let _ = docker(&["rmi", "-f", &pinned]);
    let r = dockhand(
        &s,
        &["apply", "--yes", "--registry-auth", &missing],
        &env_of(empty.path()),
    );
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("nope.json"), "{r:?}");
}
