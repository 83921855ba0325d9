//! Per-service checks: env entries, health probes, image references, dependency cycles.

use std::collections::HashMap;

use super::{printable, svc_ptr, Ctx};
use crate::load::yaml::escape_pointer_token;
use crate::model::image::ImageRef;
use crate::model::{DesiredState, Health, HttpProbe, Service};

/// Env keys and values as Docker gets them (`KEY=VALUE` strings): a key is non-empty and has
/// no `=`, and neither holds a NUL byte (the Engine cuts the string there, or refuses it half
/// way through an apply).
pub(super) fn check_env(cx: &mut Ctx<'_>, file: &str, service: &str, svc: &Service) {
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

pub(super) fn check_health(cx: &mut Ctx<'_>, file: &str, ptr: &str, h: &Health) {
    if h.disable {
        let off = Health {
            disable: false,
            ..h.clone()
        };
        let empty = Health {
            disable: false,
            cmd: None,
            shell: None,
            http: None,
            tcp: None,
            interval: None,
            timeout: None,
            retries: None,
            start_period: None,
            start_interval: None,
        };
        if off != empty {
            cx.at(
                file,
                &format!("{ptr}/disable"),
                "health sets `disable: true` and a check or its timing",
                "keep `disable: true` alone to turn off the image's healthcheck, or remove it to declare your own",
            );
        }
        return;
    }
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

pub(super) fn check_http(cx: &mut Ctx<'_>, file: &str, ptr: &str, h: &HttpProbe) {
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
pub(super) fn check_image(
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
pub(super) fn dependency_cycles(spec: &crate::model::StackFile) -> Vec<Vec<String>> {
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
