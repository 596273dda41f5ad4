//! End-to-end tests: real upstream servers and the proxy on loopback.

mod support;

use bytes::Bytes;
use easydeploy_core::ports::TrafficSwitch;
use easydeploy_edge::{AppStats, EdgeConfig};
use http::{Method, Request, StatusCode};
use http_body_util::Full;
use std::net::SocketAddr;
use std::time::Duration;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

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
    let mut sender = h2_sender(stream).await;
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

/// Many keep-alive clients at once, sent to in batches (the default) or
/// one send at a time: every client gets the answers to its own requests.
#[tokio::test]
async fn concurrent_keep_alive_clients_each_get_their_own_answers_with_sends_batched_or_not() {
    for batch_sends in [true, false] {
        let edge = start_edge(EdgeConfig {
            batch_sends,
            ..EdgeConfig::default()
        })
        .await;
        edge.proxy.set_backends("app", vec![upstream("a").await]);
        let addr = edge.addr;
        let clients = (0..64).map(|n| {
            tokio::spawn(async move {
                let client = client();
                for k in 0..5 {
                    let req = Request::get(format!("http://{addr}/"))
                        .header("host", "app.localhost")
                        .header("x-client", format!("{n}-{k}"))
                        .body(Full::default())
                        .unwrap();
                    let answer = read(client.request(req).await.unwrap()).await;
                    assert_eq!(answer.status, StatusCode::OK);
                    assert_eq!(
                        answer.echoed()["x-client"],
                        [format!("{n}-{k}")],
                        "batch_sends {batch_sends}"
                    );
                }
            })
        });
        for client in clients.collect::<Vec<_>>() {
            client.await.unwrap();
        }
        let stats = edge.proxy.app_stats("app").unwrap();
        assert_eq!(stats.requests, 64 * 5, "batch_sends {batch_sends}");
    }
}

/// A backend speaking raw bytes: answers each request head on a connection
/// with `response` and reports the head it got.
async fn raw_backend(response: &'static [u8]) -> (SocketAddr, tokio::sync::mpsc::UnboundedReceiver<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (heads, received) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            let heads = heads.clone();
            tokio::spawn(async move {
                let (mut got, mut buf) = (Vec::new(), [0u8; 4096]);
                loop {
                    while let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") {
                        let rest = got.split_off(end + 4);
                        let _ = heads.send(String::from_utf8(std::mem::replace(&mut got, rest)).unwrap());
                        conn.write_all(response).await.unwrap();
                    }
                    match conn.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => got.extend_from_slice(&buf[..n]),
                    }
                }
            });
        }
    });
    (addr, received)
}

#[tokio::test]
async fn hop_by_hop_fields_are_removed_in_any_case_and_the_rest_keep_theirs() {
    // Plain GETs: served by the proxy's own HTTP/1.1 server, which passes
    // fields on as bytes (hyper's requests arrive with lowercase names).
    let edge = edge().await;
    let (backend, mut heads) = raw_backend(
        b"HTTP/1.1 200 OK\r\nCONNECTION: X-Drop-Me, keep-alive\r\nX-DROP-ME: 1\r\n\
          KEEP-ALIVE: timeout=5\r\nX-Kept-Case: Yes\r\nContent-Length: 2\r\n\r\nok",
    )
    .await;
    edge.proxy.set_backends("app", vec![backend]);

    let mut client = TcpStream::connect(edge.addr).await.unwrap();
    for _ in 0..2 {
        client
            .write_all(
                b"GET /case HTTP/1.1\r\nHost: app.localhost\r\nCONNECTION: X-Secret\r\nx-SECRET: 1\r\n\
                  Keep-Alive: 300\r\nProxy-Authorization: Basic Zm9v\r\n\
                  X-Mixed-Case: Yes\r\n\r\n",
            )
            .await
            .unwrap();
        let forwarded = heads.recv().await.unwrap();
        let lower = forwarded.to_ascii_lowercase();
        for name in [
            "connection:",
            "x-secret:",
            "keep-alive:",
            "te:",
            "proxy-authorization:",
        ] {
            assert!(!lower.contains(name), "{name} reached the backend: {forwarded}");
        }
        assert!(forwarded.contains("\r\nX-Mixed-Case: Yes\r\n"), "{forwarded}");
        assert!(forwarded.starts_with("GET /case HTTP/1.1\r\n"), "{forwarded}");

        let (head, body) = read_raw_head(&mut client).await;
        let lower = head.to_ascii_lowercase();
        for name in ["connection:", "x-drop-me:", "keep-alive:"] {
            assert!(!lower.contains(name), "{name} reached the client: {head}");
        }
        assert!(head.contains("\r\nX-Kept-Case: Yes\r\n"), "{head}");
        assert!(head.contains("\r\nContent-Length: 2\r\n"), "{head}");
        assert!(lower.contains("\r\ndate: "), "the proxy dates it: {head}");
        assert_eq!(body, b"ok", "both connections stay usable");
    }
}

#[tokio::test]
async fn requests_naming_no_host_or_several_get_400() {
    let edge = edge().await;
    let (backend, mut heads) = raw_backend(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok").await;
    edge.proxy.set_backends("app", vec![backend]);

    // Plain GETs go to the proxy's own server, requests with a body to hyper.
    let cases: [(&[u8], u16, &str); 6] = [
        (
            b"GET / HTTP/1.1\r\nHost: app.localhost\r\nHost: other.localhost\r\n\r\n",
            400,
            "bad_host",
        ),
        (b"GET / HTTP/1.1\r\nX-Other: 1\r\n\r\n", 400, "bad_host"),
        (b"GET / HTTP/1.1\r\nHost: \xff.localhost\r\n\r\n", 400, "bad_host"),
        (
            b"POST / HTTP/1.1\r\nHost: app.localhost\r\nhost: app.localhost\r\nContent-Length: 2\r\n\r\nhi",
            400,
            "bad_host",
        ),
        (b"POST / HTTP/1.1\r\nContent-Length: 2\r\n\r\nhi", 400, "bad_host"),
        // HTTP/1.0 may leave Host out: it just names no app.
        (b"GET / HTTP/1.0\r\n\r\n", 404, "unknown_app"),
    ];
    for (request, status, code) in cases {
        let (head, _) = raw_request(edge.addr, request).await;
        let shown = String::from_utf8_lossy(request);
        let got = head.split(' ').nth(1);
        assert_eq!(got, Some(&*status.to_string()), "{shown}: {head}");
        assert!(
            head.to_ascii_lowercase()
                .contains(&format!("x-easydeploy-error: {code}\r\n")),
            "{shown}: {head}"
        );
    }
    assert!(heads.try_recv().is_err(), "no request reached the backend");

    // One Host still routes.
    let (head, body) = raw_request(edge.addr, b"GET / HTTP/1.1\r\nHost: app.localhost\r\n\r\n").await;
    assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
    assert_eq!(body, b"ok");
}
