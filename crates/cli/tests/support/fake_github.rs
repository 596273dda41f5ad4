//! A local stand-in for GitHub: the OAuth web flow and the REST endpoints
//! Easy Deploy calls, with GitHub's documented payload shapes, checking the
//! `Authorization` header and recording the hooks and statuses it gets.
//! Repositories are real git repositories on disk, read with libgit2 for
//! the API and served to git clients by the real `git http-backend`
//! (HTTP Basic auth with a token, as GitHub does).
// Handlers return GitHub's error answer as `Err(Response)`; its size does not matter here.
#![allow(clippy::result_large_err)]

use axum::body::{Body, Bytes};
use axum::extract::{Form, OriginalUri, Path, Query, State};
use axum::http::{header, HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use base64::Engine;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// A hook the fake received.
#[derive(Debug, Clone)]
pub struct HookRecord {
    pub id: i64,
    pub repo: String,
    pub body: Value,
    pub deleted: bool,
}

/// A commit status the fake received.
#[derive(Debug, Clone)]
pub struct StatusRecord {
    pub repo: String,
    pub sha: String,
    pub body: Value,
}

/// A repository the fake hosts.
#[derive(Debug, Clone)]
pub struct FakeRepo {
    pub owner: String,
    pub name: String,
    pub private: bool,
    /// Working tree of a real repository (with `.git`).
    pub path: PathBuf,
}

/// What the fake knows and saw.
#[derive(Debug, Default)]
pub struct FakeState {
    pub client_id: String,
    pub client_secret: String,
    /// The user every valid token belongs to.
    pub login: String,
    pub user_id: i64,
    pub email: String,
    /// Authorization codes given out, and the token each one buys.
    pub codes: HashMap<String, String>,
    /// Tokens GitHub accepts.
    pub tokens: Vec<String>,
    pub repos: Vec<FakeRepo>,
    pub hooks: Vec<HookRecord>,
    pub statuses: Vec<StatusRecord>,
    /// Git requests: (path, authorized).
    pub git_requests: Vec<(String, bool)>,
    /// Answer API calls with GitHub's rate-limit error.
    pub rate_limited: bool,
    /// Largest page, to exercise `Link` pagination.
    pub max_per_page: usize,
    next_id: i64,
}

/// A running fake GitHub.
pub struct FakeGithub {
    /// Web base (OAuth pages, git).
    pub url: String,
    /// API base, GitHub Enterprise style (`/api/v3`).
    pub api_url: String,
    pub state: Arc<Mutex<FakeState>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeGithub {
    fn drop(&mut self) {
        self.task.abort();
    }
}

type Shared = Arc<Mutex<FakeState>>;

impl FakeGithub {
    /// Starts the fake on a free loopback port.
    pub async fn start(client_id: &str, client_secret: &str) -> Self {
        let state = Arc::new(Mutex::new(FakeState {
            client_id: client_id.into(),
            client_secret: client_secret.into(),
            login: "octocat".into(),
            user_id: 583231,
            email: "octocat@github.example".into(),
            max_per_page: 2,
            next_id: 1000,
            ..Default::default()
        }));
        let api = Router::new()
            .route("/user", get(user))
            .route("/user/emails", get(emails))
            .route("/user/repos", get(user_repos))
            .route("/repos/{owner}/{repo}", get(repo))
            .route("/repos/{owner}/{repo}/branches", get(branches))
            .route("/repos/{owner}/{repo}/commits/{reference}", get(commit))
            .route("/repos/{owner}/{repo}/contents", get(contents_top))
            .route("/repos/{owner}/{repo}/contents/{*path}", get(contents))
            .route("/repos/{owner}/{repo}/hooks", post(create_hook))
            .route("/repos/{owner}/{repo}/hooks/{id}", delete(delete_hook))
            .route("/repos/{owner}/{repo}/statuses/{sha}", post(create_status));
        let router = Router::new()
            .route("/login/oauth/authorize", get(authorize))
            .route("/login/oauth/access_token", post(access_token))
            .route("/{owner}/{*rest}", get(git).post(git))
            .nest("/api/v3", api)
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            axum::serve(listener, router).await.unwrap();
        });
        Self {
            api_url: format!("{url}/api/v3"),
            url,
            state,
            task,
        }
    }

    /// Hosts a repository (a working tree with `.git`).
    pub fn add_repo(&self, owner: &str, name: &str, private: bool, path: &std::path::Path) {
        self.state.lock().unwrap().repos.push(FakeRepo {
            owner: owner.into(),
            name: name.into(),
            private,
            path: path.to_owned(),
        });
    }

    /// The HTTPS clone URL of a hosted repository.
    pub fn clone_url(&self, owner: &str, name: &str) -> String {
        format!("{}/{owner}/{name}.git", self.url)
    }

    /// Hooks received (deleted ones marked).
    pub fn hooks(&self) -> Vec<HookRecord> {
        self.state.lock().unwrap().hooks.clone()
    }

    /// Statuses received for a commit of `owner/name`, in order, as `(state, body)`.
    pub fn statuses(&self, repo: &str, sha: &str) -> Vec<(String, Value)> {
        self.state
            .lock()
            .unwrap()
            .statuses
            .iter()
            .filter(|s| s.repo == repo && s.sha == sha)
            .map(|s| (s.body["state"].as_str().unwrap_or("").to_owned(), s.body.clone()))
            .collect()
    }

    /// Forgets every token (as when the user revokes the OAuth app).
    pub fn revoke_tokens(&self) {
        self.state.lock().unwrap().tokens.clear();
    }
}

fn gh_error(status: StatusCode, message: &str) -> Response {
    (
        status,
        Json(json!({"message": message, "documentation_url": "https://docs.github.com/rest"})),
    )
        .into_response()
}

/// Checks `Authorization: Bearer|token <token>`; answers like GitHub when wrong.
fn authorize_api(state: &Shared, headers: &HeaderMap) -> Result<(), Response> {
    let s = state.lock().unwrap();
    if s.rate_limited {
        let reset = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
            + 600;
        let mut response = gh_error(
            StatusCode::FORBIDDEN,
            "API rate limit exceeded for user ID 583231.",
        );
        let h = response.headers_mut();
        h.insert("x-ratelimit-limit", "5000".parse().unwrap());
        h.insert("x-ratelimit-remaining", "0".parse().unwrap());
        h.insert("x-ratelimit-reset", reset.to_string().parse().unwrap());
        return Err(response);
    }
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("token ")));
    match presented {
        Some(token) if s.tokens.iter().any(|t| t == token) => Ok(()),
        _ => Err(gh_error(StatusCode::UNAUTHORIZED, "Bad credentials")),
    }
}

/// The repository of an API call, once the caller's token is accepted.
fn authorized_repo(
    state: &Shared,
    headers: &HeaderMap,
    owner: &str,
    name: &str,
) -> Result<FakeRepo, Response> {
    authorize_api(state, headers)?;
    find_repo(state, owner, name)
}

fn find_repo(state: &Shared, owner: &str, name: &str) -> Result<FakeRepo, Response> {
    state
        .lock()
        .unwrap()
        .repos
        .iter()
        .find(|r| r.owner.eq_ignore_ascii_case(owner) && r.name.eq_ignore_ascii_case(name))
        .cloned()
        .ok_or_else(|| gh_error(StatusCode::NOT_FOUND, "Not Found"))
}

fn default_branch(repo: &FakeRepo) -> String {
    let git = git2::Repository::open(&repo.path).unwrap();
    let head = git.head().unwrap();
    head.shorthand().unwrap_or("main").to_owned()
}

fn repo_json(base: &str, repo: &FakeRepo) -> Value {
    let full = format!("{}/{}", repo.owner, repo.name);
    json!({
        "id": repo.name.len() as i64 * 1000 + repo.owner.len() as i64,
        "node_id": "R_kgDO",
        "name": repo.name,
        "full_name": full,
        "owner": {"login": repo.owner, "id": 583231, "type": "User", "site_admin": false},
        "private": repo.private,
        "html_url": format!("{base}/{full}"),
        "description": "A test repository",
        "fork": false,
        "url": format!("{base}/api/v3/repos/{full}"),
        "clone_url": format!("{base}/{full}.git"),
        "git_url": format!("git://{}/{full}.git", base.trim_start_matches("http://")),
        "ssh_url": format!("git@{}:{full}.git", base.trim_start_matches("http://")),
        "default_branch": default_branch(repo),
        "visibility": if repo.private { "private" } else { "public" },
        "archived": false,
        "pushed_at": "2026-11-01T12:00:00Z",
        "permissions": {"admin": true, "push": true, "pull": true}
    })
}

fn base_of(headers: &HeaderMap) -> String {
    format!(
        "http://{}",
        headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("127.0.0.1")
    )
}

/// One page of `items` with GitHub's `Link` header.
fn paged(uri: &Uri, base: &str, q: &HashMap<String, String>, max: usize, items: Vec<Value>) -> Response {
    let per_page = q
        .get("per_page")
        .and_then(|p| p.parse::<usize>().ok())
        .unwrap_or(30)
        .clamp(1, 100)
        .min(max);
    let page = q
        .get("page")
        .and_then(|p| p.parse::<usize>().ok())
        .unwrap_or(1)
        .max(1);
    let last = items.len().div_ceil(per_page).max(1);
    let slice: Vec<Value> = items
        .into_iter()
        .skip((page - 1) * per_page)
        .take(per_page)
        .collect();
    let mut links = Vec::new();
    let link = |n: usize, rel: &str| {
        let mut url = url::Url::parse(&format!("{base}{}", uri.path())).unwrap();
        let mut others: Vec<(&String, &String)> = q.iter().filter(|(k, _)| k.as_str() != "page").collect();
        others.sort();
        url.query_pairs_mut()
            .extend_pairs(others)
            .append_pair("page", &n.to_string());
        format!("<{url}>; rel=\"{rel}\"")
    };
    if page < last {
        links.push(link(page + 1, "next"));
        links.push(link(last, "last"));
    }
    if page > 1 {
        links.push(link(1, "first"));
        links.push(link(page - 1, "prev"));
    }
    let mut response = Json(slice).into_response();
    if !links.is_empty() {
        response
            .headers_mut()
            .insert(header::LINK, links.join(", ").parse().unwrap());
    }
    response
}

async fn authorize(State(state): State<Shared>, Query(q): Query<HashMap<String, String>>) -> Response {
    let mut s = state.lock().unwrap();
    if q.get("client_id") != Some(&s.client_id) {
        return (StatusCode::NOT_FOUND, "unknown client").into_response();
    }
    let (Some(redirect), Some(oauth_state)) = (q.get("redirect_uri"), q.get("state")) else {
        return (StatusCode::BAD_REQUEST, "redirect_uri and state needed").into_response();
    };
    s.next_id += 1;
    let code = format!("code{}", s.next_id);
    let token = format!("gho_fake{:032x}", rand_u128());
    s.codes.insert(code.clone(), token);
    let mut url = url::Url::parse(redirect).unwrap();
    url.query_pairs_mut()
        .append_pair("code", &code)
        .append_pair("state", oauth_state);
    (StatusCode::FOUND, [(header::LOCATION, url.to_string())]).into_response()
}

fn rand_u128() -> u128 {
    use std::hash::{BuildHasher, Hasher};
    let mut a = std::collections::hash_map::RandomState::new().build_hasher();
    a.write_u64(1);
    let mut b = std::collections::hash_map::RandomState::new().build_hasher();
    b.write_u64(2);
    (u128::from(a.finish()) << 64) | u128::from(b.finish())
}

async fn access_token(
    State(state): State<Shared>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let mut s = state.lock().unwrap();
    assert_eq!(
        headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()),
        Some("application/json"),
        "Easy Deploy asks for JSON"
    );
    if form.get("client_id") != Some(&s.client_id) || form.get("client_secret") != Some(&s.client_secret) {
        return Json(json!({"error": "incorrect_client_credentials",
            "error_description": "The client_id and/or client_secret passed are incorrect."}))
        .into_response();
    }
    let Some(token) = form.get("code").and_then(|c| s.codes.remove(c)) else {
        return Json(json!({"error": "bad_verification_code",
            "error_description": "The code passed is incorrect or expired."}))
        .into_response();
    };
    s.tokens.push(token.clone());
    Json(json!({"access_token": token, "token_type": "bearer", "scope": "admin:repo_hook,read:user,repo,user:email"}))
        .into_response()
}

async fn user(State(state): State<Shared>, headers: HeaderMap) -> Response {
    if let Err(r) = authorize_api(&state, &headers) {
        return r;
    }
    let s = state.lock().unwrap();
    Json(
        json!({"login": s.login, "id": s.user_id, "node_id": "MDQ6VXNlcjE=", "type": "User",
        "site_admin": false, "name": "The Octocat", "email": null}),
    )
    .into_response()
}

async fn emails(State(state): State<Shared>, headers: HeaderMap) -> Response {
    if let Err(r) = authorize_api(&state, &headers) {
        return r;
    }
    let s = state.lock().unwrap();
    Json(json!([
        {"email": "old@github.example", "primary": false, "verified": true, "visibility": null},
        {"email": s.email, "primary": true, "verified": true, "visibility": "private"}
    ]))
    .into_response()
}

async fn user_repos(
    State(state): State<Shared>,
    headers: HeaderMap,
    OriginalUri(uri): OriginalUri,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if let Err(r) = authorize_api(&state, &headers) {
        return r;
    }
    assert_eq!(
        q.get("affiliation").map(String::as_str),
        Some("owner,collaborator,organization_member")
    );
    let base = base_of(&headers);
    let (repos, max) = {
        let s = state.lock().unwrap();
        (s.repos.clone(), s.max_per_page)
    };
    let items = repos.iter().map(|r| repo_json(&base, r)).collect();
    paged(&uri, &base, &q, max, items)
}

async fn repo(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path((owner, name)): Path<(String, String)>,
) -> Response {
    if let Err(r) = authorize_api(&state, &headers) {
        return r;
    }
    match find_repo(&state, &owner, &name) {
        Ok(r) => Json(repo_json(&base_of(&headers), &r)).into_response(),
        Err(r) => r,
    }
}

async fn branches(
    State(state): State<Shared>,
    headers: HeaderMap,
    OriginalUri(uri): OriginalUri,
    Path((owner, name)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let repo = match authorized_repo(&state, &headers, &owner, &name) {
        Ok(r) => r,
        Err(r) => return r,
    };
    let git = git2::Repository::open(&repo.path).unwrap();
    let mut items: Vec<Value> = git
        .branches(Some(git2::BranchType::Local))
        .unwrap()
        .flatten()
        .map(|(b, _)| {
            let name = b.name().unwrap().unwrap().to_owned();
            let sha = b.get().peel_to_commit().unwrap().id().to_string();
            json!({"name": name, "commit": {"sha": sha, "url": "https://example.invalid"}, "protected": false})
        })
        .collect();
    items.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
    let max = state.lock().unwrap().max_per_page;
    paged(&uri, &base_of(&headers), &q, max, items)
}

async fn commit(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path((owner, name, reference)): Path<(String, String, String)>,
) -> Response {
    let repo = match authorized_repo(&state, &headers, &owner, &name) {
        Ok(r) => r,
        Err(r) => return r,
    };
    let git = git2::Repository::open(&repo.path).unwrap();
    let Ok(c) = git
        .revparse_single(&format!("refs/heads/{reference}"))
        .or_else(|_| git.revparse_single(&reference))
        .and_then(|o| o.peel_to_commit())
    else {
        return gh_error(
            StatusCode::UNPROCESSABLE_ENTITY,
            &format!("No commit found for SHA: {reference}"),
        );
    };
    let author = c.author();
    let date = chrono::DateTime::from_timestamp(author.when().seconds(), 0)
        .unwrap()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    Json(json!({
        "sha": c.id().to_string(),
        "node_id": "C_kwDO",
        "commit": {
            "author": {"name": author.name(), "email": author.email(), "date": date},
            "committer": {"name": author.name(), "email": author.email(), "date": date},
            "message": c.message().unwrap_or(""),
            "tree": {"sha": c.tree_id().to_string()}
        },
        "author": {"login": "octocat", "id": 583231},
        "committer": {"login": "octocat", "id": 583231},
        "html_url": format!("{}/{}/{}/commit/{}", base_of(&headers), repo.owner, repo.name, c.id()),
        "parents": c.parent_ids().map(|p| json!({"sha": p.to_string()})).collect::<Vec<_>>()
    }))
    .into_response()
}

async fn contents_top(
    state: State<Shared>,
    headers: HeaderMap,
    Path((owner, name)): Path<(String, String)>,
    q: Query<HashMap<String, String>>,
) -> Response {
    contents(state, headers, Path((owner, name, String::new())), q).await
}

async fn contents(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path((owner, name, path)): Path<(String, String, String)>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let repo = match authorized_repo(&state, &headers, &owner, &name) {
        Ok(r) => r,
        Err(r) => return r,
    };
    let git = git2::Repository::open(&repo.path).unwrap();
    let reference = q.get("ref").cloned().unwrap_or_else(|| default_branch(&repo));
    let Ok(c) = git
        .revparse_single(&format!("refs/heads/{reference}"))
        .or_else(|_| git.revparse_single(&reference))
        .and_then(|o| o.peel_to_commit())
    else {
        return gh_error(
            StatusCode::NOT_FOUND,
            &format!("No commit found for the ref {reference}"),
        );
    };
    let path = path.trim_matches('/');
    let tree = c.tree().unwrap();
    let object = if path.is_empty() {
        tree.into_object()
    } else {
        match tree
            .get_path(std::path::Path::new(path))
            .and_then(|e| e.to_object(&git))
        {
            Ok(o) => o,
            Err(_) => return gh_error(StatusCode::NOT_FOUND, "Not Found"),
        }
    };
    let join = |n: &str| {
        if path.is_empty() {
            n.to_owned()
        } else {
            format!("{path}/{n}")
        }
    };
    if let Some(dir) = object.as_tree() {
        let entries: Vec<Value> = dir
            .iter()
            .map(|e| {
                let name = e.name().unwrap_or("").to_owned();
                let (kind, size) = match e.kind() {
                    Some(git2::ObjectType::Tree) => ("dir", 0),
                    // GitHub lists submodules as "file" in folder listings (documented).
                    Some(git2::ObjectType::Commit) => ("file", 0),
                    _ if e.filemode() == 0o120000 => ("symlink", 0),
                    _ => ("file", git.find_blob(e.id()).map(|b| b.size()).unwrap_or(0)),
                };
                json!({"type": kind, "name": name, "path": join(&name), "sha": e.id().to_string(), "size": size})
            })
            .collect();
        return Json(entries).into_response();
    }
    let blob = object.as_blob().unwrap();
    let encoded = base64::engine::general_purpose::STANDARD.encode(blob.content());
    // GitHub wraps the base64 content at 60 characters.
    let wrapped: Vec<String> = encoded
        .as_bytes()
        .chunks(60)
        .map(|c| String::from_utf8(c.to_vec()).unwrap())
        .collect();
    let name = path.rsplit('/').next().unwrap_or(path);
    Json(
        json!({"type": "file", "encoding": "base64", "size": blob.size(), "name": name, "path": path,
        "content": wrapped.join("\n") + "\n", "sha": blob.id().to_string()}),
    )
    .into_response()
}

async fn create_hook(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path((owner, name)): Path<(String, String)>,
    Json(body): Json<Value>,
) -> Response {
    let repo = match authorized_repo(&state, &headers, &owner, &name) {
        Ok(r) => r,
        Err(r) => return r,
    };
    if body["config"]["url"].as_str().is_none() {
        return gh_error(StatusCode::UNPROCESSABLE_ENTITY, "Validation Failed");
    }
    let mut s = state.lock().unwrap();
    s.next_id += 1;
    let id = s.next_id;
    s.hooks.push(HookRecord {
        id,
        repo: format!("{}/{}", repo.owner, repo.name),
        body: body.clone(),
        deleted: false,
    });
    let mut config = body["config"].clone();
    if let Some(c) = config.as_object_mut() {
        c.remove("secret");
        c.insert("secret".into(), json!("********"));
    }
    (
        StatusCode::CREATED,
        Json(
            json!({"type": "Repository", "id": id, "name": "web", "active": body["active"],
            "events": body["events"], "config": config,
            "updated_at": "2026-11-01T12:00:00Z", "created_at": "2026-11-01T12:00:00Z",
            "url": format!("{}/api/v3/repos/{}/{}/hooks/{id}", base_of(&headers), repo.owner, repo.name)}),
        ),
    )
        .into_response()
}

async fn delete_hook(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path((owner, name, id)): Path<(String, String, i64)>,
) -> Response {
    let repo = match authorized_repo(&state, &headers, &owner, &name) {
        Ok(r) => r,
        Err(r) => return r,
    };
    let full = format!("{}/{}", repo.owner, repo.name);
    let mut s = state.lock().unwrap();
    match s
        .hooks
        .iter_mut()
        .find(|h| h.id == id && h.repo == full && !h.deleted)
    {
        Some(hook) => {
            hook.deleted = true;
            StatusCode::NO_CONTENT.into_response()
        }
        None => gh_error(StatusCode::NOT_FOUND, "Not Found"),
    }
}

async fn create_status(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path((owner, name, sha)): Path<(String, String, String)>,
    Json(body): Json<Value>,
) -> Response {
    let repo = match authorized_repo(&state, &headers, &owner, &name) {
        Ok(r) => r,
        Err(r) => return r,
    };
    let valid = ["error", "failure", "pending", "success"].contains(&body["state"].as_str().unwrap_or(""));
    if !valid || sha.len() != 40 {
        return gh_error(StatusCode::UNPROCESSABLE_ENTITY, "Validation Failed");
    }
    let mut s = state.lock().unwrap();
    s.next_id += 1;
    let id = s.next_id;
    s.statuses.push(StatusRecord {
        repo: format!("{}/{}", repo.owner, repo.name),
        sha: sha.clone(),
        body: body.clone(),
    });
    (
        StatusCode::CREATED,
        Json(
            json!({"id": id, "state": body["state"], "description": body["description"],
            "target_url": body["target_url"], "context": body["context"].as_str().unwrap_or("default"),
            "created_at": "2026-11-01T12:00:00Z", "updated_at": "2026-11-01T12:00:00Z"}),
        ),
    )
        .into_response()
}

/// Git smart HTTP through the real `git http-backend`, behind HTTP Basic
/// auth with a valid token as the password (GitHub's scheme).
async fn git(
    State(state): State<Shared>,
    method: Method,
    headers: HeaderMap,
    uri: Uri,
    Path((owner, rest)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let Some((repo_part, tail)) = rest.split_once('/') else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let name = repo_part.strip_suffix(".git").unwrap_or(repo_part);
    let repo = match find_repo(&state, &owner, name) {
        Ok(r) => r,
        Err(_) => return StatusCode::NOT_FOUND.into_response(),
    };
    let authorized = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|pair| pair.split_once(':').map(|(_, p)| p.to_owned()))
        .is_some_and(|token| state.lock().unwrap().tokens.contains(&token));
    state
        .lock()
        .unwrap()
        .git_requests
        .push((uri.path().to_owned(), authorized));
    if !authorized {
        return (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Basic realm=\"GitHub\"")],
            "authentication required\n",
        )
            .into_response();
    }
    let parent = repo.path.parent().unwrap().to_owned();
    let dir = repo.path.file_name().unwrap().to_str().unwrap().to_owned();
    let mut command = tokio::process::Command::new("git");
    command
        .arg("http-backend")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("GIT_PROJECT_ROOT", &parent)
        .env("GIT_HTTP_EXPORT_ALL", "1")
        .env("PATH_INFO", format!("/{dir}/{tail}"))
        .env("QUERY_STRING", uri.query().unwrap_or(""))
        .env("REQUEST_METHOD", method.as_str())
        .env("CONTENT_LENGTH", body.len().to_string())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null());
    for (name, var) in [
        (header::CONTENT_TYPE, "CONTENT_TYPE"),
        (header::CONTENT_ENCODING, "HTTP_CONTENT_ENCODING"),
    ] {
        if let Some(v) = headers.get(name).and_then(|v| v.to_str().ok()) {
            command.env(var, v);
        }
    }
    if let Some(v) = headers.get("git-protocol").and_then(|v| v.to_str().ok()) {
        command.env("GIT_PROTOCOL", v);
    }
    let mut child = command.spawn().expect("git http-backend");
    let mut stdin = child.stdin.take().unwrap();
    let writer = tokio::spawn(async move {
        use tokio::io::AsyncWriteExt;
        let _ = stdin.write_all(&body).await;
    });
    let output = child.wait_with_output().await.unwrap();
    let _ = writer.await;
    let out = output.stdout;
    let Some(split) = out.windows(4).position(|w| w == b"\r\n\r\n") else {
        return (StatusCode::INTERNAL_SERVER_ERROR, "bad CGI output").into_response();
    };
    let head = String::from_utf8_lossy(&out[..split]).into_owned();
    let mut response = Response::new(Body::from(out[split + 4..].to_vec()));
    for line in head.lines() {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("status") {
            let code = value
                .split_whitespace()
                .next()
                .and_then(|c| c.parse().ok())
                .unwrap_or(500);
            *response.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        } else if let (Ok(n), Ok(v)) = (
            header::HeaderName::from_bytes(name.trim().as_bytes()),
            header::HeaderValue::from_str(value),
        ) {
            response.headers_mut().append(n, v);
        }
    }
    response
}
