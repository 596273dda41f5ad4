//! One request/response exchange on a backend connection: write the head,
//! stream the client's body while watching for an early response, read
//! the response head within the upstream timeout.

use crate::response::{self, ResponseHead};
use crate::timer;
use crate::upstream::{Conn, Readable, READ_BUF};
use bytes::{Buf, Bytes, BytesMut};
use http::HeaderMap;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use std::io::{self, Write};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Why an exchange failed.
#[derive(Debug)]
pub(crate) enum Failure {
    /// No connection could be opened.
    Connect(io::Error),
    /// The request head could not be written: nothing reached the backend.
    NotSent(io::Error),
    /// The backend failed or sent an invalid response.
    Upstream(io::Error),
    /// The backend did not answer within the upstream timeout.
    Timeout,
    /// The client's body failed (it went away or sent a malformed body).
    Client(hyper::Error),
    /// The client's body exceeded the limit.
    TooLarge,
}

/// The client's body, taken when the head is written.
pub(crate) struct Outgoing<'a> {
    pub(crate) body: &'a mut Option<Incoming>,
    pub(crate) chunked: bool,
    /// Body bytes sent so far.
    pub(crate) sent: &'a mut u64,
}

/// Runs one exchange. On success the response head is parsed and the
/// connection's buffer holds the start of the body; `conn` is reusable
/// afterwards only if the whole request was sent (checked by the caller
/// through `keep_alive`, which is cleared otherwise).
pub(crate) async fn run(
    conn: &mut Conn,
    head: &Bytes,
    outgoing: Outgoing<'_>,
    timeout: Duration,
    max_body: u64,
    head_request: bool,
) -> Result<ResponseHead, Failure> {
    crate::batch::write_all(&mut conn.stream, head)
        .await
        .map_err(Failure::NotSent)?;
    conn.buf.reserve(READ_BUF);
    let Some(body) = outgoing.body.take() else {
        let deadline = tokio::time::Instant::now() + timeout;
        return tokio::select! {
            biased;
            result = read_head(&mut conn.stream, &mut conn.buf, head_request) => result.map_err(Failure::Upstream),
            () = timer::expiry(conn.timer.as_mut(), deadline) => Err(Failure::Timeout),
        };
    };

    // Kept out of line (boxed): most requests have no body, and the
    // future of every request is as large as its largest path.
    Box::pin(with_body(
        conn,
        (body, outgoing.chunked, outgoing.sent),
        timeout,
        max_body,
        head_request,
    ))
    .await
}

/// Streams the body while watching for the response; the upstream timeout
/// starts once the body is sent.
async fn with_body(
    conn: &mut Conn,
    (body, chunked, sent): (Incoming, bool, &mut u64),
    timeout: Duration,
    max_body: u64,
    head_request: bool,
) -> Result<ResponseHead, Failure> {
    let (mut reader, mut writer) = conn.stream.split();
    let send = send_body(&mut writer, body, chunked, max_body, sent);
    let read = read_head(&mut reader, &mut conn.buf, head_request);
    let deadline = tokio::time::sleep(Duration::MAX / 4);
    tokio::pin!(send, read, deadline);
    let mut sent = false;
    loop {
        tokio::select! {
            biased;
            result = &mut read => {
                let mut res = result.map_err(Failure::Upstream)?;
                // An early answer: the rest of the request was not sent.
                res.keep_alive &= sent;
                return Ok(res);
            }
            result = &mut send, if !sent => {
                result?;
                sent = true;
                deadline.as_mut().reset(tokio::time::Instant::now() + timeout);
            }
            () = &mut deadline, if sent => return Err(Failure::Timeout),
        }
    }
}

/// Reads until a final response head is parsed (skipping `1xx` interim
/// responses other than `101`).
async fn read_head<R: Readable>(
    reader: &mut R,
    buf: &mut BytesMut,
    head_request: bool,
) -> io::Result<ResponseHead> {
    loop {
        if !buf.is_empty() {
            if let Some(head) = response::parse(buf, head_request)? {
                if head.status.is_informational() && head.status != http::StatusCode::SWITCHING_PROTOCOLS {
                    continue;
                }
                return Ok(head);
            }
        }
        if buf.capacity() - buf.len() < 1024 {
            buf.reserve(READ_BUF);
        }
        let room = buf.capacity() - buf.len();
        match reader.read_buf(buf).await? {
            0 => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "backend closed the connection before answering",
                ))
            }
            n if n < room => reader.short_read(),
            _ => {}
        }
    }
}

/// Streams the client's body to the backend, chunked when its length is
/// unknown, counting it against `max_body` and in `total`.
async fn send_body<W: AsyncWrite + Unpin>(
    writer: &mut W,
    mut body: Incoming,
    chunked: bool,
    max_body: u64,
    total: &mut u64,
) -> Result<(), Failure> {
    let mut trailers: Option<HeaderMap> = None;
    let upstream = Failure::Upstream;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(Failure::Client)?;
        let data = match frame.into_data() {
            Ok(data) => data,
            Err(frame) => {
                trailers = frame.into_trailers().ok();
                continue;
            }
        };
        *total += data.len() as u64;
        if *total > max_body {
            return Err(Failure::TooLarge);
        }
        if data.is_empty() {
            continue;
        }
        if chunked {
            let mut size = Vec::with_capacity(18);
            let _ = write!(size, "{:x}\r\n", data.len());
            let mut chunk = Bytes::from(size).chain(data).chain(&b"\r\n"[..]);
            writer.write_all_buf(&mut chunk).await.map_err(upstream)?;
        } else {
            let mut data = data;
            writer.write_all_buf(&mut data).await.map_err(upstream)?;
        }
    }
    if chunked {
        let mut end = b"0\r\n".to_vec();
        for (name, value) in trailers.iter().flatten() {
            end.extend_from_slice(name.as_str().as_bytes());
            end.extend_from_slice(b": ");
            end.extend_from_slice(value.as_bytes());
            end.extend_from_slice(b"\r\n");
        }
        end.extend_from_slice(b"\r\n");
        writer.write_all(&end).await.map_err(upstream)?;
    }
    writer.flush().await.map_err(upstream)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::StatusCode;

    async fn head_of(bytes: &[u8]) -> io::Result<(ResponseHead, BytesMut)> {
        let mut reader = bytes;
        let mut buf = BytesMut::new();
        let head = read_head(&mut reader, &mut buf, false).await?;
        Ok((head, buf))
    }

    #[tokio::test]
    async fn interim_responses_are_skipped_but_101_is_final() {
        let (head, rest) = head_of(
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n\
              HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok",
        )
        .await
        .unwrap();
        assert_eq!(head.status, StatusCode::CREATED);
        assert!(head.headers().get("link").is_none(), "early hints are not merged");
        assert_eq!(&rest[..], b"ok");

        let (head, _) =
            head_of(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n")
                .await
                .unwrap();
        assert_eq!(head.status, StatusCode::SWITCHING_PROTOCOLS);
        assert_eq!(head.upgrade.unwrap(), "websocket");
    }

    #[tokio::test]
    async fn a_backend_closing_before_its_head_is_an_error() {
        let error = head_of(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200")
            .await
            .unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::UnexpectedEof);
    }
}
