//! Checks of meaning that a schema cannot express: references between fields, uniqueness
//! across stacks, digest form, dependency cycles. Every problem is collected, none stops the
//! search for the next.

use std::collections::{BTreeMap, HashMap};

use super::diagnostic::Diagnostic;
use super::yaml::{escape_pointer_token, PosIndex};
use crate::model::image::ImageRef;
use crate::model::{
    container_name, object_name, Condition, DependsOn, DesiredState, Health, HookStep, HttpProbe,
    Mount, PortMapping, Route, Service, Stack, Strategy, TraefikConfig,
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
            derived.stack(&mut cx, stack);
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
            let cname = container_name(&spec.stack, name);
            check_env(&mut cx, file, name, svc);

            check_image(&mut cx, desired, file, &ptr("/image"), &svc.image, "image");

            if let Some(path) = &svc.env_file {
                if !is_abs(path) {
                    cx.at(file, &ptr("/env_file"), format!("env_file `{path}` is not an absolute path"), "env files live on the host, outside git: give an absolute path such as /etc/dockhand/app.env");
                }
            }

            // Each mapping was parsed at load (a bad one is reported there, located).
            for (i, mapping) in svc.ports.iter().cloned().enumerate() {
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
                            object_name(&spec.stack, n, d.name.as_deref(), d.external) == *tnet
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

/// RFC 1123 host name: dot-separated labels of 1 to 63 letters, digits and hyphens, not
/// starting or ending with a hyphen, 253 characters at most. Traefik's `Host` matcher takes
/// exactly these (a wildcard needs `HostRegexp`, which dockhand does not write).
pub fn is_host_name(host: &str) -> bool {
    host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// A path prefix that cannot carry rule syntax: `/`, then letters, digits, `-._~!$*+@/` and
/// `%XX` escapes, 1024 bytes at most. No backtick, quote, parenthesis, `&`, `|`, `,`, `;`,
/// `:`, `=`, braces (v2 path regexes) or whitespace: in a v2/v3 rule they could close the
/// matcher and add another one, in a v1.7 rule `,`/`;`/`:` separate values and matchers.
pub fn is_safe_path(path: &str) -> bool {
    let b = path.as_bytes();
    if b.first() != Some(&b'/') || b.len() > 1024 {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hex = |j: usize| b.get(j).is_some_and(u8::is_ascii_hexdigit);
                if !(hex(i + 1) && hex(i + 2)) {
                    return false;
                }
                i += 3;
                continue;
            }
            c if c.is_ascii_alphanumeric() || b"-._~!$*+@/".contains(&c) => {}
            _ => return false,
        }
        i += 1;
    }
    true
}

/// A Traefik object name (entrypoint, certificate resolver): a letter or digit, then letters,
/// digits, `-` and `_`, 64 characters at most. Names are written into comma-separated label
/// values and label keys, so `,`, `.` and `@` are out.
pub fn is_traefik_name(name: &str) -> bool {
    name.len() <= 64
        && name
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// A middleware reference: a Traefik name, optionally `@provider` (`auth@file`).
pub fn is_middleware_ref(name: &str) -> bool {
    match name.split_once('@') {
        Some((n, provider)) => is_traefik_name(n) && is_traefik_name(provider),
        None => is_traefik_name(name),
    }
}

/// Every field of a route that ends up in a Traefik label, held to its grammar.
fn check_route(cx: &mut Ctx<'_>, file: &str, ptr: &str, route: &Route) {
    if !is_host_name(&route.host) {
        cx.at(
            file,
            &format!("{ptr}/host"),
            format!("`{}` is not a host name (rule `route_host`)", route.host),
            "write a DNS name such as app.example.com: letters, digits and `-` in dot-separated labels (RFC 1123), no wildcard, no rule syntax",
        );
    }
    if let Some(path) = &route.path {
        if !is_safe_path(path) {
            cx.at(
                file,
                &format!("{ptr}/path"),
                format!("path prefix {path:?} has characters Traefik rules give meaning to (rule `route_path`)"),
                "write a plain path such as /api/v1: letters, digits, `-._~!$*+@/` and %XX escapes; no quotes, backticks, parentheses, `&&`, `||`, commas, semicolons, colons or spaces",
            );
        }
    }
    for (i, ep) in route.entrypoints.iter().enumerate() {
        if !is_traefik_name(ep) {
            cx.at(
                file,
                &format!("{ptr}/entrypoints/{i}"),
                format!("{ep:?} is not a Traefik entrypoint name (rule `traefik_name`)"),
                "entrypoint names are letters, digits, `-` and `_`, as in Traefik's static configuration (e.g. web, websecure)",
            );
        }
    }
    for (i, mw) in route.middlewares.iter().enumerate() {
        if !is_middleware_ref(mw) {
            cx.at(
                file,
                &format!("{ptr}/middlewares/{i}"),
                format!("{mw:?} is not a Traefik middleware name (rule `traefik_name`)"),
                "write NAME or NAME@PROVIDER with letters, digits, `-` and `_` (e.g. auth@file)",
            );
        }
    }
    if let Some(cr) = &route.cert_resolver {
        if !is_traefik_name(cr) {
            cx.at(
                file,
                &format!("{ptr}/cert_resolver"),
                format!("{cr:?} is not a Traefik certificate resolver name (rule `traefik_name`)"),
                "resolver names are letters, digits, `-` and `_`, as in Traefik's static configuration (e.g. letsencrypt)",
            );
        }
    }
}

/// `traefik:` in dockhand.yaml: the values it puts into every routed container's labels.
fn check_traefik_config(cx: &mut Ctx<'_>, t: &TraefikConfig) {
    let file = crate::load::REPO_FILE;
    for (i, ep) in t.entrypoints.iter().enumerate() {
        if !is_traefik_name(ep) {
            cx.at(
                file,
                &format!("/traefik/entrypoints/{i}"),
                format!("{ep:?} is not a Traefik entrypoint name (rule `traefik_name`)"),
                "entrypoint names are letters, digits, `-` and `_` (e.g. web, websecure)",
            );
        }
    }
    if let Some(cr) = t.cert_resolver.as_ref().filter(|c| !is_traefik_name(c)) {
        cx.at(
            file,
            "/traefik/cert_resolver",
            format!("{cr:?} is not a Traefik certificate resolver name (rule `traefik_name`)"),
            "resolver names are letters, digits, `-` and `_` (e.g. letsencrypt)",
        );
    }
    if let Some(net) = &t.network {
        let ok = net.len() <= 255
            && net
                .bytes()
                .next()
                .is_some_and(|b| b.is_ascii_alphanumeric())
            && net
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
        if !ok {
            cx.at(
                file,
                "/traefik/network",
                format!("{net:?} is not a Docker network name (rule `traefik_name`)"),
                "Docker network names are letters, digits and `_.-`, starting with a letter or digit",
            );
        }
    }
}

/// Env keys and values as Docker gets them (`KEY=VALUE` strings): a key is non-empty and has
/// no `=`, and neither holds a NUL byte (the Engine cuts the string there, or refuses it half
/// way through an apply).
fn check_env(cx: &mut Ctx<'_>, file: &str, service: &str, svc: &Service) {
    for (key, value) in &svc.env {
        let p = svc_ptr(service, &format!("/env/{}", escape_pointer_token(key)));
        if key.is_empty() || key.contains('=') || key.contains('\0') {
            cx.at(
                file,
                &p,
                format!("env key {key:?} is empty or holds `=` or a NUL byte (rule `env_key`)"),
                "env keys are names such as DATABASE_URL: no `=`, no NUL",
            );
        }
        if matches!(value, crate::model::EnvValue::String(v) if v.contains('\0')) {
            cx.at(
                file,
                &p,
                format!(
                    "the value of env `{}` holds a NUL byte (rule `env_value`)",
                    printable(key)
                ),
                "a process environment cannot carry NUL bytes; remove it (encode binary values, e.g. base64)",
            );
        }
    }
}

/// Who produces a Docker name, for the message that names both owners.
struct Owner {
    file: String,
    pointer: String,
    line: usize,
    what: String,
    /// `file#/services/<name>` (or the network's, volume's key): one clash between two
    /// owners is reported once, not once per suffix they share.
    unit: String,
}

/// Every Docker name the project derives (containers with all their suffixes, owned networks
/// and volumes), so that two owners of one name are refused at validation instead of fighting
/// over (or removing) each other's object at apply.
#[derive(Default)]
pub(super) struct DerivedNames {
    containers: BTreeMap<String, Owner>,
    networks: BTreeMap<String, Owner>,
    volumes: BTreeMap<String, Owner>,
    /// Pairs of owners already reported.
    reported: std::collections::BTreeSet<(String, String)>,
}

/// The containers a service may create, each with what it is and the field that asks for it:
/// its container (or `-blue`/`-green`), the `-dockhand-old` aside of a recreate, the
/// `-maintenance` container and the one-off container of each hook step that runs in one
/// (`<name>-hook-<phase><index>`, as `apply::hooks` names it).
pub fn derived_containers(
    stack: &str,
    service: &str,
    svc: &Service,
) -> Vec<(String, String, String)> {
    let base = container_name(stack, service);
    let p = |rest: &str| svc_ptr(service, rest);
    let mut out = Vec::new();
    let blue_green = svc
        .release
        .as_ref()
        .is_some_and(|r| r.strategy == Strategy::BlueGreen);
    if blue_green {
        for c in crate::model::Color::ALL {
            out.push((
                format!("{base}-{}", c.as_str()),
                format!("the {} container of `{service}`", c.as_str()),
                p("/release/strategy"),
            ));
        }
    } else {
        out.push((base.clone(), format!("service `{service}`"), p("")));
        out.push((
            format!("{base}-dockhand-old"),
            format!("the recreate aside of `{service}`"),
            p(""),
        ));
    }
    if svc
        .release
        .as_ref()
        .is_some_and(|r| r.maintenance.is_some())
    {
        out.push((
            format!("{base}-maintenance"),
            format!("the maintenance container of `{service}`"),
            p("/release/maintenance"),
        ));
    }
    if let Some(h) = &svc.hooks {
        for (phase, steps, before) in [
            ("before", &h.before, true),
            ("after_start", &h.after_start, false),
            ("after_switch", &h.after_switch, false),
        ] {
            for (i, step) in steps.iter().enumerate() {
                let one_off = match step {
                    HookStep::Command(_) => before,
                    HookStep::Detailed(d) => {
                        d.service.is_none() && (d.image.is_some() || !d.mounts.is_empty() || before)
                    }
                };
                if one_off {
                    out.push((
                        crate::spec::hook_container_name(&base, &format!("{phase}[{i}]")),
                        format!("the one-off container of `{service}`'s hook {phase}[{i}]"),
                        p(&format!("/hooks/{phase}/{i}")),
                    ));
                }
            }
        }
    }
    out
}

impl DerivedNames {
    fn claim(
        cx: &mut Ctx<'_>,
        map: &mut BTreeMap<String, Owner>,
        reported: &mut std::collections::BTreeSet<(String, String)>,
        kind: &str,
        name: String,
        owner: Owner,
    ) {
        match map.get(&name) {
            Some(first) => {
                if !reported.insert((first.unit.clone(), owner.unit.clone())) {
                    return;
                }
                cx.at_key(
                    &owner.file,
                    &owner.pointer,
                    format!(
                        "{kind} name `{name}` of {} is also the name of {} ({}:{}) (rule `derived_name`)",
                        owner.what, first.what, first.file, first.line
                    ),
                    "dockhand derives Docker names by joining stack, service and suffix with `-` (containers) or `_` (networks, volumes): rename one of the two so that they differ",
                );
            }
            None => {
                map.insert(name, owner);
            }
        }
    }

    fn owner(cx: &Ctx<'_>, file: &str, pointer: String, what: String, unit: &str) -> Owner {
        let line = cx.pos_key(file, &pointer).line;
        Owner {
            file: file.to_string(),
            pointer,
            line,
            what,
            unit: format!("{file}#{unit}"),
        }
    }

    /// Claims every name `stack` derives; a name claimed before is reported with both owners.
    pub(super) fn stack(&mut self, cx: &mut Ctx<'_>, stack: &Stack) {
        let file = stack.file.as_str();
        let s = &stack.spec;
        for (service, svc) in &s.services {
            for (name, what, pointer) in derived_containers(&s.stack, service, svc) {
                let owner = Self::owner(
                    cx,
                    file,
                    pointer,
                    format!("{what} in stack `{}`", s.stack),
                    &svc_ptr(service, ""),
                );
                Self::claim(
                    cx,
                    &mut self.containers,
                    &mut self.reported,
                    "container",
                    name,
                    owner,
                );
            }
        }
        for (kind, decls, map) in [
            (
                "network",
                s.networks
                    .iter()
                    .map(|(k, n)| (k, n.name.as_deref(), n.external))
                    .collect::<Vec<_>>(),
                &mut self.networks,
            ),
            (
                "volume",
                s.volumes
                    .iter()
                    .map(|(k, v)| (k, v.name.as_deref(), v.external))
                    .collect(),
                &mut self.volumes,
            ),
        ] {
            for (key, explicit, external) in decls {
                if external {
                    continue;
                }
                let name = object_name(&s.stack, key, explicit, false);
                let pointer = format!("/{kind}s/{}", escape_pointer_token(key));
                let owner = Self::owner(
                    cx,
                    file,
                    pointer.clone(),
                    format!("{kind} `{key}` of stack `{}`", s.stack),
                    &pointer,
                );
                Self::claim(cx, map, &mut self.reported, kind, name, owner);
            }
        }
    }
}

fn check_health(cx: &mut Ctx<'_>, file: &str, ptr: &str, h: &Health) {
    if h.cmd.is_some() && h.shell.is_some() {
        cx.at(
            file,
            ptr,
            "health sets both `cmd` and `shell`",
            "keep one: `cmd` (exec form) or `shell` (run by /bin/sh -c)",
        );
    }
    if h.cmd.is_none() && h.shell.is_none() && h.http.is_none() && h.tcp.is_none() {
        cx.at(
            file,
            ptr,
            "health needs a check: `cmd`, `shell`, `http` or `tcp`",
            "e.g. cmd: [wget, -q, -O, /dev/null, http://127.0.0.1:8080/health]",
        );
    }
    if let Some(http) = &h.http {
        check_http(cx, file, &format!("{ptr}/http"), http);
    }
    if h.cmd.as_ref().is_some_and(Vec::is_empty) {
        cx.at(
            file,
            &format!("{ptr}/cmd"),
            "health.cmd is empty",
            "give the command and its arguments",
        );
    }
}

fn check_http(cx: &mut Ctx<'_>, file: &str, ptr: &str, h: &HttpProbe) {
    if !h.path.starts_with('/') {
        cx.at(
            file,
            &format!("{ptr}/path"),
            format!("probe path `{}` does not start with /", h.path),
            "write the path part of the URL, e.g. /readyz",
        );
    }
    if h.status.codes().iter().any(|c| !(100..=599).contains(c)) {
        cx.at(
            file,
            &format!("{ptr}/status"),
            "HTTP status codes run from 100 to 599",
            "e.g. status: 200, or status: [200, 503] to accept a degraded answer",
        );
    }
}

/// An image reference: parseable, and pinned by digest unless the policy allows tags.
fn check_image(
    cx: &mut Ctx<'_>,
    desired: &DesiredState,
    file: &str,
    ptr: &str,
    image: &str,
    what: &str,
) {
    match ImageRef::parse(image) {
        Err(e) => cx.at(file, ptr, e.to_string(), "write images as registry/repo:tag@sha256:<64 hex>"),
        Ok(r) if r.digest.is_none() && desired.config.policy.require_digest => cx.at(
            file,
            ptr,
            format!("{what} `{image}` is not pinned by digest"),
            "run `dockhand pin` to resolve its tag to the digest the registry serves and write it in place, or set policy.require_digest: false in dockhand.yaml",
        ),
        Ok(_) => {}
    }
}

/// Every elementary cycle found by a DFS over `depends_on`, each reported once, rotated so that
/// it starts at its smallest name (deterministic output).
fn dependency_cycles(spec: &crate::model::StackFile) -> Vec<Vec<String>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Active,
        Done,
    }
    fn visit(
        node: &str,
        spec: &crate::model::StackFile,
        marks: &mut HashMap<String, Mark>,
        path: &mut Vec<String>,
        out: &mut Vec<Vec<String>>,
    ) {
        marks.insert(node.to_string(), Mark::Active);
        path.push(node.to_string());
        if let Some(svc) = spec.services.get(node) {
            for dep in svc.depends_on.names() {
                if dep == node || !spec.services.contains_key(dep) {
                    continue;
                }
                match marks.get(dep).copied().unwrap_or(Mark::New) {
                    Mark::New => visit(dep, spec, marks, path, out),
                    Mark::Active => {
                        let start = path.iter().position(|p| p.as_str() == dep).unwrap_or(0);
                        let mut cycle: Vec<String> = path[start..].to_vec();
                        let min = cycle
                            .iter()
                            .enumerate()
                            .min_by_key(|(_, n)| n.as_str())
                            .map_or(0, |(i, _)| i);
                        cycle.rotate_left(min);
                        cycle.push(cycle[0].clone());
                        if !out.contains(&cycle) {
                            out.push(cycle);
                        }
                    }
                    Mark::Done => {}
                }
            }
        }
        path.pop();
        marks.insert(node.to_string(), Mark::Done);
    }
    let mut marks = HashMap::new();
    let mut out = Vec::new();
    for name in spec.services.keys() {
        if marks.get(name.as_str()).copied().unwrap_or(Mark::New) == Mark::New {
            visit(name, spec, &mut marks, &mut Vec::new(), &mut out);
        }
    }
    out
}
