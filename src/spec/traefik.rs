//! Traefik labels for a `route:` block, in the v2/v3 dialect (routers and services) or the
//! v1.7 dialect (frontends), as chosen in `dockhand.yaml`.

use std::collections::BTreeMap;

use crate::model::{Route, TraefikConfig, TraefikDialect};

/// Router priority of a maintenance container: above any route's (validation keeps route
/// priorities below it) and below Traefik's reserved range (MaxInt32 - 1000 and up).
pub const MAINTENANCE_PRIORITY: u32 = 2_000_000_000;

/// Labels that make Traefik's docker provider route `route` to the container `name`.
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
            // Router and service names must be unique per Traefik; the container name is.
            let r = name.replace('.', "-");
            let router = |k: &str| format!("traefik.http.routers.{r}.{k}");
            let mut rule = format!("Host(`{}`)", route.host);
            if let Some(p) = &route.path {
                rule.push_str(&format!(" && PathPrefix(`{p}`)"));
            }
            l.insert(router("rule"), rule);
            l.insert(router("service"), r.clone());
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
        insta::assert_debug_snapshot!(labels(&cfg, "demo-web", &route()), @r#"
        {
            "traefik.docker.network": "proxy",
            "traefik.enable": "true",
            "traefik.http.routers.demo-web.entrypoints": "websecure",
            "traefik.http.routers.demo-web.middlewares": "auth",
            "traefik.http.routers.demo-web.rule": "Host(`demo.localhost`) && PathPrefix(`/api`)",
            "traefik.http.routers.demo-web.service": "demo-web",
            "traefik.http.routers.demo-web.tls": "true",
            "traefik.http.routers.demo-web.tls.certresolver": "le",
            "traefik.http.services.demo-web.loadbalancer.server.port": "8080",
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
        insta::assert_debug_snapshot!(labels(&cfg, "shop.api-web-blue", &r), @r#"
        {
            "traefik.enable": "true",
            "traefik.http.routers.shop-api-web-blue.entrypoints": "web",
            "traefik.http.routers.shop-api-web-blue.priority": "10",
            "traefik.http.routers.shop-api-web-blue.rule": "Host(`demo.localhost`) && PathPrefix(`/api`)",
            "traefik.http.routers.shop-api-web-blue.service": "shop-api-web-blue",
            "traefik.http.services.shop-api-web-blue.loadbalancer.server.port": "8080",
        }
        "#);
    }
}
