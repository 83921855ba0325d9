//! Policy guardrails from `dockhand.yaml`'s `policy:`: host-level powers (privileged, host
//! network and PID namespaces, added capabilities, devices, the Docker socket) are denied to
//! every stack not listed under `policy.allow`; bind mounts must come from `bind_roots`;
//! images from `registries`. A commit that breaks a rule is refused at validation, naming the
//! rule. Pure: no I/O.

use std::path::{Component, Path};

use super::validate::Ctx;
use super::yaml::escape_pointer_token;
use crate::model::image::ImageRef;
use crate::model::{DesiredState, HookStep, Mount, Power, Service};

/// Paths whose bind mount hands out the Docker socket (the folders holding it too).
const DOCKER_SOCKETS: [&str; 2] = ["/var/run/docker.sock", "/run/docker.sock"];

pub(super) fn check(cx: &mut Ctx<'_>, desired: &DesiredState) {
    let policy = &desired.config.policy;
    for root in policy.bind_roots.iter().flatten() {
        if !root.starts_with('/') || has_dot_dot(root) {
            cx.at(
                crate::load::REPO_FILE,
                "/policy/bind_roots",
                format!("bind root `{root}` is not an absolute path without `..`"),
                "list host folders such as /srv/app",
            );
        }
    }
    for stack in &desired.stacks {
        let file = stack.file.as_str();
        let allowed = policy
            .allow
            .get(stack.name())
            .map_or(&[][..], Vec::as_slice);
        for (name, svc) in &stack.spec.services {
            let base = format!("/services/{}", escape_pointer_token(name));
            if svc.network_mode.is_some() && (!svc.ports.is_empty() || !svc.networks.is_empty()) {
                cx.at(
                    file,
                    &format!("{base}/network_mode"),
                    "with `network_mode: host` the service uses the host's network: `ports` and `networks` do not apply",
                    "remove `ports` and `networks` (the service listens on the host's ports directly), or drop network_mode",
                );
            }
            for (field, caps) in [("cap_add", &svc.cap_add), ("cap_drop", &svc.cap_drop)] {
                for (i, cap) in caps.iter().enumerate() {
                    let ok = cap.starts_with(|c: char| c.is_ascii_uppercase())
                        && cap.chars().all(|c| c.is_ascii_uppercase() || c == '_');
                    if !ok {
                        cx.at(
                            file,
                            &format!("{base}/{field}/{i}"),
                            format!("`{cap}` is not a capability name"),
                            "write it as Docker does, upper case without CAP_: NET_ADMIN, SYS_TIME, ALL",
                        );
                    }
                }
            }
            for (i, dev) in svc.devices.iter().enumerate() {
                let parts: Vec<&str> = dev.split(':').collect();
                let ok = parts.len() <= 3
                    && parts.iter().take(2).all(|p| p.starts_with('/'))
                    && parts
                        .get(2)
                        .is_none_or(|p| !p.is_empty() && p.chars().all(|c| "rwm".contains(c)));
                if !ok {
                    cx.at(
                        file,
                        &format!("{base}/devices/{i}"),
                        format!("`{dev}` is not a device mapping"),
                        "write HOST_PATH[:CONTAINER_PATH[:PERMISSIONS]], e.g. /dev/fuse or /dev/ttyUSB0:/dev/modem:rw",
                    );
                }
            }
            let mut asks = powers(svc);
            let mounts = svc
                .mounts
                .iter()
                .enumerate()
                .map(|(i, m)| (format!("/mounts/{i}/bind"), m));
            let hook_mounts = hook_steps(svc).flat_map(|(ptr, step)| match step {
                HookStep::Detailed(d) => d
                    .mounts
                    .iter()
                    .enumerate()
                    .map(|(i, m)| (format!("{ptr}/mounts/{i}/bind"), m))
                    .collect::<Vec<_>>(),
                HookStep::Command(_) => Vec::new(),
            });
            for (ptr, m) in mounts.chain(hook_mounts) {
                let Mount::Bind(b) = m else { continue };
                if exposes_docker_socket(&b.bind) {
                    asks.push((
                        Power::DockerSocket,
                        ptr.clone(),
                        format!(
                            "bind mount of `{}` (the Docker socket: root on the host)",
                            b.bind
                        ),
                    ));
                }
                if let Some(roots) = &policy.bind_roots {
                    if !under_any(&b.bind, roots) {
                        cx.at(
                            file,
                            &format!("{base}{ptr}"),
                            format!(
                                "bind source `{}` is outside the allowed roots {} (rule `bind_roots`)",
                                b.bind,
                                roots.join(", ")
                            ),
                            "keep the data under an allowed root, or add its folder to policy.bind_roots in dockhand.yaml",
                        );
                    }
                }
            }
            // A rotate deletes files as root: it is held to the same roots as bind mounts.
            if let Some(roots) = &policy.bind_roots {
                for (ptr, step) in hook_steps(svc) {
                    let HookStep::Detailed(d) = step else {
                        continue;
                    };
                    let Some(r) = &d.rotate else { continue };
                    if !under_any(&r.dir, roots) {
                        cx.at(
                            file,
                            &format!("{base}{ptr}/rotate/dir"),
                            format!(
                                "rotate directory `{}` is outside the allowed roots {} (rule `bind_roots`)",
                                r.dir,
                                roots.join(", ")
                            ),
                            "rotate only a folder under an allowed root (where the backups are bind-mounted), or add its folder to policy.bind_roots in dockhand.yaml",
                        );
                    }
                }
            }
            for (power, field, what) in asks {
                if allowed.contains(&power) {
                    continue;
                }
                cx.at(
                    file,
                    &format!("{base}{field}"),
                    format!("{what} is denied by policy (rule `{}`)", power.as_str()),
                    &format!(
                        "{}if stack `{stack}` really needs it, add `{power}` under `policy.allow.{stack}` in dockhand.yaml (review it like any change to the host's security)",
                        if power == Power::TraefikLabels {
                            "route the service with `route:` (dockhand writes its Traefik labels); "
                        } else {
                            ""
                        },
                        stack = stack.name(),
                        power = power.as_str(),
                    ),
                );
            }
            if let Some(registries) = &policy.registries {
                for (ptr, image) in images(svc) {
                    if !registry_allowed(image, registries) {
                        cx.at(
                            file,
                            &format!("{base}{ptr}"),
                            format!(
                                "image `{image}` is not from an allowed registry ({}) (rule `registries`)",
                                registries.join(", ")
                            ),
                            "mirror the image into an allowed registry, or add its registry to policy.registries in dockhand.yaml",
                        );
                    }
                }
            }
        }
    }
}

/// The powers a service asks for, each with the field that asks and what it is.
pub(super) fn powers(svc: &Service) -> Vec<(Power, String, String)> {
    let mut asks = Vec::new();
    let mut ask = |p: Power, field: &str, what: String| asks.push((p, field.to_string(), what));
    if svc.privileged {
        ask(Power::Privileged, "/privileged", "privileged mode".into());
    }
    if svc.network_mode.is_some() {
        ask(
            Power::HostNetwork,
            "/network_mode",
            "the host's network namespace".into(),
        );
    }
    if svc.pid.is_some() {
        ask(Power::HostPid, "/pid", "the host's PID namespace".into());
    }
    if !svc.cap_add.is_empty() {
        ask(
            Power::CapAdd,
            "/cap_add",
            format!("adding capabilities ({})", svc.cap_add.join(", ")),
        );
    }
    if !svc.devices.is_empty() {
        ask(
            Power::Devices,
            "/devices",
            format!("host devices ({})", svc.devices.join(", ")),
        );
    }
    let loosening: Vec<&str> = svc
        .security_opt
        .iter()
        .map(String::as_str)
        .filter(|o| !crate::model::harmless_security_opt(o))
        .collect();
    if !loosening.is_empty() {
        ask(
            Power::SecurityOpt,
            "/security_opt",
            format!(
                "security options that loosen the sandbox ({})",
                loosening.join(", ")
            ),
        );
    }
    let host_network = svc.network_mode.is_some();
    let outside: Vec<&str> = svc
        .sysctls
        .keys()
        .map(String::as_str)
        .filter(|k| !crate::model::namespaced_sysctl(k, host_network))
        .collect();
    if !outside.is_empty() {
        ask(
            Power::Sysctls,
            "/sysctls",
            format!(
                "sysctls that reach the host's kernel ({})",
                outside.join(", ")
            ),
        );
    }
    // Checked by the host policy too (it calls this): a repository cannot grant itself raw
    // Traefik labels any more than `privileged`.
    for key in svc.labels.keys() {
        if is_traefik_label(key) {
            ask(
                Power::TraefikLabels,
                &format!("/labels/{}", escape_pointer_token(key)),
                format!("label `{key}` (a raw Traefik label can route any host on the proxy)"),
            );
        }
    }
    asks
}

/// Whether a label key is read by Traefik's docker provider. Compared case-insensitively:
/// Traefik matches label paths without regard to case.
pub(super) fn is_traefik_label(key: &str) -> bool {
    key.get(..8)
        .is_some_and(|p| p.eq_ignore_ascii_case("traefik."))
}

/// Every image a service runs, with its field under the service: its own, its hooks' and its
/// maintenance container's (what the registry rules hold).
pub(super) fn images(svc: &Service) -> Vec<(String, &str)> {
    let mut images = vec![("/image".to_string(), svc.image.as_str())];
    for (ptr, step) in hook_steps(svc) {
        if let HookStep::Detailed(d) = step {
            if let Some(img) = &d.image {
                images.push((format!("{ptr}/image"), img));
            }
        }
    }
    if let Some(m) = svc.release.as_ref().and_then(|r| r.maintenance.as_ref()) {
        images.push(("/release/maintenance/image".into(), &m.image));
    }
    images
}

pub(super) fn hook_steps(svc: &Service) -> impl Iterator<Item = (String, &HookStep)> {
    svc.hooks.iter().flat_map(|h| {
        [
            ("before", &h.before),
            ("after_start", &h.after_start),
            ("after_switch", &h.after_switch),
        ]
        .into_iter()
        .flat_map(|(phase, steps)| {
            steps
                .iter()
                .enumerate()
                .map(move |(i, s)| (format!("/hooks/{phase}/{i}"), s))
        })
    })
}

fn has_dot_dot(path: &str) -> bool {
    Path::new(path)
        .components()
        .any(|c| c == Component::ParentDir)
}

/// Whether bind-mounting `source` hands out a Docker socket: the socket itself or any folder
/// above it (`/run`, `/var/run`, `/var`, `/`).
pub(super) fn exposes_docker_socket(source: &str) -> bool {
    let source = Path::new(source);
    DOCKER_SOCKETS
        .iter()
        .any(|s| Path::new(s).starts_with(source))
        || source.file_name().is_some_and(|n| n == "docker.sock")
}

/// Whether `source` is one of `roots` or below one, component by component (`/srv/app2` is not
/// under `/srv/app`), and has no `..` to climb out.
fn under_any(source: &str, roots: &[String]) -> bool {
    !has_dot_dot(source) && roots.iter().any(|r| Path::new(source).starts_with(r))
}

/// Whether `image` comes from one of `registries`: a registry host, or a host and namespace
/// prefix. Images without a registry host are Docker Hub's (`docker.io/library/…`).
pub(super) fn registry_allowed(image: &str, registries: &[String]) -> bool {
    let Ok(r) = ImageRef::parse(image) else {
        // Unparseable references are reported by the image check already.
        return true;
    };
    let repo = r.repository.as_str();
    let first = repo.split('/').next().unwrap_or_default();
    let has_host =
        repo.contains('/') && (first.contains('.') || first.contains(':') || first == "localhost");
    let full = match (has_host, repo.contains('/')) {
        (true, _) => repo.to_string(),
        (false, true) => format!("docker.io/{repo}"),
        (false, false) => format!("docker.io/library/{repo}"),
    };
    registries.iter().any(|allowed| {
        let allowed = allowed.trim_end_matches('/');
        full == allowed || full.starts_with(&format!("{allowed}/"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_docker_socket_and_the_folders_above_it_are_recognised() {
        for s in [
            "/var/run/docker.sock",
            "/run/docker.sock",
            "/var/run",
            "/run",
            "/var",
            "/",
            "/srv/docker.sock",
        ] {
            assert!(exposes_docker_socket(s), "{s}");
        }
        for s in ["/srv/app", "/var/lib/app", "/run/app"] {
            assert!(!exposes_docker_socket(s), "{s}");
        }
    }

    #[test]
    fn bind_roots_match_whole_components_and_refuse_dot_dot() {
        let roots = vec!["/srv/app".to_string()];
        assert!(under_any("/srv/app", &roots));
        assert!(under_any("/srv/app/media", &roots));
        assert!(!under_any("/srv/app2", &roots));
        assert!(!under_any("/srv/app/../etc", &roots));
        assert!(!under_any("/etc", &roots));
    }

    #[test]
    fn registries_match_hosts_and_namespaces() {
        let allowed = vec!["127.0.0.1:5000".to_string(), "ghcr.io/acme".to_string()];
        assert!(registry_allowed("127.0.0.1:5000/demo/web:1", &allowed));
        assert!(registry_allowed("ghcr.io/acme/api:2", &allowed));
        assert!(!registry_allowed("ghcr.io/acme-evil/api:2", &allowed));
        assert!(!registry_allowed("ghcr.io/other/api:2", &allowed));
        assert!(!registry_allowed("nginx:1.27", &allowed));
        assert!(registry_allowed(
            "nginx:1.27",
            &["docker.io/library".to_string()]
        ));
        assert!(registry_allowed(
            "acme/tool:1",
            &["docker.io/acme".to_string()]
        ));
    }
}
