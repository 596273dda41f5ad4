//! Response side: parsing a backend's HTTP/1.x response head in place
//! (header values share the read buffer) and deciding its body framing.

use crate::headers::is_hop_by_hop;
use bytes::BytesMut;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::StatusCode;
use std::io;

/// Longest response head accepted from a backend.
pub(crate) const MAX_HEAD: usize = 64 * 1024;
const MAX_HEADERS: usize = 128;

/// How a response body is delimited on the backend connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Framing {
    /// No body (HEAD, 1xx, 204, 304).
    Empty,
    /// `Content-Length` bytes.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// Until the backend closes the connection.
    Close,
}

/// A parsed response head, hop-by-hop headers already removed.
#[derive(Debug)]
pub(crate) struct ResponseHead {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) framing: Framing,
    /// Whether the connection may carry another request afterwards.
    pub(crate) keep_alive: bool,
    /// The `Upgrade` header of a 101 response.
    pub(crate) upgrade: Option<HeaderValue>,
}

fn invalid(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("invalid response from backend: {what}"),
    )
}

/// Parses a response head at the start of `buf`, consuming it; `Ok(None)`
/// when more bytes are needed. `head_request`: the request was a HEAD.
pub(crate) fn parse(buf: &mut BytesMut, head_request: bool) -> io::Result<Option<ResponseHead>> {
    let mut raw = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut res = httparse::Response::new(&mut raw);
    let len = match res.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if buf.len() > MAX_HEAD => return Err(invalid("head too large")),
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(invalid(&e.to_string())),
    };
    let status = StatusCode::from_u16(res.code.unwrap_or(0)).map_err(|_| invalid("status"))?;
    let http11 = res.version == Some(1);
    // Offsets of names and values, so the head can be frozen and shared.
    let base = buf.as_ptr() as usize;
    let mut spans = [(0usize, 0usize, 0usize, 0usize); MAX_HEADERS];
    let count = res.headers.len();
    for (span, h) in spans.iter_mut().zip(res.headers.iter()) {
        let name = h.name.as_ptr() as usize - base;
        let value = h.value.as_ptr() as usize - base;
        *span = (name, name + h.name.len(), value, value + h.value.len());
    }
    let head = buf.split_to(len).freeze();

    let mut headers = HeaderMap::with_capacity(count);
    let mut keep_alive = http11;
    let mut chunked = false;
    let mut transfer_encoding = false;
    let mut length: Option<u64> = None;
    let mut upgrade = None;
    let mut connection_values = Vec::new();
    for &(ns, ne, vs, ve) in &spans[..count] {
        let name = HeaderName::from_bytes(&head[ns..ne]).map_err(|_| invalid("header name"))?;
        let value =
            HeaderValue::from_maybe_shared(head.slice(vs..ve)).map_err(|_| invalid("header value"))?;
        if name == header::CONNECTION {
            for token in value.to_str().unwrap_or_default().split(',').map(str::trim) {
                if token.eq_ignore_ascii_case("close") {
                    keep_alive = false;
                } else if token.eq_ignore_ascii_case("keep-alive") {
                    keep_alive = true;
                } else if !token.eq_ignore_ascii_case("upgrade") {
                    connection_values.push(token.to_ascii_lowercase());
                }
            }
        } else if name == header::TRANSFER_ENCODING {
            transfer_encoding = true;
            let last = value
                .to_str()
                .unwrap_or_default()
                .rsplit(',')
                .next()
                .unwrap_or_default();
            chunked = last.trim().eq_ignore_ascii_case("chunked");
        } else if name == header::CONTENT_LENGTH {
            let n = value
                .to_str()
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok())
                .ok_or_else(|| invalid("content-length"))?;
            if length.is_some_and(|l| l != n) {
                return Err(invalid("conflicting content-length"));
            }
            length = Some(n);
        } else if name == header::UPGRADE {
            upgrade = Some(value);
            continue;
        }
        if !is_hop_by_hop(&name) {
            headers.append(name, value);
        }
    }
    for listed in &connection_values {
        headers.remove(listed.as_str());
    }

    let framing = if head_request
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
    {
        Framing::Empty
    } else if transfer_encoding {
        // A length next to a transfer coding is ignored (RFC 9112 §6.3).
        headers.remove(header::CONTENT_LENGTH);
        if chunked {
            Framing::Chunked
        } else {
            Framing::Close
        }
    } else if let Some(n) = length {
        Framing::Length(n)
    } else {
        Framing::Close
    };
    if framing == Framing::Close {
        keep_alive = false;
    }
    Ok(Some(ResponseHead {
        status,
        headers,
        framing,
        keep_alive,
        upgrade,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_all(text: &str, head_request: bool) -> (ResponseHead, BytesMut) {
        let mut buf = BytesMut::from(text.as_bytes());
        let head = parse(&mut buf, head_request).unwrap().expect("complete");
        (head, buf)
    }

    #[test]
    fn parses_head_and_leaves_the_body() {
        let (head, rest) = parse_all(
            "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: x-drop, keep-alive\r\n\
             X-Drop: 1\r\nKeep-Alive: timeout=5\r\nX-Kept: a\r\nX-Kept: b\r\n\r\nhello",
            false,
        );
        assert_eq!(head.status, StatusCode::OK);
        assert_eq!(head.framing, Framing::Length(5));
        assert!(head.keep_alive);
        assert_eq!(head.headers.get_all("x-kept").iter().count(), 2);
        assert!(head.headers.get("x-drop").is_none());
        assert!(head.headers.get("keep-alive").is_none());
        assert!(head.headers.get("connection").is_none());
        assert_eq!(&rest[..], b"hello");
    }

    #[test]
    fn framing_follows_rfc_9112() {
        let framing = |text: &str, head_request| parse_all(text, head_request).0.framing;
        assert_eq!(
            framing(
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
                false
            ),
            Framing::Chunked
        );
        assert_eq!(
            framing("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n", true),
            Framing::Empty
        );
        assert_eq!(
            framing("HTTP/1.1 304 Not Modified\r\n\r\n", false),
            Framing::Empty
        );
        let (head, _) = parse_all("HTTP/1.0 200 OK\r\n\r\n", false);
        assert_eq!((head.framing, head.keep_alive), (Framing::Close, false));
        let (head, _) = parse_all(
            "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
            false,
        );
        assert!(!head.keep_alive);
    }

    #[test]
    fn partial_and_invalid_heads() {
        let mut buf = BytesMut::from(&b"HTTP/1.1 200 OK\r\nContent-Le"[..]);
        assert!(parse(&mut buf, false).unwrap().is_none());
        let mut buf =
            BytesMut::from(&b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"[..]);
        assert!(parse(&mut buf, false).is_err());
        let mut buf = BytesMut::from(&b"garbage\r\n\r\n"[..]);
        assert!(parse(&mut buf, false).is_err());
    }
}
