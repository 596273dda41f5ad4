//! End-to-end tests: real upstream servers and the proxy on loopback.

use bytes::Bytes;
use easydeploy_core::ports::TrafficSwitch;
use easydeploy_edge::{AppStats, EdgeConfig, EdgeProxy};
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::channel::Channel;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

type UpBody = BoxBody<Bytes, Infallible>;

/// Starts an upstream named `name` on a fresh loopback port.
async fn upstream(name: &'static str) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    serve_upstream(listener, name);
    addr
}

/// Upstream routes: `/count` answers the request body's length, `/slow`
/// waits before answering, `/slow-body` sends headers then the body later,
/// `/hop` answers with hop-by-hop headers, `/missing` is a 404, anything
/// else answers the name then the request headers as `name: value` lines.
fn serve_upstream(listener: TcpListener, name: &'static str) {
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let service = service_fn(move |req| upstream_answer(name, req));
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
}

fn text(body: impl Into<Bytes>) -> Response<UpBody> {
    Response::new(Full::new(body.into()).boxed())
}

async fn upstream_answer(name: &'static str, req: Request<Incoming>) -> Result<Response<UpBody>, Infallible> {
    let res = match req.uri().path() {
        "/count" => {
            let mut body = req.into_body();
            let mut count = 0;
            while let Some(frame) = body.frame().await {
                if let Ok(data) = frame.expect("request body").into_data() {
                    count += data.len();
                }
            }
            text(count.to_string())
        }
        "/slow" => {
            tokio::time::sleep(Duration::from_millis(600)).await;
            text(name)
        }
        "/slow-body" => {
            let (mut tx, body) = Channel::<Bytes, Infallible>::new(1);
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(500)).await;
                let _ = tx.send_data(Bytes::from(name)).await;
            });
            Response::new(body.boxed())
        }
        "/hop" => {
            let mut res = text(name);
            let h = res.headers_mut();
            h.insert("connection", "x-drop-me".parse().unwrap());
            h.insert("x-drop-me", "1".parse().unwrap());
            h.insert("keep-alive", "timeout=5".parse().unwrap());
            h.insert("proxy-connection", "keep-alive".parse().unwrap());
            h.insert("x-kept", "1".parse().unwrap());
            res
        }
        "/missing" => {
            let mut res = text("missing");
            *res.status_mut() = StatusCode::NOT_FOUND;
            res
        }
        _ => {
            let mut out = format!("{name}\n");
            for (key, value) in req.headers() {
                out.push_str(&format!("{key}: {}\n", value.to_str().unwrap_or("?")));
            }
            text(out)
        }
    };
    Ok(res)
}

struct Edge {
    proxy: Arc<EdgeProxy>,
    addr: SocketAddr,
    shutdown: CancellationToken,
    task: JoinHandle<()>,
}

async fn start_edge(config: EdgeConfig) -> Edge {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let proxy = EdgeProxy::new(config);
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(proxy.clone().serve(listener, shutdown.clone()));
    Edge {
        proxy,
        addr,
        shutdown,
        task,
    }
}

async fn edge() -> Edge {
    start_edge(EdgeConfig::default()).await
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

impl Answer {
    /// The first line of an upstream answer: the upstream's name.
    fn name(&self) -> &str {
        self.body.lines().next().unwrap_or_default()
    }

    /// The request headers the upstream echoed, by name.
    fn echoed(&self) -> HashMap<String, Vec<String>> {
        let mut map: HashMap<String, Vec<String>> = HashMap::new();
        for line in self.body.lines().skip(1) {
            let (key, value) = line.split_once(": ").unwrap();
            map.entry(key.to_owned()).or_default().push(value.to_owned());
        }
        map
    }
}

fn client() -> Client<HttpConnector, Full<Bytes>> {
    Client::builder(TokioExecutor::new()).build_http()
}

fn request(edge: &Edge, method: Method, host: &str, path: &str) -> http::request::Builder {
    Request::builder()
        .method(method)
        .uri(format!("http://{}{path}", edge.addr))
        .header("host", host)
}

async fn send(req: Request<Full<Bytes>>) -> Answer {
    let res = client().request(req).await.expect("proxy answers");
    read(res).await
}

async fn read(res: Response<Incoming>) -> Answer {
    let (parts, body) = res.into_parts();
    let body = body.collect().await.expect("response body").to_bytes();
    Answer {
        status: parts.status,
        headers: parts.headers,
        body: String::from_utf8(body.to_vec()).unwrap(),
    }
}

async fn get(edge: &Edge, host: &str, path: &str) -> Answer {
    send(
        request(edge, Method::GET, host, path)
            .body(Full::default())
            .unwrap(),
    )
    .await
}

/// Waits up to 3 s for `cond` to hold.
async fn eventually(mut cond: impl FnMut() -> bool) -> bool {
    for _ in 0..300 {
        if cond() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    cond()
}

/// A loopback address nothing listens on.
async fn refused_addr() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap()
}

#[tokio::test]
async fn round_robin_across_two_backends() {
    let edge = edge().await;
    let (a, b) = (upstream("a").await, upstream("b").await);
    edge.proxy.set_backends("app", vec![a, b]);

    let mut names = Vec::new();
    for _ in 0..4 {
        let answer = get(&edge, "app.localhost", "/").await;
        assert_eq!(answer.status, StatusCode::OK);
        names.push(answer.name().to_owned());
    }
    assert_ne!(names[0], names[1]);
    assert_eq!(names[0], names[2]);
    assert_eq!(names[1], names[3]);
}

#[tokio::test]
async fn unknown_hosts_get_404() {
    let edge = edge().await;
    edge.proxy.set_backends("app", vec![upstream("a").await]);

    for host in [
        "other.localhost",
        "example.com",
        "app.localhost.evil.com",
        "localhost",
    ] {
        let answer = get(&edge, host, "/").await;
        assert_eq!(answer.status, StatusCode::NOT_FOUND, "{host}");
        assert_eq!(answer.headers["x-easydeploy-error"], "unknown_app");
        assert!(answer.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html"));
    }
    let answer = get(&edge, "Other.LocalHost:8080", "/").await;
    assert!(answer
        .body
        .contains("No app named <code>other</code> is deployed here"));
    assert_eq!(edge.proxy.app_stats("other"), None);
}

#[tokio::test]
async fn app_without_backends_gets_503() {
    let edge = edge().await;
    edge.proxy.set_backends("app", vec![]);

    let answer = get(&edge, "app.localhost", "/").await;
    assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(answer.headers["x-easydeploy-error"], "no_healthy_replica");
    assert!(answer.body.contains("no healthy replica"));
}

#[tokio::test]
async fn forwarding_headers_are_set_and_client_values_replaced() {
    let edge = edge().await;
    edge.proxy.set_backends("app", vec![upstream("a").await]);

    let req = request(&edge, Method::GET, "app.localhost", "/some/path?q=1")
        .header("x-forwarded-for", "1.2.3.4")
        .header("x-forwarded-host", "evil.example")
        .header("forwarded", "for=1.2.3.4")
        .body(Full::default())
        .unwrap();
    let answer = send(req).await;
    assert_eq!(answer.status, StatusCode::OK);
    let echoed = answer.echoed();
    assert_eq!(echoed["x-forwarded-for"], ["127.0.0.1"]);
    assert_eq!(echoed["x-forwarded-proto"], ["http"]);
    assert_eq!(echoed["x-forwarded-host"], ["app.localhost"]);
    assert_eq!(
        echoed["forwarded"],
        ["for=127.0.0.1;host=\"app.localhost\";proto=http"]
    );
    assert_eq!(echoed["host"], ["app.localhost"]);
}

#[tokio::test]
async fn hop_by_hop_headers_are_removed_both_ways() {
    let edge = edge().await;
    edge.proxy.set_backends("app", vec![upstream("a").await]);

    let req = request(&edge, Method::GET, "app.localhost", "/")
        .header("connection", "x-secret")
        .header("x-secret", "1")
        .header("keep-alive", "300")
        .header("proxy-connection", "keep-alive")
        .header("proxy-authorization", "Basic Zm9vOmJhcg==")
        .header("te", "trailers")
        .header("x-normal", "yes")
        .body(Full::default())
        .unwrap();
    let echoed = send(req).await.echoed();
    for name in [
        "connection",
        "x-secret",
        "keep-alive",
        "proxy-connection",
        "proxy-authorization",
        "te",
    ] {
        assert!(!echoed.contains_key(name), "{name} reached the upstream");
    }
    assert_eq!(echoed["x-normal"], ["yes"]);

    let answer = get(&edge, "app.localhost", "/hop").await;
    for name in ["connection", "x-drop-me", "keep-alive", "proxy-connection"] {
        assert!(!answer.headers.contains_key(name), "{name} reached the client");
    }
    assert_eq!(answer.headers["x-kept"], "1");
}

#[tokio::test]
async fn refused_backend_is_skipped_ejected_and_restored() {
    let edge = edge().await;
    let dead = refused_addr().await;
    let alive = upstream("alive").await;
    edge.proxy.set_backends("app", vec![dead, alive]);

    for _ in 0..4 {
        let answer = get(&edge, "app.localhost", "/").await;
        assert_eq!(answer.status, StatusCode::OK);
        assert_eq!(answer.name(), "alive");
    }
    assert!(!edge.proxy.is_healthy(dead));
    assert!(edge.proxy.is_healthy(alive));
    assert_eq!(edge.proxy.in_flight(dead), 0);

    // Once something listens there again, the background probe restores it.
    serve_upstream(TcpListener::bind(dead).await.unwrap(), "revived");
    assert!(eventually(|| edge.proxy.is_healthy(dead)).await);
    let mut names = Vec::new();
    for _ in 0..2 {
        names.push(get(&edge, "app.localhost", "/").await.name().to_owned());
    }
    names.sort();
    assert_eq!(names, ["alive", "revived"]);
}

#[tokio::test]
async fn unreachable_backends_give_502_then_503() {
    let edge = edge().await;
    let (dead1, dead2) = (refused_addr().await, refused_addr().await);
    edge.proxy.set_backends("app", vec![dead1, dead2]);

    // Not replayable: one attempt only.
    let req = request(&edge, Method::POST, "app.localhost", "/")
        .body(Full::from("x"))
        .unwrap();
    let answer = send(req).await;
    assert_eq!(answer.status, StatusCode::BAD_GATEWAY);
    assert_eq!(answer.headers["x-easydeploy-error"], "upstream_unreachable");
    assert_eq!(
        [dead1, dead2]
            .iter()
            .filter(|a| edge.proxy.is_healthy(**a))
            .count(),
        1
    );

    // Replayable: tries the remaining healthy one, then gives up.
    let answer = get(&edge, "app.localhost", "/").await;
    assert_eq!(answer.status, StatusCode::BAD_GATEWAY);
    assert!(!edge.proxy.is_healthy(dead1) && !edge.proxy.is_healthy(dead2));

    let answer = get(&edge, "app.localhost", "/").await;
    assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(answer.headers["x-easydeploy-error"], "no_healthy_replica");
}

#[tokio::test]
async fn large_request_body_streams_through() {
    let edge = edge().await;
    edge.proxy.set_backends("app", vec![upstream("a").await]);

    let size = 20 * 1024 * 1024;
    let req = request(&edge, Method::POST, "app.localhost", "/count")
        .body(Full::from(vec![7u8; size]))
        .unwrap();
    let answer = send(req).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.body, size.to_string());
}

#[tokio::test]
async fn set_backends_switches_new_requests() {
    let edge = edge().await;
    let (a, b) = (upstream("a").await, upstream("b").await);
    edge.proxy.set_backends("app", vec![a]);
    assert_eq!(get(&edge, "app.localhost", "/").await.name(), "a");

    edge.proxy.set_backends("app", vec![b]);
    for _ in 0..3 {
        assert_eq!(get(&edge, "app.localhost", "/").await.name(), "b");
    }

    edge.proxy.remove("app");
    assert_eq!(
        get(&edge, "app.localhost", "/").await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn in_flight_counts_until_the_response_body_ends() {
    let edge = edge().await;
    let (slow, other) = (upstream("slow").await, upstream("other").await);
    edge.proxy.set_backends("app", vec![slow]);
    assert_eq!(edge.proxy.in_flight(slow), 0);

    // Slow response headers.
    let req = request(&edge, Method::GET, "app.localhost", "/slow")
        .body(Full::default())
        .unwrap();
    let pending = tokio::spawn(send(req));
    assert!(eventually(|| edge.proxy.in_flight(slow) == 1).await);
    // Taken out of rotation, it still reports the request it is draining.
    edge.proxy.set_backends("app", vec![other]);
    assert_eq!(edge.proxy.in_flight(slow), 1);
    assert_eq!(pending.await.unwrap().status, StatusCode::OK);
    assert!(eventually(|| edge.proxy.in_flight(slow) == 0).await);

    // Headers arrive at once, the body later: the count lasts until the body ends.
    edge.proxy.set_backends("app", vec![slow]);
    let req = request(&edge, Method::GET, "app.localhost", "/slow-body")
        .body(Full::default())
        .unwrap();
    let res = client().request(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(edge.proxy.in_flight(slow), 1);
    assert_eq!(read(res).await.body, "slow");
    assert!(eventually(|| edge.proxy.in_flight(slow) == 0).await);
}

#[tokio::test]
async fn slow_upstream_headers_give_504() {
    let edge = start_edge(EdgeConfig {
        upstream_timeout: Duration::from_millis(200),
        ..EdgeConfig::default()
    })
    .await;
    let slow = upstream("slow").await;
    edge.proxy.set_backends("app", vec![slow]);

    let answer = get(&edge, "app.localhost", "/slow").await;
    assert_eq!(answer.status, StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(answer.headers["x-easydeploy-error"], "upstream_timeout");
    assert_eq!(edge.proxy.in_flight(slow), 0);
    assert!(edge.proxy.is_healthy(slow));
}

#[tokio::test]
async fn h2c_requests_are_routed_by_authority() {
    let edge = edge().await;
    edge.proxy.set_backends("app", vec![upstream("a").await]);

    let stream = TcpStream::connect(edge.addr).await.unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(conn);
    let req = Request::get("http://app.localhost/h2")
        .body(Full::<Bytes>::default())
        .unwrap();
    let answer = read(sender.send_request(req).await.unwrap()).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.name(), "a");
    assert_eq!(answer.echoed()["host"], ["app.localhost"]);
    assert_eq!(answer.echoed()["x-forwarded-host"], ["app.localhost"]);
}

#[tokio::test]
async fn app_stats_count_requests_and_status_classes() {
    let edge = edge().await;
    edge.proxy.set_backends("app", vec![upstream("a").await]);
    get(&edge, "app.localhost", "/").await;
    get(&edge, "app.localhost", "/").await;
    get(&edge, "app.localhost", "/missing").await;
    // Counters survive a change of backends.
    edge.proxy.set_backends("app", vec![]);
    get(&edge, "app.localhost", "/").await;

    let stats = edge.proxy.app_stats("app").unwrap();
    assert_eq!(
        stats,
        AppStats {
            requests: 4,
            responses_2xx: 2,
            responses_3xx: 0,
            responses_4xx: 1,
            responses_5xx: 1
        }
    );
}

#[tokio::test]
async fn shutdown_lets_in_flight_requests_finish() {
    let edge = edge().await;
    let a = upstream("a").await;
    edge.proxy.set_backends("app", vec![a]);

    let req = request(&edge, Method::GET, "app.localhost", "/slow")
        .body(Full::default())
        .unwrap();
    let pending = tokio::spawn(send(req));
    assert!(eventually(|| edge.proxy.in_flight(a) == 1).await);
    edge.shutdown.cancel();

    assert_eq!(pending.await.unwrap().status, StatusCode::OK);
    tokio::time::timeout(Duration::from_secs(3), edge.task)
        .await
        .unwrap()
        .unwrap();
    assert!(TcpStream::connect(edge.addr).await.is_err());
}
