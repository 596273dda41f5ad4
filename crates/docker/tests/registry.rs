//! The local registry and tenant networks on the real engine.

mod support;

use easydeploy_core::ports::{ImageBuilder, ImageRegistry, Tenant, TenantIdentity};
use easydeploy_docker::{DockerBuilder, DockerRegistry, DockerTenants};
use support::*;

#[tokio::test]
async fn tenant_networks_are_created_once() {
    let docker = docker().await;
    let tenants = DockerTenants::new(docker.clone());
    let tenant = Tenant {
        id: "edtest-net".into(),
    };
    let (a, b) = tokio::join!(tenants.ensure(&tenant), tenants.ensure(&tenant));
    assert_eq!(a.unwrap().resource, "easydeploy-edtest-net");
    assert_eq!(b.unwrap().resource, "easydeploy-edtest-net");
    let network = docker
        .inspect_network::<String>("easydeploy-edtest-net", None)
        .await
        .unwrap();
    assert_eq!(network.driver.as_deref(), Some("bridge"));
    assert_eq!(network.labels.unwrap()["easydeploy.tenant"], "edtest-net");
    docker.remove_network("easydeploy-edtest-net").await.unwrap();
}

#[tokio::test]
async fn push_keeps_images_local_and_prune_removes_the_ones_not_kept() {
    let docker = docker().await;
    let app = app_name("prune");
    let _cleanup = Cleanup(app.clone());
    let registry = DockerRegistry::new(docker.clone());
    assert_eq!(
        registry.ensure_repository(&app).await.unwrap(),
        format!("easydeploy/{app}")
    );

    let old = build_image(&docker, &app, HTTPD).await.unwrap();
    let new = build_image(&docker, &app, r#"["/busybox","httpd","-f","-p","8080","-h","/"]"#)
        .await
        .unwrap();
    let log = Lines::default();
    assert_eq!(registry.push(&new, &log).await.unwrap(), new.reference);
    assert_eq!(log.all().len(), 1);
    let builder = DockerBuilder::new(docker.clone());

    // While a build runs (its steps may take old images' parents from the
    // cache), pruning leaves the old image for a later release.
    let other = app_name("building");
    let _other_cleanup = Cleanup(other.clone());
    let dockerfile = format!(
        "FROM scratch\nCOPY busybox /busybox\nENV NONCE={other}\nRUN [\"/busybox\", \"sleep\", \"3\"]\nCMD [\"/busybox\"]\n"
    );
    let context = busybox_context(&dockerfile);
    let request = build_request(&other, context.path(), own_pipeline(&dockerfile));
    let build_log = Lines::default();
    let building = builder.build(&request, &build_log);
    let prune_meanwhile = async {
        // The builder holds the lock before the engine prints its first step.
        let started = std::time::Instant::now();
        while !build_log.all().iter().any(|l| l.contains("Step 1/")) {
            assert!(
                started.elapsed() < std::time::Duration::from_secs(120),
                "the build never started: {:?}",
                build_log.all()
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        registry
            .prune(&app, std::slice::from_ref(&new.reference))
            .await
            .unwrap();
        builder.find(&old.reference).await.unwrap()
    };
    let (built, during) = tokio::join!(building, prune_meanwhile);
    built.unwrap();
    assert_eq!(during, Some(old.clone()), "pruned during a build");

    registry
        .prune(&app, std::slice::from_ref(&new.reference))
        .await
        .unwrap();
    assert_eq!(builder.find(&old.reference).await.unwrap(), None);
    assert_eq!(builder.find(&new.reference).await.unwrap(), Some(new.clone()));
    registry.prune(&app, &[]).await.unwrap();
    assert_eq!(builder.find(&new.reference).await.unwrap(), None);
}
