//! Account commands: `signup`, `login`, `logout`, `whoami`, `teams`,
//! `tokens`, and the credentials file they keep (mode 0600).

use crate::client::{urlencode, Client};
use anyhow::{anyhow, bail, Context};
use serde_json::{json, Value};
use std::io::{BufRead, IsTerminal};
use std::path::PathBuf;

/// The folder of the credentials file: `EASYDEPLOY_CONFIG_DIR`, else
/// `$XDG_CONFIG_HOME/easydeploy`, else `~/.config/easydeploy`.
pub fn config_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("EASYDEPLOY_CONFIG_DIR").filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(dir));
    }
    if let Some(dir) = std::env::var_os("XDG_CONFIG_HOME").filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(dir).join("easydeploy"));
    }
    std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".config").join("easydeploy"))
}

fn credentials_path() -> anyhow::Result<PathBuf> {
    config_dir()
        .map(|d| d.join("credentials.json"))
        .ok_or_else(|| anyhow!("cannot tell where to keep credentials: set EASYDEPLOY_CONFIG_DIR or HOME"))
}

/// The token saved by `easydeploy login` for the API at `url`, if any.
pub fn saved_token(url: &str) -> Option<String> {
    let text = std::fs::read_to_string(credentials_path().ok()?).ok()?;
    let saved: Value = serde_json::from_str(&text).ok()?;
    (saved["url"].as_str()? == url.trim_end_matches('/'))
        .then(|| saved["token"].as_str().map(str::to_owned))
        .flatten()
}

fn save_credentials(url: &str, email: &str, token: &str) -> anyhow::Result<PathBuf> {
    let path = credentials_path()?;
    let dir = path.parent().unwrap_or(std::path::Path::new("."));
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("cannot create {}", dir.display()))?;
    let body = json!({ "url": url.trim_end_matches('/'), "email": email, "token": token });
    // Write beside it, then rename: the file is never readable by others, not even briefly.
    let tmp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    use std::io::Write;
    file.write_all(format!("{body:#}\n").as_bytes())?;
    std::fs::rename(&tmp, &path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(path)
}

/// The password: `EASYDEPLOY_PASSWORD`, else a prompt on a terminal (not
/// echoed), else one line of standard input.
fn read_password(prompt: &str) -> anyhow::Result<String> {
    if let Ok(password) = std::env::var("EASYDEPLOY_PASSWORD") {
        return Ok(password);
    }
    if std::io::stdin().is_terminal() {
        return rpassword::prompt_password(prompt).context("cannot read the password");
    }
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    let password = line.trim_end_matches(['\r', '\n']).to_owned();
    if password.is_empty() {
        bail!("no password given: type it, pipe it on standard input or set EASYDEPLOY_PASSWORD");
    }
    Ok(password)
}

async fn sign_in(client: &Client, email: &str, password: &str) -> anyhow::Result<()> {
    let issued = client
        .json(
            reqwest::Method::POST,
            "/tokens",
            Some(json!({ "email": email, "password": password, "label": "cli" })),
        )
        .await?;
    let token = issued["token"]
        .as_str()
        .ok_or_else(|| anyhow!("the server answered without a token"))?;
    let path = save_credentials(client.url(), email, token)?;
    println!("signed in as {email} (token saved in {})", path.display());
    Ok(())
}

/// `easydeploy signup --email E`: creates the account and signs in.
pub async fn signup(client: &Client, email: &str) -> anyhow::Result<()> {
    let password = read_password("choose a password (10+ characters): ")?;
    client
        .json(
            reqwest::Method::POST,
            "/users",
            Some(json!({ "email": email, "password": password })),
        )
        .await?;
    println!("account {email} created");
    sign_in(client, email, &password).await
}

/// `easydeploy login --email E`.
pub async fn login(client: &Client, email: &str) -> anyhow::Result<()> {
    let password = read_password("password: ")?;
    sign_in(client, email, &password).await
}

/// `easydeploy logout`: revokes the saved token and forgets it.
pub async fn logout(client: &Client) -> anyhow::Result<()> {
    let path = credentials_path()?;
    if saved_token(client.url()).is_none() {
        bail!(
            "not signed in to {} (no saved token in {})",
            client.url(),
            path.display()
        );
    }
    match client.get("/me").await {
        Ok(me) => {
            if let Some(id) = me["token_id"].as_str() {
                client
                    .json(
                        reqwest::Method::DELETE,
                        &format!("/tokens/{}", urlencode(id)),
                        None,
                    )
                    .await?;
            }
        }
        Err(e) => eprintln!("warning: the token could not be revoked ({e}); forgetting it anyway"),
    }
    std::fs::remove_file(&path).with_context(|| format!("cannot remove {}", path.display()))?;
    println!("signed out");
    Ok(())
}

/// `easydeploy whoami`.
pub async fn whoami(client: &Client) -> anyhow::Result<()> {
    let me = client.get("/me").await?;
    let role = if me["admin"].as_bool() == Some(true) {
        " (administrator)"
    } else {
        ""
    };
    println!("{}{role}", me["email"].as_str().unwrap_or("?"));
    if let Some(login) = me["github_login"].as_str() {
        println!("github: {login}");
    }
    for team in me["teams"].as_array().into_iter().flatten() {
        println!(
            "team {}: {}",
            team["name"].as_str().unwrap_or("?"),
            team["role"].as_str().unwrap_or("?")
        );
    }
    Ok(())
}

/// `easydeploy teams ...`.
#[derive(Debug, clap::Subcommand)]
pub enum TeamsCommand {
    /// Create a team (you are its owner).
    Create {
        /// Team name.
        name: String,
    },
    /// List your teams.
    List,
    /// Show a team's members.
    Show {
        /// Team name.
        name: String,
    },
    /// Add a member (or change their role).
    Add {
        /// Team name.
        team: String,
        /// The member's email (they must have signed up).
        email: String,
        /// owner, deployer or viewer.
        #[arg(long, default_value = "deployer")]
        role: String,
    },
    /// Remove a member.
    Remove {
        /// Team name.
        team: String,
        /// The member's email.
        email: String,
    },
}

fn print_members(team: &Value) {
    for m in team["members"].as_array().into_iter().flatten() {
        println!(
            "{:<40} {}",
            m["email"].as_str().unwrap_or("?"),
            m["role"].as_str().unwrap_or("?")
        );
    }
}

/// Runs a `teams` command.
pub async fn teams(client: &Client, command: TeamsCommand) -> anyhow::Result<()> {
    match command {
        TeamsCommand::Create { name } => {
            client
                .json(reqwest::Method::POST, "/teams", Some(json!({ "name": name })))
                .await?;
            println!(
                "team {name} created; add members with `easydeploy teams add {name} EMAIL --role deployer`"
            );
        }
        TeamsCommand::List => {
            for t in client.get("/teams").await?.as_array().into_iter().flatten() {
                println!(
                    "{:<40} {}",
                    t["name"].as_str().unwrap_or("?"),
                    t["role"].as_str().unwrap_or("?")
                );
            }
        }
        TeamsCommand::Show { name } => {
            print_members(&client.get(&format!("/teams/{}", urlencode(&name))).await?)
        }
        TeamsCommand::Add { team, email, role } => {
            let detail = client
                .json(
                    reqwest::Method::POST,
                    &format!("/teams/{}/members", urlencode(&team)),
                    Some(json!({ "email": email, "role": role })),
                )
                .await?;
            print_members(&detail);
        }
        TeamsCommand::Remove { team, email } => {
            client
                .json(
                    reqwest::Method::DELETE,
                    &format!("/teams/{}/members/{}", urlencode(&team), urlencode(&email)),
                    None,
                )
                .await?;
            println!("{email} removed from {team}");
        }
    }
    Ok(())
}

/// `easydeploy tokens ...`.
#[derive(Debug, clap::Subcommand)]
pub enum TokensCommand {
    /// List your API tokens (never their secrets).
    List,
    /// Revoke a token by id.
    Revoke {
        /// Token id.
        id: String,
    },
}

/// Runs a `tokens` command.
pub async fn tokens(client: &Client, command: TokensCommand) -> anyhow::Result<()> {
    match command {
        TokensCommand::List => {
            for t in client.get("/tokens").await?.as_array().into_iter().flatten() {
                println!(
                    "{:<18} {:<12} created {}  last used {}",
                    t["id"].as_str().unwrap_or("?"),
                    t["label"].as_str().unwrap_or("?"),
                    t["created_at"].as_str().unwrap_or("?"),
                    t["last_used_at"].as_str().unwrap_or("never")
                );
            }
        }
        TokensCommand::Revoke { id } => {
            client
                .json(
                    reqwest::Method::DELETE,
                    &format!("/tokens/{}", urlencode(&id)),
                    None,
                )
                .await?;
            println!("token {id} revoked");
        }
    }
    Ok(())
}

/// `easydeploy github ...`: your GitHub repositories (after signing in with GitHub).
#[derive(Debug, clap::Subcommand)]
pub enum GithubCommand {
    /// List the repositories you can deploy.
    Repos {
        /// Page of results (30 a page).
        #[arg(long, default_value_t = 1)]
        page: u32,
    },
    /// List a repository's branches and their head commits.
    Branches {
        /// `OWNER/REPO`.
        repo: String,
    },
}

/// Runs a `github` command.
pub async fn github(client: &Client, command: GithubCommand) -> anyhow::Result<()> {
    match command {
        GithubCommand::Repos { page } => {
            let answer = client.get(&format!("/github/repos?page={page}")).await?;
            for r in answer["repos"].as_array().into_iter().flatten() {
                println!(
                    "{:<50} {:<8} default branch {}",
                    r["full_name"].as_str().unwrap_or("?"),
                    if r["private"].as_bool() == Some(true) {
                        "private"
                    } else {
                        "public"
                    },
                    r["default_branch"].as_str().unwrap_or("?")
                );
            }
            if let Some(next) = answer["next_page"].as_u64() {
                println!("more: easydeploy github repos --page {next}");
            }
        }
        GithubCommand::Branches { repo } => {
            let (owner, name) = repo
                .split_once('/')
                .ok_or_else(|| anyhow!("give the repository as OWNER/REPO"))?;
            let path = format!("/github/repos/{}/{}/branches", urlencode(owner), urlencode(name));
            for b in client.get(&path).await?.as_array().into_iter().flatten() {
                println!(
                    "{:<40} {}",
                    b["name"].as_str().unwrap_or("?"),
                    b["commit"].as_str().unwrap_or("?")
                );
            }
        }
    }
    Ok(())
}
