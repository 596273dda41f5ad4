//! AWS errors injected at the SDK boundary surface as clear backend errors.

mod support;

use easydeploy_aws::AwsBackends;
use easydeploy_core::ports::{ImageRegistry, Tenant, TenantIdentity};
use easydeploy_core::AppName;
use support::Moto;

#[tokio::test]
async fn missing_permissions_and_throttling_are_clear_errors() {
    let moto = Moto::start();
    let config = moto.config();
    let clients = moto.clients().await;
    let infra = support::infrastructure(&clients, "localhost").await;
    let app = AppName::parse("shop").unwrap();

    let denied = moto
        .failing_clients(
            "CreateRepository",
            400,
            "AccessDeniedException",
            "User: arn:aws:iam::123456789012:user/platform is not authorized to perform: ecr:CreateRepository",
        )
        .await;
    let aws = AwsBackends::new(&config, &denied, infra.clone(), None, None, None);
    let error = aws.registry.ensure_repository(&app).await.unwrap_err();
    assert_eq!(error.code, "aws_access_denied");
    assert!(!error.retryable);
    assert!(
        error.message.starts_with("cannot create the ECR repository"),
        "{}",
        error.message
    );
    assert!(
        error.message.contains("ecr:CreateRepository"),
        "{}",
        error.message
    );

    let throttled = moto
        .failing_clients("CreateRepository", 400, "ThrottlingException", "Rate exceeded")
        .await;
    let aws = AwsBackends::new(&config, &throttled, infra.clone(), None, None, None);
    // (moto did make the first repository: only its answer was replaced.)
    let other = AppName::parse("other").unwrap();
    let error = aws.registry.ensure_repository(&other).await.unwrap_err();
    assert_eq!(error.code, "aws_throttled");
    assert!(error.retryable, "the engine retries it");
    assert!(error.message.contains("throttling"), "{}", error.message);

    // The same calls succeed once AWS lets them through.
    let aws = AwsBackends::new(&config, &clients, infra, None, None, None);
    aws.registry.ensure_repository(&app).await.unwrap();
    aws.tenants.ensure(&Tenant { id: "t1".into() }).await.unwrap();
}
