//! Easy Deploy's durable state: apps, deployments as a job table with leases,
//! every state transition with its time (SQLite through sqlx), and build
//! artifacts as files.

mod accounts;
mod alerts;
mod apps;
mod artifacts;
mod deployments;
mod github;
mod metrics;
mod secrets;
mod stats;

pub use accounts::{Member, Role, Team, TokenInfo, User};
pub use secrets::MasterKey;

pub use alerts::{AlertRules, AlertSettings, AlertState};
pub use apps::App;
pub use artifacts::FileArtifacts;
pub use deployments::{Deployment, DeploymentFacts, DeploymentKind, Event, NewDeployment, Transition};
pub use github::GithubLink;
pub use metrics::{MetricSample, ReplicaFigures, Resolution};
pub use stats::{DeployStats, StepStats};

use easydeploy_core::AppSettings;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqlitePool};
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

/// A store failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// No such row.
    #[error("{0} not found")]
    NotFound(String),
    /// A unique name is taken.
    #[error("{0}")]
    Conflict(String),
    /// The deployment is no longer ours to move (cancelled, lease lost, illegal transition).
    #[error("deployment {0} cannot move to {1} from its current state")]
    Stale(String, String),
    /// The database failed.
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
    /// A stored value could not be read back.
    #[error("corrupt stored value: {0}")]
    Corrupt(String),
    /// The master key is missing, malformed or not the one secrets were sealed with.
    #[error("{0}")]
    Key(String),
}

/// Result of a store call.
pub type StoreResult<T> = Result<T, StoreError>;

/// The SQLite-backed store.
#[derive(Clone)]
pub struct Store {
    /// Readers (WAL lets them run beside the writer).
    pool: SqlitePool,
    /// The one writer connection: SQLite allows one writer at a time, and a
    /// single connection avoids read-to-write lock upgrades failing as busy.
    writer: SqlitePool,
    /// Seals secrets at rest.
    key: MasterKey,
}

/// Version of `schema.sql`; every statement in it is idempotent, so an older
/// database is brought up to date by applying it whole.
const SCHEMA_VERSION: i64 = 4;

impl Store {
    /// Opens (creating if needed) the database file and applies the schema.
    /// Secrets are sealed with `EASYDEPLOY_MASTER_KEY`, or the key file
    /// `master.key` beside the database (generated, mode 0600).
    pub async fn open(path: &Path) -> StoreResult<Self> {
        let key_file = path.parent().unwrap_or(Path::new(".")).join("master.key");
        Self::open_with_key(path, MasterKey::from_env_or_file(&key_file)?).await
    }

    /// Opens the database with a given master key.
    pub async fn open_with_key(path: &Path, key: MasterKey) -> StoreResult<Self> {
        let options = SqliteConnectOptions::from_str("sqlite:")?
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            // Overwrite deleted content, so a replaced plaintext value does not linger in free pages.
            .pragma("secure_delete", "ON")
            .busy_timeout(Duration::from_secs(10));
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options.clone())
            .await?;
        let version: i64 = sqlx::query_scalar("PRAGMA user_version")
            .fetch_one(&writer)
            .await?;
        let upgrading = version < SCHEMA_VERSION;
        if upgrading {
            let mut tx = writer.begin().await?;
            sqlx::raw_sql(include_str!("schema.sql"))
                .execute(&mut *tx)
                .await?;
            sqlx::raw_sql(&format!("PRAGMA user_version = {SCHEMA_VERSION}"))
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
        }
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await?;
        let store = Self { pool, writer, key };
        if upgrading {
            // Only databases written before encryption can hold plaintext secrets.
            store.seal_plaintext_secrets().await?;
        }
        Ok(store)
    }

    /// Seals secrets stored in plaintext by versions before encryption.
    async fn seal_plaintext_secrets(&self) -> StoreResult<()> {
        for table in ["apps", "deployments"] {
            let key_column = if table == "apps" { "name" } else { "id" };
            let rows = sqlx::query(&format!("SELECT {key_column} AS k, settings FROM {table}"))
                .fetch_all(&self.pool)
                .await?;
            for row in rows {
                let raw: String = row.try_get("settings")?;
                if has_plain_env(&raw) {
                    sqlx::query(&format!("UPDATE {table} SET settings = ? WHERE {key_column} = ?"))
                        .bind(self.seal_settings(&self.open_settings(&raw)?))
                        .bind(row.try_get::<String, _>("k")?)
                        .execute(&self.writer)
                        .await?;
                }
            }
        }
        for (table, column, key_column, purpose) in [
            ("apps", "webhook_secret", "name", "webhook_secret"),
            ("alert_settings", "secret", "app", "alert_secret"),
        ] {
            let rows = sqlx::query(&format!(
                "SELECT {key_column} AS k, {column} AS v FROM {table} WHERE {column} NOT LIKE 'enc:v1:%'"
            ))
            .fetch_all(&self.pool)
            .await?;
            for row in rows {
                let plain: String = row.try_get("v")?;
                sqlx::query(&format!("UPDATE {table} SET {column} = ? WHERE {key_column} = ?"))
                    .bind(self.key.seal(purpose, &plain))
                    .bind(row.try_get::<String, _>("k")?)
                    .execute(&self.writer)
                    .await?;
            }
        }
        Ok(())
    }

    /// Settings as stored: JSON with every env value sealed.
    fn seal_settings(&self, settings: &AppSettings) -> String {
        let mut value = serde_json::to_value(settings).unwrap_or(serde_json::Value::Null);
        for var in env_entries(&mut value) {
            if let Some(serde_json::Value::String(plain)) = var.get_mut("value") {
                if !MasterKey::is_sealed(plain) {
                    *plain = self.key.seal("env", plain);
                }
            }
        }
        value.to_string()
    }

    /// Settings read back, env values opened.
    fn open_settings(&self, raw: &str) -> StoreResult<AppSettings> {
        let mut value: serde_json::Value = from_json(raw)?;
        for var in env_entries(&mut value) {
            if let Some(serde_json::Value::String(stored)) = var.get_mut("value") {
                *stored = self.key.open("env", stored)?;
            }
        }
        serde_json::from_value(value).map_err(|e| StoreError::Corrupt(e.to_string()))
    }
}

fn env_entries(settings: &mut serde_json::Value) -> impl Iterator<Item = &mut serde_json::Value> {
    settings
        .get_mut("env")
        .and_then(|env| env.as_array_mut())
        .into_iter()
        .flatten()
}

fn has_plain_env(raw: &str) -> bool {
    let mut value: serde_json::Value = serde_json::from_str(raw).unwrap_or_default();
    let plain = env_entries(&mut value).any(|var| {
        var.get("value")
            .and_then(|v| v.as_str())
            .is_some_and(|v| !MasterKey::is_sealed(v))
    });
    plain
}

/// The current time as stored (RFC 3339, milliseconds, UTC).
fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn to_json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "null".into())
}

fn from_json<T: serde::de::DeserializeOwned>(raw: &str) -> StoreResult<T> {
    serde_json::from_str(raw).map_err(|e| StoreError::Corrupt(e.to_string()))
}
