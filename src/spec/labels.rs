//! The labels that record dockhand's ownership of a Docker object. Labels cannot be changed on
//! an existing container (moby #21721), so any change to them means a new container.

use std::collections::BTreeMap;

use super::{ContainerSpec, MarkerKey};

pub const MANAGED: &str = "dockhand.managed";
pub const PROJECT: &str = "dockhand.project";
pub const STACK: &str = "dockhand.stack";
pub const SERVICE: &str = "dockhand.service";
pub const COLOR: &str = "dockhand.color";
pub const SPEC: &str = "dockhand.spec";
pub const SPEC_DOC: &str = "dockhand.spec-doc";
pub const COMMIT: &str = "dockhand.commit";
/// `hook` on the one-off containers release hooks run in (removed after each step),
/// `maintenance` on a service's maintenance container (up only during a release).
pub const ROLE: &str = "dockhand.role";
pub const ROLE_MAINTENANCE: &str = "maintenance";

/// The label filters that select exactly the objects this project owns.
pub fn project_filters(project: &str) -> Vec<String> {
    vec![format!("{MANAGED}=true"), format!("{PROJECT}={project}")]
}

/// All labels of a managed container: the spec's own labels plus ownership, spec hash and the
/// redacted spec document.
pub fn ownership(
    project: &str,
    stack: &str,
    service: &str,
    spec: &ContainerSpec,
    commit: Option<&str>,
    key: &MarkerKey,
) -> BTreeMap<String, String> {
    let mut labels = spec.labels.clone();
    labels.insert(MANAGED.into(), "true".into());
    labels.insert(PROJECT.into(), project.into());
    labels.insert(STACK.into(), stack.into());
    labels.insert(SERVICE.into(), service.into());
    labels.insert(SPEC.into(), spec.hash(key));
    labels.insert(
        SPEC_DOC.into(),
        serde_json::to_string(&spec.redacted(key)).unwrap_or_default(),
    );
    if let Some(c) = commit {
        labels.insert(COMMIT.into(), c.into());
    }
    labels
}

/// Ownership labels of a service's maintenance container: managed and scoped like the service,
/// with `dockhand.role=maintenance` so that observe and plan tell it from the service.
pub fn maintenance(project: &str, stack: &str, service: &str) -> BTreeMap<String, String> {
    let mut l = owned_object(project, stack);
    l.insert(SERVICE.into(), service.into());
    l.insert(ROLE.into(), ROLE_MAINTENANCE.into());
    l
}

/// Labels of a network or volume dockhand owns.
pub fn owned_object(project: &str, stack: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (MANAGED.to_string(), "true".to_string()),
        (PROJECT.to_string(), project.to_string()),
        (STACK.to_string(), stack.to_string()),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::ContainerSpec;

    fn spec(env: &[(&str, &str)]) -> ContainerSpec {
        ContainerSpec {
            image: "r/x@sha256:00".into(),
            command: None,
            entrypoint: None,
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            env_file: None,
            ports: vec![],
            networks: vec![],
            mounts: vec![],
            restart: crate::model::RestartPolicy::UnlessStopped,
            healthcheck: None,
            labels: BTreeMap::from([("a".into(), "1".into())]),
            user: None,
            working_dir: None,
            stop_grace_secs: None,
            stop_signal: None,
            runtime: Default::default(),
            host: Default::default(),
        }
    }

    #[test]
    fn ownership_labels_hold_hash_and_redacted_doc_never_secret_values() {
        let s = spec(&[("DB_PASSWORD", "hunter2-secret")]);
        let k = MarkerKey::new([7; 32]);
        let labels = ownership("default", "demo", "web", &s, Some("abc"), &k);
        assert_eq!(labels[MANAGED], "true");
        assert_eq!(labels[STACK], "demo");
        assert_eq!(labels[PROJECT], "default");
        assert_eq!(labels[SERVICE], "web");
        assert_eq!(labels[COMMIT], "abc");
        assert_eq!(labels["a"], "1");
        assert_eq!(labels[SPEC], s.hash(&k));
        assert!(labels.values().all(|v| !v.contains("hunter2-secret")));
        let doc: ContainerSpec = serde_json::from_str(&labels[SPEC_DOC]).unwrap();
        assert_eq!(doc, s.redacted(&k));
    }

    #[test]
    fn hash_changes_with_env_values_and_is_stable_under_map_order() {
        let a = spec(&[("A", "1"), ("B", "2")]);
        let b = spec(&[("B", "2"), ("A", "1")]);
        let c = spec(&[("A", "1"), ("B", "3")]);
        let k = MarkerKey::default();
        assert_eq!(a.hash(&k), b.hash(&k));
        assert_ne!(a.hash(&k), c.hash(&k));
    }
}
