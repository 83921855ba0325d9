//! Hostile commits as data: a repository in, the refusal expected out (the rule or limit the
//! message names, the file and the line). The line is where the case's YAML carries the
//! marker comment `#!`, so a table entry states its expectation where the reader looks.

#![allow(dead_code)]

use dockhand::load::{load, Diagnostic, SourceFile};

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
