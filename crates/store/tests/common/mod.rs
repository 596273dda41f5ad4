//! Helpers shared by the store's test binaries (each uses only some).
#![allow(dead_code)]

use easydeploy_core::{AppName, AppSettings, Branch, DeploymentState, GitSource};
use easydeploy_store::{Deployment, NewDeployment, Store};

/// A store in a fresh temporary dir (keep the dir alive while it is used).
pub async fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("state.db")).await.unwrap();
    (dir, store)
}

/// A fresh store with one app, `name`, of [`settings`] and tenant "t".
pub async fn store_with_app(name: &str) -> (tempfile::TempDir, Store, AppName) {
    let (dir, store) = store().await;
    let app = AppName::parse(name).unwrap();
    store.create_app(&app, "t", &settings()).await.unwrap();
    (dir, store, app)
}

/// An app's settings: branch main of /srv/repo.
pub fn settings() -> AppSettings {
    AppSettings::new(
        GitSource::parse("/srv/repo").unwrap(),
        Branch::parse("main").unwrap(),
    )
}

pub fn name(n: &str) -> AppName {
    AppName::parse(n).unwrap()
}

/// Queues a build of the app with [`settings`].
pub async fn enqueue_build(store: &Store, app: &AppName) -> Deployment {
    store
        .enqueue(app, &settings(), &NewDeployment::build(None))
        .await
        .unwrap()
}

/// Moves a claimed deployment through every step up to `verifying`.
pub async fn walk_to_verifying(store: &Store, id: &str, owner: &str) {
    let mut s = DeploymentState::PreparingTenant;
    while s != DeploymentState::Verifying {
        s = s.next().unwrap();
        store.advance(id, owner, s, None).await.unwrap();
    }
}
