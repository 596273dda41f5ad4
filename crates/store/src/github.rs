//! Apps connected to a GitHub repository: which repository, the push hook
//! registered on it, and the user whose token reads it and posts statuses.

use crate::{now, Store, StoreResult};
use easydeploy_core::AppName;
use sqlx::Row;

/// An app's GitHub repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GithubLink {
    /// Repository owner (user or organisation).
    pub owner: String,
    /// Repository name.
    pub repo: String,
    /// The app source it was connected with (credentials go to it only).
    pub source: String,
    /// The user who connected it (whose token is used).
    pub user_id: String,
    /// Id of the push hook registered on the repository.
    pub hook_id: Option<i64>,
}

impl Store {
    /// Connects an app to a GitHub repository (replacing any earlier link).
    pub async fn link_app_to_github(&self, app: &AppName, link: &GithubLink) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO github_links (app, owner, repo, source, user_id, hook_id, created_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?) \
             ON CONFLICT (app) DO UPDATE SET owner = excluded.owner, repo = excluded.repo, \
             source = excluded.source, user_id = excluded.user_id, hook_id = excluded.hook_id",
        )
        .bind(app.as_str())
        .bind(&link.owner)
        .bind(&link.repo)
        .bind(&link.source)
        .bind(&link.user_id)
        .bind(link.hook_id)
        .bind(now())
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    /// The app's GitHub repository, if it is connected to one.
    pub async fn github_link(&self, app: &AppName) -> StoreResult<Option<GithubLink>> {
        let row = sqlx::query("SELECT owner, repo, source, user_id, hook_id FROM github_links WHERE app = ?")
            .bind(app.as_str())
            .fetch_optional(&self.pool)
            .await?;
        row.map(|row| {
            Ok(GithubLink {
                owner: row.try_get("owner")?,
                repo: row.try_get("repo")?,
                source: row.try_get("source")?,
                user_id: row.try_get("user_id")?,
                hook_id: row.try_get("hook_id")?,
            })
        })
        .transpose()
    }
}
