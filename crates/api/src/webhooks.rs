//! Push-to-deploy: GitHub-style push webhooks signed with the app's secret
//! (`X-Hub-Signature-256`), deduplicated by delivery id, deploying exactly
//! the pushed commit.

use crate::apps::app_name;
use crate::extract::Query;
use crate::views::DeploymentView;
use crate::{ApiError, ApiState};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use easydeploy_store::{App, NewDeployment};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use utoipa::ToSchema;

/// Where to send an app's push events and the secret to sign them with.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookInfo {
    /// Payload URL (content type application/json).
    pub url: String,
    /// Secret for the HMAC-SHA256 signature (`X-Hub-Signature-256`).
    pub secret: String,
    /// Branch whose pushes deploy.
    pub branch: String,
}

/// The app's webhook URL and secret, to paste into any git host.
#[utoipa::path(get, path = "/api/v1/apps/{app}/webhook", tag = "webhooks", params(("app" = String, Path)),
    responses((status = 200, body = WebhookInfo), (status = 401, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)))]
pub async fn info(
    State(state): State<ApiState>,
    crate::access::DeployerOf(app): crate::access::DeployerOf,
) -> Result<Json<WebhookInfo>, ApiError> {
    let name = app.name;
    let app = state.engine.store().app(&name).await?;
    Ok(Json(WebhookInfo {
        url: format!("{}/webhooks/github?app={name}", state.public_url),
        secret: app.webhook_secret.clone(),
        branch: app.settings.branch.to_string(),
    }))
}

/// Which app a delivery is for (when the URL names it).
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct Target {
    /// App name; without it, apps whose source is the pushed repository.
    pub app: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Push {
    #[serde(rename = "ref")]
    reference: Option<String>,
    after: Option<String>,
    #[serde(default)]
    deleted: bool,
    repository: Option<Repository>,
}

#[derive(Debug, Deserialize)]
struct Repository {
    clone_url: Option<String>,
    ssh_url: Option<String>,
    git_url: Option<String>,
    html_url: Option<String>,
    url: Option<String>,
}

/// What a delivery did.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookOutcome {
    /// `deployed`, `ignored`, `duplicate` or `pong`.
    pub result: String,
    /// Why, in words.
    pub reason: String,
    /// Deployments queued.
    pub deployments: Vec<DeploymentView>,
}

fn outcome(
    status: StatusCode,
    result: &str,
    reason: impl Into<String>,
    deployments: Vec<DeploymentView>,
) -> axum::response::Response {
    let body = WebhookOutcome {
        result: result.into(),
        reason: reason.into(),
        deployments,
    };
    (status, Json(body)).into_response()
}

/// `https://github.com/Me/Shop.git/` → `github.com/me/shop`.
fn normalize(url: &str) -> String {
    let url = url
        .trim()
        .trim_end_matches('/')
        .trim_end_matches(".git")
        .to_ascii_lowercase();
    let url = url
        .split_once("://")
        .map_or(url.as_str(), |(_, rest)| rest)
        .to_owned();
    let url = url
        .rsplit_once('@')
        .map_or(url.as_str(), |(_, host)| host)
        .to_owned();
    url.replacen(':', "/", usize::from(!url.starts_with('/')))
}

/// Constant-time check of `sha256=<hex>` against the body.
fn signature_valid(secret: &str, body: &[u8], header: Option<&str>) -> bool {
    let Some(hex_sig) = header.and_then(|h| h.strip_prefix("sha256=")) else {
        return false;
    };
    let Ok(expected) = hex::decode(hex_sig) else {
        return false;
    };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else {
        return false;
    };
    mac.update(body);
    !secret.is_empty() && mac.verify_slice(&expected).is_ok()
}

/// Receives push events: verifies the signature against the app's secret
/// (401 and nothing else when missing or wrong), answers `ping`, ignores
/// other events, tags, deletions and other branches (202 with the reason),
/// deduplicates by `X-GitHub-Delivery`, and queues a deployment of exactly
/// the pushed commit (a queued older one is superseded).
#[utoipa::path(post, path = "/webhooks/github", tag = "webhooks", params(Target),
    responses((status = 200, body = WebhookOutcome), (status = 202, body = WebhookOutcome),
              (status = 400, body = crate::error::ErrorBody), (status = 401, body = crate::error::ErrorBody)),
    security(()))]
pub async fn receive(
    State(state): State<ApiState>,
    Query(target): Query<Target>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<axum::response::Response, ApiError> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let unauthorized = || {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_signature",
            "the X-Hub-Signature-256 signature is missing or wrong",
        )
    };
    let push: Push = serde_json::from_slice(&body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_body",
            format!("the payload is not a push event: {e}"),
        )
    })?;
    let store = state.engine.store();
    let candidates: Vec<App> = match &target.app {
        Some(app) => vec![store
            .app(&app_name(app).map_err(|_| unauthorized())?)
            .await
            .map_err(|_| unauthorized())?],
        None => {
            let urls: Vec<String> = push
                .repository
                .iter()
                .flat_map(|r| [&r.clone_url, &r.ssh_url, &r.git_url, &r.html_url, &r.url])
                .flatten()
                .map(|u| normalize(u))
                .collect();
            store
                .apps()
                .await?
                .into_iter()
                .filter(|a| urls.contains(&normalize(a.settings.source.as_str())))
                .collect()
        }
    };
    let signature = header("x-hub-signature-256");
    let apps: Vec<App> = candidates
        .into_iter()
        .filter(|a| signature_valid(&a.webhook_secret, &body, signature))
        .collect();
    if apps.is_empty() {
        return Err(unauthorized());
    }
    let event = header("x-github-event").unwrap_or("push");
    if event == "ping" {
        return Ok(outcome(
            StatusCode::OK,
            "pong",
            "the webhook is set up",
            Vec::new(),
        ));
    }
    if event != "push" {
        return Ok(outcome(
            StatusCode::ACCEPTED,
            "ignored",
            format!("'{event}' events do not deploy"),
            Vec::new(),
        ));
    }
    let Some(branch) = push
        .reference
        .as_deref()
        .and_then(|r| r.strip_prefix("refs/heads/"))
    else {
        return Ok(outcome(
            StatusCode::ACCEPTED,
            "ignored",
            "tag pushes do not deploy",
            Vec::new(),
        ));
    };
    let commit = push.after.as_deref().unwrap_or("");
    if push.deleted || commit.bytes().all(|b| b == b'0') {
        return Ok(outcome(
            StatusCode::ACCEPTED,
            "ignored",
            "the branch was deleted",
            Vec::new(),
        ));
    }
    if commit.len() != 40 || !commit.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_body",
            "`after` must be a full commit id",
        ));
    }
    let tracking: Vec<&App> = apps
        .iter()
        .filter(|a| a.settings.branch.as_str() == branch)
        .collect();
    if tracking.is_empty() {
        return Ok(outcome(
            StatusCode::ACCEPTED,
            "ignored",
            format!("pushes to '{branch}' do not deploy"),
            Vec::new(),
        ));
    }
    if let Some(delivery) = header("x-github-delivery") {
        if delivery.len() > 128 || !store.first_delivery(delivery).await? {
            return Ok(outcome(
                StatusCode::OK,
                "duplicate",
                "this delivery was already handled",
                Vec::new(),
            ));
        }
    }
    let mut queued = Vec::new();
    for app in tracking {
        let mut new = NewDeployment::build(Some(commit));
        new.created_by = "push webhook".into();
        let deployment = store.enqueue(&app.name, &app.settings, &new).await?;
        store
            .add_event(
                &app.name,
                "push",
                &format!(
                    "push of {} to {branch} queued deployment #{}",
                    &commit[..7],
                    deployment.number
                ),
            )
            .await?;
        queued.push(DeploymentView::new(&state, &deployment, None));
    }
    state.engine.wake();
    Ok(outcome(
        StatusCode::ACCEPTED,
        "deployed",
        format!("deploying {}", &commit[..7]),
        queued,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repository_urls_match_across_forms() {
        let forms = [
            "https://github.com/Me/Shop.git",
            "git@github.com:me/shop.git",
            "git://github.com/me/shop",
            "https://github.com/me/shop/",
        ];
        for form in forms {
            assert_eq!(normalize(form), "github.com/me/shop", "{form}");
        }
        assert_eq!(normalize("/srv/repos/shop/"), "/srv/repos/shop");
    }

    #[test]
    fn signatures_are_checked() {
        let mut mac = Hmac::<Sha256>::new_from_slice(b"s3cret").unwrap();
        mac.update(b"{}");
        let good = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
        assert!(signature_valid("s3cret", b"{}", Some(&good)));
        assert!(!signature_valid("other", b"{}", Some(&good)));
        assert!(!signature_valid("s3cret", b"{ }", Some(&good)));
        assert!(!signature_valid("s3cret", b"{}", None));
        assert!(!signature_valid("s3cret", b"{}", Some("sha256=zz")));
        assert!(!signature_valid("", b"{}", Some(&good)));
    }
}
