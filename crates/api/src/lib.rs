//! Easy Deploy's versioned JSON REST API (`/api/v1`), with its OpenAPI
//! document at `/api/v1/openapi.json`. The CLI uses only this API.

mod alerts;
mod apps;
mod auth;
mod catalog;
mod deployments;
mod error;
mod metrics;
mod observe;
mod releases;
mod views;
mod webhooks;

pub use auth::AdminToken;
use auth::BearerScheme;
pub use error::ApiError;

use axum::routing::{get, post, put};
use axum::Router;
use easydeploy_engine::Engine;
use std::sync::Arc;
use utoipa::OpenApi;

/// What handlers share.
#[derive(Clone)]
pub struct ApiState {
    /// The deploy engine (and through it the store and backends).
    pub engine: Arc<Engine>,
    /// Admin token accepted as `Authorization: Bearer`.
    pub token: Arc<AdminToken>,
    /// Public base of app URLs: `http://APP.<apps_domain>[:port]`.
    pub apps_domain: String,
    /// Port of the edge proxy in app URLs (omitted when 80).
    pub proxy_port: u16,
    /// Public base URL of this API (for webhook URLs), without a trailing slash.
    pub public_url: String,
    /// Per-app request counters (the edge proxy), for `/metrics`.
    pub load: Option<Arc<dyn easydeploy_core::ports::LoadMetrics>>,
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
        metrics::app_metrics
    ),
    modifiers(&BearerScheme),
    security(("bearer" = [])),
    tags((name = "apps"), (name = "deployments"), (name = "releases"), (name = "observability"), (name = "webhooks"), (name = "catalog"))
)]
pub struct ApiDoc;

/// The whole HTTP router: `/healthz`, `/api/v1/...`.
pub fn router(state: ApiState) -> Router {
    let v1 = Router::new()
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
        .route("/deployments/{id}", get(deployments::get_deployment))
        .route("/deployments/{id}/logs", get(deployments::logs))
        .route("/deployments/{id}/artifacts", get(deployments::artifacts))
        .route("/deployments/{id}/artifacts/{name}", get(deployments::artifact))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::require_token,
        ))
        .route("/openapi.json", get(openapi));
    let metrics = Router::new()
        .route("/metrics", get(observe::metrics))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::require_token,
        ));
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .merge(metrics)
        .route("/webhooks/github", post(webhooks::receive))
        .nest("/api/v1", v1)
        .fallback(|| async { ApiError::new(axum::http::StatusCode::NOT_FOUND, "not_found", "no such route") })
        .layer(axum::extract::DefaultBodyLimit::max(1024 * 1024))
        .with_state(state)
}

async fn openapi() -> axum::Json<utoipa::openapi::OpenApi> {
    axum::Json(ApiDoc::openapi())
}
