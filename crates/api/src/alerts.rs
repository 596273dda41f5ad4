//! Alerts: per-app rules delivered to a webhook the user sets, signed with
//! a per-app secret shown once.

use crate::apps::{refuse_unknown, JsonBody};
use crate::{ApiError, ApiState};
use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::Json;
use easydeploy_store::{AlertRules, AlertSettings, AlertState};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// An app's alerts: settings, rules and each rule's state.
#[derive(Debug, Serialize, ToSchema)]
pub struct AlertsView {
    /// Whether alerts are on (a webhook is set).
    pub enabled: bool,
    /// Where notifications are POSTed.
    pub webhook_url: Option<String>,
    /// HMAC-SHA256 key of `X-Easydeploy-Signature-256`: in full only in the
    /// answer that created (or rotated) it, masked afterwards.
    pub secret: Option<String>,
    /// The thresholds (defaults while alerts are off).
    pub rules: AlertRules,
    /// Rules firing now.
    pub firing: Vec<String>,
    /// Every rule that fired at some point, firing ones first.
    pub states: Vec<AlertState>,
}

/// Turns alerts on or changes them; omitted thresholds keep their value (or default).
#[derive(Debug, Deserialize, ToSchema)]
pub struct AlertsRequest {
    /// http(s) URL receiving the notifications (required when turning alerts on).
    pub webhook_url: Option<String>,
    /// 5xx percentage of responses above which `error_ratio` fires (default 5).
    pub error_ratio_percent: Option<f64>,
    /// Window of the 5xx ratio, in seconds (default 300).
    pub window_secs: Option<i64>,
    /// p95 latency in ms above which `latency_p95` fires (default 1000).
    pub latency_p95_ms: Option<i64>,
    /// Restarts of a replica from which `crash_loop` fires (default 3).
    pub crash_loop_restarts: Option<i64>,
    /// Whether `no_healthy_replica` is evaluated (default true).
    pub no_healthy_replica: Option<bool>,
    /// Generate a new secret (returned in this answer).
    #[serde(default)]
    pub rotate_secret: bool,
    /// Fields no version of the API knows; refused.
    #[serde(flatten)]
    #[schema(ignore)]
    pub unknown: std::collections::BTreeMap<String, serde_json::Value>,
}

fn mask(secret: &str) -> String {
    let tail = secret.get(secret.len().saturating_sub(4)..).unwrap_or("");
    format!("****{tail}")
}

fn view(settings: Option<&AlertSettings>, states: Vec<AlertState>, reveal: bool) -> AlertsView {
    AlertsView {
        enabled: settings.is_some(),
        webhook_url: settings.map(|s| s.webhook_url.clone()),
        secret: settings.map(|s| if reveal { s.secret.clone() } else { mask(&s.secret) }),
        rules: settings.map_or_else(AlertRules::default, |s| s.rules),
        firing: states
            .iter()
            .filter(|s| s.firing_since.is_some())
            .map(|s| s.rule.clone())
            .collect(),
        states,
    }
}

fn bad(code: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, code, message)
}

/// Checks a webhook URL: absolute http(s) with a host, no credentials, at most 2048 characters.
fn webhook_url(raw: &str) -> Result<String, ApiError> {
    let raw = raw.trim();
    let refuse = || {
        bad(
            "invalid_webhook_url",
            "the webhook URL must be an absolute http:// or https:// URL with a host",
        )
    };
    if raw.len() > 2048 || raw.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(refuse());
    }
    let uri: Uri = raw.parse().map_err(|_| refuse())?;
    let scheme_ok = matches!(uri.scheme_str(), Some("http" | "https"));
    let authority = uri.authority().ok_or_else(refuse)?;
    if !scheme_ok || authority.host().is_empty() {
        return Err(refuse());
    }
    if authority.as_str().contains('@') {
        return Err(bad(
            "invalid_webhook_url",
            "the webhook URL must not carry credentials; put a token in its path or query",
        ));
    }
    Ok(raw.to_owned())
}

fn rules(current: AlertRules, body: &AlertsRequest) -> Result<AlertRules, ApiError> {
    let mut rules = current;
    if let Some(p) = body.error_ratio_percent {
        if !(p > 0.0 && p <= 100.0) {
            return Err(bad(
                "invalid_error_ratio",
                "error_ratio_percent must be above 0 and at most 100",
            ));
        }
        rules.error_ratio_percent = p;
    }
    if let Some(w) = body.window_secs {
        if !(10..=86_400).contains(&w) {
            return Err(bad("invalid_window", "window_secs must be between 10 and 86400"));
        }
        rules.window_secs = w;
    }
    if let Some(ms) = body.latency_p95_ms {
        if !(1..=600_000).contains(&ms) {
            return Err(bad(
                "invalid_latency",
                "latency_p95_ms must be between 1 and 600000",
            ));
        }
        rules.latency_p95_ms = ms;
    }
    if let Some(n) = body.crash_loop_restarts {
        if !(1..=1000).contains(&n) {
            return Err(bad(
                "invalid_crash_loop",
                "crash_loop_restarts must be between 1 and 1000",
            ));
        }
        rules.crash_loop_restarts = n;
    }
    if let Some(on) = body.no_healthy_replica {
        rules.no_healthy_replica = on;
    }
    Ok(rules)
}

/// The app's alert settings (secret masked), rules and their state.
#[utoipa::path(get, path = "/api/v1/apps/{app}/alerts", tag = "observability", params(("app" = String, Path)),
    responses((status = 200, body = AlertsView), (status = 401, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)))]
pub async fn get_alerts(
    State(state): State<ApiState>,
    crate::access::ViewerOf(app): crate::access::ViewerOf,
) -> Result<Json<AlertsView>, ApiError> {
    let name = app.name;
    let store = state.engine.store();
    store.app(&name).await?;
    let settings = store.alert_settings(&name).await?;
    let states = store.alert_states(&name).await?;
    Ok(Json(view(settings.as_ref(), states, false)))
}

/// Turns the app's alerts on or changes them. The answer that creates the
/// settings (or rotates the secret) carries the secret in full, once.
#[utoipa::path(put, path = "/api/v1/apps/{app}/alerts", tag = "observability", params(("app" = String, Path)),
    request_body = AlertsRequest,
    responses((status = 200, body = AlertsView), (status = 400, body = crate::error::ErrorBody),
              (status = 401, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody),
              (status = 422, body = crate::error::ErrorBody)))]
pub async fn put_alerts(
    State(state): State<ApiState>,
    crate::access::DeployerOf(app): crate::access::DeployerOf,
    JsonBody(body): JsonBody<AlertsRequest>,
) -> Result<Json<AlertsView>, ApiError> {
    refuse_unknown(&body.unknown)?;
    let name = app.name;
    let store = state.engine.store();
    store.app(&name).await?;
    let current = store.alert_settings(&name).await?;
    let url = match (&body.webhook_url, &current) {
        (Some(url), _) => webhook_url(url)?,
        (None, Some(current)) => current.webhook_url.clone(),
        (None, None) => return Err(bad("webhook_url_required", "set webhook_url to turn alerts on")),
    };
    let rules = rules(
        current.as_ref().map_or_else(AlertRules::default, |c| c.rules),
        &body,
    )?;
    let (settings, fresh) = store.set_alerts(&name, &url, &rules, body.rotate_secret).await?;
    let states = store.alert_states(&name).await?;
    Ok(Json(view(Some(&settings), states, fresh)))
}

/// Turns the app's alerts off and forgets their state.
#[utoipa::path(delete, path = "/api/v1/apps/{app}/alerts", tag = "observability", params(("app" = String, Path)),
    responses((status = 204), (status = 401, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)))]
pub async fn delete_alerts(
    State(state): State<ApiState>,
    crate::access::DeployerOf(app): crate::access::DeployerOf,
) -> Result<StatusCode, ApiError> {
    let name = app.name;
    let store = state.engine.store();
    store.app(&name).await?;
    store.delete_alerts(&name).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn webhook_urls_are_http_with_a_host() {
        assert!(webhook_url("http://127.0.0.1:9000/hook").is_ok());
        assert!(webhook_url("https://hooks.example.com/a?b=c").is_ok());
        for bad in [
            "",
            "hooks.example.com/a",
            "ftp://example.com/",
            "http:///path",
            "http://user:pw@example.com/",
            "http://exa mple.com/",
            "/relative",
        ] {
            let e = webhook_url(bad).unwrap_err();
            assert_eq!(e.code, "invalid_webhook_url", "{bad}");
        }
    }

    #[test]
    fn thresholds_are_checked() {
        let body = |json: serde_json::Value| serde_json::from_value::<AlertsRequest>(json).unwrap();
        let base = AlertRules::default();
        let ok = rules(
            base,
            &body(serde_json::json!({"error_ratio_percent": 10, "crash_loop_restarts": 5})),
        )
        .unwrap();
        assert_eq!(ok.error_ratio_percent, 10.0);
        assert_eq!(ok.crash_loop_restarts, 5);
        assert_eq!(ok.window_secs, 300);
        for (json, code) in [
            (
                serde_json::json!({"error_ratio_percent": 0}),
                "invalid_error_ratio",
            ),
            (
                serde_json::json!({"error_ratio_percent": 101}),
                "invalid_error_ratio",
            ),
            (serde_json::json!({"window_secs": 1}), "invalid_window"),
            (serde_json::json!({"latency_p95_ms": 0}), "invalid_latency"),
            (
                serde_json::json!({"crash_loop_restarts": 0}),
                "invalid_crash_loop",
            ),
        ] {
            assert_eq!(rules(base, &body(json)).unwrap_err().code, code);
        }
        assert_eq!(mask("abcdef0123"), "****0123");
    }
}
