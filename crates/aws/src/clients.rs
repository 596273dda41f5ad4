//! One client per AWS service, built once from the AWS environment.

use crate::config::AwsConfig;
use aws_config::retry::RetryConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_s3::config::{Credentials, SharedInterceptor};
use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};

/// The AWS service clients the adapters use.
#[derive(Clone, Debug)]
pub struct AwsClients {
    /// The configuration the clients were made from.
    pub sdk: SdkConfig,
    /// Application Auto Scaling.
    pub autoscaling: aws_sdk_applicationautoscaling::Client,
    /// CloudWatch Logs.
    pub logs: aws_sdk_cloudwatchlogs::Client,
    /// CloudWatch metrics.
    pub cloudwatch: aws_sdk_cloudwatch::Client,
    /// CodeBuild.
    pub codebuild: aws_sdk_codebuild::Client,
    /// EC2 (VPC, subnets, security groups).
    pub ec2: aws_sdk_ec2::Client,
    /// ECR.
    pub ecr: aws_sdk_ecr::Client,
    /// ECS.
    pub ecs: aws_sdk_ecs::Client,
    /// EFS.
    pub efs: aws_sdk_efs::Client,
    /// Elastic Load Balancing v2 (ALB).
    pub elb: aws_sdk_elasticloadbalancingv2::Client,
    /// IAM.
    pub iam: aws_sdk_iam::Client,
    /// S3 (path-style when an endpoint is given).
    pub s3: aws_sdk_s3::Client,
    /// STS (the account id).
    pub sts: aws_sdk_sts::Client,
}

impl AwsClients {
    /// Clients for `config`: region, credentials and endpoint from the config,
    /// else from the AWS environment; a rustls (ring) HTTPS client; standard
    /// retries (throttling, 5xx) with exponential backoff.
    pub async fn connect(config: &AwsConfig) -> Self {
        Self::connect_with(config, &[]).await
    }

    /// [`AwsClients::connect`] with interceptors added to every client (used
    /// by tests to inject AWS errors at the SDK boundary).
    pub async fn connect_with(config: &AwsConfig, interceptors: &[SharedInterceptor]) -> Self {
        let http = aws_smithy_http_client::Builder::new()
            .tls_provider(tls::Provider::Rustls(CryptoMode::Ring))
            .build_https();
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .http_client(http)
            .retry_config(RetryConfig::standard().with_max_attempts(config.max_attempts.max(1)));
        if let Some(region) = &config.region {
            loader = loader.region(Region::new(region.clone()));
        }
        if let Some(endpoint) = &config.endpoint_url {
            loader = loader.endpoint_url(endpoint.clone());
        }
        if let Some((id, secret)) = &config.credentials {
            loader = loader.credentials_provider(Credentials::new(id, secret, None, None, "easydeploy"));
        }
        let sdk = loader.load().await;
        Self::from_sdk_config(sdk, interceptors)
    }

    /// Clients for an SDK configuration.
    pub fn from_sdk_config(sdk: SdkConfig, interceptors: &[SharedInterceptor]) -> Self {
        macro_rules! client {
            ($krate:ident) => {{
                let mut builder = $krate::config::Builder::from(&sdk);
                for interceptor in interceptors {
                    builder.push_interceptor(interceptor.clone());
                }
                $krate::Client::from_conf(builder.build())
            }};
        }
        let s3 = {
            let mut builder =
                aws_sdk_s3::config::Builder::from(&sdk).force_path_style(sdk.endpoint_url().is_some());
            for interceptor in interceptors {
                builder.push_interceptor(interceptor.clone());
            }
            aws_sdk_s3::Client::from_conf(builder.build())
        };
        Self {
            autoscaling: client!(aws_sdk_applicationautoscaling),
            logs: client!(aws_sdk_cloudwatchlogs),
            cloudwatch: client!(aws_sdk_cloudwatch),
            codebuild: client!(aws_sdk_codebuild),
            ec2: client!(aws_sdk_ec2),
            ecr: client!(aws_sdk_ecr),
            ecs: client!(aws_sdk_ecs),
            efs: client!(aws_sdk_efs),
            elb: client!(aws_sdk_elasticloadbalancingv2),
            iam: client!(aws_sdk_iam),
            s3,
            sts: client!(aws_sdk_sts),
            sdk,
        }
    }

    /// The region the clients talk to.
    pub fn region(&self) -> String {
        self.sdk
            .region()
            .map_or_else(|| "us-east-1".to_owned(), |r| r.to_string())
    }
}
