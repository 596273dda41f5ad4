//! Apps: a unique name (its host name), its tenant, its settings and the
//! deployment that is live.

use crate::{now, Store, StoreError, StoreResult};
use easydeploy_core::{AppName, AppSettings};
use serde::Serialize;
use sqlx::Row;

/// A stored app.
#[derive(Debug, Clone, Serialize)]
pub struct App {
    /// Unique name.
    pub name: AppName,
    /// Owning tenant.
    pub tenant: String,
    /// Current settings (used by the next deployment).
    pub settings: AppSettings,
    /// Deployment serving traffic, if any.
    pub live_deployment: Option<String>,
    /// Secret signing the app's push webhooks (HMAC-SHA256).
    #[serde(skip)]
    pub webhook_secret: String,
    /// Creation time.
    pub created_at: String,
    /// Last change.
    pub updated_at: String,
}

impl Store {
    fn app_from_row(&self, row: &sqlx::sqlite::SqliteRow) -> StoreResult<App> {
        let name: String = row.try_get("name")?;
        Ok(App {
            name: AppName::parse(&name).map_err(|e| StoreError::Corrupt(e.message))?,
            tenant: row.try_get("tenant")?,
            settings: self.open_settings(row.try_get::<&str, _>("settings")?)?,
            live_deployment: row.try_get("live_deployment")?,
            webhook_secret: self
                .key
                .open("webhook_secret", row.try_get::<&str, _>("webhook_secret")?)?,
            created_at: row.try_get("created_at")?,
            updated_at: row.try_get("updated_at")?,
        })
    }
}

impl Store {
    /// Creates an app; fails with `Conflict` when the name is taken.
    pub async fn create_app(&self, name: &AppName, tenant: &str, settings: &AppSettings) -> StoreResult<App> {
        let at = now();
        let done = sqlx::query(
            "INSERT INTO apps (name, tenant, settings, webhook_secret, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?) \
             ON CONFLICT (name) DO NOTHING",
        )
        .bind(name.as_str())
        .bind(tenant)
        .bind(self.seal_settings(settings))
        .bind(self.key.seal("webhook_secret", &new_secret()))
        .bind(&at)
        .bind(&at)
        .execute(&self.writer)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::Conflict(format!(
                "the app name '{name}' is already taken"
            )));
        }
        self.app(name).await
    }

    /// One app.
    pub async fn app(&self, name: &AppName) -> StoreResult<App> {
        let row = sqlx::query("SELECT * FROM apps WHERE name = ?")
            .bind(name.as_str())
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("app '{name}'")))?;
        self.app_from_row(&row)
    }

    /// Every app, by name.
    pub async fn apps(&self) -> StoreResult<Vec<App>> {
        let rows = sqlx::query("SELECT * FROM apps ORDER BY name")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|r| self.app_from_row(r)).collect()
    }

    /// Replaces an app's settings.
    pub async fn update_settings(&self, name: &AppName, settings: &AppSettings) -> StoreResult<()> {
        let done = sqlx::query("UPDATE apps SET settings = ?, updated_at = ? WHERE name = ?")
            .bind(self.seal_settings(settings))
            .bind(now())
            .bind(name.as_str())
            .execute(&self.writer)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("app '{name}'")));
        }
        Ok(())
    }

    /// Deletes an app with its deployments and their history; returns the deployment ids it had.
    pub async fn delete_app(&self, name: &AppName) -> StoreResult<Vec<String>> {
        let mut tx = self.writer.begin().await?;
        let ids: Vec<String> = sqlx::query_scalar("SELECT id FROM deployments WHERE app = ?")
            .bind(name.as_str())
            .fetch_all(&mut *tx)
            .await?;
        let done = sqlx::query("DELETE FROM apps WHERE name = ?")
            .bind(name.as_str())
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("app '{name}'")));
        }
        tx.commit().await?;
        Ok(ids)
    }
}

/// 64 hex characters of randomness (two v4 UUIDs, 244 random bits).
fn new_secret() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

impl Store {
    /// Records a webhook delivery id; false when it was already seen.
    /// Deliveries older than a week are forgotten.
    pub async fn first_delivery(&self, delivery: &str) -> StoreResult<bool> {
        let mut tx = self.writer.begin().await?;
        let week_ago = (chrono::Utc::now() - chrono::Duration::days(7))
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        sqlx::query("DELETE FROM webhook_deliveries WHERE received_at < ?")
            .bind(week_ago)
            .execute(&mut *tx)
            .await?;
        let done = sqlx::query(
            "INSERT INTO webhook_deliveries (delivery, received_at) VALUES (?, ?) ON CONFLICT DO NOTHING",
        )
        .bind(delivery)
        .bind(now())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(done.rows_affected() == 1)
    }
}
