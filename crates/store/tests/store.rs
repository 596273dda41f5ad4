use easydeploy_core::ports::ArtifactStore;
use easydeploy_core::DeploymentState as S;
use easydeploy_store::{FileArtifacts, NewDeployment, Store, StoreError};

mod common;
use common::{enqueue_build, name, settings, store, store_with_app, walk_to_verifying};

#[tokio::test]
async fn app_names_are_unique() {
    let (_d, store) = store().await;
    store.create_app(&name("shop"), "t1", &settings()).await.unwrap();
    let err = store
        .create_app(&name("shop"), "t2", &settings())
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict(ref m) if m.contains("already taken") && !m.contains("t1")));
    assert_eq!(store.apps().await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_deployment_walks_its_steps_and_keeps_its_history() {
    let (_d, store, app) = store_with_app("shop").await;
    let d = enqueue_build(&store, &app).await;
    assert_eq!((d.state, d.number), (S::Queued, 1));
    let claimed = store.claim("w1", 30_000).await.unwrap().unwrap();
    assert_eq!(
        (claimed.id.as_str(), claimed.state),
        (d.id.as_str(), S::PreparingTenant)
    );
    assert!(
        store.claim("w2", 30_000).await.unwrap().is_none(),
        "only one claim"
    );
    walk_to_verifying(&store, &d.id, "w1").await;
    assert!(
        store.advance(&d.id, "w2", S::Live, None).await.is_err(),
        "someone else's lease"
    );
    store.go_live(&d.id, "w1").await.unwrap();
    let states: Vec<S> = store
        .transitions(&d.id)
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.state)
        .collect();
    assert_eq!(
        states,
        [
            S::Queued,
            S::PreparingTenant,
            S::FetchingSource,
            S::Detecting,
            S::GeneratingPipeline,
            S::Building,
            S::Pushing,
            S::Releasing,
            S::Verifying,
            S::Live
        ]
    );
    assert_eq!(
        store.app(&app).await.unwrap().live_deployment.as_deref(),
        Some(d.id.as_str())
    );

    // The next one supersedes it when it goes live.
    let d2 = enqueue_build(&store, &app).await;
    store.claim("w1", 30_000).await.unwrap().unwrap();
    walk_to_verifying(&store, &d2.id, "w1").await;
    store.go_live(&d2.id, "w1").await.unwrap();
    assert_eq!(store.deployment(&d.id).await.unwrap().state, S::Superseded);
    assert_eq!(store.live_deployments().await.unwrap().len(), 1);
}

#[tokio::test]
async fn same_app_is_serialized_and_newer_queued_supersedes_older() {
    let (_d, store) = store().await;
    let (a, b) = (name("a"), name("b"));
    store.create_app(&a, "t", &settings()).await.unwrap();
    store.create_app(&b, "t", &settings()).await.unwrap();
    let a1 = enqueue_build(&store, &a).await;
    let a2 = enqueue_build(&store, &a).await;
    let a3 = enqueue_build(&store, &a).await;
    let b1 = enqueue_build(&store, &b).await;
    assert_eq!(store.deployment(&a1.id).await.unwrap().state, S::Cancelled);
    let a2 = store.deployment(&a2.id).await.unwrap();
    assert_eq!(a2.state, S::Cancelled);
    assert!(a2.reason.unwrap().contains("superseded by deployment #3"));
    let first = store.claim("w", 30_000).await.unwrap().unwrap();
    assert_eq!(first.id, a3.id);
    let second = store.claim("w", 30_000).await.unwrap().unwrap();
    assert_eq!(second.id, b1.id, "another app runs concurrently");
    let a4 = enqueue_build(&store, &a).await;
    assert!(
        store.claim("w", 30_000).await.unwrap().is_none(),
        "a4 waits for a3"
    );
    store.fail(&a3.id, "w", "boom").await.unwrap();
    assert_eq!(store.claim("w", 30_000).await.unwrap().unwrap().id, a4.id);
}

#[tokio::test]
async fn a_restart_fails_in_flight_work_and_keeps_queued_work() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let app = name("shop");
    let (in_flight, queued) = {
        let store = Store::open(&path).await.unwrap();
        store.create_app(&app, "t", &settings()).await.unwrap();
        let other = name("other");
        store.create_app(&other, "t", &settings()).await.unwrap();
        let d1 = enqueue_build(&store, &app).await;
        store.claim("w", 30_000).await.unwrap();
        store.advance(&d1.id, "w", S::FetchingSource, None).await.unwrap();
        let d2 = enqueue_build(&store, &other).await;
        (d1.id, d2.id)
    };
    let store = Store::open(&path).await.unwrap();
    assert_eq!(store.fail_interrupted().await.unwrap(), vec![in_flight.clone()]);
    let d = store.deployment(&in_flight).await.unwrap();
    assert_eq!((d.state, d.failed_step), (S::Failed, Some(S::FetchingSource)));
    assert!(d.reason.unwrap().contains("server stopped while fetching source"));
    assert_eq!(store.deployment(&queued).await.unwrap().state, S::Queued);
    assert_eq!(store.claim("w2", 30_000).await.unwrap().unwrap().id, queued);
}

#[tokio::test]
async fn deleting_an_app_removes_its_history() {
    let (_d, store, app) = store_with_app("shop").await;
    let d = enqueue_build(&store, &app).await;
    assert_eq!(store.delete_app(&app).await.unwrap(), vec![d.id.clone()]);
    assert!(matches!(
        store.deployment(&d.id).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(store.transitions(&d.id).await.unwrap().is_empty());
}

#[tokio::test]
async fn artifacts_are_files_with_safe_names() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileArtifacts::new(dir.path());
    store.put("d1", "Dockerfile", b"FROM x").await.unwrap();
    store.append("d1", "build.log", b"one\n").await.unwrap();
    store.append("d1", "build.log", b"two\n").await.unwrap();
    assert_eq!(store.get("d1", "build.log", 4).await.unwrap().unwrap(), b"two\n");
    assert_eq!(store.list("d1").await.unwrap(), vec!["Dockerfile", "build.log"]);
    assert!(store.get("d1", "missing", 0).await.unwrap().is_none());
    assert!(store.put("..", "x", b"").await.is_err());
    assert!(store.put("d1", "../x", b"").await.is_err());
    store.remove(&["d1".into()]).await.unwrap();
    assert!(store.list("d1").await.unwrap().is_empty());
}

#[tokio::test]
async fn releases_are_numbered_and_a_rollback_marks_what_it_replaced() {
    let (_d, store, app) = store_with_app("shop").await;
    let mut ids = Vec::new();
    for kind in [
        easydeploy_store::DeploymentKind::Deploy,
        easydeploy_store::DeploymentKind::Deploy,
        easydeploy_store::DeploymentKind::Rollback,
    ] {
        let mut new = NewDeployment::build(None);
        new.kind = kind;
        let d = store.enqueue(&app, &settings(), &new).await.unwrap();
        store.claim("w", 30_000).await.unwrap().unwrap();
        walk_to_verifying(&store, &d.id, "w").await;
        store.go_live(&d.id, "w").await.unwrap();
        ids.push(d.id);
    }
    let releases = store.releases(&app, 10).await.unwrap();
    assert_eq!(
        releases.iter().map(|r| r.release.unwrap()).collect::<Vec<_>>(),
        vec![3, 2, 1]
    );
    assert_eq!(store.deployment(&ids[0]).await.unwrap().state, S::Superseded);
    assert_eq!(store.deployment(&ids[1]).await.unwrap().state, S::RolledBack);
    assert_eq!(store.release(&app, 2).await.unwrap().id, ids[1]);
    assert!(store.release(&app, 9).await.is_err());
    store.add_event(&app, "scale", "scaled to 2").await.unwrap();
    assert_eq!(store.events(&app, 10).await.unwrap()[0].message, "scaled to 2");
}

#[tokio::test]
async fn statistics_count_outcomes_and_time_steps() {
    let (_d, store, app) = store_with_app("shop").await;
    // One that goes live, one that fails while building.
    let ok = enqueue_build(&store, &app).await;
    store.claim("w", 30_000).await.unwrap().unwrap();
    walk_to_verifying(&store, &ok.id, "w").await;
    store.go_live(&ok.id, "w").await.unwrap();
    let bad = enqueue_build(&store, &app).await;
    store.claim("w", 30_000).await.unwrap().unwrap();
    store
        .advance(&bad.id, "w", S::FetchingSource, None)
        .await
        .unwrap();
    store.fail(&bad.id, "w", "boom").await.unwrap();

    let stats = store
        .deploy_stats(Some(std::slice::from_ref(&app)))
        .await
        .unwrap();
    assert_eq!(stats.total, 2);
    assert_eq!(stats.by_state.get("live"), Some(&1));
    assert_eq!(stats.by_state.get("failed"), Some(&1));
    assert_eq!(stats.success_rate, Some(0.5));
    assert_eq!(stats.steps["building"].count, 1);
    assert_eq!(stats.steps["fetching_source"].count, 2);
    let queued = &stats.steps["queued"];
    assert!(
        queued.count == 2 && queued.p95_secs >= queued.mean_secs,
        "{queued:?}"
    );
    assert_eq!(stats.per_day.values().sum::<u64>(), 2);
    let other = store.deploy_stats(Some(&[name("other")])).await.unwrap();
    assert_eq!((other.total, other.success_rate), (0, None));
}
