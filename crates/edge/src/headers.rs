//! Request side: the routing host, and the HTTP/1.1 request head written to
//! a backend (hop-by-hop headers dropped, forwarding headers set) straight
//! from the client's request, without rebuilding a header map.

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{request, Method};
use std::io::Write;
use std::net::IpAddr;

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
const KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
const PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");

/// Whether a header describes one connection only (RFC 9110 §7.6.1) and
/// is never forwarded, either way.
pub(crate) fn is_hop_by_hop(name: &HeaderName) -> bool {
    *name == header::CONNECTION
        || *name == header::TRANSFER_ENCODING
        || *name == header::UPGRADE
        || *name == header::TE
        || *name == header::TRAILER
        || *name == header::PROXY_AUTHORIZATION
        || *name == KEEP_ALIVE
        || *name == PROXY_CONNECTION
}

/// Whether a `Connection` header of `headers` lists `name` (or `token`).
pub(crate) fn connection_lists(headers: &HeaderMap, token: &str) -> bool {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

/// The host the client asked for, as sent: the URI authority (HTTP/2, or an
/// absolute-form HTTP/1 target) or else the `Host` header.
pub(crate) fn request_host(parts: &request::Parts) -> Option<&str> {
    match parts.uri.authority() {
        Some(authority) => Some(authority.as_str()),
        None => parts.headers.get(header::HOST)?.to_str().ok(),
    }
}

/// An app name read from a host, lowercased on the stack.
pub(crate) struct AppLabel {
    buf: [u8; 63],
    len: usize,
}

impl AppLabel {
    pub(crate) fn as_str(&self) -> &str {
        // Only ASCII bytes are ever copied in.
        std::str::from_utf8(&self.buf[..self.len]).unwrap_or_default()
    }
}

/// The app named by `host` when it is `<app>.<domain>` (after dropping a
/// numeric port and a trailing dot, ignoring case). `domain` is lowercase.
pub(crate) fn app_of_host(host: &str, domain: &str) -> Option<AppLabel> {
    let name = match host.split_once(':') {
        Some((name, port)) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => name,
        Some(_) => return None,
        None => host,
    };
    let name = name.strip_suffix('.').unwrap_or(name);
    let split = name.len().checked_sub(domain.len() + 1)?;
    let (app, rest) = name.as_bytes().split_at(split);
    if rest[0] != b'.' || !rest[1..].eq_ignore_ascii_case(domain.as_bytes()) {
        return None;
    }
    if app.is_empty() || app.len() > 63 || app.contains(&b'.') || !app.is_ascii() {
        return None;
    }
    let mut label = AppLabel {
        buf: [0; 63],
        len: app.len(),
    };
    for (to, from) in label.buf.iter_mut().zip(app) {
        *to = from.to_ascii_lowercase();
    }
    Some(label)
}

/// How the request body is framed towards the backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RequestBody {
    /// No body.
    Empty,
    /// Exactly this many bytes.
    Length(u64),
    /// Length unknown: sent chunked.
    Chunked,
}

/// A client's IP address, formatted once per connection.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ClientIp {
    v6: bool,
    text: [u8; 39],
    len: u8,
}

impl ClientIp {
    pub(crate) fn new(ip: IpAddr) -> Self {
        let ip = ip.to_canonical();
        let mut text = [0u8; 39];
        let mut cursor = std::io::Cursor::new(&mut text[..]);
        let _ = write!(cursor, "{ip}");
        let len = cursor.position() as u8;
        Self {
            v6: ip.is_ipv6(),
            text,
            len,
        }
    }

    fn text(&self) -> &[u8] {
        &self.text[..usize::from(self.len)]
    }
}

/// What the proxy tells the backend about the client.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Forwarding<'a> {
    /// The host the client asked for.
    pub(crate) host: &'a str,
    /// The client's address.
    pub(crate) client: ClientIp,
    /// Whether the client came over TLS.
    pub(crate) tls: bool,
    /// Keep and extend the forwarding headers the client sent.
    pub(crate) trust: bool,
}

/// Headers the proxy writes itself (or drops) rather than copying.
fn is_rewritten(name: &HeaderName) -> bool {
    *name == header::HOST
        || *name == header::CONTENT_LENGTH
        || *name == header::EXPECT
        || *name == header::FORWARDED
        || *name == X_FORWARDED_FOR
        || *name == X_FORWARDED_PROTO
        || *name == X_FORWARDED_HOST
}

/// Writes the HTTP/1.1 request head for the backend into `out`.
///
/// Hop-by-hop headers and those the client's `Connection` lists are left
/// out; `Expect` is handled by the proxy itself (it answers `100 Continue`
/// when it starts reading the body); `upgrade` carries the client's
/// `Upgrade` value when the connection is being upgraded.
pub(crate) fn write_request_head(
    out: &mut Vec<u8>,
    parts: &request::Parts,
    body: RequestBody,
    upgrade: Option<&HeaderValue>,
    fwd: &Forwarding<'_>,
) {
    let headers = &parts.headers;
    out.extend_from_slice(parts.method.as_str().as_bytes());
    out.push(b' ');
    let target = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    out.extend_from_slice(if target.is_empty() {
        b"/"
    } else {
        target.as_bytes()
    });
    out.extend_from_slice(b" HTTP/1.1\r\nhost: ");
    out.extend_from_slice(fwd.host.as_bytes());
    out.extend_from_slice(b"\r\n");

    let lists_others = headers.get(header::CONNECTION).is_some();
    for (name, value) in headers {
        if is_hop_by_hop(name)
            || is_rewritten(name)
            || (lists_others && connection_lists(headers, name.as_str()))
        {
            continue;
        }
        put(out, name.as_str(), value.as_bytes());
    }
    match body {
        RequestBody::Length(n) => {
            let _ = write!(out, "content-length: {n}\r\n");
        }
        RequestBody::Chunked => out.extend_from_slice(b"transfer-encoding: chunked\r\n"),
        RequestBody::Empty => {
            if matches!(parts.method, Method::POST | Method::PUT | Method::PATCH) {
                out.extend_from_slice(b"content-length: 0\r\n");
            }
        }
    }
    if let Some(upgrade) = upgrade {
        out.extend_from_slice(b"connection: upgrade\r\n");
        put(out, "upgrade", upgrade.as_bytes());
    }
    write_forwarding(out, headers, fwd);
    out.extend_from_slice(b"\r\n");
}

fn put(out: &mut Vec<u8>, name: &str, value: &[u8]) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// Client-sent values of a header, comma-joined, when trusted.
fn chain<'h>(
    headers: &'h HeaderMap,
    name: &HeaderName,
    fwd: &Forwarding<'_>,
) -> impl Iterator<Item = &'h [u8]> {
    let values = if fwd.trust {
        Some(headers.get_all(name).iter())
    } else {
        None
    };
    values.into_iter().flatten().map(HeaderValue::as_bytes)
}

fn write_forwarding(out: &mut Vec<u8>, headers: &HeaderMap, fwd: &Forwarding<'_>) {
    let proto = if fwd.tls { "https" } else { "http" };

    out.extend_from_slice(b"x-forwarded-for: ");
    for earlier in chain(headers, &X_FORWARDED_FOR, fwd) {
        out.extend_from_slice(earlier);
        out.extend_from_slice(b", ");
    }
    out.extend_from_slice(fwd.client.text());
    out.extend_from_slice(b"\r\n");

    for (name, value) in [(X_FORWARDED_PROTO, proto), (X_FORWARDED_HOST, fwd.host)] {
        match fwd.trust.then(|| headers.get(&name)).flatten() {
            Some(kept) => put(out, name.as_str(), kept.as_bytes()),
            None => put(out, name.as_str(), value.as_bytes()),
        }
    }

    out.extend_from_slice(b"forwarded: ");
    for earlier in chain(headers, &header::FORWARDED, fwd) {
        out.extend_from_slice(earlier);
        out.extend_from_slice(b", ");
    }
    // `host` only reaches here after `app_of_host` accepted it: no quotes or backslashes.
    if fwd.client.v6 {
        out.extend_from_slice(b"for=\"[");
        out.extend_from_slice(fwd.client.text());
        out.extend_from_slice(b"]\"");
    } else {
        out.extend_from_slice(b"for=");
        out.extend_from_slice(fwd.client.text());
    }
    out.extend_from_slice(b";host=\"");
    out.extend_from_slice(fwd.host.as_bytes());
    out.extend_from_slice(b"\";proto=");
    out.extend_from_slice(proto.as_bytes());
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn app_is_the_label_before_the_domain() {
        let app = |h| app_of_host(h, "apps.example.com").map(|l| l.as_str().to_owned());
        assert_eq!(app("shop.apps.example.com").as_deref(), Some("shop"));
        assert_eq!(app("Shop.Apps.Example.com:8080").as_deref(), Some("shop"));
        assert_eq!(app("shop.apps.example.com.").as_deref(), Some("shop"));
        assert_eq!(app("apps.example.com"), None);
        assert_eq!(app(".apps.example.com"), None);
        assert_eq!(app("a.b.apps.example.com"), None);
        assert_eq!(app("shopapps.example.com"), None);
        assert_eq!(app("shop.apps.example.com:x\""), None);
        assert_eq!(app("[::1]:80"), None);
        assert_eq!(app("é.apps.example.com"), None);
    }

    use http::Request;

    fn head(req: Request<()>, body: RequestBody, trust: bool) -> String {
        let (parts, ()) = req.into_parts();
        let mut out = Vec::new();
        let fwd = Forwarding {
            host: "a.localhost:8080",
            client: ClientIp::new("::1".parse().unwrap()),
            tls: false,
            trust,
        };
        write_request_head(&mut out, &parts, body, None, &fwd);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn request_head_drops_hop_by_hop_and_replaces_forwarding() {
        let req = Request::post("/p?q=1")
            .header("connection", "x-a, close")
            .header("x-a", "1")
            .header("x-c", "1")
            .header("x-c", "2")
            .header("te", "trailers")
            .header("expect", "100-continue")
            .header("x-forwarded-for", "1.2.3.4")
            .header("x-forwarded-proto", "https")
            .header("x-forwarded-host", "evil.example")
            .header("forwarded", "for=1.2.3.4")
            .header("host", "a.localhost:8080")
            .body(())
            .unwrap();
        assert_eq!(
            head(req, RequestBody::Chunked, false),
            "POST /p?q=1 HTTP/1.1\r\nhost: a.localhost:8080\r\nx-c: 1\r\nx-c: 2\r\n\
             transfer-encoding: chunked\r\nx-forwarded-for: ::1\r\nx-forwarded-proto: http\r\n\
             x-forwarded-host: a.localhost:8080\r\n\
             forwarded: for=\"[::1]\";host=\"a.localhost:8080\";proto=http\r\n\r\n"
        );
    }

    #[test]
    fn trusted_forwarding_headers_are_extended() {
        let req = Request::get("/")
            .header("x-forwarded-for", "1.2.3.4")
            .header("x-forwarded-proto", "https")
            .header("forwarded", "for=1.2.3.4")
            .body(())
            .unwrap();
        let text = head(req, RequestBody::Empty, true);
        assert!(text.contains("x-forwarded-for: 1.2.3.4, ::1\r\n"), "{text}");
        assert!(text.contains("x-forwarded-proto: https\r\n"), "{text}");
        assert!(text.contains("forwarded: for=1.2.3.4, for=\"[::1]\""), "{text}");
    }
}
