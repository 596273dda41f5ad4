//! The proxy's own error responses: small HTML pages with a machine-readable
//! `x-easydeploy-error` header.

use crate::body::ProxyBody;
use http::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE};
use http::{Response, StatusCode};

/// Header naming why the proxy answered by itself.
pub(crate) const ERROR_HEADER: &str = "x-easydeploy-error";

fn page(status: StatusCode, code: &'static str, title: &str, message: &str) -> Response<ProxyBody> {
    let html = format!(
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>{title}</title></head>\
         <body><h1>{title}</h1><p>{message}</p><hr><p><small>Easy Deploy</small></p></body></html>\n"
    );
    let mut res = Response::new(ProxyBody::Page(Some(html.into())));
    *res.status_mut() = status;
    let headers = res.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(ERROR_HEADER, HeaderValue::from_static(code));
    res
}

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// 404: the host names no deployed app.
pub(crate) fn unknown_app(app: Option<&str>, host: Option<&str>) -> Response<ProxyBody> {
    let message = match (app, host) {
        (Some(app), _) => format!("No app named <code>{}</code> is deployed here.", escape(app)),
        (None, Some(host)) => format!("No app is deployed at <code>{}</code>.", escape(host)),
        (None, None) => "No app is deployed at this address.".to_owned(),
    };
    page(StatusCode::NOT_FOUND, "unknown_app", "App not found", &message)
}

/// 503: the app has no healthy replica.
pub(crate) fn no_healthy_replica(app: &str) -> Response<ProxyBody> {
    let message = format!(
        "The app <code>{}</code> has no healthy replica right now.",
        escape(app)
    );
    page(
        StatusCode::SERVICE_UNAVAILABLE,
        "no_healthy_replica",
        "App unavailable",
        &message,
    )
}

/// 502: no replica of the app could be reached.
pub(crate) fn upstream_unreachable(app: &str) -> Response<ProxyBody> {
    let message = format!("The app <code>{}</code> could not be reached.", escape(app));
    page(
        StatusCode::BAD_GATEWAY,
        "upstream_unreachable",
        "Bad gateway",
        &message,
    )
}

/// 502: the replica failed while answering.
pub(crate) fn upstream_error(app: &str) -> Response<ProxyBody> {
    let message = format!("The app <code>{}</code> failed to answer.", escape(app));
    page(StatusCode::BAD_GATEWAY, "upstream_error", "Bad gateway", &message)
}

/// 504: the replica did not send its response headers in time.
pub(crate) fn upstream_timeout(app: &str) -> Response<ProxyBody> {
    let message = format!("The app <code>{}</code> did not answer in time.", escape(app));
    page(
        StatusCode::GATEWAY_TIMEOUT,
        "upstream_timeout",
        "Gateway timeout",
        &message,
    )
}

/// 413: the request body is larger than the proxy accepts.
pub(crate) fn too_large(max: u64) -> Response<ProxyBody> {
    let message = format!("Request bodies are limited to {max} bytes here.");
    page(
        StatusCode::PAYLOAD_TOO_LARGE,
        "body_too_large",
        "Payload too large",
        &message,
    )
}

/// 400: the request names no host, several, or one that is not text.
pub(crate) fn bad_host(problem: &'static str) -> Response<ProxyBody> {
    page(StatusCode::BAD_REQUEST, "bad_host", "Bad request", problem)
}

/// 400: the client's request body was cut short or malformed.
pub(crate) fn bad_request() -> Response<ProxyBody> {
    page(
        StatusCode::BAD_REQUEST,
        "bad_request",
        "Bad request",
        "The request body could not be read.",
    )
}
