//! Sign-in with GitHub: the OAuth authorization-code flow with a one-time
//! `state`. GitHub's web and API base URLs are configurable (GitHub
//! Enterprise, or a local fake in tests).

use crate::accounts::{issue_token, IssuedToken};
use crate::extract::Query;
use crate::{ApiError, ApiState};
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;

type ErrorBody = crate::error::ErrorBody;

/// Where GitHub is and who we are to it.
#[derive(Debug, Clone)]
pub struct GithubOAuth {
    /// Web base, e.g. `https://github.com`.
    pub web_url: String,
    /// API base, e.g. `https://api.github.com`.
    pub api_url: String,
    /// OAuth app client id.
    pub client_id: String,
    /// OAuth app client secret.
    pub client_secret: String,
}

/// Scopes asked for: the profile and email, repositories (to clone private
/// ones and post commit statuses) and their hooks.
const SCOPES: &str = "read:user user:email repo admin:repo_hook";

fn configured(state: &ApiState) -> Result<&GithubOAuth, ApiError> {
    state.github.as_deref().ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "github_not_configured",
            "sign-in with GitHub is off: the server needs EASYDEPLOY_GITHUB_CLIENT_ID and EASYDEPLOY_GITHUB_CLIENT_SECRET",
        )
    })
}

fn callback_url(state: &ApiState) -> String {
    format!("{}/auth/github/callback", state.public_url)
}

/// Redirects to GitHub's authorization page.
#[utoipa::path(get, path = "/auth/github/login", tag = "accounts", security(()),
    responses((status = 302, description = "to GitHub's authorization page"), (status = 404, body = ErrorBody),
              (status = 429, body = ErrorBody)))]
pub async fn login(State(state): State<ApiState>) -> Result<Response, ApiError> {
    let github = configured(&state)?;
    let nonce: [u8; 24] = rand::random();
    let oauth_state = hex::encode(nonce);
    state.engine.store().put_oauth_state(&oauth_state).await?;
    let mut url = url::Url::parse(&format!(
        "{}/login/oauth/authorize",
        github.web_url.trim_end_matches('/')
    ))
    .map_err(ApiError::internal)?;
    url.query_pairs_mut()
        .append_pair("client_id", &github.client_id)
        .append_pair("redirect_uri", &callback_url(&state))
        .append_pair("scope", SCOPES)
        .append_pair("state", &oauth_state);
    Ok((StatusCode::FOUND, [(header::LOCATION, url.to_string())]).into_response())
}

/// GitHub's redirect back.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct Callback {
    /// Authorization code.
    pub code: Option<String>,
    /// The `state` given at login.
    pub state: Option<String>,
    /// Set when the user refused.
    pub error: Option<String>,
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

fn github_error(message: impl std::fmt::Display) -> ApiError {
    tracing::warn!(error = %message, "GitHub sign-in failed");
    ApiError::new(
        StatusCode::BAD_GATEWAY,
        "github_unavailable",
        "GitHub could not be reached or answered unexpectedly; try again",
    )
}

/// Exchanges the code, reads the GitHub user, creates or links the account
/// and returns an API token for it.
#[utoipa::path(get, path = "/auth/github/callback", tag = "accounts", security(()), params(Callback),
    responses((status = 200, body = IssuedToken), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 429, body = ErrorBody), (status = 502, body = ErrorBody)))]
pub async fn callback(
    State(state): State<ApiState>,
    Query(q): Query<Callback>,
) -> Result<Json<IssuedToken>, ApiError> {
    let github = configured(&state)?.clone();
    let bad_state = || {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_oauth_state",
            "this sign-in link is unknown, used or expired; start again at /auth/github/login",
        )
    };
    let oauth_state = q.state.filter(|s| s.len() <= 128).ok_or_else(bad_state)?;
    if !state.engine.store().take_oauth_state(&oauth_state).await? {
        return Err(bad_state());
    }
    if let Some(error) = q.error {
        return Err(denied(&error));
    }
    let code = q
        .code
        .filter(|c| !c.is_empty() && c.len() <= 256)
        .ok_or_else(|| denied("no code"))?;
    let http = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(15))
        .user_agent("easydeploy")
        .build()
        .map_err(ApiError::internal)?;
    let answer: TokenAnswer = http
        .post(format!(
            "{}/login/oauth/access_token",
            github.web_url.trim_end_matches('/')
        ))
        .header(header::ACCEPT, "application/json")
        .form(&[
            ("client_id", github.client_id.as_str()),
            ("client_secret", github.client_secret.as_str()),
            ("code", code.as_str()),
            ("redirect_uri", callback_url(&state).as_str()),
        ])
        .send()
        .await
        .map_err(github_error)?
        .json()
        .await
        .map_err(github_error)?;
    let access = match answer {
        TokenAnswer {
            access_token: Some(token),
            ..
        } => token,
        TokenAnswer {
            error,
            error_description,
            ..
        } => {
            return Err(denied(
                &error_description
                    .or(error)
                    .unwrap_or_else(|| "no access token".into()),
            ))
        }
    };
    let api = crate::github::client(&state)?;
    let profile = api.user(&access).await.map_err(github_error)?;
    let email = match profile.email.filter(|e| !e.is_empty()) {
        Some(email) => email,
        None => {
            let emails = api.emails(&access).await.map_err(github_error)?;
            emails
                .into_iter()
                .filter(|e| e.verified)
                .max_by_key(|e| e.primary)
                .map(|e| e.email)
                .unwrap_or_else(|| format!("{}+{}@users.noreply.github.com", profile.id, profile.login))
        }
    };
    let store = state.engine.store();
    let user = match store.user_by_github(profile.id).await? {
        Some(user) => user,
        None => match store.user_by_email(&email).await? {
            Some(user) => user,
            None => store.create_user(&email, None, false).await?,
        },
    };
    store
        .link_github(&user.id, profile.id, &profile.login, &access)
        .await?;
    let user = store.user(&user.id).await?;
    tracing::info!(user = %user.id, github = %profile.login, "signed in with GitHub");
    Ok(Json(issue_token(&state, &user, "github").await?))
}

fn denied(why: &str) -> ApiError {
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        "github_denied",
        format!(
            "GitHub did not grant access ({}); start again at /auth/github/login",
            why.escape_debug()
        ),
    )
}
