//! Repositories on GitHub, read with the caller's GitHub token (stored
//! sealed at sign-in): browse repositories, branches, commits and folders,
//! analyze a folder without cloning it, and connect apps (push hook,
//! credentials to clone, commit statuses).

use crate::auth::Caller;
use crate::catalog::Analysis;
use crate::{ApiError, ApiState};
use async_trait::async_trait;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use easydeploy_core::framework::{detect_files, MemoryFiles, MANIFESTS};
use easydeploy_core::ports::{
    BackendError, BackendResult, CommitState, CommitStatus, SourceCredentials, SourceHost,
};
use easydeploy_core::{AppName, Branch, Framework, RootDir};
use easydeploy_github::{Contents, GithubClient, GithubError, NewStatus};
use easydeploy_store::Store;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

type ErrorBody = crate::error::ErrorBody;

/// Context of the commit statuses Easy Deploy posts.
pub const STATUS_CONTEXT: &str = "easydeploy/deploy";

/// User name GitHub expects with a token over HTTPS.
const TOKEN_USER: &str = "x-access-token";

/// Sub-folders listed during analysis (Django projects, `app/main.py`).
const MAX_FOLDERS: usize = 20;

impl From<GithubError> for ApiError {
    fn from(e: GithubError) -> Self {
        match e {
            GithubError::Unauthorized(_) => ApiError::new(
                StatusCode::UNAUTHORIZED,
                "github_token_invalid",
                "GitHub refused your token (revoked or expired); sign in with GitHub again at /auth/github/login",
            ),
            GithubError::NotFound(_) => ApiError::new(
                StatusCode::NOT_FOUND,
                "github_not_found",
                "GitHub has no such repository, branch or path, or your GitHub account cannot see it",
            ),
            GithubError::Forbidden(message) => ApiError::new(
                StatusCode::FORBIDDEN,
                "github_forbidden",
                format!("GitHub refused: {message}; check your rights on the repository"),
            ),
            GithubError::RateLimited { reset, retry_after } => {
                let when = match (reset, retry_after) {
                    (_, Some(secs)) => format!("retry in {secs} s"),
                    (Some(reset), None) => chrono::DateTime::from_timestamp(reset, 0)
                        .map(|t| format!("it resets at {}", t.to_rfc3339()))
                        .unwrap_or_else(|| "retry later".into()),
                    (None, None) => "retry later".into(),
                };
                ApiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "github_rate_limited",
                    format!("GitHub's rate limit for your account is used up; {when}"),
                )
            }
            GithubError::Invalid(message) => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "github_refused", message)
            }
            GithubError::Unavailable(message) => {
                tracing::warn!(error = %message, "GitHub call failed");
                ApiError::new(
                    StatusCode::BAD_GATEWAY,
                    "github_unavailable",
                    "GitHub could not be reached or answered unexpectedly; try again",
                )
            }
        }
    }
}

/// A client of the configured GitHub API.
pub(crate) fn client(state: &ApiState) -> Result<GithubClient, ApiError> {
    let github = state.github.as_deref().ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "github_not_configured",
            "GitHub is off on this server: it needs EASYDEPLOY_GITHUB_CLIENT_ID and EASYDEPLOY_GITHUB_CLIENT_SECRET",
        )
    })?;
    GithubClient::new(&github.api_url).map_err(ApiError::internal)
}

fn not_linked() -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        "github_not_linked",
        "your account has no GitHub access; sign in with GitHub first at /auth/github/login",
    )
}

/// The caller's GitHub token.
pub(crate) async fn token(state: &ApiState, caller: &Caller) -> Result<String, ApiError> {
    state
        .engine
        .store()
        .github_token(&caller.user.id)
        .await?
        .ok_or_else(not_linked)
}

/// A repository owner: 1 to 39 letters, digits and single dashes, not at either end.
pub(crate) fn owner_name(raw: &str) -> Result<String, ApiError> {
    let ok = (1..=39).contains(&raw.len())
        && raw
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        && !raw.starts_with('-');
    ok.then(|| raw.to_owned()).ok_or_else(|| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_github_owner",
            format!(
                "'{}' is not a GitHub user or organisation name",
                raw.escape_debug()
            ),
        )
    })
}

/// A repository name: 1 to 100 letters, digits, `.`, `-` and `_`, not `.` or `..`.
pub(crate) fn repo_name(raw: &str) -> Result<String, ApiError> {
    let raw = raw.strip_suffix(".git").unwrap_or(raw);
    let ok = (1..=100).contains(&raw.len())
        && raw
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        && raw != "."
        && raw != "..";
    ok.then(|| raw.to_owned()).ok_or_else(|| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_github_repo",
            format!("'{}' is not a GitHub repository name", raw.escape_debug()),
        )
    })
}

fn branch_name(raw: &str) -> Result<Branch, ApiError> {
    Ok(Branch::parse(raw)?)
}

/// `owner/repo` → the two names, validated.
pub(crate) fn full_name(raw: &str) -> Result<(String, String), ApiError> {
    let (owner, repo) = raw.split_once('/').ok_or_else(|| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_github_repo",
            "give the GitHub repository as owner/repo",
        )
    })?;
    Ok((owner_name(owner)?, repo_name(repo)?))
}

/// The owner and repository of a GitHub web URL (`https://github.com/o/r(.git)`,
/// or on the host of `web_url`, the configured GitHub), if `source` is one.
pub(crate) fn github_repo_of(web_url: Option<&str>, source: &str) -> Option<(String, String)> {
    let url = url::Url::parse(source).ok()?;
    if !matches!(url.scheme(), "https" | "http") || !url.username().is_empty() || url.password().is_some() {
        return None;
    }
    let host = url.host_str()?.to_ascii_lowercase();
    let configured = web_url
        .and_then(|w| url::Url::parse(w).ok())
        .and_then(|u| u.host_str().map(str::to_ascii_lowercase));
    if host != "github.com" && Some(&host) != configured.as_ref() {
        return None;
    }
    let mut parts = url.path_segments()?.filter(|p| !p.is_empty());
    let (owner, repo) = (parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    Some((owner_name(owner).ok()?, repo_name(repo).ok()?))
}

/// A repository.
#[derive(Debug, Serialize, ToSchema)]
pub struct RepoView {
    /// `owner/name`.
    pub full_name: String,
    /// Owner login.
    pub owner: String,
    /// Name.
    pub name: String,
    /// Private repository.
    pub private: bool,
    /// Default branch.
    pub default_branch: String,
    /// Description.
    pub description: Option<String>,
    /// Web page.
    pub html_url: String,
    /// HTTPS clone URL.
    pub clone_url: String,
    /// Last push.
    pub pushed_at: Option<String>,
    /// Archived (read-only).
    pub archived: bool,
}

impl From<easydeploy_github::Repo> for RepoView {
    fn from(r: easydeploy_github::Repo) -> Self {
        Self {
            full_name: r.full_name,
            owner: r.owner.login,
            name: r.name,
            private: r.private,
            default_branch: r.default_branch,
            description: r.description,
            html_url: r.html_url,
            clone_url: r.clone_url,
            pushed_at: r.pushed_at,
            archived: r.archived,
        }
    }
}

/// One page of repositories.
#[derive(Debug, Serialize, ToSchema)]
pub struct RepoPage {
    /// The repositories.
    pub repos: Vec<RepoView>,
    /// The next page's number, when there is one.
    pub next_page: Option<u32>,
}

/// Which page.
#[derive(Debug, Deserialize, IntoParams)]
pub struct PageQuery {
    /// Page number, from 1 (100 repositories a page).
    pub page: Option<u32>,
}

/// The repositories the caller's GitHub account owns, collaborates on or
/// reaches through its organisations, most recently updated first.
#[utoipa::path(get, path = "/api/v1/github/repos", tag = "github", params(PageQuery),
    responses((status = 200, body = RepoPage), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody), (status = 429, body = ErrorBody), (status = 502, body = ErrorBody)))]
pub async fn repos(
    State(state): State<ApiState>,
    caller: Caller,
    Query(q): Query<PageQuery>,
) -> Result<Json<RepoPage>, ApiError> {
    let client = client(&state)?;
    let token = token(&state, &caller).await?;
    let page = client.repos(&token, q.page.unwrap_or(1).clamp(1, 10_000)).await?;
    Ok(Json(RepoPage {
        repos: page.items.into_iter().map(RepoView::from).collect(),
        next_page: page.next_page,
    }))
}

/// A repository: metadata, default branch, visibility.
#[utoipa::path(get, path = "/api/v1/github/repos/{owner}/{repo}", tag = "github",
    params(("owner" = String, Path), ("repo" = String, Path)),
    responses((status = 200, body = RepoView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 429, body = ErrorBody),
              (status = 502, body = ErrorBody)))]
pub async fn repo(
    State(state): State<ApiState>,
    caller: Caller,
    Path((owner, repo)): Path<(String, String)>,
) -> Result<Json<RepoView>, ApiError> {
    let (owner, repo) = (owner_name(&owner)?, repo_name(&repo)?);
    let client = client(&state)?;
    let token = token(&state, &caller).await?;
    Ok(Json(client.repo(&token, &owner, &repo).await?.into()))
}

/// A branch and its head commit.
#[derive(Debug, Serialize, ToSchema)]
pub struct BranchView {
    /// Name.
    pub name: String,
    /// Head commit sha.
    pub commit: String,
    /// Protected branch.
    pub protected: bool,
}

/// A repository's branches.
#[utoipa::path(get, path = "/api/v1/github/repos/{owner}/{repo}/branches", tag = "github",
    params(("owner" = String, Path), ("repo" = String, Path)),
    responses((status = 200, body = [BranchView]), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 429, body = ErrorBody),
              (status = 502, body = ErrorBody)))]
pub async fn branches(
    State(state): State<ApiState>,
    caller: Caller,
    Path((owner, repo)): Path<(String, String)>,
) -> Result<Json<Vec<BranchView>>, ApiError> {
    let (owner, repo) = (owner_name(&owner)?, repo_name(&repo)?);
    let client = client(&state)?;
    let token = token(&state, &caller).await?;
    let branches = client.branches(&token, &owner, &repo).await?;
    Ok(Json(
        branches
            .into_iter()
            .map(|b| BranchView {
                name: b.name,
                commit: b.commit.sha,
                protected: b.protected,
            })
            .collect(),
    ))
}

/// A branch's latest commit.
#[derive(Debug, Serialize, ToSchema)]
pub struct CommitView {
    /// Full sha.
    pub sha: String,
    /// Message.
    pub message: String,
    /// Author name (or GitHub login).
    pub author: Option<String>,
    /// Author's GitHub login, when known.
    pub author_login: Option<String>,
    /// Author date (ISO 8601).
    pub date: Option<String>,
    /// Web page.
    pub html_url: Option<String>,
}

/// The latest commit of a branch (percent-encode `/` in branch names).
#[utoipa::path(get, path = "/api/v1/github/repos/{owner}/{repo}/commits/{branch}", tag = "github",
    params(("owner" = String, Path), ("repo" = String, Path), ("branch" = String, Path)),
    responses((status = 200, body = CommitView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 429, body = ErrorBody),
              (status = 502, body = ErrorBody)))]
pub async fn commit(
    State(state): State<ApiState>,
    caller: Caller,
    Path((owner, repo, branch)): Path<(String, String, String)>,
) -> Result<Json<CommitView>, ApiError> {
    let (owner, repo, branch) = (owner_name(&owner)?, repo_name(&repo)?, branch_name(&branch)?);
    let client = client(&state)?;
    let token = token(&state, &caller).await?;
    let c = client.commit(&token, &owner, &repo, branch.as_str()).await?;
    let author = c.commit.author.as_ref();
    Ok(Json(CommitView {
        sha: c.sha,
        message: c.commit.message.clone(),
        author: author
            .and_then(|a| a.name.clone())
            .or_else(|| c.author.as_ref().map(|a| a.login.clone())),
        author_login: c.author.map(|a| a.login),
        date: author.and_then(|a| a.date.clone()),
        html_url: c.html_url,
    }))
}

/// A folder entry.
#[derive(Debug, Serialize, ToSchema)]
pub struct EntryView {
    /// Name.
    pub name: String,
    /// Path from the repository's top.
    pub path: String,
    /// `file`, `dir`, `symlink` or `submodule`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Size in bytes (files).
    pub size: u64,
}

/// Which folder.
#[derive(Debug, Deserialize, IntoParams)]
pub struct TreeQuery {
    /// Folder from the repository's top (empty: the top).
    pub path: Option<String>,
}

fn folder(raw: Option<&str>) -> Result<RootDir, ApiError> {
    let raw = raw.unwrap_or("");
    if raw.starts_with('/') || raw.contains('\\') {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_root",
            "give the folder relative to the repository's top, with '/' between names",
        ));
    }
    Ok(RootDir::parse(raw)?)
}

/// A folder of a branch (to choose the app's root folder), folders first.
#[utoipa::path(get, path = "/api/v1/github/repos/{owner}/{repo}/tree/{branch}", tag = "github",
    params(("owner" = String, Path), ("repo" = String, Path), ("branch" = String, Path), TreeQuery),
    responses((status = 200, body = [EntryView]), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody),
              (status = 429, body = ErrorBody), (status = 502, body = ErrorBody)))]
pub async fn tree(
    State(state): State<ApiState>,
    caller: Caller,
    Path((owner, repo, branch)): Path<(String, String, String)>,
    Query(q): Query<TreeQuery>,
) -> Result<Json<Vec<EntryView>>, ApiError> {
    let (owner, repo, branch) = (owner_name(&owner)?, repo_name(&repo)?, branch_name(&branch)?);
    let path = folder(q.path.as_deref())?;
    let client = client(&state)?;
    let token = token(&state, &caller).await?;
    match client
        .contents(&token, &owner, &repo, path.as_str(), branch.as_str())
        .await?
    {
        Contents::Folder(entries) => {
            let mut entries: Vec<EntryView> = entries
                .into_iter()
                .map(|e| EntryView {
                    name: e.name,
                    path: e.path,
                    kind: e.kind,
                    size: e.size,
                })
                .collect();
            entries.sort_by(|a, b| (a.kind != "dir", &a.name).cmp(&(b.kind != "dir", &b.name)));
            Ok(Json(entries))
        }
        Contents::File(_) => Err(not_a_folder(&path)),
    }
}

fn not_a_folder(path: &RootDir) -> ApiError {
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "not_a_folder",
        format!("'{path}' is a file, not a folder"),
    )
}

/// What to analyze.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AnalyzeRepo {
    /// Branch (default: the repository's default branch).
    pub branch: Option<String>,
    /// Folder of the app (default: the top).
    pub root: Option<String>,
    /// Framework to use instead of detection.
    pub framework: Option<String>,
}

/// Detects the framework of a folder of a branch from the files the
/// catalog needs, read through GitHub's contents API (nothing is cloned).
#[utoipa::path(post, path = "/api/v1/github/repos/{owner}/{repo}/analyze", tag = "github",
    params(("owner" = String, Path), ("repo" = String, Path)), request_body = AnalyzeRepo,
    responses((status = 200, body = Analysis), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody),
              (status = 429, body = ErrorBody), (status = 502, body = ErrorBody)))]
pub async fn analyze(
    State(state): State<ApiState>,
    caller: Caller,
    Path((owner, repo)): Path<(String, String)>,
    crate::apps::JsonBody(body): crate::apps::JsonBody<AnalyzeRepo>,
) -> Result<Json<Analysis>, ApiError> {
    let (owner, repo) = (owner_name(&owner)?, repo_name(&repo)?);
    let root = folder(body.root.as_deref())?;
    let framework = match body.framework.as_deref() {
        None | Some("") | Some("auto") => None,
        Some(f) => Some(Framework::parse(f)?),
    };
    let client = client(&state)?;
    let token = token(&state, &caller).await?;
    let branch = match body.branch.as_deref() {
        Some(b) => branch_name(b)?,
        None => branch_name(&client.repo(&token, &owner, &repo).await?.default_branch)?,
    };
    // Pin the commit so every file is read from the same one.
    let commit = client.commit(&token, &owner, &repo, branch.as_str()).await?.sha;
    let files = read_folder(&client, &token, &owner, &repo, &commit, &root).await?;
    let detection = detect_files(&files, &root, framework)
        .map_err(|e| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, e.code(), e.to_string()))?;
    Ok(Json(Analysis { commit, detection }))
}

/// The entries of the app's folder, the content of the manifests detection
/// reads, and the files of sub-folders where the catalog looks (Django
/// projects, `app/main.py`).
async fn read_folder(
    client: &GithubClient,
    token: &str,
    owner: &str,
    repo: &str,
    commit: &str,
    root: &RootDir,
) -> Result<MemoryFiles, ApiError> {
    let list = |path: String| async move {
        match client.contents(token, owner, repo, &path, commit).await {
            Ok(Contents::Folder(entries)) => Ok(entries),
            Ok(Contents::File(_)) => Err(not_a_folder(root)),
            Err(GithubError::NotFound(_)) => Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "root_not_found",
                format!("the root folder '{root}' does not exist in the repository"),
            )),
            Err(e) => Err(e.into()),
        }
    };
    let join = |name: &str| {
        if root.is_root() {
            name.to_owned()
        } else {
            format!("{root}/{name}")
        }
    };
    let mut files = MemoryFiles::new();
    let entries = list(root.as_str().to_owned()).await?;
    let mut folders = Vec::new();
    for entry in &entries {
        match entry.kind.as_str() {
            "file" => {
                let text = if MANIFESTS.contains(&entry.name.as_str()) && entry.size <= 1024 * 1024 {
                    match client
                        .contents(token, owner, repo, &join(&entry.name), commit)
                        .await?
                    {
                        Contents::File(file) => file.text(),
                        Contents::Folder(_) => None,
                    }
                } else {
                    None
                };
                files.add_file(&entry.name, text);
            }
            "dir" => {
                files.add_folder(&entry.name);
                folders.push(entry.name.clone());
            }
            _ => {}
        }
    }
    let django = entries.iter().any(|e| e.name == "manage.py");
    for name in folders
        .iter()
        .filter(|f| django || f.as_str() == "app")
        .take(MAX_FOLDERS)
    {
        if let Ok(inner) = list(join(name)).await {
            for entry in inner.iter().filter(|e| e.kind == "file") {
                files.add_file(&format!("{name}/{}", entry.name), None);
            }
        }
    }
    Ok(files)
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_githubs_rules() {
        assert!(owner_name("octo-cat").is_ok());
        assert!(owner_name("-octo").is_err());
        assert!(owner_name("a/b").is_err());
        assert!(owner_name(&"a".repeat(40)).is_err());
        assert_eq!(repo_name("shop.git").unwrap(), "shop");
        assert!(repo_name("my_app-2.0").is_ok());
        assert!(repo_name("..").is_err());
        assert!(repo_name("a b").is_err());
        assert!(repo_name("a%2F..").is_err());
        assert_eq!(full_name("o/r").unwrap(), ("o".into(), "r".into()));
        assert!(full_name("o").is_err());
        assert!(full_name("o/r/x").is_err());
        assert!(folder(Some("../x")).is_err());
        assert!(folder(Some("/etc")).is_err());
        assert_eq!(folder(Some("web/app")).unwrap().as_str(), "web/app");
    }

    #[test]
    fn github_urls_are_recognised() {
        let pair = |o: &str, r: &str| Some((o.to_owned(), r.to_owned()));
        assert_eq!(
            github_repo_of(None, "https://github.com/octo/shop.git"),
            pair("octo", "shop")
        );
        assert_eq!(
            github_repo_of(None, "https://GitHub.com/octo/shop/"),
            pair("octo", "shop")
        );
        let ghe = Some("https://git.corp.example");
        assert_eq!(
            github_repo_of(ghe, "https://git.corp.example/team/api"),
            pair("team", "api")
        );
        assert_eq!(github_repo_of(None, "https://git.corp.example/team/api"), None);
        assert_eq!(github_repo_of(None, "https://github.com/octo"), None);
        assert_eq!(
            github_repo_of(None, "https://github.com/octo/shop/tree/main"),
            None
        );
        assert_eq!(github_repo_of(None, "https://user:pw@github.com/octo/shop"), None);
        assert_eq!(github_repo_of(None, "git@github.com:octo/shop.git"), None);
        assert_eq!(github_repo_of(None, "/srv/repos/shop"), None);
    }
}
