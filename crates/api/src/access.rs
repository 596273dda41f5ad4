//! Authorization: which apps a caller may see and what they may do with
//! them, and per-tenant quotas. Another tenant's app answers 404 (names do
//! not leak); a visible app the caller's role does not allow answers 403.

use crate::auth::Caller;
use crate::{ApiError, ApiState};
use axum::http::StatusCode;
use easydeploy_core::{AppName, AppSettings};
use easydeploy_store::{App, Deployment, Role};

/// What each tenant may use at most.
#[derive(Debug, Clone, Copy)]
pub struct Quotas {
    /// Apps per tenant.
    pub max_apps: usize,
    /// Replicas per tenant, counting each app at its peak (autoscaling maximum).
    pub max_replicas: u32,
    /// Memory per tenant in MiB, each replica counted at its limit.
    pub max_memory_mib: u64,
    /// Memory limit of one replica in MiB.
    pub replica_memory_mib: u64,
}

impl Default for Quotas {
    fn default() -> Self {
        Self {
            max_apps: 25,
            max_replicas: 50,
            max_memory_mib: 25_600,
            replica_memory_mib: 512,
        }
    }
}

fn forbidden(role: Role, needed: Role, action: &str) -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        "forbidden",
        format!(
            "your role on this app is {}; {action} needs {} or higher (ask a team owner)",
            role.as_str(),
            needed.as_str()
        ),
    )
}

/// The action a role allows, for error messages.
fn action(needed: Role) -> &'static str {
    match needed {
        Role::Viewer => "reading it",
        Role::Deployer => "changing it",
        Role::Owner => "deleting it or managing members",
    }
}

/// The app named `raw` when the caller may act on it with `needed`.
pub async fn app_for(state: &ApiState, caller: &Caller, raw: &str, needed: Role) -> Result<App, ApiError> {
    let missing = || ApiError::not_found(format!("app '{}'", raw.escape_debug()));
    let name = AppName::parse(raw).map_err(|_| missing())?;
    let store = state.engine.store();
    let app = match store.app(&name).await {
        Ok(app) => app,
        Err(easydeploy_store::StoreError::NotFound(_)) => return Err(missing()),
        Err(e) => return Err(e.into()),
    };
    match store.role_in_tenant(&caller.user, &app.tenant).await? {
        None => Err(missing()),
        Some(role) if role < needed => Err(forbidden(role, needed, action(needed))),
        Some(_) => Ok(app),
    }
}

/// The deployment `id` when the caller may act on its app with `needed`.
pub async fn deployment_for(
    state: &ApiState,
    caller: &Caller,
    id: &str,
    needed: Role,
) -> Result<Deployment, ApiError> {
    let missing = || ApiError::not_found(format!("deployment '{}'", id.escape_debug()));
    if id.is_empty() || id.len() > 64 || !id.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-') {
        return Err(missing());
    }
    let store = state.engine.store();
    let deployment = match store.deployment(id).await {
        Ok(d) => d,
        Err(easydeploy_store::StoreError::NotFound(_)) => return Err(missing()),
        Err(e) => return Err(e.into()),
    };
    let app = store.app(&deployment.app).await.map_err(|_| missing())?;
    match store.role_in_tenant(&caller.user, &app.tenant).await? {
        None => Err(missing()),
        Some(role) if role < needed => Err(forbidden(role, needed, action(needed))),
        Some(_) => Ok(deployment),
    }
}

/// Replicas an app may run at its peak.
pub fn peak_replicas(settings: &AppSettings) -> u32 {
    let fixed = settings.replicas.get();
    settings.autoscale.map_or(fixed, |a| a.max.max(fixed))
}

fn quota_error(message: String) -> ApiError {
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "quota_exceeded", message)
}

/// Refuses a change that would take `tenant` over its quotas: `app` (new
/// or changed) would run at most `peak` replicas; `new_app` counts it as
/// one more app.
pub async fn check_quota(
    state: &ApiState,
    tenant: &str,
    app: &AppName,
    peak: u32,
    new_app: bool,
) -> Result<(), ApiError> {
    let quotas = state.quotas;
    let apps: Vec<App> = state
        .engine
        .store()
        .apps()
        .await?
        .into_iter()
        .filter(|a| a.tenant == tenant && &a.name != app)
        .collect();
    if new_app && apps.len() >= quotas.max_apps {
        return Err(quota_error(format!(
            "this account already has {} apps, the most allowed; delete one first (quota EASYDEPLOY_QUOTA_APPS)",
            apps.len()
        )));
    }
    let replicas: u32 = apps.iter().map(|a| peak_replicas(&a.settings)).sum::<u32>() + peak;
    if replicas > quotas.max_replicas {
        return Err(quota_error(format!(
            "this would make {replicas} replicas across the account's apps; at most {} are allowed (quota EASYDEPLOY_QUOTA_REPLICAS)",
            quotas.max_replicas
        )));
    }
    let memory = u64::from(replicas) * quotas.replica_memory_mib;
    if memory > quotas.max_memory_mib {
        return Err(quota_error(format!(
            "this would reserve {memory} MiB of memory ({replicas} replicas × {} MiB); at most {} MiB are allowed (quota EASYDEPLOY_QUOTA_MEMORY_MIB)",
            quotas.replica_memory_mib, quotas.max_memory_mib
        )));
    }
    Ok(())
}

macro_rules! app_extractor {
    ($(#[$doc:meta])* $name:ident, $role:expr) => {
        $(#[$doc])*
        pub struct $name(pub App);

        impl axum::extract::FromRequestParts<ApiState> for $name {
            type Rejection = ApiError;
            async fn from_request_parts(
                parts: &mut axum::http::request::Parts,
                state: &ApiState,
            ) -> Result<Self, ApiError> {
                let caller = <Caller as axum::extract::FromRequestParts<ApiState>>::from_request_parts(parts, state).await?;
                let axum::extract::Path(raw) = axum::extract::Path::<String>::from_request_parts(parts, state)
                    .await
                    .map_err(|_| ApiError::not_found("app"))?;
                Ok(Self(app_for(state, &caller, &raw, $role).await?))
            }
        }
    };
}

app_extractor!(
    /// The path's `{app}` when the caller may read it (viewer or more).
    ViewerOf,
    Role::Viewer
);
app_extractor!(
    /// The path's `{app}` when the caller may change it (deployer or more).
    DeployerOf,
    Role::Deployer
);
app_extractor!(
    /// The path's `{app}` when the caller owns it.
    OwnerOf,
    Role::Owner
);
