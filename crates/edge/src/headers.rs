//! Request side: the routing host, and the HTTP/1.1 request head written to
//! a backend (hop-by-hop headers dropped, forwarding headers set) straight
//! from the client's header fields, as bytes: the proxy's own HTTP/1.1
//! server never builds a header map (hyper's requests lend theirs).

use http::{request, Method, Version};
use smallvec::SmallVec;
use std::borrow::Cow;
use std::io::Write;
use std::net::IpAddr;

/// Header fields as `(name, value)` bytes, in the order received (on the
/// stack for up to 16 fields). Names may be in any case.
pub(crate) type Fields<'a> = SmallVec<[(&'a [u8], &'a [u8]); 16]>;

/// What a header field means to the proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    Host,
    Connection,
    TransferEncoding,
    Upgrade,
    ContentLength,
    Expect,
    Date,
    Forwarded,
    XForwardedFor,
    XForwardedProto,
    XForwardedHost,
    /// Another field that describes one connection only (RFC 9110 §7.6.1):
    /// `TE`, `Trailer`, `Keep-Alive`, `Proxy-Connection`, `Proxy-Authorization`.
    OtherHopByHop,
    /// Anything else: passed on as is.
    Other,
}

impl Role {
    /// The role of a field named `name` (any case).
    pub(crate) fn of(name: &[u8]) -> Self {
        let is = |known: &[u8]| name.eq_ignore_ascii_case(known);
        match name.len() {
            2 if is(b"te") => Self::OtherHopByHop,
            4 if is(b"host") => Self::Host,
            4 if is(b"date") => Self::Date,
            6 if is(b"expect") => Self::Expect,
            7 if is(b"upgrade") => Self::Upgrade,
            7 if is(b"trailer") => Self::OtherHopByHop,
            9 if is(b"forwarded") => Self::Forwarded,
            10 if is(b"connection") => Self::Connection,
            10 if is(b"keep-alive") => Self::OtherHopByHop,
            14 if is(b"content-length") => Self::ContentLength,
            15 if is(b"x-forwarded-for") => Self::XForwardedFor,
            16 if is(b"x-forwarded-host") => Self::XForwardedHost,
            16 if is(b"proxy-connection") => Self::OtherHopByHop,
            17 if is(b"x-forwarded-proto") => Self::XForwardedProto,
            17 if is(b"transfer-encoding") => Self::TransferEncoding,
            19 if is(b"proxy-authorization") => Self::OtherHopByHop,
            _ => Self::Other,
        }
    }

    /// Whether a field describes one connection only and is never
    /// forwarded, either way.
    pub(crate) fn is_hop_by_hop(self) -> bool {
        matches!(
            self,
            Self::Connection | Self::TransferEncoding | Self::Upgrade | Self::OtherHopByHop
        )
    }

    /// Whether the proxy writes (or drops) a request field itself rather
    /// than copying it.
    fn is_rewritten(self) -> bool {
        matches!(
            self,
            Self::Host
                | Self::ContentLength
                | Self::Expect
                | Self::Forwarded
                | Self::XForwardedFor
                | Self::XForwardedProto
                | Self::XForwardedHost
        )
    }
}

/// The comma-separated tokens of a list-valued field, trimmed.
pub(crate) fn tokens(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value.split(|b| *b == b',').map(<[u8]>::trim_ascii)
}

/// Whether one of the `Connection` values lists `name` (any case).
pub(crate) fn listed<'v>(connection: impl IntoIterator<Item = &'v [u8]>, name: &[u8]) -> bool {
    connection
        .into_iter()
        .flat_map(tokens)
        .any(|t| t.eq_ignore_ascii_case(name))
}

/// The values of the fields with `role`, in order.
fn values<'f, 'a>(fields: &'f [(&'a [u8], &'a [u8])], role: Role) -> impl Iterator<Item = &'a [u8]> + 'f {
    fields
        .iter()
        .filter(move |(name, _)| Role::of(name) == role)
        .map(|&(_, value)| value)
}

/// A client's request head, as routing and forwarding read it.
#[derive(Debug)]
pub(crate) struct RequestHead<'a> {
    pub(crate) method: &'a Method,
    pub(crate) version: Version,
    /// Path and query (`/` when empty).
    pub(crate) target: &'a str,
    /// The URI's authority (HTTP/2, or an absolute-form HTTP/1 target).
    pub(crate) authority: Option<&'a str>,
    pub(crate) fields: Fields<'a>,
}

impl<'a> RequestHead<'a> {
    /// The head of a request hyper parsed.
    pub(crate) fn of(parts: &'a request::Parts) -> Self {
        let target = parts.uri.path_and_query().map_or("/", |p| p.as_str());
        Self {
            method: &parts.method,
            version: parts.version,
            target: if target.is_empty() { "/" } else { target },
            authority: parts.uri.authority().map(|a| a.as_str()),
            fields: parts
                .headers
                .iter()
                .map(|(name, value)| (name.as_str().as_bytes(), value.as_bytes()))
                .collect(),
        }
    }

    /// The host the client asked for, as sent: the URI authority or else
    /// the `Host` field (`None` for an HTTP/1.0 request without one). An
    /// HTTP/1.1 request without a `Host`, with several, or with one that is
    /// not UTF-8 is an error (RFC 9112 §3.2: answered with a 400).
    pub(crate) fn host(&self) -> Result<Option<&'a str>, &'static str> {
        if let Some(authority) = self.authority {
            return Ok(Some(authority));
        }
        let mut hosts = values(&self.fields, Role::Host);
        match (hosts.next(), hosts.next()) {
            (Some(_), Some(_)) => Err("The request has more than one Host header."),
            (Some(host), None) => std::str::from_utf8(host)
                .map(Some)
                .map_err(|_| "The request's Host header is not valid text."),
            (None, _) if self.version == Version::HTTP_11 => Err("The request has no Host header."),
            (None, _) => Ok(None),
        }
    }

    /// The `Upgrade` value of an HTTP/1.1 request whose `Connection` lists
    /// `upgrade`.
    pub(crate) fn upgrade(&self) -> Option<&'a [u8]> {
        let connection = values(&self.fields, Role::Connection);
        if self.version != Version::HTTP_11 || !listed(connection, b"upgrade") {
            return None;
        }
        values(&self.fields, Role::Upgrade).next()
    }
}

/// The app named by `host` when it is `<app>.<domain>` (after dropping a
/// numeric port and a trailing dot, ignoring case), lowercased (borrowed
/// from `host` when it already is). `domain` is lowercase.
pub(crate) fn app_of_host<'h>(host: &'h str, domain: &str) -> Option<Cow<'h, str>> {
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
    // ASCII up to a `.`: a boundary.
    let app = name.get(..split)?;
    Some(if app.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(app.to_ascii_lowercase())
    } else {
        Cow::Borrowed(app)
    })
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

/// Writes the HTTP/1.1 request head for the backend into `out`.
///
/// Hop-by-hop fields and those the client's `Connection` lists are left
/// out; `Expect` is handled by the proxy itself (it answers `100 Continue`
/// when it starts reading the body); `upgrade` carries the client's
/// `Upgrade` value when the connection is being upgraded. Field names go
/// out as the client wrote them.
pub(crate) fn write_request_head(
    out: &mut Vec<u8>,
    req: &RequestHead<'_>,
    body: RequestBody,
    upgrade: Option<&[u8]>,
    fwd: &Forwarding<'_>,
) {
    let fields = &req.fields[..];
    out.extend_from_slice(req.method.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(req.target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\nhost: ");
    out.extend_from_slice(fwd.host.as_bytes());
    out.extend_from_slice(b"\r\n");

    let mut connection: SmallVec<[&[u8]; 2]> = SmallVec::new();
    let mut forwarded = false;
    for &(name, value) in fields {
        match Role::of(name) {
            Role::Connection => connection.push(value),
            Role::Forwarded | Role::XForwardedFor | Role::XForwardedProto | Role::XForwardedHost => {
                forwarded = true;
            }
            _ => {}
        }
    }
    for &(name, value) in fields {
        let role = Role::of(name);
        if role.is_hop_by_hop() || role.is_rewritten() || listed(connection.iter().copied(), name) {
            continue;
        }
        put(out, name, value);
    }
    match body {
        RequestBody::Length(n) => {
            let _ = write!(out, "content-length: {n}\r\n");
        }
        RequestBody::Chunked => out.extend_from_slice(b"transfer-encoding: chunked\r\n"),
        RequestBody::Empty => {
            if matches!(*req.method, Method::POST | Method::PUT | Method::PATCH) {
                out.extend_from_slice(b"content-length: 0\r\n");
            }
        }
    }
    if let Some(upgrade) = upgrade {
        out.extend_from_slice(b"connection: upgrade\r\n");
        put(out, b"upgrade", upgrade);
    }
    let sent = if fwd.trust && forwarded { fields } else { &[] };
    write_forwarding(out, sent, fwd);
    out.extend_from_slice(b"\r\n");
}

/// Writes the field `name: value` and its CRLF.
pub(crate) fn put(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// Writes the forwarding fields; `sent` holds the client's fields when
/// they are trusted (kept and extended), nothing otherwise.
fn write_forwarding(out: &mut Vec<u8>, sent: &[(&[u8], &[u8])], fwd: &Forwarding<'_>) {
    let proto = if fwd.tls { "https" } else { "http" };

    out.extend_from_slice(b"x-forwarded-for: ");
    for value in values(sent, Role::XForwardedFor) {
        out.extend_from_slice(value);
        out.extend_from_slice(b", ");
    }
    out.extend_from_slice(fwd.client.text());
    out.extend_from_slice(b"\r\n");

    let ours = [
        (Role::XForwardedProto, &b"x-forwarded-proto"[..], proto),
        (Role::XForwardedHost, b"x-forwarded-host", fwd.host),
    ];
    for (role, name, value) in ours {
        let value = values(sent, role).next().unwrap_or(value.as_bytes());
        put(out, name, value);
    }

    out.extend_from_slice(b"forwarded: ");
    for value in values(sent, Role::Forwarded) {
        out.extend_from_slice(value);
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
        let app = |h| app_of_host(h, "apps.example.com").map(Cow::into_owned);
        assert_eq!(app("shop.apps.example.com").as_deref(), Some("shop"));
        assert_eq!(app("Shop.Apps.Example.com:8080").as_deref(), Some("shop"));
        assert!(matches!(
            app_of_host("shop.APPS.example.com", "apps.example.com"),
            Some(Cow::Borrowed("shop"))
        ));
        assert_eq!(app("shop.apps.example.com.").as_deref(), Some("shop"));
        assert_eq!(app("apps.example.com"), None);
        assert_eq!(app(".apps.example.com"), None);
        assert_eq!(app("a.b.apps.example.com"), None);
        assert_eq!(app("shopapps.example.com"), None);
        assert_eq!(app("shop.apps.example.com:x\""), None);
        assert_eq!(app("[::1]:80"), None);
        assert_eq!(app("é.apps.example.com"), None);
        assert_eq!(app("aé.apps.example.com"), None);
        assert_eq!(app("shop.appé.example.com"), None);
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
        write_request_head(&mut out, &RequestHead::of(&parts), body, None, &fwd);
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

    #[test]
    fn roles_ignore_case_and_hop_by_hop_fields_are_known() {
        assert_eq!(Role::of(b"Content-Length"), Role::ContentLength);
        assert_eq!(Role::of(b"X-FORWARDED-PROTO"), Role::XForwardedProto);
        assert_eq!(Role::of(b"transfer-Encoding"), Role::TransferEncoding);
        assert_eq!(Role::of(b"x-forwarded-fox"), Role::Other);
        assert_eq!(Role::of(b"hosts"), Role::Other);
        for name in [
            "te",
            "Trailer",
            "keep-alive",
            "Proxy-Connection",
            "proxy-authorization",
        ] {
            assert_eq!(Role::of(name.as_bytes()), Role::OtherHopByHop, "{name}");
        }
        for name in ["connection", "Upgrade", "transfer-encoding", "TE"] {
            assert!(Role::of(name.as_bytes()).is_hop_by_hop(), "{name}");
        }
        assert!(!Role::of(b"date").is_hop_by_hop());
    }

    #[test]
    fn raw_fields_keep_their_case_and_lose_what_connection_lists() {
        let fields: Fields<'_> = [
            (&b"Host"[..], &b"a.localhost"[..]),
            (b"Connection", b"X-Secret, keep-alive"),
            (b"x-secret", b"1"),
            (b"X-Kept", b"2"),
            (b"Keep-Alive", b"timeout=5"),
            (b"X-Forwarded-Host", b"evil.example"),
        ]
        .into_iter()
        .collect();
        let req = RequestHead {
            method: &Method::GET,
            version: Version::HTTP_11,
            target: "/x?y",
            authority: None,
            fields,
        };
        assert_eq!(req.host(), Ok(Some("a.localhost")));
        assert_eq!(req.upgrade(), None);
        let fwd = Forwarding {
            host: "a.localhost",
            client: ClientIp::new("10.0.0.9".parse().unwrap()),
            tls: true,
            trust: false,
        };
        let mut out = Vec::new();
        write_request_head(&mut out, &req, RequestBody::Empty, None, &fwd);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "GET /x?y HTTP/1.1\r\nhost: a.localhost\r\nX-Kept: 2\r\n\
             x-forwarded-for: 10.0.0.9\r\nx-forwarded-proto: https\r\n\
             x-forwarded-host: a.localhost\r\n\
             forwarded: for=10.0.0.9;host=\"a.localhost\";proto=https\r\n\r\n"
        );
    }

    #[test]
    fn an_upgrade_needs_http_1_1_and_connection_upgrade() {
        let fields = |connection: &'static str| -> Fields<'static> {
            [
                (&b"Connection"[..], connection.as_bytes()),
                (b"Upgrade", b"websocket"),
            ]
            .into_iter()
            .collect()
        };
        let req = |version, connection| RequestHead {
            method: &Method::GET,
            version,
            target: "/",
            authority: None,
            fields: fields(connection),
        };
        assert_eq!(
            req(Version::HTTP_11, "keep-alive, Upgrade").upgrade(),
            Some(&b"websocket"[..])
        );
        assert_eq!(req(Version::HTTP_11, "keep-alive").upgrade(), None);
        assert_eq!(req(Version::HTTP_10, "upgrade").upgrade(), None);
    }
}
