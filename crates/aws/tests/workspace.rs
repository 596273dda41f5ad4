//! The EFS workspace: the build context is written under the mounted
//! workspace and the CodeBuild project mounts the bootstrap's file system
//! and builds there, without a source download.

mod support;

use easydeploy_aws::{AwsBackends, AwsConfig, BuildStatus, Workspace};
use easydeploy_core::ports::{BuildRequest, ImageBuilder, ImageRegistry, Tenant};
use easydeploy_core::{AppName, PipelineFiles, Port};
use support::{InjectedBuilds, Lines, Moto, Recorder};

#[tokio::test]
async fn efs_builds_read_the_checkout_from_the_mounted_workspace() {
    let moto = Moto::start();
    let mount = tempfile::tempdir().unwrap();
    let config = AwsConfig {
        workspace: Workspace::Efs {
            path: mount.path().to_owned(),
        },
        ..moto.config()
    };
    let recorder = Recorder::default();
    let clients = moto.recording_clients(&config, &recorder).await;
    let infra = support::infrastructure(&clients, "localhost").await;
    let prefix = infra.prefix.clone();
    let builds = InjectedBuilds::new(&clients);
    let aws = AwsBackends::new(&config, &clients, infra.clone(), None, Some(builds.clone()), None);
    let app = AppName::parse("shop").unwrap();
    let repository = aws.registry.ensure_repository(&app).await.unwrap();

    // A checkout (root folder applied) with its .git and a file the pipeline replaces.
    let checkout = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(checkout.path().join(".git")).unwrap();
    std::fs::write(checkout.path().join(".git/HEAD"), "ref").unwrap();
    std::fs::create_dir_all(checkout.path().join("www")).unwrap();
    std::fs::write(checkout.path().join("www/index.html"), "hello").unwrap();
    std::fs::write(checkout.path().join("buildspec.yml"), "theirs").unwrap();
    let buildspec = "version: 0.2\nphases:\n  build:\n    commands:\n      - docker build -t \"$REPOSITORY_URI:$IMAGE_TAG\" .\n";
    let commit = "0123456789abcdef0123456789abcdef01234567";
    let tag = format!("{repository}:c0ffee");
    let request = BuildRequest {
        tenant: Tenant { id: "acme".into() },
        app: app.clone(),
        commit: commit.into(),
        deployment: "d1".into(),
        context_dir: checkout.path().to_owned(),
        pipeline: PipelineFiles {
            dockerfile: "FROM scratch\nCOPY www /www\n".into(),
            dockerignore: ".git\n".into(),
            buildspec: buildspec.into(),
            extra_files: vec![],
            own_dockerfile: false,
            port: Port::new(8080),
        },
        tag: tag.clone(),
    };
    builds.expect(BuildStatus::Succeeded, None, &tag);
    let log = Lines::default();
    let image = aws.builder.build(&request, &log).await.unwrap();
    assert_eq!(image.reference, tag);

    // The files on the workspace: checkout without .git, plus the pipeline files.
    let dir = mount.path().join("acme/shop").join(commit);
    assert_eq!(
        std::fs::read_to_string(dir.join("www/index.html")).unwrap(),
        "hello"
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("buildspec.yml")).unwrap(),
        buildspec
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("Dockerfile.easydeploy")).unwrap(),
        "FROM scratch\nCOPY www /www\n"
    );
    assert_eq!(
        std::fs::read_to_string(dir.join(".dockerignore")).unwrap(),
        ".git\n"
    );
    assert!(!dir.join(".git").exists());
    let mut entries: Vec<String> = std::fs::read_dir(mount.path().join("acme/shop"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    entries.sort();
    assert_eq!(entries, [commit], "no partial copy is left behind");

    // The project as moto stores it: no source, the buildspec starts in the workspace, in the VPC.
    let inside = format!("/mnt/easydeploy-workspace/acme/shop/{commit}");
    let projects = support::projects(&clients, &format!("{prefix}-shop")).await;
    let project = &projects[0];
    let source = project.source().unwrap();
    assert_eq!(source.r#type().as_str(), "NO_SOURCE");
    assert!(
        source
            .buildspec()
            .unwrap()
            .contains(&format!("- cd '{inside}'\n      - docker build")),
        "{}",
        source.buildspec().unwrap()
    );
    let vpc = project
        .vpc_config()
        .expect("the project runs in the VPC (EFS needs it)");
    assert_eq!(vpc.vpc_id(), Some(infra.vpc_id.as_str()));
    assert_eq!(vpc.subnets(), infra.private_subnet_ids.as_slice());
    assert_eq!(
        vpc.security_group_ids(),
        std::slice::from_ref(&infra.tasks_security_group_id)
    );
    assert!(project
        .tags()
        .iter()
        .any(|t| t.key() == Some("easydeploy:tenant") && t.value() == Some("acme")));

    // moto does not store fileSystemLocations: assert what was sent.
    let efs = format!("{}.efs.us-east-1.amazonaws.com:/", infra.file_system_id);
    let created = recorder.bodies("CreateProject");
    assert_eq!(created.len(), 1);
    let location = &created[0]["fileSystemLocations"][0];
    assert_eq!(location["type"], "EFS");
    assert_eq!(location["location"], efs.as_str());
    assert_eq!(location["mountPoint"], "/mnt/easydeploy-workspace");
    assert_eq!(location["identifier"], "WORKSPACE");
    assert!(
        created[0]["source"].get("location").is_none(),
        "AWS takes no location for NO_SOURCE"
    );
    let started = recorder.bodies("StartBuild");
    assert_eq!(started.len(), 1);
    assert_eq!(started[0]["sourceTypeOverride"], "NO_SOURCE");
    assert!(started[0]["buildspecOverride"]
        .as_str()
        .unwrap()
        .contains(&inside));

    // Nothing went to S3.
    let listed = clients
        .s3
        .list_objects_v2()
        .bucket(&infra.bucket)
        .prefix("sources/")
        .send()
        .await
        .unwrap();
    assert_eq!(listed.key_count(), Some(0));

    // A rebuild of the same commit replaces the folder.
    std::fs::remove_file(checkout.path().join("www/index.html")).unwrap();
    std::fs::write(checkout.path().join("www/new.html"), "new").unwrap();
    let tag2 = format!("{repository}:c0ffee2");
    builds.expect(BuildStatus::Succeeded, None, &tag2);
    aws.builder
        .build(
            &BuildRequest {
                tag: tag2,
                deployment: "d2".into(),
                ..request.clone()
            },
            &log,
        )
        .await
        .unwrap();
    assert!(!dir.join("www/index.html").exists());
    assert_eq!(std::fs::read_to_string(dir.join("www/new.html")).unwrap(), "new");

    // Folder names come from the request: one that is not a folder name is refused.
    let error = aws
        .builder
        .build(
            &BuildRequest {
                commit: "../../etc".into(),
                ..request.clone()
            },
            &log,
        )
        .await
        .unwrap_err();
    assert!(
        error.message.contains("cannot name a folder"),
        "{}",
        error.message
    );

    // Moving the platform to the S3 workspace remakes the project with an S3
    // source and no VPC; moving back makes it an EFS project again.
    let s3_config = AwsConfig {
        workspace: Workspace::S3,
        ..config.clone()
    };
    let on_s3 = AwsBackends::new(
        &s3_config,
        &clients,
        infra.clone(),
        None,
        Some(builds.clone()),
        None,
    );
    for (backends, expect_s3) in [(&on_s3, true), (&aws, false)] {
        let tag = format!("{repository}:{}", if expect_s3 { "on-s3" } else { "on-efs" });
        builds.expect(BuildStatus::Succeeded, None, &tag);
        backends
            .builder
            .build(
                &BuildRequest {
                    tag,
                    ..request.clone()
                },
                &log,
            )
            .await
            .unwrap();
        let projects = support::projects(&clients, &format!("{prefix}-shop")).await;
        let now = &projects[0];
        let source = now.source().unwrap();
        if expect_s3 {
            assert_eq!(source.r#type().as_str(), "S3");
            assert!(now.vpc_config().is_none_or(|v| v.vpc_id().is_none()));
            let key = format!("sources/acme/shop/{commit}.zip");
            clients
                .s3
                .head_object()
                .bucket(&infra.bucket)
                .key(&key)
                .send()
                .await
                .expect("the source zip");
        } else {
            assert_eq!(source.r#type().as_str(), "NO_SOURCE");
            assert_eq!(
                now.vpc_config().and_then(|v| v.vpc_id()),
                Some(infra.vpc_id.as_str())
            );
        }
    }
    assert_eq!(
        recorder.bodies("DeleteProject").len(),
        2,
        "each move replaced the project once"
    );
    let created = recorder.bodies("CreateProject");
    assert_eq!(created.len(), 3);
    assert!(created[1].get("fileSystemLocations").is_none());
    assert_eq!(created[2]["fileSystemLocations"][0]["type"], "EFS");
}
