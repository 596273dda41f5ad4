//! Accounts: sign-up, sign-in (tokens), the caller, teams and members.

use crate::apps::JsonBody;
use crate::auth::{Caller, NewToken};
use crate::{ApiError, ApiState};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use easydeploy_store::{Member, Role, StoreError, Team, TokenInfo, User};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

type ErrorBody = crate::error::ErrorBody;

/// Email and password.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Credentials {
    /// Sign-in email.
    pub email: String,
    /// Password: at least 10 characters, not too simple.
    pub password: String,
    /// What a token is for (sign-in only; default `cli`).
    #[serde(default)]
    pub label: Option<String>,
}

/// A user as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserView {
    /// Stable id.
    pub id: String,
    /// Sign-in email.
    pub email: String,
    /// Platform administrator.
    pub admin: bool,
    /// The tenant of the user's own apps.
    pub tenant: String,
    /// Linked GitHub login.
    pub github_login: Option<String>,
    /// When the account was made.
    pub created_at: String,
}

impl From<&User> for UserView {
    fn from(u: &User) -> Self {
        Self {
            id: u.id.clone(),
            email: u.email.clone(),
            admin: u.admin,
            tenant: u.tenant.clone(),
            github_login: u.github_login.clone(),
            created_at: u.created_at.clone(),
        }
    }
}

/// A new token; its value is shown only this once.
#[derive(Debug, Serialize, ToSchema)]
pub struct IssuedToken {
    /// Id, to list or revoke it.
    pub id: String,
    /// `Authorization: Bearer <token>`.
    pub token: String,
    /// What it is for.
    pub label: String,
    /// Whose it is.
    pub user: UserView,
}

/// The caller and their teams.
#[derive(Debug, Serialize, ToSchema)]
pub struct Me {
    /// The user.
    #[serde(flatten)]
    pub user: UserView,
    /// Teams and the caller's role in each.
    pub teams: Vec<TeamView>,
    /// Id of the token this request used (`DELETE /api/v1/tokens/{id}` signs out).
    pub token_id: String,
}

/// A team and the caller's role in it.
#[derive(Debug, Serialize, ToSchema)]
pub struct TeamView {
    /// Team name.
    pub name: String,
    /// The caller's role.
    pub role: Role,
}

/// A team with its members.
#[derive(Debug, Serialize, ToSchema)]
pub struct TeamDetail {
    /// Team name.
    pub name: String,
    /// The caller's role.
    pub role: Role,
    /// Members and their roles.
    pub members: Vec<Member>,
}

/// A new team.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTeam {
    /// Unique name: lowercase letters, digits and dashes.
    pub name: String,
}

/// A member to add (or whose role to change).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddMember {
    /// The member's sign-in email (they must have signed up).
    pub email: String,
    /// `owner`, `deployer` or `viewer`.
    pub role: String,
}

fn bad(code: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, code, message)
}

/// Checks an email's shape.
pub fn validate_email(email: &str) -> Result<String, ApiError> {
    let email = email.trim();
    let ok = email.len() <= 254
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && domain.contains('.')
                && !domain.contains('@')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
        });
    if ok {
        Ok(email.to_owned())
    } else {
        Err(bad("invalid_email", "give an email address like dev@example.com"))
    }
}

const COMMON_PASSWORDS: &[&str] = &[
    "password", "123456", "qwerty", "letmein", "welcome", "iloveyou", "admin", "monkey", "dragon",
    "football", "baseball", "abc123", "passw0rd", "trustno1", "sunshine", "princess",
];

/// Refuses passwords that are short or easy to guess.
pub fn validate_password(password: &str, email: &str) -> Result<(), ApiError> {
    let weak = |why: &str| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "weak_password",
            format!("choose a stronger password: {why}"),
        )
    };
    let chars = password.chars().count();
    if chars < 10 {
        return Err(weak("use at least 10 characters"));
    }
    if chars > 256 {
        return Err(weak("use at most 256 characters"));
    }
    let lower = password.to_lowercase();
    let distinct: std::collections::BTreeSet<char> = lower.chars().collect();
    if distinct.len() < 5 {
        return Err(weak("use more different characters"));
    }
    if COMMON_PASSWORDS.iter().any(|p| lower.contains(p)) {
        return Err(weak("it contains a well-known password"));
    }
    let local = email.split('@').next().unwrap_or_default().to_lowercase();
    if local.len() >= 3 && lower.contains(&local) {
        return Err(weak("it contains your email address"));
    }
    Ok(())
}

async fn hash_password(password: String) -> Result<String, ApiError> {
    tokio::task::spawn_blocking(move || {
        use argon2::password_hash::{rand_core::OsRng, PasswordHasher, SaltString};
        let salt = SaltString::generate(&mut OsRng);
        argon2::Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(ApiError::internal)
    })
    .await
    .map_err(ApiError::internal)?
}

/// Checks a password against a stored hash; without a hash, still spends
/// the time of one check so unknown emails are not told apart by timing.
async fn password_matches(password: String, hash: Option<String>) -> bool {
    tokio::task::spawn_blocking(move || {
        use argon2::password_hash::{PasswordHash, PasswordVerifier};
        const DUMMY: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$3ZsFGRHhbzDYXVGZTKB5DRfYgvK8uGmTRHj7tM6XAKw";
        let stored = hash.as_deref().unwrap_or(DUMMY);
        let Ok(parsed) = PasswordHash::new(stored) else {
            return false;
        };
        argon2::Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok()
            && hash.is_some()
    })
    .await
    .unwrap_or(false)
}

/// Issues and stores a new token for `user`.
pub async fn issue_token(state: &ApiState, user: &User, label: &str) -> Result<IssuedToken, ApiError> {
    let token = NewToken::generate();
    state
        .engine
        .store()
        .add_token(&user.id, &token.id, label, &token.digest)
        .await?;
    Ok(IssuedToken {
        id: token.id,
        token: token.value,
        label: label.to_owned(),
        user: user.into(),
    })
}

/// Creates an account (its own tenant).
#[utoipa::path(post, path = "/api/v1/users", tag = "accounts", request_body = Credentials, security(()),
    responses((status = 201, body = UserView), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody),
              (status = 422, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn sign_up(
    State(state): State<ApiState>,
    JsonBody(body): JsonBody<Credentials>,
) -> Result<impl IntoResponse, ApiError> {
    let email = validate_email(&body.email)?;
    validate_password(&body.password, &email)?;
    let store = state.engine.store();
    if store.user_by_email(&email).await?.is_some() {
        return Err(taken());
    }
    let hash = hash_password(body.password).await?;
    let user = store
        .create_user(&email, Some(&hash), false)
        .await
        .map_err(|e| match e {
            StoreError::Conflict(_) => taken(),
            other => other.into(),
        })?;
    tracing::info!(user = %user.id, "account created");
    Ok((StatusCode::CREATED, Json(UserView::from(&user))))
}

fn taken() -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        "email_taken",
        "an account with this email already exists; sign in instead",
    )
}

/// Signs in: a new API token for the account.
#[utoipa::path(post, path = "/api/v1/tokens", tag = "accounts", request_body = Credentials, security(()),
    responses((status = 201, body = IssuedToken), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 422, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn sign_in(
    State(state): State<ApiState>,
    JsonBody(body): JsonBody<Credentials>,
) -> Result<impl IntoResponse, ApiError> {
    let label = body.label.as_deref().unwrap_or("cli").trim().to_owned();
    if label.is_empty() || label.len() > 64 || label.chars().any(char::is_control) {
        return Err(bad(
            "invalid_label",
            "a token label is 1 to 64 printable characters",
        ));
    }
    let user = state.engine.store().user_by_email(body.email.trim()).await?;
    let hash = user.as_ref().and_then(|u| u.password_hash.clone());
    let user = match user {
        Some(user) if password_matches(body.password, hash).await => user,
        _ => {
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "invalid_credentials",
                "the email or password is wrong",
            ))
        }
    };
    Ok((
        StatusCode::CREATED,
        Json(issue_token(&state, &user, &label).await?),
    ))
}

/// The caller's tokens (without their secrets).
#[utoipa::path(get, path = "/api/v1/tokens", tag = "accounts",
    responses((status = 200, body = [TokenInfo]), (status = 401, body = ErrorBody)))]
pub async fn list_tokens(
    State(state): State<ApiState>,
    caller: Caller,
) -> Result<Json<Vec<TokenInfo>>, ApiError> {
    Ok(Json(state.engine.store().tokens(&caller.user.id).await?))
}

/// Revokes one of the caller's tokens.
#[utoipa::path(delete, path = "/api/v1/tokens/{id}", tag = "accounts", params(("id" = String, Path)),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn revoke_token(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    if state.engine.store().delete_token(&caller.user.id, &id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!("token '{}'", id.escape_debug())))
    }
}

/// The caller.
#[utoipa::path(get, path = "/api/v1/me", tag = "accounts",
    responses((status = 200, body = Me), (status = 401, body = ErrorBody)))]
pub async fn me(State(state): State<ApiState>, caller: Caller) -> Result<Json<Me>, ApiError> {
    let teams = state.engine.store().teams_of(&caller.user.id).await?;
    Ok(Json(Me {
        user: UserView::from(&caller.user),
        teams: teams
            .into_iter()
            .map(|(t, role)| TeamView { name: t.name, role })
            .collect(),
        token_id: caller.token_id.clone(),
    }))
}

fn team_name(raw: &str) -> Result<String, ApiError> {
    easydeploy_core::AppName::parse(raw)
        .map(|n| n.to_string())
        .map_err(|_| {
            bad(
                "invalid_team_name",
                "a team name is 1 to 40 lowercase letters, digits and dashes, starting with a letter",
            )
        })
}

/// The team named `raw` when the caller belongs to it (with their role);
/// teams of others are 404.
pub async fn team_for(state: &ApiState, caller: &Caller, raw: &str) -> Result<(Team, Role), ApiError> {
    let missing = || ApiError::not_found(format!("team '{}'", raw.escape_debug()));
    let store = state.engine.store();
    let team = store.team(raw).await?.ok_or_else(missing)?;
    let role = if caller.user.admin {
        Some(Role::Owner)
    } else {
        store
            .teams_of(&caller.user.id)
            .await?
            .into_iter()
            .find(|(t, _)| t.id == team.id)
            .map(|(_, r)| r)
    };
    role.map(|r| (team, r)).ok_or_else(missing)
}

/// Creates a team; the caller is its owner.
#[utoipa::path(post, path = "/api/v1/teams", tag = "accounts", request_body = CreateTeam,
    responses((status = 201, body = TeamDetail), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create_team(
    State(state): State<ApiState>,
    caller: Caller,
    JsonBody(body): JsonBody<CreateTeam>,
) -> Result<impl IntoResponse, ApiError> {
    let name = team_name(&body.name)?;
    let store = state.engine.store();
    let team = store
        .create_team(&name, &caller.user.id)
        .await
        .map_err(|e| match e {
            StoreError::Conflict(m) => ApiError::new(StatusCode::CONFLICT, "team_name_taken", m),
            other => other.into(),
        })?;
    let members = store.members(&team).await?;
    Ok((
        StatusCode::CREATED,
        Json(TeamDetail {
            name: team.name,
            role: Role::Owner,
            members,
        }),
    ))
}

/// The caller's teams.
#[utoipa::path(get, path = "/api/v1/teams", tag = "accounts",
    responses((status = 200, body = [TeamView]), (status = 401, body = ErrorBody)))]
pub async fn list_teams(
    State(state): State<ApiState>,
    caller: Caller,
) -> Result<Json<Vec<TeamView>>, ApiError> {
    let teams = state.engine.store().teams_of(&caller.user.id).await?;
    Ok(Json(
        teams
            .into_iter()
            .map(|(t, role)| TeamView { name: t.name, role })
            .collect(),
    ))
}

/// A team and its members (members only).
#[utoipa::path(get, path = "/api/v1/teams/{team}", tag = "accounts", params(("team" = String, Path)),
    responses((status = 200, body = TeamDetail), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get_team(
    State(state): State<ApiState>,
    caller: Caller,
    Path(team): Path<String>,
) -> Result<Json<TeamDetail>, ApiError> {
    let (team, role) = team_for(&state, &caller, &team).await?;
    let members = state.engine.store().members(&team).await?;
    Ok(Json(TeamDetail {
        name: team.name,
        role,
        members,
    }))
}

fn owners_only(role: Role) -> Result<(), ApiError> {
    if role == Role::Owner {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!(
                "your role in this team is {}; managing members needs owner",
                role.as_str()
            ),
        ))
    }
}

/// Adds a member to the team or changes their role (owners only).
#[utoipa::path(post, path = "/api/v1/teams/{team}/members", tag = "accounts", params(("team" = String, Path)),
    request_body = AddMember,
    responses((status = 200, body = TeamDetail), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
              (status = 422, body = ErrorBody)))]
pub async fn add_member(
    State(state): State<ApiState>,
    caller: Caller,
    Path(team): Path<String>,
    JsonBody(body): JsonBody<AddMember>,
) -> Result<Json<TeamDetail>, ApiError> {
    let (team, role) = team_for(&state, &caller, &team).await?;
    owners_only(role)?;
    let new_role =
        Role::parse(&body.role).ok_or_else(|| bad("invalid_role", "a role is owner, deployer or viewer"))?;
    let store = state.engine.store();
    let member = store.user_by_email(body.email.trim()).await?.ok_or_else(|| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown_user",
            "no account uses this email; ask them to sign up first",
        )
    })?;
    store
        .set_member(&team, &member.id, new_role)
        .await
        .map_err(last_owner)?;
    let members = store.members(&team).await?;
    Ok(Json(TeamDetail {
        name: team.name,
        role,
        members,
    }))
}

fn last_owner(e: StoreError) -> ApiError {
    match e {
        StoreError::Conflict(m) => ApiError::new(StatusCode::CONFLICT, "last_owner", m),
        other => other.into(),
    }
}

/// Removes a member from the team (owners only).
#[utoipa::path(delete, path = "/api/v1/teams/{team}/members/{email}", tag = "accounts",
    params(("team" = String, Path), ("email" = String, Path)),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn remove_member(
    State(state): State<ApiState>,
    caller: Caller,
    Path((team, email)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let (team, role) = team_for(&state, &caller, &team).await?;
    owners_only(role)?;
    let store = state.engine.store();
    let missing = || ApiError::not_found(format!("member '{}'", email.escape_debug()));
    let member = store.user_by_email(&email).await?.ok_or_else(missing)?;
    if store.remove_member(&team, &member.id).await.map_err(last_owner)? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(missing())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weak_passwords_and_bad_emails_are_refused() {
        for weak in [
            "short",
            "aaaaaaaaaaaa",
            "mypassword123",
            "ababababab",
            "ann.smith-2024!",
        ] {
            assert!(
                validate_password(weak, "ann.smith@example.com").is_err(),
                "{weak}"
            );
        }
        assert!(validate_password("correct horse battery", "ann@example.com").is_ok());
        for bad in [
            "",
            "ann",
            "ann@",
            "@example.com",
            "ann@example",
            "a b@example.com",
            "ann@@x.com",
        ] {
            assert!(validate_email(bad).is_err(), "{bad}");
        }
        assert_eq!(validate_email(" ann@example.com ").unwrap(), "ann@example.com");
    }
}
