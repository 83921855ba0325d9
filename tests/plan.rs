//! The planner, without Docker: one data-driven `check` helper renders the plan for a desired
//! state and a host, and compares it with a reviewed snapshot. Plus the properties every plan
//! must have: applying it converges, and planning is deterministic.

use dockhand::load::{load, SourceFile};
use dockhand::model::actual::{Actual, ActualContainer, ActualObject, RunState};
use dockhand::model::Color;
use dockhand::plan::simulate::{converged, effect};
use dockhand::plan::{infer, plan, render, Action, ConflictKind, Until};
use dockhand::spec::{labels, render as render_spec, Desired};
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;

const A: &str = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const B: &str = "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

/// A three-tier stack: db ← api ← web, two owned networks, one owned volume.
fn shop(image_digest: &str, api_env: &str) -> String {
    format!(
        r#"stack: shop
networks: {{backend: {{}}, proxy: {{}}}}
volumes: {{data: {{}}}}
services:
  web:
    image: 127.0.0.1:5000/shop/web:1.0@{A}
    ports: ["127.0.0.1:8080:80"]
    networks: [proxy, backend]
    route: {{host: shop.localhost, port: 80}}
    depends_on: [api]
  api:
    image: 127.0.0.1:5000/shop/api:2.1@{image_digest}
    env: {{MODE: production, DB_PASSWORD: {api_env}}}
    networks: [backend]
    depends_on: [db]
  db:
    image: 127.0.0.1:5000/shop/db:16@{A}
    networks: [backend]
    mounts: [{{volume: data, target: /var/lib/db}}]
"#
    )
}

fn desired(stacks: &[&str]) -> Desired {
    let mut files = vec![SourceFile {
        path: "dockhand.yaml".into(),
        text: "version: 1\nproject: plantest\n".into(),
    }];
    for (i, text) in stacks.iter().enumerate() {
        files.push(SourceFile {
            path: format!("stacks/s{i}.yaml"),
            text: text.to_string(),
        });
    }
    let state = load(&files).unwrap_or_else(|e| panic!("test desired state is invalid:\n{e}"));
    render_spec(&state, &Default::default(), Some("c0ffee"))
}

fn container<'a>(actual: &'a mut Actual, name: &str) -> &'a mut ActualContainer {
    actual
        .managed
        .iter_mut()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no container {name} in the simulated host"))
}

/// Plans `desired` against `actual`, snapshots the detailed text, and checks that the plan's
/// effect converges (conflicts aside, which apply refuses).
fn check(name: &str, desired: &Desired, actual: &Actual) {
    let p = plan(desired, actual);
    insta::assert_snapshot!(name, render::text(&p, true));
    let after = effect(&p, desired, actual);
    let again = plan(desired, &after);
    assert!(
        again.actions.is_empty(),
        "{name}: plan after apply is not empty:\n{}",
        render::text(&again, true)
    );
}

#[test]
fn planner_cases() {
    let base = desired(&[&shop(A, "s3cret-one")]);
    let host = converged(&base);

    check(
        "empty_host_creates_in_dependency_order",
        &base,
        &Actual::default(),
    );
    check("converged_host_has_no_changes", &base, &host);

    let changed_env = desired(&[&shop(A, "s3cret-two")]);
    check(
        "env_change_recreates_only_that_service",
        &changed_env,
        &host,
    );

    let new_digest = desired(&[&shop(B, "s3cret-one")]);
    check("new_digest_recreates_with_image_diff", &new_digest, &host);

    let mut stopped = host.clone();
    let api = container(&mut stopped, "shop-api");
    api.state = RunState::Exited;
    api.status = "Exited (137) 5 seconds ago".into();
    check("stopped_container_is_started", &base, &stopped);

    let without_web = desired(&[&shop(A, "s3cret-one").replace(
        "  web:\n    image: 127.0.0.1:5000/shop/web:1.0@sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n    ports: [\"127.0.0.1:8080:80\"]\n    networks: [proxy, backend]\n    route: {host: shop.localhost, port: 80}\n    depends_on: [api]\n",
        "",
    )]);
    assert_eq!(
        without_web.containers.len(),
        2,
        "the replace above must drop web"
    );
    check("removed_service_removes_its_container", &without_web, &host);

    let other = desired(&["stack: other\nservices:\n  x:\n    image: r/x@sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n"]);
    check(
        "removed_stack_removes_containers_and_networks_keeps_volumes",
        &other,
        &host,
    );

    let mut squatted = Actual::default();
    squatted.foreign.push(ActualContainer {
        id: "f00".into(),
        name: "shop-db".into(),
        state: RunState::Running,
        status: "Up 2 hours".into(),
        image: "postgres:16".into(),
        labels: Default::default(),
        attached: Default::default(),
        inspected: None,
    });
    squatted.networks.push(ActualObject {
        name: "shop_proxy".into(),
        owner_stack: None,
        other_project: None,
    });
    check(
        "foreign_objects_are_conflicts_not_touched",
        &base,
        &squatted,
    );

    let mut hand_swapped = host.clone();
    container(&mut hand_swapped, "shop-web").image = "127.0.0.1:5000/shop/web:dev".into();
    check(
        "same_spec_but_other_running_image_recreates",
        &base,
        &hand_swapped,
    );

    let mut old_version = host.clone();
    let db = container(&mut old_version, "shop-db");
    db.labels.remove(labels::SPEC_DOC);
    db.labels.insert(labels::SPEC.into(), "0".repeat(64));
    check(
        "container_from_another_dockhand_version_recreates",
        &base,
        &old_version,
    );

    // A recreate cut short (Engine restarted, dockhand killed) leaves the previous container
    // set aside: a service with after_start hooks is recreated so they run to success, one
    // without is only tidied up.
    let hooked = desired(&["stack: h\nservices:\n  app:\n    image: r/x@sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n    hooks: {after_start: [[sh, -c, warm-caches]]}\n  plain:\n    image: r/x@sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n"]);
    let mut interrupted = converged(&hooked);
    for name in ["h-app", "h-plain"] {
        let mut aside = container(&mut interrupted, name).clone();
        aside.name = format!("{name}-dockhand-old");
        aside.state = RunState::Exited;
        aside.status = "Exited (137) 1 minute ago".into();
        interrupted.managed.push(aside);
    }
    check(
        "interrupted_recreate_runs_after_start_hooks_again",
        &hooked,
        &interrupted,
    );

    let external = desired(&["stack: ext\nnetworks: {edge: {external: true, name: traefik}}\nvolumes: {old: {external: true}}\nservices:\n  x:\n    image: r/x@sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n    networks: [edge]\n    mounts: [{volume: old, target: /old}]\n"]);
    check(
        "missing_external_objects_are_conflicts",
        &external,
        &Actual::default(),
    );
}

fn web(digest: &str, active: Option<&str>, keep_idle: &str) -> String {
    let active = active.map(|a| format!(", active: {a}")).unwrap_or_default();
    format!(
        "stack: bg\nservices:\n  web:\n    image: 127.0.0.1:5000/bg/web:1.0@{digest}\n    route: {{host: bg.localhost, port: 8080}}\n    health: {{cmd: [wget, -q, -O, /dev/null, 'http://127.0.0.1:8080/readyz'], interval: 1s}}\n    release: {{strategy: blue-green, keep_idle: {keep_idle}{active}}}\n"
    )
}

#[test]
fn blue_green_cases() {
    let v1 = desired(&[&web(A, None, "stopped")]);
    let v2 = desired(&[&web(B, None, "stopped")]);
    check("bg_first_release_goes_to_blue", &v1, &Actual::default());
    let on_blue = converged(&v1);
    check("bg_converged_is_unchanged", &v1, &on_blue);
    check(
        "bg_new_digest_releases_to_green_and_retires_blue",
        &v2,
        &on_blue,
    );

    let on_green = effect(&plan(&v2, &on_blue), &v2, &on_blue);
    check("bg_revert_starts_the_idle_color", &v1, &on_green);

    // Killed after green passed its gate but before blue was retired: both serve.
    let mut both = on_green.clone();
    let blue = container(&mut both, "bg-web-blue");
    blue.state = RunState::Running;
    blue.status = "Up 5 minutes (healthy)".into();
    check("bg_interrupted_swap_retires_the_old_color", &v2, &both);

    // Killed before green passed its gate: blue serves, green runs unhealthy-yet.
    let mut starting = both.clone();
    container(&mut starting, "bg-web-green").status = "Up 1 second (health: starting)".into();
    check("bg_interrupted_before_gate_gates_again", &v2, &starting);

    let pinned = desired(&[&web(A, Some("green"), "removed")]);
    check(
        "bg_active_flip_releases_to_the_pinned_color",
        &pinned,
        &on_blue,
    );
    let pinned_changed = desired(&[&web(B, Some("blue"), "stopped")]);
    check(
        "bg_active_pins_serving_color_whose_spec_changed",
        &pinned_changed,
        &on_blue,
    );
    // Issue 18: the pin is the cause, not an object dockhand does not own.
    let p = plan(&pinned_changed, &on_blue);
    assert_eq!(p.conflicts.len(), 1, "{}", render::text(&p, false));
    assert_eq!(p.conflicts[0].kind, ConflictKind::PinnedActive);
    let summary = dockhand::plan::conflict_summary(&p.conflicts);
    assert_eq!(summary, "1 conflict(s) with a pinned `release.active`");
}

/// Issue 18 review A: a blue/green color changed by hand is put back in place when the Engine
/// allows it, else by a release to the other color; the serving one is never stopped first.
#[test]
fn blue_green_hand_edits_are_put_back_without_stopping_what_serves() {
    use dockhand::plan::drift::Fix;
    use dockhand::plan::ReleaseStep;
    let v1 = desired(&[&web(A, None, "stopped")]);
    let v2 = desired(&[&web(B, None, "stopped")]);
    let on_blue = converged(&v1);

    // A limit on the serving color: a release to green that retires blue.
    let mut limited = on_blue.clone();
    let blue = container(&mut limited, "bg-web-blue");
    let seen = blue.inspected.as_mut().expect("inspected");
    seen.limits.push(("nano_cpus".into(), 200_000_000));
    let p = plan(&v1, &limited);
    match &p.actions[..] {
        [Action::Release {
            container,
            step,
            retire,
            changes,
            ..
        }] => {
            assert_eq!(container, "bg-web-green");
            assert_eq!(*step, ReleaseStep::Create);
            assert_eq!(retire.as_deref(), Some("bg-web-blue"));
            assert_eq!(changes[0].field, "resources (by hand)");
        }
        other => panic!("{other:#?}"),
    }
    let after = effect(&p, &v1, &limited);
    assert!(
        plan(&v1, &after).is_empty(),
        "{}",
        render::text(&plan(&v1, &after), true)
    );
    // Blue now idles with its limit: the next release to it makes a new container.
    let back = desired(&[&web(A, Some("blue"), "stopped")]);
    match &plan(&back, &after).actions[..] {
        [Action::Release {
            container, step, ..
        }] => {
            assert_eq!(container, "bg-web-blue");
            assert_eq!(*step, ReleaseStep::Recreate);
        }
        other => panic!("{other:#?}"),
    }

    // Pinned to the serving color, only the pin can let it go: a conflict, nothing stopped.
    let pinned = desired(&[&web(A, Some("blue"), "stopped")]);
    let p = plan(&pinned, &limited);
    assert!(p.actions.is_empty(), "{}", render::text(&p, true));
    assert_eq!(p.conflicts[0].kind, ConflictKind::PinnedActive);

    // The serving and the idle color renamed: both renamed back, nothing else.
    let mut renamed = effect(&plan(&v2, &on_blue), &v2, &on_blue);
    container(&mut renamed, "bg-web-green").name = "green-by-hand".into();
    container(&mut renamed, "bg-web-blue").name = "blue-by-hand".into();
    let p = plan(&v2, &renamed);
    let fixes: Vec<(&str, &[Fix])> = p
        .actions
        .iter()
        .map(|a| match a {
            Action::Correct {
                container, fixes, ..
            } => (container.as_str(), fixes.as_slice()),
            other => panic!("{other:#?}"),
        })
        .collect();
    let rename = |from: &str| vec![Fix::Rename { from: from.into() }];
    assert_eq!(
        fixes,
        [
            ("bg-web-blue", rename("blue-by-hand").as_slice()),
            ("bg-web-green", rename("green-by-hand").as_slice()),
        ]
    );
    assert!(plan(&v2, &effect(&p, &v2, &renamed)).is_empty());
}

/// Issue 18: a container of another dockhand project holding a wanted name is named as that
/// project's, its removal is never suggested, and the refusal counts conflicts by kind.
#[test]
fn another_projects_container_is_named_and_never_suggested_for_removal() {
    let base = desired(&[&shop(A, "s3cret-one")]);
    let mut host = Actual::default();
    host.foreign.push(ActualContainer {
        id: "f01".into(),
        name: "shop-db".into(),
        state: RunState::Running,
        status: "Up 2 hours".into(),
        image: "postgres:16".into(),
        labels: [
            (labels::MANAGED.to_string(), "true".to_string()),
            (labels::PROJECT.to_string(), "staging".to_string()),
            (labels::STACK.to_string(), "shop".to_string()),
        ]
        .into_iter()
        .collect(),
        attached: Default::default(),
        inspected: None,
    });
    host.networks.push(ActualObject {
        name: "shop_proxy".into(),
        owner_stack: None,
        other_project: None,
    });
    let p = plan(&base, &host);
    let db = p
        .conflicts
        .iter()
        .find(|c| c.name == "shop-db")
        .expect("a conflict for shop-db");
    assert_eq!(
        db.kind,
        ConflictKind::OtherProject {
            project: "staging".into()
        }
    );
    assert!(
        db.message.contains("owned by dockhand project `staging`"),
        "{}",
        db.message
    );
    assert!(
        !db.message.contains("not created by dockhand"),
        "{}",
        db.message
    );
    assert!(!db.hint.contains("docker rm"), "{}", db.hint);
    assert!(!db.hint.contains("remove"), "{}", db.hint);
    let text = render::text(&p, false);
    assert!(!text.contains("docker rm"), "{text}");
    assert_eq!(
        dockhand::plan::conflict_summary(&p.conflicts),
        // In the order the kinds first appear: networks are planned before containers.
        "1 conflict(s) with objects dockhand does not own, 1 with objects of another dockhand project"
    );
    let json: serde_json::Value = serde_json::from_str(&render::json(&p)).unwrap();
    let kinds: Vec<&str> = json["conflicts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["kind"].as_str().unwrap())
        .collect();
    assert!(
        kinds.contains(&"other_project") && kinds.contains(&"not_owned"),
        "{json}"
    );
}

/// A blue/green web with dockhand's own probe, smoke checks, a maintenance page and a
/// migration before the release.
fn guarded_web(digest: &str) -> String {
    format!(
        "stack: bg\nservices:\n  web:\n    image: 127.0.0.1:5000/bg/web:1.0@{digest}\n    route: {{host: bg.localhost, port: 8080}}\n    health: {{cmd: [wget, -q, -O, /dev/null, 'http://127.0.0.1:8080/readyz'], interval: 1s, http: {{port: 8080, path: /readyz, body: '\"ready\": true'}}, tcp: {{port: 8080}}}}\n    release:\n      strategy: blue-green\n      smoke: [{{http: {{port: 8080, path: /health/, status: [200, 503]}}}}, {{cmd: [sh, -c, 'test -f /app/ok']}}]\n      maintenance: {{image: 127.0.0.1:5000/bg/maint:1@{A}}}\n    hooks: {{before: [[python, manage.py, migrate]]}}\n"
    )
}

#[test]
fn guarded_release_cases() {
    let v1 = desired(&[&guarded_web(A)]);
    let v2 = desired(&[&guarded_web(B)]);
    let on_blue = converged(&v1);
    check(
        "bg_guarded_release_lists_gate_smoke_and_maintenance",
        &v2,
        &on_blue,
    );

    // Killed while the maintenance page held the route: the next run takes it down.
    let mut left = on_blue.clone();
    let mut m = left.managed[0].clone();
    m.name = "bg-web-maintenance".into();
    m.image = format!("127.0.0.1:5000/bg/maint@{A}");
    m.labels = [
        ("dockhand.managed", "true"),
        ("dockhand.project", "default"),
        ("dockhand.stack", "bg"),
        ("dockhand.service", "web"),
        ("dockhand.role", "maintenance"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    left.managed.push(m);
    check("bg_leftover_maintenance_container_is_removed", &v1, &left);
}

/// A converged host is confirmed from its container list alone; a declared network no running
/// container uses is not, and neither is an unused volume.
#[test]
fn the_container_list_alone_confirms_a_converged_host() {
    let base = desired(&[&shop(A, "s3cret-one")]);
    let host = converged(&base);
    let quick = infer::from_containers(&base, host.managed.clone())
        .expect("every network and volume is in use on a converged host");
    assert!(plan(&base, &quick).is_empty());

    // `web` is the only container on `proxy`: stopped, nothing proves `proxy` exists.
    let mut stopped = host.clone();
    container(&mut stopped, "shop-web").state = RunState::Exited;
    assert!(infer::from_containers(&base, stopped.managed.clone()).is_none());

    let unused_volume = desired(&[
        &shop(A, "s3cret-one").replace("volumes: {data: {}}", "volumes: {data: {}, spare: {}}")
    ]);
    assert!(infer::from_containers(&unused_volume, host.managed.clone()).is_none());
}

/// The plan is the whole instruction: the `depends_on` waves travel in it (apply used to
/// recompute them), each with the unchanged dependencies to wait for and what for.
#[test]
fn the_plan_carries_its_waves_and_what_each_dependency_is_waited_for() {
    let base = desired(&[&shop(A, "s3cret-one")]);
    let p = plan(&base, &Actual::default());
    let waves: Vec<Vec<&str>> = p
        .waves()
        .iter()
        .map(|w| w.actions.iter().filter_map(|a| a.container()).collect())
        .collect();
    assert_eq!(waves, [["shop-db"], ["shop-api"], ["shop-web"]]);
    assert!(p.waits.is_empty(), "everything changes: {:?}", p.waits);

    // Only api changes: db (unchanged) must be ready before api's wave; web waits for no one
    // unchanged and nothing waits for web.
    let host = converged(&base);
    let p = plan(&desired(&[&shop(A, "s3cret-two")]), &host);
    let waves = p.waves();
    assert_eq!(waves.len(), 2, "{waves:?}");
    assert!(waves[0].actions.is_empty());
    assert_eq!(
        waves[0]
            .waits
            .iter()
            .map(|w| (w.container.as_str(), w.until))
            .collect::<Vec<_>>(),
        [("shop-db", Until::Ready)]
    );
    assert_eq!(waves[1].actions[0].container(), Some("shop-api"));
    assert_eq!(waves[1].actions[0].wave(), Some(1));

    // A job is waited for until it completed, a blue/green service until a color serves, and
    // a dependency whose dependents only ask for `started` is not waited for at all.
    let stack = format!(
        "stack: w\nservices:\n  migrate:\n    image: r/m@{A}\n    job: true\n  front:\n    image: r/f@{A}\n    route: {{host: f.localhost, port: 80}}\n    health: {{cmd: [x]}}\n    release: {{strategy: blue-green}}\n  side:\n    image: r/s@{A}\n  app:\n    image: r/a@{{digest}}\n    depends_on: {{migrate: completed, front: healthy, side: started}}\n"
    );
    let v1 = desired(&[&stack.replace("{digest}", A)]);
    let v2 = desired(&[&stack.replace("{digest}", B)]);
    let p = plan(&v2, &converged(&v1));
    let waits: Vec<(&str, Until)> = p
        .waits
        .iter()
        .map(|w| (w.container.as_str(), w.until))
        .collect();
    assert_eq!(
        waits,
        [("w-front", Until::Serving), ("w-migrate", Until::Completed)]
    );
}

/// The planner alone decides whether a maintenance container takes the route, and a release
/// carries its color as a `Color` (apply used to re-parse a string, defaulting to blue).
#[test]
fn the_plan_decides_maintenance_and_carries_the_release_color() {
    let guarded = plan(
        &desired(&[&guarded_web(B)]),
        &converged(&desired(&[&guarded_web(A)])),
    );
    match guarded.actions.as_slice() {
        [Action::Release {
            color,
            maintenance,
            service,
            ..
        }] => {
            assert_eq!(*color, Color::Green);
            assert!(*maintenance, "a `before` hook has downtime");
            assert_eq!(service, "web");
        }
        other => panic!("{other:?}"),
    }

    // The same release without hooks has no downtime: the old color serves throughout.
    let quiet = |d: &str| {
        guarded_web(d).replace("    hooks: {before: [[python, manage.py, migrate]]}\n", "")
    };
    let p = plan(&desired(&[&quiet(B)]), &converged(&desired(&[&quiet(A)])));
    assert!(
        matches!(
            p.actions.as_slice(),
            [Action::Release {
                maintenance: false,
                ..
            }]
        ),
        "{:?}",
        p.actions
    );

    // A recreate always has downtime (a job cannot have a route, so never a page).
    let recreate = |d: &str| {
        format!("stack: r\nservices:\n  web:\n    image: r/w@{d}\n    route: {{host: r.localhost, port: 80}}\n    release: {{maintenance: {{image: r/m@{A}}}}}\n")
    };
    let p = plan(
        &desired(&[&recreate(B)]),
        &converged(&desired(&[&recreate(A)])),
    );
    assert!(
        matches!(
            p.actions.as_slice(),
            [Action::Recreate {
                maintenance: true,
                ..
            }]
        ),
        "{:?}",
        p.actions
    );
}

/// Every action that touches a container names its service, removals included (read from
/// the container's `dockhand.service` label).
#[test]
fn every_container_action_names_its_service() {
    let host = converged(&desired(&[&shop(A, "x")]));
    let other = desired(&["stack: other\nservices:\n  x:\n    image: r/x@sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n"]);
    let p = plan(&other, &host);
    let removed: Vec<(Option<&str>, Option<&str>)> = p
        .actions
        .iter()
        .filter(|a| matches!(a, Action::Remove { .. }))
        .map(|a| (a.container(), a.service()))
        .collect();
    assert_eq!(
        removed,
        [
            (Some("shop-api"), Some("api")),
            (Some("shop-db"), Some("db")),
            (Some("shop-web"), Some("web"))
        ]
    );
    for a in &p.actions {
        assert_eq!(a.container().is_some(), a.service().is_some(), "{a:?}");
    }
}

#[test]
fn stacks_that_only_report_drift_are_split_off_whole() {
    let other = "stack: other\nservices:\n  job:\n    image: r/o:1@".to_string() + A + "\n";
    let d = desired(&[&shop(A, "x"), &other]);
    let mut host = converged(&d);
    host.managed
        .retain(|c| c.name != "shop-api" && c.name != "other-job");
    let mut p = plan(&d, &host);
    let held = p.split_off_stacks(&["shop".to_string()].into_iter().collect());
    let held: Vec<_> = held.iter().filter_map(|a| a.container()).collect();
    assert_eq!(held, ["shop-api"]);
    let kept: Vec<_> = p.actions.iter().map(|a| a.stack()).collect();
    assert_eq!(kept, ["other"]);
    assert!(
        p.notes.keys().all(|k| !k.starts_with("shop-")),
        "{:?}",
        p.notes
    );
}

#[test]
fn secrets_never_appear_in_any_rendering() {
    let host = converged(&desired(&[&shop(A, "s3cret-one")]));
    let p = plan(&desired(&[&shop(A, "s3cret-two")]), &host);
    for out in [
        render::text(&p, true),
        render::text(&p, false),
        render::json(&p),
    ] {
        assert!(!out.contains("s3cret"), "secret leaked into:\n{out}");
    }
    let doc = &host
        .managed
        .iter()
        .find(|c| c.name == "shop-api")
        .unwrap()
        .labels;
    assert!(
        doc.values().all(|v| !v.contains("s3cret")),
        "secret leaked into labels"
    );
}

// ---------------------------------------------------------------------------------------------
// Properties over generated desired states and hosts.

/// One generated service: which image digest, which env value, whether it depends on the
/// previous service, whether it joins the stack network, whether it mounts the stack volume.
#[derive(Debug, Clone)]
struct GenService {
    digest: bool,
    env: u8,
    depends_on_prev: bool,
    on_net: bool,
    on_vol: bool,
    blue_green: bool,
}

fn stack_yaml(stack: &str, services: &[GenService]) -> String {
    let mut y =
        format!("stack: {stack}\nnetworks: {{net: {{}}}}\nvolumes: {{v: {{}}}}\nservices:\n");
    for (i, s) in services.iter().enumerate() {
        let digest = if s.digest { A } else { B };
        y += &format!(
            "  s{i}:\n    image: r/img:{i}@{digest}\n    env: {{E: \"{}\"}}\n",
            s.env
        );
        if s.on_net {
            y += "    networks: [net]\n";
        }
        if s.on_vol {
            y += "    mounts: [{volume: v, target: /data}]\n";
        }
        if s.blue_green {
            y += &format!("    route: {{host: s{i}.{stack}.localhost, port: 80}}\n    health: {{cmd: [wget, -q, http://127.0.0.1/]}}\n    release: {{strategy: blue-green}}\n");
        }
        if s.depends_on_prev && i > 0 {
            y += &format!("    depends_on: [s{}]\n", i - 1);
        }
    }
    y
}

fn gen_service() -> impl Strategy<Value = GenService> {
    (
        any::<bool>(),
        0u8..3,
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(digest, env, d, n, v, bg)| GenService {
            digest,
            env,
            depends_on_prev: d,
            on_net: n,
            on_vol: v,
            blue_green: bg,
        })
}

/// A desired state of one to three stacks (an empty desired state is refused by the loader, so
/// that a commit deleting every file cannot wipe a host) named from a small pool, so that generated hosts and
/// desired states overlap, differ and disjoin.
fn gen_desired() -> impl Strategy<Value = Desired> {
    prop::collection::btree_map(
        prop::sample::select(vec!["alpha", "beta", "gamma"]),
        prop::collection::vec(gen_service(), 1..5),
        1..3,
    )
    .prop_map(|stacks| {
        let texts: Vec<String> = stacks.iter().map(|(n, s)| stack_yaml(n, s)).collect();
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        desired(&refs)
    })
}

/// Hand-made damage to a host: stop, delete, swap the image of some managed containers.
#[derive(Debug, Clone)]
enum Damage {
    Stop(usize),
    Delete(usize),
    SwapImage(usize),
    DropNetwork(usize),
}

fn gen_damage() -> impl Strategy<Value = Vec<Damage>> {
    prop::collection::vec(
        prop_oneof![
            (0usize..16).prop_map(Damage::Stop),
            (0usize..16).prop_map(Damage::Delete),
            (0usize..16).prop_map(Damage::SwapImage),
            (0usize..4).prop_map(Damage::DropNetwork),
        ],
        0..6,
    )
}

fn damage(mut host: Actual, hits: &[Damage]) -> Actual {
    for hit in hits {
        match *hit {
            Damage::Stop(i) if !host.managed.is_empty() => {
                let n = host.managed.len();
                host.managed[i % n].state = RunState::Exited;
            }
            Damage::Delete(i) if !host.managed.is_empty() => {
                let n = host.managed.len();
                host.managed.remove(i % n);
            }
            Damage::SwapImage(i) if !host.managed.is_empty() => {
                let n = host.managed.len();
                host.managed[i % n].image = "hand/made:latest".into();
            }
            Damage::DropNetwork(i) if !host.networks.is_empty() => {
                let n = host.networks.len();
                host.networks.remove(i % n);
            }
            _ => {}
        }
    }
    host
}

/// What only a full read of the host sees: the container list shows neither.
#[derive(Debug, Clone)]
enum Unseen {
    /// A network or volume that no container holds on to (no running container is attached
    /// to the network, no container mounts the volume) is removed by hand: the Engine allows
    /// that, and nothing in the container list shows it.
    DropUnused(usize),
    /// A managed container is replaced by one dockhand does not own, with the same name.
    Squat(usize),
}

fn gen_unseen() -> impl Strategy<Value = Vec<Unseen>> {
    prop::collection::vec(
        prop_oneof![
            (0usize..8).prop_map(Unseen::DropUnused),
            (0usize..16).prop_map(Unseen::Squat),
        ],
        0..3,
    )
}

fn unseen(mut host: Actual, hits: &[Unseen]) -> Actual {
    for hit in hits {
        match *hit {
            Unseen::DropUnused(i) => {
                let attached: Vec<String> = host
                    .managed
                    .iter()
                    .filter(|c| c.state == RunState::Running)
                    .flat_map(|c| c.attached.networks.clone())
                    .collect();
                let mounted: Vec<String> = host
                    .managed
                    .iter()
                    .flat_map(|c| c.attached.volumes.clone())
                    .collect();
                let nets: Vec<String> = host
                    .networks
                    .iter()
                    .filter(|n| !attached.contains(&n.name))
                    .map(|n| n.name.clone())
                    .collect();
                let vols: Vec<String> = host
                    .volumes
                    .iter()
                    .filter(|v| !mounted.contains(&v.name))
                    .map(|v| v.name.clone())
                    .collect();
                let n = nets.len() + vols.len();
                if n == 0 {
                    continue;
                }
                let k = i % n;
                if k < nets.len() {
                    host.networks.retain(|x| x.name != nets[k]);
                } else {
                    host.volumes.retain(|x| x.name != vols[k - nets.len()]);
                }
            }
            Unseen::Squat(i) if !host.managed.is_empty() => {
                let n = host.managed.len();
                let mut c = host.managed.remove(i % n);
                c.id = format!("squatter-{}", c.name);
                c.labels.clear();
                c.image = "someone/else:latest".into();
                c.attached = Default::default();
                host.foreign.push(c);
            }
            Unseen::Squat(_) => {}
        }
    }
    host
}

/// A hand edit of one container of a converged host, as the docker CLI makes it.
#[derive(Debug, Clone)]
enum HandEdit {
    /// `docker network disconnect <its first network> <container>`.
    Disconnect(usize),
    /// `docker update --restart <policy>` to another policy than the spec's.
    Restart(usize, u8),
    /// `docker rename <container> hand-<n>`.
    Rename(usize),
    /// `docker stop`.
    Stop(usize),
}

fn gen_hand_edits() -> impl Strategy<Value = Vec<HandEdit>> {
    prop::collection::vec(
        prop_oneof![
            (0usize..16).prop_map(HandEdit::Disconnect),
            ((0usize..16), 0u8..4).prop_map(|(i, r)| HandEdit::Restart(i, r)),
            (0usize..16).prop_map(HandEdit::Rename),
            (0usize..16).prop_map(HandEdit::Stop),
        ],
        1..5,
    )
}

/// Applies `edits` to the containers of plain (not blue/green) services; returns whether any
/// changed something (a disconnect needs a network to leave).
fn hand_edit(desired: &Desired, host: &mut Actual, edits: &[HandEdit]) -> bool {
    let plain: Vec<String> = desired
        .containers
        .iter()
        .filter(|d| d.blue_green.is_none())
        .map(|d| d.name.clone())
        .collect();
    let mut changed = false;
    for edit in edits {
        let i = match edit {
            HandEdit::Disconnect(i)
            | HandEdit::Restart(i, _)
            | HandEdit::Rename(i)
            | HandEdit::Stop(i) => *i,
        };
        let mut ours: Vec<&mut ActualContainer> = host
            .managed
            .iter_mut()
            .filter(|c| plain.contains(&c.name) || c.name.starts_with("hand-"))
            .collect();
        if ours.is_empty() {
            return changed;
        }
        let n = ours.len();
        let c = &mut ours[i % n];
        let seen = c.inspected.as_mut().expect("a full read inspects");
        match edit {
            HandEdit::Disconnect(_) => {
                if let Some(net) = c.attached.networks.first().cloned() {
                    c.attached.networks.retain(|x| *x != net);
                    seen.networks.remove(&net);
                    changed = true;
                }
            }
            HandEdit::Restart(_, r) => {
                let policies = ["no", "always", "on-failure", "unless-stopped"];
                let pick = policies
                    .iter()
                    .cycle()
                    .skip(*r as usize)
                    .find(|p| **p != seen.restart)
                    .expect("another policy");
                seen.restart = pick.to_string();
                changed = true;
            }
            HandEdit::Rename(_) => {
                c.name = format!("hand-{}", c.id);
                changed = true;
            }
            HandEdit::Stop(_) => {
                if c.state == RunState::Running {
                    c.state = RunState::Exited;
                    c.status = "Exited (137) 1 second ago".into();
                    changed = true;
                }
            }
        }
    }
    changed
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 64,
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource("regressions"))),
        ..ProptestConfig::default()
    })]

    /// Issue 18 item 1: whatever a human does with the docker CLI to a converged host
    /// (disconnect a network, change the restart policy, rename, stop), the next plan says so
    /// and applying it converges. Reading drift from the spec label alone turns this red.
    #[test]
    fn hand_edits_are_planned_and_corrected(desired in gen_desired(), edits in gen_hand_edits()) {
        let mut host = converged(&desired);
        // Edits can undo each other (a policy set and set back): only a host that differs.
        prop_assume!(hand_edit(&desired, &mut host, &edits) && host != converged(&desired));
        let p = plan(&desired, &host);
        prop_assert!(!p.actions.is_empty(), "hand edits {edits:?} unseen");
        prop_assert!(p.conflicts.is_empty(), "{}", render::text(&p, true));
        let next = plan(&desired, &effect(&p, &desired, &host));
        prop_assert!(next.is_empty(), "not converged:\n{}", render::text(&next, true));
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 256,
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource("regressions"))),
        ..ProptestConfig::default()
    })]

    /// Whatever the host looked like (another commit's stacks, then damaged by hand), applying
    /// the plan leaves a host on which the next plan is empty.
    #[test]
    fn applying_a_plan_converges(before in gen_desired(), after in gen_desired(), hits in gen_damage()) {
        let host = damage(converged(&before), &hits);
        let p = plan(&after, &host);
        let next = plan(&after, &effect(&p, &after, &host));
        prop_assert!(next.actions.is_empty(), "not converged:\n{}", render::text(&next, true));
        prop_assert!(next.conflicts.is_empty());
    }

    /// A pass that reads only the container list (`plan::infer`) never calls a host in sync
    /// that a full read would change: at the revision last found in sync, with the containers
    /// damaged by hand, then what only a full read sees (an unused network or volume removed,
    /// a squatter on a wanted name), an empty quick plan means a full plan with nothing to do.
    /// Networks in use cannot be removed, so they are not. The one thing a quick read may
    /// leave unseen is a conflict on a blue/green service's idle color name (`plan::infer`
    /// says so): its serving color is untouched, and the next full read reports it.
    /// Removing the network/volume proof from `infer::from_containers` turns this red.
    #[test]
    fn the_one_list_read_never_hides_work(
        desired in gen_desired(),
        hits in gen_damage(),
        hidden in gen_unseen(),
    ) {
        let hits: Vec<Damage> = hits.into_iter().filter(|h| !matches!(h, Damage::DropNetwork(_))).collect();
        let host = unseen(damage(converged(&desired), &hits), &hidden);
        if let Some(quick) = infer::from_containers(&desired, host.managed.clone()) {
            if plan(&desired, &quick).is_empty() {
                let full = plan(&desired, &host);
                prop_assert!(full.actions.is_empty(), "the full read finds:\n{}", render::text(&full, true));
                for c in &full.conflicts {
                    let idle_color = desired
                        .containers
                        .iter()
                        .any(|d| d.name == c.name && d.blue_green.is_some());
                    prop_assert!(idle_color, "the full read finds:\n{}", render::text(&full, true));
                }
            }
        }
    }

    /// The same inputs give the same plan, whatever order the Engine listed objects in.
    #[test]
    fn planning_is_deterministic(before in gen_desired(), after in gen_desired(), hits in gen_damage()) {
        let host = damage(converged(&before), &hits);
        let mut reversed = host.clone();
        reversed.managed.reverse();
        reversed.networks.reverse();
        reversed.volumes.reverse();
        let p = plan(&after, &host);
        prop_assert_eq!(&p, &plan(&after, &host));
        prop_assert_eq!(render::json(&p), render::json(&plan(&after, &reversed)));
    }
}

/// Issue 18 items 2 and 7 in the planner. An unchanged container that Docker calls
/// unhealthy, or that is still `starting` past its start period (read from the list's
/// status), leaves nothing to apply but is not in sync; one within its start period is. A
/// stale owned network that another project's or a hand-made container uses is kept with a
/// note instead of being planned for removal on every pass.
#[test]
fn unhealthy_containers_are_not_in_sync_and_a_stale_network_in_use_is_kept() {
    let d = desired(&[&shop(A, "s3cret-one")]);
    let mut host = converged(&d);
    container(&mut host, "shop-api").status = "Up 3 minutes (unhealthy)".into();
    container(&mut host, "shop-db").status = "Up About a minute (health: starting)".into();
    container(&mut host, "shop-web").status = "Up Less than a second (health: starting)".into();
    let p = plan(&d, &host);
    assert!(
        p.is_empty(),
        "nothing to apply: {}",
        render::text(&p, false)
    );
    assert!(!p.in_sync());
    let sick: Vec<(&str, &str)> = p
        .unhealthy
        .iter()
        .map(|u| (u.container.as_str(), u.reason.as_str()))
        .collect();
    assert_eq!(
        sick,
        // In dependency order, as the containers are planned.
        [
            (
                "shop-db",
                "its healthcheck has not passed yet, 60s after start, past its start period of 0s (Up About a minute (health: starting))"
            ),
            ("shop-api", "Docker reports it unhealthy (Up 3 minutes (unhealthy))"),
        ]
    );
    let text = render::text(&p, false);
    assert!(
        text.contains(
            "! container shop-api (shop/api) is not healthy: Docker reports it unhealthy"
        ) && text.contains("No changes to apply, but not in sync: 2 container(s) not healthy."),
        "{text}"
    );
    assert!(render::json(&p).contains("\"in_sync\": false"));

    // A network no longer declared: removed, unless a container it does not own uses it.
    let mut stale = converged(&d);
    stale.networks.push(ActualObject {
        name: "shop-old".into(),
        owner_stack: Some("shop".into()),
        other_project: None,
    });
    let p = plan(&d, &stale);
    assert!(matches!(&p.actions[..], [Action::RemoveNetwork { name, .. }] if name == "shop-old"));
    stale
        .network_users
        .insert("shop-old".into(), vec!["their-box".into()]);
    let p = plan(&d, &stale);
    assert!(p.in_sync(), "{}", render::text(&p, false));
    assert_eq!(p.kept_networks.len(), 1);
    assert_eq!(p.kept_networks[0].attached, ["their-box"]);
    assert!(render::text(&p, false)
        .contains("network shop-old is no longer declared but kept: in use by their-box"));
}

/// Issue 18 item 1, planner side: a network connected by hand is disconnected in place; a
/// limit set by hand (Docker cannot lift it in place) recreates, naming the field; a renamed
/// container that also needs a new container is not renamed back but replaced (the service's
/// container created, the renamed one removed).
#[test]
fn hand_edits_are_fixed_in_place_only_when_the_engine_can() {
    use dockhand::plan::drift::Fix;
    let d = desired(&[&shop(A, "s3cret")]);

    let mut host = converged(&d);
    let api = container(&mut host, "shop-api");
    api.attached.networks.push("elsewhere".into());
    let seen = api.inspected.as_mut().expect("inspected");
    seen.networks.insert("elsewhere".into(), vec!["x".into()]);
    let p = plan(&d, &host);
    match &p.actions[..] {
        [Action::Correct {
            container, fixes, ..
        }] => {
            assert_eq!(container, "shop-api");
            assert_eq!(
                fixes,
                &[Fix::Disconnect {
                    network: "elsewhere".into()
                }]
            );
        }
        other => panic!("{other:#?}"),
    }
    assert!(
        render::text(&p, false)
            .contains("networks: elsewhere connected by hand → disconnect elsewhere"),
        "{}",
        render::text(&p, false)
    );
    assert!(plan(&d, &effect(&p, &d, &host)).is_empty());

    let mut host = converged(&d);
    let api = container(&mut host, "shop-api");
    let seen = api.inspected.as_mut().expect("inspected");
    seen.limits.push(("memory".into(), 64 << 20));
    let p = plan(&d, &host);
    match &p.actions[..] {
        [Action::Recreate {
            container, changes, ..
        }] => {
            assert_eq!(container, "shop-api");
            assert_eq!(changes[0].field, "resources (by hand)");
            assert_eq!(changes[0].before, ["memory=67108864 (docker update)"]);
        }
        other => panic!("{other:#?}"),
    }
    assert!(plan(&d, &effect(&p, &d, &host)).is_empty());

    let mut host = converged(&d);
    let api = container(&mut host, "shop-api");
    api.name = "renamed-api".into();
    api.inspected
        .as_mut()
        .expect("inspected")
        .limits
        .push(("nano_cpus".into(), 500_000_000));
    let p = plan(&d, &host);
    let kinds: Vec<(&str, &str)> = p
        .actions
        .iter()
        .map(|a| match a {
            Action::Create { container, .. } => ("create", container.as_str()),
            Action::Remove { container, .. } => ("remove", container.as_str()),
            other => panic!("{other:#?}"),
        })
        .collect();
    assert_eq!(kinds, [("create", "shop-api"), ("remove", "renamed-api")]);
    assert!(plan(&d, &effect(&p, &d, &host)).is_empty());
}

/// Issue 18: renaming `db` → `database` on the same owned volume started the new container
/// while the old one still ran (10 s of two writers on one database directory). The plan now
/// removes the old container before the wave that starts the new one, and says so; a volume
/// declared `shared: true` keeps the old order (start the new one, then remove).
#[test]
fn a_renamed_service_hands_its_owned_volume_over_before_the_new_one_starts() {
    let stack = |svc: &str, shared: bool| {
        format!(
            "stack: vol\nvolumes: {{data: {{shared: {shared}}}}}\nservices:\n  {svc}:\n    image: r/db@{A}\n    mounts: [{{volume: data, target: /var/lib/db}}]\n  other:\n    image: r/other@{A}\n"
        )
    };
    for shared in [false, true] {
        let host = converged(&desired(&[&stack("db", shared)]));
        let renamed = desired(&[&stack("database", shared)]);
        let p = plan(&renamed, &host);
        let remove = p
            .actions
            .iter()
            .find_map(|a| match a {
                Action::Remove {
                    container,
                    reason,
                    first,
                    ..
                } if container == "vol-db" => Some((reason.clone(), *first)),
                _ => None,
            })
            .expect("the old container is removed");
        let create_wave = p
            .actions
            .iter()
            .find(|a| a.container() == Some("vol-database"))
            .and_then(Action::wave)
            .expect("the new container is created in a wave");
        if shared {
            assert_eq!(remove.1, None, "shared: the removal stays after the waves");
            assert!(!remove.0.contains("stopped first"), "{}", remove.0);
        } else {
            assert_eq!(remove.1, Some(create_wave));
            assert_eq!(
                remove.0,
                "service `db` is no longer in the desired state; stopped first: shares volume `vol_data` with vol-database, which starts after it"
            );
            let text = render::text(&p, false);
            assert!(
                text.contains("stopped first: shares volume `vol_data`"),
                "{text}"
            );
        }
        // The unrelated service mounts nothing: untouched either way.
        assert!(p.actions.iter().all(|a| a.container() != Some("vol-other")));
        let after = effect(&p, &renamed, &host);
        assert!(plan(&renamed, &after).actions.is_empty());
    }
}

/// Issue 18 item 3: a failure scoped to `api` takes out `api` and `web` (which depends on it)
/// and nothing else: `db` and another stack still converge.
#[test]
fn a_failed_service_skips_its_dependents_and_nothing_else() {
    let other = format!("stack: other\nservices:\n  solo:\n    image: r/solo@{A}\n");
    let d = desired(&[&shop(B, "x"), &other]);
    let mut p = plan(&d, &Actual::default());
    let blocked = std::collections::BTreeMap::from([(
        ("shop".to_string(), "api".to_string()),
        "preflight failed: image unavailable".to_string(),
    )]);
    let skipped = dockhand::plan::with_dependents(&d, &blocked);
    let names: Vec<(&str, &str)> = skipped
        .iter()
        .map(|s| (s.service.as_str(), s.reason.as_str()))
        .collect();
    assert_eq!(
        names,
        [
            ("api", "preflight failed: image unavailable"),
            ("web", "depends on `api`, which was skipped")
        ]
    );
    p.skip_services(skipped);
    let left: Vec<&str> = p.actions.iter().filter_map(Action::container).collect();
    assert_eq!(left, ["other-solo", "shop-db"]);
    assert!(p.waits.iter().all(|w| w.service != "api"));
    let text = render::text(&p, false);
    assert!(
        text.contains("skipped shop/web (the rest goes on): depends on `api`, which was skipped"),
        "{text}"
    );
}

/// Issue 18 review (B, E): a quarantined service takes itself and its dependents out of the
/// plan where the plan has work for them, and nothing else; with nothing to do for them (a
/// failed first deploy's container is left as it is) nothing is noted as skipped, so the
/// correction of another service is a whole deploy.
#[test]
fn a_quarantined_service_is_skipped_only_where_the_plan_has_work_for_it() {
    let d = desired(&[&shop(B, "x")]);
    let blocked = std::collections::BTreeMap::from([(
        ("shop".to_string(), "api".to_string()),
        "quarantined: it failed in deploy #3".to_string(),
    )]);
    let mut p = plan(&d, &Actual::default());
    p.skip_quarantined(&d, &Actual::default(), &blocked);
    let skipped: Vec<&str> = p.skipped.iter().map(|s| s.service.as_str()).collect();
    assert_eq!(skipped, ["api", "web"]);
    let left: Vec<&str> = p.actions.iter().filter_map(Action::container).collect();
    assert_eq!(left, ["shop-db"]);

    let host = effect(&plan(&d, &Actual::default()), &d, &Actual::default());
    let mut p = plan(&d, &host);
    assert!(p.actions.is_empty());
    p.skip_quarantined(&d, &host, &blocked);
    assert!(p.skipped.is_empty(), "{:?}", p.skipped);
    assert!(p.waits.iter().all(|w| w.service != "api"), "{:?}", p.waits);
}

/// Issue 18 item 3, review: `api`'s release was rolled back and quarantined (`web` with it,
/// as its dependent); then both were stopped by hand. The plan starts the existing (last
/// good) containers in their waves instead of the quarantined recreate, and never starts a
/// container that holds the quarantined spec.
#[test]
fn a_quarantined_service_starts_its_stopped_last_good_container() {
    let old = desired(&[&shop(A, "x")]);
    let mut host = converged(&old);
    for name in ["shop-api", "shop-web"] {
        let c = container(&mut host, name);
        c.state = RunState::Exited;
        c.status = "Exited (137) 5 seconds ago".into();
    }
    let d = desired(&[&shop(B, "x")]);
    let blocked = std::collections::BTreeMap::from([(
        ("shop".to_string(), "api".to_string()),
        "quarantined: it failed in deploy #3".to_string(),
    )]);
    let mut p = plan(&d, &host);
    let api_wave = p
        .actions
        .iter()
        .find(|a| matches!(a, Action::Recreate { container, .. } if container == "shop-api"))
        .and_then(Action::wave)
        .expect("the new digest recreates shop-api");
    p.skip_quarantined(&d, &host, &blocked);
    let skipped: Vec<&str> = p.skipped.iter().map(|s| s.service.as_str()).collect();
    assert_eq!(skipped, ["api", "web"]);
    let starts: Vec<(&str, usize, &str)> = p
        .actions
        .iter()
        .filter_map(|a| match a {
            Action::Start {
                container,
                wave,
                reason,
                ..
            } => Some((container.as_str(), *wave, reason.as_str())),
            _ => None,
        })
        .collect();
    assert_eq!(starts.len(), 2, "{:?}", p.actions);
    assert_eq!((starts[0].0, starts[0].1), ("shop-api", api_wave));
    assert_eq!(starts[1].0, "shop-web");
    assert!(starts[1].1 > api_wave, "web starts after api: {starts:?}");
    assert!(
        starts[0]
            .2
            .starts_with("quarantined revision: starting the last good container"),
        "{starts:?}"
    );
    assert!(
        !p.actions.iter().any(|a| matches!(
            a,
            Action::Recreate { .. } | Action::Release { .. } | Action::Create { .. }
        )),
        "{:?}",
        p.actions
    );

    // A failed first deploy: the stopped container holds the quarantined spec, so it stays.
    let mut failed = converged(&d);
    let c = container(&mut failed, "shop-api");
    c.state = RunState::Exited;
    c.status = "Exited (1) 5 seconds ago".into();
    let mut p = plan(&d, &failed);
    p.skip_quarantined(&d, &failed, &blocked);
    assert!(
        !p.actions.iter().any(|a| a.service() == Some("api")),
        "{:?}",
        p.actions
    );
}

/// Issue 18 item 3, review: a blue/green release to green was rolled back and quarantined,
/// then the serving color (blue) was stopped by hand. Blue, the last good color, is started
/// again; green, which holds the quarantined spec, stays stopped.
#[test]
fn a_quarantined_blue_green_service_starts_the_color_that_served_last() {
    let v1 = desired(&[&web(A, None, "stopped")]);
    let v2 = desired(&[&web(B, None, "stopped")]);
    let mut host = converged(&v1);
    let blue = container(&mut host, "bg-web-blue");
    blue.state = RunState::Exited;
    blue.status = "Exited (137) 5 seconds ago".into();
    let blocked = std::collections::BTreeMap::from([(
        ("bg".to_string(), "web".to_string()),
        "quarantined: it failed in deploy #3".to_string(),
    )]);
    // Green left stopped by the rollback with the quarantined spec, and without it.
    let mut with_green = effect(&plan(&v2, &converged(&v1)), &v2, &converged(&v1));
    container(&mut with_green, "bg-web-blue").state = RunState::Exited;
    let green = container(&mut with_green, "bg-web-green");
    green.state = RunState::Exited;
    green.status = "Exited (1) 1 minute ago".into();
    for host in [host, with_green] {
        let mut p = plan(&v2, &host);
        assert!(!p.actions.is_empty(), "{}", render::text(&p, false));
        p.skip_quarantined(&v2, &host, &blocked);
        let left: Vec<(&str, Option<&str>)> = p
            .actions
            .iter()
            .map(|a| match a {
                Action::Start { container, .. } => ("start", Some(container.as_str())),
                a => ("other", a.container()),
            })
            .collect();
        assert_eq!(left, [("start", Some("bg-web-blue"))], "{:?}", p.actions);
    }
}

/// Issue 18 item 3 for conflicts: a container made by hand in `api`'s way skips `api` and
/// `web` (its dependent) for the agent, with the conflict as the reason; `db` still converges.
/// A conflict on a network is not a service's: it stays and still blocks.
#[test]
fn a_conflict_in_one_services_way_skips_that_service_and_its_dependents() {
    let d = desired(&[&shop(B, "x")]);
    let mut host = Actual::default();
    host.foreign.push(ActualContainer {
        id: "f00".into(),
        name: "shop-api".into(),
        state: RunState::Running,
        status: "Up 1 minute".into(),
        image: "nginx".into(),
        labels: Default::default(),
        attached: Default::default(),
        inspected: None,
    });
    let mut p = plan(&d, &host);
    assert_eq!(p.conflicts.len(), 1);
    p.scope_conflicts(&d);
    assert!(p.conflicts.is_empty());
    let skipped: Vec<&str> = p.skipped.iter().map(|s| s.service.as_str()).collect();
    assert_eq!(skipped, ["api", "web"]);
    assert!(
        p.skipped[0].reason.contains("not created by dockhand"),
        "{:?}",
        p.skipped
    );
    let left: Vec<&str> = p.actions.iter().filter_map(Action::container).collect();
    assert_eq!(left, ["shop-db"]);

    host.networks.push(ActualObject {
        name: "shop_backend".into(),
        owner_stack: None,
        other_project: None,
    });
    let mut p = plan(&d, &host);
    p.scope_conflicts(&d);
    assert_eq!(p.conflicts.len(), 1, "the network conflict still blocks");
    assert_eq!(p.conflicts[0].name, "shop_backend");
}
