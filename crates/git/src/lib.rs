//! Easy Deploy's git source fetcher, backed by libgit2 (the `git2` crate).
//!
//! [`GitFetcher`] implements [`SourceFetcher`]: it resolves a branch on a
//! remote repository and checks out one commit of it into a fresh folder.
//! Nothing it writes (repository config, reflogs, `FETCH_HEAD`) holds the
//! source URL, so credentials embedded in a URL never land on disk, and logs
//! and error messages only show [`GitSource::redacted`].

mod checkout;
mod remote;

use async_trait::async_trait;
use easydeploy_core::ports::{BackendError, BackendResult, Checkout, SourceCredentials, SourceFetcher};
use easydeploy_core::{Branch, GitSource};
use std::path::Path;

/// Checks out git repositories with libgit2.
///
/// Remote (`https`, `http`, `ssh`, `git`, scp-like) sources are fetched
/// shallowly: only the branch's head commit, deepened on demand when an
/// older commit of the branch is asked for. libgit2's local transport (plain
/// paths and `file://` URLs) refuses shallow fetches ("shallow fetch is not
/// supported by the local transport"), so local sources are fetched with
/// the branch's whole history; the checkout is the same either way.
///
/// Credentials come from the caller (`fetch_with`, answering the host's
/// HTTP challenge, kept in memory only), the URL (`https://user:token@host/...`)
/// or, for SSH, the server's SSH agent. Submodules are not fetched.
#[derive(Debug, Clone, Default)]
pub struct GitFetcher {
    _private: (),
}

impl GitFetcher {
    /// A fetcher; it holds no state, so one can be shared by every deployment.
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl SourceFetcher for GitFetcher {
    async fn resolve(&self, source: &GitSource, branch: &Branch) -> BackendResult<String> {
        self.resolve_with(source, branch, None).await
    }

    async fn fetch(
        &self,
        source: &GitSource,
        branch: &Branch,
        commit: Option<&str>,
        dest: &Path,
    ) -> BackendResult<Checkout> {
        self.fetch_with(source, branch, commit, dest, None).await
    }

    async fn resolve_with(
        &self,
        source: &GitSource,
        branch: &Branch,
        credentials: Option<&SourceCredentials>,
    ) -> BackendResult<String> {
        let (source, branch, credentials) = (source.clone(), branch.clone(), credentials.cloned());
        blocking(move || remote::resolve(&source, &branch, credentials.as_ref())).await
    }

    async fn fetch_with(
        &self,
        source: &GitSource,
        branch: &Branch,
        commit: Option<&str>,
        dest: &Path,
        credentials: Option<&SourceCredentials>,
    ) -> BackendResult<Checkout> {
        let (source, branch, credentials) = (source.clone(), branch.clone(), credentials.cloned());
        let (commit, dest) = (commit.map(str::to_owned), dest.to_owned());
        blocking(move || checkout::fetch(&source, &branch, commit.as_deref(), &dest, credentials.as_ref()))
            .await
    }
}

/// Runs libgit2 work on tokio's blocking pool.
async fn blocking<T, F>(work: F) -> BackendResult<T>
where
    T: Send + 'static,
    F: FnOnce() -> BackendResult<T> + Send + 'static,
{
    tokio::task::spawn_blocking(work).await.map_err(|e| {
        tracing::error!(error = %e, "git worker panicked");
        BackendError::permanent(format!("the git worker stopped unexpectedly: {e}"))
    })?
}

/// The abbreviated (7-character) form of a commit id, as shown to people.
pub fn short(commit: &str) -> &str {
    commit.get(..7).unwrap_or(commit)
}

#[cfg(test)]
mod tests {
    use super::short;

    #[test]
    fn short_keeps_seven_characters() {
        assert_eq!(short("0123456789abcdef0123456789abcdef01234567"), "0123456");
        assert_eq!(short("abc"), "abc");
        assert_eq!(short(""), "");
    }
}
