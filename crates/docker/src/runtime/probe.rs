//! The HTTP health check: one `GET` over a fresh HTTP/1.1 connection.

use bytes::Bytes;
use http_body_util::Empty;
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::TcpStream;

/// Requests `path` from `addr` and returns the response status, or a short
/// description of why no response came within `timeout`.
pub(crate) async fn get_status(addr: SocketAddr, path: &str, timeout: Duration) -> Result<u16, String> {
    match tokio::time::timeout(timeout, get(addr, path)).await {
        Ok(result) => result,
        Err(_) => Err(format!("got no response within {}", super::seconds(timeout))),
    }
}

async fn get(addr: SocketAddr, path: &str) -> Result<u16, String> {
    let stream = TcpStream::connect(addr).await.map_err(|e| match e.kind() {
        std::io::ErrorKind::ConnectionRefused => "failed: connection refused".to_owned(),
        _ => format!("failed: {e}"),
    })?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake::<_, Empty<Bytes>>(TokioIo::new(stream))
        .await
        .map_err(|e| format!("failed: {e}"))?;
    let request = http::Request::get(path)
        .header(http::header::HOST, addr.to_string())
        .header(http::header::USER_AGENT, "easydeploy-health-check")
        .header(http::header::CONNECTION, "close")
        .body(Empty::new())
        .map_err(|e| format!("failed: {e}"))?;
    // The connection task ends on its own once the response is read (Connection: close).
    let conn = tokio::spawn(conn);
    let result = sender.send_request(request).await;
    conn.abort();
    result.map(|r| r.status().as_u16()).map_err(|e| {
        if e.is_incomplete_message() || e.is_canceled() {
            "failed: the connection closed without a response".to_owned()
        } else {
            format!("failed: {e}")
        }
    })
}
