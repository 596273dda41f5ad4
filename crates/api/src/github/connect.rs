//! Connecting a new app to its GitHub repository (push hook) and
//! disconnecting a deleted one.

use super::{client, full_name, github_repo_of, not_linked, TOKEN_USER};
use crate::auth::Caller;
use crate::{ApiError, ApiState};
use axum::http::StatusCode;
use easydeploy_core::ports::SourceCredentials;
use easydeploy_core::AppName;

/// A new app's GitHub repository, about to be connected.
pub(crate) struct Connection {
    owner: String,
    repo: String,
    token: String,
}

impl Connection {
    /// Credentials to reach the repository with the caller's token.
    pub(crate) fn credentials(&self) -> SourceCredentials {
        SourceCredentials {
            username: TOKEN_USER.into(),
            password: self.token.clone(),
        }
    }

    /// Registers the push hook (signed with the app's webhook secret) and
    /// remembers the repository, hook and user on the app.
    pub(crate) async fn connect(
        &self,
        state: &ApiState,
        caller: &Caller,
        app: &easydeploy_store::App,
    ) -> Result<(), ApiError> {
        let client = client(state)?;
        let url = format!("{}/webhooks/github", state.public_url);
        let hook = client
            .create_hook(&self.token, &self.owner, &self.repo, &url, &app.webhook_secret)
            .await?;
        let link = easydeploy_store::GithubLink {
            owner: self.owner.clone(),
            repo: self.repo.clone(),
            source: app.settings.source.to_string(),
            user_id: caller.user.id.clone(),
            hook_id: Some(hook.id),
        };
        if let Err(e) = state.engine.store().link_app_to_github(&app.name, &link).await {
            let _ = client
                .delete_hook(&self.token, &self.owner, &self.repo, hook.id)
                .await;
            return Err(e.into());
        }
        tracing::info!(app = %app.name, repo = %format!("{}/{}", self.owner, self.repo), hook = hook.id, "app connected to GitHub");
        Ok(())
    }
}

/// Decides whether a new app comes from GitHub: `github: "owner/repo"`
/// (needs the caller's GitHub token; fills in the source and, when absent,
/// the default branch), or a GitHub URL source from a caller who signed in
/// with GitHub. Other sources are left alone.
pub(crate) async fn connection(
    state: &ApiState,
    caller: &Caller,
    github: Option<&str>,
    input: &mut crate::views::SettingsInput,
) -> Result<Option<Connection>, ApiError> {
    let (owner, repo) = match (github, input.source.as_deref()) {
        (Some(_), Some(_)) => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "conflicting_source",
                "give either `github` or `source`, not both",
            ))
        }
        (Some(full), None) => {
            let names = full_name(full)?;
            client(state)?;
            names
        }
        (None, Some(source)) if state.github.is_some() => {
            match github_repo_of(state.github.as_deref().map(|g| g.web_url.as_str()), source) {
                Some(names) => names,
                None => return Ok(None),
            }
        }
        _ => return Ok(None),
    };
    let token = match (github, state.engine.store().github_token(&caller.user.id).await?) {
        (_, Some(token)) => token,
        (Some(_), None) => return Err(not_linked()),
        // A GitHub URL from someone without GitHub access: a plain (public) source.
        (None, None) => return Ok(None),
    };
    let found = client(state)?.repo(&token, &owner, &repo).await?;
    if input.source.is_none() {
        input.source = Some(found.clone_url.clone());
    }
    if input.branch.is_none() {
        input.branch = Some(found.default_branch.clone());
    }
    Ok(Some(Connection {
        owner: found.owner.login,
        repo: found.name,
        token,
    }))
}

/// Removes the push hook of a deleted app that was connected to GitHub (a
/// hook already gone is fine); a failure is logged.
pub(crate) async fn disconnect(state: &ApiState, app: &AppName, link: &easydeploy_store::GithubLink) {
    let store = state.engine.store();
    let Some(hook) = link.hook_id else { return };
    let token = match store.github_token(&link.user_id).await {
        Ok(Some(token)) => token,
        _ => {
            tracing::warn!(app = %app, "cannot remove the GitHub hook: the connecting user has no GitHub token");
            return;
        }
    };
    let Ok(client) = client(state) else { return };
    match client.delete_hook(&token, &link.owner, &link.repo, hook).await {
        Ok(true) => tracing::info!(app = %app, hook, "GitHub hook removed"),
        Ok(false) => tracing::info!(app = %app, hook, "GitHub hook was already gone"),
        Err(e) => tracing::warn!(app = %app, hook, error = %e, "could not remove the GitHub hook"),
    }
}
