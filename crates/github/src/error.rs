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

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: u16, headers: &[(&str, &str)], body: &str) -> Response {
        let mut builder = http::Response::builder().status(status);
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        Response::from(builder.body(body.to_owned()).unwrap())
    }

    #[tokio::test]
    async fn githubs_answers_map_to_what_to_do() {
        let limited = answer(
            403,
            &[
                ("x-ratelimit-remaining", "0"),
                ("x-ratelimit-reset", "1700000000"),
            ],
            r#"{"message":"API rate limit exceeded"}"#,
        );
        assert_eq!(
            from_response(limited).await,
            GithubError::RateLimited {
                reset: Some(1_700_000_000),
                retry_after: None
            }
        );
        let secondary = answer(
            403,
            &[("retry-after", "60")],
            r#"{"message":"secondary rate limit"}"#,
        );
        assert!(matches!(
            from_response(secondary).await,
            GithubError::RateLimited {
                retry_after: Some(60),
                ..
            }
        ));
        let too_many = answer(429, &[], "");
        assert!(matches!(
            from_response(too_many).await,
            GithubError::RateLimited { .. }
        ));
        let bad = answer(401, &[], r#"{"message":"Bad credentials"}"#);
        assert_eq!(
            from_response(bad).await,
            GithubError::Unauthorized("Bad credentials".into())
        );
        let missing = answer(404, &[], r#"{"message":"Not Found"}"#);
        assert!(matches!(from_response(missing).await, GithubError::NotFound(_)));
        let scope = answer(
            403,
            &[("x-ratelimit-remaining", "4999")],
            r#"{"message":"Resource not accessible"}"#,
        );
        assert!(matches!(from_response(scope).await, GithubError::Forbidden(_)));
        let invalid = answer(422, &[], r#"{"message":"Validation Failed"}"#);
        assert!(matches!(from_response(invalid).await, GithubError::Invalid(_)));
        let down = answer(502, &[], "<html>bad gateway</html>");
        assert!(matches!(from_response(down).await, GithubError::Unavailable(_)));
    }
}
