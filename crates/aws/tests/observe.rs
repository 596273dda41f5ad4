//! Observability on AWS against moto: the app's logs from CloudWatch Logs,
//! its resource use from ECS metrics and its traffic from ALB metrics, put
//! with the SDK and read back through the adapters.

mod support;

use aws_sdk_cloudwatch::types::{Dimension, MetricDatum, StandardUnit};
use aws_sdk_cloudwatchlogs::types::InputLogEvent;
use easydeploy_aws::{AwsBackends, AwsConfig};
use easydeploy_core::ports::{
    HealthCheck, Limits, LoadMetrics, ReleaseSpec, Runtime, Tenant, TenantIdentity, LATENCY_BUCKETS_MS,
};
use easydeploy_core::{AppName, Port};
use futures_util::StreamExt;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use support::Moto;

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as i64
}

fn datum(name: &str, value: f64, unit: StandardUnit, dimensions: &[(&str, &str)]) -> MetricDatum {
    MetricDatum::builder()
        .metric_name(name)
        .value(value)
        .unit(unit)
        .timestamp(SystemTime::now().into())
        .set_dimensions(Some(
            dimensions
                .iter()
                .map(|(n, v)| Dimension::builder().name(*n).value(*v).build())
                .collect(),
        ))
        .build()
}

#[tokio::test]
async fn logs_stats_and_traffic_come_from_cloudwatch() {
    let moto = Moto::start();
    let config = AwsConfig {
        metrics_refresh: Duration::from_millis(200),
        ..moto.config()
    };
    let clients = moto.clients().await;
    let infra = support::infrastructure(&clients, "localhost").await;
    let prefix = infra.prefix.clone();
    let aws = AwsBackends::new(&config, &clients, infra.clone(), None, None, None);
    let app = AppName::parse("shop").unwrap();
    let tenant = Tenant { id: "default".into() };
    aws.tenants.ensure(&tenant).await.unwrap();
    let release = ReleaseSpec {
        tenant,
        app: app.clone(),
        deployment: "d1".into(),
        image: "123456789012.dkr.ecr.us-east-1.amazonaws.com/x:1".into(),
        port: Port::new(8080),
        env: vec![],
        replicas: 2,
        autoscale: None,
        health: HealthCheck::default(),
        limits: Limits::default(),
    };
    assert_eq!(aws.runtime.stats(&app).await.unwrap(), [], "no service yet");
    let replicas = aws.runtime.launch(&release).await.unwrap();
    aws.runtime.verify(&release, &replicas).await.unwrap();
    aws.runtime.promote(&release, &replicas).await.unwrap();

    // Logs: the awslogs streams `app/app/<task>` of the app's group.
    let group = format!("/{prefix}/apps/shop");
    let put = |stream: &'static str, lines: Vec<&'static str>| {
        let logs = clients.logs.clone();
        let group = group.clone();
        async move {
            let created = logs
                .create_log_stream()
                .log_group_name(&group)
                .log_stream_name(stream)
                .send()
                .await;
            if let Err(e) = created {
                assert!(format!("{e:?}").contains("ResourceAlreadyExists"), "{e:?}");
            }
            let t = now_ms();
            let events: Vec<InputLogEvent> = lines
                .iter()
                .enumerate()
                .map(|(i, l)| {
                    InputLogEvent::builder()
                        .timestamp(t + i as i64)
                        .message(*l)
                        .build()
                        .unwrap()
                })
                .collect();
            logs.put_log_events()
                .log_group_name(&group)
                .log_stream_name(stream)
                .set_log_events(Some(events))
                .send()
                .await
                .unwrap();
        }
    };
    put("app/app/task1", vec!["one", "two", "three"]).await;
    put("other/side-car/task1", vec!["not the app"]).await;
    let lines: Vec<_> = aws.runtime.logs(&app, 2, false).await.unwrap().collect().await;
    let text: Vec<(&str, &str)> = lines
        .iter()
        .map(|l| (l.replica.as_str(), l.line.as_str()))
        .collect();
    assert_eq!(text, [("task1", "two"), ("task1", "three")]);

    let mut follow = aws.runtime.logs(&app, 1, true).await.unwrap();
    assert_eq!(follow.next().await.unwrap().line, "three");
    tokio::time::sleep(Duration::from_millis(20)).await;
    put("app/app/task2", vec!["four"]).await;
    let next = tokio::time::timeout(Duration::from_secs(15), follow.next())
        .await
        .expect("a followed line within 15 s")
        .unwrap();
    assert_eq!((next.replica.as_str(), next.line.as_str()), ("task2", "four"));

    // Stats: the service's CPU and memory utilization (percent of the task size).
    assert_eq!(aws.runtime.stats(&app).await.unwrap(), [], "no datapoints yet");
    let service_dims = [
        ("ClusterName", infra.cluster_name.as_str()),
        ("ServiceName", "shop"),
    ];
    clients
        .cloudwatch
        .put_metric_data()
        .namespace("AWS/ECS")
        .metric_data(datum(
            "CPUUtilization",
            50.0,
            StandardUnit::Percent,
            &service_dims,
        ))
        .metric_data(datum(
            "MemoryUtilization",
            25.0,
            StandardUnit::Percent,
            &service_dims,
        ))
        .send()
        .await
        .unwrap();
    let stats = aws.runtime.stats(&app).await.unwrap();
    assert_eq!(stats.len(), 1, "{stats:?}");
    assert_eq!(stats[0].replica, "shop");
    // Default limits: 1 CPU (1024 units), 2048 MiB on Fargate.
    assert!((stats[0].cpu_percent - 50.0).abs() < 1e-6, "{stats:?}");
    assert_eq!(stats[0].memory_limit_bytes, 2048 * 1024 * 1024);
    assert_eq!(stats[0].memory_bytes, 512 * 1024 * 1024);

    // Traffic: the ALB metrics of the app's target group.
    let target_group = clients
        .elb
        .describe_target_groups()
        .names(format!("{prefix}-shop"))
        .send()
        .await
        .unwrap()
        .target_groups()[0]
        .target_group_arn()
        .unwrap()
        .to_owned();
    let lb = infra
        .load_balancer_arn
        .split_once(":loadbalancer/")
        .unwrap()
        .1
        .to_owned();
    let tg = format!(
        "targetgroup/{}",
        target_group.split_once(":targetgroup/").unwrap().1
    );
    let alb_dims = [("LoadBalancer", lb.as_str()), ("TargetGroup", tg.as_str())];
    assert_eq!(
        aws.traffic.traffic("shop"),
        None,
        "the first call does not wait for AWS"
    );
    let mut data = vec![
        datum("RequestCount", 12.0, StandardUnit::Count, &alb_dims),
        datum("RequestCount", 3.0, StandardUnit::Count, &alb_dims),
        datum("HTTPCode_Target_2XX_Count", 13.0, StandardUnit::Count, &alb_dims),
        datum("HTTPCode_Target_4XX_Count", 1.0, StandardUnit::Count, &alb_dims),
        datum("HTTPCode_Target_5XX_Count", 1.0, StandardUnit::Count, &alb_dims),
        // Another app's target group does not count.
        datum(
            "RequestCount",
            1000.0,
            StandardUnit::Count,
            &[
                ("LoadBalancer", lb.as_str()),
                ("TargetGroup", "targetgroup/other/1"),
            ],
        ),
    ];
    for _ in 0..15 {
        data.push(datum(
            "TargetResponseTime",
            0.03,
            StandardUnit::Seconds,
            &alb_dims,
        ));
    }
    clients
        .cloudwatch
        .put_metric_data()
        .namespace("AWS/ApplicationELB")
        .set_metric_data(Some(data))
        .send()
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let figures = loop {
        match aws.traffic.traffic("shop") {
            Some(f) if f.requests > 0 => break f,
            _ => {
                assert!(Instant::now() < deadline, "no traffic figures after 20 s");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    assert_eq!(figures.requests, 15);
    assert_eq!(figures.responses_by_class, [13, 0, 1, 1]);
    assert_eq!(aws.traffic.requests_total("shop"), Some(15));
    assert_eq!(aws.traffic.responses_by_class("shop"), Some([13, 0, 1, 1]));
    let mut buckets = vec![0u64; LATENCY_BUCKETS_MS.len() + 1];
    buckets[5] = 15; // 30 ms: 25..50 ms
    assert_eq!(figures.latency_buckets, buckets);
    assert!((figures.latency_sum_ms - 450.0).abs() < 1e-6, "{figures:?}");
    let p50 = figures.latency_quantile_ms(0.5).unwrap();
    assert!((25.0..=50.0).contains(&p50), "{p50}");
    // An app without a target group has no figures.
    assert_eq!(aws.traffic.refresh("nothing").await.unwrap(), None);
}
