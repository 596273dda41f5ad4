//! Header handling: the routing host, hop-by-hop removal, forwarding headers.

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::Request;
use std::net::{IpAddr, SocketAddr};

/// Headers that describe one connection and are never forwarded (RFC 9110 §7.6.1).
const HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    header::PROXY_AUTHORIZATION,
];

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

/// The host the client asked for, as sent: the URI authority (HTTP/2, or an
/// absolute-form HTTP/1 target) or else the `Host` header.
pub(crate) fn request_host<B>(req: &Request<B>) -> Option<&str> {
    match req.uri().authority() {
        Some(authority) => Some(authority.as_str()),
        None => req.headers().get(header::HOST)?.to_str().ok(),
    }
}

/// The app named by `host` when it is `<app>.<domain>` (after dropping a
/// numeric port and a trailing dot, ignoring case). `domain` is lowercase.
pub(crate) fn app_of_host(host: &str, domain: &str) -> Option<String> {
    let name = match host.split_once(':') {
        Some((name, port)) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => name,
        Some(_) => return None,
        None => host,
    };
    let name = name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase();
    let app = name.strip_suffix(domain)?.strip_suffix('.')?;
    (!app.is_empty() && !app.contains('.')).then(|| app.to_owned())
}

/// Removes `Connection`, the headers it names, and the other hop-by-hop headers.
pub(crate) fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let listed: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::try_from(name.trim()).ok())
        .collect();
    for name in listed.iter().chain(HOP_BY_HOP.iter()) {
        headers.remove(name);
    }
}

/// Prepares request headers for the backend: drops hop-by-hop headers,
/// replaces any client-supplied forwarding headers with what the proxy saw,
/// and keeps the original host (adding `Host` for HTTP/2 clients).
pub(crate) fn forward_request_headers(headers: &mut HeaderMap, host: &str, client: SocketAddr) {
    strip_hop_by_hop(headers);
    let ip = client.ip().to_canonical();
    let host_value = HeaderValue::from_str(host).ok();
    if let Some(value) = &host_value {
        headers.entry(header::HOST).or_insert_with(|| value.clone());
    }
    headers.insert(X_FORWARDED_FOR, HeaderValue::from(IpHeader(ip)));
    headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static("http"));
    headers.remove(X_FORWARDED_HOST);
    if let Some(value) = host_value {
        headers.insert(X_FORWARDED_HOST, value);
    }
    let node = match ip {
        IpAddr::V4(ip) => ip.to_string(),
        IpAddr::V6(ip) => format!("\"[{ip}]\""),
    };
    // `host` only reaches here after `app_of_host` accepted it: no quotes or backslashes.
    let forwarded = format!("for={node};host=\"{host}\";proto=http");
    match HeaderValue::try_from(forwarded) {
        Ok(value) => headers.insert(header::FORWARDED, value),
        Err(_) => headers.remove(header::FORWARDED),
    };
}

struct IpHeader(IpAddr);

impl From<IpHeader> for HeaderValue {
    fn from(ip: IpHeader) -> Self {
        HeaderValue::try_from(ip.0.to_string()).expect("an IP address is a valid header value")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn app_is_the_label_before_the_domain() {
        let app = |h| app_of_host(h, "apps.example.com");
        assert_eq!(app("shop.apps.example.com").as_deref(), Some("shop"));
        assert_eq!(app("Shop.Apps.Example.com:8080").as_deref(), Some("shop"));
        assert_eq!(app("shop.apps.example.com.").as_deref(), Some("shop"));
        assert_eq!(app("apps.example.com"), None);
        assert_eq!(app(".apps.example.com"), None);
        assert_eq!(app("a.b.apps.example.com"), None);
        assert_eq!(app("shopapps.example.com"), None);
        assert_eq!(app("shop.apps.example.com:x\""), None);
        assert_eq!(app("[::1]:80"), None);
    }

    #[test]
    fn connection_listed_headers_are_removed() {
        let mut h = HeaderMap::new();
        h.insert(header::CONNECTION, HeaderValue::from_static("x-a, X-B"));
        h.insert("x-a", HeaderValue::from_static("1"));
        h.insert("x-b", HeaderValue::from_static("1"));
        h.insert("x-c", HeaderValue::from_static("1"));
        h.insert(header::TE, HeaderValue::from_static("trailers"));
        strip_hop_by_hop(&mut h);
        assert_eq!(h.keys().map(|k| k.as_str()).collect::<Vec<_>>(), ["x-c"]);
    }

    #[test]
    fn forwarding_headers_replace_client_values() {
        let mut h = HeaderMap::new();
        h.insert(X_FORWARDED_FOR, HeaderValue::from_static("1.2.3.4"));
        h.insert(header::FORWARDED, HeaderValue::from_static("for=1.2.3.4"));
        forward_request_headers(&mut h, "a.localhost:8080", "[::1]:5000".parse().unwrap());
        assert_eq!(h[X_FORWARDED_FOR], "::1");
        assert_eq!(h[header::HOST], "a.localhost:8080");
        assert_eq!(h[X_FORWARDED_HOST], "a.localhost:8080");
        assert_eq!(
            h[header::FORWARDED],
            "for=\"[::1]\";host=\"a.localhost:8080\";proto=http"
        );
    }
}
