//! A deploy through the AWS adapters in the engine's order, against moto,
//! asserting every resource with the SDK; then redeploy, env change, scale,
//! failures and destroy.

mod support;

use aws_sdk_applicationautoscaling::types::ServiceNamespace;
use easydeploy_aws::{AccessKeyCipher, AwsBackends, BuildStatus};
use easydeploy_core::ports::{
    BuildRequest, HealthCheck, ImageBuilder, ImageRegistry, Limits, ReleaseSpec, Runtime, Tenant,
    TenantIdentity,
};
use easydeploy_core::{AppName, EnvVar, PipelineFiles, Port};
use std::sync::Arc;
use support::{FailingRollout, InjectedBuilds, Lines, Moto};

fn pipeline() -> PipelineFiles {
    PipelineFiles {
        dockerfile: "FROM scratch\nCOPY app.txt /\n".into(),
        dockerignore: ".git\n".into(),
        buildspec: "version: 0.2\nphases:\n  build:\n    commands:\n      - docker build .\n".into(),
        extra_files: vec![],
        own_dockerfile: false,
        port: Port::new(8080),
    }
}

fn release(app: &AppName, deployment: &str, image: &str, env: &[(&str, &str)], replicas: u32) -> ReleaseSpec {
    ReleaseSpec {
        tenant: Tenant { id: "default".into() },
        app: app.clone(),
        deployment: deployment.into(),
        image: image.into(),
        port: Port::new(8080),
        env: env.iter().map(|(k, v)| EnvVar::new(k, v).unwrap()).collect(),
        replicas,
        autoscale: None,
        health: HealthCheck::default(),
        limits: Limits::default(),
    }
}

#[tokio::test]
async fn deploy_redeploy_scale_and_destroy_on_aws() {
    let moto = Moto::start();
    let config = moto.config();
    let clients = moto.clients().await;
    let infra = support::infrastructure(&clients, &config.apps_domain).await;
    let prefix = infra.prefix.clone();
    let builds = InjectedBuilds::new(&clients);
    let cipher = AccessKeyCipher::new(&[7; 32]);
    let aws = AwsBackends::new(
        &config,
        &clients,
        infra.clone(),
        Some(cipher),
        Some(builds.clone()),
        None,
    );
    let app = AppName::parse("shop").unwrap();

    // preparing_tenant
    let tenant = Tenant { id: "default".into() };
    let handle = aws.tenants.ensure(&tenant).await.unwrap();
    assert_eq!(aws.tenants.ensure(&tenant).await.unwrap(), handle, "idempotent");
    let user = format!("{prefix}-tenant-default");
    assert!(
        handle.resource.ends_with(&format!("/{user}")),
        "{}",
        handle.resource
    );
    let policy = clients
        .iam
        .get_user_policy()
        .user_name(&user)
        .policy_name("easydeploy-tenant")
        .send()
        .await
        .unwrap();
    assert!(
        policy.policy_document().contains("ResourceTag"),
        "{}",
        policy.policy_document()
    );
    let key = aws
        .tenants
        .access_key("default")
        .await
        .unwrap()
        .expect("stored key");
    let keys = clients
        .iam
        .list_access_keys()
        .user_name(&user)
        .send()
        .await
        .unwrap();
    assert_eq!(keys.access_key_metadata().len(), 1);
    assert_eq!(
        keys.access_key_metadata()[0].access_key_id(),
        Some(key.access_key_id.as_str())
    );
    assert!(!key.secret_access_key.is_empty());
    clients
        .iam
        .get_role()
        .role_name(format!("{prefix}-tenant-default-task"))
        .send()
        .await
        .unwrap();

    // generating_pipeline: the repository
    let repository = aws.registry.ensure_repository(&app).await.unwrap();
    assert_eq!(aws.registry.ensure_repository(&app).await.unwrap(), repository);
    let repo_name = format!("{prefix}-shop");
    let repos = clients
        .ecr
        .describe_repositories()
        .repository_names(&repo_name)
        .send()
        .await
        .unwrap();
    let repo = &repos.repositories()[0];
    assert!(repo.image_scanning_configuration().unwrap().scan_on_push());
    let lifecycle = clients
        .ecr
        .get_lifecycle_policy()
        .repository_name(&repo_name)
        .send()
        .await
        .unwrap();
    assert!(lifecycle
        .lifecycle_policy_text()
        .unwrap()
        .contains("imageCountMoreThan"));

    // building
    let context = tempfile::tempdir().unwrap();
    std::fs::write(context.path().join("app.txt"), "hello").unwrap();
    let tag = format!("{repository}:aaaa1111");
    assert_eq!(aws.builder.find(&tag).await.unwrap(), None);
    let request = BuildRequest {
        tenant: Tenant { id: "default".into() },
        app: app.clone(),
        commit: "aaaa1111".into(),
        deployment: "d1".into(),
        context_dir: context.path().to_owned(),
        pipeline: pipeline(),
        tag: tag.clone(),
    };
    builds.expect(BuildStatus::Succeeded, None, &tag);
    let log = Lines::default();
    let image = aws.builder.build(&request, &log).await.unwrap();
    assert_eq!(image.reference, tag);
    assert!(image.id.starts_with("sha256:"), "{}", image.id);
    assert_eq!(aws.builder.find(&tag).await.unwrap(), Some(image.clone()));
    let source = clients
        .s3
        .head_object()
        .bucket(&infra.bucket)
        .key("sources/default/shop/aaaa1111.zip")
        .send()
        .await
        .unwrap();
    assert!(source.content_length().unwrap_or(0) > 0);
    let projects = support::projects(&clients, &repo_name).await;
    let project = &projects[0];
    assert!(project.environment().unwrap().privileged_mode().unwrap_or(false));
    assert_eq!(project.source().unwrap().r#type().as_str(), "S3");
    assert_eq!(project.service_role(), Some(infra.codebuild_role_arn.as_str()));
    assert!(log.0.lock().unwrap().iter().any(|l| l.contains("started")));

    // pushing
    let reference = aws.registry.push(&image, &log).await.unwrap();
    assert_eq!(reference, tag);

    // releasing, verifying (moto reports 2 running tasks: the real watcher completes)
    let first = release(&app, "d1", &reference, &[("GREETING", "hi")], 2);
    let replicas = aws.runtime.launch(&first).await.unwrap();
    aws.runtime.verify(&first, &replicas).await.unwrap();
    aws.runtime.promote(&first, &replicas).await.unwrap();
    let first_td = replicas[0].id.clone();
    assert!(first_td.ends_with(&format!("{prefix}-shop:1")), "{first_td}");

    let td = clients
        .ecs
        .describe_task_definition()
        .task_definition(&first_td)
        .send()
        .await
        .unwrap();
    let td = td.task_definition().unwrap();
    assert_eq!(td.network_mode().unwrap().as_str(), "awsvpc");
    assert_eq!(td.cpu(), Some("1024"));
    assert_eq!(td.memory(), Some("2048"));
    assert_eq!(td.execution_role_arn(), Some(infra.execution_role_arn.as_str()));
    assert!(td
        .task_role_arn()
        .unwrap()
        .ends_with(&format!("{prefix}-tenant-default-task")));
    let container = &td.container_definitions()[0];
    assert_eq!(container.image(), Some(reference.as_str()));
    assert_eq!(container.port_mappings()[0].container_port(), Some(8080));
    let env: Vec<(&str, &str)> = container
        .environment()
        .iter()
        .map(|kv| (kv.name().unwrap(), kv.value().unwrap()))
        .collect();
    assert_eq!(env, [("PORT", "8080"), ("GREETING", "hi")]);
    let logs = container.log_configuration().unwrap();
    assert_eq!(logs.log_driver().as_str(), "awslogs");
    assert_eq!(
        logs.options().unwrap()["awslogs-group"],
        format!("/{prefix}/apps/shop")
    );

    let services = support::shop_services(&clients, &infra).await;
    let service = &services[0];
    assert_eq!(service.desired_count(), 2);
    assert_eq!(service.task_definition(), Some(first_td.as_str()));
    // moto does not echo every setting back: check those it returns.
    if let Some(network) = service
        .network_configuration()
        .and_then(|n| n.awsvpc_configuration())
    {
        let mut subnets = network.subnets().to_vec();
        subnets.sort();
        let mut private = infra.private_subnet_ids.clone();
        private.sort();
        assert_eq!(subnets, private);
        assert_eq!(
            network.security_groups(),
            std::slice::from_ref(&infra.tasks_security_group_id)
        );
    }
    if let Some(breaker) = service
        .deployment_configuration()
        .and_then(|d| d.deployment_circuit_breaker())
    {
        assert!(breaker.enable() && breaker.rollback());
    }
    let target_group_arn = service.load_balancers()[0].target_group_arn().unwrap().to_owned();

    let groups = clients
        .elb
        .describe_target_groups()
        .target_group_arns(&target_group_arn)
        .send()
        .await
        .unwrap();
    let group = &groups.target_groups()[0];
    assert_eq!(group.target_type().unwrap().as_str(), "ip");
    assert_eq!(group.vpc_id(), Some(infra.vpc_id.as_str()));
    assert_eq!(group.health_check_path(), Some("/"));
    let rules = support::listener_rules(&clients, &infra).await;
    let rule = rules
        .iter()
        .find(|r| {
            r.actions()
                .iter()
                .any(|a| a.target_group_arn() == Some(target_group_arn.as_str()))
        })
        .expect("a rule to the app");
    let hosts = rule.conditions()[0]
        .host_header_config()
        .unwrap()
        .values()
        .to_vec();
    assert_eq!(hosts, ["shop.apps.example.com"]);

    let resource = format!("service/{}/shop", infra.cluster_name);
    let scaling = |clients: &easydeploy_aws::AwsClients| {
        let aas = clients.autoscaling.clone();
        let resource = resource.clone();
        async move {
            let targets = aas
                .describe_scalable_targets()
                .service_namespace(ServiceNamespace::Ecs)
                .resource_ids(&resource)
                .send()
                .await
                .unwrap();
            let policies = aas
                .describe_scaling_policies()
                .service_namespace(ServiceNamespace::Ecs)
                .resource_id(&resource)
                .send()
                .await
                .unwrap();
            let bounds = targets
                .scalable_targets()
                .first()
                .map(|t| (t.min_capacity(), t.max_capacity()));
            (bounds, policies.scaling_policies().len())
        }
    };
    assert_eq!(scaling(&clients).await, (Some((2, 8)), 2));

    // redeploy with another image and an env change: a new revision, the service updated
    let tag2 = format!("{repository}:bbbb2222");
    builds.expect(BuildStatus::Succeeded, None, &tag2);
    let image2 = aws
        .builder
        .build(
            &BuildRequest {
                tag: tag2.clone(),
                commit: "bbbb2222".into(),
                deployment: "d2".into(),
                ..request.clone()
            },
            &log,
        )
        .await
        .unwrap();
    let second = release(&app, "d2", &image2.reference, &[("GREETING", "hello")], 2);
    let replicas2 = aws.runtime.launch(&second).await.unwrap();
    aws.runtime.verify(&second, &replicas2).await.unwrap();
    aws.runtime.promote(&second, &replicas2).await.unwrap();
    assert!(replicas2[0].id.ends_with(":2"), "{}", replicas2[0].id);
    assert_eq!(
        support::shop_services(&clients, &infra).await[0].task_definition(),
        Some(replicas2[0].id.as_str())
    );

    // env change only (no build): a new revision again
    let third = release(&app, "d3", &image2.reference, &[("GREETING", "hey")], 2);
    let replicas3 = aws.runtime.launch(&third).await.unwrap();
    aws.runtime.verify(&third, &replicas3).await.unwrap();
    aws.runtime.promote(&third, &replicas3).await.unwrap();
    assert!(replicas3[0].id.ends_with(":3"), "{}", replicas3[0].id);

    // a failing rollout is discarded: the service goes back to the live revision
    let failing = AwsBackends::new(
        &config,
        &clients,
        infra.clone(),
        None,
        Some(builds.clone()),
        Some(Arc::new(FailingRollout("GET / answered 500"))),
    );
    let fourth = release(&app, "d4", &image2.reference, &[("GREETING", "broken")], 2);
    let replicas4 = failing.runtime.launch(&fourth).await.unwrap();
    let error = failing.runtime.verify(&fourth, &replicas4).await.unwrap_err();
    assert!(error.message.contains("GET / answered 500"), "{}", error.message);
    failing.runtime.discard(&replicas4).await.unwrap();
    assert_eq!(
        support::shop_services(&clients, &infra).await[0].task_definition(),
        Some(replicas3[0].id.as_str()),
        "previous release serving"
    );

    // scale: 1 replica → the scalable target follows
    let scaled = release(&app, "d5", &image2.reference, &[("GREETING", "hey")], 1);
    let replicas5 = aws.runtime.launch(&scaled).await.unwrap();
    aws.runtime.verify(&scaled, &replicas5).await.unwrap();
    aws.runtime.promote(&scaled, &replicas5).await.unwrap();
    assert_eq!(scaling(&clients).await, (Some((1, 4)), 2));

    // a failed build fails with its reason
    let tag3 = format!("{repository}:cccc3333");
    builds.expect(
        BuildStatus::Failed,
        Some("phase BUILD FAILED: docker build exited 1"),
        &tag3,
    );
    let error = aws
        .builder
        .build(
            &BuildRequest {
                tag: tag3,
                deployment: "d6".into(),
                ..request.clone()
            },
            &log,
        )
        .await
        .unwrap_err();
    assert_eq!(error.code, "build_failed");
    assert!(
        error.message.contains("docker build exited 1"),
        "{}",
        error.message
    );

    // status and logs answer
    aws.runtime.status(&app).await.unwrap();
    let _lines = aws.runtime.logs(&app, 10, false).await.unwrap();

    // destroy: nothing of the app is left, nor its tenant's user (its last app)
    aws.runtime.destroy(&app).await.unwrap();
    aws.runtime.destroy(&app).await.unwrap();
    let services = support::shop_services(&clients, &infra).await;
    assert!(services.iter().all(|s| s.status() == Some("INACTIVE")));
    let rules = support::listener_rules(&clients, &infra).await;
    assert!(rules.iter().all(|r| r.is_default().unwrap_or(false)), "{rules:?}");
    assert!(clients
        .elb
        .describe_target_groups()
        .target_group_arns(&target_group_arn)
        .send()
        .await
        .is_err());
    assert_eq!(scaling(&clients).await, (None, 0));
    let active = clients
        .ecs
        .list_task_definitions()
        .family_prefix(&repo_name)
        .status(aws_sdk_ecs::types::TaskDefinitionStatus::Active)
        .send()
        .await
        .unwrap();
    assert!(
        active.task_definition_arns().is_empty(),
        "{:?}",
        active.task_definition_arns()
    );
    assert!(support::projects(&clients, &repo_name).await.is_empty());
    assert!(clients
        .ecr
        .describe_repositories()
        .repository_names(&repo_name)
        .send()
        .await
        .is_err());
    let objects = clients
        .s3
        .list_objects_v2()
        .bucket(&infra.bucket)
        .prefix("sources/default/shop/")
        .send()
        .await
        .unwrap();
    assert!(objects.contents().is_empty());
    assert!(clients.iam.get_user().user_name(&user).send().await.is_err());
}

/// The engine's self-healing discards replicas it finds through `status`
/// (tasks): they are stopped, and ECS replaces them from the service.
#[tokio::test]
async fn discarding_a_task_stops_it() {
    let moto = Moto::start();
    let config = moto.config();
    let clients = moto.clients().await;
    let infra = support::infrastructure(&clients, "localhost").await;
    let aws = AwsBackends::new(&config, &clients, infra.clone(), None, None, None);
    let app = AppName::parse("shop").unwrap();
    aws.tenants
        .ensure(&Tenant { id: "default".into() })
        .await
        .unwrap();
    let spec = release(
        &app,
        "d1",
        "123456789012.dkr.ecr.us-east-1.amazonaws.com/x:1",
        &[],
        1,
    );
    let replicas = aws.runtime.launch(&spec).await.unwrap();
    let network = aws_sdk_ecs::types::NetworkConfiguration::builder()
        .awsvpc_configuration(
            aws_sdk_ecs::types::AwsVpcConfiguration::builder()
                .set_subnets(Some(infra.private_subnet_ids.clone()))
                .security_groups(&infra.tasks_security_group_id)
                .build()
                .unwrap(),
        )
        .build();
    // moto's run_task needs a container-level memory (a 500 otherwise).
    let probe = clients
        .ecs
        .register_task_definition()
        .family("probe")
        .network_mode(aws_sdk_ecs::types::NetworkMode::Awsvpc)
        .requires_compatibilities(aws_sdk_ecs::types::Compatibility::Fargate)
        .cpu("256")
        .memory("512")
        .container_definitions(
            aws_sdk_ecs::types::ContainerDefinition::builder()
                .name("app")
                .image("x")
                .memory(512)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let run = clients
        .ecs
        .run_task()
        .cluster(&infra.cluster_name)
        .task_definition(probe.task_definition().unwrap().task_definition_arn().unwrap())
        .launch_type(aws_sdk_ecs::types::LaunchType::Fargate)
        .network_configuration(network)
        .send()
        .await
        .unwrap();
    let task = run.tasks()[0].task_arn().unwrap().to_owned();
    let stale = easydeploy_core::ports::Replica {
        id: task.clone(),
        name: "t".into(),
        addr: None,
    };
    aws.runtime.discard(std::slice::from_ref(&stale)).await.unwrap();
    let described = clients
        .ecs
        .describe_tasks()
        .cluster(&infra.cluster_name)
        .tasks(&task)
        .send()
        .await
        .unwrap();
    assert_eq!(described.tasks()[0].desired_status(), Some("STOPPED"));
    // The release itself is untouched: the service still runs it.
    assert_eq!(
        support::shop_services(&clients, &infra).await[0].task_definition(),
        Some(replicas[0].id.as_str())
    );
}
