//! The two checks of a desired state against the host policy: `check` (paths as written,
//! powers, volumes, networks, registries, route hosts, narrowing) and `check_resolved` (paths
//! after the edge resolved them).

use std::collections::BTreeMap;

use super::paths::{
    host_matches, path_sites, under, HostFileKind, PathSite, ResolvedPath, ResolvedPaths,
};
use super::{HostPolicy, PathUse, DEFAULT_POLICY_FILE, ENV_FILE_MAX_BYTES, PROTECTED};
use crate::load::diagnostic::Diagnostic;
use crate::load::policy::{exposes_docker_socket, images, powers, registry_allowed};
use crate::load::validate::Indexes;
use crate::load::yaml::escape_pointer_token;
use crate::model::{DesiredState, Power};

/// Whether `stack` holds `power` under both the host policy and the repository's.
fn granted(desired: &DesiredState, host: &HostPolicy, stack: &str, power: Power) -> bool {
    let has =
        |allow: &BTreeMap<String, Vec<Power>>| allow.get(stack).is_some_and(|p| p.contains(&power));
    has(&host.allow) && has(&desired.config.policy.allow)
}

/// Positions of fields in files, for diagnostics made after loading.
struct At<'a> {
    indexes: &'a Indexes,
    out: Vec<Diagnostic>,
}

impl At<'_> {
    fn at(&mut self, file: &str, pointer: &str, message: String, hint: String) {
        let pos = self
            .indexes
            .get(file)
            .map(|i| i.value(pointer))
            .unwrap_or_default();
        self.out
            .push(Diagnostic::new(file, pos, pointer, message).hint(hint));
    }
}

/// The host policy's rules on a loaded desired state, as written (see the module docs).
pub(in crate::load) fn check(
    desired: &DesiredState,
    indexes: &Indexes,
    host: &HostPolicy,
) -> Vec<Diagnostic> {
    let mut cx = At {
        indexes,
        out: Vec::new(),
    };
    let file = host.origin.file();
    let origin = host.origin.describe();
    check_narrowing(&mut cx, desired, host);
    if let Some(projects) = &host.projects {
        let project = &desired.config.project;
        if !projects.iter().any(|p| p == project) {
            cx.at(
                crate::load::REPO_FILE,
                "/project",
                format!(
                    "project `{project}` is not one {origin} lets this repository deploy (rule `projects`; allowed: {})",
                    if projects.is_empty() { "none".to_string() } else { projects.join(", ") }
                ),
                format!("a project's containers belong to the repository that deploys it: set `project:` to one of those names, or have the host's owner add `{project}` under `projects` in {file}"),
            );
        }
    }

    for site in path_sites(desired) {
        if !site.path.starts_with('/') {
            // Reported by the repository's own checks (an absolute path is required).
            continue;
        }
        let host_allowed = host.allow.get(&site.stack).map_or(&[][..], Vec::as_slice);
        let power_refused = site.use_ == PathUse::Bind
            && exposes_docker_socket(&site.path)
            && !host_allowed.contains(&Power::DockerSocket);
        if power_refused {
            cx.at(
                &site.file,
                &site.pointer,
                format!("bind mount of `{}` (the Docker socket: root on the host) is denied by {origin} (rule `docker_socket`)", site.path),
                format!("host powers are granted by the host's owner: add `docker_socket` under `allow.{}` in {file}", site.stack),
            );
        }
        // A refused socket is reported once, as the power; the rest of what the path holds
        // (`/` holds /etc too) is still checked.
        let socket = power_refused
            || (site.use_ == PathUse::Bind
                && exposes_docker_socket(&site.path)
                && granted(desired, host, &site.stack, Power::DockerSocket));
        if let Err(r) = host.check_path(site.use_, &site.path, socket) {
            cx.at(&site.file, &site.pointer, r.message, r.hint);
        }
    }

    for stack in &desired.stacks {
        let sfile = stack.file.as_str();
        let sname = stack.name();
        let host_allowed = host.allow.get(sname).map_or(&[][..], Vec::as_slice);
        for (key, v) in &stack.spec.volumes {
            if !v.external {
                continue;
            }
            let name = v.name.as_deref().unwrap_or(key);
            let ok = host
                .external_volumes
                .as_ref()
                .is_some_and(|l| l.iter().any(|n| n == name));
            if !ok {
                cx.at(
                    sfile,
                    &format!("/volumes/{}", escape_pointer_token(key)),
                    format!("external volume `{name}` is not allowed by {origin} (rule `external_volumes`): it is data dockhand does not own"),
                    format!("use a volume of the stack's own, or have the host's owner list `{name}` under `external_volumes` in {file}"),
                );
            }
        }
        // Unset: none, like volumes. Another application's network is a way into its
        // private services (found by review: any `--internal` network could be joined).
        let allowed = host.external_networks.as_deref().unwrap_or_default();
        for (key, n) in &stack.spec.networks {
            let name = n.name.as_deref().unwrap_or(key);
            if n.external && !allowed.iter().any(|a| a == name) {
                cx.at(
                    sfile,
                    &format!("/networks/{}", escape_pointer_token(key)),
                    format!(
                        "external network `{name}` is not allowed by {origin} (rule `external_networks`; allowed: {})",
                        if allowed.is_empty() { "none".to_string() } else { allowed.join(", ") }
                    ),
                    format!("use a network of the stack's own, or have the host's owner list `{name}` under `external_networks` in {file}"),
                );
            }
        }
        for (name, svc) in &stack.spec.services {
            let base = format!("/services/{}", escape_pointer_token(name));
            for (power, field, what) in powers(svc) {
                if !host_allowed.contains(&power) {
                    cx.at(
                        sfile,
                        &format!("{base}{field}"),
                        format!("{what} is denied by {origin} (rule `{}`)", power.as_str()),
                        format!(
                            "host powers are granted by the host's owner: add `{}` under `allow.{sname}` in {file} (and under `policy.allow.{sname}` in dockhand.yaml)",
                            power.as_str()
                        ),
                    );
                }
            }
            if let Some(registries) = &host.registries {
                for (ptr, image) in images(svc) {
                    if !registry_allowed(image, registries) {
                        cx.at(
                            sfile,
                            &format!("{base}{ptr}"),
                            format!(
                                "image `{image}` is not from a registry allowed by {origin} ({}) (rule `registries`)",
                                registries.join(", ")
                            ),
                            format!("mirror the image into an allowed registry, or have the host's owner add its registry to `registries` in {file}"),
                        );
                    }
                }
            }
            if let (Some(hosts), Some(route)) = (&host.route_hosts, &svc.route) {
                if !hosts.iter().any(|h| host_matches(&route.host, h)) {
                    cx.at(
                        sfile,
                        &format!("{base}/route/host"),
                        format!(
                            "route host `{}` is not allowed by {origin} ({}) (rule `route_hosts`)",
                            route.host,
                            hosts.join(", ")
                        ),
                        format!("route a host name this host serves, or have the host's owner add it to `route_hosts` in {file}"),
                    );
                }
            }
        }
    }
    cx.out
}

/// The repository's `policy:` against the host's: anything the host does not allow is a
/// widening, refused where it is written.
fn check_narrowing(cx: &mut At<'_>, desired: &DesiredState, host: &HostPolicy) {
    let repo = &desired.config.policy;
    let file = host.origin.file();
    let origin = host.origin.describe();
    let repo_file = crate::load::REPO_FILE;
    let widen_hint = |what: &str| {
        format!("a repository's policy may only narrow the host's: remove it from dockhand.yaml, or have the host's owner add {what} in {file} (`--policy`/DOCKHAND_POLICY; default {DEFAULT_POLICY_FILE})")
    };
    for (i, root) in repo.bind_roots.iter().flatten().enumerate() {
        let inside = match &host.bind_roots {
            Some(roots) => roots.iter().any(|r| under(root, r)),
            None => !PROTECTED.iter().any(|s| under(root, s)),
        };
        if !inside {
            cx.at(
                repo_file,
                &format!("/policy/bind_roots/{i}"),
                format!("policy.bind_roots `{root}` widens {origin} (rule `host_policy`)"),
                widen_hint(&format!("`{root}` to `bind_roots`")),
            );
        }
    }
    if let Some(host_regs) = &host.registries {
        for (i, reg) in repo.registries.iter().flatten().enumerate() {
            let reg = reg.trim_end_matches('/');
            let inside = host_regs.iter().any(|h| {
                let h = h.trim_end_matches('/');
                reg == h || reg.starts_with(&format!("{h}/"))
            });
            if !inside {
                cx.at(
                    repo_file,
                    &format!("/policy/registries/{i}"),
                    format!("policy.registries `{reg}` widens {origin}, which allows {} (rule `host_policy`)", host_regs.join(", ")),
                    widen_hint(&format!("`{reg}` to `registries`")),
                );
            }
        }
    }
    for (stack, powers) in &repo.allow {
        let host_allowed = host.allow.get(stack).map_or(&[][..], Vec::as_slice);
        for (i, p) in powers.iter().enumerate() {
            if !host_allowed.contains(p) {
                cx.at(
                    repo_file,
                    &format!("/policy/allow/{}/{i}", escape_pointer_token(stack)),
                    format!(
                        "policy.allow.{stack} grants `{}`, which {origin} does not allow stack `{stack}` (rule `host_policy`)",
                        p.as_str()
                    ),
                    widen_hint(&format!("`{}` under `allow.{stack}`", p.as_str())),
                );
            }
        }
    }
}

/// The paths as the edge resolved them, checked again: the resolved path against the same
/// rules, and what it is (see the module docs). A path the as-written check already refused
/// is not reported twice.
pub(in crate::load) fn check_resolved(
    desired: &DesiredState,
    indexes: &Indexes,
    host: &HostPolicy,
    resolved: &ResolvedPaths,
) -> Vec<Diagnostic> {
    let mut cx = At {
        indexes,
        out: Vec::new(),
    };
    for site in path_sites(desired) {
        let Some(r) = resolved.get(&site.path) else {
            continue;
        };
        let granted_socket = |p: &str| {
            site.use_ == PathUse::Bind
                && exposes_docker_socket(p)
                && granted(desired, host, &site.stack, Power::DockerSocket)
        };
        if host
            .check_path(site.use_, &site.path, granted_socket(&site.path))
            .is_err()
        {
            continue;
        }
        let mut problem: Option<(String, String)> = None;
        if r.path != site.path {
            if let Err(refusal) = host.check_path(site.use_, &r.path, granted_socket(&r.path)) {
                problem = Some((
                    format!(
                        "{} `{}` resolves (through a symlink) to {}: {}",
                        site.use_.what(),
                        site.path,
                        r.path,
                        refusal.message
                    ),
                    format!(
                        "point it at the real folder, not at a link (a container can plant links in folders it mounts); {}",
                        refusal.hint
                    ),
                ));
            }
        }
        if problem.is_none() {
            problem = kind_problem(&site, r);
        }
        if let Some((message, hint)) = problem {
            cx.at(&site.file, &site.pointer, message, hint);
        }
    }
    cx.out
}

fn kind_problem(site: &PathSite, r: &ResolvedPath) -> Option<(String, String)> {
    let what = site.use_.what();
    let path = &site.path;
    let kind = r.kind.describe();
    match (site.use_, &r.kind) {
        (_, HostFileKind::DanglingSymlink) => Some((
            format!("{what} `{path}` is {kind} (rule `host_path`)"),
            "remove the link; name the real path".into(),
        )),
        (PathUse::EnvFile, HostFileKind::File { size }) if *size > ENV_FILE_MAX_BYTES => Some((
            format!("env file `{path}` is {size} bytes, more than the {ENV_FILE_MAX_BYTES} dockhand reads (rule `env_file`)"),
            "an env file holds KEY=VALUE lines; put large data in a bind mount".into(),
        )),
        (PathUse::EnvFile, HostFileKind::File { .. } | HostFileKind::Missing) => None,
        (PathUse::EnvFile, HostFileKind::Unreadable(_)) => None,
        (PathUse::EnvFile, _) => Some((
            format!("env file `{path}` is {kind}, not a regular file (rule `env_file`)"),
            "name a regular file of KEY=VALUE lines".into(),
        )),
        (PathUse::Rotate, HostFileKind::Dir | HostFileKind::Missing | HostFileKind::Unreadable(_)) => None,
        (PathUse::Rotate, _) => Some((
            format!("rotate directory `{path}` is {kind}, not a directory (rule `rotate`)"),
            "name the folder the backups are written to".into(),
        )),
        (PathUse::Bind, HostFileKind::Dir | HostFileKind::Missing | HostFileKind::Unreadable(_)) => None,
        (PathUse::Bind, _) if site.create => Some((
            format!("bind source `{path}` has `create` but is {kind}, not a directory (rule `host_path`)"),
            "`create` makes a directory; drop it to mount a file".into(),
        )),
        // A file, or a service's socket or pipe (the Docker socket is a power, checked
        // above): what bind mounts are for. A device is not (`devices:`, a host power).
        (PathUse::Bind, HostFileKind::File { .. } | HostFileKind::Socket | HostFileKind::Fifo) => {
            None
        }
        (PathUse::Bind, _) => Some((
            format!("bind source `{path}` is {kind} (rule `host_path`)"),
            "devices go under `devices:` (a host power); bind folders and regular files".into(),
        )),
    }
}
