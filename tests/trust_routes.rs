//! A commit cannot take another stack's traffic through Traefik: every `route` field is held
//! to a grammar without rule syntax, raw `traefik.*` labels need the `traefik_labels` power,
//! and router names are derived injectively (two services, or two projects, never share one).
//! Pure: `load` only. The real-Traefik and real-Engine halves are in tests/trust_apply.rs.

mod support;

use std::collections::BTreeSet;

use dockhand::load::{load, SourceFile};
use dockhand::spec::traefik::{parse_router_name, router_name, rule_hosts};
use support::hostile::{route_cases, run_table, with_label};

use support::hostile::IMG;

#[test]
fn hostile_route_fields_and_traefik_labels_are_refused_with_rule_and_line() {
    let cases = route_cases();
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

/// A route to a host that another dockhand project on the host routes (read by
/// `observe::others`) is a plan conflict; the same host of this project is not.
#[test]
fn a_host_another_project_routes_is_a_plan_conflict() {
    use dockhand::model::actual::{Actual, OtherRoute};
    let files = vec![
        SourceFile {
            path: "dockhand.yaml".into(),
            text: "version: 1\nproject: mine\npolicy: {require_digest: false}\n".into(),
        },
        SourceFile {
            path: "stacks/s.yaml".into(),
            text: format!("stack: s\nservices:\n  web:\n    image: {IMG}\n    route: {{host: Shop.Example, port: 80}}\n"),
        },
    ];
    let state = load(&files).unwrap_or_else(|d| panic!("{d}"));
    let desired = dockhand::spec::render(&state, &Default::default(), None);
    let other = |host: &str| Actual {
        other_routes: vec![OtherRoute {
            project: "theirs".into(),
            container: "shop-web".into(),
            host: host.into(),
        }],
        ..Actual::default()
    };
    let p = dockhand::plan::plan(&desired, &other("shop.example"));
    assert_eq!(p.conflicts.len(), 1, "{:?}", p.conflicts);
    assert!(
        p.conflicts[0]
            .message
            .contains("host `shop.example` is already routed by container `shop-web` of dockhand project `theirs`"),
        "{:?}",
        p.conflicts
    );
    let p = dockhand::plan::plan(&desired, &other("other.example"));
    assert!(p.conflicts.is_empty(), "{:?}", p.conflicts);
}
