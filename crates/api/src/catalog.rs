//! The framework catalog and repository analysis.

use crate::views::SettingsInput;
use crate::{ApiError, ApiState};
use axum::extract::State;
use axum::Json;
use easydeploy_core::framework::{Detection, Framework, FrameworkInfo};
use serde::Serialize;
use utoipa::ToSchema;

/// Every supported framework with its detection rules and defaults.
#[utoipa::path(get, path = "/api/v1/frameworks", tag = "catalog",
    responses((status = 200, body = [FrameworkInfo]), (status = 401, body = crate::error::ErrorBody)))]
pub async fn frameworks() -> Json<Vec<FrameworkInfo>> {
    Json(Framework::ALL.into_iter().map(Framework::info).collect())
}

/// What analysis found.
#[derive(Debug, Serialize, ToSchema)]
pub struct Analysis {
    /// Commit analysed.
    pub commit: String,
    /// Detected framework, evidence and defaults.
    pub detection: Detection,
}

/// What to analyze: the settings of an app-to-be.
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
pub struct AnalyzeRequest {
    /// Settings (`source` required).
    #[serde(flatten)]
    pub settings: SettingsInput,
    /// Fields no version of the API knows; refused.
    #[serde(flatten)]
    #[schema(ignore)]
    pub unknown: std::collections::BTreeMap<String, serde_json::Value>,
}

/// Checks a repository out and detects its framework, defaults and the
/// evidence, without deploying. Body: `source` (required), `branch`, `root`, `framework`.
#[utoipa::path(post, path = "/api/v1/analyze", tag = "catalog", request_body = AnalyzeRequest,
    responses((status = 200, body = Analysis), (status = 400, body = crate::error::ErrorBody),
              (status = 401, body = crate::error::ErrorBody), (status = 422, body = crate::error::ErrorBody)))]
pub async fn analyze(
    State(state): State<ApiState>,
    crate::apps::JsonBody(body): crate::apps::JsonBody<AnalyzeRequest>,
) -> Result<Json<Analysis>, ApiError> {
    crate::apps::refuse_unknown(&body.unknown)?;
    let settings = body.settings.apply(None)?;
    let engine = &state.engine;
    engine
        .backends()
        .source
        .resolve(&settings.source, &settings.branch)
        .await?;
    let (commit, detection) = engine
        .analyze(
            &settings.source,
            &settings.branch,
            &settings.root,
            settings.framework,
        )
        .await?;
    Ok(Json(Analysis { commit, detection }))
}
