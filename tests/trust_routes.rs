//! A commit cannot take another stack's traffic through Traefik: every `route` field is held
//! to a grammar without rule syntax, raw `traefik.*` labels need the `traefik_labels` power,
//! and router names are derived injectively (two services, or two projects, never share one).
//! Pure: `load` only. The real-Traefik and real-Engine halves are in tests/trust_apply.rs.

mod support;

use std::collections::BTreeSet;

use dockhand::load::{load, SourceFile};
use dockhand::spec::traefik::{parse_router_name, router_name, rule_hosts};
use support::hostile::{run_table, Case};

const IMG: &str = "127.0.0.1:5000/x/web:1";

/// A stack `s` with service `web` routed by `route` (flow YAML), on line 4.
fn routed(route: &str) -> String {
    format!("stack: s\nservices:\n  web:\n    route: {route} #!\n    image: {IMG}\n")
}

fn with_label(key: &str, value: &str) -> String {
    format!(
        "stack: s\nservices:\n  web:\n    image: {IMG}\n    labels:\n      '{key}': '{value}' #!\n"
    )
}

fn cases() -> Vec<Case> {
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
        Case::new(
            "same host and path as another stack",
            "route.unique",
            "is also claimed by",
        )
        .stack("stacks/a.yaml", format!("stack: a\nservices:\n  web:\n    route: {{host: victim.localhost, port: 80}}\n    image: {IMG}\n"))
        .stack("stacks/s.yaml", routed("{host: VICTIM.localhost, port: 80}")),
    ]
}

#[test]
fn hostile_route_fields_and_traefik_labels_are_refused_with_rule_and_line() {
    let cases = cases();
    assert!(cases.len() >= 35, "{}", cases.len());
    run_table("routes", &cases);
}

#[test]
fn a_granted_traefik_labels_power_lets_raw_labels_through() {
    let files = |repo: &str| {
        vec![
            SourceFile {
                path: "dockhand.yaml".into(),
                text: repo.into(),
            },
            SourceFile {
                path: "stacks/s.yaml".into(),
                text: with_label("traefik.http.routers.own.rule", "Host(`s.localhost`)"),
            },
        ]
    };
    assert!(load(&files(
        "version: 1\npolicy: {require_digest: false, allow: {s: [traefik_labels]}}\n"
    ))
    .is_ok());
    // Granted to another stack only: still refused.
    assert!(load(&files(
        "version: 1\npolicy: {require_digest: false, allow: {other: [traefik_labels]}}\n"
    ))
    .is_err());
}

#[test]
fn plain_routes_with_every_field_still_load() {
    let files = vec![
        SourceFile {
            path: "dockhand.yaml".into(),
            text: "version: 1\npolicy: {require_digest: false}\ntraefik: {network: proxy, entrypoints: [web, web-secure_2], cert_resolver: le}\n".into(),
        },
        SourceFile {
            path: "stacks/s.yaml".into(),
            text: format!("stack: s\nnetworks: {{proxy: {{external: true}}}}\nservices:\n  web:\n    image: {IMG}\n    networks: [proxy]\n    route: {{host: App-1.example.COM, port: 80, path: '/api/v1.2/~me/%20x/a+b@c!$*', entrypoints: [websecure], middlewares: [auth@file, strip], tls: true, cert_resolver: lets-encrypt_1}}\n"),
        },
    ];
    if let Err(d) = load(&files) {
        panic!("{d}");
    }
}

/// The finding: stacks `a.b` and `a-b` both got router `a-b-web`, so both hosts 404'd while
/// `validate` said valid and `plan` said no changes.
#[test]
fn stacks_that_differ_only_by_dot_and_dash_get_different_routers() {
    let stack = |name: &str, host: &str| {
        SourceFile {
        path: format!("stacks/{name}.yaml"),
        text: format!("stack: {name}\nservices:\n  web:\n    image: {IMG}\n    route: {{host: {host}, port: 80}}\n"),
    }
    };
    let files = vec![
        SourceFile {
            path: "dockhand.yaml".into(),
            text: "version: 1\npolicy: {require_digest: false}\n".into(),
        },
        stack("a.b", "one.localhost"),
        stack("a-b", "two.localhost"),
        stack("a_b", "three.localhost"),
    ];
    let state = load(&files).unwrap_or_else(|d| panic!("{d}"));
    let desired = dockhand::spec::render(&state, &Default::default(), None);
    let routers: BTreeSet<String> = desired
        .containers
        .iter()
        .flat_map(|c| c.labels.keys())
        .filter_map(|k| k.strip_prefix("traefik.http.routers."))
        .filter_map(|k| k.split('.').next())
        .map(str::to_string)
        .collect();
    assert_eq!(
        routers,
        BTreeSet::from([
            "default__a-b__web".to_string(),
            "default__a_db__web".to_string(),
            "default__a_ub__web".to_string(),
        ])
    );
}

#[test]
fn router_names_carry_the_project_and_split_back_into_their_parts() {
    // Two projects on one host with the same stack and service: different routers.
    assert_ne!(
        router_name("p1", "shop", "web"),
        router_name("p2", "shop", "web")
    );
    // Every combination of awkward parts round-trips, so the naming is injective.
    let parts = [
        "a", "a_", "_a", "a__b", "a.b", "a-b", "a_d", "a_u", "x", "a.", "é", "",
    ];
    let mut seen = BTreeSet::new();
    for p in parts {
        for s in parts {
            for v in parts {
                let name = router_name(p, s, v);
                assert_eq!(
                    parse_router_name(&name),
                    Some(vec![p.to_string(), s.to_string(), v.to_string()]),
                    "{name}"
                );
                assert!(
                    name.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'),
                    "{name}"
                );
                assert!(seen.insert(name));
            }
        }
    }
    let m = dockhand::spec::traefik::maintenance_router_name("p", "s", "web");
    assert_eq!(parse_router_name(&m).map(|v| v.len()), Some(4));
}

#[test]
fn hosts_are_read_from_rules_of_every_dialect() {
    assert_eq!(
        rule_hosts("Host(`A.example`) && PathPrefix(`/x`) || Host(`b.example`, \"c.example\")"),
        vec!["a.example", "b.example", "c.example"]
    );
    assert_eq!(
        rule_hosts("Host:a.example,b.example;PathPrefix:/x"),
        vec!["a.example", "b.example"]
    );
    assert!(rule_hosts("HostRegexp(`.*`) || HostSNI(`x`) || XHost(`y`)").is_empty());
}
