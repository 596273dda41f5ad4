//! Response side: parsing a backend's HTTP/1.x response head in place
//! (kept as received, with where the fields passed on lie in it) and
//! deciding its body framing.
//!
//! Strict where RFC 9112 lets an intermediary be (a bad head is a 502, not
//! a guess): `Content-Length` next to `Transfer-Encoding`, `Transfer-Encoding`
//! in an HTTP/1.0 response, `chunked` applied twice, a length that is not
//! digits (or a list of differing lengths) and obsolete line folding are
//! refused, as is a head over [`MAX_HEAD`] bytes or [`MAX_HEADERS`] fields.

use crate::fields::{self, FieldSpans, Span};
use crate::headers::{listed, tokens, Role};
use bytes::{Bytes, BytesMut};
use http::header::{HeaderMap, HeaderValue};
use http::StatusCode;
use smallvec::SmallVec;
use std::io;

/// Longest response head accepted from a backend.
pub(crate) const MAX_HEAD: usize = 64 * 1024;
/// Most header fields accepted in a response head.
pub(crate) const MAX_HEADERS: usize = 128;

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

/// A parsed response head: the bytes as received, with where the fields
/// passed on to the client lie in them (hop-by-hop ones, and those the
/// backend's `Connection` lists, left out).
#[derive(Debug)]
pub(crate) struct ResponseHead {
    pub(crate) status: StatusCode,
    head: Bytes,
    fields: FieldSpans,
    /// A `Content-Length` field is among the fields passed on.
    pub(crate) has_length: bool,
    /// A `Date` field is among the fields passed on.
    pub(crate) has_date: bool,
    pub(crate) framing: Framing,
    /// Whether the connection may carry another request afterwards.
    pub(crate) keep_alive: bool,
    /// The `Upgrade` value of a 101 response.
    pub(crate) upgrade: Option<HeaderValue>,
}

impl ResponseHead {
    /// Writes the fields passed on to `out` as HTTP/1.1 lines: runs of
    /// consecutive fields whose lines end in CRLF are copied as they came,
    /// each run at once; other lines are rewritten.
    pub(crate) fn write_fields(&self, out: &mut Vec<u8>) {
        let head = &self.head[..];
        let mut run: Option<(usize, usize)> = None;
        for &(name, value) in &self.fields {
            let line_end = line_end(head, value.end());
            match (run, line_end) {
                (Some((start, end)), Some(next)) if end == name.start() => run = Some((start, next)),
                (_, Some(next)) => {
                    if let Some((start, end)) = run {
                        out.extend_from_slice(&head[start..end]);
                    }
                    run = Some((name.start(), next));
                }
                (_, None) => {
                    if let Some((start, end)) = run.take() {
                        out.extend_from_slice(&head[start..end]);
                    }
                    for part in [name.of(head), b": ", value.of(head), b"\r\n"] {
                        out.extend_from_slice(part);
                    }
                }
            }
        }
        if let Some((start, end)) = run {
            out.extend_from_slice(&head[start..end]);
        }
    }

    /// The fields passed on as a header map (for hyper), sharing the head's
    /// bytes. httparse accepts exactly the names and values `http` does
    /// (tokens; visible ASCII, obs-text, spaces and tabs), so none is lost.
    pub(crate) fn headers(&self) -> HeaderMap {
        let mut headers = HeaderMap::with_capacity(self.fields.len());
        for &span in &self.fields {
            if let Some((name, value)) = fields::field(&self.head, span) {
                headers.append(name, value);
            }
        }
        headers
    }
}

/// Where the line of a field whose value ends at `value_end` ends, just
/// after its CRLF; `None` when it ends in a bare LF.
fn line_end(head: &[u8], value_end: usize) -> Option<usize> {
    let rest = head.get(value_end..)?;
    let blanks = rest.iter().take_while(|b| matches!(b, b' ' | b'\t')).count();
    rest[blanks..]
        .starts_with(b"\r\n")
        .then_some(value_end + blanks + 2)
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
    let mut slots = fields::slots::<MAX_HEADERS>();
    let mut res = httparse::Response::new(&mut []);
    let len = match httparse::ParserConfig::default()
        .parse_response_with_uninit_headers(&mut res, buf, &mut slots)
    {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if buf.len() > MAX_HEAD => return Err(invalid("head too large")),
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(invalid(&e.to_string())),
    };
    if len > MAX_HEAD {
        return Err(invalid("head too large"));
    }
    let status = StatusCode::from_u16(res.code.unwrap_or(0)).map_err(|_| invalid("status"))?;
    let http11 = res.version == Some(1);
    // Where the fields lie, so the head can be frozen and shared.
    let spans = fields::spans_of(buf, res.headers);
    let head = buf.split_to(len).freeze();

    let mut kept = FieldSpans::new();
    // `close` anywhere wins; `keep-alive` matters to HTTP/1.0 only.
    let (mut close, mut keep_alive_asked) = (false, false);
    let mut chunked = false;
    let mut transfer_encoding = false;
    let mut length: Option<u64> = None;
    let (mut has_length, mut has_date) = (false, false);
    let mut upgrade = None;
    let mut listing: SmallVec<[Span; 2]> = SmallVec::new();
    for &span in &spans {
        let (name, value) = (span.0.of(&head), span.1.of(&head));
        let role = Role::of(name);
        match role {
            Role::Connection => {
                for token in tokens(value) {
                    if token.eq_ignore_ascii_case(b"close") {
                        close = true;
                    } else if token.eq_ignore_ascii_case(b"keep-alive") {
                        keep_alive_asked = true;
                    }
                }
                listing.push(span.1);
            }
            Role::TransferEncoding => {
                transfer_encoding = true;
                for coding in tokens(value) {
                    if coding.is_empty() {
                        continue;
                    }
                    if chunked {
                        // Only the last coding may be chunked, and only once.
                        return Err(invalid("transfer coding after chunked"));
                    }
                    chunked = coding.eq_ignore_ascii_case(b"chunked");
                }
            }
            Role::ContentLength => {
                for n in tokens(value) {
                    let n = parse_length(n).ok_or_else(|| invalid("content-length"))?;
                    if length.is_some_and(|l| l != n) {
                        return Err(invalid("conflicting content-length"));
                    }
                    length = Some(n);
                }
                has_length = true;
            }
            Role::Upgrade => upgrade = fields::field(&head, span).map(|(_, value)| value),
            Role::Date => has_date = true,
            _ => {}
        }
        if !role.is_hop_by_hop() {
            kept.push(span);
        }
    }
    if !listing.is_empty() {
        // Fields the backend's `Connection` lists are about that connection only.
        let connection = || listing.iter().map(|v| v.of(&head));
        kept.retain(|&mut (name, _)| !listed(connection(), name.of(&head)));
        let kept_any = |role| kept.iter().any(|&(name, _)| Role::of(name.of(&head)) == role);
        has_length &= kept_any(Role::ContentLength);
        has_date &= kept_any(Role::Date);
    }
    if transfer_encoding && (length.is_some() || !http11) {
        // Smuggling material (RFC 9112 §6.1, §6.3): refused, not guessed.
        return Err(invalid("transfer-encoding with content-length or in HTTP/1.0"));
    }

    let framing = if head_request
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
    {
        Framing::Empty
    } else if transfer_encoding {
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
    let keep_alive = !close && (http11 || keep_alive_asked) && framing != Framing::Close;
    Ok(Some(ResponseHead {
        status,
        head,
        fields: kept,
        has_length,
        has_date,
        framing,
        keep_alive,
        upgrade,
    }))
}

/// A `Content-Length` value: 1*DIGIT, no sign, no overflow.
fn parse_length(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || digits.len() > 19 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
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
        assert_eq!(head.headers().get_all("x-kept").iter().count(), 2);
        assert!(head.headers().get("x-drop").is_none());
        assert!(head.headers().get("keep-alive").is_none());
        assert!(head.headers().get("connection").is_none());
        assert_eq!(&rest[..], b"hello");
    }

    #[test]
    fn framing_follows_rfc_9112() {
        let framing = |text: &str, head_request| parse_all(text, head_request).0.framing;
        assert_eq!(
            framing(
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
                false
            ),
            Framing::Chunked
        );
        assert_eq!(
            framing("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", false),
            Framing::Close,
            "a final coding other than chunked: read until close"
        );
        assert_eq!(
            framing("HTTP/1.1 200 OK\r\nContent-Length: 7, 7\r\n\r\n", false),
            Framing::Length(7)
        );
        for status in [
            "204 No Content",
            "304 Not Modified",
            "100 Continue",
            "103 Early Hints",
        ] {
            let text = format!("HTTP/1.1 {status}\r\nContent-Length: 3\r\n\r\n");
            assert_eq!(framing(&text, false), Framing::Empty, "{status}");
        }
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
        for connection in ["close", "close, keep-alive", "keep-alive, close"] {
            let text = format!("HTTP/1.1 200 OK\r\nConnection: {connection}\r\nContent-Length: 0\r\n\r\n");
            assert!(!parse_all(&text, false).0.keep_alive, "{connection}");
        }
        let (head, _) = parse_all(
            "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n",
            false,
        );
        assert!(head.keep_alive, "HTTP/1.0 asking to be kept");
    }

    #[test]
    fn generated_responses_reach_every_outcome() {
        let mut seen = [0; 4];
        for raw in crate::generated::sample(crate::generated::response(), 2000) {
            let outcome = match parse(&mut BytesMut::from(&raw[..]), false) {
                Ok(Some(head)) if head.keep_alive => 0,
                Ok(Some(_)) => 1,
                Ok(None) => 2,
                Err(_) => 3,
            };
            seen[outcome] += 1;
        }
        assert!(
            seen.iter().all(|&n| n >= 200),
            "kept alive, not kept, partial, refused: {seen:?}"
        );
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(3000))]

        /// Whatever a backend sends, its head is refused, left for more
        /// bytes, or consumed exactly; a client then gets every field but
        /// the hop-by-hop ones and those the backend's `Connection` lists,
        /// as sent and in order (and hyper's connections the same fields);
        /// the backend connection is reused only when the response is
        /// HTTP/1.1 or asks for it, does not ask to close, and has a known
        /// end.
        #[test]
        fn backend_heads_pass_on_all_but_hop_by_hop_fields(
            raw in crate::generated::response(),
            head_request in proptest::prelude::any::<bool>(),
        ) {
            use crate::generated::{self, connection_tokens, crlf_only, named, owned, passed_on};
            use proptest::prelude::*;
            let mut buf = BytesMut::from(&raw[..]);
            let head = match parse(&mut buf, head_request) {
                Ok(Some(head)) => head,
                Ok(None) => {
                    prop_assert_eq!(&buf[..], &raw[..], "nothing consumed");
                    return Ok(());
                }
                Err(error) => {
                    prop_assert_eq!(error.kind(), io::ErrorKind::InvalidData);
                    return Ok(());
                }
            };
            let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
            let mut received = httparse::Response::new(&mut slots);
            let len = generated::whole(received.parse(&raw), &String::from_utf8_lossy(&raw))?;
            prop_assert_eq!(&buf[..], &raw[len..], "the head consumed, the body left");
            let fields = owned(received.headers);
            let expected = passed_on(&fields, &[]);

            let mut out = b"HTTP/1.1 200 OK\r\n".to_vec();
            head.write_fields(&mut out);
            out.extend_from_slice(b"\r\n");
            prop_assert!(crlf_only(&out), "lines end in CRLF: {:?}", String::from_utf8_lossy(&out));
            let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
            let mut sent = httparse::Response::new(&mut slots);
            prop_assert_eq!(sent.parse(&out), Ok(httparse::Status::Complete(out.len())));
            prop_assert_eq!(owned(sent.headers), expected.clone());

            let mut map: Vec<_> = head
                .headers()
                .iter()
                .map(|(n, v)| (n.as_str().as_bytes().to_vec(), v.as_bytes().to_vec()))
                .collect();
            let mut lowered: Vec<_> =
                expected.iter().map(|(n, v)| (n.to_ascii_lowercase(), v.clone())).collect();
            map.sort();
            lowered.sort();
            prop_assert_eq!(map, lowered, "hyper's connections get the same fields");

            let tokens = connection_tokens(&fields);
            if head.keep_alive {
                prop_assert!(!tokens.iter().any(|t| t == b"close"));
                prop_assert!(received.version == Some(1) || tokens.iter().any(|t| t == b"keep-alive"));
                prop_assert_ne!(head.framing, Framing::Close);
            }
            prop_assert_eq!(head.has_length, expected.iter().any(|(n, _)| named(n, &["content-length"])));
            prop_assert_eq!(head.has_date, expected.iter().any(|(n, _)| named(n, &["date"])));
        }
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

    #[test]
    fn smuggling_material_is_refused() {
        for head in [
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
            "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: +3\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: 3, 4\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length:\r\n\r\n",
            // Obsolete line folding (RFC 9112 §5.2: a proxy may answer 502).
            "HTTP/1.1 200 OK\r\nX-A: one\r\n two\r\nContent-Length: 0\r\n\r\n",
        ] {
            let mut buf = BytesMut::from(head.as_bytes());
            assert!(parse(&mut buf, false).is_err(), "{head:?}");
        }
    }

    #[test]
    fn huge_heads_are_refused() {
        let mut long = String::from("HTTP/1.1 200 OK\r\n");
        while long.len() <= MAX_HEAD {
            long.push_str("X-Filler: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n");
        }
        let mut partial = BytesMut::from(long.as_bytes());
        assert!(parse(&mut partial, false).is_err(), "too long, still incomplete");

        let mut many = String::from("HTTP/1.1 200 OK\r\n");
        for i in 0..=MAX_HEADERS {
            many.push_str(&format!("X-{i}: 1\r\n"));
        }
        many.push_str("\r\n");
        assert!(parse(&mut BytesMut::from(many.as_bytes()), false).is_err());
    }

    #[test]
    fn every_field_up_to_the_limit_is_kept() {
        let mut text = String::from("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n");
        for i in 1..MAX_HEADERS {
            text.push_str(&format!("X-{i}: v{i}\r\n"));
        }
        text.push_str("\r\nok");
        let (head, rest) = parse_all(&text, false);
        assert_eq!(head.headers().len(), MAX_HEADERS);
        assert_eq!(head.headers()["x-1"], "v1");
        assert_eq!(
            head.headers()[format!("x-{}", MAX_HEADERS - 1)],
            format!("v{}", MAX_HEADERS - 1)
        );
        assert_eq!(head.framing, Framing::Length(2));
        assert_eq!(&rest[..], b"ok");
    }

    fn written(text: &str) -> String {
        let (head, _) = parse_all(text, false);
        let mut out = Vec::new();
        head.write_fields(&mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn fields_go_out_as_they_came_less_those_dropped() {
        assert_eq!(
            written("HTTP/1.1 200 OK\r\nContent-Length: 0\r\nX-A:tight \r\nX-B: b\r\n\r\n"),
            "Content-Length: 0\r\nX-A:tight \r\nX-B: b\r\n"
        );
        assert_eq!(
            written(
                "HTTP/1.1 200 OK\r\nX-A: a\r\nConnection: keep-alive, X-Gone\r\nX-Gone: 1\r\n\
                 Keep-Alive: timeout=5\r\nX-B: b\r\nContent-Length: 0\r\n\r\n"
            ),
            "X-A: a\r\nX-B: b\r\nContent-Length: 0\r\n"
        );
    }

    #[test]
    fn bare_line_feeds_are_written_as_crlf() {
        assert_eq!(
            written("HTTP/1.1 200 OK\nX-A: a\nContent-Length: 0\r\nX-B: b\n\n"),
            "X-A: a\r\nContent-Length: 0\r\nX-B: b\r\n"
        );
    }
}
