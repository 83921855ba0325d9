//! `dockhand pin` and the "tag moved" report of `status`: tags resolved to the digests their
//! registry serves now, asked through the Engine.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use serde::Serialize;

use super::args::PinArgs;
use crate::model::image::ImageRef;
use crate::observe::auth::RegistryAuth;
use crate::observe::registry;
use crate::pin::{self, Site};
use crate::sources;
use crate::spec::Desired;

/// One image site as `pin --json` shows it: `result` is `pinned` (already at the tag's
/// digest), `added` (a digest written, or to write under `--check`), `moved` (the tag moved;
/// followed with `--update`, else `kept`) or `error`.
#[derive(Debug, Serialize)]
struct SiteReport {
    file: String,
    line: usize,
    service: String,
    image: String,
    result: &'static str,
    /// The digest the site holds now, if any.
    pinned: Option<String>,
    /// The digest its tag points to now.
    current: Option<String>,
    error: Option<String>,
}

/// Exit 0: done (or nothing to pin); 2 with `--check`: something to pin or a tag moved; 1:
/// an image could not be resolved, or an error.
pub async fn run(a: &PinArgs) -> Result<ExitCode> {
    let as_json = a.json.json;
    let mut reports: Vec<SiteReport> = Vec::new();
    let mut say = |line: String, r: SiteReport| {
        if !as_json {
            println!("{line}");
        }
        reports.push(r);
    };
    let cwd = std::env::current_dir().context("reading the current directory")?;
    let root = match &a.source {
        Some(s) if sources::remote::is_remote(s) && !s.starts_with("file://") => bail!(
            "pin edits files in place, so --source must be a local checkout, not {s}\n  hint: run it in your clone and commit the result"
        ),
        Some(s) => std::path::PathBuf::from(s.strip_prefix("file://").unwrap_or(s)),
        None => sources::discover_repo(&cwd).unwrap_or(cwd),
    };
    let snap = sources::from_dir(&root, &a.path)?;
    let dir = root.join(&a.path);
    let mut files = Vec::new();
    for f in snap.files.iter().filter(|f| f.path.starts_with("stacks/")) {
        let sites = pin::sites(&f.text).map_err(|e| {
            anyhow::anyhow!(
                "{}: {e}\n  hint: fix the YAML first (`dockhand validate --worktree`)",
                f.path
            )
        })?;
        if let Some(only) = &a.stack {
            if pin::stack_of(&f.text).as_deref() != Some(only.as_str()) {
                continue;
            }
        }
        files.push((f, sites));
    }
    if files.is_empty() {
        bail!(
            "no stack files{} under {}\n  hint: --source and --path name the desired-state folder; --stack a stack in it",
            a.stack.as_ref().map(|s| format!(" for stack `{s}`")).unwrap_or_default(),
            dir.display()
        );
    }
    let mut refs: Vec<String> = files
        .iter()
        .flat_map(|(_, sites)| sites.iter().filter_map(Site::tag_ref))
        .collect();
    refs.sort();
    refs.dedup();
    crate::apply::progress::note(&format!("asking the registry for {} tag(s)…", refs.len()));
    let docker = crate::observe::connect().await?;
    let logins = RegistryAuth::resolve(a.registry_auth.as_deref());
    let answers: BTreeMap<&String, Result<String, String>> = refs
        .iter()
        .zip(registry::resolve_all(&docker, &logins, &refs).await)
        .collect();

    let (mut pending, mut failed) = (0, 0);
    let mut written = Vec::new();
    for (f, sites) in &files {
        let mut edits = Vec::new();
        for site in sites {
            let at = format!("{}:{} {}", f.path, site.line, site.service);
            let report = |result, current: Option<&String>, error: Option<String>| SiteReport {
                file: f.path.clone(),
                line: site.line,
                service: site.service.clone(),
                image: site.image.clone(),
                result,
                pinned: site.digest(),
                current: current.cloned(),
                error,
            };
            let Some(tag) = site.tag_ref() else {
                say(
                    format!("  ! {at}: `{}` is not an image reference", site.image),
                    report("error", None, Some("not an image reference".into())),
                );
                failed += 1;
                continue;
            };
            let current = match answers.get(&tag) {
                Some(Ok(d)) => d,
                Some(Err(e)) => {
                    say(
                        format!("  ! {at}: cannot resolve {tag}: {e}"),
                        report("error", None, Some(format!("cannot resolve {tag}: {e}"))),
                    );
                    failed += 1;
                    continue;
                }
                None => continue,
            };
            let Some(new) = site.pinned(current) else {
                continue;
            };
            match site.digest() {
                None => {
                    say(
                        format!("  + {at}: {tag} → {}", short(current)),
                        report("added", Some(current), None),
                    );
                    edits.push((site, new));
                }
                Some(old) if &old == current => {
                    say(
                        format!("    {at}: {tag} pinned ({})", short(current)),
                        report("pinned", Some(current), None),
                    );
                }
                Some(old) if a.update => {
                    say(
                        format!("  ~ {at}: {tag} moved {} → {}", short(&old), short(current)),
                        report("moved", Some(current), None),
                    );
                    edits.push((site, new));
                }
                Some(old) => {
                    say(
                        format!(
                            "  ! {at}: {tag} now points to {} (pinned {}); kept — `--update` follows it",
                            short(current),
                            short(&old)
                        ),
                        report("kept", Some(current), None),
                    );
                    pending += 1;
                }
            }
        }
        if edits.is_empty() {
            continue;
        }
        pending += edits.len();
        if a.check {
            continue;
        }
        let edits: Vec<(&Site, String)> = edits.into_iter().collect();
        let text = pin::rewrite(&f.text, &edits).map_err(|e| anyhow::anyhow!("{}: {e}", f.path))?;
        write_in_place(&dir.join(&f.path), &text)?;
        written.push(f.path.clone());
    }
    if as_json {
        super::json::print(
            super::json::PIN_VERSION,
            &serde_json::json!({
                "check": a.check,
                "sites": reports,
                "pending": pending,
                "failed": failed,
                "written": written,
            }),
        )?;
    } else if a.check {
        println!("\n{pending} image(s) to pin or moved; nothing was written (--check)");
    } else {
        println!(
            "\n{} file(s) written; review with `git diff` and commit",
            written.len()
        );
    }
    Ok(if failed > 0 {
        crate::apply::progress::note(&format!("{failed} image(s) could not be resolved\n  hint: check the tag exists (`docker manifest inspect`) and the registry is reachable from the Docker host"));
        ExitCode::FAILURE
    } else if a.check && pending > 0 {
        ExitCode::from(super::EXIT_CHANGES)
    } else {
        ExitCode::SUCCESS
    })
}

fn short(digest: &str) -> String {
    digest.chars().take(19).collect()
}

/// Replaces `path` with `text` through a temporary file and a rename, keeping its permissions:
/// a crash never leaves a half-written stack file.
fn write_in_place(path: &Path, text: &str) -> Result<()> {
    let tmp = path.with_extension("yaml.dockhand-pin");
    let perms = std::fs::metadata(path)
        .with_context(|| format!("reading {}", path.display()))?
        .permissions();
    std::fs::write(&tmp, text).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::set_permissions(&tmp, perms)?;
    std::fs::rename(&tmp, path).with_context(|| format!("replacing {}", path.display()))
}

/// A pinned image whose tag the registry now serves with another digest.
#[derive(Debug, Clone, Serialize)]
pub struct TagCheck {
    pub stack: String,
    pub service: String,
    pub image: String,
    pub pinned: String,
    /// The digest the tag points to now; None when it could not be asked (see `error`).
    pub current: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl TagCheck {
    pub fn moved(&self) -> bool {
        self.current.as_ref().is_some_and(|c| c != &self.pinned)
    }
}

/// Asks the registries whether the tag of each pinned image still points to its pin.
pub async fn tag_checks(
    docker: &bollard::Docker,
    logins: &RegistryAuth,
    desired: &Desired,
) -> Vec<TagCheck> {
    let mut checks = Vec::new();
    for c in &desired.containers {
        let mut images = vec![c.image_ref.as_str()];
        if let Some(m) = &c.maintenance {
            images.push(&m.container.image_ref);
        }
        for image in images {
            let Ok(r) = ImageRef::parse(image) else {
                continue;
            };
            if let (Some(tag), Some(digest)) = (&r.tag, &r.digest) {
                checks.push(TagCheck {
                    stack: c.stack.clone(),
                    service: c.service.clone(),
                    image: format!("{}:{tag}", r.repository),
                    pinned: digest.clone(),
                    current: None,
                    error: None,
                });
            }
        }
    }
    let refs: Vec<String> = checks.iter().map(|c| c.image.clone()).collect();
    for (check, answer) in checks
        .iter_mut()
        .zip(registry::resolve_all(docker, logins, &refs).await)
    {
        match answer {
            Ok(d) => check.current = Some(d),
            Err(e) => check.error = Some(e),
        }
    }
    checks
}
