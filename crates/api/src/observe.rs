//! Observability: deployment statistics, live log streams (Server-Sent
//! Events) and Prometheus metrics.

use crate::auth::Caller;
use crate::extract::Query;
use crate::{ApiError, ApiState};
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::IntoResponse;
use axum::Json;
use easydeploy_core::DeploymentState;
use easydeploy_store::DeployStats;
use easydeploy_store::Role;
use futures_util::{Stream, StreamExt};
use serde::Deserialize;
use std::convert::Infallible;
use std::fmt::Write;
use std::time::Duration;

/// Deployment statistics over the caller's apps (every app for an admin).
#[utoipa::path(get, path = "/api/v1/stats", tag = "observability",
    responses((status = 200, body = DeployStats), (status = 401, body = crate::error::ErrorBody)))]
pub async fn stats(State(state): State<ApiState>, caller: Caller) -> Result<Json<DeployStats>, ApiError> {
    let store = state.engine.store();
    if caller.user.admin {
        return Ok(Json(store.deploy_stats(None).await?));
    }
    let names: Vec<_> = store
        .apps_visible_to(&caller.user)
        .await?
        .into_iter()
        .map(|a| a.name)
        .collect();
    Ok(Json(store.deploy_stats(Some(&names)).await?))
}

/// Deployment statistics of one app.
#[utoipa::path(get, path = "/api/v1/apps/{app}/stats", tag = "observability", params(("app" = String, Path)),
    responses((status = 200, body = DeployStats), (status = 401, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)))]
pub async fn app_stats(
    State(state): State<ApiState>,
    crate::access::ViewerOf(app): crate::access::ViewerOf,
) -> Result<Json<DeployStats>, ApiError> {
    let name = app.name;
    let store = state.engine.store();
    store.app(&name).await?;
    Ok(Json(store.deploy_stats(Some(std::slice::from_ref(&name))).await?))
}

/// One Server-Sent Event as the stream carries it.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct SseEvent {
    /// `log` for a line (or lines), `end` once a deployment finished.
    pub event: Option<String>,
    /// Log text; for app logs a JSON `{replica, stream, line}`; for `end` the final state.
    pub data: Option<String>,
    /// Offset to resume from (deployment logs).
    pub id: Option<String>,
}

/// Follow options.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct FollowQuery {
    /// Byte offset to start from.
    pub offset: Option<u64>,
}

/// The deployment's log as Server-Sent Events: `log` events carry lines as
/// they are written; a final `end` event carries the deployment's state.
#[utoipa::path(get, path = "/api/v1/deployments/{id}/logs/stream", tag = "observability",
    params(("id" = String, Path), FollowQuery),
    responses((status = 200, content_type = "text/event-stream", body = SseEvent), (status = 401, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)))]
pub async fn deployment_log_stream(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
    Query(q): Query<FollowQuery>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let id = crate::access::deployment_for(&state, &caller, &id, Role::Viewer)
        .await?
        .id;
    let start = (state, id, q.offset.unwrap_or(0), false);
    let events = futures_util::stream::unfold(start, |(state, id, offset, ended)| async move {
        if ended {
            return None;
        }
        loop {
            let d = state.engine.store().deployment(&id).await.ok()?;
            let finished = d.state.is_terminal() || d.state == DeploymentState::Live;
            let bytes = state
                .engine
                .backends()
                .artifacts
                .get(&id, easydeploy_engine::LOG_ARTIFACT, offset)
                .await
                .ok()
                .flatten()
                .unwrap_or_default();
            let end = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
            if end > 0 {
                let text = String::from_utf8_lossy(&bytes[..end]).trim_end().to_owned();
                let next = offset + end as u64;
                return Some((
                    Ok(Event::default().event("log").id(next.to_string()).data(text)),
                    (state, id, next, false),
                ));
            }
            if finished {
                let event = Event::default().event("end").data(d.state.as_str());
                return Some((Ok(event), (state, id, offset, true)));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    Ok(Sse::new(events).keep_alive(KeepAlive::default()))
}

/// Runtime log options.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct AppLogQuery {
    /// Lines from the end of each replica's output (default 100, at most 10000).
    pub tail: Option<usize>,
    /// Keep streaming new lines.
    pub follow: Option<bool>,
}

/// The app's output as Server-Sent Events: each `log` event's data is a JSON
/// `{replica, stream, line}`.
#[utoipa::path(get, path = "/api/v1/apps/{app}/logs/stream", tag = "observability",
    params(("app" = String, Path), AppLogQuery),
    responses((status = 200, content_type = "text/event-stream", body = SseEvent), (status = 401, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)))]
pub async fn app_log_stream(
    State(state): State<ApiState>,
    crate::access::ViewerOf(app): crate::access::ViewerOf,
    Query(q): Query<AppLogQuery>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let name = app.name;
    state.engine.store().app(&name).await?;
    let lines = state
        .engine
        .backends()
        .runtime
        .logs(&name, q.tail.unwrap_or(100).min(10_000), q.follow.unwrap_or(true))
        .await?;
    let events = lines.map(|line| Ok(Event::default().event("log").json_data(&line).unwrap_or_default()));
    Ok(Sse::new(events).keep_alive(KeepAlive::default()))
}

/// Prometheus text: platform figures and per-app request series (administrators only).
#[utoipa::path(get, path = "/metrics", tag = "observability",
    responses((status = 200, content_type = "text/plain", body = String)))]
pub async fn metrics(State(state): State<ApiState>, caller: Caller) -> Result<impl IntoResponse, ApiError> {
    if !caller.user.admin {
        return Err(ApiError::new(
            axum::http::StatusCode::FORBIDDEN,
            "forbidden",
            "platform metrics are for administrators; app owners read /api/v1/apps/{app}/stats",
        ));
    }
    let store = state.engine.store();
    let apps = store.apps().await?;
    let stats = store.deploy_stats(None).await?;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# HELP easydeploy_apps Apps on the platform.\n# TYPE easydeploy_apps gauge\neasydeploy_apps {}",
        apps.len()
    );
    let _ = writeln!(
        out,
        "# HELP easydeploy_deployments Deployments by current state.\n# TYPE easydeploy_deployments gauge"
    );
    for (deployment_state, count) in &stats.by_state {
        let _ = writeln!(
            out,
            "easydeploy_deployments{{state=\"{deployment_state}\"}} {count}"
        );
    }
    let _ = writeln!(out, "# HELP easydeploy_step_seconds_mean Mean time spent in each pipeline step.\n# TYPE easydeploy_step_seconds_mean gauge");
    for (step, s) in &stats.steps {
        let _ = writeln!(
            out,
            "easydeploy_step_seconds_mean{{step=\"{step}\"}} {:.3}",
            s.mean_secs
        );
    }
    let _ = writeln!(
        out,
        "# HELP easydeploy_app_replicas Replicas wanted per app.\n# TYPE easydeploy_app_replicas gauge"
    );
    for app in &apps {
        let _ = writeln!(
            out,
            "easydeploy_app_replicas{{app=\"{}\"}} {}",
            app.name,
            app.settings.replicas.get()
        );
    }
    if let Some(load) = &state.load {
        let _ = writeln!(out, "# HELP easydeploy_app_requests_total Requests through the edge proxy.\n# TYPE easydeploy_app_requests_total counter");
        for app in &apps {
            if let Some(n) = load.requests_total(app.name.as_str()) {
                let _ = writeln!(out, "easydeploy_app_requests_total{{app=\"{}\"}} {n}", app.name);
            }
        }
        let _ = writeln!(out, "# HELP easydeploy_app_responses_total Responses by status class.\n# TYPE easydeploy_app_responses_total counter");
        for app in &apps {
            if let Some(classes) = load.responses_by_class(app.name.as_str()) {
                for (class, n) in ["2xx", "3xx", "4xx", "5xx"].iter().zip(classes) {
                    let _ = writeln!(
                        out,
                        "easydeploy_app_responses_total{{app=\"{}\",class=\"{class}\"}} {n}",
                        app.name
                    );
                }
            }
        }
    }
    crate::metrics::write_prometheus(&state, &apps, &mut out).await?;
    Ok((
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        out,
    ))
}
