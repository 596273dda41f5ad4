use easydeploy_store::AlertRules;

mod common;
use common::store_with_app;

#[tokio::test]
async fn alert_settings_keep_their_secret_until_rotated() {
    let (_d, store, app) = store_with_app("shop").await;
    assert!(store.alert_settings(&app).await.unwrap().is_none());
    let rules = AlertRules::default();
    let (first, fresh) = store
        .set_alerts(&app, "http://127.0.0.1:9/hook", &rules, false)
        .await
        .unwrap();
    assert!(fresh);
    assert_eq!(first.secret.len(), 64);
    assert!(first.secret.bytes().all(|b| b.is_ascii_hexdigit()));
    assert_eq!(first.rules, rules);

    let changed = AlertRules {
        error_ratio_percent: 12.5,
        crash_loop_restarts: 5,
        no_healthy_replica: false,
        ..rules
    };
    let (second, fresh) = store
        .set_alerts(&app, "https://example.com/h", &changed, false)
        .await
        .unwrap();
    assert!(!fresh);
    assert_eq!(second.secret, first.secret);
    assert_eq!(second.rules, changed);
    assert_eq!(second.webhook_url, "https://example.com/h");
    assert_eq!(store.all_alert_settings().await.unwrap().len(), 1);

    let (third, fresh) = store
        .set_alerts(&app, "https://example.com/h", &changed, true)
        .await
        .unwrap();
    assert!(fresh);
    assert_ne!(third.secret, first.secret);

    assert!(store.delete_alerts(&app).await.unwrap());
    assert!(!store.delete_alerts(&app).await.unwrap());
    assert!(store.alert_settings(&app).await.unwrap().is_none());
}

#[tokio::test]
async fn an_alert_fires_once_and_resolves_once_with_events() {
    let (_d, store, app) = store_with_app("shop").await;
    assert!(store
        .fire_alert(&app, "crash_loop", "web-1 restarted 3 times")
        .await
        .unwrap());
    assert!(!store
        .fire_alert(&app, "crash_loop", "web-1 restarted 4 times")
        .await
        .unwrap());
    let firing = store.firing_alerts(&app).await.unwrap();
    assert_eq!(firing.len(), 1);
    assert_eq!(firing[0].rule, "crash_loop");
    assert_eq!(firing[0].message, "web-1 restarted 3 times");
    assert!(firing[0].firing_since.is_some());

    assert!(store
        .resolve_alert(&app, "crash_loop", "replicas run")
        .await
        .unwrap());
    assert!(!store
        .resolve_alert(&app, "crash_loop", "replicas run")
        .await
        .unwrap());
    assert!(!store
        .resolve_alert(&app, "error_ratio", "never fired")
        .await
        .unwrap());
    assert!(store.firing_alerts(&app).await.unwrap().is_empty());
    let states = store.alert_states(&app).await.unwrap();
    assert_eq!(states.len(), 1);
    assert!(states[0].resolved_at.is_some());

    // It can fire again.
    assert!(store.fire_alert(&app, "crash_loop", "again").await.unwrap());
    let events: Vec<_> = store
        .events(&app, 10)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.kind == "alert")
        .collect();
    assert_eq!(events.len(), 3, "{events:?}");
    assert!(events[0].message.starts_with("crash_loop firing"));
    assert!(events[1].message.starts_with("crash_loop resolved"));

    // Destroying the app forgets its alerts.
    store.delete_app(&app).await.unwrap();
    assert!(store.alert_states(&app).await.unwrap().is_empty());
}
