//! Carrying out a plan against the Engine, strategy `recreate`.
//!
//! Order, and the promise each step keeps:
//! 1. **Refuse** on conflicts (objects dockhand does not own), then **preflight** (see
//!    [`preflight`]): every failed check is reported together. Problems that concern
//!    containers skip those services and their dependents ([`Plan::skip_services`]) and the
//!    rest goes on (the report lists them: a `partial` deploy); a problem of the whole host,
//!    or one that leaves nothing to do, stops here with nothing touched.
//! 2. **Pull** every image a create/recreate needs, by digest, and check the digest. A failure
//!    here also leaves the host untouched.
//! 3. Create bind directories, owned networks and volumes.
//! 4. Containers wave by wave in `depends_on` order, independent ones in parallel. Per
//!    container: `before` hooks, create (or recreate), wait until ready (healthy if it has a
//!    healthcheck, then dockhand's own `http`/`tcp` probes; exited 0 for a job), `after_start`
//!    hooks, smoke checks, `after_switch` hooks. A recreate keeps the old container (stopped
//!    and renamed) until the new one is ready, its `after_start` hooks and smoke checks
//!    passed, and puts it back otherwise; a maintenance container holds the route meanwhile.
//!    Blue/green services are released in their wave too (see `apply/release.rs`), so they can be
//!    dependencies like any other service.
//!    A failed action does not stop its siblings or later waves: only its dependents are
//!    skipped, and the first error is returned once everything else ran.
//! 5. Remove managed containers and networks that are no longer desired (one that hands an
//!    owned volume to another service was removed before that service's wave), each network's
//!    labels read again first. Volumes are removed only when the plan says so, which only
//!    `dockhand down --volumes` does ([`crate::plan::decommission`]).
//!
//! Edge module: bollard and the file system. It executes the plan's actions and decides
//! nothing on its own: the waves, what each unchanged dependency is waited for, the color of
//! a release and whether a maintenance container takes the route all come with the plan.
//! The plan holds only redacted specs, so the one thing apply looks up is each service's full
//! [`DesiredContainer`] (with its env values), by stack and service.

mod container;
mod error;
mod hooks;
mod maintenance;
pub mod preflight;
pub(crate) mod probe;
pub mod progress;
mod release;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use bollard::Docker;
use futures_util::stream::{self, StreamExt, TryStreamExt};

use crate::plan::{Action, Plan, Until, Wait};
use crate::spec::{Desired, DesiredContainer};
use progress::Progress;

pub use error::{ApplyError, PullError, StepError};

/// How many containers are created or started at the same time.
const PARALLEL: usize = 8;

#[derive(Debug, Default, Clone)]
pub struct ApplyOptions {
    pub checks: preflight::Checks,
    /// Run the checks, then stop.
    pub preflight_only: bool,
}

/// What apply did, for the summary line and `apply --json`.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ApplyReport {
    pub pulled: usize,
    pub created: usize,
    pub recreated: usize,
    pub started: usize,
    /// Containers put back in place (networks, restart policy, name).
    pub corrected: usize,
    pub removed: usize,
    pub released: usize,
    /// Services left out ([`Plan::skipped`]: preflight failed for them or a service they
    /// depend on, or the agent skipped them for a conflict or back-off); everything else was
    /// applied. Non-empty: the deploy is `partial`.
    pub skipped: Vec<crate::plan::Skipped>,
}

/// What one container action did, for [`ApplyReport`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Done {
    Created,
    Recreated,
    Started,
    Corrected,
    Released,
    Retired,
}

/// The full desired containers of a plan's services, by stack and service: what the plan's
/// redacted specs stand for.
struct Services<'a>(HashMap<(&'a str, &'a str), &'a DesiredContainer>);

impl<'a> Services<'a> {
    fn of(desired: &'a Desired) -> Self {
        Services(
            desired
                .containers
                .iter()
                .map(|c| ((c.stack.as_str(), c.service.as_str()), c))
                .collect(),
        )
    }

    fn get(&self, stack: &str, service: &str) -> Result<&'a DesiredContainer, ApplyError> {
        self.0
            .get(&(stack, service))
            .copied()
            .ok_or_else(|| ApplyError::PlanMismatch {
                what: format!("service `{service}` of stack `{stack}` is not desired"),
            })
    }

    fn of_action(&self, a: &Action) -> Result<&'a DesiredContainer, ApplyError> {
        match a.service() {
            Some(service) => self.get(a.stack(), service),
            None => Err(ApplyError::PlanMismatch {
                what: format!("{a:?} converges no service"),
            }),
        }
    }

    /// The desired container of a wave's action, holding what the action relies on (a
    /// blue/green release, a maintenance container).
    fn fitting(&self, a: &Action) -> Result<&'a DesiredContainer, ApplyError> {
        let c = self.of_action(a)?;
        let mismatch = |what: &str| {
            Err(ApplyError::PlanMismatch {
                what: format!("`{}` {what}", c.service),
            })
        };
        match a {
            Action::Release { .. } | Action::Retire { .. } if c.blue_green.is_none() => {
                mismatch("is not a blue/green service")
            }
            Action::Release {
                maintenance: true, ..
            }
            | Action::Recreate {
                maintenance: true, ..
            } if c.maintenance.is_none() => mismatch("has no maintenance container"),
            _ => Ok(c),
        }
    }
}

/// Executes `plan`. `desired` supplies the full container specs (with env values), which the
/// plan deliberately does not carry.
///
/// # Errors
/// See [`ApplyError`]; each says whether anything was changed.
pub async fn apply(
    docker: &Docker,
    plan: &Plan,
    desired: &Desired,
    options: &ApplyOptions,
    progress: &Progress,
) -> Result<ApplyReport, ApplyError> {
    if !plan.conflicts.is_empty() {
        return Err(ApplyError::Conflicts(crate::plan::conflict_summary(
            &plan.conflicts,
        )));
    }
    let services = Services::of(desired);
    // Every action and wait is matched with its desired container before anything is
    // touched, so a plan from another revision changes nothing.
    for a in plan.actions.iter().filter(|a| a.wave().is_some()) {
        services.fitting(a)?;
    }
    for w in &plan.waits {
        services.get(&w.stack, &w.service)?;
    }
    let changing: Vec<&DesiredContainer> = plan
        .actions
        .iter()
        .filter(|a| {
            matches!(
                a,
                Action::Create { .. } | Action::Recreate { .. } | Action::Release { .. }
            )
        })
        .map(|a| services.of_action(a))
        .collect::<Result<_, _>>()?;

    let problems = preflight::run(docker, &changing, &options.checks).await;
    let scoped = if problems.is_empty() || options.preflight_only {
        None
    } else {
        scope_preflight(plan, desired, &changing, &problems)
    };
    let scoped_plan;
    let (plan, changing) = match scoped {
        Some(p) => {
            for s in &p.skipped {
                progress.line(&format!(
                    "{}: skipped, the rest goes on: {}",
                    s.service,
                    s.reason.lines().next().unwrap_or_default()
                ));
            }
            scoped_plan = p;
            let changing: Vec<&DesiredContainer> = changing
                .into_iter()
                .filter(|c| {
                    !scoped_plan
                        .skipped
                        .iter()
                        .any(|s| s.stack == c.stack && s.service == c.service)
                })
                .collect();
            (&scoped_plan, changing)
        }
        None => {
            progress
                .step("host", "preflight", async {
                    if problems.is_empty() {
                        Ok(())
                    } else {
                        Err(ApplyError::Preflight(problems))
                    }
                })
                .await?;
            progress.line("preflight: all checks passed");
            (plan, changing)
        }
    };
    if options.preflight_only {
        return Ok(ApplyReport::default());
    }
    let mut report = ApplyReport {
        pulled: pull_all(docker, &options.checks.registry_auth, &changing, progress).await?,
        skipped: plan.skipped.clone(),
        ..Default::default()
    };

    for c in &changing {
        for (path, create) in &c.bind_creates {
            container::ensure_bind_dir(path, create).map_err(|source| ApplyError::Step {
                container: c.name.clone(),
                what: "creating bind directory",
                source,
            })?;
        }
    }
    for a in &plan.actions {
        match a {
            Action::CreateNetwork {
                stack,
                name,
                driver,
                internal,
            } => {
                progress.line(&format!("network {name}: creating"));
                container::create_network(
                    docker,
                    &desired.project,
                    stack,
                    name,
                    driver.as_deref(),
                    *internal,
                )
                .await?;
            }
            Action::CreateVolume {
                stack,
                name,
                driver,
            } => {
                progress.line(&format!("volume {name}: creating"));
                container::create_volume(docker, &desired.project, stack, name, driver.as_deref())
                    .await?;
            }
            _ => {}
        }
    }

    let api = desired.traefik_api.as_deref();
    // Services whose action (or awaited dependency) failed: their dependents in later waves
    // are skipped, everything else goes on; the first error is returned at the end.
    let mut failed: BTreeMap<(String, String), String> = BTreeMap::new();
    let mut first_error: Option<ApplyError> = None;
    for wave in plan.waves() {
        // A container handing an owned volume over to another service goes before the new
        // one starts (the plan says which wave): never two writers on one volume.
        for a in &plan.actions {
            if let Action::Remove {
                container: name,
                first: Some(w),
                ..
            } = a
            {
                if *w == wave.index {
                    remove(docker, &desired.project, name, progress).await?;
                    report.removed += 1;
                }
            }
        }
        // Every started change runs to its end (a recreate puts its old container back, a
        // release leaves one color serving) even when a sibling fails: the first error is
        // reported once all of them have settled.
        let services = &services;
        let skipped = crate::plan::with_dependents(desired, &failed);
        let skipped = |stack: &str, service: &str| {
            skipped
                .iter()
                .any(|s| s.stack == stack && s.service == service)
        };
        let done: Vec<(&Action, Result<Done, ApplyError>)> = stream::iter(
            wave.actions
                .iter()
                .filter(|a| !a.service().is_some_and(|s| skipped(a.stack(), s)))
                .map(|a| async move {
                    let r = async {
                        converge_one(docker, services.of_action(a)?, a, api, progress).await
                    };
                    (*a, r.await)
                }),
        )
        .buffer_unordered(PARALLEL)
        .collect()
        .await;
        for (a, what) in done {
            match what {
                Ok(Done::Created) => report.created += 1,
                Ok(Done::Recreated) => report.recreated += 1,
                Ok(Done::Released) => report.released += 1,
                Ok(Done::Retired) => report.removed += 1,
                Ok(Done::Started) => report.started += 1,
                Ok(Done::Corrected) => report.corrected += 1,
                Err(e) => {
                    let service = a.service().unwrap_or_default().to_string();
                    failed.insert((a.stack().to_string(), service), e.to_string());
                    first_error.get_or_insert(e);
                }
            }
        }
        // Unchanged dependencies of later waves must be up too before those start.
        let waited: Vec<(&Wait, Result<(), ApplyError>)> = stream::iter(
            wave.waits
                .iter()
                .filter(|w| !skipped(&w.stack, &w.service))
                .map(|w| async move { (*w, wait_for(docker, services, w, progress).await) }),
        )
        .buffer_unordered(PARALLEL)
        .collect()
        .await;
        for (w, r) in waited {
            if let Err(e) = r {
                failed.insert((w.stack.clone(), w.service.clone()), e.to_string());
                first_error.get_or_insert(e);
            }
        }
    }

    for a in &plan.actions {
        if let Action::Remove {
            container: name,
            first: None,
            ..
        } = a
        {
            remove(docker, &desired.project, name, progress).await?;
            report.removed += 1;
        }
    }
    // After every container: an owned network or volume is in use until its last one went.
    for a in &plan.actions {
        let (kind, name) = match a {
            Action::RemoveNetwork { name, .. } => (container::Object::Network, name),
            Action::RemoveVolume { name, .. } => (container::Object::Volume, name),
            _ => continue,
        };
        let what = match kind {
            container::Object::Network => "network",
            container::Object::Volume => "volume",
        };
        progress.line(&format!("{what} {name}: removing"));
        // One still used by a container dockhand does not own is left alone.
        match container::remove_owned_object(docker, &desired.project, kind, name).await? {
            None => report.removed += 1,
            Some(why) => progress.line(&format!("{what} {name}: kept ({why})")),
        }
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(report),
    }
}

/// The plan without the services that `problems` concern and their dependents, or `None`
/// when a problem concerns the whole host or nothing would be left to do: then the whole
/// apply stops at preflight, as before.
fn scope_preflight(
    plan: &Plan,
    desired: &Desired,
    changing: &[&DesiredContainer],
    problems: &[preflight::Problem],
) -> Option<Plan> {
    let mut blocked: BTreeMap<(String, String), String> = BTreeMap::new();
    for p in problems {
        let concerned = p.containers(changing)?;
        if concerned.is_empty() {
            return None;
        }
        for c in concerned {
            let why = blocked
                .entry((c.stack.clone(), c.service.clone()))
                .or_insert_with(|| "preflight failed:".to_string());
            why.push('\n');
            why.push_str(&preflight::list(std::slice::from_ref(p)));
        }
    }
    let mut scoped = plan.clone();
    scoped.skip_services(crate::plan::with_dependents(desired, &blocked));
    (!scoped.actions.is_empty()).then_some(scoped)
}

/// Stops (with the container's own stop signal and timeout) and removes a managed container
/// the plan no longer wants.
async fn remove(
    docker: &Docker,
    project: &str,
    name: &str,
    progress: &Progress,
) -> Result<(), ApplyError> {
    progress.line(&format!("{name}: stopping and removing"));
    progress
        .step(
            name,
            "remove",
            container::stop_and_remove(
                docker, project, name,
                // The service is gone from the spec: the container's own stop timeout (its
                // `stop_grace_period` when it was created).
                None,
            ),
        )
        .await
}

/// Waits until an unchanged dependency reached what the plan says its dependents need.
async fn wait_for(
    docker: &Docker,
    services: &Services<'_>,
    w: &Wait,
    progress: &Progress,
) -> Result<(), ApplyError> {
    let c = services.get(&w.stack, &w.service)?;
    match w.until {
        Until::Completed => container::wait_exit(docker, c, progress).await,
        Until::Serving => release::wait_serving(docker, c, progress).await,
        Until::Ready => container::wait_ready(docker, c, progress).await,
    }
}

/// One container action of a wave, from its `before` hooks to its `after_switch` hooks (a
/// blue/green service: its whole release, or the retire of a color that should not serve).
async fn converge_one(
    docker: &Docker,
    c: &DesiredContainer,
    action: &Action,
    api: Option<&str>,
    progress: &Progress,
) -> Result<Done, ApplyError> {
    let name = c.name.as_str();
    // Ready means healthy for a service, exited 0 for a job; then the `after_start` hooks.
    let verify = || async {
        if c.job {
            progress
                .step(
                    name,
                    "wait completed",
                    container::wait_exit(docker, c, progress),
                )
                .await?;
        } else {
            progress
                .step(name, "wait ready", async {
                    container::wait_ready(docker, c, progress).await?;
                    probe::wait_pass(
                        docker,
                        name,
                        probe::network_of(c),
                        &c.probes,
                        c.spec
                            .healthcheck
                            .as_ref()
                            .map_or(Duration::from_secs(60), |h| h.deadline()),
                        progress,
                    )
                    .await
                })
                .await?;
        }
        hooks::run_phase(docker, c, name, &c.hooks.after_start, progress).await?;
        probe::smoke(docker, c, name, progress).await
    };
    let done = match action {
        Action::Release {
            container: target,
            color,
            step,
            retire,
            maintenance,
            ..
        } => {
            let r = release::Release {
                base: c,
                color: *color,
                step: *step,
                retire: retire.as_deref(),
                api,
                maintenance: *maintenance,
            };
            progress
                .step(target, "release", release::release(docker, r, progress))
                .await?;
            return Ok(Done::Released);
        }
        Action::Retire { container: old, .. } => {
            progress
                .step(
                    old,
                    "retire",
                    release::retire(docker, c, old, api, progress),
                )
                .await?;
            return Ok(Done::Retired);
        }
        Action::Create { .. } => {
            hooks::run_phase(docker, c, name, &c.hooks.before, progress).await?;
            progress.line(&format!("{name}: creating"));
            progress
                .step(name, "create", container::create_and_start(docker, c))
                .await?;
            verify().await?;
            Done::Created
        }
        Action::Recreate { maintenance, .. } => {
            let recreate = async {
                hooks::run_phase(docker, c, name, &c.hooks.before, progress).await?;
                progress.line(&format!("{name}: recreating"));
                progress
                    .step(name, "recreate", container::replace(docker, c, verify()))
                    .await
            };
            if *maintenance {
                let m = c
                    .maintenance
                    .as_ref()
                    .ok_or_else(|| ApplyError::PlanMismatch {
                        what: format!("`{}` has no maintenance container", c.service),
                    })?;
                let drain = crate::spec::DEFAULT_DRAIN_MS;
                maintenance::up(docker, m, api, drain, progress).await?;
                let result = recreate.await;
                maintenance::leave(docker, m, api, drain, result, progress).await?;
            } else {
                recreate.await?;
            }
            Done::Recreated
        }
        Action::Correct {
            container: target,
            fixes,
            start,
            ..
        } => {
            // A blue/green service's fixes are made on the color the plan names.
            let colored = crate::model::Color::ALL
                .into_iter()
                .map(|color| c.colored(color))
                .find(|cc| c.blue_green.is_some() && &cc.name == target);
            progress.line(&format!("{target}: correcting in place"));
            progress
                .step(
                    target,
                    "correct",
                    container::correct(docker, colored.as_ref().unwrap_or(c), fixes),
                )
                .await?;
            if start.is_some() {
                start_and_wait(docker, c, progress).await?;
            }
            return Ok(Done::Corrected);
        }
        Action::Start { .. } => {
            start_and_wait(docker, c, progress).await?;
            return Ok(Done::Started);
        }

        Action::CreateNetwork { .. }
        | Action::CreateVolume { .. }
        | Action::Remove { .. }
        | Action::RemoveNetwork { .. }
        | Action::RemoveVolume { .. } => {
            return Err(ApplyError::PlanMismatch {
                what: format!("{action:?} is not a container action of a wave"),
            })
        }
    };
    hooks::run_phase(docker, c, name, &c.hooks.after_switch, progress).await?;
    Ok(done)
}

/// Starts `c`'s existing container and waits until it is ready (a job: until it exited).
async fn start_and_wait(
    docker: &Docker,
    c: &DesiredContainer,
    progress: &Progress,
) -> Result<(), ApplyError> {
    let name = c.name.as_str();
    progress.line(&format!("{name}: starting"));
    progress
        .step(name, "start", container::start(docker, name))
        .await?;
    if c.job {
        container::wait_exit(docker, c, progress).await
    } else {
        container::wait_ready(docker, c, progress).await
    }
}

async fn pull_all(
    docker: &Docker,
    logins: &crate::observe::auth::RegistryAuth,
    changing: &[&DesiredContainer],
    progress: &Progress,
) -> Result<usize, ApplyError> {
    let images: BTreeSet<&str> = changing.iter().flat_map(|c| c.images()).collect();
    let pulled: Vec<bool> = stream::iter(
        images
            .into_iter()
            .map(|image| container::ensure_image(docker, logins, image, progress)),
    )
    .buffer_unordered(4)
    .try_collect()
    .await?;
    Ok(pulled.into_iter().filter(|p| *p).count())
}

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use super::preflight::{list, Problem};
    use super::{ApplyError, StepError};
    use crate::model::PortMapping;

    /// A failed step says what failed in its message, and keeps the cause as its `source`, so
    /// that a caller can decide by type (an I/O error, the Engine) instead of by text.
    /// Issue 19: a registry that wants a login is reported as such, never as a missing digest.
    #[test]
    fn an_unauthorized_registry_says_to_log_in_not_that_the_digest_is_missing() {
        let text = list(&[Problem::RegistryUnauthorized {
            image: "ghcr.io/acme/api@sha256:ab".into(),
            reason: "Head \"https://ghcr.io/v2/acme/api/manifests/sha256:ab\": unauthorized (500)"
                .into(),
        }]);
        assert!(
            text.contains("image ghcr.io/acme/api@sha256:ab: unauthorized"),
            "{text}"
        );
        assert!(
            text.contains("hint: log in to ghcr.io on this host: `docker login ghcr.io`"),
            "{text}"
        );
        assert!(!text.contains("digest was pushed"), "{text}");
    }

    #[test]
    fn step_errors_keep_their_cause_as_source() {
        let e = ApplyError::Step {
            container: "shop-web".into(),
            what: "creating bind directory",
            source: StepError::Io {
                what: "cannot create /srv/x".into(),
                source: std::io::Error::new(std::io::ErrorKind::PermissionDenied, "denied"),
            },
        };
        assert_eq!(
            e.to_string(),
            "shop-web: creating bind directory failed: cannot create /srv/x: denied"
        );
        let step = e.source().and_then(|s| s.downcast_ref::<StepError>());
        assert!(matches!(step, Some(StepError::Io { .. })), "{step:?}");
        let io = step
            .and_then(|s| s.source())
            .and_then(|s| s.downcast_ref::<std::io::Error>());
        assert_eq!(
            io.map(std::io::Error::kind),
            Some(std::io::ErrorKind::PermissionDenied)
        );

        let gate = ApplyError::GateFailed {
            container: "web-green".into(),
            serving: Some("web-blue".into()),
            cause: Box::new(ApplyError::Unhealthy {
                container: "web-green".into(),
                message: "it is not running (exit code 1)".into(),
            }),
        };
        assert!(gate.rolled_back());
        assert!(gate.source().is_some());
        let cause = gate.cause();
        assert!(
            matches!(cause, Some(ApplyError::Unhealthy { .. })),
            "{cause:?}"
        );
        assert!(
            gate.to_string().starts_with("release to web-green stopped at the health gate: web-green did not become healthy: it is not running (exit code 1)"),
            "{gate}"
        );
    }

    fn rendered(stack: &str) -> crate::spec::Desired {
        let files = [
            crate::load::SourceFile {
                path: "dockhand.yaml".into(),
                text: "version: 1\n".into(),
            },
            crate::load::SourceFile {
                path: "stacks/s.yaml".into(),
                text: stack.into(),
            },
        ];
        let state = crate::load::load(&files).unwrap();
        crate::spec::render(&state, &Default::default(), None)
    }

    /// Apply looks up each action's full container in the desired state it is given; a plan
    /// made from another revision is refused before anything (the Engine included) is
    /// touched, instead of being carried out with defaults.
    #[tokio::test]
    async fn a_plan_that_does_not_fit_its_desired_state_changes_nothing() {
        const D: &str = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
        let bg = rendered(&format!("stack: s\nservices:\n  web:\n    image: r/w@{D}\n    route: {{host: w.localhost, port: 80}}\n    health: {{cmd: [x]}}\n    release: {{strategy: blue-green}}\n"));
        let plain = rendered(&format!(
            "stack: s\nservices:\n  web:\n    image: r/w@{D}\n"
        ));
        let other = rendered(&format!(
            "stack: s\nservices:\n  api:\n    image: r/w@{D}\n"
        ));
        // Nothing listens there: any Engine call would fail with another error.
        let docker = bollard::Docker::connect_with_http(
            "http://127.0.0.1:9",
            1,
            bollard::API_DEFAULT_VERSION,
        )
        .unwrap();
        let progress = super::progress::Progress::new();
        let release = crate::plan::plan(&bg, &Default::default());
        for (p, d, want) in [
            (&release, &plain, "`web` is not a blue/green service"),
            (
                &release,
                &other,
                "service `web` of stack `s` is not desired",
            ),
        ] {
            let err = super::apply(&docker, p, d, &Default::default(), &progress)
                .await
                .unwrap_err();
            assert!(
                matches!(&err, ApplyError::PlanMismatch { what } if what == want),
                "{err}"
            );
        }
    }

    /// Preflight returns typed problems; the error lists them in the layout it always had (a
    /// block per problem, its hint indented under it).
    #[test]
    fn preflight_problems_are_typed_and_listed_with_their_hints() {
        let problems = [
            Problem::EnvFile(super::preflight::EnvProblem {
                path: "/etc/app.env".into(),
                text: "env file /etc/app.env (service `web` in stacks/a.yaml) cannot be read: No such file or directory (os error 2)\n  hint: create it on this host".into(),
            }),
            Problem::BindSourceMissing {
                container: "a-web".into(),
                path: "/srv/media".into(),
            },
            Problem::PortTaken {
                container: "a-web".into(),
                port: PortMapping::parse("127.0.0.1:8080:80").unwrap(),
                holders: vec![],
            },
            Problem::PortTaken {
                container: "a-web".into(),
                port: PortMapping::parse("53:53/udp").unwrap(),
                holders: vec!["other".into()],
            },
            Problem::LowDisk {
                root: "/var/lib/docker".into(),
                free: 500_000_000,
                floor: 1_000_000_000,
            },
        ];
        insta::assert_snapshot!(ApplyError::Preflight(problems.to_vec()).to_string(), @r#"
        preflight failed; nothing was changed:
          env file /etc/app.env (service `web` in stacks/a.yaml) cannot be read: No such file or directory (os error 2)
            hint: create it on this host
          a-web: bind source /srv/media does not exist
            hint: create it, or add `create: {mode: "0755"}` to the mount so dockhand creates it
          a-web: host port 127.0.0.1:8080/tcp is taken by a process on the host (not a container)
            hint: free the port, or publish another one in the stack file
          a-web: host port 53/udp is taken by container other
            hint: free the port, or publish another one in the stack file
          only 500.0 MB free on the Docker data root /var/lib/docker, below preflight.min_free_disk (1.0 GB)
            hint: free space (docker image prune, old backups), or lower preflight.min_free_disk in dockhand.yaml
        "#);
        assert_eq!(list(&problems[1..2]).lines().count(), 2);
    }
}
