//! The API's one error type: a status, a stable `code` and a message a
//! person understands. 5xx bodies stay generic; the cause goes to the log.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use easydeploy_core::ports::BackendError;
use easydeploy_core::InputError;
use easydeploy_engine::EngineError;
use easydeploy_store::StoreError;
use serde::Serialize;

/// An error answer.
#[derive(Debug)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable machine-readable code.
    pub code: &'static str,
    /// What to fix.
    pub message: String,
}

/// The JSON body of every error.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// Code and message.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// Stable code, e.g. `invalid_app_name`.
    pub code: String,
    /// A sentence saying what to fix.
    pub message: String,
}

impl ApiError {
    /// An error with a status, code and message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }
    /// 404 for a resource.
    pub fn not_found(what: impl Into<String>) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("{} not found", what.into()),
        )
    }
    /// 500 with a generic body; `cause` is logged.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error; see the server log",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code.to_owned(),
                message: self.message,
            },
        };
        (self.status, Json(body)).into_response()
    }
}

impl From<InputError> for ApiError {
    fn from(e: InputError) -> Self {
        Self::new(StatusCode::BAD_REQUEST, e.code, e.message)
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(what) => Self::not_found(what),
            StoreError::Conflict(message) => Self::new(StatusCode::CONFLICT, "name_taken", message),
            other => Self::internal(other),
        }
    }
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> Self {
        match e {
            EngineError::Store(e) => e.into(),
            EngineError::Detect(e) => Self::new(StatusCode::UNPROCESSABLE_ENTITY, e.code(), e.to_string()),
            EngineError::Backend(e) => e.into(),
        }
    }
}

impl From<BackendError> for ApiError {
    fn from(e: BackendError) -> Self {
        if e.retryable {
            Self::new(StatusCode::SERVICE_UNAVAILABLE, e.code, e.message)
        } else {
            Self::new(StatusCode::UNPROCESSABLE_ENTITY, e.code, e.message)
        }
    }
}

/// Documents the error answers every operation can give, by what it takes:
/// 401/403 when it needs a token, 404 with path parameters, 400 with query
/// parameters or a body, 413/415/422 with a body.
pub struct CommonErrors;

impl utoipa::Modify for CommonErrors {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::path::ParameterIn;
        use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
        let error = |description: &str| {
            ResponseBuilder::new()
                .description(description)
                .content(
                    "application/json",
                    ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name("ErrorBody")))
                        .build(),
                )
                .build()
        };
        for item in openapi.paths.paths.values_mut() {
            let operations = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ];
            for operation in operations.into_iter().flatten() {
                let public = operation.security.as_ref().is_some_and(|s| {
                    s.iter()
                        .all(|r| serde_json::to_value(r).is_ok_and(|v| v == serde_json::json!({})))
                });
                let params = operation.parameters.as_deref().unwrap_or_default();
                let in_path = params.iter().any(|p| p.parameter_in == ParameterIn::Path);
                let in_query = params.iter().any(|p| p.parameter_in == ParameterIn::Query);
                let body = operation.request_body.is_some();
                let mut wanted = Vec::new();
                if !public {
                    wanted.push(("401", "no valid API token"));
                    wanted.push(("403", "the caller's role does not allow this"));
                }
                if in_path {
                    wanted.push(("404", "not found, or not visible to the caller"));
                }
                if in_query || body {
                    wanted.push(("400", "invalid input"));
                }
                if body {
                    wanted.push(("413", "body too large"));
                    wanted.push(("415", "body is not JSON"));
                    wanted.push(("422", "body does not make sense"));
                }
                for (status, description) in wanted {
                    operation
                        .responses
                        .responses
                        .entry(status.to_owned())
                        .or_insert_with(|| error(description).into());
                }
            }
        }
    }
}
