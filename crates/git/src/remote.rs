//! Talking to the remote: connection options, listing branches, and turning
//! libgit2 errors into sentences a person can act on.

use easydeploy_core::ports::{BackendError, BackendResult, SourceCredentials};
use easydeploy_core::{Branch, GitSource};
use git2::{
    Cred, CredentialType, Direction, ErrorClass, ErrorCode, Oid, ProxyOptions, Remote, RemoteCallbacks,
    RemoteHead,
};
use std::path::Path;

/// How many branch names an "unknown branch" error lists.
const LISTED_BRANCHES: usize = 10;

/// How many times libgit2 may ask for credentials before we give up (it
/// asks again after each refusal).
const CREDENTIAL_ATTEMPTS: u32 = 3;

/// Resolves `branch` on the remote to its head commit without fetching.
pub(crate) fn resolve(
    source: &GitSource,
    branch: &Branch,
    credentials: Option<&SourceCredentials>,
) -> BackendResult<String> {
    check_local(source)?;
    let mut remote = Remote::create_detached(source.as_str()).map_err(|e| unreachable(source, &e))?;
    let connection = remote
        .connect_auth(Direction::Fetch, Some(callbacks(credentials)), Some(proxy()))
        .map_err(|e| unreachable(source, &e))?;
    let heads = connection.list().map_err(|e| unreachable(source, &e))?;
    let head = branch_head(source, branch, heads)?;
    tracing::debug!(source = %source.redacted(), branch = branch.as_str(), commit = %head, "resolved branch");
    Ok(head.to_string())
}

/// Callbacks for connecting: credentials from the URL are applied by
/// libgit2 itself; `credentials` answer an HTTP challenge (held in memory
/// only); SSH keys come from the agent.
pub(crate) fn callbacks<'a>(credentials: Option<&SourceCredentials>) -> RemoteCallbacks<'a> {
    let mut callbacks = RemoteCallbacks::new();
    let mut attempts = 0;
    let credentials = credentials.cloned();
    callbacks.credentials(move |_url, username, allowed| {
        attempts += 1;
        if attempts > CREDENTIAL_ATTEMPTS {
            return Err(auth_error("the credentials were refused"));
        }
        let user = username.unwrap_or("git");
        if let Some(c) = credentials
            .as_ref()
            .filter(|_| allowed.contains(CredentialType::USER_PASS_PLAINTEXT))
        {
            Cred::userpass_plaintext(&c.username, &c.password)
        } else if allowed.contains(CredentialType::USERNAME) {
            Cred::username(user)
        } else if allowed.contains(CredentialType::SSH_KEY) {
            Cred::ssh_key_from_agent(user)
        } else {
            Err(auth_error(
                "the repository asks for credentials and the URL gives none that it accepts",
            ))
        }
    });
    callbacks
}

/// Proxy settings taken from the environment and git configuration.
pub(crate) fn proxy<'a>() -> ProxyOptions<'a> {
    let mut proxy = ProxyOptions::new();
    proxy.auto();
    proxy
}

fn auth_error(message: &str) -> git2::Error {
    git2::Error::new(ErrorCode::Auth, ErrorClass::Net, message)
}

/// Refuses a local source that does not exist with a clearer message than
/// libgit2's ("unsupported URL protocol").
pub(crate) fn check_local(source: &GitSource) -> BackendResult<()> {
    if !source.is_local() {
        return Ok(());
    }
    let raw = source.as_str();
    let path = match raw.strip_prefix("file://") {
        Some(rest) => rest.strip_prefix("localhost").unwrap_or(rest),
        None => raw,
    };
    // Percent-encoded file URLs are left for libgit2 to decode.
    if path.contains('%') || Path::new(path).exists() {
        return Ok(());
    }
    Err(BackendError::permanent(format!(
        "cannot reach the repository {}: {path} does not exist on this machine",
        source.redacted()
    ))
    .with_code("repository_unreachable"))
}

/// Finds `refs/heads/<branch>` among the advertised refs, or explains which
/// branches exist.
pub(crate) fn branch_head(
    source: &GitSource,
    branch: &Branch,
    heads: &[RemoteHead<'_>],
) -> BackendResult<Oid> {
    let wanted = format!("refs/heads/{}", branch.as_str());
    if let Some(head) = heads.iter().find(|h| h.name() == wanted) {
        return Ok(head.oid());
    }
    let branches: Vec<&str> = heads
        .iter()
        .filter_map(|h| h.name().strip_prefix("refs/heads/"))
        .collect();
    Err(
        BackendError::permanent(unknown_branch(&source.redacted(), branch.as_str(), &branches))
            .with_code("unknown_branch"),
    )
}

fn unknown_branch(url: &str, branch: &str, branches: &[&str]) -> String {
    let listed = match branches.len() {
        0 => return format!("branch '{branch}' does not exist in {url}; it has no branches"),
        n if n <= LISTED_BRANCHES => branches.join(", "),
        n => format!(
            "{} and {} more",
            branches[..LISTED_BRANCHES].join(", "),
            n - LISTED_BRANCHES
        ),
    };
    format!("branch '{branch}' does not exist in {url}; its branches are: {listed}")
}

/// Maps a failure to talk to the remote (connect, list, fetch).
pub(crate) fn unreachable(source: &GitSource, error: &git2::Error) -> BackendError {
    let url = source.redacted();
    let detail = scrub(source, error.message());
    let message = match error.code() {
        ErrorCode::Auth => format!(
            "cannot authenticate to the repository {url}: {detail}; put credentials in the URL \
             (https://user:token@host/owner/repo.git) or make the repository readable"
        ),
        ErrorCode::Certificate => {
            format!("cannot verify the TLS certificate of the repository {url}: {detail}")
        }
        _ => format!("cannot reach the repository {url}: {detail}"),
    };
    tracing::debug!(source = %url, class = ?error.class(), code = ?error.code(), "git remote error");
    if is_transient(source, error) {
        BackendError::transient(message).with_code("repository_unreachable")
    } else {
        BackendError::permanent(message).with_code("repository_unreachable")
    }
}

/// Network trouble with a remote URL may go away; a missing local path, a
/// refused credential or a 4xx answer will not.
fn is_transient(source: &GitSource, error: &git2::Error) -> bool {
    if source.is_local() || matches!(error.code(), ErrorCode::Auth | ErrorCode::Certificate) {
        return false;
    }
    match error.class() {
        ErrorClass::Net | ErrorClass::Os | ErrorClass::Ssl | ErrorClass::Ssh => true,
        ErrorClass::Http => error.message().contains("status code: 5"),
        _ => false,
    }
}

/// Removes URL credentials from a libgit2 message, should it quote the URL.
fn scrub(source: &GitSource, message: &str) -> String {
    let raw = source.as_str();
    let mut message = message.replace(raw, &source.redacted());
    let userinfo = raw
        .split_once("://")
        .and_then(|(_, rest)| rest.split('/').next())
        .and_then(|authority| authority.rsplit_once('@'))
        .map(|(userinfo, _)| userinfo)
        .filter(|userinfo| !userinfo.is_empty());
    if let Some(userinfo) = userinfo {
        message = message.replace(&format!("{userinfo}@"), "***@");
        if let Some((_, password)) = userinfo.split_once(':').filter(|(_, p)| !p.is_empty()) {
            message = message.replace(password, "***");
        }
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_at_most_ten_branches() {
        let names: Vec<String> = (0..12).map(|i| format!("b{i}")).collect();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let message = unknown_branch("/r", "x", &names);
        assert_eq!(
            message,
            "branch 'x' does not exist in /r; its branches are: \
             b0, b1, b2, b3, b4, b5, b6, b7, b8, b9 and 2 more"
        );
        assert_eq!(
            unknown_branch("/r", "x", &[]),
            "branch 'x' does not exist in /r; it has no branches"
        );
    }

    #[test]
    fn scrubs_credentials_from_messages() {
        let source = GitSource::parse("https://bob:s3cret@example.com/a/b.git").unwrap();
        let scrubbed = scrub(
            &source,
            "redirect from https://bob:s3cret@example.com/a/b.git to bob:s3cret@x (s3cret)",
        );
        assert!(!scrubbed.contains("s3cret"), "{scrubbed}");
        assert!(scrubbed.contains("https://***@example.com/a/b.git"), "{scrubbed}");
    }

    #[test]
    fn network_errors_of_remote_urls_are_transient() {
        let remote = GitSource::parse("https://example.com/a.git").unwrap();
        let local = GitSource::parse("/srv/a").unwrap();
        let net = git2::Error::new(ErrorCode::GenericError, ErrorClass::Net, "timed out");
        let http_404 = git2::Error::new(
            ErrorCode::GenericError,
            ErrorClass::Http,
            "unexpected http status code: 404",
        );
        let http_503 = git2::Error::new(
            ErrorCode::GenericError,
            ErrorClass::Http,
            "unexpected http status code: 503",
        );
        assert!(unreachable(&remote, &net).retryable);
        assert!(!unreachable(&local, &net).retryable);
        assert!(!unreachable(&remote, &http_404).retryable);
        assert!(unreachable(&remote, &http_503).retryable);
        let auth = unreachable(&remote, &auth_error("refused"));
        assert!(!auth.retryable);
        assert!(auth
            .message
            .starts_with("cannot authenticate to the repository https://example.com/a.git"));
    }
}
