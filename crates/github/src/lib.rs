//! A small GitHub REST API client: the signed-in user's repositories,
//! branches, commits and folder contents, push hooks and commit statuses.
//!
//! The API base URL is configurable (GitHub Enterprise: `https://HOST/api/v3`,
//! or a local fake in tests). Lists follow the `Link` header. GitHub's
//! answers are mapped to [`GithubError`]s that say what to do.

mod error;
mod types;

pub use error::GithubError;
pub use types::*;

use reqwest::header::{HeaderMap, ACCEPT, LINK};
use reqwest::{Method, RequestBuilder, Response};
use serde::de::DeserializeOwned;
use std::time::Duration;
use url::Url;

/// Result of a GitHub call.
pub type GithubResult<T> = Result<T, GithubError>;

/// Most pages followed when a whole list is read.
const MAX_PAGES: usize = 10;

/// Items asked for per page.
const PER_PAGE: u32 = 100;

/// A client of one GitHub API; cheap to clone.
#[derive(Debug, Clone)]
pub struct GithubClient {
    http: reqwest::Client,
    base: Url,
}

impl GithubClient {
    /// A client of the API at `api_url` (e.g. `https://api.github.com`).
    pub fn new(api_url: &str) -> GithubResult<Self> {
        let mut base = Url::parse(api_url.trim_end_matches('/'))
            .map_err(|e| GithubError::Invalid(format!("bad GitHub API URL: {e}")))?;
        if base.cannot_be_a_base() || !matches!(base.scheme(), "http" | "https") {
            return Err(GithubError::Invalid("the GitHub API URL must be http(s)".into()));
        }
        base.set_query(None);
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(15))
            .user_agent("easydeploy")
            .build()
            .map_err(|e| GithubError::Unavailable(e.to_string()))?;
        Ok(Self { http, base })
    }

    /// `base/<segments...>`, each segment percent-encoded.
    fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty();
            for segment in segments {
                path.push(segment);
            }
        }
        url
    }

    fn request(&self, method: Method, url: Url, token: &str) -> RequestBuilder {
        self.http
            .request(method, url)
            .bearer_auth(token)
            .header(ACCEPT, "application/vnd.github+json")
            .header("X-GitHub-Api-Version", "2022-11-28")
    }

    async fn send(&self, request: RequestBuilder) -> GithubResult<Response> {
        let response = request.send().await.map_err(|e| {
            tracing::warn!(error = %e, "GitHub unreachable");
            GithubError::Unavailable("GitHub could not be reached".into())
        })?;
        if response.status().is_success() {
            return Ok(response);
        }
        Err(error::from_response(response).await)
    }

    async fn json<T: DeserializeOwned>(&self, request: RequestBuilder) -> GithubResult<(T, HeaderMap)> {
        let response = self.send(request).await?;
        let headers = response.headers().clone();
        let value = response.json().await.map_err(|e| {
            tracing::warn!(error = %e, "unexpected GitHub answer");
            GithubError::Unavailable("GitHub answered unexpectedly".into())
        })?;
        Ok((value, headers))
    }

    /// Every page of a list, following `Link: <...>; rel="next"` (at most 10 pages).
    async fn all<T: DeserializeOwned>(&self, token: &str, first: Url) -> GithubResult<Vec<T>> {
        let mut items = Vec::new();
        let mut next = Some(first);
        for _ in 0..MAX_PAGES {
            let Some(url) = next.take() else { break };
            let (page, headers): (Vec<T>, _) = self.json(self.request(Method::GET, url, token)).await?;
            items.extend(page);
            next = next_link(&headers).filter(|u| self.same_origin(u));
        }
        Ok(items)
    }

    fn same_origin(&self, url: &Url) -> bool {
        url.origin() == self.base.origin()
    }

    /// The signed-in user.
    pub async fn user(&self, token: &str) -> GithubResult<User> {
        Ok(self
            .json(self.request(Method::GET, self.url(&["user"]), token))
            .await?
            .0)
    }

    /// The signed-in user's email addresses (needs the `user:email` scope).
    pub async fn emails(&self, token: &str) -> GithubResult<Vec<Email>> {
        Ok(self
            .json(self.request(Method::GET, self.url(&["user", "emails"]), token))
            .await?
            .0)
    }

    /// One page (from 1) of the repositories the user owns, collaborates on
    /// or reaches through an organisation, most recently updated first.
    pub async fn repos(&self, token: &str, page: u32) -> GithubResult<Page<Repo>> {
        let mut url = self.url(&["user", "repos"]);
        url.query_pairs_mut()
            .append_pair("affiliation", "owner,collaborator,organization_member")
            .append_pair("sort", "updated")
            .append_pair("per_page", &PER_PAGE.to_string())
            .append_pair("page", &page.max(1).to_string());
        let (items, headers) = self.json(self.request(Method::GET, url, token)).await?;
        let next_page = next_link(&headers).and_then(|u| {
            u.query_pairs()
                .find(|(k, _)| k == "page")
                .and_then(|(_, v)| v.parse().ok())
        });
        Ok(Page { items, next_page })
    }

    /// A repository.
    pub async fn repo(&self, token: &str, owner: &str, repo: &str) -> GithubResult<Repo> {
        let url = self.url(&["repos", owner, repo]);
        Ok(self.json(self.request(Method::GET, url, token)).await?.0)
    }

    /// A repository's branches (every page, up to 1000).
    pub async fn branches(&self, token: &str, owner: &str, repo: &str) -> GithubResult<Vec<Branch>> {
        let mut url = self.url(&["repos", owner, repo, "branches"]);
        url.query_pairs_mut()
            .append_pair("per_page", &PER_PAGE.to_string());
        self.all(token, url).await
    }

    /// The commit a branch, tag or sha names.
    pub async fn commit(
        &self,
        token: &str,
        owner: &str,
        repo: &str,
        reference: &str,
    ) -> GithubResult<Commit> {
        let url = self.url(&["repos", owner, repo, "commits", reference]);
        match self.json(self.request(Method::GET, url, token)).await {
            Ok((commit, _)) => Ok(commit),
            // GitHub answers 422 "No commit found for SHA" for an unknown branch.
            Err(GithubError::Invalid(message)) if message.contains("No commit found") => {
                Err(GithubError::NotFound(message))
            }
            Err(e) => Err(e),
        }
    }

    /// A folder's entries or a file's content (`path` relative to the
    /// repository's top, empty for the top) at `reference`.
    pub async fn contents(
        &self,
        token: &str,
        owner: &str,
        repo: &str,
        path: &str,
        reference: &str,
    ) -> GithubResult<Contents> {
        let mut segments = vec!["repos", owner, repo, "contents"];
        segments.extend(path.split('/').filter(|s| !s.is_empty()));
        let mut url = self.url(&segments);
        url.query_pairs_mut().append_pair("ref", reference);
        let (value, _): (serde_json::Value, _) = self.json(self.request(Method::GET, url, token)).await?;
        let unexpected = |e: serde_json::Error| {
            tracing::warn!(error = %e, "unexpected GitHub contents answer");
            GithubError::Unavailable("GitHub answered unexpectedly".into())
        };
        if value.is_array() {
            Ok(Contents::Folder(
                serde_json::from_value(value).map_err(unexpected)?,
            ))
        } else {
            Ok(Contents::File(serde_json::from_value(value).map_err(unexpected)?))
        }
    }

    /// Registers a push hook delivering JSON to `url`, signed with `secret`.
    pub async fn create_hook(
        &self,
        token: &str,
        owner: &str,
        repo: &str,
        url: &str,
        secret: &str,
    ) -> GithubResult<Hook> {
        let body = serde_json::json!({
            "name": "web",
            "active": true,
            "events": ["push"],
            "config": {"url": url, "content_type": "json", "secret": secret, "insecure_ssl": "0"}
        });
        let endpoint = self.url(&["repos", owner, repo, "hooks"]);
        Ok(self
            .json(self.request(Method::POST, endpoint, token).json(&body))
            .await?
            .0)
    }

    /// Removes a hook; `false` when it was already gone.
    pub async fn delete_hook(&self, token: &str, owner: &str, repo: &str, id: i64) -> GithubResult<bool> {
        let url = self.url(&["repos", owner, repo, "hooks", &id.to_string()]);
        match self.send(self.request(Method::DELETE, url, token)).await {
            Ok(_) => Ok(true),
            Err(GithubError::NotFound(_)) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Posts a commit status.
    pub async fn create_status(
        &self,
        token: &str,
        owner: &str,
        repo: &str,
        sha: &str,
        status: &NewStatus,
    ) -> GithubResult<()> {
        let url = self.url(&["repos", owner, repo, "statuses", sha]);
        self.send(self.request(Method::POST, url, token).json(status))
            .await?;
        Ok(())
    }
}

/// The `rel="next"` URL of a `Link` header (`<url>; rel="next", <url>; rel="last"`;
/// URLs may hold commas).
fn next_link(headers: &HeaderMap) -> Option<Url> {
    let mut rest = headers.get(LINK)?.to_str().ok()?;
    while let Some(start) = rest.find('<') {
        let after = &rest[start + 1..];
        let end = after.find('>')?;
        let target = &after[..end];
        let tail = &after[end + 1..];
        let params_end = tail.find('<').unwrap_or(tail.len());
        let is_next = tail[..params_end]
            .split([';', ','])
            .filter_map(|p| p.trim().strip_prefix("rel="))
            .any(|rel| rel.trim_matches('"').split_whitespace().any(|r| r == "next"));
        if is_next {
            return Url::parse(target).ok();
        }
        rest = &tail[params_end..];
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_links_are_found() {
        let mut headers = HeaderMap::new();
        headers.insert(
            LINK,
            "<https://api.github.com/user/repos?page=1>; rel=\"prev\", <https://api.github.com/user/repos?page=3>; rel=\"next\", <https://api.github.com/user/repos?page=9>; rel=\"last\""
                .parse()
                .unwrap(),
        );
        assert_eq!(
            next_link(&headers).unwrap().as_str(),
            "https://api.github.com/user/repos?page=3"
        );
        headers.insert(LINK, "<https://x/a?page=1>; rel=\"prev\"".parse().unwrap());
        assert!(next_link(&headers).is_none());
        headers.insert(
            LINK,
            "<https://x/a?affiliation=owner,collaborator&page=1>; rel=\"prev\", <https://x/a?affiliation=owner,collaborator&page=3>; rel=\"next\""
                .parse()
                .unwrap(),
        );
        assert_eq!(
            next_link(&headers).unwrap().as_str(),
            "https://x/a?affiliation=owner,collaborator&page=3"
        );
    }

    #[test]
    fn path_segments_are_encoded() {
        let client = GithubClient::new("https://ghe.example.com/api/v3/").unwrap();
        assert_eq!(
            client
                .url(&["repos", "o", "r", "commits", "feature/x?y"])
                .as_str(),
            "https://ghe.example.com/api/v3/repos/o/r/commits/feature%2Fx%3Fy"
        );
    }
}
