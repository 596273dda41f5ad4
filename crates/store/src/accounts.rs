//! Accounts: users (each its own tenant), API tokens (stored as digests),
//! teams (each a tenant too) with members and roles, and the apps a user
//! may see.

use crate::{now, App, Store, StoreError, StoreResult};
use serde::Serialize;
use sqlx::Row;

/// What a member may do with a tenant's apps; ordered from least to most.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Reads status, logs, metrics.
    Viewer,
    /// Also deploys, rolls back, scales and sets env vars.
    Deployer,
    /// Also deletes apps and manages members.
    Owner,
}

impl Role {
    /// Parses `viewer`, `deployer` or `owner`.
    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "viewer" => Some(Self::Viewer),
            "deployer" => Some(Self::Deployer),
            "owner" => Some(Self::Owner),
            _ => None,
        }
    }
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Viewer => "viewer",
            Self::Deployer => "deployer",
            Self::Owner => "owner",
        }
    }
}

/// A user.
#[derive(Debug, Clone, Serialize)]
pub struct User {
    /// Stable id.
    pub id: String,
    /// Sign-in email (unique, case-insensitive).
    pub email: String,
    /// Argon2id hash (PHC string); `None` for GitHub-only accounts.
    #[serde(skip)]
    pub password_hash: Option<String>,
    /// Platform administrator (sees and manages everything).
    pub admin: bool,
    /// The tenant of the user's own apps.
    pub tenant: String,
    /// Linked GitHub login.
    pub github_login: Option<String>,
    /// When the account was made.
    pub created_at: String,
}

/// An API token, without its secret.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TokenInfo {
    /// Id (the part of the token before its secret).
    pub id: String,
    /// What it is for (`cli`, `github`...).
    pub label: String,
    /// When it was made.
    pub created_at: String,
    /// When it was last used.
    pub last_used_at: Option<String>,
}

/// A team.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Team {
    /// Stable id.
    #[serde(skip)]
    pub id: String,
    /// Unique name.
    pub name: String,
    /// The tenant of the team's apps.
    pub tenant: String,
    /// When it was made.
    pub created_at: String,
}

/// A team member.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Member {
    /// The member's email.
    pub email: String,
    /// The member's role.
    pub role: Role,
}

fn user_from_row(row: &sqlx::sqlite::SqliteRow) -> StoreResult<User> {
    Ok(User {
        id: row.try_get("id")?,
        email: row.try_get("email")?,
        password_hash: row.try_get("password_hash")?,
        admin: row.try_get::<i64, _>("admin")? != 0,
        tenant: row.try_get("tenant")?,
        github_login: row.try_get("github_login")?,
        created_at: row.try_get("created_at")?,
    })
}

fn team_from_row(row: &sqlx::sqlite::SqliteRow) -> StoreResult<Team> {
    Ok(Team {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        tenant: row.try_get("tenant")?,
        created_at: row.try_get("created_at")?,
    })
}

fn role_of(raw: &str) -> StoreResult<Role> {
    Role::parse(raw).ok_or_else(|| StoreError::Corrupt(format!("unknown role {raw}")))
}

/// A short random id: `prefix` and 12 hex characters (a DNS-label-safe tenant name).
fn short_id(prefix: &str) -> String {
    let bytes: [u8; 6] = rand::random();
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("{prefix}{hex}")
}

impl Store {
    /// Creates a user with its own tenant; `Conflict` when the email is taken.
    pub async fn create_user(
        &self,
        email: &str,
        password_hash: Option<&str>,
        admin: bool,
    ) -> StoreResult<User> {
        let id = short_id("u");
        self.insert_user(&id, email, password_hash, admin, &id).await
    }

    async fn insert_user(
        &self,
        id: &str,
        email: &str,
        password_hash: Option<&str>,
        admin: bool,
        tenant: &str,
    ) -> StoreResult<User> {
        let done = sqlx::query(
            "INSERT INTO users (id, email, password_hash, admin, tenant, created_at) VALUES (?, ?, ?, ?, ?, ?) \
             ON CONFLICT DO NOTHING",
        )
        .bind(id)
        .bind(email)
        .bind(password_hash)
        .bind(admin as i64)
        .bind(tenant)
        .bind(now())
        .execute(&self.writer)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::Conflict(
                "an account with this email already exists; sign in instead".into(),
            ));
        }
        self.user(id).await
    }

    /// The platform administrator (tenant `default`, which owns apps made
    /// before accounts existed), created on first use.
    pub async fn ensure_admin(&self, email: &str) -> StoreResult<User> {
        if let Some(row) = sqlx::query("SELECT * FROM users WHERE tenant = 'default'")
            .fetch_optional(&self.pool)
            .await?
        {
            return user_from_row(&row);
        }
        self.insert_user("admin", email, None, true, "default").await
    }

    /// One user.
    pub async fn user(&self, id: &str) -> StoreResult<User> {
        let row = sqlx::query("SELECT * FROM users WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| StoreError::NotFound("user".into()))?;
        user_from_row(&row)
    }

    /// The user with this email (case-insensitive), if any.
    pub async fn user_by_email(&self, email: &str) -> StoreResult<Option<User>> {
        let row = sqlx::query("SELECT * FROM users WHERE email = ?")
            .bind(email)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(user_from_row).transpose()
    }

    /// The user linked to a GitHub account id, if any.
    pub async fn user_by_github(&self, github_id: i64) -> StoreResult<Option<User>> {
        let row = sqlx::query("SELECT * FROM users WHERE github_id = ?")
            .bind(github_id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(user_from_row).transpose()
    }

    /// Links a GitHub account to a user and keeps its access token (sealed).
    pub async fn link_github(&self, user: &str, github_id: i64, login: &str, token: &str) -> StoreResult<()> {
        sqlx::query("UPDATE users SET github_id = ?, github_login = ?, github_token = ? WHERE id = ?")
            .bind(github_id)
            .bind(login)
            .bind(self.key.seal("github_token", token))
            .bind(user)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    /// A user's GitHub access token, if linked.
    pub async fn github_token(&self, user: &str) -> StoreResult<Option<String>> {
        let sealed: Option<Option<String>> =
            sqlx::query_scalar("SELECT github_token FROM users WHERE id = ?")
                .bind(user)
                .fetch_optional(&self.pool)
                .await?;
        sealed
            .flatten()
            .map(|s| self.key.open("github_token", &s))
            .transpose()
    }

    /// Records a token (by the SHA-256 digest of its secret) for a user.
    pub async fn add_token(&self, user: &str, id: &str, label: &str, digest: &str) -> StoreResult<TokenInfo> {
        sqlx::query(
            "INSERT INTO api_tokens (id, user_id, digest, label, created_at) VALUES (?, ?, ?, ?, ?) \
             ON CONFLICT (id) DO UPDATE SET user_id = excluded.user_id, digest = excluded.digest",
        )
        .bind(id)
        .bind(user)
        .bind(digest)
        .bind(label)
        .bind(now())
        .execute(&self.writer)
        .await?;
        Ok(TokenInfo {
            id: id.to_owned(),
            label: label.to_owned(),
            created_at: now(),
            last_used_at: None,
        })
    }

    /// The digest and owner of a token id, if it exists.
    pub async fn token_digest(&self, id: &str) -> StoreResult<Option<(String, String)>> {
        let row = sqlx::query("SELECT user_id, digest FROM api_tokens WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| Ok((r.try_get("user_id")?, r.try_get("digest")?)))
            .transpose()
    }

    /// Notes that a token was used (at most once a minute, to spare the writer).
    pub async fn touch_token(&self, id: &str) -> StoreResult<()> {
        let minute_ago = (chrono::Utc::now() - chrono::Duration::minutes(1))
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        sqlx::query(
            "UPDATE api_tokens SET last_used_at = ? WHERE id = ? AND (last_used_at IS NULL OR last_used_at < ?)",
        )
        .bind(now())
        .bind(id)
        .bind(minute_ago)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    /// A user's tokens, newest first.
    pub async fn tokens(&self, user: &str) -> StoreResult<Vec<TokenInfo>> {
        let rows = sqlx::query("SELECT * FROM api_tokens WHERE user_id = ? ORDER BY created_at DESC, id")
            .bind(user)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(TokenInfo {
                    id: r.try_get("id")?,
                    label: r.try_get("label")?,
                    created_at: r.try_get("created_at")?,
                    last_used_at: r.try_get("last_used_at")?,
                })
            })
            .collect()
    }

    /// Revokes one of a user's tokens; false when the user has no such token.
    pub async fn delete_token(&self, user: &str, id: &str) -> StoreResult<bool> {
        let done = sqlx::query("DELETE FROM api_tokens WHERE id = ? AND user_id = ?")
            .bind(id)
            .bind(user)
            .execute(&self.writer)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Creates a team owned by `owner`; `Conflict` when the name is taken.
    pub async fn create_team(&self, name: &str, owner: &str) -> StoreResult<Team> {
        let id = short_id("t");
        let mut tx = self.writer.begin().await?;
        let done = sqlx::query(
            "INSERT INTO teams (id, name, tenant, created_at) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
        )
        .bind(&id)
        .bind(name)
        .bind(&id)
        .bind(now())
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::Conflict(format!(
                "the team name '{name}' is already taken"
            )));
        }
        sqlx::query("INSERT INTO team_members (team, user_id, role, added_at) VALUES (?, ?, 'owner', ?)")
            .bind(&id)
            .bind(owner)
            .bind(now())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        self.team(name)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("team '{name}'")))
    }

    /// A team by name.
    pub async fn team(&self, name: &str) -> StoreResult<Option<Team>> {
        let row = sqlx::query("SELECT * FROM teams WHERE name = ?")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(team_from_row).transpose()
    }

    /// The teams a user belongs to, with the user's role in each.
    pub async fn teams_of(&self, user: &str) -> StoreResult<Vec<(Team, Role)>> {
        let rows = sqlx::query(
            "SELECT teams.*, team_members.role FROM teams JOIN team_members ON team_members.team = teams.id \
             WHERE team_members.user_id = ? ORDER BY teams.name",
        )
        .bind(user)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((team_from_row(r)?, role_of(r.try_get("role")?)?)))
            .collect()
    }

    /// A team's members.
    pub async fn members(&self, team: &Team) -> StoreResult<Vec<Member>> {
        let rows = sqlx::query(
            "SELECT users.email, team_members.role FROM team_members JOIN users ON users.id = team_members.user_id \
             WHERE team_members.team = ? ORDER BY users.email",
        )
        .bind(&team.id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Member {
                    email: r.try_get("email")?,
                    role: role_of(r.try_get("role")?)?,
                })
            })
            .collect()
    }

    /// Adds a member or changes their role. Refuses to leave the team without an owner.
    pub async fn set_member(&self, team: &Team, user: &str, role: Role) -> StoreResult<()> {
        let mut tx = self.writer.begin().await?;
        sqlx::query(
            "INSERT INTO team_members (team, user_id, role, added_at) VALUES (?, ?, ?, ?) \
             ON CONFLICT (team, user_id) DO UPDATE SET role = excluded.role",
        )
        .bind(&team.id)
        .bind(user)
        .bind(role.as_str())
        .bind(now())
        .execute(&mut *tx)
        .await?;
        Self::keep_an_owner(&mut tx, team).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Removes a member; false when they were not one. Refuses to remove the last owner.
    pub async fn remove_member(&self, team: &Team, user: &str) -> StoreResult<bool> {
        let mut tx = self.writer.begin().await?;
        let done = sqlx::query("DELETE FROM team_members WHERE team = ? AND user_id = ?")
            .bind(&team.id)
            .bind(user)
            .execute(&mut *tx)
            .await?;
        Self::keep_an_owner(&mut tx, team).await?;
        tx.commit().await?;
        Ok(done.rows_affected() == 1)
    }

    async fn keep_an_owner(tx: &mut sqlx::SqliteConnection, team: &Team) -> StoreResult<()> {
        let owners: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM team_members WHERE team = ? AND role = 'owner'")
                .bind(&team.id)
                .fetch_one(&mut *tx)
                .await?;
        if owners == 0 {
            return Err(StoreError::Conflict(format!(
                "team '{}' would have no owner left; make someone else owner first",
                team.name
            )));
        }
        Ok(())
    }

    /// What `user` may do with the apps of `tenant`: `None` when nothing
    /// (the apps must then look like they do not exist).
    pub async fn role_in_tenant(&self, user: &User, tenant: &str) -> StoreResult<Option<Role>> {
        if user.admin || user.tenant == tenant {
            return Ok(Some(Role::Owner));
        }
        let role: Option<String> = sqlx::query_scalar(
            "SELECT team_members.role FROM team_members JOIN teams ON teams.id = team_members.team \
             WHERE teams.tenant = ? AND team_members.user_id = ?",
        )
        .bind(tenant)
        .bind(&user.id)
        .fetch_optional(&self.pool)
        .await?;
        role.as_deref().map(role_of).transpose()
    }

    /// The apps a user may see: their own, their teams', every app for an admin.
    pub async fn apps_visible_to(&self, user: &User) -> StoreResult<Vec<App>> {
        let apps = self.apps().await?;
        if user.admin {
            return Ok(apps);
        }
        let mut tenants = vec![user.tenant.clone()];
        tenants.extend(self.teams_of(&user.id).await?.into_iter().map(|(t, _)| t.tenant));
        Ok(apps.into_iter().filter(|a| tenants.contains(&a.tenant)).collect())
    }

    /// Remembers an OAuth `state` for ten minutes.
    pub async fn put_oauth_state(&self, state: &str) -> StoreResult<()> {
        let at = chrono::Utc::now().timestamp();
        sqlx::query("DELETE FROM oauth_states WHERE created_at < ?")
            .bind(at - 600)
            .execute(&self.writer)
            .await?;
        sqlx::query("INSERT INTO oauth_states (state, created_at) VALUES (?, ?)")
            .bind(state)
            .bind(at)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    /// Consumes an OAuth `state`: true once for a state made in the last ten minutes.
    pub async fn take_oauth_state(&self, state: &str) -> StoreResult<bool> {
        let done = sqlx::query("DELETE FROM oauth_states WHERE state = ? AND created_at >= ?")
            .bind(state)
            .bind(chrono::Utc::now().timestamp() - 600)
            .execute(&self.writer)
            .await?;
        Ok(done.rows_affected() == 1)
    }
}
