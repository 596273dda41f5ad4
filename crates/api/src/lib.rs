//! Easy Deploy's versioned JSON REST API (`/api/v1`), with its OpenAPI
//! document at `/api/v1/openapi.json`. The CLI uses only this API.

mod access;
mod accounts;
mod alerts;
mod apps;
mod auth;
mod catalog;
mod deployments;
mod error;
mod extract;
mod github;
mod limits;
mod metrics;
mod oauth;
mod observe;
mod releases;
mod views;
mod webhooks;

pub use access::Quotas;
use auth::BearerScheme;
pub use auth::{load_or_create_admin_token, ADMIN_TOKEN_ID};
pub use error::ApiError;
use error::CommonErrors;
pub use github::GithubSourceHost;
pub use limits::RateLimiter;
pub use oauth::GithubOAuth;

use axum::routing::{delete, get, post, put};
use axum::Router;
use easydeploy_engine::Engine;
use std::sync::Arc;
use utoipa::OpenApi;

/// What handlers share.
#[derive(Clone)]
pub struct ApiState {
    /// The deploy engine (and through it the store and backends).
    pub engine: Arc<Engine>,
    /// Public base of app URLs: `http://APP.<apps_domain>[:port]`.
    pub apps_domain: String,
    /// Port of the edge proxy in app URLs (omitted when 80).
    pub proxy_port: u16,
    /// Public base URL of this API (for webhook URLs), without a trailing slash.
    pub public_url: String,
    /// Per-app request counters (the edge proxy), for `/metrics`.
    pub load: Option<Arc<dyn easydeploy_core::ports::LoadMetrics>>,
    /// Per-tenant quotas.
    pub quotas: Quotas,
    /// Sign-in with GitHub, when configured.
    pub github: Option<Arc<GithubOAuth>>,
    /// Rate limit of sign-up and sign-in per client address.
    pub sign_in_limit: Arc<RateLimiter>,
}

impl ApiState {
    /// The public URL of an app.
    pub fn app_url(&self, app: &str) -> String {
        match self.proxy_port {
            80 => format!("http://{app}.{}", self.apps_domain),
            port => format!("http://{app}.{}:{port}", self.apps_domain),
        }
    }
}

/// The OpenAPI document.
#[derive(OpenApi)]
#[openapi(
    info(title = "Easy Deploy API", version = "1", description = "Deploy git repositories as load-balanced container services."),
    paths(
        catalog::frameworks, catalog::analyze,
        apps::list, apps::create, apps::get_app, apps::delete, apps::logs,
        deployments::create, deployments::list, deployments::get_deployment, deployments::logs,
        deployments::artifacts, deployments::artifact,
        releases::list, releases::rollback, releases::env, releases::change_env, releases::scale,
        releases::autoscale, releases::autoscale_off, releases::events,
        webhooks::info, webhooks::receive,
        alerts::get_alerts, alerts::put_alerts, alerts::delete_alerts,
        observe::stats, observe::app_stats, observe::deployment_log_stream, observe::app_log_stream,
        accounts::sign_up, accounts::sign_in, accounts::list_tokens, accounts::revoke_token, accounts::me,
        accounts::create_team, accounts::list_teams, accounts::get_team, accounts::add_member, accounts::remove_member,
        oauth::login, oauth::callback, observe::metrics, healthz, openapi,
        metrics::app_metrics,
        github::browse::repos, github::browse::repo, github::browse::branches, github::browse::commit,
        github::browse::tree, github::browse::analyze
    ),
    modifiers(&BearerScheme, &CommonErrors),
    security(("bearer" = [])),
    tags((name = "accounts"), (name = "apps"), (name = "deployments"), (name = "releases"), (name = "observability"), (name = "webhooks"), (name = "catalog"), (name = "github"))
)]
pub struct ApiDoc;

/// The whole HTTP router: `/healthz`, `/metrics`, `/webhooks/github`,
/// `/auth/github/...` and `/api/v1/...`.
pub fn router(state: ApiState) -> Router {
    let authenticated = Router::new()
        .route("/me", get(accounts::me))
        .route("/tokens", get(accounts::list_tokens))
        .route("/tokens/{id}", delete(accounts::revoke_token))
        .route("/teams", get(accounts::list_teams).post(accounts::create_team))
        .route("/teams/{team}", get(accounts::get_team))
        .route("/teams/{team}/members", post(accounts::add_member))
        .route("/teams/{team}/members/{email}", delete(accounts::remove_member))
        .route("/frameworks", get(catalog::frameworks))
        .route("/analyze", post(catalog::analyze))
        .route("/apps", get(apps::list).post(apps::create))
        .route("/apps/{app}", get(apps::get_app).delete(apps::delete))
        .route("/apps/{app}/logs", get(apps::logs))
        .route(
            "/apps/{app}/deployments",
            get(deployments::list).post(deployments::create),
        )
        .route("/apps/{app}/releases", get(releases::list))
        .route("/apps/{app}/rollback", post(releases::rollback))
        .route("/apps/{app}/env", get(releases::env).patch(releases::change_env))
        .route("/apps/{app}/scale", post(releases::scale))
        .route(
            "/apps/{app}/autoscale",
            put(releases::autoscale).delete(releases::autoscale_off),
        )
        .route("/apps/{app}/events", get(releases::events))
        .route("/apps/{app}/webhook", get(webhooks::info))
        .route(
            "/apps/{app}/alerts",
            get(alerts::get_alerts)
                .put(alerts::put_alerts)
                .delete(alerts::delete_alerts),
        )
        .route("/apps/{app}/stats", get(observe::app_stats))
        .route("/apps/{app}/metrics", get(metrics::app_metrics))
        .route("/apps/{app}/logs/stream", get(observe::app_log_stream))
        .route("/stats", get(observe::stats))
        .route(
            "/deployments/{id}/logs/stream",
            get(observe::deployment_log_stream),
        )
        .route("/github/repos", get(github::browse::repos))
        .route("/github/repos/{owner}/{repo}", get(github::browse::repo))
        .route(
            "/github/repos/{owner}/{repo}/branches",
            get(github::browse::branches),
        )
        .route(
            "/github/repos/{owner}/{repo}/commits/{branch}",
            get(github::browse::commit),
        )
        .route(
            "/github/repos/{owner}/{repo}/tree/{branch}",
            get(github::browse::tree),
        )
        .route(
            "/github/repos/{owner}/{repo}/analyze",
            post(github::browse::analyze),
        )
        .route("/deployments/{id}", get(deployments::get_deployment))
        .route("/deployments/{id}/logs", get(deployments::logs))
        .route("/deployments/{id}/artifacts", get(deployments::artifacts))
        .route("/deployments/{id}/artifacts/{name}", get(deployments::artifact))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::require_token,
        ));
    let sign_in = Router::new()
        .route("/users", post(accounts::sign_up))
        .route("/tokens", post(accounts::sign_in))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            limits::rate_limit,
        ));
    let v1 = authenticated.merge(sign_in).route("/openapi.json", get(openapi));
    let github = Router::new()
        .route("/auth/github/login", get(oauth::login))
        .route("/auth/github/callback", get(oauth::callback))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            limits::rate_limit,
        ));
    let metrics = Router::new()
        .route("/metrics", get(observe::metrics))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::require_token,
        ));
    Router::new()
        .route("/healthz", get(healthz))
        .merge(metrics)
        .merge(github)
        .route("/webhooks/github", post(webhooks::receive))
        .nest("/api/v1", v1)
        .fallback(|| async { ApiError::new(axum::http::StatusCode::NOT_FOUND, "not_found", "no such route") })
        .layer(axum::extract::DefaultBodyLimit::max(1024 * 1024))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            std::time::Duration::from_secs(120),
        ))
        .layer(axum::middleware::from_fn(limits::security_headers))
        .with_state(state)
}

/// Liveness: `ok` while the server runs.
#[utoipa::path(get, path = "/healthz", tag = "catalog", security(()),
    responses((status = 200, content_type = "text/plain", body = String)))]
async fn healthz() -> &'static str {
    "ok\n"
}

/// This document.
#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "catalog", security(()),
    responses((status = 200, content_type = "application/json", body = Object)))]
async fn openapi() -> axum::Json<utoipa::openapi::OpenApi> {
    axum::Json(ApiDoc::openapi())
}
