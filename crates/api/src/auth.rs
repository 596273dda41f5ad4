//! Authentication: API tokens `ed_<id>_<secret>` kept as the SHA-256 digest
//! of their secret and compared in constant time; the admin token file of
//! the data dir (`ed_<secret>`) is the administrator's token `admin`.

use crate::{ApiError, ApiState};
use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::Response;
use easydeploy_store::User;
use rand::RngCore;
use sha2::{Digest, Sha256};
use std::path::Path;

/// Id of the administrator's token read from `<data-dir>/admin.token`.
pub const ADMIN_TOKEN_ID: &str = "admin";

/// A new token: its id and the full value to hand out once.
pub struct NewToken {
    /// Public id (listing, revocation).
    pub id: String,
    /// `ed_<id>_<secret>`.
    pub value: String,
    /// Digest of the secret, to store.
    pub digest: String,
}

fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::thread_rng().fill_bytes(&mut buf);
    hex::encode(buf)
}

/// SHA-256 of a token secret, hex.
pub fn digest(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

impl NewToken {
    /// A random token.
    pub fn generate() -> Self {
        let id = random_hex(8);
        let secret = random_hex(32);
        Self {
            value: format!("ed_{id}_{secret}"),
            digest: digest(&secret),
            id,
        }
    }
}

/// Splits a presented token into its id and secret.
fn parse(token: &str) -> Option<(&str, &str)> {
    let rest = token.strip_prefix("ed_")?;
    match rest.split_once('_') {
        Some((id, secret)) if !id.is_empty() && !secret.is_empty() => Some((id, secret)),
        Some(_) => None,
        None => Some((ADMIN_TOKEN_ID, rest)),
    }
}

/// Equal in constant time for equal-length inputs (every byte visited).
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Reads the admin token file, or creates it (mode 0600) with a new random
/// token; returns the digest of its secret.
pub fn load_or_create_admin_token(path: &Path) -> std::io::Result<String> {
    match std::fs::read_to_string(path) {
        Ok(token) if !token.trim().is_empty() => {
            let token = token.trim();
            return match parse(token) {
                Some((ADMIN_TOKEN_ID, secret)) => Ok(digest(secret)),
                _ => Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("{} does not hold an admin token (ed_<secret>)", path.display()),
                )),
            };
        }
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let secret = random_hex(32);
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(format!("ed_{secret}\n").as_bytes())?;
    Ok(digest(&secret))
}

/// The signed-in user of a request, and the token they used.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The user.
    pub user: User,
    /// Id of the token presented.
    pub token_id: String,
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Caller>()
            .cloned()
            .ok_or_else(|| ApiError::internal("route without authentication"))
    }
}

fn unauthorized(code: &'static str, message: &str) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, code, message)
}

/// True at most once a minute per token, so recording "last used" does not
/// cost a database write on every request.
fn first_use_this_minute(token_id: &str) -> bool {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};
    use std::time::{Duration, Instant};
    static SEEN: OnceLock<Mutex<HashMap<String, Instant>>> = OnceLock::new();
    let mut seen = SEEN
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    let now = Instant::now();
    if seen.len() > 10_000 {
        seen.retain(|_, at| now.duration_since(*at) < Duration::from_secs(60));
    }
    match seen.get(token_id) {
        Some(at) if now.duration_since(*at) < Duration::from_secs(60) => false,
        _ => {
            seen.insert(token_id.to_owned(), now);
            true
        }
    }
}

/// Who a presented token belongs to.
pub async fn verify(state: &ApiState, token: &str) -> Result<Caller, ApiError> {
    let invalid = || {
        unauthorized(
            "invalid_token",
            "the API token is not valid (revoked, mistyped or from another server)",
        )
    };
    let (id, secret) = parse(token.trim()).ok_or_else(invalid)?;
    let store = state.engine.store();
    let Some((user_id, stored)) = store.token_digest(id).await? else {
        return Err(invalid());
    };
    if !constant_time_eq(digest(secret).as_bytes(), stored.as_bytes()) {
        return Err(invalid());
    }
    let user = store.user(&user_id).await.map_err(|_| invalid())?;
    if first_use_this_minute(id) {
        let touch = store.clone();
        let token_id = id.to_owned();
        tokio::spawn(async move {
            if let Err(e) = touch.touch_token(&token_id).await {
                tracing::debug!(error = %e, "token use not recorded");
            }
        });
    }
    Ok(Caller {
        user,
        token_id: id.to_owned(),
    })
}

/// Rejects requests without a valid `Authorization: Bearer` token and
/// makes the caller available to handlers.
pub async fn require_token(
    State(state): State<ApiState>,
    mut request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let header = request
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let Some(header) = header else {
        return Err(unauthorized(
            "missing_token",
            "send an API token as 'Authorization: Bearer <token>' (`easydeploy login`; the admin token is in <data-dir>/admin.token)",
        ));
    };
    let token = header.strip_prefix("Bearer ").ok_or_else(|| {
        unauthorized(
            "invalid_token",
            "the Authorization header must read 'Bearer <token>'",
        )
    })?;
    let caller = verify(&state, token).await?;
    request.extensions_mut().insert(caller);
    Ok(next.run(request).await)
}

/// Declares the bearer scheme in the OpenAPI document.
pub struct BearerScheme;

impl utoipa::Modify for BearerScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_parse_into_id_and_secret() {
        let t = NewToken::generate();
        let (id, secret) = parse(&t.value).unwrap();
        assert_eq!(id, t.id);
        assert_eq!(digest(secret), t.digest);
        assert_eq!(parse("ed_abcdef"), Some((ADMIN_TOKEN_ID, "abcdef")));
        assert_eq!(parse("ed__x"), None);
        assert_eq!(parse("xx_a_b"), None);
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
