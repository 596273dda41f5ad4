//! Releases and what changes a live app without building: rollback,
//! environment variables, scaling, autoscaling, and the app's events.

use crate::apps::JsonBody;
use crate::auth::Caller;
use crate::extract::Query;
use crate::views::{DeploymentView, EnvView};
use crate::{ApiError, ApiState};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use easydeploy_core::{Autoscale, EnvVar, Replicas};
use easydeploy_store::Event;
use easydeploy_store::Role;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The app's releases (deployments that went live), newest first.
#[utoipa::path(get, path = "/api/v1/apps/{app}/releases", tag = "releases", params(("app" = String, Path)),
    responses((status = 200, body = [DeploymentView]), (status = 401, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)))]
pub async fn list(
    State(state): State<ApiState>,
    crate::access::ViewerOf(app): crate::access::ViewerOf,
) -> Result<Json<Vec<DeploymentView>>, ApiError> {
    let name = app.name;
    let store = state.engine.store();
    store.app(&name).await?;
    let releases = store.releases(&name, 100).await?;
    Ok(Json(
        releases
            .iter()
            .map(|d| DeploymentView::new(&state, d, None))
            .collect(),
    ))
}

/// Which release to roll back to.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RollbackRequest {
    /// Release number (default: the one before the live release).
    pub to: Option<i64>,
}

/// Re-releases an earlier release's image and configuration, without
/// building, through the same rolling update as a deploy.
#[utoipa::path(post, path = "/api/v1/apps/{app}/rollback", tag = "releases", params(("app" = String, Path)),
    request_body = RollbackRequest,
    responses((status = 202, body = DeploymentView), (status = 401, body = crate::error::ErrorBody),
              (status = 404, body = crate::error::ErrorBody), (status = 422, body = crate::error::ErrorBody)))]
pub async fn rollback(
    State(state): State<ApiState>,
    caller: Caller,
    crate::access::DeployerOf(app): crate::access::DeployerOf,
    JsonBody(body): JsonBody<RollbackRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let name = app.name;
    let deployment = state.engine.rollback(&name, body.to, &caller.user.email).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(DeploymentView::new(&state, &deployment, None)),
    ))
}

/// Whether to show values.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct RevealQuery {
    /// Show the values (deployers and owners only); masked otherwise.
    pub reveal: Option<bool>,
}

/// The app's environment variables, values masked unless `reveal=true`.
#[utoipa::path(get, path = "/api/v1/apps/{app}/env", tag = "releases", params(("app" = String, Path), RevealQuery),
    responses((status = 200, body = [EnvView]), (status = 400, body = crate::error::ErrorBody), (status = 401, body = crate::error::ErrorBody),
              (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)))]
pub async fn env(
    State(state): State<ApiState>,
    caller: Caller,
    Path(app): Path<String>,
    Query(q): Query<RevealQuery>,
) -> Result<Json<Vec<EnvView>>, ApiError> {
    let reveal = q.reveal.unwrap_or(false);
    let needed = if reveal { Role::Deployer } else { Role::Viewer };
    let app = crate::access::app_for(&state, &caller, &app, needed).await?;
    Ok(Json(
        app.settings
            .env
            .iter()
            .map(|v| EnvView {
                name: v.name.clone(),
                value: if reveal {
                    v.value.clone()
                } else {
                    "********".into()
                },
            })
            .collect(),
    ))
}

/// Environment changes.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EnvChange {
    /// `NAME=value` to set.
    #[serde(default)]
    pub set: Vec<String>,
    /// Names to remove.
    #[serde(default)]
    pub unset: Vec<String>,
}

/// What an environment change did.
#[derive(Debug, Serialize, ToSchema)]
pub struct EnvChanged {
    /// The release it makes (same image, new configuration), if the app is live and something changed.
    pub deployment: Option<DeploymentView>,
}

/// Sets and unsets environment variables; a live app gets a new release of
/// the same image (no rebuild).
#[utoipa::path(patch, path = "/api/v1/apps/{app}/env", tag = "releases", params(("app" = String, Path)),
    request_body = EnvChange,
    responses((status = 200, body = EnvChanged), (status = 400, body = crate::error::ErrorBody),
              (status = 401, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)))]
pub async fn change_env(
    State(state): State<ApiState>,
    caller: Caller,
    crate::access::DeployerOf(app): crate::access::DeployerOf,
    JsonBody(body): JsonBody<EnvChange>,
) -> Result<Json<EnvChanged>, ApiError> {
    let name = app.name;
    let set = body
        .set
        .iter()
        .map(|raw| EnvVar::parse(raw))
        .collect::<Result<Vec<_>, _>>()?;
    for unset in &body.unset {
        EnvVar::new(unset, "")?;
    }
    let deployment = state
        .engine
        .set_env(&name, set, &body.unset, &caller.user.email)
        .await?;
    Ok(Json(EnvChanged {
        deployment: deployment.map(|d| DeploymentView::new(&state, &d, None)),
    }))
}

/// A replica serving the app.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReplicaView {
    /// Backend id.
    pub id: String,
    /// Name.
    pub name: String,
    /// Address the proxy dials.
    pub addr: Option<String>,
}

/// A replica count.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScaleRequest {
    /// Replicas wanted (1-20); turns autoscaling off.
    pub replicas: i64,
}

/// Sets the replica count of the live release; returns the replicas serving.
#[utoipa::path(post, path = "/api/v1/apps/{app}/scale", tag = "releases", params(("app" = String, Path)),
    request_body = ScaleRequest,
    responses((status = 200, body = [ReplicaView]), (status = 400, body = crate::error::ErrorBody),
              (status = 401, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)))]
pub async fn scale(
    State(state): State<ApiState>,
    caller: Caller,
    crate::access::DeployerOf(current): crate::access::DeployerOf,
    JsonBody(body): JsonBody<ScaleRequest>,
) -> Result<Json<Vec<ReplicaView>>, ApiError> {
    let name = current.name;
    let replicas = Replicas::parse(body.replicas)?;
    crate::access::check_quota(&state, &current.tenant, &name, replicas.get(), false).await?;
    let serving = state.engine.scale(&name, replicas, &caller.user.email).await?;
    Ok(Json(
        serving
            .into_iter()
            .map(|r| ReplicaView {
                id: r.id,
                name: r.name,
                addr: r.addr.map(|a| a.to_string()),
            })
            .collect(),
    ))
}

/// Autoscaling bounds and target.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AutoscaleRequest {
    /// Fewest replicas.
    pub min: i64,
    /// Most replicas.
    pub max: i64,
    /// Requests per second each replica should serve.
    pub target_rps: f64,
}

/// Turns target-tracking autoscaling on.
#[utoipa::path(put, path = "/api/v1/apps/{app}/autoscale", tag = "releases", params(("app" = String, Path)),
    request_body = AutoscaleRequest,
    responses((status = 200, body = Autoscale), (status = 400, body = crate::error::ErrorBody),
              (status = 401, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)))]
pub async fn autoscale(
    State(state): State<ApiState>,
    caller: Caller,
    crate::access::DeployerOf(current): crate::access::DeployerOf,
    JsonBody(body): JsonBody<AutoscaleRequest>,
) -> Result<Json<Autoscale>, ApiError> {
    let name = current.name;
    let policy = Autoscale::new(body.min, body.max, body.target_rps)?;
    crate::access::check_quota(&state, &current.tenant, &name, policy.max, false).await?;
    state
        .engine
        .set_autoscale(&name, Some(policy), &caller.user.email)
        .await?;
    Ok(Json(policy))
}

/// Turns autoscaling off (the replica count stays where it is).
#[utoipa::path(delete, path = "/api/v1/apps/{app}/autoscale", tag = "releases", params(("app" = String, Path)),
    responses((status = 204), (status = 401, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)))]
pub async fn autoscale_off(
    State(state): State<ApiState>,
    caller: Caller,
    crate::access::DeployerOf(app): crate::access::DeployerOf,
) -> Result<StatusCode, ApiError> {
    let name = app.name;
    state
        .engine
        .set_autoscale(&name, None, &caller.user.email)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The app's events (deploys, releases, scaling, healing, crash loops), newest first.
#[utoipa::path(get, path = "/api/v1/apps/{app}/events", tag = "releases", params(("app" = String, Path)),
    responses((status = 200, body = [Event]), (status = 401, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)))]
pub async fn events(
    State(state): State<ApiState>,
    crate::access::ViewerOf(app): crate::access::ViewerOf,
) -> Result<Json<Vec<Event>>, ApiError> {
    let name = app.name;
    let store = state.engine.store();
    store.app(&name).await?;
    Ok(Json(store.events(&name, 100).await?))
}
