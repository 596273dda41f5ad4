//! Browsing GitHub through the caller's token: repositories, branches,
//! commits, folders, and framework detection through the contents API.

use super::{branch_name, client, owner_name, repo_name, token};
use crate::auth::Caller;
use crate::catalog::Analysis;
use crate::{ApiError, ApiState};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use easydeploy_core::framework::{detect_files, MemoryFiles, MANIFESTS};
use easydeploy_core::{Framework, RootDir};
use easydeploy_github::{Contents, GithubClient, GithubError};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

type ErrorBody = crate::error::ErrorBody;

/// Sub-folders listed during analysis (Django projects, `app/main.py`).
const MAX_FOLDERS: usize = 20;

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

pub(crate) fn folder(raw: Option<&str>) -> Result<RootDir, ApiError> {
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
