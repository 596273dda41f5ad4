//! Deployments as a durable job table: enqueue (superseding older queued
//! deployments of the app), claim with a lease, move step by step with every
//! transition written in the same transaction, recover after a restart.

use crate::{now, Store, StoreError, StoreResult};
use easydeploy_core::{AppName, AppSettings, DeploymentState};
use serde::Serialize;
use sqlx::{Row, Sqlite, Transaction};

/// A deployment as stored.
#[derive(Debug, Clone, Serialize)]
pub struct Deployment {
    /// Unique id.
    pub id: String,
    /// App deployed.
    pub app: AppName,
    /// Per-app sequence number (1, 2, ...).
    pub number: i64,
    /// Current state.
    pub state: DeploymentState,
    /// Step that failed, when failed.
    pub failed_step: Option<DeploymentState>,
    /// Why it failed or was cancelled.
    pub reason: Option<String>,
    /// Settings snapshot this deployment uses.
    pub settings: AppSettings,
    /// Commit deployed (known after fetching, or given by a push).
    pub commit: Option<String>,
    /// First line of its message.
    pub commit_summary: Option<String>,
    /// Framework used.
    pub framework: Option<String>,
    /// Why that framework.
    pub evidence: Option<String>,
    /// Image built.
    pub image: Option<String>,
    /// Why it exists: a new version, a configuration change or a rollback.
    pub kind: DeploymentKind,
    /// Image released without building (configuration changes and rollbacks).
    pub reuse_image: Option<String>,
    /// Port the release listens on, once known.
    pub port: Option<u16>,
    /// Release number, once it went live.
    pub release: Option<i64>,
    /// Who asked for it.
    pub created_by: String,
    /// Creation time.
    pub created_at: String,
    /// Last change.
    pub updated_at: String,
}

/// Why a deployment exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeploymentKind {
    /// A new version from the repository (built, or its image reused when unchanged).
    Deploy,
    /// The live image with changed configuration (env vars).
    Config,
    /// An earlier release's image and configuration.
    Rollback,
}

impl DeploymentKind {
    fn as_str(self) -> &'static str {
        match self {
            Self::Deploy => "deploy",
            Self::Config => "config",
            Self::Rollback => "rollback",
        }
    }
    fn parse(raw: &str) -> StoreResult<Self> {
        match raw {
            "deploy" => Ok(Self::Deploy),
            "config" => Ok(Self::Config),
            "rollback" => Ok(Self::Rollback),
            other => Err(StoreError::Corrupt(format!("unknown deployment kind {other}"))),
        }
    }
}

/// What to deploy.
#[derive(Debug, Clone)]
pub struct NewDeployment {
    /// Exact commit to build (default: the branch head).
    pub commit: Option<String>,
    /// Why.
    pub kind: DeploymentKind,
    /// Image to release without building.
    pub reuse_image: Option<String>,
    /// Port of that image.
    pub port: Option<u16>,
    /// Who asked.
    pub created_by: String,
}

impl NewDeployment {
    /// A new version of the app from its repository.
    pub fn build(commit: Option<&str>) -> Self {
        Self {
            commit: commit.map(str::to_owned),
            kind: DeploymentKind::Deploy,
            reuse_image: None,
            port: None,
            created_by: "admin".into(),
        }
    }
}

/// An event in an app's life (deploys, scaling, health, crashes).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Event {
    /// When (RFC 3339).
    pub at: String,
    /// What kind: `deploy`, `release`, `rollback`, `scale`, `autoscale`, `replaced`, `crash_loop`...
    pub kind: String,
    /// What happened.
    pub message: String,
}

/// One state transition.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Transition {
    /// State entered.
    pub state: DeploymentState,
    /// When (RFC 3339).
    pub at: String,
    /// What happened.
    pub message: Option<String>,
}

/// Facts learned while deploying, written as they are known.
#[derive(Debug, Clone, Default)]
pub struct DeploymentFacts {
    /// Commit id and summary.
    pub commit: Option<(String, String)>,
    /// Framework id and evidence.
    pub framework: Option<(String, String)>,
    /// Image reference.
    pub image: Option<String>,
    /// Port the image listens on.
    pub port: Option<u16>,
}

fn state_of(raw: &str) -> StoreResult<DeploymentState> {
    DeploymentState::parse(raw).ok_or_else(|| StoreError::Corrupt(format!("unknown state {raw}")))
}

impl Store {
    fn deployment_from_row(&self, row: &sqlx::sqlite::SqliteRow) -> StoreResult<Deployment> {
        let app: String = row.try_get("app")?;
        let failed: Option<String> = row.try_get("failed_step")?;
        Ok(Deployment {
            id: row.try_get("id")?,
            app: AppName::parse(&app).map_err(|e| StoreError::Corrupt(e.message))?,
            number: row.try_get("number")?,
            state: state_of(row.try_get("state")?)?,
            failed_step: failed.as_deref().map(state_of).transpose()?,
            reason: row.try_get("reason")?,
            settings: self.open_settings(row.try_get::<&str, _>("settings")?)?,
            commit: row.try_get("commit_sha")?,
            commit_summary: row.try_get("commit_summary")?,
            framework: row.try_get("framework")?,
            evidence: row.try_get("evidence")?,
            image: row.try_get("image")?,
            kind: DeploymentKind::parse(row.try_get("kind")?)?,
            reuse_image: row.try_get("reuse_image")?,
            port: row
                .try_get::<Option<i64>, _>("port")?
                .and_then(|p| u16::try_from(p).ok()),
            release: row.try_get("release_number")?,
            created_by: row.try_get("created_by")?,
            created_at: row.try_get("created_at")?,
            updated_at: row.try_get("updated_at")?,
        })
    }
}

fn unix_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

async fn transition(
    tx: &mut Transaction<'_, Sqlite>,
    id: &str,
    state: DeploymentState,
    message: Option<&str>,
) -> StoreResult<()> {
    let at = now();
    sqlx::query("UPDATE deployments SET state = ?, updated_at = ? WHERE id = ?")
        .bind(state.as_str())
        .bind(&at)
        .bind(id)
        .execute(&mut **tx)
        .await?;
    sqlx::query("INSERT INTO deployment_transitions (deployment, state, at, message) VALUES (?, ?, ?, ?)")
        .bind(id)
        .bind(state.as_str())
        .bind(&at)
        .bind(message)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

async fn current_state(
    tx: &mut Transaction<'_, Sqlite>,
    id: &str,
) -> StoreResult<(DeploymentState, Option<String>)> {
    let row = sqlx::query("SELECT state, lease_owner FROM deployments WHERE id = ?")
        .bind(id)
        .fetch_optional(&mut **tx)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("deployment {id}")))?;
    Ok((state_of(row.try_get("state")?)?, row.try_get("lease_owner")?))
}

impl Store {
    /// Queues a deployment of `app` with a snapshot of `settings` (and the
    /// commit to build, when known). Older queued deployments of the app are
    /// cancelled as superseded in the same transaction.
    pub async fn enqueue(
        &self,
        app: &AppName,
        settings: &AppSettings,
        new: &NewDeployment,
    ) -> StoreResult<Deployment> {
        let id = uuid::Uuid::new_v4().to_string();
        let mut tx = self.writer.begin().await?;
        let number: i64 =
            sqlx::query_scalar("SELECT COALESCE(MAX(number), 0) + 1 FROM deployments WHERE app = ?")
                .bind(app.as_str())
                .fetch_one(&mut *tx)
                .await?;
        let at = now();
        sqlx::query(
            "INSERT INTO deployments (id, app, number, state, settings, commit_sha, kind, reuse_image, port, created_by, \
             created_at, updated_at) VALUES (?, ?, ?, 'queued', ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&id)
        .bind(app.as_str())
        .bind(number)
        .bind(self.seal_settings(settings))
        .bind(new.commit.as_deref())
        .bind(new.kind.as_str())
        .bind(new.reuse_image.as_deref())
        .bind(new.port.map(i64::from))
        .bind(&new.created_by)
        .bind(&at)
        .bind(&at)
        .execute(&mut *tx)
        .await?;
        transition(&mut tx, &id, DeploymentState::Queued, None).await?;
        let older: Vec<(String, i64)> = sqlx::query_as(
            "SELECT id, number FROM deployments WHERE app = ? AND state = 'queued' AND id != ?",
        )
        .bind(app.as_str())
        .bind(&id)
        .fetch_all(&mut *tx)
        .await?;
        for (old, old_number) in older {
            let reason = format!("superseded by deployment #{number} before it started");
            sqlx::query("UPDATE deployments SET reason = ? WHERE id = ?")
                .bind(&reason)
                .bind(&old)
                .execute(&mut *tx)
                .await?;
            transition(&mut tx, &old, DeploymentState::Cancelled, Some(&reason)).await?;
            tracing::info!(app = %app, deployment_id = %old, number = old_number, "queued deployment superseded");
        }
        tx.commit().await?;
        self.deployment(&id).await
    }

    /// Claims the oldest queued deployment whose app has nothing in flight,
    /// moving it to `preparing_tenant` under a lease held by `owner`.
    pub async fn claim(&self, owner: &str, lease_ms: i64) -> StoreResult<Option<Deployment>> {
        let mut tx = self.writer.begin().await?;
        let id: Option<String> = sqlx::query_scalar(
            "SELECT d.id FROM deployments d WHERE d.state = 'queued' AND NOT EXISTS ( \
               SELECT 1 FROM deployments o WHERE o.app = d.app AND o.state NOT IN \
               ('queued', 'live', 'failed', 'superseded', 'rolled_back', 'cancelled')) \
             ORDER BY d.rowid LIMIT 1",
        )
        .fetch_optional(&mut *tx)
        .await?;
        let Some(id) = id else { return Ok(None) };
        sqlx::query("UPDATE deployments SET lease_owner = ?, lease_until = ? WHERE id = ?")
            .bind(owner)
            .bind(unix_ms() + lease_ms)
            .bind(&id)
            .execute(&mut *tx)
            .await?;
        transition(&mut tx, &id, DeploymentState::PreparingTenant, None).await?;
        tx.commit().await?;
        self.deployment(&id).await.map(Some)
    }

    /// Extends the lease of a deployment `owner` is working on.
    pub async fn heartbeat(&self, id: &str, owner: &str, lease_ms: i64) -> StoreResult<()> {
        sqlx::query("UPDATE deployments SET lease_until = ? WHERE id = ? AND lease_owner = ?")
            .bind(unix_ms() + lease_ms)
            .bind(id)
            .bind(owner)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    /// Moves a deployment `owner` holds to its next state.
    pub async fn advance(
        &self,
        id: &str,
        owner: &str,
        to: DeploymentState,
        message: Option<&str>,
    ) -> StoreResult<()> {
        let mut tx = self.writer.begin().await?;
        let (state, lease) = current_state(&mut tx, id).await?;
        if lease.as_deref() != Some(owner) || !state.can_become(to) || to == DeploymentState::Live {
            return Err(StoreError::Stale(id.to_owned(), to.to_string()));
        }
        transition(&mut tx, id, to, message).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Records what was learned (commit, framework, image).
    pub async fn record(&self, id: &str, facts: &DeploymentFacts) -> StoreResult<()> {
        let mut tx = self.writer.begin().await?;
        if let Some((sha, summary)) = &facts.commit {
            sqlx::query("UPDATE deployments SET commit_sha = ?, commit_summary = ? WHERE id = ?")
                .bind(sha)
                .bind(summary)
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        if let Some((framework, evidence)) = &facts.framework {
            sqlx::query("UPDATE deployments SET framework = ?, evidence = ? WHERE id = ?")
                .bind(framework)
                .bind(evidence)
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        if let Some(port) = facts.port {
            sqlx::query("UPDATE deployments SET port = ? WHERE id = ?")
                .bind(i64::from(port))
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        if let Some(image) = &facts.image {
            sqlx::query("UPDATE deployments SET image = ? WHERE id = ?")
                .bind(image)
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Fails an in-flight deployment at its current step.
    pub async fn fail(&self, id: &str, owner: &str, reason: &str) -> StoreResult<()> {
        let mut tx = self.writer.begin().await?;
        let (state, lease) = current_state(&mut tx, id).await?;
        if lease.as_deref() != Some(owner) || !state.is_in_flight() {
            return Err(StoreError::Stale(id.to_owned(), "failed".into()));
        }
        sqlx::query("UPDATE deployments SET failed_step = ?, reason = ?, lease_owner = NULL, lease_until = NULL WHERE id = ?")
            .bind(state.as_str())
            .bind(reason)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        transition(&mut tx, id, DeploymentState::Failed, Some(reason)).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Makes a verified deployment live: the app's previous live deployment
    /// becomes superseded, in one transaction.
    pub async fn go_live(&self, id: &str, owner: &str) -> StoreResult<()> {
        let mut tx = self.writer.begin().await?;
        let (state, lease) = current_state(&mut tx, id).await?;
        if lease.as_deref() != Some(owner) || !state.can_become(DeploymentState::Live) {
            return Err(StoreError::Stale(id.to_owned(), "live".into()));
        }
        let (app, kind): (String, String) = sqlx::query_as("SELECT app, kind FROM deployments WHERE id = ?")
            .bind(id)
            .fetch_one(&mut *tx)
            .await?;
        let release: i64 =
            sqlx::query_scalar("SELECT COALESCE(MAX(release_number), 0) + 1 FROM deployments WHERE app = ?")
                .bind(&app)
                .fetch_one(&mut *tx)
                .await?;
        let (replaced_as, why) = if kind == "rollback" {
            (
                DeploymentState::RolledBack,
                format!("rolled back by release v{release}"),
            )
        } else {
            (
                DeploymentState::Superseded,
                format!("replaced by release v{release}"),
            )
        };
        let previous: Option<String> = sqlx::query_scalar("SELECT live_deployment FROM apps WHERE name = ?")
            .bind(&app)
            .fetch_one(&mut *tx)
            .await?;
        if let Some(previous) = previous.filter(|p| p != id) {
            transition(&mut tx, &previous, replaced_as, Some(&why)).await?;
        }
        sqlx::query(
            "UPDATE deployments SET lease_owner = NULL, lease_until = NULL, release_number = ? WHERE id = ?",
        )
        .bind(release)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        transition(
            &mut tx,
            id,
            DeploymentState::Live,
            Some(&format!("release v{release}")),
        )
        .await?;
        sqlx::query("UPDATE apps SET live_deployment = ?, updated_at = ? WHERE name = ?")
            .bind(id)
            .bind(now())
            .bind(&app)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// After a restart: every deployment that was in flight is failed at its
    /// step (the work it was doing is gone); returns their ids for cleanup.
    pub async fn fail_interrupted(&self) -> StoreResult<Vec<String>> {
        let mut tx = self.writer.begin().await?;
        let rows: Vec<(String, String)> = sqlx::query_as(
            "SELECT id, state FROM deployments WHERE state IN \
             ('preparing_tenant','fetching_source','detecting','generating_pipeline','building','pushing','releasing','verifying')",
        )
        .fetch_all(&mut *tx)
        .await?;
        for (id, state) in &rows {
            let step = state_of(state)?;
            let reason = format!("the server stopped while {}; deploy again", step.label());
            sqlx::query("UPDATE deployments SET failed_step = ?, reason = ?, lease_owner = NULL, lease_until = NULL WHERE id = ?")
                .bind(state)
                .bind(&reason)
                .bind(id)
                .execute(&mut *tx)
                .await?;
            transition(&mut tx, id, DeploymentState::Failed, Some(&reason)).await?;
        }
        tx.commit().await?;
        Ok(rows.into_iter().map(|(id, _)| id).collect())
    }

    /// Cancels a queued deployment (a user asked, or it is no longer wanted).
    pub async fn cancel_queued(&self, id: &str, reason: &str) -> StoreResult<bool> {
        let mut tx = self.writer.begin().await?;
        let (state, _) = current_state(&mut tx, id).await?;
        if state != DeploymentState::Queued {
            return Ok(false);
        }
        sqlx::query("UPDATE deployments SET reason = ? WHERE id = ?")
            .bind(reason)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        transition(&mut tx, id, DeploymentState::Cancelled, Some(reason)).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// One deployment.
    pub async fn deployment(&self, id: &str) -> StoreResult<Deployment> {
        let row = sqlx::query("SELECT * FROM deployments WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("deployment {id}")))?;
        self.deployment_from_row(&row)
    }

    /// An app's deployments, newest first.
    pub async fn deployments(&self, app: &AppName, limit: i64) -> StoreResult<Vec<Deployment>> {
        let rows = sqlx::query("SELECT * FROM deployments WHERE app = ? ORDER BY number DESC LIMIT ?")
            .bind(app.as_str())
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|r| self.deployment_from_row(r)).collect()
    }

    /// Every deployment currently live, one per app.
    pub async fn live_deployments(&self) -> StoreResult<Vec<Deployment>> {
        let rows = sqlx::query(
            "SELECT d.* FROM deployments d JOIN apps a ON a.live_deployment = d.id ORDER BY d.app",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| self.deployment_from_row(r)).collect()
    }

    /// The app's releases (deployments that went live), newest first.
    pub async fn releases(&self, app: &AppName, limit: i64) -> StoreResult<Vec<Deployment>> {
        let rows = sqlx::query(
            "SELECT * FROM deployments WHERE app = ? AND release_number IS NOT NULL ORDER BY release_number DESC LIMIT ?",
        )
        .bind(app.as_str())
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| self.deployment_from_row(r)).collect()
    }

    /// Release `number` of the app.
    pub async fn release(&self, app: &AppName, number: i64) -> StoreResult<Deployment> {
        let row = sqlx::query("SELECT * FROM deployments WHERE app = ? AND release_number = ?")
            .bind(app.as_str())
            .bind(number)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("release v{number} of '{app}'")))?;
        self.deployment_from_row(&row)
    }

    /// Ids of every deployment that is queued, in flight or live.
    pub async fn active_deployment_ids(&self) -> StoreResult<Vec<String>> {
        Ok(sqlx::query_scalar(
            "SELECT id FROM deployments WHERE state NOT IN ('failed', 'superseded', 'rolled_back', 'cancelled')",
        )
        .fetch_all(&self.pool)
        .await?)
    }

    /// Whether the app has a deployment in flight (claimed, not ended).
    pub async fn has_in_flight(&self, app: &AppName) -> StoreResult<bool> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM deployments WHERE app = ? AND state NOT IN \
             ('queued', 'live', 'failed', 'superseded', 'rolled_back', 'cancelled')",
        )
        .bind(app.as_str())
        .fetch_one(&self.pool)
        .await?;
        Ok(n > 0)
    }

    /// Records an event in the app's life.
    pub async fn add_event(&self, app: &AppName, kind: &str, message: &str) -> StoreResult<()> {
        sqlx::query("INSERT INTO events (app, at, kind, message) VALUES (?, ?, ?, ?)")
            .bind(app.as_str())
            .bind(now())
            .bind(kind)
            .bind(message)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    /// The app's most recent events, newest first.
    pub async fn events(&self, app: &AppName, limit: i64) -> StoreResult<Vec<Event>> {
        let rows: Vec<(String, String, String)> =
            sqlx::query_as("SELECT at, kind, message FROM events WHERE app = ? ORDER BY id DESC LIMIT ?")
                .bind(app.as_str())
                .bind(limit)
                .fetch_all(&self.pool)
                .await?;
        Ok(rows
            .into_iter()
            .map(|(at, kind, message)| Event { at, kind, message })
            .collect())
    }

    /// A deployment's state history, oldest first.
    pub async fn transitions(&self, id: &str) -> StoreResult<Vec<Transition>> {
        let rows: Vec<(String, String, Option<String>)> = sqlx::query_as(
            "SELECT state, at, message FROM deployment_transitions WHERE deployment = ? ORDER BY id",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|(state, at, message)| {
                Ok(Transition {
                    state: state_of(&state)?,
                    at,
                    message,
                })
            })
            .collect()
    }
}
