//! `GitFetcher` against real repositories made with git2 in temp folders.

use easydeploy_core::ports::{BackendResult, Checkout, SourceFetcher};
use easydeploy_core::{Branch, GitSource};
use easydeploy_git::{short, GitFetcher};
use easydeploy_testkit::free_port;
use git2::{Commit, Oid, Repository, Signature, Time};
use std::cell::Cell;
use std::fs;
use std::path::{Path, PathBuf};
use tempfile::TempDir;

/// A repository with three commits on `main` and one on `feature`, which
/// branches off the first commit of `main`.
struct Origin {
    dir: TempDir,
    main: Vec<Oid>,
    feature: Oid,
}

impl Origin {
    fn new() -> Self {
        let dir = TempDir::new().unwrap();
        let repo = Repository::init(dir.path()).unwrap();
        let clock = Cell::new(0);
        let first = commit(
            &repo,
            &clock,
            "main",
            &[("app.py", "v1"), ("README.md", "hello")],
            "Add app",
        );
        let second = commit(
            &repo,
            &clock,
            "main",
            &[("app.py", "v2"), ("README.md", "hello"), ("lib/util.py", "u2")],
            "Second version\n\nWith a body that is not the summary.",
        );
        let third = commit(
            &repo,
            &clock,
            "main",
            &[("app.py", "v3"), ("README.md", "hello"), ("lib/util.py", "u3")],
            "Third version",
        );
        repo.reference("refs/heads/feature", first, false, "branch")
            .unwrap();
        let feature = commit(
            &repo,
            &clock,
            "feature",
            &[("app.py", "feature"), ("feature.txt", "only here")],
            "Feature work",
        );
        repo.set_head("refs/heads/main").unwrap();
        Self {
            dir,
            main: vec![first, second, third],
            feature,
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn source(&self) -> GitSource {
        GitSource::parse(self.path().to_str().unwrap()).unwrap()
    }

    fn file_url(&self) -> GitSource {
        GitSource::parse(&format!("file://{}", self.path().display())).unwrap()
    }
}

/// Commits exactly `files` (a snapshot, not a change) on `branch`.
fn commit(repo: &Repository, clock: &Cell<i64>, branch: &str, files: &[(&str, &str)], message: &str) -> Oid {
    let workdir = repo.workdir().unwrap().to_owned();
    let mut index = repo.index().unwrap();
    index.clear().unwrap();
    for (name, content) in files {
        let path = workdir.join(name);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, content).unwrap();
        index.add_path(Path::new(name)).unwrap();
    }
    index.write().unwrap();
    let tree = repo.find_tree(index.write_tree().unwrap()).unwrap();
    clock.set(clock.get() + 60);
    let when = Time::new(1_700_000_000 + clock.get(), 0);
    let signature = Signature::new("Test", "test@example.com", &when).unwrap();
    let refname = format!("refs/heads/{branch}");
    let parent = repo
        .refname_to_id(&refname)
        .ok()
        .map(|id| repo.find_commit(id).unwrap());
    let parents: Vec<&Commit<'_>> = parent.iter().collect();
    repo.commit(Some(&refname), &signature, &signature, message, &tree, &parents)
        .unwrap()
}

fn branch(name: &str) -> Branch {
    Branch::parse(name).unwrap()
}

fn read(dest: &Path, file: &str) -> String {
    fs::read_to_string(dest.join(file)).unwrap()
}

fn dest_in(dir: &TempDir) -> PathBuf {
    dir.path().join("workspaces").join("checkout")
}

/// An [`Origin`], a temp dir for the checkout and the checkout's path in it.
fn origin_and_dest() -> (Origin, TempDir, PathBuf) {
    let work = TempDir::new().unwrap();
    let dest = dest_in(&work);
    (Origin::new(), work, dest)
}

/// `GitFetcher::fetch` of `branch_name` (at `commit`) into `dest`.
async fn fetch(
    source: &GitSource,
    branch_name: &str,
    commit: Option<&str>,
    dest: &Path,
) -> BackendResult<Checkout> {
    GitFetcher::new()
        .fetch(source, &branch(branch_name), commit, dest)
        .await
}

#[tokio::test]
async fn resolve_returns_the_branch_head() {
    let origin = Origin::new();
    let fetcher = GitFetcher::new();
    let main = fetcher.resolve(&origin.source(), &branch("main")).await.unwrap();
    assert_eq!(main, origin.main[2].to_string());
    let feature = fetcher
        .resolve(&origin.file_url(), &branch("feature"))
        .await
        .unwrap();
    assert_eq!(feature, origin.feature.to_string());
}

#[tokio::test]
async fn resolve_of_an_unknown_branch_lists_the_branches() {
    let origin = Origin::new();
    let source = origin.source();
    let err = GitFetcher::new()
        .resolve(&source, &branch("nope"))
        .await
        .unwrap_err();
    assert!(!err.retryable);
    assert_eq!(
        err.message,
        format!(
            "branch 'nope' does not exist in {}; its branches are: feature, main",
            source.redacted()
        )
    );
}

#[tokio::test]
async fn resolve_lists_at_most_ten_branches() {
    let origin = Origin::new();
    let repo = Repository::open(origin.path()).unwrap();
    for i in 0..12 {
        repo.reference(
            &format!("refs/heads/extra-{i:02}"),
            origin.main[0],
            false,
            "extra",
        )
        .unwrap();
    }
    let err = GitFetcher::new()
        .resolve(&origin.source(), &branch("nope"))
        .await
        .unwrap_err();
    assert!(err.message.ends_with(" and 4 more"), "{}", err.message);
    let listed = err.message.split("its branches are: ").nth(1).unwrap();
    assert_eq!(listed.split(", ").count(), 10, "{}", err.message);
}

#[tokio::test]
async fn resolve_of_a_missing_or_non_git_path_cannot_reach() {
    let dir = TempDir::new().unwrap();
    let fetcher = GitFetcher::new();
    let missing = dir.path().join("missing");
    let not_git = dir.path().join("plain");
    fs::create_dir(&not_git).unwrap();
    for source in [
        missing.display().to_string(),
        format!("file://{}", missing.display()),
        not_git.display().to_string(),
        format!("file://{}", not_git.display()),
    ] {
        let source = GitSource::parse(&source).unwrap();
        let err = fetcher.resolve(&source, &branch("main")).await.unwrap_err();
        assert!(!err.retryable, "{}", err.message);
        assert!(
            err.message
                .starts_with(&format!("cannot reach the repository {}: ", source.as_str())),
            "{}",
            err.message
        );
    }
}

#[tokio::test]
async fn resolve_of_a_closed_port_is_transient() {
    let port = free_port();
    let source = GitSource::parse(&format!("git://127.0.0.1:{port}/repo")).unwrap();
    let err = GitFetcher::new()
        .resolve(&source, &branch("main"))
        .await
        .unwrap_err();
    assert!(err.retryable, "{}", err.message);
    assert!(
        err.message.starts_with(&format!(
            "cannot reach the repository git://127.0.0.1:{port}/repo: "
        )),
        "{}",
        err.message
    );
}

#[tokio::test]
async fn fetch_checks_out_the_branch_head() {
    let (origin, _work, dest) = origin_and_dest();
    let checkout = fetch(&origin.source(), "main", None, &dest).await.unwrap();
    assert_eq!(checkout.commit, origin.main[2].to_string());
    assert_eq!(checkout.summary, "Third version");
    assert_eq!(checkout.path, dest);
    assert_eq!(read(&dest, "app.py"), "v3");
    assert_eq!(read(&dest, "lib/util.py"), "u3");
    assert!(!dest.join("feature.txt").exists());

    let repo = Repository::open(&dest).unwrap();
    assert!(repo.head_detached().unwrap());
    assert_eq!(repo.head().unwrap().target(), Some(origin.main[2]));
    assert!(repo.statuses(None).unwrap().is_empty(), "the work tree is clean");
    // The local transport cannot fetch shallowly: the branch's whole history
    // is there.
    assert!(!repo.is_shallow());
    let mut walk = repo.revwalk().unwrap();
    walk.push_head().unwrap();
    assert_eq!(walk.count(), 3);
}

#[tokio::test]
async fn fetch_checks_out_another_branch() {
    let (origin, _work, dest) = origin_and_dest();
    let checkout = fetch(&origin.source(), "feature", None, &dest).await.unwrap();
    assert_eq!(checkout.commit, origin.feature.to_string());
    assert_eq!(checkout.summary, "Feature work");
    assert_eq!(read(&dest, "app.py"), "feature");
    assert_eq!(read(&dest, "feature.txt"), "only here");
    assert!(!dest.join("README.md").exists());
    assert!(!dest.join("lib").exists());
}

#[tokio::test]
async fn fetch_checks_out_an_older_commit_of_the_branch() {
    let origin = Origin::new();
    let work = TempDir::new().unwrap();

    let first = origin.main[0].to_string();
    let dest = work.path().join("first");
    let checkout = fetch(&origin.source(), "main", Some(&first), &dest)
        .await
        .unwrap();
    assert_eq!(checkout.commit, first);
    assert_eq!(checkout.summary, "Add app");
    assert_eq!(read(&dest, "app.py"), "v1");
    assert!(!dest.join("lib").exists());

    // An abbreviated id works too, and the summary is the first line only.
    let second = origin.main[1].to_string();
    let dest = work.path().join("second");
    let checkout = fetch(&origin.source(), "main", Some(short(&second)), &dest)
        .await
        .unwrap();
    assert_eq!(checkout.commit, second);
    assert_eq!(checkout.summary, "Second version");
    assert_eq!(read(&dest, "app.py"), "v2");

    // The head given explicitly.
    let third = origin.main[2].to_string();
    let dest = work.path().join("third");
    let checkout = fetch(&origin.source(), "main", Some(&third), &dest)
        .await
        .unwrap();
    assert_eq!(checkout.commit, third);
}

#[tokio::test]
async fn fetch_of_a_commit_not_on_the_branch_fails_and_cleans_up() {
    let (origin, _work, dest) = origin_and_dest();
    let source = origin.source();

    let feature = origin.feature.to_string();
    let err = fetch(&source, "main", Some(&feature), &dest).await.unwrap_err();
    assert!(!err.retryable);
    assert_eq!(
        err.message,
        format!(
            "commit {} is not on branch 'main' of {} (its head is {})",
            short(&feature),
            source.redacted(),
            short(&origin.main[2].to_string())
        )
    );
    assert!(!dest.exists(), "a failed fetch leaves no folder behind");

    let unknown = "0123456789abcdef0123456789abcdef01234567";
    let err = fetch(&source, "main", Some(unknown), &dest).await.unwrap_err();
    assert!(
        err.message.starts_with("commit 0123456 is not on branch 'main'"),
        "{}",
        err.message
    );

    let err = fetch(&source, "main", Some("HEAD~1"), &dest).await.unwrap_err();
    assert!(err.message.contains("is not a commit id"), "{}", err.message);
    assert!(!dest.exists());
}

#[tokio::test]
async fn fetch_of_an_unknown_branch_lists_the_branches() {
    let (origin, _work, dest) = origin_and_dest();
    let err = fetch(&origin.source(), "nope", None, &dest).await.unwrap_err();
    assert!(
        err.message.ends_with("its branches are: feature, main"),
        "{}",
        err.message
    );
    assert!(!dest.exists());
}

#[tokio::test]
async fn fetch_refuses_a_non_empty_destination_but_takes_an_empty_one() {
    let origin = Origin::new();
    let work = TempDir::new().unwrap();

    let busy = work.path().join("busy");
    fs::create_dir(&busy).unwrap();
    fs::write(busy.join("keep.txt"), "mine").unwrap();
    let err = fetch(&origin.source(), "main", None, &busy).await.unwrap_err();
    assert!(err.message.contains("is not empty"), "{}", err.message);
    assert_eq!(read(&busy, "keep.txt"), "mine");

    let empty = work.path().join("empty");
    fs::create_dir(&empty).unwrap();
    fetch(&origin.source(), "main", None, &empty).await.unwrap();
    assert_eq!(read(&empty, "app.py"), "v3");

    // A failure with an empty folder leaves it empty.
    let again = work.path().join("again");
    fs::create_dir(&again).unwrap();
    fetch(&origin.source(), "nope", None, &again).await.unwrap_err();
    assert_eq!(fs::read_dir(&again).unwrap().count(), 0);
}

#[tokio::test]
async fn fetch_via_a_file_url_works() {
    let (origin, _work, dest) = origin_and_dest();
    let first = origin.main[0].to_string();
    let checkout = fetch(&origin.file_url(), "main", Some(&first), &dest)
        .await
        .unwrap();
    assert_eq!(checkout.commit, first);
    assert_eq!(read(&dest, "app.py"), "v1");
}

/// Every file of `dir`, recursively, except git objects.
fn files_outside_objects(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            if !path.ends_with("objects") {
                files_outside_objects(&path, out);
            }
        } else {
            out.push(path);
        }
    }
}

#[tokio::test]
async fn the_checkout_does_not_record_the_source_url() {
    let (origin, _work, dest) = origin_and_dest();
    let source = origin.file_url();
    fetch(&source, "main", Some(&origin.main[1].to_string()), &dest)
        .await
        .unwrap();
    let config = fs::read_to_string(dest.join(".git/config")).unwrap();
    assert!(!config.contains("[remote"), "{config}");
    assert!(!config.contains("url"), "{config}");
    // libgit2 truncates FETCH_HEAD on every fetch; it must stay empty.
    let fetch_head = fs::read_to_string(dest.join(".git/FETCH_HEAD")).unwrap_or_default();
    assert_eq!(fetch_head, "");

    let origin_path = origin.path().to_str().unwrap();
    let mut files = Vec::new();
    files_outside_objects(&dest.join(".git"), &mut files);
    assert!(!files.is_empty());
    for file in files {
        let text = String::from_utf8_lossy(&fs::read(&file).unwrap()).into_owned();
        assert!(
            !text.contains(origin_path),
            "{} mentions the source: {text}",
            file.display()
        );
    }
}

/// `git daemon` serving `base` on a free port; stopped when dropped.
struct Daemon {
    child: std::process::Child,
    port: u16,
}

impl Daemon {
    /// None when no `git` binary is installed.
    fn start(base: &Path) -> Option<Self> {
        let port = free_port();
        // `git daemon` forks `git-daemon`; run the latter so that killing
        // the child stops the server.
        let exec_path = std::process::Command::new("git")
            .arg("--exec-path")
            .output()
            .ok()?;
        let exec_path = String::from_utf8(exec_path.stdout).ok()?;
        let child = std::process::Command::new(Path::new(exec_path.trim()).join("git-daemon"))
            .arg("--reuseaddr")
            .arg("--export-all")
            .arg("--listen=127.0.0.1")
            .arg(format!("--port={port}"))
            .arg(format!("--base-path={}", base.display()))
            .arg(base)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .ok()?;
        let mut daemon = Self { child, port };
        // Dropped (the daemon killed) if this panics.
        easydeploy_testkit::wait_listening(
            &mut daemon.child,
            port,
            std::time::Duration::from_secs(30),
            "git daemon",
        );
        Some(daemon)
    }

    fn url(&self, repo: &str) -> GitSource {
        GitSource::parse(&format!("git://127.0.0.1:{}/{repo}", self.port)).unwrap()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Over a smart transport (git protocol) the fetch is shallow and deepens
/// on demand, both by a step and to the full history.
#[tokio::test]
async fn remote_fetch_is_shallow_and_deepens_for_older_commits() {
    let base = TempDir::new().unwrap();
    let repo = Repository::init(base.path().join("long")).unwrap();
    let clock = Cell::new(0);
    let commits: Vec<Oid> = (0..60)
        .map(|i| {
            commit(
                &repo,
                &clock,
                "main",
                &[("n.txt", &i.to_string())],
                &format!("Commit {i}"),
            )
        })
        .collect();
    repo.set_head("refs/heads/main").unwrap();
    let Some(daemon) = Daemon::start(base.path()) else {
        eprintln!("skipped: no git binary to run git daemon");
        return;
    };
    let source = daemon.url("long");
    let fetcher = GitFetcher::new();
    assert_eq!(
        fetcher.resolve(&source, &branch("main")).await.unwrap(),
        commits[59].to_string()
    );

    let work = TempDir::new().unwrap();
    let cases = [(None, 59, true), (Some(55), 55, true), (Some(0), 0, false)];
    for (wanted, expected, shallow) in cases {
        let dest = work.path().join(format!("at-{expected}"));
        let wanted = wanted.map(|i: usize| commits[i].to_string());
        let checkout = fetch(&source, "main", wanted.as_deref(), &dest).await.unwrap();
        assert_eq!(checkout.commit, commits[expected].to_string());
        assert_eq!(checkout.summary, format!("Commit {expected}"));
        assert_eq!(read(&dest, "n.txt"), expected.to_string());
        let fetched = Repository::open(&dest).unwrap();
        assert_eq!(fetched.is_shallow(), shallow, "commit {expected}");
    }
    let head_only = Repository::open(work.path().join("at-59")).unwrap();
    let mut walk = head_only.revwalk().unwrap();
    walk.push_head().unwrap();
    assert_eq!(walk.count(), 1, "the head fetch brings one commit");

    let other = TempDir::new().unwrap();
    let err = fetcher
        .fetch(
            &source,
            &branch("main"),
            Some("0123456789abcdef"),
            &other.path().join("x"),
        )
        .await
        .unwrap_err();
    assert!(err.message.contains("is not on branch 'main'"), "{}", err.message);
}
