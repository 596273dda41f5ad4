//! `bootstrap` against moto: everything made once, with its key settings;
//! a second run finds the same IDs and makes nothing new.

mod support;

use aws_sdk_ec2::types::Filter;
use easydeploy_aws::{bootstrap, BootstrapOptions, Infrastructure, TAG_INFRA};
use support::{unique, Moto};

#[tokio::test]
async fn bootstrap_twice_gives_the_same_infrastructure() {
    let moto = Moto::start();
    let clients = moto.clients().await;
    let prefix = unique("ed");
    let options = BootstrapOptions {
        prefix: prefix.clone(),
        apps_domain: "apps.example.com".into(),
        ..BootstrapOptions::default()
    };
    let first = bootstrap(&clients, &options).await.expect("first bootstrap");
    let second = bootstrap(&clients, &options).await.expect("second bootstrap");
    assert_eq!(first, second);
    assert_eq!(first.public_subnet_ids.len(), 2);
    assert_eq!(first.private_subnet_ids.len(), 2);
    assert_eq!(first.mount_target_ids.len(), 2);
    assert_eq!(
        first.listener_arn, first.http_listener_arn,
        "no certificate: HTTP only"
    );

    // No duplicates.
    let mine = Filter::builder()
        .name(format!("tag:{TAG_INFRA}"))
        .values(&prefix)
        .build();
    let vpcs = clients
        .ec2
        .describe_vpcs()
        .filters(mine.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(vpcs.vpcs().len(), 1);
    let subnets = clients
        .ec2
        .describe_subnets()
        .filters(mine.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(subnets.subnets().len(), 4);
    let zones: std::collections::HashSet<_> = subnets
        .subnets()
        .iter()
        .filter_map(|s| s.availability_zone())
        .collect();
    assert_eq!(zones.len(), 2, "two AZs");
    let groups = clients
        .ec2
        .describe_security_groups()
        .filters(Filter::builder().name("vpc-id").values(&first.vpc_id).build())
        .send()
        .await
        .unwrap();
    let ours: Vec<_> = groups
        .security_groups()
        .iter()
        .filter(|g| g.group_name().unwrap_or_default().starts_with(&prefix))
        .collect();
    assert_eq!(ours.len(), 3);
    let gateways = clients
        .ec2
        .describe_internet_gateways()
        .filters(mine.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(gateways.internet_gateways().len(), 1);
    let nats = clients
        .ec2
        .describe_nat_gateways()
        .filter(mine)
        .send()
        .await
        .unwrap();
    assert_eq!(nats.nat_gateways().len(), 1);

    let lbs = clients
        .elb
        .describe_load_balancers()
        .names(&prefix)
        .send()
        .await
        .unwrap();
    let lb = &lbs.load_balancers()[0];
    assert_eq!(lbs.load_balancers().len(), 1);
    assert_eq!(lb.scheme().unwrap().as_str(), "internet-facing");
    assert_eq!(lb.r#type().unwrap().as_str(), "application");
    let listeners = clients
        .elb
        .describe_listeners()
        .load_balancer_arn(&first.load_balancer_arn)
        .send()
        .await
        .unwrap();
    assert_eq!(listeners.listeners().len(), 1);
    assert_eq!(listeners.listeners()[0].port(), Some(80));

    let clusters = clients
        .ecs
        .describe_clusters()
        .clusters(&first.cluster_name)
        .send()
        .await
        .unwrap();
    assert_eq!(clusters.clusters()[0].status(), Some("ACTIVE"));

    let s3 = &clients.s3;
    // moto answers GetBucketVersioning with a root element the SDK refuses: read the raw body then.
    match s3.get_bucket_versioning().bucket(&first.bucket).send().await {
        Ok(versioning) => assert_eq!(versioning.status().unwrap().as_str(), "Enabled"),
        Err(e) => {
            let body = e
                .raw_response()
                .and_then(|r| r.body().bytes())
                .unwrap_or_default();
            assert!(
                String::from_utf8_lossy(body).contains("<Status>Enabled</Status>"),
                "{e:?}"
            );
        }
    }
    let encryption = s3
        .get_bucket_encryption()
        .bucket(&first.bucket)
        .send()
        .await
        .unwrap();
    let rule = &encryption.server_side_encryption_configuration().unwrap().rules()[0];
    assert_eq!(
        rule.apply_server_side_encryption_by_default()
            .unwrap()
            .sse_algorithm()
            .as_str(),
        "AES256"
    );
    let block = s3
        .get_public_access_block()
        .bucket(&first.bucket)
        .send()
        .await
        .unwrap();
    let block = block.public_access_block_configuration().unwrap();
    assert_eq!(block.block_public_acls(), Some(true));
    assert_eq!(block.restrict_public_buckets(), Some(true));

    let filesystems = clients
        .efs
        .describe_file_systems()
        .creation_token(&prefix)
        .send()
        .await
        .unwrap();
    assert_eq!(filesystems.file_systems().len(), 1);
    assert!(filesystems.file_systems()[0].encrypted().unwrap_or(false));

    let role = clients
        .iam
        .get_role()
        .role_name(format!("{prefix}-codebuild"))
        .send()
        .await
        .unwrap();
    assert!(role.role().unwrap().assume_role_policy_document().is_some());
    let attached = clients
        .iam
        .list_attached_role_policies()
        .role_name(format!("{prefix}-task-execution"))
        .send()
        .await
        .unwrap();
    assert_eq!(attached.attached_policies().len(), 1);

    // The stored file and Terraform outputs give the same infrastructure.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("aws-infrastructure.json");
    first.save(&path).unwrap();
    assert_eq!(Infrastructure::load(&path).unwrap(), first);
    let outputs: serde_json::Map<String, serde_json::Value> = serde_json::to_value(&first)
        .unwrap()
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| {
            (
                k.clone(),
                serde_json::json!({"sensitive": false, "type": "string", "value": v}),
            )
        })
        .collect();
    let adopted =
        Infrastructure::from_terraform_outputs(serde_json::to_string(&outputs).unwrap().as_bytes()).unwrap();
    assert_eq!(adopted, first);
    let missing = Infrastructure::from_terraform_outputs(br#"{"vpc_id": {"value": "vpc-1"}}"#).unwrap_err();
    assert!(missing.message.contains("do not describe"), "{}", missing.message);
}
