//! Repositories on GitHub, read with the caller's GitHub token (stored
//! sealed at sign-in): browse repositories, branches, commits and folders,
//! analyze a folder without cloning it, and connect apps (push hook,
//! credentials to clone, commit statuses).

pub mod browse;
mod connect;
mod host;

pub(crate) use connect::{connection, disconnect};
pub use host::GithubSourceHost;

use crate::auth::Caller;
use crate::{ApiError, ApiState};
use axum::http::StatusCode;
use easydeploy_core::Branch;
use easydeploy_github::{GithubClient, GithubError};

/// Context of the commit statuses Easy Deploy posts.
pub const STATUS_CONTEXT: &str = "easydeploy/deploy";

/// User name GitHub expects with a token over HTTPS.
pub(crate) const TOKEN_USER: &str = "x-access-token";

impl From<GithubError> for ApiError {
    fn from(e: GithubError) -> Self {
        match e {
            GithubError::Unauthorized(_) => ApiError::new(
                StatusCode::UNAUTHORIZED,
                "github_token_invalid",
                "GitHub refused your token (revoked or expired); sign in with GitHub again at /auth/github/login",
            ),
            GithubError::NotFound(_) => ApiError::new(
                StatusCode::NOT_FOUND,
                "github_not_found",
                "GitHub has no such repository, branch or path, or your GitHub account cannot see it",
            ),
            GithubError::Forbidden(message) => ApiError::new(
                StatusCode::FORBIDDEN,
                "github_forbidden",
                format!("GitHub refused: {message}; check your rights on the repository"),
            ),
            GithubError::RateLimited { reset, retry_after } => {
                let when = match (reset, retry_after) {
                    (_, Some(secs)) => format!("retry in {secs} s"),
                    (Some(reset), None) => chrono::DateTime::from_timestamp(reset, 0)
                        .map(|t| format!("it resets at {}", t.to_rfc3339()))
                        .unwrap_or_else(|| "retry later".into()),
                    (None, None) => "retry later".into(),
                };
                ApiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "github_rate_limited",
                    format!("GitHub's rate limit for your account is used up; {when}"),
                )
            }
            GithubError::Invalid(message) => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "github_refused", message)
            }
            GithubError::Unavailable(message) => {
                tracing::warn!(error = %message, "GitHub call failed");
                ApiError::new(
                    StatusCode::BAD_GATEWAY,
                    "github_unavailable",
                    "GitHub could not be reached or answered unexpectedly; try again",
                )
            }
        }
    }
}

/// A client of the configured GitHub API.
pub(crate) fn client(state: &ApiState) -> Result<GithubClient, ApiError> {
    let github = state.github.as_deref().ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "github_not_configured",
            "GitHub is off on this server: it needs EASYDEPLOY_GITHUB_CLIENT_ID and EASYDEPLOY_GITHUB_CLIENT_SECRET",
        )
    })?;
    GithubClient::new(&github.api_url).map_err(ApiError::internal)
}

fn not_linked() -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        "github_not_linked",
        "your account has no GitHub access; sign in with GitHub first at /auth/github/login",
    )
}

/// The caller's GitHub token.
pub(crate) async fn token(state: &ApiState, caller: &Caller) -> Result<String, ApiError> {
    state
        .engine
        .store()
        .github_token(&caller.user.id)
        .await?
        .ok_or_else(not_linked)
}

/// A repository owner: 1 to 39 letters, digits and single dashes, not at either end.
pub(crate) fn owner_name(raw: &str) -> Result<String, ApiError> {
    let ok = (1..=39).contains(&raw.len())
        && raw
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        && !raw.starts_with('-');
    ok.then(|| raw.to_owned()).ok_or_else(|| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_github_owner",
            format!(
                "'{}' is not a GitHub user or organisation name",
                raw.escape_debug()
            ),
        )
    })
}

/// A repository name: 1 to 100 letters, digits, `.`, `-` and `_`, not `.` or `..`.
pub(crate) fn repo_name(raw: &str) -> Result<String, ApiError> {
    let raw = raw.strip_suffix(".git").unwrap_or(raw);
    let ok = (1..=100).contains(&raw.len())
        && raw
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        && raw != "."
        && raw != "..";
    ok.then(|| raw.to_owned()).ok_or_else(|| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_github_repo",
            format!("'{}' is not a GitHub repository name", raw.escape_debug()),
        )
    })
}

pub(crate) fn branch_name(raw: &str) -> Result<Branch, ApiError> {
    Ok(Branch::parse(raw)?)
}

/// `owner/repo` → the two names, validated.
pub(crate) fn full_name(raw: &str) -> Result<(String, String), ApiError> {
    let (owner, repo) = raw.split_once('/').ok_or_else(|| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_github_repo",
            "give the GitHub repository as owner/repo",
        )
    })?;
    Ok((owner_name(owner)?, repo_name(repo)?))
}

/// The owner and repository of a GitHub web URL (`https://github.com/o/r(.git)`,
/// or on the host of `web_url`, the configured GitHub), if `source` is one.
pub(crate) fn github_repo_of(web_url: Option<&str>, source: &str) -> Option<(String, String)> {
    let url = url::Url::parse(source).ok()?;
    if !matches!(url.scheme(), "https" | "http") || !url.username().is_empty() || url.password().is_some() {
        return None;
    }
    let host = url.host_str()?.to_ascii_lowercase();
    let configured = web_url
        .and_then(|w| url::Url::parse(w).ok())
        .and_then(|u| u.host_str().map(str::to_ascii_lowercase));
    if host != "github.com" && Some(&host) != configured.as_ref() {
        return None;
    }
    let mut parts = url.path_segments()?.filter(|p| !p.is_empty());
    let (owner, repo) = (parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    Some((owner_name(owner).ok()?, repo_name(repo).ok()?))
}

#[cfg(test)]
mod tests {
    use super::browse::folder;
    use super::*;

    #[test]
    fn names_follow_githubs_rules() {
        assert!(owner_name("octo-cat").is_ok());
        assert!(owner_name("-octo").is_err());
        assert!(owner_name("a/b").is_err());
        assert!(owner_name(&"a".repeat(40)).is_err());
        assert_eq!(repo_name("shop.git").unwrap(), "shop");
        assert!(repo_name("my_app-2.0").is_ok());
        assert!(repo_name("..").is_err());
        assert!(repo_name("a b").is_err());
        assert!(repo_name("a%2F..").is_err());
        assert_eq!(full_name("o/r").unwrap(), ("o".into(), "r".into()));
        assert!(full_name("o").is_err());
        assert!(full_name("o/r/x").is_err());
        assert!(folder(Some("../x")).is_err());
        assert!(folder(Some("/etc")).is_err());
        assert_eq!(folder(Some("web/app")).unwrap().as_str(), "web/app");
    }

    #[test]
    fn github_urls_are_recognised() {
        let pair = |o: &str, r: &str| Some((o.to_owned(), r.to_owned()));
        assert_eq!(
            github_repo_of(None, "https://github.com/octo/shop.git"),
            pair("octo", "shop")
        );
        assert_eq!(
            github_repo_of(None, "https://GitHub.com/octo/shop/"),
            pair("octo", "shop")
        );
        let ghe = Some("https://git.corp.example");
        assert_eq!(
            github_repo_of(ghe, "https://git.corp.example/team/api"),
            pair("team", "api")
        );
        assert_eq!(github_repo_of(None, "https://git.corp.example/team/api"), None);
        assert_eq!(github_repo_of(None, "https://github.com/octo"), None);
        assert_eq!(
            github_repo_of(None, "https://github.com/octo/shop/tree/main"),
            None
        );
        assert_eq!(github_repo_of(None, "https://user:pw@github.com/octo/shop"), None);
        assert_eq!(github_repo_of(None, "git@github.com:octo/shop.git"), None);
        assert_eq!(github_repo_of(None, "/srv/repos/shop"), None);
    }
}
