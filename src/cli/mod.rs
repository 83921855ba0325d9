//! The command-line edge: resolves settings once, runs one verb, maps the outcome to an exit
//! code. The only module that prints user output (stdout) besides apply's progress (stderr).

mod agent;
pub mod args;
mod history;
mod pin;
mod table;

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use serde::Serialize;

use std::sync::Arc;

use crate::apply::progress::{Progress, Redactor};
use crate::history::{Outcome, ServiceChange, Store};
use crate::load::schema::FileKind;
use crate::model::actual::{Actual, RunState};
use crate::model::DesiredState;
use crate::plan::{render, Action, Plan};
use crate::sources::{self, Snapshot};
use crate::spec::{labels, Desired};
use args::{Command, SourceArgs};

/// Exit code for "the plan has changes" with `--detailed-exitcode`.
const EXIT_CHANGES: u8 = 2;

/// An error already shown to the user in full (validation diagnostics).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Reported(pub String);

pub async fn run(mut cli: args::Cli) -> Result<ExitCode> {
    if let Some(src) = cli.command.source_mut() {
        src.mirrors = Some(cli.state_dir.join("sources"));
        src.state_dir = Some(cli.state_dir.clone());
    }
    match cli.command {
        Command::Validate(src) => {
            let (snap, desired) = load(&src)?;
            let services: usize = desired.stacks.iter().map(|s| s.spec.services.len()).sum();
            println!(
                "{}: valid ({} stack(s), {services} service(s))",
                snap.origin,
                desired.stacks.len()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Plan(a) => {
            let ctx = PlanContext::build(&a.source).await?;
            if a.json {
                println!("{}", render::json(&ctx.plan));
            } else {
                println!("source: {}\n", ctx.snapshot.origin);
                print!("{}", render::text(&ctx.plan, false));
            }
            Ok(if a.detailed_exitcode && !ctx.plan.is_empty() {
                ExitCode::from(EXIT_CHANGES)
            } else {
                ExitCode::SUCCESS
            })
        }
        Command::Diff(src) => {
            let ctx = PlanContext::build(&src).await?;
            println!("source: {}\n", ctx.snapshot.origin);
            print!("{}", render::text(&ctx.plan, true));
            Ok(ExitCode::SUCCESS)
        }
        Command::Apply(a) => apply(&a, &cli.state_dir).await,
        Command::Status(a) => {
            let ctx = PlanContext::build(&a.source).await?;
            let mut rows = status_rows(&ctx.desired, &ctx.actual, &ctx.plan);
            let store = Store::open_existing(&cli.state_dir)?;
            let mut quarantined = Vec::new();
            if let Some(store) = &store {
                let last = store.last_deploys(&ctx.desired.project)?;
                for r in &mut rows {
                    if let Some((_, id, at)) = last.iter().find(|(c, _, _)| *c == r.container) {
                        r.deployed = format!("{} #{id}", crate::history::format_utc(*at));
                    }
                }
                quarantined = store.quarantine_list(&ctx.desired.project)?;
            }
            let tags = if a.offline {
                Vec::new()
            } else {
                let docker = crate::observe::connect().await?;
                pin::tag_checks(&docker, &ctx.desired).await
            };
            if a.json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&serde_json::json!({
                        "source": ctx.snapshot.origin,
                        "revision": revision(&ctx.snapshot),
                        "in_sync": ctx.plan.is_empty(),
                        "services": rows,
                        "quarantined": quarantined,
                        "tags_moved": tags.iter().filter(|t| t.moved()).collect::<Vec<_>>(),
                        "tags_unchecked": tags.iter().filter(|t| t.error.is_some()).collect::<Vec<_>>(),
                    }))?
                );
            } else {
                println!("source: {}\n", ctx.snapshot.origin);
                print!("{}", status_table(&rows));
                for t in tags.iter().filter(|t| t.moved()) {
                    println!(
                        "\ntag moved: {} ({}/{}) now points to {}, pinned {}\n  hint: dockhand never follows a tag by itself; `dockhand pin --update --stack {}` writes the new digest for you to commit",
                        t.image,
                        t.stack,
                        t.service,
                        t.current.as_deref().unwrap_or_default(),
                        t.pinned,
                        t.stack
                    );
                }
                for t in tags.iter().filter(|t| t.error.is_some()) {
                    println!(
                        "\ntag not checked: {} ({}/{}): {}",
                        t.image,
                        t.stack,
                        t.service,
                        t.error.as_deref().unwrap_or_default()
                    );
                }
                for q in &quarantined {
                    println!(
                        "\nquarantined: {} (deploy #{}, {}): {}\n  hint: commit a fix, or `dockhand apply --retry` to try this revision again",
                        q.revision,
                        q.deploy_id,
                        crate::history::format_utc(q.at_ms),
                        q.reason.lines().next().unwrap_or_default()
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::History(a) => {
            let project = load(&a.source).ok().map(|(_, d)| d.config.project);
            let Some(store) = Store::open_existing(&cli.state_dir)? else {
                println!(
                    "no deploy record in {} yet\n  hint: `dockhand apply` writes one; pass --state-dir if it lives elsewhere",
                    cli.state_dir.display()
                );
                return Ok(ExitCode::SUCCESS);
            };
            if let Some(id) = a.id {
                let Some(d) = store.deploy(project.as_deref(), id)? else {
                    bail!(
                        "no deploy #{id} in {}\n  hint: `dockhand history` lists them",
                        store.path().display()
                    );
                };
                if a.json {
                    println!("{}", serde_json::to_string_pretty(&d)?);
                } else {
                    print!("{}", history::detail(&d));
                }
            } else {
                let deploys = store.deploys(project.as_deref(), a.stack.as_deref(), a.limit)?;
                if a.json {
                    println!("{}", serde_json::to_string_pretty(&deploys)?);
                } else {
                    print!("{}", history::table(&deploys));
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Pin(a) => pin::run(&a).await,
        Command::Run(a) => agent::run(&a, &cli.state_dir).await,
        Command::Rollback(a) => rollback(&a, &cli.state_dir).await,
        Command::Resume(src) => {
            let (_, desired) = load(&src)?;
            let store = Store::open(&cli.state_dir)?;
            if store.release_hold(&desired.config.project)? {
                println!("rollback hold ended: the next reconcile deploys the source's head");
            } else {
                println!("no rollback hold for project {}", desired.config.project);
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Schema { out } => {
            std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
            for kind in FileKind::ALL {
                let path = out.join(kind.schema_file());
                std::fs::write(&path, crate::load::schema::schema_text(kind))
                    .with_context(|| format!("writing {}", path.display()))?;
                println!("wrote {}", path.display());
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Reads the source named by the flags (see `SourceArgs` for the defaults).
pub fn snapshot(src: &SourceArgs) -> Result<Snapshot> {
    let cwd = std::env::current_dir().context("reading the current directory")?;
    let snap = match (&src.source, src.worktree) {
        (Some(s), true) => sources::from_dir(Path::new(s), &src.path)?,
        (None, true) => sources::from_dir(&sources::discover_repo(&cwd).unwrap_or(cwd), &src.path)?,
        (Some(s), false) if sources::remote::is_remote(s) => remote_snapshot(src, s)?,
        (Some(s), false) => {
            let path = PathBuf::from(s);
            if git2::Repository::open(&path).is_ok() {
                sources::from_git(&path, src.reference.as_deref(), &src.path)?
            } else if src.reference.is_some() {
                bail!("{s} is not a git repository, so --ref cannot be used\n  hint: point --source at a git repository, or drop --ref to read a plain directory");
            } else {
                sources::from_dir(&path, &src.path)?
            }
        }
        (None, false) => match sources::discover_repo(&cwd) {
            Some(repo) => sources::from_git(&repo, src.reference.as_deref(), &src.path)?,
            None => sources::from_dir(&cwd, &src.path)?,
        },
    };
    if let Some(signers) = &src.allowed_signers {
        let (Some(commit), Some(repo)) = (&snap.commit, &snap.repo) else {
            bail!("{} holds files, not a signed commit, and --allowed-signers is set\n  hint: read a git commit (drop --worktree), or drop --allowed-signers", snap.origin);
        };
        let who = sources::signature::verify(repo, commit, signers)?;
        tracing::info!("commit {} signed by {who}", &commit[..12.min(commit.len())]);
    }
    Ok(snap)
}

/// The folder holding dockhand.yaml when `src` reads plain files (a directory, or --worktree);
/// `None` for a git commit.
pub fn files_dir(src: &SourceArgs) -> Option<PathBuf> {
    let cwd = std::env::current_dir().ok()?;
    let root = match (&src.source, src.worktree) {
        (Some(s), true) => PathBuf::from(s),
        (None, true) => sources::discover_repo(&cwd).unwrap_or(cwd),
        (Some(s), false) if sources::remote::is_remote(s) => return None,
        (Some(s), false) if git2::Repository::open(s).is_ok() => return None,
        (Some(s), false) => PathBuf::from(s),
        (None, false) if sources::discover_repo(&cwd).is_some() => return None,
        (None, false) => cwd,
    };
    Some(root.join(&src.path))
}

/// The remote source behind `src`: its URL, branch, mirror and credentials.
pub fn remote_of(src: &SourceArgs, url: &str) -> sources::remote::Remote {
    let root = src
        .mirrors
        .clone()
        .unwrap_or_else(|| PathBuf::from(crate::history::DEFAULT_STATE_DIR).join("sources"));
    // A commit id in --ref (a rollback, a held revision) is read from the mirror; anything else
    // names the branch to follow.
    let branch = src.reference.clone().filter(|r| !looks_like_commit(r));
    sources::remote::Remote {
        url: url.to_string(),
        branch,
        mirror: sources::remote::mirror_dir(&root, url),
        auth: sources::remote::Auth {
            token_file: src.git_token_file.clone(),
            ssh_key: src.ssh_key.clone(),
        },
        allow_force_push: src.allow_force_push,
        allowed_signers: src.allowed_signers.clone(),
    }
}

fn looks_like_commit(r: &str) -> bool {
    (7..=40).contains(&r.len()) && r.chars().all(|c| c.is_ascii_hexdigit())
}

/// A remote source: a commit named by --ref is read from the mirror; otherwise the branch is
/// synced (unless `offline`) and its followed commit read.
fn remote_snapshot(src: &SourceArgs, url: &str) -> Result<Snapshot> {
    let remote = remote_of(src, url);
    let shown = sources::remote::display_url(url);
    if let Some(commit) = src.reference.as_deref().filter(|r| looks_like_commit(r)) {
        if let Ok(snap) = sources::from_git(remote.mirror(), Some(commit), &src.path) {
            return Ok(relabel(snap, &shown));
        }
        if src.offline {
            bail!("commit {commit} is not in the mirror of {shown}\n  hint: is it on the followed branch? `dockhand history` lists deployed commits");
        }
        remote.sync()?;
        let snap = sources::from_git(remote.mirror(), Some(commit), &src.path)?;
        return Ok(relabel(snap, &shown));
    }
    let commit = if src.offline {
        remote
            .followed()
            .ok_or_else(|| sources::SourceError::NeverFetched { url: shown.clone() })?
    } else {
        remote.sync()?.commit
    };
    let snap = sources::from_git(remote.mirror(), Some(&commit), &src.path)?;
    Ok(relabel(snap, &shown))
}

/// Names the remote, not the mirror, in a snapshot's origin.
fn relabel(mut snap: Snapshot, url: &str) -> Snapshot {
    if let Some(commit) = &snap.commit {
        let at = &commit[..12.min(commit.len())];
        let path = snap
            .origin
            .rsplit_once(", ")
            .map_or("", |(_, p)| p)
            .to_string();
        snap.origin = format!("git {url} @ {at}, {path}");
    }
    snap
}

fn load(src: &SourceArgs) -> Result<(Snapshot, DesiredState)> {
    let snap = snapshot(src)?;
    let host = crate::host::read_policy(src.policy.as_deref(), &state_dir_of(src))?;
    match crate::host::load(&snap.files, &host) {
        Ok(d) => Ok((snap, d)),
        Err(diags) => {
            Err(Reported(format!("invalid desired state ({}):\n{diags}", snap.origin)).into())
        }
    }
}

/// The state directory `src` was resolved with (`--state-dir`).
fn state_dir_of(src: &SourceArgs) -> PathBuf {
    src.state_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from(crate::history::DEFAULT_STATE_DIR))
}

/// Everything a plan-based verb needs, gathered once.
struct PlanContext {
    snapshot: Snapshot,
    state: DesiredState,
    desired: Desired,
    actual: Actual,
    plan: Plan,
    /// Env files that cannot be read: apply's preflight refuses on them.
    env_problems: Vec<String>,
    /// The host was read with one container list (see [`crate::plan::infer`]), which only
    /// ever stands when it shows nothing to do.
    quick: bool,
}

/// The commit, or for files on disk a hash of their contents: what quarantine and the deploy
/// record key on.
fn revision(snap: &Snapshot) -> String {
    snap.commit.clone().unwrap_or_else(|| {
        let mut all = Vec::new();
        for f in &snap.files {
            all.extend_from_slice(f.path.as_bytes());
            all.push(0);
            all.extend_from_slice(f.text.as_bytes());
            all.push(0);
        }
        format!("worktree:{}", &crate::spec::sha256_hex(&all)[..16])
    })
}

impl PlanContext {
    /// The plan for the source's head, or, while a rollback holds (see [`crate::history::Hold`])
    /// and the head has not moved since, for the held revision. A head that moved ends the hold.
    ///
    /// `quick_at`: a revision the caller found in sync after a full read of the host; at that
    /// revision a pass first tries the one-list-call read.
    async fn build_held(
        src: &SourceArgs,
        store: &Store,
        docker: &bollard::Docker,
        quick_at: Option<&str>,
    ) -> Result<(PlanContext, Option<String>)> {
        let head = PlanContext::build_with(src, docker, quick_at).await?;
        let project = head.desired.project.clone();
        let Some(hold) = store.hold(&project)? else {
            return Ok((head, None));
        };
        if head.snapshot.commit.as_deref() != Some(hold.source_at.as_str()) {
            store.release_hold(&project)?;
            let note = format!(
                "the source moved to {}: the rollback hold on {} ended",
                revision(&head.snapshot)
                    .chars()
                    .take(12)
                    .collect::<String>(),
                hold.revision.chars().take(12).collect::<String>()
            );
            return Ok((head, Some(note)));
        }
        let held = SourceArgs {
            reference: Some(hold.revision.clone()),
            worktree: false,
            ..src.clone()
        };
        Ok((PlanContext::build_on(&held, docker).await?, None))
    }

    async fn build(src: &SourceArgs) -> Result<PlanContext> {
        let docker = crate::observe::connect().await?;
        PlanContext::build_on(src, &docker).await
    }

    /// [`PlanContext::build`] on an Engine client already connected: the agent keeps one, as
    /// connecting asks the Engine's `/version` (several ms, a third of a no-op pass).
    async fn build_on(src: &SourceArgs, docker: &bollard::Docker) -> Result<PlanContext> {
        PlanContext::build_with(src, docker, None).await
    }

    async fn build_with(
        src: &SourceArgs,
        docker: &bollard::Docker,
        quick_at: Option<&str>,
    ) -> Result<PlanContext> {
        let (snapshot, state) = load(src)?;
        let key = crate::history::marker_key(&state_dir_of(src))?;
        let (facts, env_errors) = crate::host::facts(&state, key);
        let env_problems: Vec<String> = env_errors.iter().map(ToString::to_string).collect();
        for p in &env_problems {
            tracing::warn!("{p}");
        }
        let desired = crate::spec::render(&state, &facts, snapshot.commit.as_deref());
        let names: Vec<String> = desired
            .containers
            .iter()
            .flat_map(crate::spec::DesiredContainer::container_names)
            .collect();
        let mut read = None;
        if quick_at.is_some() && quick_at == Some(revision(&snapshot).as_str()) {
            let managed = crate::observe::list_managed(docker, &desired.project).await?;
            // The one-list read only stands when it shows nothing to do.
            read = crate::plan::infer::from_containers(&desired, managed)
                .map(|actual| (crate::plan::plan(&desired, &actual), actual))
                .filter(|(plan, _)| plan.is_empty());
        }
        let quick = read.is_some();
        let (plan, actual) = match read {
            Some(read) => read,
            None => {
                let actual = crate::observe::observe(docker, &desired.project, &names).await?;
                (crate::plan::plan(&desired, &actual), actual)
            }
        };
        Ok(PlanContext {
            snapshot,
            state,
            desired,
            actual,
            plan,
            env_problems,
            quick,
        })
    }
}

fn apply_options(ctx: &PlanContext, preflight_only: bool) -> crate::apply::ApplyOptions {
    crate::apply::ApplyOptions {
        checks: crate::apply::preflight::Checks {
            env_problems: ctx.env_problems.clone(),
            min_free_disk: crate::model::parse_size(&ctx.state.config.preflight.min_free_disk),
        },
        preflight_only,
    }
}

fn redactor(ctx: &PlanContext) -> Redactor {
    Redactor::new(
        ctx.desired
            .containers
            .iter()
            .flat_map(|c| c.spec.env.values().cloned())
            .chain(crate::host::env_file_values(&ctx.state)),
    )
}

/// Why a revision is refused, if it is quarantined.
fn quarantine_refusal(store: &Store, project: &str, rev: &str) -> Result<Option<String>> {
    Ok(store.quarantined(project, rev)?.map(|q| {
        format!(
            "revision {rev} is quarantined: deploy #{} failed at {}:\n  {}\nnothing was changed.\n  hint: commit a fix (a new revision is applied normally), or `dockhand apply --retry` to try this one again",
            q.deploy_id,
            crate::history::format_utc(q.at_ms),
            q.reason.lines().next().unwrap_or_default()
        )
    }))
}

async fn apply(a: &args::ApplyArgs, state_dir: &Path) -> Result<ExitCode> {
    let docker = crate::observe::connect().await?;
    let ctx = PlanContext::build_on(&a.source, &docker).await?;
    println!("source: {}\n", ctx.snapshot.origin);
    print!("{}", render::text(&ctx.plan, false));
    if ctx.plan.actions.is_empty() && ctx.plan.conflicts.is_empty() {
        return Ok(ExitCode::SUCCESS);
    }
    if !ctx.plan.conflicts.is_empty() {
        return Err(crate::apply::ApplyError::Conflicts(ctx.plan.conflicts.len()).into());
    }
    if a.preflight_only {
        let progress = Progress::new(false).redacting(redactor(&ctx));
        let options = apply_options(&ctx, true);
        crate::apply::apply(&docker, &ctx.plan, &ctx.desired, &options, &progress).await?;
        println!("\nPreflight passed; nothing was changed (--preflight-only).");
        return Ok(ExitCode::SUCCESS);
    }
    let store = Arc::new(Store::open(state_dir)?);
    if let Some(h) = store.hold(&ctx.desired.project)? {
        if ctx.snapshot.commit.as_deref() == Some(h.source_at.as_str()) {
            bail!(
                "project {} is held at {} by a rollback; nothing was changed\n  hint: `dockhand resume` ends the hold (a new commit on the source ends it too)",
                ctx.desired.project,
                h.revision.chars().take(12).collect::<String>()
            );
        }
        store.release_hold(&ctx.desired.project)?;
    }
    if !a.retry {
        if let Some(why) =
            quarantine_refusal(&store, &ctx.desired.project, &revision(&ctx.snapshot))?
        {
            bail!(why);
        }
    }
    if !confirm(a.yes, "Apply these changes?")? {
        println!("Apply cancelled; nothing was changed.");
        return Ok(ExitCode::SUCCESS);
    }
    let trigger = if a.retry { "cli (retry)" } else { "cli" };
    match recorded_apply(&docker, &store, &ctx, trigger).await? {
        (_, Some(e)) => Err(e),
        (_, None) => Ok(ExitCode::SUCCESS),
    }
}

/// Asks on a terminal; refuses elsewhere unless `yes`. Returns whether to go on.
fn confirm(yes: bool, question: &str) -> Result<bool> {
    if yes {
        return Ok(true);
    }
    if !std::io::stdin().is_terminal() {
        bail!("refusing to change anything without confirmation: standard input is not a terminal\n  hint: review the plan above and pass --yes");
    }
    print!("\n{question} Only 'yes' is accepted: ");
    std::io::stdout().flush()?;
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer)?;
    Ok(answer.trim() == "yes")
}

/// The revision of the last successful deploy before the one now running.
fn previous_good(store: &Store, project: &str) -> Result<String> {
    let deploys = store.deploys(Some(project), None, 500)?;
    let mut good = deploys
        .iter()
        .filter(|d| d.outcome == Outcome::Succeeded)
        .map(|d| d.revision.as_str());
    let current = good.next();
    good.find(|r| Some(*r) != current && !r.starts_with("worktree:"))
        .map(str::to_string)
        .context("no earlier successful deploy of a commit to roll back to\n  hint: `dockhand history` lists deploys; pass --to DEPLOY_ID or --to COMMIT")
}

async fn rollback(a: &args::RollbackArgs, state_dir: &Path) -> Result<ExitCode> {
    if a.source.worktree {
        bail!(
            "rollback deploys a recorded commit, so it needs a git source\n  hint: drop --worktree"
        );
    }
    let head = snapshot(&a.source)?;
    let Some(head_commit) = head.commit.clone() else {
        bail!(
            "{} is not a git repository: there is no earlier commit to roll back to",
            head.origin
        );
    };
    let store = Arc::new(Store::open(state_dir)?);
    let project = crate::load::load(&head.files)
        .map(|d| d.config.project)
        .map_err(|_| anyhow::anyhow!("the source's head does not load, so its project is unknown\n  hint: pass --to COMMIT (a deploy id needs the project)"));
    let target = match &a.to {
        Some(t) if !t.is_empty() && t.chars().all(|c| c.is_ascii_digit()) => {
            let id: i64 = t.parse()?;
            store
                .deploy(project.as_ref().ok().map(String::as_str), id)?
                .map(|d| d.revision)
                .with_context(|| {
                    format!("no deploy #{id}\n  hint: `dockhand history` lists them")
                })?
        }
        Some(t) => t.clone(),
        None => previous_good(
            &store,
            project.as_ref().map_err(|e| anyhow::anyhow!("{e}"))?,
        )?,
    };
    if target.starts_with("worktree:") {
        bail!("deploy {target} was made from files on disk, which were not recorded\n  hint: roll back to a commit (--to COMMIT)");
    }
    let src = SourceArgs {
        reference: Some(target.clone()),
        worktree: false,
        ..a.source.clone()
    };
    let ctx = PlanContext::build(&src).await?;
    let rev = revision(&ctx.snapshot);
    println!("rollback to {rev}\nsource: {}\n", ctx.snapshot.origin);
    print!("{}", render::text(&ctx.plan, false));
    if !ctx.plan.conflicts.is_empty() {
        return Err(crate::apply::ApplyError::Conflicts(ctx.plan.conflicts.len()).into());
    }
    if !confirm(a.yes, "Roll back and hold there?")? {
        println!("Rollback cancelled; nothing was changed.");
        return Ok(ExitCode::SUCCESS);
    }
    // The hold first: an agent's pass between the deploy and the hold would undo it.
    store.set_hold(
        &ctx.desired.project,
        &crate::history::Hold {
            revision: rev.clone(),
            source_at: head_commit.clone(),
            reason: format!("dockhand rollback to {rev}"),
            at_ms: crate::history::now_ms(),
        },
    )?;
    if !ctx.plan.is_empty() {
        let docker = crate::observe::connect().await?;
        if let (_, Some(e)) = recorded_apply(&docker, &store, &ctx, "rollback").await? {
            return Err(e.context(
                "the rollback hold stays (the agent will not redeploy the head); `dockhand resume` ends it",
            ));
        }
    }
    println!(
        "\nHeld at {}: an agent keeps this revision until a new commit arrives on the source (now at {}), or `dockhand resume`.",
        rev.chars().take(12).collect::<String>(),
        head_commit.chars().take(12).collect::<String>()
    );
    Ok(ExitCode::SUCCESS)
}

/// Applies `ctx.plan` as one recorded deploy (the apply lock held throughout), quarantining
/// the revision when its release rolled back; prints the summary line. Returns the recorded
/// outcome and, unless it succeeded, the error to report; `Err` means nothing could be
/// recorded (the store or its lock).
async fn recorded_apply(
    docker: &bollard::Docker,
    store: &Arc<Store>,
    ctx: &PlanContext,
    trigger: &str,
) -> Result<(Outcome, Option<anyhow::Error>)> {
    let project = ctx.desired.project.clone();
    let rev = revision(&ctx.snapshot);
    let options = apply_options(ctx, false);
    let redactor = redactor(ctx);
    let lock = store.lock_apply()?;
    let services = service_changes(&ctx.plan, &ctx.desired, &ctx.actual);
    let summary = render::summary_line(&ctx.plan);
    let deploy = store.begin(
        &crate::history::NewDeploy {
            project: &project,
            trigger,
            revision: &rev,
            source: &ctx.snapshot.origin,
            services: &services,
            summary: &summary,
        },
        &lock,
    )?;
    let progress = Progress::new(false)
        .redacting(redactor.clone())
        .recording(store.clone(), deploy);
    let started = std::time::Instant::now();
    let result = crate::apply::apply(docker, &ctx.plan, &ctx.desired, &options, &progress).await;
    let report = match result {
        Ok(r) => {
            store.finish(deploy, Outcome::Succeeded, None)?;
            store.release_quarantine(&project, &rev)?;
            r
        }
        Err(e) => {
            let text = redactor.redact(&e.to_string());
            let outcome = match &e {
                crate::apply::ApplyError::Preflight(_) => Outcome::FailedPreflight,
                e if e.rolled_back() => Outcome::RolledBack,
                _ => Outcome::Failed,
            };
            store.finish(deploy, outcome, Some(&text))?;
            if outcome == Outcome::RolledBack {
                store.quarantine(&project, &rev, deploy, &text)?;
                return Ok((outcome, Some(anyhow::Error::new(e).context(format!(
                    "deploy #{deploy} rolled back; revision {} is quarantined (not applied again until a new revision or `dockhand apply --retry`)",
                    rev.chars().take(12).collect::<String>()
                )))));
            }
            return Ok((
                outcome,
                Some(
                    anyhow::Error::new(e).context(format!("deploy #{deploy} {}", outcome.as_str())),
                ),
            ));
        }
    };
    println!(
        "\nApply complete in {:.1}s: {} created, {} recreated, {} started, {} removed{}; {} image(s) pulled. Recorded as deploy #{deploy}.",
        started.elapsed().as_secs_f64(),
        report.created,
        report.recreated,
        report.started,
        report.removed,
        if report.released > 0 {
            format!(", {} released blue/green", report.released)
        } else {
            String::new()
        },
        report.pulled
    );
    Ok((Outcome::Succeeded, None))
}

/// Per container the plan touches: the image before (from the Engine) and after (desired).
fn service_changes(plan: &Plan, desired: &Desired, actual: &Actual) -> Vec<ServiceChange> {
    let mut out = Vec::new();
    for a in &plan.actions {
        let (stack, service, container, kind) = match a {
            Action::Create {
                stack,
                service,
                container,
                ..
            } => (stack, service.clone(), container.clone(), "create"),
            Action::Recreate {
                stack,
                service,
                container,
                ..
            } => (stack, service.clone(), container.clone(), "recreate"),
            Action::Start {
                stack,
                service,
                container,
                ..
            } => (stack, service.clone(), container.clone(), "start"),
            Action::Release {
                stack,
                service,
                container,
                ..
            } => (stack, service.clone(), container.clone(), "release"),
            Action::Retire {
                stack,
                service,
                container,
                ..
            } => (stack, service.clone(), container.clone(), "retire"),
            Action::Remove {
                stack, container, ..
            } => (stack, String::new(), container.clone(), "remove"),
            _ => continue,
        };
        let before = actual.managed.iter().find(|c| c.name == container);
        let after = desired
            .containers
            .iter()
            .find(|c| &c.stack == stack && c.service == service)
            .filter(|_| !matches!(kind, "remove" | "retire"));
        out.push(ServiceChange {
            stack: stack.clone(),
            service: if service.is_empty() {
                before
                    .and_then(|c| c.label(labels::SERVICE))
                    .unwrap_or_default()
                    .to_string()
            } else {
                service
            },
            container,
            action: kind.into(),
            image_before: before.map(|c| c.image.clone()),
            image_after: after.map(|c| c.image_ref.clone()),
        });
    }
    out
}

#[derive(Debug, Serialize)]
struct StatusRow {
    stack: String,
    service: String,
    container: String,
    /// running, stopped, missing, drifted, conflict or undesired.
    state: String,
    image: String,
    commit: String,
    /// When, and by which deploy, this container was last changed (from the deploy record).
    deployed: String,
    detail: String,
}

fn status_rows(desired: &Desired, actual: &Actual, plan: &Plan) -> Vec<StatusRow> {
    let mut rows = Vec::new();
    for d in &desired.containers {
        let blue_green = d.blue_green.is_some();
        for name in d.container_names() {
            let ac = actual.managed.iter().find(|c| c.name == name);
            let action = plan
                .actions
                .iter()
                .find(|a| a.container() == Some(name.as_str()));
            let conflict = plan.conflicts.iter().find(|c| c.name == name);
            let (state, detail) = match (conflict, action, ac) {
                (Some(c), _, _) => ("conflict", c.message.clone()),
                (_, Some(Action::Create { .. }), _) => ("missing", String::new()),
                (_, Some(Action::Recreate { changes, .. }), _) => (
                    "drifted",
                    format!(
                        "{} differ",
                        changes
                            .iter()
                            .map(|c| c.field.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ),
                (_, Some(Action::Start { reason, .. }), _) => ("stopped", reason.clone()),
                (_, Some(Action::Release { step, .. }), _) => (
                    "to release",
                    format!("next release goes here ({})", step.as_str()),
                ),
                (_, Some(Action::Retire { reason, .. }), _) => ("to retire", reason.clone()),
                (_, _, Some(c)) if blue_green && c.serving() => ("serving", c.status.clone()),
                (_, _, Some(c)) if d.job && c.exit_code() == Some(0) => {
                    ("completed", c.status.clone())
                }
                (_, _, Some(c)) if c.state == RunState::Running => ("running", c.status.clone()),
                (_, _, Some(c)) if c.state == RunState::Restarting => (
                    "degraded",
                    format!(
                        "crash-looping, Docker restarts it; {}",
                        c.status.to_lowercase()
                    ),
                ),
                (_, _, Some(c)) if blue_green => (
                    "idle",
                    format!("kept for rollback; {}", c.status.to_lowercase()),
                ),
                (_, _, None) if blue_green => continue,
                _ => ("unknown", String::new()),
            };
            rows.push(StatusRow {
                stack: d.stack.clone(),
                service: d.service.clone(),
                container: name.clone(),
                state: state.into(),
                image: ac.map(|c| c.image.clone()).unwrap_or_default(),
                commit: ac
                    .and_then(|c| c.label(labels::COMMIT))
                    .unwrap_or_default()
                    .to_string(),
                deployed: String::new(),
                detail,
            });
        }
    }
    for a in &plan.actions {
        if let Action::Remove {
            stack,
            container,
            reason,
        } = a
        {
            let ac = actual.managed.iter().find(|c| &c.name == container);
            rows.push(StatusRow {
                stack: stack.clone(),
                service: ac
                    .and_then(|c| c.label(labels::SERVICE))
                    .unwrap_or_default()
                    .into(),
                container: container.clone(),
                state: "undesired".into(),
                image: ac.map(|c| c.image.clone()).unwrap_or_default(),
                commit: ac
                    .and_then(|c| c.label(labels::COMMIT))
                    .unwrap_or_default()
                    .into(),
                deployed: String::new(),
                detail: reason.clone(),
            });
        }
    }
    rows
}

fn status_table(rows: &[StatusRow]) -> String {
    let cells: Vec<[String; 8]> = rows
        .iter()
        .map(|r| {
            [
                r.stack.clone(),
                r.service.clone(),
                r.container.clone(),
                r.state.clone(),
                render::short_image(&r.image),
                r.commit.chars().take(12).collect(),
                r.deployed.clone(),
                r.detail.clone(),
            ]
        })
        .collect();
    table::render(
        [
            "STACK",
            "SERVICE",
            "CONTAINER",
            "STATE",
            "IMAGE",
            "COMMIT",
            "DEPLOYED",
            "DETAIL",
        ],
        &cells,
    )
}
