//! Hostile commits as data: a repository in, the refusal expected out (the rule or limit the
//! message names, the file and the line). The line is where the case's YAML carries the
//! marker comment `#!`, so a table entry states its expectation where the reader looks.

#![allow(dead_code)]

use dockhand::load::{load, Diagnostic, SourceFile};

/// An image reference that parses (never pulled: every case is refused before).
pub const IMG: &str = "127.0.0.1:5000/x/web:1";

/// One hostile commit.
pub struct Case {
    /// What it tries, e.g. `route.path closes Host() and adds another`.
    pub name: &'static str,
    /// The kind it belongs to, for the count by kind in the report.
    pub kind: &'static str,
    /// `dockhand.yaml`, then the stack files as (path, text).
    pub repo: String,
    pub stacks: Vec<(String, String)>,
    /// Text the refusal's message must hold: the rule (`rule `route_path``) or limit name.
    pub rule: &'static str,
}

impl Case {
    pub fn new(name: &'static str, kind: &'static str, rule: &'static str) -> Case {
        Case {
            name,
            kind,
            repo: "version: 1\npolicy: {require_digest: false}\n".into(),
            stacks: Vec::new(),
            rule,
        }
    }

    pub fn repo(mut self, text: impl Into<String>) -> Case {
        self.repo = text.into();
        self
    }

    pub fn stack(mut self, path: &str, text: impl Into<String>) -> Case {
        self.stacks.push((path.to_string(), text.into()));
        self
    }

    pub fn files(&self) -> Vec<SourceFile> {
        let mut v = vec![SourceFile {
            path: "dockhand.yaml".into(),
            text: self.repo.clone(),
        }];
        v.extend(self.stacks.iter().map(|(p, t)| SourceFile {
            path: p.clone(),
            text: t.clone(),
        }));
        v
    }

    /// (file, line) of the `#!` marker: where the refusal must point.
    pub fn marked(&self) -> Option<(String, usize)> {
        std::iter::once(("dockhand.yaml".to_string(), &self.repo))
            .chain(self.stacks.iter().map(|(p, t)| (p.clone(), t)))
            .find_map(|(p, t)| {
                t.lines()
                    .position(|l| l.contains("#!"))
                    .map(|i| (p.clone(), i + 1))
            })
    }
}

/// What a case got: `Ok(diagnostic)` when refused as expected, `Err(why not)` otherwise.
pub fn check(case: &Case) -> Result<Diagnostic, String> {
    let want = case.marked();
    let diags = match load(&case.files()) {
        Ok(_) => return Err("accepted".into()),
        Err(d) => d.0,
    };
    let hit = diags.iter().find(|d| {
        d.message.contains(case.rule)
            && want
                .as_ref()
                .is_none_or(|(f, l)| &d.file == f && d.line == *l)
    });
    match hit {
        Some(d) => Ok(d.clone()),
        None => Err(format!(
            "refused, but not by `{}` at {}:\n{}",
            case.rule,
            want.map_or("(no marker)".into(), |(f, l)| format!("{f}:{l}")),
            diags
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n")
        )),
    }
}

/// Runs the table, prints one line per case and a count by kind, and fails naming every case
/// that was not refused as expected.
pub fn run_table(title: &str, cases: &[Case]) {
    let mut failed = Vec::new();
    let mut by_kind: std::collections::BTreeMap<&str, (usize, usize)> = Default::default();
    for c in cases {
        let got = check(c);
        let e = by_kind.entry(c.kind).or_default();
        e.0 += 1;
        match &got {
            Ok(d) => {
                e.1 += 1;
                eprintln!(
                    "[{title}] {:<14} {:<60} refused {}:{} ({})",
                    c.kind, c.name, d.file, d.line, c.rule
                );
            }
            Err(why) => {
                eprintln!("[{title}] {:<14} {:<60} NOT AS EXPECTED", c.kind, c.name);
                failed.push(format!("{}: {why}", c.name));
            }
        }
    }
    for (kind, (n, ok)) in &by_kind {
        eprintln!("[{title}] kind {kind}: {ok}/{n} refused as expected");
    }
    assert!(failed.is_empty(), "{}", failed.join("\n\n"));
}

// ---- Routes and Traefik labels (tests/trust_routes.rs) ----

/// A stack `s` with service `web` routed by `route` (flow YAML), on line 4.
pub fn routed(route: &str) -> String {
    format!("stack: s\nservices:\n  web:\n    route: {route} #!\n    image: {IMG}\n")
}

pub fn with_label(key: &str, value: &str) -> String {
    format!(
        "stack: s\nservices:\n  web:\n    image: {IMG}\n    labels:\n      '{key}': '{value}' #!\n"
    )
}

pub fn route_cases() -> Vec<Case> {
    let path = |name, p: &str| {
        Case::new(name, "route.path", "rule `route_path`").stack(
            "stacks/s.yaml",
            routed(&format!("{{host: a.localhost, port: 80, path: {p}}}")),
        )
    };
    let host = |name, h: &str| {
        Case::new(name, "route.host", "rule `route_host`")
            .stack("stacks/s.yaml", routed(&format!("{{host: {h}, port: 80}}")))
    };
    let field = |name, f: &str| {
        Case::new(name, "route.names", "rule `traefik_name`").stack(
            "stacks/s.yaml",
            routed(&format!("{{host: a.localhost, port: 80, {f}}}")),
        )
    };
    let label = |name, k: &str, v: &str, rule| {
        Case::new(name, "raw label", rule).stack("stacks/s.yaml", with_label(k, v))
    };
    vec![
        // The finding: a path that closes PathPrefix and ORs in another stack's host.
        path(
            "path closes the matcher and ORs in the victim's Host()",
            "'/`) || Host(`victim.localhost`) && PathPrefix(`/'",
        ),
        path("backtick in a path (404s at run time)", "'/a`b'"),
        path("double quote in a path", r#"'/a"b'"#),
        path("parentheses in a path", "'/a(b)'"),
        path("&& in a path", "'/a&&b'"),
        path("|| in a path", "'/a||b'"),
        path("space in a path", "'/a b'"),
        path("tab in a path", "\"/a\\tb\""),
        path("newline in a path", "\"/a\\nb\""),
        path("v1 matcher separator ; in a path", "'/a;Host:victim.localhost'"),
        path("v1 value separator , in a path", "'/a,/b'"),
        path("colon in a path", "'/a:b'"),
        path("v2 path regex braces", "'/{id:[0-9]+}'"),
        path("bad percent escape", "'/a%zz'"),
        path("NUL in a path", "\"/a\\0b\""),
        host("wildcard host", "'*.victim.localhost'"),
        host("empty label", "a..localhost"),
        host("label ends with -", "a-.localhost"),
        host("label over 63 characters", &format!("{}.localhost", "a".repeat(64))),
        host(
            "host over 253 characters",
            &format!("{}localhost", "abcdefghi.".repeat(25)),
        ),
        Case::new(
            "backtick host (the schema refuses it)",
            "route.host",
            "\"a`) || Host(`victim\" does not match",
        )
        .stack(
            "stacks/s.yaml",
            routed("{host: 'a`) || Host(`victim', port: 80}"),
        ),
        field("entrypoint list injection", "entrypoints: ['web,admin']"),
        field("entrypoint with a backtick", "entrypoints: ['web`']"),
        field("middleware list injection", "middlewares: ['auth,strip@file']"),
        field("middleware with spaces", "middlewares: ['a b']"),
        field("middleware with two providers", "middlewares: ['a@b@c']"),
        field("cert resolver with a newline", "tls: true, cert_resolver: \"le\\nx\""),
        field("cert resolver with a dot", "tls: true, cert_resolver: le.x"),
        Case::new("repo entrypoints injection", "route.names", "rule `traefik_name`")
            .repo("version: 1\npolicy: {require_digest: false}\ntraefik:\n  entrypoints: ['web,admin'] #!\n")
            .stack("stacks/s.yaml", routed("{host: a.localhost, port: 80}").replace("#!", "")),
        Case::new("repo cert resolver injection", "route.names", "rule `traefik_name`")
            .repo("version: 1\npolicy: {require_digest: false}\ntraefik:\n  cert_resolver: 'le,x' #!\n")
            .stack("stacks/s.yaml", routed("{host: a.localhost, port: 80}").replace("#!", "")),
        Case::new("repo network with a newline", "route.names", "rule `traefik_name`")
            .repo("version: 1\npolicy: {require_digest: false}\ntraefik:\n  network: \"proxy\\nx\" #!\n")
            .stack("stacks/s.yaml", routed("{host: a.localhost, port: 80}").replace("#!", "")),
        // Raw labels: the other half of the finding.
        label(
            "raw router for the victim's host at top priority",
            "traefik.http.routers.x.rule",
            "Host(`victim.localhost`)",
            "rule `traefik_labels`",
        ),
        label(
            "redefine another stack's router by its derived name",
            "traefik.http.routers.default__victim__web.rule",
            "Host(`evil.localhost`)",
            "rule `traefik_labels`",
        ),
        label(
            "traefik.* in upper case (Traefik reads keys without case)",
            "Traefik.HTTP.Routers.x.Rule",
            "Host(`victim.localhost`)",
            "rule `traefik_labels`",
        ),
        label(
            "traefik.enable alone",
            "traefik.enable",
            "true",
            "rule `traefik_labels`",
        ),
        label(
            "dockhand.* ownership label",
            "dockhand.project",
            "other",
            "rule `reserved_label`",
        ),
        label(
            "DOCKHAND.* in upper case",
            "DOCKHAND.managed",
            "true",
            "rule `reserved_label`",
        ),
        Case::new(
            "allowed raw Traefik labels still cannot use dockhand's `__` names",
            "raw label",
            "rule `reserved_label`",
        )
        .repo("version: 1\npolicy: {require_digest: false, allow: {s: [traefik_labels]}}\n")
        .stack(
            "stacks/s.yaml",
            with_label(
                "traefik.http.routers.default__victim__web.rule",
                "Host(`evil.localhost`)",
            ),
        ),
        Case::new("NUL in a label value", "raw label", "rule `label`").stack(
            "stacks/s.yaml",
            format!("stack: s\nservices:\n  web:\n    image: {IMG}\n    labels:\n      a: \"x\\0y\" #!\n"),
        ),
        // Found by review: NUL in exec fields passed validation and failed half-way through
        // apply (after other services were created).
        Case::new("NUL in a command", "nul byte", "rule `nul_byte`").stack(
            "stacks/s.yaml",
            format!("stack: s\nservices:\n  web:\n    image: {IMG}\n    command: [/bin/sh, -c, \"sleep 3600\\0\"] #!\n"),
        ),
        Case::new("NUL in a working_dir", "nul byte", "rule `nul_byte`").stack(
            "stacks/s.yaml",
            format!("stack: s\nservices:\n  web:\n    image: {IMG}\n    working_dir: \"/x\\0y\" #!\n"),
        ),
        Case::new("NUL in a hook's command", "nul byte", "rule `nul_byte`").stack(
            "stacks/s.yaml",
            format!("stack: s\nservices:\n  web:\n    image: {IMG}\n    hooks:\n      after_start:\n        - [sh, -c, \"true\\0\"] #!\n"),
        ),
        Case::new(
            "same host and path as another stack",
            "route.unique",
            "is also claimed by",
        )
        .stack("stacks/a.yaml", format!("stack: a\nservices:\n  web:\n    route: {{host: victim.localhost, port: 80}}\n    image: {IMG}\n"))
        .stack("stacks/s.yaml", routed("{host: VICTIM.localhost, port: 80}")),
    ]
}

// ---- Derived names, env, YAML bounds (tests/trust_names.rs) ----

const HEALTH: &str = "health: {cmd: [true]}";

/// A service; a name ending in ` #!` puts the marker on its key line.
pub fn svc(name: &str, extra: &str) -> String {
    let (name, mark) = match name.strip_suffix(" #!") {
        Some(n) => (n, " #!"),
        None => (name, ""),
    };
    format!("  {name}:{mark}\n    image: {IMG}\n{extra}")
}

pub fn bg(name: &str) -> String {
    svc(
        name,
        &format!("    route: {{host: {name}.localhost, port: 80}}\n    {HEALTH}\n    release: {{strategy: blue-green}}\n"),
    )
}

/// A nested-alias bomb of the finding's size, 447 bytes: nine levels of nine aliases (9^8
/// copies of level `a` if expanded: about 430 million nodes).
pub fn alias_bomb() -> String {
    let mut s = String::from("# nested aliases (9 levels of 9)\n");
    s.push_str(&format!("a: &a [{}]\n", ["\"lol\""; 9].join(", ")));
    let names: Vec<char> = "abcdefghi".chars().collect();
    for w in names.windows(2) {
        let (prev, cur) = (w[0], w[1]);
        s.push_str(&format!(
            "{cur}: &{cur} [{}]\n",
            vec![format!("*{prev}"); 9].join(", ")
        ));
    }
    s
}

pub fn name_cases() -> Vec<Case> {
    let one = |name, kind, body: String| {
        Case::new(name, kind, "rule `derived_name`")
            .stack("stacks/s.yaml", format!("stack: s\nservices:\n{body}"))
    };
    vec![
        one(
            "service named like a blue container",
            "suffix -blue",
            format!("{}{}", bg("web"), svc("web-blue #!", "")),
        ),
        one(
            "service named like a green container",
            "suffix -green",
            format!("{}{}", bg("web"), svc("web-green #!", "")),
        ),
        one(
            "service named like a maintenance container",
            "suffix -maint",
            format!(
                "{}{}",
                svc("web", &format!("    route: {{host: w.localhost, port: 80}}\n    release: {{maintenance: {{image: {IMG}}}}}\n")),
                svc("web-maintenance #!", "")
            ),
        ),
        one(
            "service named like a recreate's aside",
            "suffix -old",
            format!("{}{}", svc("web", ""), svc("web-dockhand-old #!", "")),
        ),
        one(
            "service named like a before hook's one-off",
            "hook one-off",
            format!(
                "{}{}",
                svc("web", "    hooks: {before: [[migrate]]}\n"),
                svc("web-hook-before0 #!", "")
            ),
        ),
        one(
            "service named like an after_start image hook's one-off",
            "hook one-off",
            format!(
                "{}{}",
                svc("web", &format!("    hooks: {{after_start: [{{command: [x], image: {IMG}}}]}}\n")),
                svc("web-hook-after-start0 #!", "")
            ),
        ),
        one(
            "blue/green color equal to another bg service's color",
            "suffix -blue",
            // `web-blue` as a bg service yields `s-web-blue-blue`; `web` yields `s-web-blue`:
            // no clash. But a plain service `web-blue-blue` clashes with bg `web-blue`.
            format!("{}{}", bg("web-blue"), svc("web-blue-blue #!", "")),
        ),
        // stacks/a-b.yaml is read before stacks/a.yaml (`-` sorts before `.`).
        Case::new("stack a service b-c vs stack a-b service c", "container", "rule `derived_name`")
            .stack("stacks/a.yaml", format!("stack: a\nservices:\n{}", svc("b-c #!", "")))
            .stack("stacks/a-b.yaml", format!("stack: a-b\nservices:\n{}", svc("c", ""))),
        Case::new("bg color of one stack equals a service of another", "suffix -blue", "rule `derived_name`")
            .stack(
                "stacks/a.yaml",
                format!("stack: a\nservices:\n{}", bg("web").replace("blue-green}", "blue-green} #!")),
            )
            .stack("stacks/a-web.yaml", format!("stack: a-web\nservices:\n{}", svc("blue", ""))),
        Case::new("network a/b_c vs a_b/c (`_`-joined)", "network", "rule `derived_name`")
            .stack("stacks/a.yaml", format!("stack: a\nnetworks:\n  b_c: {{}}\nservices:\n{}", svc("x", "")))
            .stack("stacks/a_b.yaml", format!("stack: a_b\nnetworks:\n  c: {{}} #!\nservices:\n{}", svc("y", ""))),
        Case::new("network name: set to another stack's derived name", "network", "rule `derived_name`")
            .stack("stacks/a.yaml", format!("stack: a\nnetworks:\n  net: {{}}\nservices:\n{}", svc("x", "")))
            .stack("stacks/b.yaml", format!("stack: b\nnetworks:\n  mine: {{name: a_net}} #!\nservices:\n{}", svc("y", ""))),
        Case::new("volume a/b_c vs a_b/c (`_`-joined)", "volume", "rule `derived_name`")
            .stack("stacks/a.yaml", format!("stack: a\nvolumes:\n  b_c: {{}}\nservices:\n{}", svc("x", "")))
            .stack("stacks/a_b.yaml", format!("stack: a_b\nvolumes:\n  c: {{}} #!\nservices:\n{}", svc("y", ""))),
        Case::new("volume name: set to another stack's derived name", "volume", "rule `derived_name`")
            .stack("stacks/a.yaml", format!("stack: a\nvolumes:\n  data: {{}}\nservices:\n{}", svc("x", "")))
            .stack("stacks/b.yaml", format!("stack: b\nvolumes:\n  v: {{name: a_data}} #!\nservices:\n{}", svc("y", ""))),
    ]
}

pub fn env_cases() -> Vec<Case> {
    let env = |name, rule, line: &str| {
        Case::new(name, "env", rule).stack(
            "stacks/s.yaml",
            format!("stack: s\nservices:\n  web:\n    image: {IMG}\n    env:\n      {line} #!\n"),
        )
    };
    vec![
        env("`=` in an env key", "rule `env_key`", "'A=B': x"),
        env("NUL in an env key", "rule `env_key`", "\"A\\0B\": x"),
        env("empty env key", "rule `env_key`", "'': x"),
        env("NUL in an env value", "rule `env_value`", "A: \"x\\0y\""),
    ]
}

pub fn yaml_cases() -> Vec<Case> {
    let bomb = alias_bomb();
    let marked = |text: &str, line_of: &str| {
        text.lines()
            .map(|l| {
                if l.starts_with(line_of) {
                    format!("{l} #!")
                } else {
                    l.to_string()
                }
            })
            .collect::<Vec<_>>()
            .join("\n")
            + "\n"
    };
    let stack = "stack: s\nservices:\n  web: {image: x}\n";
    // The fifth level's first alias crosses 10,000 copied nodes (90 + 819 + 7,380 before it).
    vec![
        Case::new("447-byte nested alias bomb in a stack", "yaml bomb", "yaml.max_alias_nodes")
            .stack("stacks/s.yaml", format!("{stack}{}", marked(&bomb, "e:"))),
        Case::new("nested alias bomb in dockhand.yaml", "yaml bomb", "yaml.max_alias_nodes")
            .repo(format!("version: 1\n{}", marked(&bomb, "e:")))
            .stack("stacks/s.yaml", stack),
        Case::new("alias bomb of maps", "yaml bomb", "yaml.max_alias_nodes").stack(
            "stacks/s.yaml",
            format!(
                "{stack}a: &a {{k0: x, k1: x, k2: x, k3: x, k4: x, k5: x, k6: x, k7: x, k8: x, k9: x}}\nb: &b {{k0: *a, k1: *a, k2: *a, k3: *a, k4: *a, k5: *a, k6: *a, k7: *a, k8: *a, k9: *a}}\nc: &c {{k0: *b, k1: *b, k2: *b, k3: *b, k4: *b, k5: *b, k6: *b, k7: *b, k8: *b, k9: *b}}\nd: [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c] #!\n"
            ),
        ),
        Case::new("one big anchor aliased many times", "yaml bomb", "yaml.max_alias_nodes").stack(
            "stacks/s.yaml",
            format!(
                "{stack}a: &a [{}]\nb: [{}] #!\n",
                vec!["x"; 2_000].join(", "),
                ["*a"; 10].join(", ")
            ),
        ),
        Case::new("100,000 nested block lists", "yaml depth", "yaml.max_depth")
            .stack("stacks/s.yaml", format!("{}x #!\n", "- ".repeat(100_000))),
        Case::new("deep block maps", "yaml depth", "yaml.max_depth").stack(
            "stacks/s.yaml",
            (0..100).map(|i| format!("{}k{i}:{}\n", " ".repeat(i), if i == 64 { " #!" } else { "" })).collect::<String>(),
        ),
        Case::new("200,000 nodes in a 400 KB list", "yaml nodes", "yaml.max_nodes").stack(
            "stacks/s.yaml",
            format!("x: [{}] #!\n", vec!["0"; 200_000].join(",")),
        ),
        Case::new("a stack file over 1 MiB", "file size", "max_file_bytes")
            .stack("stacks/s.yaml", format!("# #!\n{}", "#".repeat(1 << 20))),
        {
            // 9 files of 1,000,000 bytes each: the 9th crosses the 8 MiB repository budget.
            let mut c = Case::new("a repository over 8 MiB", "repo size", "max_repo_bytes");
            for i in 0..9 {
                let mark = if i == 8 { "# #!\n" } else { "#\n" };
                c = c.stack(&format!("stacks/s{i}.yaml"), format!("{mark}{}", "#".repeat(999_990)));
            }
            c
        },
        {
            // Each file builds 19,001 nodes (within its own limit); the sixth crosses 100,000.
            let mut c = Case::new("files within their limits, over the repository's", "repo nodes", "max_repo_nodes");
            for i in 0..6 {
                let mark = if i == 5 { " #!" } else { "" };
                c = c.stack(&format!("stacks/s{i}.yaml"), format!("x: [{}]{mark}\n", vec!["0"; 18_999].join(",")));
            }
            c
        },
    ]
}

/// Every case of the tables, in one list.
pub fn all_cases() -> Vec<Case> {
    let mut v = route_cases();
    v.extend(name_cases());
    v.extend(env_cases());
    v.extend(yaml_cases());
    v
}
