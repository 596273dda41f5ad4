//! Protocol features through the real proxy: WebSocket upgrades,
//! `Expect: 100-continue`, chunked bodies, body limits, the header read
//! timeout, keep-alive pooling, HTTP/2 and TLS.

mod support;

use bytes::Bytes;
use easydeploy_core::ports::TrafficSwitch;
use easydeploy_edge::EdgeConfig;
use http::{Method, Request, StatusCode};
use http_body_util::channel::Channel;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[tokio::test]
async fn websocket_echo_works_through_the_proxy() {
    let edge = edge().await;
    let up = upstream("ws").await;
    edge.proxy.set_backends("app", vec![up]);

    let mut stream = TcpStream::connect(edge.addr).await.unwrap();
    let key = "dGhlIHNhbXBsZSBub25jZQ==";
    let handshake = format!(
        "GET /ws HTTP/1.1\r\nHost: app.localhost\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {key}\r\n\r\n"
    );
    stream.write_all(handshake.as_bytes()).await.unwrap();
    let (head, rest) = read_raw_head(&mut stream).await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    let lower = head.to_ascii_lowercase();
    assert!(lower.contains("upgrade: websocket"), "{head}");
    assert!(lower.contains("connection: upgrade"), "{head}");
    assert!(head.contains(&websocket_accept(key)), "{head}");
    assert!(rest.is_empty());
    assert_eq!(edge.proxy.in_flight(up), 1, "the tunnel counts as in flight");

    for message in ["hello", "through the edge", &"x".repeat(70_000)] {
        write_frame(&mut stream, 1, message.as_bytes(), Some([1, 2, 3, 4]))
            .await
            .unwrap();
        let (opcode, payload) = read_frame(&mut stream).await.unwrap();
        assert_eq!((opcode, payload.as_slice()), (1, message.as_bytes()));
    }
    write_frame(&mut stream, 8, b"", Some([9, 9, 9, 9]))
        .await
        .unwrap();
    assert_eq!(read_frame(&mut stream).await.unwrap().0, 8);
    drop(stream);
    assert!(eventually(|| edge.proxy.in_flight(up) == 0).await);
}

#[tokio::test]
async fn idle_websocket_tunnels_are_closed() {
    let edge = start_edge(EdgeConfig {
        client_idle_timeout: Duration::from_millis(300),
        ..EdgeConfig::default()
    })
    .await;
    edge.proxy.set_backends("app", vec![upstream("ws").await]);
    let mut stream = TcpStream::connect(edge.addr).await.unwrap();
    // Before the request: the idle clock starts when the 101 goes out.
    let started = Instant::now();
    stream
        .write_all(b"GET /ws HTTP/1.1\r\nHost: app.localhost\r\nConnection: upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: a2V5a2V5a2V5a2V5a2V5aw==\r\n\r\n")
        .await
        .unwrap();
    assert!(read_raw_head(&mut stream).await.0.starts_with("HTTP/1.1 101"));
    let n = tokio::time::timeout(Duration::from_secs(3), stream.read(&mut [0u8; 16]))
        .await
        .expect("closed by the idle timeout");
    assert!(matches!(n, Ok(0) | Err(_)));
    assert!(started.elapsed() >= Duration::from_millis(250));
}

#[tokio::test]
async fn expect_100_continue_is_answered_before_the_body() {
    let edge = edge().await;
    edge.proxy.set_backends("app", vec![upstream("a").await]);

    let mut stream = TcpStream::connect(edge.addr).await.unwrap();
    stream
        .write_all(b"POST /count HTTP/1.1\r\nHost: app.localhost\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
        .await
        .unwrap();
    let (head, rest) = read_raw_head(&mut stream).await;
    assert!(head.starts_with("HTTP/1.1 100 Continue"), "{head}");
    assert!(rest.is_empty());
    stream.write_all(b"hello").await.unwrap();
    let (head, mut body) = read_raw_head(&mut stream).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    while body.is_empty() {
        let mut buf = [0u8; 16];
        let n = stream.read(&mut buf).await.unwrap();
        body.extend_from_slice(&buf[..n]);
    }
    assert_eq!(body, b"5");
}

#[tokio::test]
async fn oversized_bodies_get_413() {
    let edge = start_edge(EdgeConfig {
        max_body_bytes: 1000,
        ..EdgeConfig::default()
    })
    .await;
    let (up, accepted) = upstream_counted("a").await;
    edge.proxy.set_backends("app", vec![up]);

    // Declared too large: refused at once, without asking for the body.
    let mut stream = TcpStream::connect(edge.addr).await.unwrap();
    stream
        .write_all(b"POST /count HTTP/1.1\r\nHost: app.localhost\r\nContent-Length: 5000\r\nExpect: 100-continue\r\n\r\n")
        .await
        .unwrap();
    let (head, _) = read_raw_head(&mut stream).await;
    assert!(head.starts_with("HTTP/1.1 413"), "{head}");
    assert!(head.contains("x-easydeploy-error: body_too_large"), "{head}");
    assert_eq!(accepted.load(Ordering::SeqCst), 0, "the app never saw it");

    // Chunked: refused when the limit is crossed.
    let (mut tx, body) = Channel::<Bytes, std::convert::Infallible>::new(4);
    tokio::spawn(async move {
        for _ in 0..5 {
            if tx.send_data(Bytes::from(vec![b'x'; 1000])).await.is_err() {
                return;
            }
        }
    });
    let req = Request::post(format!("http://{}/count", edge.addr))
        .header("host", "app.localhost")
        .body(body)
        .unwrap();
    let client = hyper_util::client::legacy::Client::builder(TokioExecutor::new()).build_http();
    let res = client.request(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);

    // At the limit: fine.
    let req = request(&edge, Method::POST, "app.localhost", "/count")
        .body(Full::from(vec![b'x'; 1000]))
        .unwrap();
    assert_eq!(send(req).await.body, "1000");
    assert_eq!(edge.proxy.app_stats("app").unwrap().responses_4xx, 2);
}

#[tokio::test]
async fn slowloris_clients_are_cut_off_by_the_header_timeout() {
    let edge = start_edge(EdgeConfig {
        header_read_timeout: Duration::from_millis(500),
        ..EdgeConfig::default()
    })
    .await;
    edge.proxy.set_backends("app", vec![upstream("a").await]);

    let mut stream = TcpStream::connect(edge.addr).await.unwrap();
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: app.localhost\r\n")
        .await
        .unwrap();
    let started = Instant::now();
    // One header line every 100 ms never completes the head.
    let closed = loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if stream.write_all(b"X-Slow: 1\r\n").await.is_err() {
            break true;
        }
        let mut buf = [0u8; 256];
        match tokio::time::timeout(Duration::from_millis(1), stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break true,
            Ok(Ok(_)) | Err(_) => {}
        }
        if started.elapsed() > Duration::from_secs(10) {
            break false;
        }
    };
    assert!(closed, "the connection stayed open");
    // Long before the client idle timeout (300 s), whatever the load.
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn chunked_bodies_stream_both_ways() {
    let edge = edge().await;
    edge.proxy.set_backends("app", vec![upstream("a").await]);

    let (mut tx, body) = Channel::<Bytes, std::convert::Infallible>::new(1);
    tokio::spawn(async move {
        for part in ["abc", "defg", "hi"] {
            tx.send_data(Bytes::from(part)).await.unwrap();
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    });
    let req = Request::post(format!("http://{}/count", edge.addr))
        .header("host", "app.localhost")
        .body(body)
        .unwrap();
    let client = hyper_util::client::legacy::Client::builder(TokioExecutor::new()).build_http();
    let answer = read(client.request(req).await.unwrap()).await;
    assert_eq!(answer.body, "9");

    let answer = get(&edge, "app.localhost", "/chunks").await;
    assert_eq!(answer.headers["transfer-encoding"], "chunked");
    assert_eq!(answer.body, "one,two,three");
}

#[tokio::test]
async fn backend_connections_are_pooled_and_stale_ones_skipped() {
    // One worker thread: one pool.
    let edge = start_edge(EdgeConfig {
        threads: 1,
        ..EdgeConfig::default()
    })
    .await;
    let (up, accepted) = upstream_counted("a").await;
    edge.proxy.set_backends("app", vec![up]);

    let client = client();
    for _ in 0..20 {
        let req = request(&edge, Method::GET, "app.localhost", "/")
            .body(Full::default())
            .unwrap();
        let res = client.request(req).await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        res.into_body().collect().await.unwrap();
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 1, "one keep-alive connection");

    // The app closes its idle connection: the next request still succeeds.
    assert_eq!(get(&edge, "app.localhost", "/close").await.status, StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(200)).await;
    for _ in 0..3 {
        assert_eq!(get(&edge, "app.localhost", "/").await.status, StatusCode::OK);
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn head_requests_and_large_responses() {
    let edge = edge().await;
    edge.proxy.set_backends("app", vec![upstream("a").await]);
    let req = request(&edge, Method::HEAD, "app.localhost", "/download/1000")
        .body(Full::default())
        .unwrap();
    let answer = send(req).await;
    assert_eq!(answer.headers["content-length"], "1000");
    assert!(answer.body.is_empty());
    let answer = get(&edge, "app.localhost", "/download/3000000").await;
    assert_eq!(answer.headers["content-length"], "3000000");
    assert_eq!(answer.body.len(), 3_000_000);
}

/// A self-signed certificate for `app.localhost`, written as PEM files.
fn certificate(dir: &std::path::Path) -> (std::path::PathBuf, std::path::PathBuf, Vec<u8>) {
    let cert = rcgen::generate_simple_self_signed(vec!["app.localhost".to_owned()]).unwrap();
    let (cert_path, key_path) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert_path, cert.cert.pem()).unwrap();
    std::fs::write(&key_path, cert.key_pair.serialize_pem()).unwrap();
    (cert_path, key_path, cert.cert.der().to_vec())
}

async fn tls_connect(edge: &Edge, der: &[u8], alpn: &[u8]) -> tokio_rustls::client::TlsStream<TcpStream> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(der.to_vec().into()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![alpn.to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let stream = TcpStream::connect(edge.addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("app.localhost").unwrap();
    let tls = connector.connect(name, stream).await.unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(alpn));
    tls
}

#[tokio::test]
async fn tls_with_alpn_h2_and_http1_next_to_plain_http() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key, der) = certificate(dir.path());
    let edge = start_edge(EdgeConfig {
        tls_cert: Some(cert),
        tls_key: Some(key),
        ..EdgeConfig::default()
    })
    .await;
    edge.proxy.set_backends("app", vec![upstream("a").await]);

    // HTTP/2 over TLS.
    let tls = tls_connect(&edge, &der, b"h2").await;
    let mut sender = h2_sender(tls).await;
    let req = Request::get("https://app.localhost/")
        .body(Full::<Bytes>::default())
        .unwrap();
    let answer = read(sender.send_request(req).await.unwrap()).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.echoed()["x-forwarded-proto"], ["https"]);
    assert_eq!(
        answer.echoed()["forwarded"],
        ["for=127.0.0.1;host=\"app.localhost\";proto=https"]
    );

    // HTTP/1.1 over TLS.
    let tls = tls_connect(&edge, &der, b"http/1.1").await;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .unwrap();
    tokio::spawn(conn);
    let req = Request::get("/")
        .header("host", "app.localhost")
        .body(Full::<Bytes>::default())
        .unwrap();
    let answer = read(sender.send_request(req).await.unwrap()).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.echoed()["x-forwarded-proto"], ["https"]);

    // Plain HTTP on the same port.
    let answer = get(&edge, "app.localhost", "/").await;
    assert_eq!(answer.echoed()["x-forwarded-proto"], ["http"]);
}

#[test]
fn a_missing_certificate_is_an_error() {
    let config = EdgeConfig {
        tls_cert: Some("/nonexistent/cert.pem".into()),
        tls_key: Some("/nonexistent/key.pem".into()),
        ..EdgeConfig::default()
    };
    let error = easydeploy_edge::EdgeProxy::try_new(config).unwrap_err();
    assert!(error.to_string().contains("/nonexistent/cert.pem"), "{error}");
}

#[tokio::test]
async fn h2c_streams_request_and_response_bodies() {
    let edge = edge().await;
    edge.proxy.set_backends("app", vec![upstream("a").await]);
    let stream = TcpStream::connect(edge.addr).await.unwrap();
    let mut sender = h2_sender(stream).await;
    let req = Request::post("http://app.localhost/count")
        .body(Full::<Bytes>::from(vec![1u8; 100_000]))
        .unwrap();
    let answer = read(sender.send_request(req).await.unwrap()).await;
    assert_eq!(answer.body, "100000");
    let req = Request::get("http://app.localhost/chunks")
        .body(Full::default())
        .unwrap();
    assert_eq!(
        read(sender.send_request(req).await.unwrap()).await.body,
        "one,two,three"
    );
}

/// A raw upstream answering every request with `response`.
async fn raw_upstream(response: &'static [u8]) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let mut got = Vec::new();
                while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => got.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = stream.write_all(response).await;
                let _ = stream.read(&mut buf).await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn ambiguous_backend_responses_give_502() {
    let edge = edge().await;
    for response in [
        &b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"[..],
        b"HTTP/1.1 200 OK\r\nX-A: one\r\n folded\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    ] {
        edge.proxy.set_backends("app", vec![raw_upstream(response).await]);
        let answer = get(&edge, "app.localhost", "/").await;
        assert_eq!(
            answer.status,
            StatusCode::BAD_GATEWAY,
            "{}",
            String::from_utf8_lossy(response)
        );
        assert_eq!(answer.headers["x-easydeploy-error"], "upstream_error");
    }
    edge.proxy.set_backends(
        "app",
        vec![raw_upstream(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n").await],
    );
    let answer = get(&edge, "app.localhost", "/").await;
    assert_eq!(
        (answer.status, answer.body.as_str()),
        (StatusCode::NO_CONTENT, "")
    );
}

/// Reads from `stream` until it closes.
async fn read_to_close(stream: &mut TcpStream) -> String {
    let mut all = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut all))
        .await
        .expect("the proxy closes the connection")
        .unwrap();
    String::from_utf8_lossy(&all).into_owned()
}

#[tokio::test]
async fn pipelined_requests_are_answered_in_order_across_servers() {
    let edge = edge().await;
    edge.proxy.set_backends("app", vec![upstream("a").await]);

    // Simple requests (the proxy's own server), then one with a body (handed
    // to hyper with what was read), then more on the same connection.
    let mut stream = TcpStream::connect(edge.addr).await.unwrap();
    stream
        .write_all(
            b"GET /missing HTTP/1.1\r\nHost: app.localhost\r\n\r\n\
              HEAD /download/5 HTTP/1.1\r\nHost: app.localhost\r\n\r\n\
              GET /chunks HTTP/1.1\r\nHost: app.localhost\r\n\r\n\
              POST /count HTTP/1.1\r\nHost: app.localhost\r\nContent-Length: 3\r\n\r\nabc\
              GET /download/4 HTTP/1.1\r\nHost: app.localhost\r\nConnection: close\r\n\r\n",
        )
        .await
        .unwrap();
    let text = read_to_close(&mut stream).await.to_ascii_lowercase();
    assert_eq!(text.matches("http/1.1 ").count(), 5, "{text}");
    let missing = text.find("http/1.1 404").expect("404 first");
    let head = text.find("http/1.1 200").unwrap();
    assert!(missing < head, "{text}");
    assert!(
        text.contains("content-length: 5\r\n"),
        "HEAD keeps the length: {text}"
    );
    assert!(text.contains("transfer-encoding: chunked\r\n"), "{text}");
    assert!(
        text.contains("one,two,three") || text.contains("\r\none,\r\n"),
        "{text}"
    );
    assert!(
        text.contains("\r\n\r\n3"),
        "the POST body reached the upstream: {text}"
    );
    assert!(text.contains("connection: close\r\n"), "{text}");
    assert!(
        text.ends_with("\r\n\r\n\0\0\0\0"),
        "the last answer is the 4-byte download: {text:?}"
    );
    assert!(text.contains("date: "), "{text}");
}

#[tokio::test]
async fn connection_close_is_honoured_by_the_own_server() {
    let edge = edge().await;
    edge.proxy.set_backends("app", vec![upstream("a").await]);
    let mut stream = TcpStream::connect(edge.addr).await.unwrap();
    stream
        .write_all(
            b"GET / HTTP/1.1\r\nHost: app.localhost\r\nConnection: close\r\n\r\nGET / HTTP/1.1\r\n\r\n",
        )
        .await
        .unwrap();
    let text = read_to_close(&mut stream).await;
    assert_eq!(text.matches("HTTP/1.1 200 OK").count(), 1, "{text}");
    assert!(text.contains("connection: close\r\n"), "{text}");
}
