//! Easy Deploy's durable state: apps, deployments as a job table with leases,
//! every state transition with its time (SQLite through sqlx), and build
//! artifacts as files.

mod alerts;
mod apps;
mod artifacts;
mod deployments;
mod metrics;
mod stats;

pub use alerts::{AlertRules, AlertSettings, AlertState};
pub use apps::App;
pub use artifacts::FileArtifacts;
pub use deployments::{Deployment, DeploymentFacts, DeploymentKind, Event, NewDeployment, Transition};
pub use metrics::{MetricSample, ReplicaFigures, Resolution};
pub use stats::{DeployStats, StepStats};

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::SqlitePool;
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
}

const SCHEMA_VERSION: i64 = 2;

impl Store {
    /// Opens (creating if needed) the database file and applies the schema.
    pub async fn open(path: &Path) -> StoreResult<Self> {
        let options = SqliteConnectOptions::from_str("sqlite:")?
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options.clone())
            .await?;
        let version: i64 = sqlx::query_scalar("PRAGMA user_version")
            .fetch_one(&writer)
            .await?;
        if version < SCHEMA_VERSION {
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
        Ok(Self { pool, writer })
    }
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
