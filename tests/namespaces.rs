//! Issue 18 item 9: projects are namespaces. Two projects with the same stack file on one
//! real Engine (`names: project`), another project's objects on wanted names (named, kept),
//! and the upgrade of a host deployed with the names every earlier version used.

mod support;

use support::{docker, docker_ok, Run, Stack};

/// One stack file with a service on an owned network and an owned volume, and one beside it.
fn shop(stack: &str, img: &str) -> String {
    format!(
        "stack: {stack}\nnetworks:\n  back: {{}}\nvolumes:\n  data: {{}}\nservices:\n  db:\n    image: {img}\n    networks: [back]\n    mounts: [{{volume: data, target: /data}}]\n  web:\n    image: {img}\n    networks: [back]\n    depends_on: [db]\n"
    )
}

/// A repository deploying one stack file as `stacks/shop.yaml` under project `project`, with the
/// given `names:` (None: the key is absent, as in every earlier dockhand.yaml). The stack file
/// names a test's [`Stack`], whose guard removes what it deploys.
struct Repo {
    files: Stack,
}

impl Repo {
    fn new(project: &str, names: Option<&str>, stack_file: &str) -> Repo {
        let r = Repo {
            files: Stack::new("nsrepo"),
        };
        r.write(project, names, stack_file);
        r
    }

    fn write(&self, project: &str, names: Option<&str>, stack_file: &str) {
        let p = self.files.path();
        let names = names.map_or_else(String::new, |n| format!("names: {n}\n"));
        std::fs::write(
            p.join("dockhand.yaml"),
            format!("version: 1\nproject: {project}\n{names}"),
        )
        .expect("write");
        std::fs::write(p.join("stacks/shop.yaml"), stack_file).expect("write");
    }

    fn dockhand(&self, args: &[&str]) -> Run {
        self.files.dockhand(args)
    }

    /// [`Repo::dockhand`] with another dockhand binary (an earlier version).
    fn dockhand_with(&self, bin: &std::path::Path, args: &[&str]) -> Run {
        let out = std::process::Command::new(bin)
            .args(self.files.with_source(args))
            .stdin(std::process::Stdio::null())
            .output()
            .expect("running the base binary");
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

fn id(name: &str) -> String {
    docker_ok(&["inspect", "--format", "{{.Id}}", name])
}

fn label(kind: &str, name: &str, key: &str) -> String {
    let labels = if kind == "container" {
        ".Config.Labels"
    } else {
        ".Labels"
    };
    docker_ok(&[
        kind,
        "inspect",
        "--format",
        &format!("{{{{index {labels} \"{key}\"}}}}"),
        name,
    ])
}

fn ids(names: &[String]) -> Vec<String> {
    names.iter().map(|n| id(n)).collect()
}

/// Two projects with identical stack files (`names: project`) converge side by side on one
/// Engine; applying one never touches the other's containers, and their volumes are apart.
#[test]
fn two_projects_with_the_same_stack_file_coexist() {
    let s = Stack::new("nsboth");
    let img = s.image("v1");
    let stack = s.name.clone();
    let (pa, pb) = (support::unique("staging"), support::unique("prod"));
    let a = Repo::new(&pa, Some("project"), &shop(&stack, &img));
    let b = Repo::new(&pb, Some("project"), &shop(&stack, &img));
    let names = |p: &str| -> Vec<String> {
        ["db", "web"]
            .iter()
            .map(|svc| format!("{p}-{stack}-{svc}"))
            .collect()
    };

    let r = a.dockhand(&["apply", "--yes"]);
    assert_eq!(r.code, 0, "{r:?}");
    let a_ids = ids(&names(&pa));
    let r = b.dockhand(&["apply", "--yes"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stdout
            .contains("Plan: 4 to create, 0 to recreate, 0 to start, 0 to remove."),
        "b creates its own network, volume and two containers: {r:?}"
    );
    let b_ids = ids(&names(&pb));
    assert_eq!(
        ids(&names(&pa)),
        a_ids,
        "applying b left a's containers alone"
    );

    // Both converged: each plan is empty, and applying a again changes nothing of b's.
    for repo in [&a, &b] {
        let r = repo.dockhand(&["plan", "--detailed-exitcode"]);
        assert_eq!(r.code, 0, "{r:?}");
        assert!(r.stdout.contains("No changes."), "{r:?}");
    }
    assert_eq!(a.dockhand(&["apply", "--yes"]).code, 0);
    assert_eq!(
        ids(&names(&pb)),
        b_ids,
        "applying a left b's containers alone"
    );
    assert_eq!(ids(&names(&pa)), a_ids);

    // Each project's network and volume, labelled with it.
    for p in [&pa, &pb] {
        assert_eq!(
            label("network", &format!("{p}_{stack}_back"), "dockhand.project"),
            *p
        );
        assert_eq!(
            label("volume", &format!("{p}_{stack}_data"), "dockhand.project"),
            *p
        );
        let nets = docker_ok(&[
            "inspect",
            "--format",
            "{{range $k, $v := .NetworkSettings.Networks}}{{$k}} {{end}}",
            &format!("{p}-{stack}-web"),
        ]);
        assert_eq!(nets, format!("{p}_{stack}_back"));
    }
    // Data written by a's db is not in b's volume.
    docker_ok(&[
        "exec",
        &format!("{pa}-{stack}-db"),
        "sh",
        "-c",
        "echo staging > /data/owner",
    ]);
    let seen = docker(&[
        "exec",
        &format!("{pb}-{stack}-db"),
        "test",
        "-e",
        "/data/owner",
    ]);
    assert!(!seen.status.success(), "b's volume is its own");

    // One host is served by one project: the same route in both is the conflict it is, named.
    let host = format!("{stack}.localhost");
    let routed = shop(&stack, &img).replace(
        "    depends_on: [db]\n",
        &format!("    depends_on: [db]\n    route: {{host: {host}, port: 8080}}\n"),
    );
    a.write(&pa, Some("project"), &routed);
    assert_eq!(a.dockhand(&["apply", "--yes"]).code, 0);
    let a_ids = ids(&names(&pa));
    b.write(&pb, Some("project"), &routed);
    let r = b.dockhand(&["plan", "--detailed-exitcode"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stdout.contains(&format!(
            "host `{host}` is already routed by container `{pa}-{stack}-web` of dockhand project `{pa}`"
        )),
        "{r:?}"
    );
    assert_eq!(b.dockhand(&["apply", "--yes"]).code, 1);
    assert_eq!(ids(&names(&pb)), b_ids, "a refused apply left b as it was");

    // A service removed from b is removed from b only.
    let without_web = shop(&stack, &img);
    let without_web = &without_web[..without_web.find("  web:").expect("web")];
    b.write(&pb, Some("project"), without_web);
    let r = b.dockhand(&["apply", "--yes"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        !docker(&["inspect", &format!("{pb}-{stack}-web")])
            .status
            .success(),
        "b's web removed"
    );
    assert_eq!(
        ids(&names(&pa)),
        a_ids,
        "b's removal left a's containers alone"
    );
}

/// Under the names every earlier version used, a second project with the same stack file
/// finds the first one's container, network and volume on its names: each is named as
/// project `A`'s, nothing suggests removing or sharing it, and nothing is touched; with
/// `names: project` the second project deploys beside it.
#[test]
fn another_projects_objects_on_wanted_names_are_named_and_kept() {
    let s = Stack::new("nsclash");
    let img = s.image("v1");
    let stack = s.name.clone();
    let (pa, pb) = (support::unique("staging"), support::unique("prod"));
    let a = Repo::new(&pa, None, &shop(&stack, &img));
    assert_eq!(a.dockhand(&["apply", "--yes"]).code, 0);
    let theirs: Vec<String> = ["db", "web"]
        .iter()
        .map(|svc| format!("{stack}-{svc}"))
        .collect();
    let their_ids = ids(&theirs);

    let b = Repo::new(&pb, None, &shop(&stack, &img));
    let r = b.dockhand(&["plan", "--detailed-exitcode"]);
    assert_eq!(r.code, 1, "{r:?}");
    for what in [
        format!("network `{stack}_back` is owned by dockhand project `{pa}`"),
        format!("volume `{stack}_data` is owned by dockhand project `{pa}`"),
        format!("container `{stack}-db`"),
        format!("container `{stack}-web`"),
    ] {
        assert!(r.stdout.contains(&what), "missing {what:?}: {r:?}");
    }
    assert_eq!(
        r.stdout
            .matches(&format!("owned by dockhand project `{pa}`"))
            .count(),
        4,
        "{r:?}"
    );
    for never in [
        "docker rm",
        "external",
        "not created by dockhand",
        "does not own",
    ] {
        assert!(!r.stdout.contains(never), "{never:?} in {r:?}");
    }
    assert!(r.stdout.contains("names: project"), "{r:?}");
    let j = b.dockhand(&["plan", "--json"]);
    let doc: serde_json::Value = serde_json::from_str(&j.stdout).expect("plan --json");
    let conflicts = doc["conflicts"].as_array().expect("conflicts");
    assert_eq!(conflicts.len(), 4, "{j:?}");
    assert!(
        conflicts
            .iter()
            .all(|c| c["kind"] == "other_project" && c["project"] == pa.as_str()),
        "{j:?}"
    );
    let r = b.dockhand(&["apply", "--yes"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr
            .contains("4 conflict(s) with objects of another dockhand project"),
        "{r:?}"
    );
    assert_eq!(ids(&theirs), their_ids, "a's containers untouched");

    // As its own namespace, b deploys beside a.
    b.write(&pb, Some("project"), &shop(&stack, &img));
    let r = b.dockhand(&["apply", "--yes"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(
        label(
            "container",
            &format!("{pb}-{stack}-web"),
            "dockhand.project"
        ),
        pb
    );
    assert_eq!(ids(&theirs), their_ids, "a's containers untouched");
    let r = a.dockhand(&["plan", "--detailed-exitcode"]);
    assert_eq!(r.code, 0, "a is still converged: {r:?}");
}

/// Upgrade: a host deployed with the names every earlier version used (by the binary in
/// `DOCKHAND_BASE_BIN` when set, e.g. main's build, else by this one from a dockhand.yaml
/// without `names:`) keeps every container (same ids) under this version. Switching the
/// deployed project to `names: project` is refused while its volume holds the data under the
/// old name; keeping the volume by `name:` moves the containers and keeps the data.
#[test]
fn a_host_deployed_with_earlier_names_upgrades_without_recreating() {
    let s = Stack::new("nsupgrade");
    let img = s.image("v1");
    let stack = s.name.clone();
    let project = support::unique("prod");
    let repo = Repo::new(&project, None, &shop(&stack, &img));
    let base = std::env::var_os("DOCKHAND_BASE_BIN")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(support::bin);
    let r = repo.dockhand_with(&base, &["apply", "--yes"]);
    assert_eq!(r.code, 0, "{r:?}");
    let names: Vec<String> = ["db", "web"]
        .iter()
        .map(|svc| format!("{stack}-{svc}"))
        .collect();
    let before = ids(&names);
    docker_ok(&["exec", &names[0], "sh", "-c", "echo kept > /data/proof"]);

    // This version, same files, then `names: stack` written out: nothing to do.
    for names_key in [None, Some("stack")] {
        repo.write(&project, names_key, &shop(&stack, &img));
        let r = repo.dockhand(&["plan", "--detailed-exitcode"]);
        assert_eq!(r.code, 0, "{names_key:?}: {r:?}");
        assert!(r.stdout.contains("No changes."), "{r:?}");
        assert_eq!(repo.dockhand(&["apply", "--yes"]).code, 0);
        assert_eq!(ids(&names), before, "no container recreated");
    }

    // `names: project` on the deployed project: the data is in `<stack>_data`; refused.
    repo.write(&project, Some("project"), &shop(&stack, &img));
    let r = repo.dockhand(&["plan", "--detailed-exitcode"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stdout.contains(&format!(
            "this project's volume `{stack}_data` of stack `{stack}` holds its data"
        )),
        "{r:?}"
    );
    assert!(r.stdout.contains(&format!("`name: {stack}_data`")), "{r:?}");
    let r = repo.dockhand(&["apply", "--yes"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert_eq!(ids(&names), before, "a refused switch touches nothing");
    let vol = docker(&["volume", "inspect", &format!("{project}_{stack}_data")]);
    assert!(!vol.status.success(), "no empty volume was created");

    // Keeping the volume by name: containers move to the project's names, data stays.
    let kept = shop(&stack, &img).replace(
        "volumes:\n  data: {}",
        &format!("volumes:\n  data: {{name: {stack}_data}}"),
    );
    repo.write(&project, Some("project"), &kept);
    let r = repo.dockhand(&["apply", "--yes"]);
    assert_eq!(r.code, 0, "{r:?}");
    let db = format!("{project}-{stack}-db");
    assert_eq!(
        docker_ok(&["exec", &db, "cat", "/data/proof"]),
        "kept",
        "the data moved with the service"
    );
    for old in &names {
        assert!(!docker(&["inspect", old]).status.success(), "{old} removed");
    }
    let r = repo.dockhand(&["plan", "--detailed-exitcode"]);
    assert_eq!(r.code, 0, "{r:?}");
}

// Without Docker: the names a project derives and what the planner makes of them.

const DIGEST: &str = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

fn rendered(names: Option<&str>) -> dockhand::spec::Desired {
    use dockhand::load::{load, SourceFile};
    let names = names.map_or_else(String::new, |n| format!("names: {n}\n"));
    let img = format!("127.0.0.1:5000/shop/app:1@{DIGEST}");
    let files = [
        SourceFile {
            path: "dockhand.yaml".into(),
            text: format!("version: 1\nproject: staging\n{names}"),
        },
        SourceFile {
            path: "stacks/shop.yaml".into(),
            text: shop("shop", &img).replace(
                "    depends_on: [db]\n",
                "    depends_on: [db]\n    route: {host: shop.localhost, port: 8080}\n",
            ),
        },
    ];
    let state = load(&files).unwrap_or_else(|e| panic!("invalid:\n{e}"));
    dockhand::spec::render(&state, &Default::default(), None)
}

#[test]
fn names_project_prefixes_every_derived_name_and_stack_keeps_the_earlier_ones() {
    let ns = rendered(Some("project"));
    let web = ns.containers.iter().find(|c| c.service == "web").unwrap();
    assert_eq!(web.name, "staging-shop-web");
    assert_eq!(web.depends_on, ["staging-shop-db"]);
    assert_eq!(web.spec.networks, ["staging_shop_back"]);
    assert_eq!(ns.networks[0].name, "staging_shop_back");
    assert_eq!(ns.volumes[0].name, "staging_shop_data");
    assert_eq!(ns.volumes[0].other_spelling.as_deref(), Some("shop_data"));
    let db = ns.containers.iter().find(|c| c.service == "db").unwrap();
    assert!(
        serde_json::to_string(&db.spec.mounts)
            .unwrap()
            .contains("\"staging_shop_data\""),
        "{:?}",
        db.spec.mounts
    );
    // Router names carried the project already; `names:` does not change them.
    assert!(web
        .labels
        .contains_key("traefik.http.routers.staging__shop__web.rule"));

    // Absent and `names: stack` are the earlier names, with the same spec hashes.
    let old = rendered(None);
    let stack = rendered(Some("stack"));
    assert_eq!(old, stack);
    let web = old.containers.iter().find(|c| c.service == "web").unwrap();
    assert_eq!(web.name, "shop-web");
    assert_eq!(old.volumes[0].name, "shop_data");
    assert_eq!(
        old.volumes[0].other_spelling.as_deref(),
        Some("staging_shop_data")
    );
    assert!(web
        .labels
        .contains_key("traefik.http.routers.staging__shop__web.rule"));
}

#[test]
fn planner_names_the_owner_of_objects_and_never_starts_on_an_empty_volume() {
    use dockhand::model::actual::{Actual, ActualObject};
    use dockhand::plan::{plan, ConflictKind};
    let object = |name: &str, stack: Option<&str>, other: Option<&str>| ActualObject {
        name: name.into(),
        owner_stack: stack.map(Into::into),
        other_project: other.map(Into::into),
    };

    // The project's data under the earlier name: no empty volume, a conflict saying where.
    let ns = rendered(Some("project"));
    let host = Actual {
        volumes: vec![object("shop_data", Some("shop"), None)],
        ..Actual::default()
    };
    let p = plan(&ns, &host);
    assert!(
        !p.actions
            .iter()
            .any(|a| matches!(a, dockhand::plan::Action::CreateVolume { .. })),
        "{:?}",
        p.actions
    );
    let c = &p.conflicts[0];
    assert_eq!(
        c.kind,
        ConflictKind::DataElsewhere {
            volume: "shop_data".into()
        }
    );
    assert!(c.hint.contains("`name: shop_data`"), "{}", c.hint);
    // A volume of that name that is not this project's is not its data.
    for other in [
        object("shop_data", None, Some("prod")),
        object("shop_data", None, None),
    ] {
        let host = Actual {
            volumes: vec![other],
            ..Actual::default()
        };
        assert!(plan(&ns, &host).conflicts.is_empty());
    }

    // Another project's network and volume on wanted names: named, kept, never shared.
    let old = rendered(None);
    let host = Actual {
        networks: vec![object("shop_back", None, Some("prod"))],
        volumes: vec![object("shop_data", None, Some("prod"))],
        ..Actual::default()
    };
    let p = plan(&old, &host);
    assert_eq!(p.conflicts.len(), 2, "{:?}", p.conflicts);
    for c in &p.conflicts {
        assert_eq!(
            c.kind,
            ConflictKind::OtherProject {
                project: "prod".into()
            }
        );
        assert!(
            c.message.contains("owned by dockhand project `prod`"),
            "{}",
            c.message
        );
        for never in ["external", "docker", "remove"] {
            assert!(!c.hint.contains(never), "{never}: {}", c.hint);
        }
    }
    assert!(!p.actions.iter().any(|a| matches!(
        a,
        dockhand::plan::Action::CreateNetwork { .. } | dockhand::plan::Action::CreateVolume { .. }
    )));
}
