//! Fetching one branch into a fresh repository and checking out a commit.

use crate::remote::{branch_head, callbacks, check_local, proxy, unreachable};
use crate::short;
use easydeploy_core::ports::{BackendError, BackendResult, Checkout, SourceCredentials};
use easydeploy_core::{Branch, GitSource};
use git2::build::CheckoutBuilder;
use git2::{AutotagOption, ErrorCode, FetchOptions, Oid, Repository, RepositoryInitOptions};
use std::path::Path;

/// The first deepening step when the wanted commit is not the branch head;
/// after it the history is fetched whole (libgit2's "unshallow" depth).
const DEEPEN_STEP: i32 = 50;
const UNSHALLOW: i32 = i32::MAX;

/// Where the fetched branch is kept in the checkout's repository.
const TRACKING_PREFIX: &str = "refs/remotes/origin/";

/// Fetches `branch` (or `commit` of it) from `source` into `dest` and checks
/// it out. `dest` must not exist or be an empty folder; on failure it is
/// left as it was found.
pub(crate) fn fetch(
    source: &GitSource,
    branch: &Branch,
    commit: Option<&str>,
    dest: &Path,
    credentials: Option<&SourceCredentials>,
) -> BackendResult<Checkout> {
    let commit = commit.map(parse_commit).transpose()?;
    check_local(source)?;
    let existed = match std::fs::read_dir(dest).map(|mut entries| entries.next().is_none()) {
        Ok(true) => true,
        Ok(false) => {
            return Err(BackendError::permanent(format!(
                "cannot check out into {}: the folder already exists and is not empty",
                dest.display()
            )))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
        Err(e) => {
            return Err(BackendError::permanent(format!(
                "cannot check out into {}: {e}",
                dest.display()
            )))
        }
    };
    let result = fetch_into(source, branch, commit.as_deref(), dest, credentials);
    if result.is_err() {
        clean_up(dest, existed);
    }
    result
}

/// A commit id as given by a person: 4 to 40 hex digits, any case.
fn parse_commit(commit: &str) -> BackendResult<String> {
    let commit = commit.trim();
    if (4..=40).contains(&commit.len()) && commit.chars().all(|c| c.is_ascii_hexdigit()) {
        Ok(commit.to_ascii_lowercase())
    } else {
        Err(BackendError::permanent(format!(
            "'{}' is not a commit id; give 4 to 40 hexadecimal digits",
            commit.escape_debug()
        )))
    }
}

fn fetch_into(
    source: &GitSource,
    branch: &Branch,
    commit: Option<&str>,
    dest: &Path,
    credentials: Option<&SourceCredentials>,
) -> BackendResult<Checkout> {
    let local_error = |e: git2::Error| {
        BackendError::permanent(format!(
            "cannot write the checkout in {}: {}",
            dest.display(),
            e.message()
        ))
    };
    let mut init = RepositoryInitOptions::new();
    init.no_reinit(true).external_template(false);
    let repo = Repository::init_opts(dest, &init).map_err(local_error)?;

    // libgit2's local transport refuses shallow fetches.
    let depth = (!source.is_local()).then_some(1);
    let mut head = fetch_branch(&repo, source, branch, depth, credentials)?;
    let target = match commit {
        None => head,
        Some(wanted) if head.to_string().starts_with(wanted) => head,
        Some(wanted) => {
            let mut found = find_on_branch(&repo, head, wanted)?;
            for depth in [DEEPEN_STEP, UNSHALLOW] {
                if found.is_some() || !repo.is_shallow() {
                    break;
                }
                tracing::debug!(source = %source.redacted(), branch = branch.as_str(), depth, "deepening to find commit {wanted}");
                head = fetch_branch(&repo, source, branch, Some(depth), credentials)?;
                found = find_on_branch(&repo, head, wanted)?;
            }
            found.ok_or_else(|| {
                BackendError::permanent(format!(
                    "commit {} is not on branch '{}' of {} (its head is {})",
                    short(wanted),
                    branch.as_str(),
                    source.redacted(),
                    short(&head.to_string())
                ))
            })?
        }
    };

    let commit = repo.find_commit(target).map_err(local_error)?;
    let mut options = CheckoutBuilder::new();
    options.force();
    repo.checkout_tree(commit.as_object(), Some(&mut options))
        .map_err(local_error)?;
    repo.set_head_detached(target).map_err(local_error)?;
    let message = String::from_utf8_lossy(commit.message_bytes());
    let summary = message.lines().next().unwrap_or_default().trim().to_owned();
    tracing::info!(
        source = %source.redacted(),
        branch = branch.as_str(),
        commit = %target,
        shallow = repo.is_shallow(),
        "checked out"
    );
    Ok(Checkout {
        commit: target.to_string(),
        summary,
        path: dest.to_owned(),
    })
}

/// Fetches the branch into its remote-tracking ref and returns the head the
/// remote advertised. The remote is anonymous and `FETCH_HEAD` and the
/// reflog message are kept free of the URL, so it is written nowhere.
fn fetch_branch(
    repo: &Repository,
    source: &GitSource,
    branch: &Branch,
    depth: Option<i32>,
    credentials: Option<&SourceCredentials>,
) -> BackendResult<Oid> {
    let mut remote = repo
        .remote_anonymous(source.as_str())
        .map_err(|e| unreachable(source, &e))?;
    let refspec = format!("+refs/heads/{0}:{TRACKING_PREFIX}{0}", branch.as_str());
    let mut options = FetchOptions::new();
    options
        .remote_callbacks(callbacks(credentials))
        .proxy_options(proxy())
        .download_tags(AutotagOption::None)
        .update_fetchhead(false);
    if let Some(depth) = depth {
        options.depth(depth);
    }
    remote
        .fetch(&[refspec.as_str()], Some(&mut options), Some("fetch"))
        .map_err(|e| unreachable(source, &e))?;
    let heads = remote.list().map_err(|e| unreachable(source, &e))?;
    let head = branch_head(source, branch, heads)?;
    let tracking = format!("{TRACKING_PREFIX}{}", branch.as_str());
    match repo.refname_to_id(&tracking) {
        Ok(fetched) => Ok(fetched),
        Err(e) => Err(BackendError::transient(format!(
            "fetching branch '{}' of {} did not bring its head {}: {}",
            branch.as_str(),
            source.redacted(),
            short(&head.to_string()),
            e.message()
        ))),
    }
}

/// The commit `wanted` names, if it is the branch head or one of its
/// ancestors in what has been fetched so far.
fn find_on_branch(repo: &Repository, head: Oid, wanted: &str) -> BackendResult<Option<Oid>> {
    let id = match repo.find_commit_by_prefix(wanted) {
        Ok(commit) => commit.id(),
        Err(e) if e.code() == ErrorCode::Ambiguous => {
            return Err(BackendError::permanent(format!(
                "commit id {wanted} is ambiguous; give more of its digits"
            )))
        }
        Err(_) => return Ok(None),
    };
    let on_branch = id == head || repo.graph_descendant_of(head, id).unwrap_or(false);
    Ok(on_branch.then_some(id))
}

/// Puts `dest` back as it was found: absent, or an empty folder.
fn clean_up(dest: &Path, existed: bool) {
    let removed = std::fs::remove_dir_all(dest).and_then(|()| {
        if existed {
            std::fs::create_dir(dest)
        } else {
            Ok(())
        }
    });
    if let Err(e) = removed {
        tracing::warn!(dest = %dest.display(), error = %e, "cannot clean up a failed checkout");
    }
}

#[cfg(test)]
mod tests {
    use super::parse_commit;

    #[test]
    fn commit_ids_are_hex() {
        assert_eq!(parse_commit(" ABCdef1 ").unwrap(), "abcdef1");
        assert!(parse_commit("abc").is_err());
        assert!(parse_commit("HEAD~1").is_err());
        assert!(parse_commit(&"a".repeat(41)).is_err());
    }
}
