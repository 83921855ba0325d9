//! Checks of meaning that a schema cannot express: references between fields, uniqueness
//! across stacks, digest form, dependency cycles. Every problem is collected, none stops the
//! search for the next.

mod names;
mod routes;
mod services;

pub use names::derived_containers;
pub(super) use names::DerivedNames;
use routes::{check_route, check_traefik_config};
pub use routes::{is_host_name, is_middleware_ref, is_safe_path, is_traefik_name};
use services::{check_env, check_health, check_http, check_image, dependency_cycles};

use std::collections::{BTreeMap, HashMap};

use super::diagnostic::Diagnostic;
use super::yaml::{escape_pointer_token, PosIndex};
use crate::model::{
    Condition, DependsOn, DesiredState, HookStep, Mount, Naming, PortMapping, Strategy,
};
use crate::spec::traefik::{MAINTENANCE_PRIORITY, NAME_SEPARATOR};

/// Where each loaded file's nodes are.
pub type Indexes = HashMap<String, PosIndex>;

pub(super) struct Ctx<'a> {
    indexes: &'a Indexes,
    out: Vec<Diagnostic>,
}

impl Ctx<'_> {
    pub(super) fn at(&mut self, file: &str, pointer: &str, message: impl Into<String>, hint: &str) {
        let pos = self
            .indexes
            .get(file)
            .map(|i| i.value(pointer))
            .unwrap_or_default();
        self.push(file, pos, pointer, message, hint);
    }

    /// Like [`Ctx::at`], pointing at the mapping key of `pointer` (a service's name line, not
    /// the first line of its body).
    pub(super) fn at_key(
        &mut self,
        file: &str,
        pointer: &str,
        message: impl Into<String>,
        hint: &str,
    ) {
        let pos = self.pos_key(file, pointer);
        self.push(file, pos, pointer, message, hint);
    }

    fn pos_key(&self, file: &str, pointer: &str) -> super::yaml::Pos {
        self.indexes
            .get(file)
            .map(|i| i.key(pointer))
            .unwrap_or_default()
    }

    fn push(
        &mut self,
        file: &str,
        pos: super::yaml::Pos,
        pointer: &str,
        message: impl Into<String>,
        hint: &str,
    ) {
        // A key may hold control characters (a NUL in an env key): show them escaped, never
        // raw on a terminal.
        let shown = printable(pointer);
        let mut d = Diagnostic::new(file, pos, &shown, message);
        if !hint.is_empty() {
            d = d.hint(hint);
        }
        self.out.push(d);
    }
}

/// `text` with control characters escaped (`\0`, `\n`, `\u{1b}`).
fn printable(text: &str) -> String {
    text.chars()
        .flat_map(|c| {
            let escaped: Vec<char> = if c.is_control() {
                c.escape_default().collect()
            } else {
                vec![c]
            };
            escaped
        })
        .collect()
}

fn svc_ptr(service: &str, rest: &str) -> String {
    format!("/services/{}{rest}", escape_pointer_token(service))
}

fn is_abs(path: &str) -> bool {
    path.starts_with('/')
}

pub fn check(desired: &DesiredState, indexes: &Indexes) -> Vec<Diagnostic> {
    let mut cx = Ctx {
        indexes,
        out: Vec::new(),
    };
    let mut stacks_seen: HashMap<&str, &str> = HashMap::new();
    let mut ports_seen: Vec<(PortMapping, String, String)> = Vec::new();
    let mut routes_seen: HashMap<(String, String), (String, String)> = HashMap::new();

    if let Some(api) = &desired.config.traefik.api {
        let host = api.strip_prefix("http://").unwrap_or_default();
        if host.is_empty() || host.contains('/') || host.contains(char::is_whitespace) {
            cx.at(
                crate::load::REPO_FILE,
                "/traefik/api",
                format!("`{api}` is not a Traefik API address"),
                "write http://HOST:PORT, e.g. http://127.0.0.1:8080 (Traefik's --api with its `traefik` entrypoint)",
            );
        }
    }
    check_traefik_config(&mut cx, &desired.config.traefik);
    let mut derived = DerivedNames::default();
    for stack in &desired.stacks {
        let file = stack.file.as_str();
        let spec = &stack.spec;
        if let Some(other) = stacks_seen.insert(&spec.stack, file) {
            cx.at(
                file,
                "/stack",
                format!("stack `{}` is also defined in {other}", spec.stack),
                "each stack lives in exactly one file; rename one of them",
            );
        } else {
            // A second file of one stack would clash on every name: that is said once above.
            derived.stack(&mut cx, Naming::of(&desired.config), stack);
        }
        if spec.services.is_empty() {
            cx.at(
                file,
                "/services",
                "a stack needs at least one service",
                "add a service, or delete the file to remove the stack",
            );
        }
        for (key, net) in &spec.networks {
            if net.external && net.driver.is_some() {
                cx.at(
                    file,
                    &format!("/networks/{}/driver", escape_pointer_token(key)),
                    "an external network has no driver to set",
                    "remove `driver`, or drop `external: true` to let dockhand own it",
                );
            }
        }

        for (name, svc) in &spec.services {
            let ptr = |rest: &str| svc_ptr(name, rest);
            let cname = Naming::of(&desired.config).container(&spec.stack, name);
            check_env(&mut cx, file, name, svc);

            check_image(&mut cx, desired, file, &ptr("/image"), &svc.image, "image");

            if let Some(path) = &svc.env_file {
                if !is_abs(path) {
                    cx.at(file, &ptr("/env_file"), format!("env_file `{path}` is not an absolute path"), "env files live on the host, outside git: give an absolute path such as /etc/dockhand/app.env");
                }
            }

            // Each mapping was parsed at load (a bad one is reported there, located).
            let mappings = svc
                .ports
                .iter()
                .enumerate()
                .flat_map(|(i, p)| p.mappings().iter().map(move |m| (i, m.clone())));
            for (i, mapping) in mappings {
                let pp = ptr(&format!("/ports/{i}"));
                if let Some((_, f, s)) =
                    ports_seen.iter().find(|(m, _, _)| m.clashes_with(&mapping))
                {
                    cx.at(file, &pp, format!("host port {} is also published by `{s}` in {f}", mapping.host_port), "two containers cannot bind the same host port; pick another port or bind to another IP");
                }
                ports_seen.push((mapping, file.to_string(), cname.clone()));
            }

            for (i, net) in svc.networks.iter().enumerate() {
                if !spec.networks.contains_key(net) {
                    cx.at(file, &ptr(&format!("/networks/{i}")), format!("network `{net}` is not declared in this stack"), &format!("add it under `networks:` at the top of the file (`{net}: {{}}` to own it, `{net}: {{external: true}}` to use an existing one)"));
                }
            }

            let mut targets: BTreeMap<&str, usize> = BTreeMap::new();
            for (i, mount) in svc.mounts.iter().enumerate() {
                let mp = ptr(&format!("/mounts/{i}"));
                let target = match mount {
                    Mount::Bind(b) => {
                        if !is_abs(&b.bind) {
                            cx.at(file, &format!("{mp}/bind"), format!("bind source `{}` is not an absolute host path", b.bind), "bind mounts need an absolute path on the host, e.g. /srv/app/media");
                        }
                        if b.bind.split('/').any(|c| c == "..") {
                            cx.at(
                                file,
                                &format!("{mp}/bind"),
                                format!("bind source `{}` contains `..`", b.bind),
                                "write the path without `..`",
                            );
                        }
                        &b.target
                    }
                    Mount::Volume(v) => {
                        if !spec.volumes.contains_key(&v.volume) {
                            cx.at(
                                file,
                                &format!("{mp}/volume"),
                                format!("volume `{}` is not declared in this stack", v.volume),
                                &format!(
                                    "add it under `volumes:` at the top of the file (`{}: {{}}`)",
                                    v.volume
                                ),
                            );
                        }
                        &v.target
                    }
                    Mount::Tmpfs(t) => &t.tmpfs,
                };
                let target_ptr = match mount {
                    Mount::Tmpfs(_) => format!("{mp}/tmpfs"),
                    _ => format!("{mp}/target"),
                };
                if !is_abs(target) {
                    cx.at(
                        file,
                        &target_ptr,
                        format!("mount target `{target}` is not an absolute path in the container"),
                        "write the target as an absolute path, e.g. /app/media",
                    );
                }
                if let Some(j) = targets.insert(target.as_str(), i) {
                    cx.at(
                        file,
                        &target_ptr,
                        format!("mount target `{target}` is also used by mounts[{j}]"),
                        "each container path can be mounted once",
                    );
                }
            }

            if let Some(h) = &svc.health {
                check_health(&mut cx, file, &ptr("/health"), h);
            }

            if let Some(route) = &svc.route {
                check_route(&mut cx, file, &ptr("/route"), route);
                let key = (
                    route.host.to_ascii_lowercase(),
                    route.path.clone().unwrap_or_else(|| "/".into()),
                );
                if let Some((f, s)) =
                    routes_seen.insert(key.clone(), (file.to_string(), cname.clone()))
                {
                    cx.at(
                        file,
                        &ptr("/route"),
                        format!("route {}{} is also claimed by `{s}` in {f}", key.0, key.1),
                        "two services cannot serve the same host and path; change `host` or `path`",
                    );
                }
                if let Some(tnet) = &desired.config.traefik.network {
                    let joined = svc.networks.iter().any(|n| {
                        spec.networks.get(n).is_some_and(|d| {
                            Naming::of(&desired.config).object(
                                &spec.stack,
                                n,
                                d.name.as_deref(),
                                d.external,
                            ) == *tnet
                        })
                    });
                    if !joined {
                        cx.at(file, &ptr("/route"), format!("a routed service must join Traefik's network `{tnet}` (traefik.network in dockhand.yaml)"), &format!("declare `networks: {{proxy: {{name: {tnet}, external: true}}}}` and add `proxy` to this service's networks"));
                    }
                }
            }

            for (key, value) in &svc.labels {
                let lp = format!("{}/{}", ptr("/labels"), escape_pointer_token(key));
                if key
                    .get(..9)
                    .is_some_and(|p| p.eq_ignore_ascii_case("dockhand."))
                {
                    cx.at(
                        file,
                        &lp,
                        format!("label `{key}` uses the reserved prefix `dockhand.` (rule `reserved_label`)"),
                        "dockhand sets these itself to record ownership; choose another prefix",
                    );
                }
                if super::policy::is_traefik_label(key) && key.contains(NAME_SEPARATOR) {
                    // Even where the policy allows raw Traefik labels: `__` marks the router
                    // names dockhand derives, of this project or another one on the host.
                    cx.at(
                        file,
                        &lp,
                        format!("label `{key}` names a Traefik object with `{NAME_SEPARATOR}`, which only dockhand's own routers use (rule `reserved_label`)"),
                        "give raw Traefik routers, services and middlewares names without `__`",
                    );
                }
                if key.contains('\0') || value.contains('\0') || key.is_empty() {
                    cx.at(
                        file,
                        &lp,
                        "a label key must be non-empty, and keys and values hold no NUL byte (rule `label`)",
                        "remove the NUL (\\0) from the label",
                    );
                }
            }

            for (i, (dep, cond)) in svc.depends_on.entries().into_iter().enumerate() {
                let dp = match &svc.depends_on {
                    DependsOn::Names(_) => ptr(&format!("/depends_on/{i}")),
                    DependsOn::Conditions(_) => {
                        ptr(&format!("/depends_on/{}", escape_pointer_token(dep)))
                    }
                };
                let Some(target) = spec.services.get(dep).filter(|_| dep != name) else {
                    if dep == name {
                        cx.at(
                            file,
                            &dp,
                            "a service cannot depend on itself",
                            "remove this entry",
                        );
                    } else {
                        cx.at(
                            file,
                            &dp,
                            format!(
                                "depends_on names `{dep}`, which is not a service in this stack"
                            ),
                            &format!(
                                "services here: {}",
                                spec.services.keys().cloned().collect::<Vec<_>>().join(", ")
                            ),
                        );
                    }
                    continue;
                };
                let has_check = target
                    .health
                    .as_ref()
                    .is_some_and(|h| h.cmd.is_some() || h.shell.is_some());
                match cond {
                    Condition::Healthy if !has_check => cx.at(file, &dp, format!("`{dep}` has no Docker healthcheck, so it can never be `healthy`"), &format!("give `{dep}` a `health.cmd` or `health.shell`, or use `started`")),
                    Condition::Completed if !target.job => cx.at(file, &dp, format!("`{dep}` is not a job, so it never `completed`"), &format!("set `job: true` on `{dep}` (it then runs once per change), or use `healthy`/`started`")),
                    Condition::Started | Condition::Healthy | Condition::Ready if target.job => cx.at(file, &dp, format!("`{dep}` is a job: it runs and exits"), "wait for it with `completed`"),
                    _ => {}
                }
            }

            if svc.timeout.is_some() && !svc.job {
                cx.at(
                    file,
                    &ptr("/timeout"),
                    "`timeout` bounds a job's run, and this service is not a job",
                    "set `job: true`, or remove `timeout` (a service's start is bounded by its `health`)",
                );
            }
            if svc.job {
                if svc.route.is_some()
                    || svc
                        .release
                        .as_ref()
                        .is_some_and(|r| r.strategy == Strategy::BlueGreen)
                {
                    cx.at(
                        file,
                        &ptr("/job"),
                        "a job cannot have a `route` or a blue-green release",
                        "jobs run once and exit; route to a long-running service instead",
                    );
                }
                if svc
                    .restart
                    .is_some_and(|r| r != crate::model::RestartPolicy::No)
                {
                    cx.at(
                        file,
                        &ptr("/restart"),
                        "a job is never restarted",
                        "remove `restart` from the job",
                    );
                }
            }

            if let Some(hooks) = &svc.hooks {
                for (phase, steps) in [
                    ("before", &hooks.before),
                    ("after_start", &hooks.after_start),
                    ("after_switch", &hooks.after_switch),
                ] {
                    for (i, step) in steps.iter().enumerate() {
                        let hp = ptr(&format!("/hooks/{phase}/{i}"));
                        let (command, detail) = match step {
                            HookStep::Command(c) => (c, None),
                            HookStep::Detailed(d) => (&d.command, Some(d)),
                        };
                        if command.is_empty() {
                            cx.at(file, &hp, "hook command is empty", "give the command and its arguments, e.g. [python, manage.py, migrate]");
                        }
                        let Some(d) = detail else { continue };
                        if d.service.is_some() && d.image.is_some() {
                            cx.at(file, &hp, "hook sets both `service` and `image`", "`service` runs it with exec in that running service; `image` runs it in a one-off container: keep one");
                        }
                        if let Some(other) = &d.service {
                            if other == name {
                                cx.at(file, &format!("{hp}/service"), "`service` names this service itself", "drop `service`: a bare command runs in this service's new container (or, for `before`, a one-off container from its new image)");
                            } else if !spec.services.contains_key(other) {
                                cx.at(file, &format!("{hp}/service"), format!("hook runs in `{other}`, which is not a service in this stack"), &format!("services here: {}", spec.services.keys().cloned().collect::<Vec<_>>().join(", ")));
                            }
                            if !d.mounts.is_empty() {
                                cx.at(
                                    file,
                                    &format!("{hp}/mounts"),
                                    "`mounts` only apply to a one-off container",
                                    "the exec runs with the mounts that service already has",
                                );
                            }
                        }
                        if let Some(image) = &d.image {
                            check_image(
                                &mut cx,
                                desired,
                                file,
                                &format!("{hp}/image"),
                                image,
                                "hook image",
                            );
                        }
                        for (j, m) in d.mounts.iter().enumerate() {
                            if let Mount::Bind(b) = m {
                                if !is_abs(&b.bind) {
                                    cx.at(
                                        file,
                                        &format!("{hp}/mounts/{j}/bind"),
                                        format!("bind source `{}` is not an absolute path", b.bind),
                                        "use an absolute host path",
                                    );
                                }
                            }
                        }
                    }
                }
            }

            if let Some(route) = &svc.route {
                if route.priority.is_some_and(|p| p >= MAINTENANCE_PRIORITY) {
                    cx.at(file, &ptr("/route/priority"), format!("route priority must be below {MAINTENANCE_PRIORITY}"), "that range is reserved for maintenance containers, which must win over every route");
                }
            }
            if let Some(rel) = &svc.release {
                for (i, c) in rel.smoke.iter().enumerate() {
                    let cp = ptr(&format!("/release/smoke/{i}"));
                    let set = [c.http.is_some(), c.tcp.is_some(), c.cmd.is_some()];
                    if set.iter().filter(|x| **x).count() != 1 {
                        cx.at(file, &cp, "a smoke check needs exactly one of `http`, `tcp` or `cmd`", "e.g. {http: {port: 8080, path: /readyz, body: '\"ready\": true'}}; write several checks as several list items");
                    }
                    if let Some(h) = &c.http {
                        check_http(&mut cx, file, &format!("{cp}/http"), h);
                    }
                    if c.cmd.as_ref().is_some_and(Vec::is_empty) {
                        cx.at(
                            file,
                            &format!("{cp}/cmd"),
                            "smoke cmd is empty",
                            "give the command and its arguments",
                        );
                    }
                }
                if let Some(m) = &rel.maintenance {
                    check_image(
                        &mut cx,
                        desired,
                        file,
                        &ptr("/release/maintenance/image"),
                        &m.image,
                        "maintenance image",
                    );
                    if svc.route.is_none() {
                        cx.at(file, &ptr("/release/maintenance"), "a maintenance container needs the service's `route`", "it takes over that route while the release has downtime; add `route: {host: ..., port: ...}`");
                    }
                }
                if rel.strategy == Strategy::BlueGreen {
                    let shell_or_cmd = svc
                        .health
                        .as_ref()
                        .is_some_and(|h| h.cmd.is_some() || h.shell.is_some());
                    if !shell_or_cmd {
                        cx.at(file, &ptr("/release/strategy"), "blue-green needs a Docker healthcheck (`health.cmd` or `health.shell`)", "it gates the switch and takes the old color out of the proxy: add e.g. `health: {cmd: [wget, -q, -O, /dev/null, http://127.0.0.1:8080/readyz], interval: 1s}`");
                    }
                    if svc.route.is_none() {
                        cx.at(file, &ptr("/release/strategy"), "blue-green needs a `route`", "the colors are swapped behind Traefik; add `route: {host: ..., port: ...}`");
                    }
                    if !svc.ports.is_empty() {
                        cx.at(file, &ptr("/ports"), "blue-green services cannot publish host ports", "two colors cannot bind the same host port; reach the service through its `route`");
                    }
                    if svc.read_only {
                        cx.at(file, &ptr("/read_only"), "blue-green services cannot have a read-only root file system", "dockhand holds a new color out of the proxy with a file in its root until its gate passes; drop `read_only` (mount a tmpfs or volume where the service writes)");
                    }
                } else if rel.active.is_some() || rel.keep_idle.is_some() || rel.drain.is_some() {
                    cx.at(
                        file,
                        &ptr("/release"),
                        "`active`, `keep_idle` and `drain` only apply to `strategy: blue-green`",
                        "remove them, or use the blue-green strategy",
                    );
                }
            }
        }

        for cycle in dependency_cycles(spec) {
            let first = &cycle[0];
            cx.at(
                file,
                &svc_ptr(first, "/depends_on"),
                format!("depends_on forms a cycle: {}", cycle.join(" → ")),
                "break the cycle: one of these services must start without the other",
            );
        }
    }
    super::policy::check(&mut cx, desired);
    cx.out
}
