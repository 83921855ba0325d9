//! Facts about the host that planning needs and git cannot hold: env file contents (hashed,
//! never printed) and bind-mount sources.

use std::collections::BTreeSet;

use crate::model::DesiredState;
use crate::spec::{sha256_hex, EnvFileHashes};

#[derive(Debug, thiserror::Error)]
#[error("env file {path} (service `{service}` in {file}) cannot be read: {source}\n  hint: create it on this host with KEY=VALUE lines, readable by dockhand; it is never stored in git")]
pub struct EnvFileError {
    pub path: String,
    pub service: String,
    pub file: String,
    #[source]
    pub source: std::io::Error,
}

/// Hashes every env file the desired state names, and lists every one that cannot be read
/// (preflight reports them all together; a plan still shows everything else).
pub fn hash_env_files(desired: &DesiredState) -> (EnvFileHashes, Vec<EnvFileError>) {
    let mut hashes = EnvFileHashes::new();
    let mut errors = Vec::new();
    let mut seen = BTreeSet::new();
    for stack in &desired.stacks {
        for (name, svc) in &stack.spec.services {
            let Some(path) = &svc.env_file else { continue };
            if !seen.insert(path.clone()) {
                continue;
            }
            match std::fs::read(path) {
                Ok(bytes) => {
                    hashes.insert(path.clone(), sha256_hex(&bytes));
                }
                Err(source) => errors.push(EnvFileError {
                    path: path.clone(),
                    service: name.clone(),
                    file: stack.file.clone(),
                    source,
                }),
            }
        }
    }
    (hashes, errors)
}

/// The values in the env files the desired state names (those that can be read): what must
/// never appear in output or records.
pub fn env_file_values(desired: &DesiredState) -> Vec<String> {
    let mut out = Vec::new();
    for stack in &desired.stacks {
        for svc in stack.spec.services.values() {
            if let Some(text) = svc
                .env_file
                .as_deref()
                .and_then(|p| std::fs::read_to_string(p).ok())
            {
                out.extend(parse_env_file(&text).into_iter().map(|(_, v)| v));
            }
        }
    }
    out
}

/// Parses an env file: `KEY=VALUE` lines, `#` comments and blank lines ignored, an optional
/// `export ` prefix, and matching single or double quotes around the value stripped.
pub fn parse_env_file(text: &str) -> Vec<(String, String)> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| {
            let l = l.strip_prefix("export ").unwrap_or(l);
            let (k, v) = l.split_once('=')?;
            let v = v.trim();
            let v = if v.len() >= 2
                && ((v.starts_with('"') && v.ends_with('"'))
                    || (v.starts_with('\'') && v.ends_with('\'')))
            {
                &v[1..v.len() - 1]
            } else {
                v
            };
            Some((k.trim().to_string(), v.to_string()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_file_lines() {
        let parsed = parse_env_file("# c\nA=1\nexport B=\"two words\"\n\nC='x'\nbad line\n");
        assert_eq!(
            parsed,
            vec![
                ("A".into(), "1".into()),
                ("B".into(), "two words".into()),
                ("C".into(), "x".into())
            ]
        );
    }
}
