//! The git host of apps connected to GitHub, as the engine sees it.

use super::{STATUS_CONTEXT, TOKEN_USER};
use async_trait::async_trait;
use easydeploy_core::ports::{
    BackendError, BackendResult, CommitState, CommitStatus, SourceCredentials, SourceHost,
};
use easydeploy_core::AppName;
use easydeploy_github::{GithubClient, GithubError, NewStatus};
use easydeploy_store::Store;

/// The git host of apps connected to GitHub: the connecting user's token
/// to clone, and commit statuses (`easydeploy/deploy`) linking to the app.
pub struct GithubSourceHost {
    store: Store,
    client: GithubClient,
    /// `http://{app}.<apps-domain>[:port]` with `{app}` to fill in.
    app_url: String,
}

impl GithubSourceHost {
    /// A host for the API at `api_url`; app URLs follow `app_url_template`
    /// (`{app}` stands for the app's name).
    pub fn new(store: Store, api_url: &str, app_url_template: &str) -> Result<Self, GithubError> {
        Ok(Self {
            store,
            client: GithubClient::new(api_url)?,
            app_url: app_url_template.to_owned(),
        })
    }

    async fn link(
        &self,
        app: &AppName,
        source: Option<&easydeploy_core::GitSource>,
    ) -> BackendResult<Option<(easydeploy_store::GithubLink, String)>> {
        let store_error = |e: easydeploy_store::StoreError| {
            BackendError::transient(format!("the platform's database failed: {e}"))
        };
        let Some(link) = self.store.github_link(app).await.map_err(store_error)? else {
            return Ok(None);
        };
        // The app's source changed since it was connected: the token stays home.
        let current = match source {
            Some(source) => source.as_str().to_owned(),
            None => self
                .store
                .app(app)
                .await
                .map_err(store_error)?
                .settings
                .source
                .to_string(),
        };
        if current != link.source {
            return Ok(None);
        }
        let token = self.store.github_token(&link.user_id).await.map_err(store_error)?.ok_or_else(|| {
            BackendError::permanent(
                "the GitHub account that connected this app is no longer linked; sign in with GitHub again and reconnect the app",
            )
            .with_code("github_not_linked")
        })?;
        Ok(Some((link, token)))
    }
}

#[async_trait]
impl SourceHost for GithubSourceHost {
    async fn credentials(
        &self,
        app: &AppName,
        source: &easydeploy_core::GitSource,
    ) -> BackendResult<Option<SourceCredentials>> {
        Ok(self
            .link(app, Some(source))
            .await?
            .map(|(_, token)| SourceCredentials {
                username: TOKEN_USER.into(),
                password: token,
            }))
    }

    async fn commit_status(&self, app: &AppName, commit: &str, status: &CommitStatus) -> BackendResult<()> {
        let Some((link, token)) = self.link(app, None).await? else {
            return Ok(());
        };
        let (state, target_url) = match status.state {
            CommitState::Pending => ("pending", None),
            CommitState::Success => ("success", Some(self.app_url.replace("{app}", app.as_str()))),
            CommitState::Failure => ("failure", None),
        };
        let new = NewStatus {
            state: state.into(),
            target_url,
            description: status.description.clone(),
            context: STATUS_CONTEXT.into(),
        };
        self.client
            .create_status(&token, &link.owner, &link.repo, commit, &new)
            .await
            .map_err(|e| BackendError::transient(format!("GitHub did not take the commit status: {e}")))
    }
}
