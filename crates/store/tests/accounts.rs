use easydeploy_core::{AppName, AppSettings, Branch, EnvVar, GitSource};
use easydeploy_store::{MasterKey, NewDeployment, Role, Store, StoreError};

async fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("state.db")).await.unwrap();
    (dir, store)
}

fn settings_with(env: &[&str]) -> AppSettings {
    let mut settings = AppSettings::new(
        GitSource::parse("/srv/repo").unwrap(),
        Branch::parse("main").unwrap(),
    );
    settings.merge_env(env.iter().map(|e| EnvVar::parse(e).unwrap()).collect());
    settings
}

/// Every byte SQLite wrote: the database and its write-ahead log.
fn raw_files(dir: &std::path::Path) -> Vec<u8> {
    let mut bytes = Vec::new();
    for name in ["state.db", "state.db-wal"] {
        bytes.extend(std::fs::read(dir.join(name)).unwrap_or_default());
    }
    bytes
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle.as_bytes())
}

#[tokio::test]
async fn secrets_are_sealed_in_the_database_file_and_read_back() {
    let (dir, store) = store().await;
    let app = AppName::parse("vault").unwrap();
    store
        .create_app(&app, "t1", &settings_with(&["DB_PASSWORD=s3cret-value-one"]))
        .await
        .unwrap();
    let created = store.app(&app).await.unwrap();
    let settings = settings_with(&["DB_PASSWORD=s3cret-value-one", "API_KEY=s3cret-value-two"]);
    store.update_settings(&app, &settings).await.unwrap();
    store
        .enqueue(&app, &settings, &NewDeployment::build(None))
        .await
        .unwrap();
    let (alerts, _) = store
        .set_alerts(&app, "http://127.0.0.1:9/hook", &Default::default(), false)
        .await
        .unwrap();
    let user = store
        .create_user("dev@example.com", Some("hash"), false)
        .await
        .unwrap();
    store
        .link_github(&user.id, 42, "dev", "gho_s3cret-value-three")
        .await
        .unwrap();

    let back = store.app(&app).await.unwrap();
    assert_eq!(back.settings.env, settings.env);
    assert_eq!(back.webhook_secret, created.webhook_secret);
    assert_eq!(
        store.deployments(&app, 10).await.unwrap()[0].settings.env,
        settings.env
    );
    assert_eq!(
        store.github_token(&user.id).await.unwrap().as_deref(),
        Some("gho_s3cret-value-three")
    );

    let raw = raw_files(dir.path());
    assert!(contains(&raw, "DB_PASSWORD"), "names stay readable");
    for secret in [
        "s3cret-value-one",
        "s3cret-value-two",
        "gho_s3cret-value-three",
        &created.webhook_secret,
        &alerts.secret,
    ] {
        assert!(!contains(&raw, secret), "{secret} is in the database file");
    }

    // Another key cannot read them back.
    drop(store);
    let wrong = Store::open_with_key(&dir.path().join("state.db"), MasterKey::generate())
        .await
        .unwrap();
    assert!(matches!(wrong.app(&app).await, Err(StoreError::Key(_))));
}

#[tokio::test]
async fn users_tokens_and_teams() {
    let (_d, store) = store().await;
    let admin = store.ensure_admin("admin@localhost").await.unwrap();
    assert!(admin.admin);
    assert_eq!(admin.tenant, "default");
    assert_eq!(store.ensure_admin("other@localhost").await.unwrap().id, admin.id);

    let ann = store
        .create_user("ann@example.com", Some("h"), false)
        .await
        .unwrap();
    let bob = store
        .create_user("bob@example.com", Some("h"), false)
        .await
        .unwrap();
    assert_ne!(ann.tenant, bob.tenant);
    let dup = store
        .create_user("ANN@example.com", Some("h"), false)
        .await
        .unwrap_err();
    assert!(
        matches!(dup, StoreError::Conflict(_)),
        "emails are case-insensitive"
    );
    assert_eq!(
        store.user_by_email("Ann@Example.com").await.unwrap().unwrap().id,
        ann.id
    );

    store.add_token(&ann.id, "tok1", "cli", "digest1").await.unwrap();
    assert_eq!(
        store.token_digest("tok1").await.unwrap(),
        Some((ann.id.clone(), "digest1".into()))
    );
    assert!(
        !store.delete_token(&bob.id, "tok1").await.unwrap(),
        "only the owner revokes"
    );
    assert_eq!(store.tokens(&ann.id).await.unwrap().len(), 1);
    assert!(store.delete_token(&ann.id, "tok1").await.unwrap());
    assert_eq!(store.token_digest("tok1").await.unwrap(), None);

    let team = store.create_team("shop", &ann.id).await.unwrap();
    assert!(matches!(
        store.create_team("shop", &bob.id).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(store.role_in_tenant(&bob, &team.tenant).await.unwrap(), None);
    store.set_member(&team, &bob.id, Role::Viewer).await.unwrap();
    assert_eq!(
        store.role_in_tenant(&bob, &team.tenant).await.unwrap(),
        Some(Role::Viewer)
    );
    assert_eq!(store.role_in_tenant(&bob, &ann.tenant).await.unwrap(), None);
    assert_eq!(
        store.role_in_tenant(&admin, &ann.tenant).await.unwrap(),
        Some(Role::Owner)
    );
    // The last owner cannot leave or be demoted.
    assert!(matches!(
        store.set_member(&team, &ann.id, Role::Deployer).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        store.remove_member(&team, &ann.id).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(store.members(&team).await.unwrap().len(), 2);

    let settings = settings_with(&[]);
    let app_of = |n: &str| AppName::parse(n).unwrap();
    store
        .create_app(&app_of("ann-app"), &ann.tenant, &settings)
        .await
        .unwrap();
    store
        .create_app(&app_of("team-app"), &team.tenant, &settings)
        .await
        .unwrap();
    store
        .create_app(&app_of("bob-app"), &bob.tenant, &settings)
        .await
        .unwrap();
    let names =
        |apps: Vec<easydeploy_store::App>| apps.into_iter().map(|a| a.name.to_string()).collect::<Vec<_>>();
    assert_eq!(
        names(store.apps_visible_to(&bob).await.unwrap()),
        ["bob-app", "team-app"]
    );
    assert_eq!(
        names(store.apps_visible_to(&ann).await.unwrap()),
        ["ann-app", "team-app"]
    );
    assert_eq!(store.apps_visible_to(&admin).await.unwrap().len(), 3);

    assert!(store.remove_member(&team, &bob.id).await.unwrap());
    assert_eq!(names(store.apps_visible_to(&bob).await.unwrap()), ["bob-app"]);

    store.put_oauth_state("st1").await.unwrap();
    assert!(store.take_oauth_state("st1").await.unwrap());
    assert!(
        !store.take_oauth_state("st1").await.unwrap(),
        "a state is used once"
    );
    assert!(!store.take_oauth_state("forged").await.unwrap());
}

#[tokio::test]
async fn a_version_2_database_gains_github_links_and_keeps_its_apps() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let app = AppName::parse("linked").unwrap();
    {
        let store = Store::open(&path).await.unwrap();
        store.create_app(&app, "t1", &settings_with(&[])).await.unwrap();
    }
    // Put the file back to how version 2 left it.
    {
        use sqlx::ConnectOptions;
        let mut conn = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(&path)
            .connect()
            .await
            .unwrap();
        sqlx::raw_sql("DROP TABLE github_links; PRAGMA user_version = 2;")
            .execute(&mut conn)
            .await
            .unwrap();
    }
    for _ in 0..2 {
        let store = Store::open(&path).await.unwrap();
        assert!(store.app(&app).await.is_ok());
        let link = easydeploy_store::GithubLink {
            owner: "octo".into(),
            repo: "shop".into(),
            source: "https://github.com/octo/shop.git".into(),
            user_id: "u1".into(),
            hook_id: Some(42),
        };
        store.link_app_to_github(&app, &link).await.unwrap();
        assert_eq!(store.github_link(&app).await.unwrap(), Some(link));
    }
    let store = Store::open(&path).await.unwrap();
    store.delete_app(&app).await.unwrap();
    assert_eq!(store.github_link(&app).await.unwrap(), None);
}
