//! A 1 GiB upload and a 1 GiB download through the proxy, with the
//! process's peak memory checked: bodies stream, they are never buffered.
//! (Alone in its test binary so nothing else moves the peak.)

mod support;

use easydeploy_core::ports::TrafficSwitch;
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use support::*;

const GIB: u64 = 1 << 30;

/// Peak resident memory of this process (`VmHWM`), in bytes.
fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib * 1024
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_gib_each_way_with_bounded_memory() {
    let edge = edge().await;
    edge.proxy.set_backends("app", vec![upstream("a").await]);
    let client = Client::builder(TokioExecutor::new()).build_http::<Repeat>();
    // Warm up: connections, pools and buffers exist before the baseline.
    let req = Request::post(format!("http://{}/count", edge.addr))
        .header("host", "app.localhost")
        .body(Repeat::new(1 << 20))
        .unwrap();
    client
        .request(req)
        .await
        .unwrap()
        .into_body()
        .collect()
        .await
        .unwrap();
    let before = peak_rss();

    let req = Request::post(format!("http://{}/count", edge.addr))
        .header("host", "app.localhost")
        .body(Repeat::new(GIB))
        .unwrap();
    let res = client.request(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let body = res.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, GIB.to_string());

    let req = Request::get(format!("http://{}/download/{GIB}", edge.addr))
        .header("host", "app.localhost")
        .body(Repeat::new(0))
        .unwrap();
    let res = client.request(req).await.unwrap();
    assert_eq!(res.headers()["content-length"], GIB.to_string().as_str());
    let mut body = res.into_body();
    let mut received = 0u64;
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame.unwrap().into_data() {
            received += data.len() as u64;
        }
    }
    assert_eq!(received, GIB);

    let grown = peak_rss().saturating_sub(before);
    assert!(grown < 64 << 20, "peak memory grew by {} MiB", grown >> 20);
}
