//! Traefik labels for a `route:` block, in the v2/v3 dialect (routers and services) or the
//! v1.7 dialect (frontends), as chosen in `dockhand.yaml`; the names of dockhand's routers;
//! and reading the hosts out of a Traefik rule (what other projects on the host route).
//!
//! The label values are built from route fields that `load::validate` held to a grammar with
//! no rule syntax (no backticks, quotes, parentheses, `&&`, `||`, `,`, `;` or whitespace), so
//! a commit cannot write a second matcher into a rule.

use std::collections::BTreeMap;

use crate::model::{Route, TraefikConfig, TraefikDialect};

/// Router priority of a maintenance container: above any route's (validation keeps route
/// priorities below it) and below Traefik's reserved range (MaxInt32 - 1000 and up).
pub const MAINTENANCE_PRIORITY: u32 = 2_000_000_000;

/// What separates the parts of a derived router name. Escaped parts never hold it (see
/// [`router_name`]), so a name splits back into its parts one way only.
pub const NAME_SEPARATOR: &str = "__";

/// The Traefik router and service name of a routed service:
/// `<project>__<stack>__<service>`, each part escaped so that the mapping is injective
/// (two different services, in this project or another one on the host, never share a name):
/// `_` is written `_u`, `.` is written `_d` (Traefik splits label keys at dots), and any other
/// character outside `[a-z0-9-]` `_x` and six hex digits of its code point. After escaping a
/// `_` is always followed by `u`, `d` or `x`, so `__` appears only between parts.
/// Example: project `default`, stack `shop.eu`, service `web_1` → `default__shop_deu__web_u1`.
pub fn router_name(project: &str, stack: &str, service: &str) -> String {
    [project, stack, service]
        .iter()
        .map(|p| escape_part(p))
        .collect::<Vec<_>>()
        .join(NAME_SEPARATOR)
}

/// The router and service name of a service's maintenance container:
/// [`router_name`] with a fourth part, `maintenance` (never equal to a service's three-part
/// name).
pub fn maintenance_router_name(project: &str, stack: &str, service: &str) -> String {
    format!(
        "{}{NAME_SEPARATOR}maintenance",
        router_name(project, stack, service)
    )
}

fn escape_part(part: &str) -> String {
    let mut out = String::with_capacity(part.len());
    for c in part.chars() {
        match c {
            'a'..='z' | '0'..='9' | '-' => out.push(c),
            '_' => out.push_str("_u"),
            '.' => out.push_str("_d"),
            other => out.push_str(&format!("_x{:06x}", u32::from(other))),
        }
    }
    out
}

/// The parts of a name made by [`router_name`] or [`maintenance_router_name`], unescaped;
/// `None` if `name` is not such a name. The inverse that proves the naming injective.
pub fn parse_router_name(name: &str) -> Option<Vec<String>> {
    let mut parts = vec![String::new()];
    let mut chars = name.chars();
    while let Some(c) = chars.next() {
        match c {
            'a'..='z' | '0'..='9' | '-' => parts.last_mut()?.push(c),
            '_' => match chars.next()? {
                '_' => parts.push(String::new()),
                'u' => parts.last_mut()?.push('_'),
                'd' => parts.last_mut()?.push('.'),
                'x' => {
                    let hex: String = chars.by_ref().take(6).collect();
                    let code = u32::from_str_radix(&hex, 16)
                        .ok()
                        .filter(|_| hex.len() == 6)?;
                    parts.last_mut()?.push(char::from_u32(code)?);
                }
                _ => return None,
            },
            _ => return None,
        }
    }
    Some(parts)
}

/// The host names a Traefik rule matches with `Host(...)` (v2/v3: every backtick- or
/// double-quoted argument) or `Host:a,b` (v1.7), lowercased. Other matchers (`HostRegexp`,
/// `HostSNI`, paths, headers) are not hosts and are skipped.
pub fn rule_hosts(rule: &str) -> Vec<String> {
    let mut hosts = Vec::new();
    // v1.7: `Host:a,b;PathPrefix:/x`.
    for part in rule.split(';') {
        if let Some(list) = part.trim().strip_prefix("Host:") {
            hosts.extend(
                list.split(',')
                    .map(|h| h.trim().to_ascii_lowercase())
                    .filter(|h| !h.is_empty()),
            );
        }
    }
    // v2/v3: `Host(`a`)`, `Host(`a`, `b`)` (v2), `Host("a")`.
    let mut rest = rule;
    while let Some(i) = rest.find("Host(") {
        let before = &rest[..i];
        rest = &rest[i + "Host(".len()..];
        // `HostSNI(`/`HostRegexp(` do not contain `Host(`; a longer identifier ending in
        // `Host` (e.g. `XHost(`) is not the matcher.
        if before
            .chars()
            .next_back()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            continue;
        }
        let end = rest.find(')').unwrap_or(rest.len());
        let args = &rest[..end];
        let mut quoted = args.split(['`', '"']);
        // Every other piece is inside quotes.
        quoted.next();
        for (i, piece) in quoted.enumerate() {
            if i % 2 == 0 && !piece.is_empty() {
                hosts.push(piece.to_ascii_lowercase());
            }
        }
        rest = &rest[end..];
    }
    hosts.sort();
    hosts.dedup();
    hosts
}

/// The hosts a container's labels make Traefik route (HTTP routers of v2/v3, frontends of
/// v1.7); none when `traefik.enable` is `false`. Label keys are compared without case, as
/// Traefik reads them.
pub fn routed_hosts(labels: &BTreeMap<String, String>) -> Vec<String> {
    let lower = |k: &str| k.to_ascii_lowercase();
    if labels
        .iter()
        .any(|(k, v)| lower(k) == "traefik.enable" && v.trim().eq_ignore_ascii_case("false"))
    {
        return Vec::new();
    }
    let mut hosts: Vec<String> = labels
        .iter()
        .filter(|(k, _)| {
            let k = lower(k);
            k.starts_with("traefik.")
                && k.ends_with(".rule")
                && !k.starts_with("traefik.tcp.")
                && !k.starts_with("traefik.udp.")
        })
        .flat_map(|(_, rule)| rule_hosts(rule))
        .collect();
    hosts.sort();
    hosts.dedup();
    hosts
}

/// Labels that make Traefik's docker provider route `route` to the container they are put on,
/// under the router and service name `name` (from [`router_name`] or
/// [`maintenance_router_name`]; v2/v3 only, v1.7 frontends have no name).
pub fn labels(cfg: &TraefikConfig, name: &str, route: &Route) -> BTreeMap<String, String> {
    let mut l = BTreeMap::new();
    l.insert("traefik.enable".to_string(), "true".to_string());
    if let Some(net) = &cfg.network {
        l.insert("traefik.docker.network".into(), net.clone());
    }
    let entrypoints = if route.entrypoints.is_empty() {
        &cfg.entrypoints
    } else {
        &route.entrypoints
    };
    match cfg.dialect {
        TraefikDialect::V1 => {
            let mut rule = format!("Host:{}", route.host);
            if let Some(p) = &route.path {
                rule.push_str(&format!(";PathPrefix:{p}"));
            }
            l.insert("traefik.frontend.rule".into(), rule);
            l.insert("traefik.port".into(), route.port.to_string());
            if !entrypoints.is_empty() {
                l.insert("traefik.frontend.entryPoints".into(), entrypoints.join(","));
            }
            if let Some(p) = route.priority {
                l.insert("traefik.frontend.priority".into(), p.to_string());
            }
        }
        TraefikDialect::V2 | TraefikDialect::V3 => {
            let r = name;
            let router = |k: &str| format!("traefik.http.routers.{r}.{k}");
            let mut rule = format!("Host(`{}`)", route.host);
            if let Some(p) = &route.path {
                rule.push_str(&format!(" && PathPrefix(`{p}`)"));
            }
            l.insert(router("rule"), rule);
            l.insert(router("service"), r.to_string());
            if !entrypoints.is_empty() {
                l.insert(router("entrypoints"), entrypoints.join(","));
            }
            if route.tls {
                l.insert(router("tls"), "true".into());
                if let Some(cr) = route.cert_resolver.as_ref().or(cfg.cert_resolver.as_ref()) {
                    l.insert(router("tls.certresolver"), cr.clone());
                }
            }
            if !route.middlewares.is_empty() {
                l.insert(router("middlewares"), route.middlewares.join(","));
            }
            if let Some(p) = route.priority {
                l.insert(router("priority"), p.to_string());
            }
            l.insert(
                format!("traefik.http.services.{r}.loadbalancer.server.port"),
                route.port.to_string(),
            );
        }
    }
    l
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route() -> Route {
        Route {
            host: "demo.localhost".into(),
            path: Some("/api".into()),
            port: 8080,
            entrypoints: vec![],
            tls: true,
            cert_resolver: None,
            middlewares: vec!["auth".into()],
            priority: None,
        }
    }

    #[test]
    fn v3_labels_define_router_and_service() {
        let cfg = TraefikConfig {
            dialect: TraefikDialect::V3,
            network: Some("proxy".into()),
            entrypoints: vec!["websecure".into()],
            cert_resolver: Some("le".into()),
            api: None,
        };
        let name = router_name("default", "demo", "web");
        insta::assert_debug_snapshot!(labels(&cfg, &name, &route()), @r#"
        {
            "traefik.docker.network": "proxy",
            "traefik.enable": "true",
            "traefik.http.routers.default__demo__web.entrypoints": "websecure",
            "traefik.http.routers.default__demo__web.middlewares": "auth",
            "traefik.http.routers.default__demo__web.rule": "Host(`demo.localhost`) && PathPrefix(`/api`)",
            "traefik.http.routers.default__demo__web.service": "default__demo__web",
            "traefik.http.routers.default__demo__web.tls": "true",
            "traefik.http.routers.default__demo__web.tls.certresolver": "le",
            "traefik.http.services.default__demo__web.loadbalancer.server.port": "8080",
        }
        "#);
    }

    #[test]
    fn v1_labels_use_frontend_rule_and_port() {
        let cfg = TraefikConfig {
            dialect: TraefikDialect::V1,
            ..TraefikConfig::default()
        };
        let l = labels(&cfg, "site-web", &route());
        insta::assert_debug_snapshot!(l, @r#"
        {
            "traefik.enable": "true",
            "traefik.frontend.rule": "Host:demo.localhost;PathPrefix:/api",
            "traefik.port": "8080",
        }
        "#);
        assert!(!l.keys().any(|k| k.starts_with("traefik.http.")));
    }

    #[test]
    fn v1_labels_with_entrypoints_and_priority() {
        let cfg = TraefikConfig {
            dialect: TraefikDialect::V1,
            network: Some("traefik".into()),
            entrypoints: vec!["http".into(), "https".into()],
            ..TraefikConfig::default()
        };
        let r = Route {
            path: None,
            priority: Some(MAINTENANCE_PRIORITY),
            ..route()
        };
        insta::assert_debug_snapshot!(labels(&cfg, "site-web-maintenance", &r), @r#"
        {
            "traefik.docker.network": "traefik",
            "traefik.enable": "true",
            "traefik.frontend.entryPoints": "http,https",
            "traefik.frontend.priority": "2000000000",
            "traefik.frontend.rule": "Host:demo.localhost",
            "traefik.port": "8080",
        }
        "#);
    }

    #[test]
    fn v2_labels_without_tls_or_network() {
        let cfg = TraefikConfig {
            dialect: TraefikDialect::V2,
            ..TraefikConfig::default()
        };
        let r = Route {
            tls: false,
            middlewares: vec![],
            priority: Some(10),
            entrypoints: vec!["web".into()],
            ..route()
        };
        // A dot in a stack name is escaped, never turned into a `-` another stack may have.
        let name = router_name("p_1", "shop.api", "web_x");
        insta::assert_debug_snapshot!(labels(&cfg, &name, &r), @r#"
        {
            "traefik.enable": "true",
            "traefik.http.routers.p_u1__shop_dapi__web_ux.entrypoints": "web",
            "traefik.http.routers.p_u1__shop_dapi__web_ux.priority": "10",
            "traefik.http.routers.p_u1__shop_dapi__web_ux.rule": "Host(`demo.localhost`) && PathPrefix(`/api`)",
            "traefik.http.routers.p_u1__shop_dapi__web_ux.service": "p_u1__shop_dapi__web_ux",
            "traefik.http.services.p_u1__shop_dapi__web_ux.loadbalancer.server.port": "8080",
        }
        "#);
    }
}
