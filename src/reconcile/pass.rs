//! What one pass computes: source snapshot → load → host checks (env files) → render →
//! observe → plan, gathered in a [`PlanContext`]. Reads only; changing the host is
//! [`super::record`].

use crate::apply::progress::Redactor;
use crate::history::{Quarantine, Store, StoreError};
use crate::model::actual::Actual;
use crate::model::DesiredState;
use crate::plan::Plan;
use crate::sources::{Snapshot, Source};
use crate::spec::Desired;

use super::Error;

/// Everything a plan-based verb needs, gathered once. Not `Debug`: `desired` holds the full
/// env values.
pub struct PlanContext {
    pub snapshot: Snapshot,
    pub state: DesiredState,
    pub desired: Desired,
    pub actual: Actual,
    pub plan: Plan,
    /// Env files that cannot be read: apply's preflight refuses on them.
    pub env_problems: Vec<crate::apply::preflight::EnvProblem>,
    /// The host was read with one container list (see [`crate::plan::infer`]), which only
    /// ever stands when it shows nothing to do.
    pub quick: bool,
    /// This host's registry logins, for preflight, the pulls and `status`'s tag check.
    pub registry_auth: crate::observe::auth::RegistryAuth,
}

/// This host's side of every pass: what its owner allows (the host policy, read once when
/// the settings are resolved — a changed policy file takes effect when dockhand is started
/// again) and where dockhand keeps its state (the deploy record, the lock, the marker key).
#[derive(Debug, Clone)]
pub struct Host {
    pub policy: crate::load::host_policy::HostPolicy,
    pub state_dir: std::path::PathBuf,
    /// This host's registry logins (`--registry-auth`, else the docker CLI's config.json).
    pub registry_auth: crate::observe::auth::RegistryAuth,
}

impl Host {
    /// Reads the host policy (`--policy`, else /etc/dockhand/policy.yaml when present, else
    /// the built-in defaults; see [`crate::host::read_policy`]).
    ///
    /// # Errors
    /// [`Error::Policy`] when the policy file cannot be read or is invalid.
    pub fn read(
        policy: Option<&std::path::Path>,
        state_dir: &std::path::Path,
        registry_auth: Option<&std::path::Path>,
    ) -> Result<Host, Error> {
        Ok(Host {
            policy: crate::host::read_policy(policy, state_dir)?,
            state_dir: state_dir.to_path_buf(),
            registry_auth: crate::observe::auth::RegistryAuth::resolve(registry_auth),
        })
    }
}

/// Reads the source (at `commit`, else its own revision) and loads it under the host policy.
///
/// # Errors
/// [`Error::Source`] when it cannot be read, [`Error::Invalid`] (every problem) when it does
/// not load.
pub fn load(
    source: &Source,
    host: &Host,
    commit: Option<&str>,
) -> Result<(Snapshot, DesiredState), Error> {
    let snap = source.read(commit)?;
    match crate::host::load(&snap.files, &host.policy) {
        Ok(d) => Ok((snap, d)),
        Err(diagnostics) => Err(Error::Invalid {
            origin: snap.origin,
            diagnostics,
        }),
    }
}

/// `plan(actual)`, and when it removes networks, again with who else uses those networks
/// (asked only for those: an inspect each), so a network the Engine cannot remove is kept,
/// not retried.
///
/// # Errors
/// [`Error::Engine`] when an inspect fails.
pub async fn plan_with_network_users(
    docker: &bollard::Docker,
    actual: &mut Actual,
    plan: impl Fn(&Actual) -> Plan,
) -> Result<Plan, Error> {
    let first = plan(actual);
    let removing: Vec<String> = first
        .actions
        .iter()
        .filter_map(|a| match a {
            crate::plan::Action::RemoveNetwork { name, .. } => Some(name.clone()),
            _ => None,
        })
        .collect();
    if removing.is_empty() {
        return Ok(first);
    }
    actual.network_users = crate::observe::network_users(docker, actual, &removing).await?;
    Ok(if actual.network_users.is_empty() {
        first
    } else {
        plan(actual)
    })
}

/// The commit, or for files on disk a hash of their contents (`worktree:<16 hex>`): what
/// quarantine and the deploy record key on.
pub fn revision(snap: &Snapshot) -> String {
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
    /// Connects to the Engine and plans the source's own revision (the read-only verbs).
    ///
    /// # Errors
    /// As [`PlanContext::build`], and [`Error::Engine`] when the Engine cannot be reached.
    pub async fn connect_and_build(source: &Source, host: &Host) -> Result<PlanContext, Error> {
        let docker = crate::observe::connect().await?;
        PlanContext::build(source, host, None, &docker, None).await
    }

    /// Plans `source` at `commit` (else its own revision) against the host.
    ///
    /// `quick_at`: a revision the caller found in sync after a full read of the host; at that
    /// revision the pass first tries the one-list-call read, which only stands when it shows
    /// nothing to do. The agent keeps one Engine client, as connecting asks the Engine's
    /// `/version` (several ms, a third of a no-op pass).
    ///
    /// # Errors
    /// [`Error::Source`], [`Error::Invalid`], [`Error::Engine`] (reading the host).
    pub async fn build(
        source: &Source,
        host: &Host,
        commit: Option<&str>,
        docker: &bollard::Docker,
        quick_at: Option<&str>,
    ) -> Result<PlanContext, Error> {
        let (snapshot, state) = load(source, host, commit)?;
        let key = crate::history::marker_key(&host.state_dir)?;
        let (facts, env_errors) = crate::host::facts(&state, key);
        let env_problems: Vec<crate::apply::preflight::EnvProblem> = env_errors
            .iter()
            .map(|e| crate::apply::preflight::EnvProblem {
                path: e.path.clone(),
                text: e.to_string(),
            })
            .collect();
        for p in &env_problems {
            tracing::warn!("{}", p.text);
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
            read = crate::plan::infer::from_containers(&desired, managed)
                .map(|actual| (crate::plan::plan(&desired, &actual), actual))
                .filter(|(plan, _)| plan.is_empty());
        }
        let quick = read.is_some();
        let (plan, actual) = match read {
            Some(read) => read,
            None => {
                let mut actual =
                    crate::observe::observe(docker, &desired.project, &names, &desired.marker_key)
                        .await?;
                let plan = plan_with_network_users(docker, &mut actual, |a| {
                    crate::plan::plan(&desired, a)
                })
                .await?;
                (plan, actual)
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
            registry_auth: host.registry_auth.clone(),
        })
    }

    /// The plan for the source's head, or, while a rollback holds (see [`crate::history::Hold`])
    /// and the head has not moved since, for the held revision. A head that moved ends the
    /// hold; the returned note says so. The caller holds the apply lock.
    ///
    /// # Errors
    /// As [`PlanContext::build`], and [`Error::Store`] reading or ending the hold.
    pub async fn build_held(
        source: &Source,
        host: &Host,
        store: &Store,
        docker: &bollard::Docker,
        quick_at: Option<&str>,
    ) -> Result<(PlanContext, Option<String>), Error> {
        let head = PlanContext::build(source, host, None, docker, quick_at).await?;
        let project = head.desired.project.clone();
        let Some(hold) = store.hold(&project)? else {
            return Ok((head, None));
        };
        if head.snapshot.commit.as_deref() != Some(hold.source_at.as_str()) {
            store.release_hold(&project)?;
            let note = format!(
                "the source moved to {}: the rollback hold on {} ended",
                super::short(&head.revision()),
                super::short(&hold.revision)
            );
            return Ok((head, Some(note)));
        }
        let held = PlanContext::build(source, host, Some(&hold.revision), docker, None).await?;
        Ok((held, None))
    }

    /// See [`revision`].
    pub fn revision(&self) -> String {
        revision(&self.snapshot)
    }

    pub fn apply_options(&self, preflight_only: bool) -> crate::apply::ApplyOptions {
        crate::apply::ApplyOptions {
            checks: crate::apply::preflight::Checks {
                env_problems: self.env_problems.clone(),
                min_free_disk: crate::model::parse_size(&self.state.config.preflight.min_free_disk),
                registry_auth: self.registry_auth.clone(),
            },
            preflight_only,
        }
    }

    /// Masks every env value (inline and from env files) in anything recorded or printed.
    pub fn redactor(&self) -> Redactor {
        Redactor::new(
            self.desired
                .containers
                .iter()
                .flat_map(|c| c.spec.env.values().cloned())
                .chain(crate::host::env_file_values(&self.state)),
        )
    }

    /// The quarantine entry of this revision, if its release failed before.
    ///
    /// # Errors
    /// The store cannot be read.
    pub fn quarantine(&self, store: &Store) -> Result<Option<Quarantine>, StoreError> {
        store.quarantined(&self.desired.project, &self.revision())
    }
}

impl PlanContext {
    /// Takes this revision's quarantined services (and their dependents) out of the plan;
    /// returns the quarantine when it refuses the plan instead: it holds the whole revision
    /// (recorded by an earlier dockhand), or nothing else is left to do. The plan is then
    /// left as it was, to be shown. `dockhand apply --retry` and its agent pass do not call
    /// this.
    ///
    /// # Errors
    /// The store cannot be read.
    pub fn scope_quarantine(&mut self, store: &Store) -> Result<Option<Quarantine>, StoreError> {
        let Some(q) = self.quarantine(store)? else {
            return Ok(None);
        };
        if q.services.is_empty() {
            return Ok(Some(q));
        }
        let blocked = q
            .services
            .iter()
            .map(|s| {
                let why = format!(
                    "quarantined: it failed in deploy #{}: {}\n  hint: commit a fix, or `dockhand apply --retry` to try it again",
                    s.deploy_id,
                    s.reason.lines().next().unwrap_or_default()
                );
                ((s.stack.clone(), s.service.clone()), why)
            })
            .collect();
        let mut scoped = self.plan.clone();
        scoped.skip_quarantined(&self.desired, &self.actual, &blocked);
        if scoped.is_empty() && !self.plan.is_empty() {
            return Ok(Some(q));
        }
        self.plan = scoped;
        Ok(None)
    }
}

impl From<Quarantine> for Error {
    fn from(q: Quarantine) -> Error {
        Error::Quarantined {
            revision: q.revision,
            deploy_id: q.deploy_id,
            at_ms: q.at_ms,
            reason: q.reason,
            services: q
                .services
                .iter()
                .map(|s| format!("{}/{}", s.stack, s.service))
                .collect(),
        }
    }
}
