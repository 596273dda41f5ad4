//! Apps: create, list, get (with replicas and recent deployments), delete, runtime logs.

use crate::auth::Caller;
use crate::extract::Query;
use crate::views::{AppDetail, AppView, DeploymentView, SettingsInput};
use crate::{ApiError, ApiState};
use axum::body::Body;
use axum::extract::{FromRequest, Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use easydeploy_core::AppName;
use easydeploy_store::Role;
use futures_util::StreamExt;
use serde::Deserialize;
use utoipa::ToSchema;

/// JSON body whose rejections are API errors with a stable code.
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;
    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(value)) => Ok(Self(value)),
            Err(rejection) => Err(ApiError::new(
                rejection.status(),
                "invalid_body",
                rejection.body_text(),
            )),
        }
    }
}

/// Parses the `{app}` path segment; an invalid name cannot exist, so 404.
pub fn app_name(raw: &str) -> Result<AppName, ApiError> {
    AppName::parse(raw).map_err(|_| ApiError::not_found(format!("app '{}'", raw.escape_debug())))
}

/// A new app: its name and settings.
#[derive(Debug, Deserialize, ToSchema)]
pub struct CreateApp {
    /// Unique name; becomes `NAME.<apps-domain>`.
    pub name: String,
    /// Team that owns the app (the caller must be its deployer or owner);
    /// the caller's own account when absent.
    #[serde(default)]
    pub team: Option<String>,
    /// A GitHub repository `owner/repo` as the source, read with the
    /// caller's GitHub token; the app is connected to it (push hook, commit
    /// statuses). A `https://github.com/owner/repo` source connects it too
    /// when the caller has signed in with GitHub.
    #[serde(default)]
    pub github: Option<String>,
    /// Settings.
    #[serde(flatten)]
    pub settings: SettingsInput,
    /// Fields no version of the API knows; refused.
    #[serde(flatten)]
    #[schema(ignore)]
    pub unknown: std::collections::BTreeMap<String, serde_json::Value>,
}

/// Refuses fields the API does not know (a typo would otherwise be ignored).
pub fn refuse_unknown(
    unknown: &std::collections::BTreeMap<String, serde_json::Value>,
) -> Result<(), ApiError> {
    match unknown.keys().next() {
        Some(field) => Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
            format!("unknown field '{}'", field.escape_debug()),
        )),
        None => Ok(()),
    }
}

/// The caller's apps and their teams' (every app for an admin).
#[utoipa::path(get, path = "/api/v1/apps", tag = "apps",
    responses((status = 200, body = [AppView]), (status = 401, body = crate::error::ErrorBody)))]
pub async fn list(State(state): State<ApiState>, caller: Caller) -> Result<Json<Vec<AppView>>, ApiError> {
    let apps = state.engine.store().apps_visible_to(&caller.user).await?;
    Ok(Json(apps.iter().map(|a| AppView::new(&state, a)).collect()))
}

/// Creates an app after checking its repository and branch are reachable.
/// Nothing is created when any check fails.
#[utoipa::path(post, path = "/api/v1/apps", tag = "apps", request_body = CreateApp,
    responses((status = 201, body = AppView), (status = 400, body = crate::error::ErrorBody),
              (status = 401, body = crate::error::ErrorBody), (status = 409, body = crate::error::ErrorBody),
              (status = 422, body = crate::error::ErrorBody)))]
pub async fn create(
    State(state): State<ApiState>,
    caller: Caller,
    JsonBody(body): JsonBody<CreateApp>,
) -> Result<impl IntoResponse, ApiError> {
    refuse_unknown(&body.unknown)?;
    let name = AppName::parse(&body.name)?;
    let mut input = body.settings;
    let github = crate::github::connection(&state, &caller, body.github.as_deref(), &mut input).await?;
    let settings = input.apply(None)?;
    let tenant = match &body.team {
        None => caller.user.tenant.clone(),
        Some(team) => {
            let (team, role) = crate::accounts::team_for(&state, &caller, team).await?;
            if role < Role::Deployer {
                return Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "forbidden",
                    format!(
                        "your role in team '{}' is viewer; creating apps needs deployer or higher",
                        team.name
                    ),
                ));
            }
            team.tenant
        }
    };
    let store = state.engine.store();
    if store.app(&name).await.is_ok() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "name_taken",
            format!("the app name '{name}' is already taken"),
        ));
    }
    crate::access::check_quota(
        &state,
        &tenant,
        &name,
        crate::access::peak_replicas(&settings),
        true,
    )
    .await?;
    let credentials = github.as_ref().map(|g| g.credentials());
    state
        .engine
        .backends()
        .source
        .resolve_with(&settings.source, &settings.branch, credentials.as_ref())
        .await?;
    let app = store.create_app(&name, &tenant, &settings).await?;
    if let Some(github) = github {
        if let Err(e) = github.connect(&state, &caller, &app).await {
            if let Err(undo) = state.engine.destroy(&name).await {
                tracing::warn!(app = %name, error = %undo, "could not remove the app whose hook failed");
            }
            return Err(e);
        }
    }
    tracing::info!(app = %name, tenant = %tenant, "app created");
    Ok((StatusCode::CREATED, Json(AppView::new(&state, &app))))
}

/// An app with its replicas and recent deployments.
#[utoipa::path(get, path = "/api/v1/apps/{app}", tag = "apps", params(("app" = String, Path)),
    responses((status = 200, body = AppDetail), (status = 401, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)))]
pub async fn get_app(
    State(state): State<ApiState>,
    crate::access::ViewerOf(app): crate::access::ViewerOf,
) -> Result<Json<AppDetail>, ApiError> {
    let name = app.name;
    let store = state.engine.store();
    let app = store.app(&name).await?;
    let recent = store.deployments(&name, 10).await?;
    let live = match &app.live_deployment {
        Some(id) => Some(DeploymentView::new(&state, &store.deployment(id).await?, None)),
        None => None,
    };
    let replica_status = state
        .engine
        .backends()
        .runtime
        .status(&name)
        .await
        .unwrap_or_else(|e| {
            tracing::warn!(app = %name, error = %e, "replica status unavailable");
            Vec::new()
        });
    Ok(Json(AppDetail {
        app: AppView::new(&state, &app),
        replica_status,
        live,
        deployments: recent
            .iter()
            .map(|d| DeploymentView::new(&state, d, None))
            .collect(),
        alerts_firing: store
            .firing_alerts(&name)
            .await?
            .into_iter()
            .map(|s| s.rule)
            .collect(),
    }))
}

/// Removes an app: its replicas, images, route, artifacts, workspace and history.
#[utoipa::path(delete, path = "/api/v1/apps/{app}", tag = "apps", params(("app" = String, Path)),
    responses((status = 204), (status = 401, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)))]
pub async fn delete(
    State(state): State<ApiState>,
    crate::access::OwnerOf(app): crate::access::OwnerOf,
) -> Result<StatusCode, ApiError> {
    let name = app.name;
    let link = state.engine.store().github_link(&name).await?;
    state.engine.destroy(&name).await?;
    if let Some(link) = link {
        crate::github::disconnect(&state, &name, &link).await;
    }
    Ok(StatusCode::NO_CONTENT)
}

/// Runtime log options.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct LogsQuery {
    /// Lines from the end of each replica's output (default 100, at most 10000).
    pub tail: Option<usize>,
    /// Keep the response open and stream new lines.
    pub follow: Option<bool>,
}

/// The app's output (stdout and stderr of every replica) as text lines
/// `replica | line`; streamed while `follow=true`.
#[utoipa::path(get, path = "/api/v1/apps/{app}/logs", tag = "apps", params(("app" = String, Path), LogsQuery),
    responses((status = 200, content_type = "text/plain", body = String), (status = 401, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)))]
pub async fn logs(
    State(state): State<ApiState>,
    crate::access::ViewerOf(app): crate::access::ViewerOf,
    Query(q): Query<LogsQuery>,
) -> Result<Response, ApiError> {
    let name = app.name;
    state.engine.store().app(&name).await?;
    let tail = q.tail.unwrap_or(100).min(10_000);
    let stream = state
        .engine
        .backends()
        .runtime
        .logs(&name, tail, q.follow.unwrap_or(false))
        .await?;
    let body = stream.map(|l| Ok::<_, std::io::Error>(format!("{} | {}\n", l.replica, l.line)));
    Ok((
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        Body::from_stream(body),
    )
        .into_response())
}
