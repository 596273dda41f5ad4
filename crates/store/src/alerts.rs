//! Alerts: per-app rule thresholds with the webhook they are delivered to
//! (and its signing secret), and each rule's firing state.

use crate::{now, Store, StoreResult};
use easydeploy_core::AppName;
use serde::Serialize;
use sqlx::Row;

/// Rule thresholds of an app's alerts.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, utoipa::ToSchema)]
pub struct AlertRules {
    /// `error_ratio` fires when 5xx responses exceed this percentage of responses...
    pub error_ratio_percent: f64,
    /// ...over this many seconds.
    pub window_secs: i64,
    /// `latency_p95` fires when the 95th percentile latency exceeds this (needs latency data).
    pub latency_p95_ms: i64,
    /// `crash_loop` fires when a replica restarted this many times.
    pub crash_loop_restarts: i64,
    /// `no_healthy_replica` fires when a live app has no healthy running replica.
    pub no_healthy_replica: bool,
}

impl Default for AlertRules {
    fn default() -> Self {
        Self {
            error_ratio_percent: 5.0,
            window_secs: 300,
            latency_p95_ms: 1000,
            crash_loop_restarts: 3,
            no_healthy_replica: true,
        }
    }
}

/// An app's alert settings: where notifications go, how they are signed, the rules.
#[derive(Debug, Clone, Serialize)]
pub struct AlertSettings {
    /// The app.
    pub app: String,
    /// Notifications are POSTed here.
    pub webhook_url: String,
    /// HMAC-SHA256 key of the `X-Easydeploy-Signature-256` header (64 hex characters).
    #[serde(skip)]
    pub secret: String,
    /// Thresholds.
    pub rules: AlertRules,
    /// Creation time.
    pub created_at: String,
    /// Last change.
    pub updated_at: String,
}

/// One rule's state for an app.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct AlertState {
    /// The rule: `crash_loop`, `error_ratio`, `latency_p95`, `no_healthy_replica`.
    pub rule: String,
    /// Since when it fires; `None` once resolved.
    pub firing_since: Option<String>,
    /// When it last resolved.
    pub resolved_at: Option<String>,
    /// The last notification's message.
    pub message: String,
}

impl Store {
    fn settings_from_row(&self, row: &sqlx::sqlite::SqliteRow) -> StoreResult<AlertSettings> {
        Ok(AlertSettings {
            app: row.try_get("app")?,
            webhook_url: row.try_get("webhook_url")?,
            secret: self.key.open("alert_secret", row.try_get::<&str, _>("secret")?)?,
            rules: AlertRules {
                error_ratio_percent: row.try_get("error_ratio_percent")?,
                window_secs: row.try_get("window_secs")?,
                latency_p95_ms: row.try_get("latency_p95_ms")?,
                crash_loop_restarts: row.try_get("crash_loop_restarts")?,
                no_healthy_replica: row.try_get::<i64, _>("no_healthy_replica")? != 0,
            },
            created_at: row.try_get("created_at")?,
            updated_at: row.try_get("updated_at")?,
        })
    }
}

fn state_from_row(row: &sqlx::sqlite::SqliteRow) -> StoreResult<AlertState> {
    Ok(AlertState {
        rule: row.try_get("rule")?,
        firing_since: row.try_get("firing_since")?,
        resolved_at: row.try_get("resolved_at")?,
        message: row.try_get("message")?,
    })
}

/// 32 random bytes as 64 hex characters.
fn new_secret() -> String {
    let bytes: [u8; 32] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Store {
    /// Turns an app's alerts on or changes them. A secret is generated when
    /// they are created (or when `rotate_secret`); returns the settings and
    /// whether the secret is new.
    pub async fn set_alerts(
        &self,
        app: &AppName,
        webhook_url: &str,
        rules: &AlertRules,
        rotate_secret: bool,
    ) -> StoreResult<(AlertSettings, bool)> {
        let at = now();
        let mut tx = self.writer.begin().await?;
        let existing: Option<String> = sqlx::query_scalar("SELECT secret FROM alert_settings WHERE app = ?")
            .bind(app.as_str())
            .fetch_optional(&mut *tx)
            .await?;
        let fresh = existing.is_none() || rotate_secret;
        let secret = match existing {
            Some(secret) if !rotate_secret => secret,
            _ => self.key.seal("alert_secret", &new_secret()),
        };
        sqlx::query(
            "INSERT INTO alert_settings (app, webhook_url, secret, error_ratio_percent, window_secs, \
             latency_p95_ms, crash_loop_restarts, no_healthy_replica, created_at, updated_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) \
             ON CONFLICT (app) DO UPDATE SET webhook_url = excluded.webhook_url, secret = excluded.secret, \
             error_ratio_percent = excluded.error_ratio_percent, window_secs = excluded.window_secs, \
             latency_p95_ms = excluded.latency_p95_ms, crash_loop_restarts = excluded.crash_loop_restarts, \
             no_healthy_replica = excluded.no_healthy_replica, updated_at = excluded.updated_at",
        )
        .bind(app.as_str())
        .bind(webhook_url)
        .bind(&secret)
        .bind(rules.error_ratio_percent)
        .bind(rules.window_secs)
        .bind(rules.latency_p95_ms)
        .bind(rules.crash_loop_restarts)
        .bind(i64::from(rules.no_healthy_replica))
        .bind(&at)
        .bind(&at)
        .execute(&mut *tx)
        .await?;
        let row = sqlx::query("SELECT * FROM alert_settings WHERE app = ?")
            .bind(app.as_str())
            .fetch_one(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok((self.settings_from_row(&row)?, fresh))
    }

    /// An app's alert settings, if its alerts are on.
    pub async fn alert_settings(&self, app: &AppName) -> StoreResult<Option<AlertSettings>> {
        let row = sqlx::query("SELECT * FROM alert_settings WHERE app = ?")
            .bind(app.as_str())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(|r| self.settings_from_row(r)).transpose()
    }

    /// Alert settings of every app whose alerts are on.
    pub async fn all_alert_settings(&self) -> StoreResult<Vec<AlertSettings>> {
        let rows = sqlx::query("SELECT * FROM alert_settings ORDER BY app")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|r| self.settings_from_row(r)).collect()
    }

    /// Turns an app's alerts off, forgetting their state; false when they were off.
    pub async fn delete_alerts(&self, app: &AppName) -> StoreResult<bool> {
        let mut tx = self.writer.begin().await?;
        sqlx::query("DELETE FROM alert_states WHERE app = ?")
            .bind(app.as_str())
            .execute(&mut *tx)
            .await?;
        let done = sqlx::query("DELETE FROM alert_settings WHERE app = ?")
            .bind(app.as_str())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(done.rows_affected() > 0)
    }

    /// Every rule's state for an app (firing ones first), by rule.
    pub async fn alert_states(&self, app: &AppName) -> StoreResult<Vec<AlertState>> {
        let rows =
            sqlx::query("SELECT * FROM alert_states WHERE app = ? ORDER BY firing_since IS NULL, rule")
                .bind(app.as_str())
                .fetch_all(&self.pool)
                .await?;
        rows.iter().map(state_from_row).collect()
    }

    /// The rules firing now for an app.
    pub async fn firing_alerts(&self, app: &AppName) -> StoreResult<Vec<AlertState>> {
        Ok(self
            .alert_states(app)
            .await?
            .into_iter()
            .filter(|s| s.firing_since.is_some())
            .collect())
    }

    /// Marks a rule firing and records an `alert` event; false (and nothing
    /// recorded) when it was already firing.
    pub async fn fire_alert(&self, app: &AppName, rule: &str, message: &str) -> StoreResult<bool> {
        self.change_alert_state(
            app,
            rule,
            message,
            "INSERT INTO alert_states (app, rule, firing_since, resolved_at, message) VALUES (?1, ?2, ?3, NULL, ?4) \
             ON CONFLICT (app, rule) DO UPDATE SET firing_since = excluded.firing_since, message = excluded.message \
             WHERE alert_states.firing_since IS NULL",
            "firing",
        )
        .await
    }

    /// Marks a firing rule resolved and records an `alert` event; false (and
    /// nothing recorded) when it was not firing.
    pub async fn resolve_alert(&self, app: &AppName, rule: &str, message: &str) -> StoreResult<bool> {
        self.change_alert_state(
            app,
            rule,
            message,
            "UPDATE alert_states SET firing_since = NULL, resolved_at = ?3, message = ?4 \
             WHERE app = ?1 AND rule = ?2 AND firing_since IS NOT NULL",
            "resolved",
        )
        .await
    }

    /// Runs `change` (parameters: ?1 app, ?2 rule, ?3 now, ?4 message) and,
    /// when it changed a row, records the `alert` event "RULE VERB: MESSAGE"
    /// in the same transaction; false (and nothing recorded) when it did not.
    async fn change_alert_state(
        &self,
        app: &AppName,
        rule: &str,
        message: &str,
        change: &str,
        verb: &str,
    ) -> StoreResult<bool> {
        let at = now();
        let mut tx = self.writer.begin().await?;
        let done = sqlx::query(change)
            .bind(app.as_str())
            .bind(rule)
            .bind(&at)
            .bind(message)
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        sqlx::query("INSERT INTO events (app, at, kind, message) VALUES (?, ?, 'alert', ?)")
            .bind(app.as_str())
            .bind(&at)
            .bind(format!("{rule} {verb}: {message}"))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(true)
    }
}
