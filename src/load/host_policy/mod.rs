//! The host's own policy: what the owner of this host lets any commit do here. It is a file on
//! the host (`--policy FILE`, `DOCKHAND_POLICY`, default `/etc/dockhand/policy.yaml` when it
//! exists), like `--allowed-signers`, so that a commit cannot change it; the repository's
//! `policy:` may only narrow it.
//!
//! Without a policy file the built-in defaults hold: no stack gets a host power, no external
//! volume may be mounted, and the protected host paths ([`PROTECTED`], plus dockhand's own state
//! directory) are refused as bind sources, env files and rotate directories.
//!
//! Two checks, both pure (file contents and host facts come in as data):
//! - `check`: each path as written (absolute, no `..`, under the host's roots, not
//!   protected), each power, external volume and network, registry and route host, and
//!   whether the repository's `policy:` widens the host's;
//! - `check_resolved`: each path again after the edge resolved symlinks and `..`
//!   ([`ResolvedPath`]), with what it is (an env file must be a regular file under
//!   [`ENV_FILE_MAX_BYTES`], a rotate directory a directory).

mod checks;
mod paths;

pub(super) use checks::{check, check_resolved};
use paths::{is_clean_abs, overlaps, path_len, under};
pub use paths::{
    path_sites, with_resolved_paths, HostFileKind, PathSite, ResolvedPath, ResolvedPaths,
};

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::diagnostic::{Diagnostic, Diagnostics};
use super::schema::{self, FileKind};
use super::yaml::{self, Pos};
use crate::model::Power;

/// Where the host policy is read from when `--policy` is not given and the file exists.
pub const DEFAULT_POLICY_FILE: &str = "/etc/dockhand/policy.yaml";

/// Largest env file dockhand reads (bytes): env files are a few lines; anything bigger is a
/// mistake or an attack on dockhand's memory.
pub const ENV_FILE_MAX_BYTES: u64 = 1024 * 1024;

/// Host paths no commit may hand to a container, read from or delete in, each with what is
/// below it: the host's programs and libraries (`/usr`, `/bin`, …: a file written there runs
/// as root), its configuration and kernel interfaces, users' and root's homes, runtime
/// sockets and state (`/run`: systemd, D-Bus, the Docker and containerd sockets), packages'
/// and applications' state (`/var/lib`, with the Docker and containerd data), and cron's and
/// mail's spools. A path *above* one of them (`/`, `/var`) is refused too, since it contains
/// it. A host policy can open one folder inside (say `/etc/dockhand/env` or `/var/lib/myapp`)
/// by naming it, or a path below it, as a root. The first list (`/etc` … `/root`, the Docker
/// and containerd paths) was issue 17's; review found `/usr/local/bin` writable through a bind
/// under it, hence the rest. Container data belongs in its own folder (`/srv/<stack>`,
/// `/opt/<app>`, `/var/tmp/…`) or in a volume.
pub const PROTECTED: [&str; 19] = [
    "/bin",
    "/boot",
    "/dev",
    "/etc",
    "/home",
    "/lib",
    "/lib32",
    "/lib64",
    "/libx32",
    "/proc",
    "/root",
    "/run",
    "/sbin",
    "/snap",
    "/sys",
    "/usr",
    "/var/lib",
    "/var/run",
    "/var/spool",
];

/// The protected paths a service granted `docker_socket` may bind: the Engine's and
/// containerd's sockets and runtime folders (the power already is root on the host).
const SOCKET_PATHS: [&str; 6] = [
    "/run/containerd",
    "/var/run/containerd",
    "/run/docker",
    "/var/run/docker",
    "/run/docker.sock",
    "/var/run/docker.sock",
];

/// `policy.yaml` on the host. Every field is optional; an unset field means the built-in
/// default written on it.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(
    title = "dockhand host policy",
    description = "What commits may do on this host (/etc/dockhand/policy.yaml, or --policy FILE). A repository's `policy:` may only narrow it."
)]
pub struct HostPolicy {
    /// Host folders bind mounts may come from (each one and what is below it). Unset: any
    /// absolute path outside the protected ones (/etc, /proc, /sys, /dev, /boot, /root, the
    /// Docker and containerd data and sockets, dockhand's state directory). A root inside a
    /// protected folder (e.g. `/etc/localtime`) opens exactly that part of it.
    #[serde(default)]
    pub bind_roots: Option<Vec<String>>,
    /// Host folders env files may be read from. Unset: any absolute path outside the protected
    /// ones. E.g. `[/etc/dockhand/env]`.
    #[serde(default)]
    pub env_file_roots: Option<Vec<String>>,
    /// Host folders `rotate` may delete old files in. Unset: the same as `bind_roots` (a rotate
    /// deletes what a bind mount there could delete anyway). Never dockhand's state directory.
    #[serde(default)]
    pub rotate_roots: Option<Vec<String>>,
    /// Docker names of existing volumes stacks may mount with `external: true`. Unset: none (an
    /// external volume is another application's data).
    #[serde(default)]
    pub external_volumes: Option<Vec<String>>,
    /// Docker names of existing networks stacks may join with `external: true`. Unset: none
    /// (another application's network is a way into its private services).
    #[serde(default)]
    pub external_networks: Option<Vec<String>>,
    /// Registries images may come from: a host (`ghcr.io`, `127.0.0.1:5000`) or a host and
    /// namespace (`ghcr.io/acme`); Docker Hub images count as `docker.io/...`. Unset: any.
    #[serde(default)]
    pub registries: Option<Vec<String>>,
    /// The `project:` names commits may deploy on this host. Unset: any. A project's name is
    /// what dockhand's ownership labels carry, so a repository that names another one's
    /// project would plan that project's containers as its own (and remove what it does not
    /// declare): where two repositories share a host, run one agent per repository, each
    /// with a policy file of its own (`--policy`) listing only its project.
    #[serde(default)]
    pub projects: Option<Vec<String>>,
    /// Host names routes may claim: exact (`shop.example.com`) or a wildcard for the names
    /// below a domain (`*.example.com`). Unset: any.
    #[serde(default)]
    pub route_hosts: Option<Vec<String>>,
    /// Per stack, the host powers it may be granted (`privileged`, `host_network`,
    /// `host_pid`, `cap_add`, `devices`, `docker_socket`, `traefik_labels`, `security_opt`,
    /// `sysctls`). Unset: none for any stack. The
    /// repository still has to ask for them under its own `policy.allow`.
    #[serde(default)]
    pub allow: BTreeMap<String, Vec<Power>>,
    /// Where this policy came from, for messages (the file, or the built-in defaults).
    #[serde(skip)]
    #[schemars(skip)]
    pub origin: Origin,
    /// dockhand's state directories (the one in use and the default): never a bind source, env
    /// file or rotate directory, whatever the roots say.
    #[serde(skip)]
    #[schemars(skip)]
    pub state_dirs: Vec<String>,
}

/// Where a [`HostPolicy`] came from.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Origin {
    /// No policy file: the built-in defaults.
    #[default]
    Builtin,
    /// This file on the host.
    File(String),
}

impl Origin {
    /// How messages name it.
    pub fn describe(&self) -> String {
        match self {
            Origin::Builtin => format!(
                "the built-in host defaults (no host policy file; {DEFAULT_POLICY_FILE} is absent)"
            ),
            Origin::File(f) => format!("the host policy {f}"),
        }
    }

    /// The file a host owner edits to change it.
    pub fn file(&self) -> &str {
        match self {
            Origin::Builtin => DEFAULT_POLICY_FILE,
            Origin::File(f) => f,
        }
    }
}

/// What a host path named by a commit is used for; each has its own roots.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathUse {
    /// A bind source (a service's, a hook's), or a directory to `create` for one.
    Bind,
    /// A service's `env_file`.
    EnvFile,
    /// A hook's `rotate.dir`.
    Rotate,
}

impl PathUse {
    /// The host policy field holding this use's roots (also the rule's name).
    pub fn roots_field(self) -> &'static str {
        match self {
            PathUse::Bind => "bind_roots",
            PathUse::EnvFile => "env_file_roots",
            PathUse::Rotate => "rotate_roots",
        }
    }

    fn what(self) -> &'static str {
        match self {
            PathUse::Bind => "bind source",
            PathUse::EnvFile => "env file",
            PathUse::Rotate => "rotate directory",
        }
    }
}

/// Why a host path is refused: the rule, the message and the hint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub rule: &'static str,
    pub message: String,
    pub hint: String,
}

impl HostPolicy {
    /// The built-in defaults (no policy file), protecting `state_dirs` too.
    pub fn builtin(state_dirs: &[&str]) -> HostPolicy {
        HostPolicy::default().with_state_dirs(state_dirs)
    }

    /// Parses a policy file's text. `origin` names the file in diagnostics.
    ///
    /// # Errors
    /// Every problem (YAML, schema, a root that is not an absolute path without `..`), with
    /// `origin`:line:column.
    pub fn parse(text: &str, origin: &str) -> Result<HostPolicy, Diagnostics> {
        let (value, index) = yaml::parse(text).map_err(|e| {
            Diagnostics(vec![Diagnostic::new(
                origin,
                e.pos,
                "",
                format!("invalid YAML: {}", e.message),
            )
            .hint("fix the YAML syntax of the host policy")])
        })?;
        let mut problems = schema::check(FileKind::HostPolicy, origin, &value, &index);
        if !problems.is_empty() {
            return Err(Diagnostics(problems).sorted());
        }
        let mut policy: HostPolicy = serde_json::from_value(value).map_err(|e| {
            Diagnostics(vec![Diagnostic::new(origin, Pos { line: 1, col: 1 }, "", e.to_string())
                .hint("the schema accepted this host policy but dockhand's types did not: please report it")])
        })?;
        for (field, roots) in [
            ("bind_roots", &policy.bind_roots),
            ("env_file_roots", &policy.env_file_roots),
            ("rotate_roots", &policy.rotate_roots),
        ] {
            for (i, root) in roots.iter().flatten().enumerate() {
                if !is_clean_abs(root) {
                    let ptr = format!("/{field}/{i}");
                    problems.push(
                        Diagnostic::new(
                            origin,
                            index.value(&ptr),
                            &ptr,
                            format!("`{root}` is not an absolute path without `..`"),
                        )
                        .hint("list host folders such as /srv/app"),
                    );
                }
            }
        }
        if !problems.is_empty() {
            return Err(Diagnostics(problems).sorted());
        }
        policy.origin = Origin::File(origin.to_string());
        Ok(policy)
    }

    /// The same policy, also protecting `dirs` (dockhand's state directories).
    pub fn with_state_dirs(mut self, dirs: &[&str]) -> HostPolicy {
        for d in dirs {
            let d = d.trim_end_matches('/');
            if !d.is_empty() && !self.state_dirs.iter().any(|s| s == d) {
                self.state_dirs.push(d.to_string());
            }
        }
        self
    }

    fn roots(&self, use_: PathUse) -> Option<&[String]> {
        match use_ {
            PathUse::Bind => self.bind_roots.as_deref(),
            PathUse::EnvFile => self.env_file_roots.as_deref(),
            PathUse::Rotate => self.rotate_roots.as_deref().or(self.bind_roots.as_deref()),
        }
    }

    /// Whether this host lets `path` be used for `use_`. `socket_granted`: the service holds
    /// `docker_socket` (host and repository), which opens the Docker and containerd sockets.
    ///
    /// # Errors
    /// The [`Refusal`]: `host_path` (not absolute or has `..`), `state_dir`, the roots' field
    /// (`bind_roots`, `env_file_roots`, `rotate_roots`) or `protected_paths`.
    pub fn check_path(
        &self,
        use_: PathUse,
        path: &str,
        socket_granted: bool,
    ) -> Result<(), Refusal> {
        let what = use_.what();
        let file = self.origin.file();
        if !is_clean_abs(path) {
            return Err(Refusal {
                rule: "host_path",
                message: format!(
                    "{what} `{path}` is not an absolute path without `..` (rule `host_path`)"
                ),
                hint: "write the host path in full, e.g. /srv/app/data".into(),
            });
        }
        let root = match self.roots(use_) {
            None => None,
            Some(roots) => {
                let admitting = roots
                    .iter()
                    .filter(|r| under(path, r))
                    .max_by_key(|r| r.len());
                match admitting {
                    Some(r) => Some(r.as_str()),
                    None => {
                        return Err(Refusal {
                            rule: use_.roots_field(),
                            message: format!(
                                "{what} `{path}` is outside the host's allowed roots ({}) in {} (rule `{}`)",
                                roots.join(", "),
                                self.origin.describe(),
                                use_.roots_field()
                            ),
                            hint: format!(
                                "keep it under one of those folders, or have the host's owner add its folder to `{}` in {file}",
                                use_.roots_field()
                            ),
                        })
                    }
                }
            }
        };
        // The `docker_socket` power opens the sockets and the Engine's runtime folders, and
        // only them: not the rest of `/run` around them.
        let socket_bind = socket_granted
            && use_ == PathUse::Bind
            && SOCKET_PATHS.iter().any(|sp| under(path, sp));
        for s in PROTECTED {
            if socket_bind && SOCKET_PATHS.iter().any(|sp| under(sp, s)) {
                continue;
            }
            // A root the owner named inside a protected folder opens what is below that root.
            let opened = root.is_some_and(|r| under(r, s));
            if (under(path, s) && !opened) || (under(s, path) && path_len(s) > path_len(path)) {
                return Err(Refusal {
                    rule: "protected_paths",
                    message: format!(
                        "{what} `{path}` {} {s}, a protected host path (rule `protected_paths`)",
                        if under(path, s) { "is under" } else { "contains" }
                    ),
                    hint: format!(
                        "keep host files for containers in a folder of their own (e.g. /srv/<stack>); if this host really must hand it out, the host's owner names that exact folder under `{}` in {file}",
                        use_.roots_field()
                    ),
                });
            }
        }
        for dir in &self.state_dirs {
            if overlaps(path, dir) {
                return Err(Refusal {
                    rule: "state_dir",
                    message: format!(
                        "{what} `{path}` is or holds dockhand's state directory {dir} (rule `state_dir`)"
                    ),
                    hint: "dockhand's deploy record, lock and keys are never handed to a stack; use a folder of the stack's own".into(),
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::paths::host_matches;
    use super::*;

    fn refused(p: &HostPolicy, use_: PathUse, path: &str) -> Option<&'static str> {
        p.check_path(use_, path, false).err().map(|r| r.rule)
    }

    #[test]
    fn defaults_refuse_protected_paths_and_what_holds_them() {
        let p = HostPolicy::builtin(&["/var/lib/dockhand"]);
        for path in [
            "/",
            "/etc",
            "/etc/shadow",
            "/proc/self/environ",
            "/var",
            "/var/lib",
            "/run",
            "/dev/sda",
            "/root/.ssh",
            "/var/lib/docker/volumes",
            "/run/containerd/containerd.sock",
            // Found by review: writable through a bind under the first list's defaults.
            "/usr/local/bin",
            "/usr",
            "/bin",
            "/sbin",
            "/lib/systemd",
            "/var/spool/cron",
            "/run/systemd",
            "/run/user/1000",
            "/home/app/.ssh",
            "/var/lib/dpkg",
        ] {
            assert_eq!(
                refused(&p, PathUse::Bind, path),
                Some("protected_paths"),
                "{path}"
            );
        }
        // /var/lib/dockhand is protected twice over; a state directory elsewhere is too.
        let q = HostPolicy::builtin(&["/srv/dockhand-state"]);
        for path in ["/srv/dockhand-state", "/srv/dockhand-state/dockhand.db"] {
            assert_eq!(
                refused(&q, PathUse::Rotate, path),
                Some("state_dir"),
                "{path}"
            );
        }
        assert_eq!(
            refused(&p, PathUse::EnvFile, "/srv/../etc/shadow"),
            Some("host_path")
        );
        for path in [
            "/srv/app",
            "/var/tmp/dockhand-demo/media",
            "/opt/app/data",
            "/homework",
            "/etcetera",
        ] {
            assert_eq!(refused(&p, PathUse::Bind, path), None, "{path}");
        }
    }

    #[test]
    fn a_root_named_inside_a_protected_folder_opens_only_that_root() {
        let p = HostPolicy {
            env_file_roots: Some(vec!["/etc/dockhand/env".into()]),
            bind_roots: Some(vec!["/srv".into(), "/etc/localtime".into()]),
            ..HostPolicy::default()
        };
        assert_eq!(
            refused(&p, PathUse::EnvFile, "/etc/dockhand/env/shop.env"),
            None
        );
        assert_eq!(
            refused(&p, PathUse::EnvFile, "/etc/dockhand/git.token"),
            Some("env_file_roots")
        );
        assert_eq!(refused(&p, PathUse::Bind, "/etc/localtime"), None);
        assert_eq!(refused(&p, PathUse::Bind, "/etc"), Some("bind_roots"));
        // rotate falls back to the bind roots
        assert_eq!(refused(&p, PathUse::Rotate, "/srv/backups"), None);
        assert_eq!(refused(&p, PathUse::Rotate, "/tmp/x"), Some("rotate_roots"));
    }

    #[test]
    fn the_docker_socket_opens_only_with_the_power() {
        let p = HostPolicy::default();
        assert_eq!(
            refused(&p, PathUse::Bind, "/var/run/docker.sock"),
            Some("protected_paths")
        );
        assert!(p
            .check_path(PathUse::Bind, "/var/run/docker.sock", true)
            .is_ok());
        assert!(p
            .check_path(PathUse::EnvFile, "/var/run/docker.sock", true)
            .is_err());
        // the power does not open the rest of what a parent folder holds
        assert!(p.check_path(PathUse::Bind, "/", true).is_err());
    }

    fn repo(policy: &str) -> Vec<super::super::SourceFile> {
        vec![
            super::super::SourceFile {
                path: "dockhand.yaml".into(),
                text: format!("version: 1\npolicy:\n{policy}"),
            },
            super::super::SourceFile {
                path: "stacks/ops.yaml".into(),
                text: "stack: ops\nservices:\n  web:\n    image: ghcr.io/acme/web@sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n".into(),
            },
        ]
    }

    #[test]
    fn a_repository_policy_may_narrow_the_host_but_not_widen_it() {
        let host = HostPolicy::parse(
            "bind_roots: [/srv]\nregistries: [ghcr.io]\nallow:\n  ops: [cap_add]\n",
            "/etc/dockhand/policy.yaml",
        )
        .unwrap();
        let narrow = "  bind_roots: [/srv/ops]\n  registries: [ghcr.io/acme]\n  allow:\n    ops: [cap_add]\n";
        assert!(super::super::load_with(&repo(narrow), &host).is_ok());
        for (widening, line) in [
            ("  bind_roots: [/srv, /home]\n", 3),
            ("  registries: [docker.io]\n", 3),
            ("  allow:\n    ops: [cap_add, privileged]\n", 4),
            ("  allow:\n    web: [cap_add]\n", 4),
        ] {
            let e = super::super::load_with(&repo(widening), &host)
                .unwrap_err()
                .to_string();
            assert!(
                e.contains(&format!("dockhand.yaml:{line}:")) && e.contains("rule `host_policy`"),
                "{widening}: {e}"
            );
            assert!(e.contains("/etc/dockhand/policy.yaml"), "{e}");
        }
        // Without a host policy file, a repository root inside a protected folder widens.
        let e =
            super::super::load_with(&repo("  bind_roots: [/etc/app]\n"), &HostPolicy::default())
                .unwrap_err()
                .to_string();
        assert!(e.contains("rule `host_policy`"), "{e}");
        assert!(
            super::super::load_with(&repo("  bind_roots: [/srv]\n"), &HostPolicy::default())
                .is_ok()
        );
    }

    /// Found by review: `project:` is the committer's to choose, and the ownership labels
    /// carry it, so one repository could plan (and remove) another's containers by naming
    /// its project. A host policy can pin what each agent may deploy.
    #[test]
    fn a_host_policy_pins_the_projects_a_repository_may_deploy() {
        let host = HostPolicy::parse("projects: [shop]\n", "/etc/dockhand/shop.yaml").unwrap();
        let with_project = |project: &str| {
            let mut files = repo("  registries: [ghcr.io]\n");
            files[0].text = format!("version: 1\nproject: {project}\n");
            files
        };
        assert!(super::super::load_with(&with_project("shop"), &host).is_ok());
        let e = super::super::load_with(&with_project("blog"), &host)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("dockhand.yaml:2:") && e.contains("rule `projects`"),
            "{e}"
        );
        assert!(e.contains("/etc/dockhand/shop.yaml"), "{e}");
        // Unset: any project.
        assert!(super::super::load_with(&with_project("blog"), &HostPolicy::default()).is_ok());
    }

    #[test]
    fn route_host_patterns() {
        assert!(host_matches("shop.example.com", "shop.example.com"));
        assert!(host_matches("a.example.com", "*.example.com"));
        assert!(host_matches("A.B.Example.com", "*.example.com"));
        assert!(!host_matches("example.com", "*.example.com"));
        assert!(!host_matches("evilexample.com", "*.example.com"));
        assert!(!host_matches("victim.localhost", "shop.localhost"));
    }

    #[test]
    fn policy_files_parse_with_positions() {
        let p = HostPolicy::parse(
            "bind_roots: [/srv]\nallow:\n  ops: [privileged]\n",
            "/etc/dockhand/policy.yaml",
        )
        .unwrap();
        assert_eq!(p.bind_roots, Some(vec!["/srv".to_string()]));
        assert_eq!(p.allow["ops"], vec![Power::Privileged]);
        assert_eq!(p.origin, Origin::File("/etc/dockhand/policy.yaml".into()));
        let e = HostPolicy::parse(
            "bind_roots: [/srv]\nenv_file_roots: [etc/x, /a/../b]\n",
            "p.yaml",
        )
        .unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains("p.yaml:2:18: env_file_roots[0]: `etc/x` is not an absolute path"),
            "{text}"
        );
        assert!(text.contains("p.yaml:2:25: env_file_roots[1]"), "{text}");
        let e = HostPolicy::parse("bind_root: [/srv]\n", "p.yaml").unwrap_err();
        assert!(e.to_string().contains("p.yaml:1:1"), "{e}");
    }
}
