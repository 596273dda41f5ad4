//! GitHub's error answers, mapped to what the caller should do.

use reqwest::{Response, StatusCode};

/// A failed GitHub call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GithubError {
    /// The token was refused (revoked, expired): sign in with GitHub again.
    #[error("GitHub refused the token: {0}")]
    Unauthorized(String),
    /// No such repository, branch, path or hook, or the token may not see it.
    #[error("GitHub has no such resource: {0}")]
    NotFound(String),
    /// The token may not do this (missing scope, no admin rights).
    #[error("GitHub refused: {0}")]
    Forbidden(String),
    /// The rate limit is used up; `reset` is when it refills (Unix seconds).
    #[error("GitHub's rate limit is used up")]
    RateLimited {
        /// When the limit resets (Unix seconds), when GitHub said.
        reset: Option<i64>,
        /// Seconds to wait, when GitHub said (secondary limits).
        retry_after: Option<u64>,
    },
    /// GitHub refused the request's content (422) or our input was bad.
    #[error("{0}")]
    Invalid(String),
    /// GitHub could not be reached or answered unexpectedly (5xx).
    #[error("{0}")]
    Unavailable(String),
}

#[derive(serde::Deserialize)]
struct Message {
    message: Option<String>,
}

fn header_number<T: std::str::FromStr>(response: &Response, name: &str) -> Option<T> {
    response.headers().get(name)?.to_str().ok()?.trim().parse().ok()
}

/// Maps a non-2xx answer.
pub(crate) async fn from_response(response: Response) -> GithubError {
    let status = response.status();
    let remaining: Option<u64> = header_number(&response, "x-ratelimit-remaining");
    let reset: Option<i64> = header_number(&response, "x-ratelimit-reset");
    let retry_after: Option<u64> = header_number(&response, "retry-after");
    let message = response
        .json::<Message>()
        .await
        .ok()
        .and_then(|m| m.message)
        .unwrap_or_else(|| status.to_string());
    // Keep GitHub's words short and printable in our own messages.
    let message: String = message.chars().filter(|c| !c.is_control()).take(200).collect();
    let limited = status == StatusCode::TOO_MANY_REQUESTS
        || (status == StatusCode::FORBIDDEN
            && (remaining == Some(0)
                || retry_after.is_some()
                || message.to_ascii_lowercase().contains("rate limit")));
    match status {
        _ if limited => GithubError::RateLimited { reset, retry_after },
        StatusCode::UNAUTHORIZED => GithubError::Unauthorized(message),
        StatusCode::NOT_FOUND => GithubError::NotFound(message),
        StatusCode::FORBIDDEN => GithubError::Forbidden(message),
        StatusCode::UNPROCESSABLE_ENTITY | StatusCode::BAD_REQUEST | StatusCode::CONFLICT => {
            GithubError::Invalid(format!("GitHub refused the request: {message}"))
        }
        _ => {
            tracing::warn!(%status, %message, "GitHub error");
            GithubError::Unavailable(format!("GitHub answered {status}"))
        }
    }
}
