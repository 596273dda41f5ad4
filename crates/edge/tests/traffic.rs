//! Traffic figures: requests through the real proxy to real loopback
//! upstreams, read back per app and per replica.

mod support;

use easydeploy_core::ports::{LoadMetrics, TrafficFigures, TrafficSwitch, LATENCY_BUCKETS_MS};
use easydeploy_edge::EdgeConfig;
use http::{Method, StatusCode};
use http_body_util::Full;
use std::collections::HashMap;
use support::*;

fn replicas(edge: &Edge, app: &str) -> HashMap<String, TrafficFigures> {
    edge.proxy.traffic_by_replica(app).into_iter().collect()
}

/// Index of the histogram bucket holding `ms`.
fn bucket_of(ms: f64) -> usize {
    LATENCY_BUCKETS_MS.partition_point(|&bound| bound < ms)
}

#[tokio::test]
async fn figures_count_requests_classes_bytes_and_latency() {
    let edge = edge().await;
    let up = upstream("a").await;
    edge.proxy.set_backends("app", vec![up]);

    let mut out = 0u64;
    for path in ["/", "/", "/missing", "/fail"] {
        out += get(&edge, "app.localhost", path).await.body.len() as u64;
    }
    let body = vec![b'x'; 10_000];
    let req = request(&edge, Method::POST, "app.localhost", "/count")
        .body(Full::new(body.clone().into()))
        .unwrap();
    let answer = send(req).await;
    assert_eq!(answer.body, "10000");
    out += answer.body.len() as u64;
    let slow = get(&edge, "app.localhost", "/sleep/300").await;
    out += slow.body.len() as u64;

    let f = edge.proxy.traffic("app").expect("figures of a routed app");
    assert_eq!(f.requests, 6);
    assert_eq!(f.responses_by_class, [4, 0, 1, 1]);
    assert_eq!(f.in_flight, 0);
    assert_eq!(f.bytes_in, 10_000);
    assert_eq!(f.bytes_out, out);
    assert_eq!(f.latency_buckets.len(), LATENCY_BUCKETS_MS.len() + 1);
    assert_eq!(f.latency_buckets.iter().sum::<u64>(), 6);
    assert_eq!(f.latency_buckets[bucket_of(300.0)], 1, "{:?}", f.latency_buckets);
    assert!(f.latency_sum_ms >= 300.0, "{}", f.latency_sum_ms);
    assert_eq!(edge.proxy.requests_total("app"), Some(6));
    assert_eq!(edge.proxy.responses_by_class("app"), Some([4, 0, 1, 1]));

    let by_replica = replicas(&edge, "app");
    assert_eq!(by_replica.len(), 1);
    let r = &by_replica[&up.to_string()];
    assert_eq!((r.requests, r.bytes_in, r.bytes_out), (6, 10_000, out));
    assert_eq!(r.responses_by_class, [4, 0, 1, 1]);
}

#[tokio::test]
async fn proxy_answers_count_as_their_class() {
    let edge = edge().await;
    let refused = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    edge.proxy.set_backends("app", vec![refused]);
    assert_eq!(
        get(&edge, "app.localhost", "/").await.status,
        StatusCode::BAD_GATEWAY
    );
    assert_eq!(
        get(&edge, "app.localhost", "/").await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(
        get(&edge, "other.localhost", "/").await.status,
        StatusCode::NOT_FOUND
    );

    let f = edge.proxy.traffic("app").unwrap();
    assert_eq!((f.requests, f.responses_by_class), (2, [0, 0, 0, 2]));
    assert_eq!(f.latency_buckets.iter().sum::<u64>(), 2);
    assert!(f.bytes_out > 0, "the proxy's pages are response bodies");
    assert_eq!(
        replicas(&edge, "app")[&refused.to_string()].responses_by_class,
        [0, 0, 0, 1]
    );
    assert_eq!(edge.proxy.traffic("other"), None);
}

#[tokio::test]
async fn in_flight_lasts_while_a_request_is_held_open() {
    let edge = edge().await;
    let up = upstream("a").await;
    edge.proxy.set_backends("app", vec![up]);

    let req = request(&edge, Method::GET, "app.localhost", "/slow")
        .body(Full::default())
        .unwrap();
    let pending = tokio::spawn(send(req));
    assert!(eventually(|| edge.proxy.traffic("app").unwrap().in_flight == 1).await);
    assert_eq!(replicas(&edge, "app")[&up.to_string()].in_flight, 1);
    assert_eq!(pending.await.unwrap().status, StatusCode::OK);

    let f = edge.proxy.traffic("app").unwrap();
    assert_eq!((f.requests, f.in_flight), (1, 0));
    assert_eq!(replicas(&edge, "app")[&up.to_string()].in_flight, 0);
}

#[tokio::test]
async fn replica_figures_split_and_survive_route_changes() {
    let edge = edge().await;
    let (a, b) = (upstream("a").await, upstream("b").await);
    edge.proxy.set_backends("app", vec![a, b]);
    for _ in 0..4 {
        assert_eq!(get(&edge, "app.localhost", "/").await.status, StatusCode::OK);
    }
    let by_replica = replicas(&edge, "app");
    assert_eq!(by_replica.len(), 2);
    assert_eq!(by_replica[&a.to_string()].requests, 2);
    assert_eq!(by_replica[&b.to_string()].requests, 2);

    // `a` stays and keeps its figures; `b` is reported once more, then dropped.
    edge.proxy.set_backends("app", vec![a]);
    get(&edge, "app.localhost", "/").await;
    let by_replica = replicas(&edge, "app");
    assert_eq!(by_replica[&a.to_string()].requests, 3);
    assert_eq!(by_replica[&b.to_string()].requests, 2);
    let by_replica = replicas(&edge, "app");
    assert_eq!(by_replica.keys().collect::<Vec<_>>(), [&a.to_string()]);
    assert_eq!(edge.proxy.traffic("app").unwrap().requests, 5);
}

#[tokio::test]
async fn metrics_can_be_turned_off() {
    let edge = start_edge(EdgeConfig {
        metrics: false,
        ..EdgeConfig::default()
    })
    .await;
    let up = upstream("a").await;
    edge.proxy.set_backends("app", vec![up]);
    assert_eq!(get(&edge, "app.localhost", "/").await.status, StatusCode::OK);
    let f = edge.proxy.traffic("app").unwrap();
    assert_eq!((f.requests, f.bytes_out), (0, 0));
    assert_eq!(edge.proxy.in_flight(up), 0);
}
