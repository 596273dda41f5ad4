//! Deployments: queue one, list an app's, get one with its history, its log and artifacts.

use crate::apps::JsonBody;
use crate::auth::Caller;
use crate::extract::Query;
use crate::views::{DeploymentView, LogChunk, SettingsInput};
use crate::{ApiError, ApiState};
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use easydeploy_store::Role;
use serde::Deserialize;
use utoipa::ToSchema;

/// A deployment request: setting changes (kept on the app) and an optional commit.
#[derive(Debug, Deserialize, ToSchema)]
pub struct CreateDeployment {
    /// Exact commit of the branch to deploy (default: the branch's head).
    pub commit: Option<String>,
    /// Setting changes.
    #[serde(flatten)]
    pub settings: SettingsInput,
    /// Fields no version of the API knows; refused.
    #[serde(flatten)]
    #[schema(ignore)]
    pub unknown: std::collections::BTreeMap<String, serde_json::Value>,
}

/// Queues a deployment of the app. A queued, not yet started deployment of
/// the same app is superseded by this one.
#[utoipa::path(post, path = "/api/v1/apps/{app}/deployments", tag = "deployments", params(("app" = String, Path)),
    request_body = CreateDeployment,
    responses((status = 202, body = DeploymentView), (status = 400, body = crate::error::ErrorBody),
              (status = 401, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody),
              (status = 422, body = crate::error::ErrorBody)))]
pub async fn create(
    State(state): State<ApiState>,
    caller: Caller,
    crate::access::DeployerOf(current): crate::access::DeployerOf,
    JsonBody(body): JsonBody<CreateDeployment>,
) -> Result<impl IntoResponse, ApiError> {
    let name = current.name.clone();
    crate::apps::refuse_unknown(&body.unknown)?;
    let store = state.engine.store();
    if let Some(commit) = &body.commit {
        if !(4..=40).contains(&commit.len()) || !commit.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_commit",
                "a commit is 4 to 40 hexadecimal characters",
            ));
        }
    }
    let settings = body.settings.apply(Some(current.settings.clone()))?;
    crate::access::check_quota(
        &state,
        &current.tenant,
        &name,
        crate::access::peak_replicas(&settings),
        false,
    )
    .await?;
    // Refuse an unreachable repository or unknown branch now, before anything is queued.
    let credentials = state.engine.source_credentials(&name, &settings.source).await?;
    state
        .engine
        .backends()
        .source
        .resolve_with(&settings.source, &settings.branch, credentials.as_ref())
        .await?;
    if settings != current.settings {
        store.update_settings(&name, &settings).await?;
    }
    let deployment = store
        .enqueue(
            &name,
            &settings,
            &easydeploy_store::NewDeployment {
                created_by: caller.user.email.clone(),
                ..easydeploy_store::NewDeployment::build(body.commit.as_deref())
            },
        )
        .await?;
    state.engine.wake();
    Ok((
        StatusCode::ACCEPTED,
        Json(DeploymentView::new(&state, &deployment, None)),
    ))
}

/// List options.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct ListQuery {
    /// Most deployments returned (default 20, at most 200).
    pub limit: Option<i64>,
}

/// The app's deployments, newest first.
#[utoipa::path(get, path = "/api/v1/apps/{app}/deployments", tag = "deployments", params(("app" = String, Path), ListQuery),
    responses((status = 200, body = [DeploymentView]), (status = 401, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)))]
pub async fn list(
    State(state): State<ApiState>,
    crate::access::ViewerOf(app): crate::access::ViewerOf,
    Query(q): Query<ListQuery>,
) -> Result<Json<Vec<DeploymentView>>, ApiError> {
    let name = app.name;
    let store = state.engine.store();
    store.app(&name).await?;
    let limit = q.limit.unwrap_or(20).clamp(1, 200);
    let list = store.deployments(&name, limit).await?;
    Ok(Json(
        list.iter()
            .map(|d| DeploymentView::new(&state, d, None))
            .collect(),
    ))
}

/// A deployment with every state transition and its time.
#[utoipa::path(get, path = "/api/v1/deployments/{id}", tag = "deployments", params(("id" = String, Path)),
    responses((status = 200, body = DeploymentView), (status = 401, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)))]
pub async fn get_deployment(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<DeploymentView>, ApiError> {
    let id = crate::access::deployment_for(&state, &caller, &id, Role::Viewer)
        .await?
        .id;
    let id = id.as_str();
    let store = state.engine.store();
    let d = store.deployment(id).await?;
    let transitions = store.transitions(id).await?;
    Ok(Json(DeploymentView::new(&state, &d, Some(transitions))))
}

/// Log options.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct LogQuery {
    /// Byte offset to read from (the previous answer's `next_offset`).
    pub offset: Option<u64>,
}

/// The deployment's log (pipeline steps and build output) from an offset.
#[utoipa::path(get, path = "/api/v1/deployments/{id}/logs", tag = "deployments", params(("id" = String, Path), LogQuery),
    responses((status = 200, body = LogChunk), (status = 401, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)))]
pub async fn logs(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
    Query(q): Query<LogQuery>,
) -> Result<Json<LogChunk>, ApiError> {
    let id = crate::access::deployment_for(&state, &caller, &id, Role::Viewer)
        .await?
        .id;
    let id = id.as_str();
    let d = state.engine.store().deployment(id).await?;
    let finished = d.state.is_terminal() || d.state == easydeploy_core::DeploymentState::Live;
    let offset = q.offset.unwrap_or(0);
    let bytes = state
        .engine
        .backends()
        .artifacts
        .get(id, easydeploy_engine::LOG_ARTIFACT, offset)
        .await?
        .unwrap_or_default();
    // Only hand out whole lines so a multi-byte character is never split.
    let end = if finished {
        bytes.len()
    } else {
        bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1)
    };
    let text = String::from_utf8_lossy(&bytes[..end]).into_owned();
    Ok(Json(LogChunk {
        offset,
        next_offset: offset + end as u64,
        text,
        finished,
    }))
}

/// Names of the deployment's artifacts (Dockerfile, .dockerignore, buildspec.yml, build.log...).
#[utoipa::path(get, path = "/api/v1/deployments/{id}/artifacts", tag = "deployments", params(("id" = String, Path)),
    responses((status = 200, body = [String]), (status = 401, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)))]
pub async fn artifacts(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Vec<String>>, ApiError> {
    let id = crate::access::deployment_for(&state, &caller, &id, Role::Viewer)
        .await?
        .id;
    let id = id.as_str();
    state.engine.store().deployment(id).await?;
    Ok(Json(state.engine.backends().artifacts.list(id).await?))
}

/// One artifact's content.
#[utoipa::path(get, path = "/api/v1/deployments/{id}/artifacts/{name}", tag = "deployments",
    params(("id" = String, Path), ("name" = String, Path)),
    responses((status = 200, content_type = "text/plain", body = String), (status = 401, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)))]
pub async fn artifact(
    State(state): State<ApiState>,
    caller: Caller,
    Path((id, name)): Path<(String, String)>,
) -> Result<impl IntoResponse, ApiError> {
    let id = crate::access::deployment_for(&state, &caller, &id, Role::Viewer)
        .await?
        .id;
    let id = id.as_str();
    state.engine.store().deployment(id).await?;
    let bytes = match state.engine.backends().artifacts.get(id, &name, 0).await {
        Ok(Some(bytes)) => bytes,
        Ok(None) | Err(_) => return Err(ApiError::not_found(format!("artifact '{}'", name.escape_debug()))),
    };
    Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], bytes))
}
