//! Route and Traefik checks: host names, path prefixes, router and middleware names.

use super::Ctx;
use crate::model::{Route, TraefikConfig};

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
pub(super) fn check_route(cx: &mut Ctx<'_>, file: &str, ptr: &str, route: &Route) {
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
pub(super) fn check_traefik_config(cx: &mut Ctx<'_>, t: &TraefikConfig) {
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
