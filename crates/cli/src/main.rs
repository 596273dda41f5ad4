//! `easydeploy`: git repository in, load-balanced container service out.

use clap::{Parser, Subcommand};
use easydeploy::account;
use easydeploy::client::{self, Client, ClientConfig, DeployArgs};
use easydeploy::server::{self, ServerConfig};

/// mimalloc instead of the system allocator: the edge proxy, which serves
/// every request in this process, spent 4 % of its CPU in glibc's malloc
/// and free; with mimalloc its CPU per proxied request is 8–10 % lower
/// (docs/edge-proxy-benchmark.md, "The allocator").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "easydeploy",
    version,
    about = "Deploy a git repository as a load-balanced container service"
)]
struct Cli {
    #[command(flatten)]
    client: ClientConfig,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the control plane (API) and the edge proxy.
    Server(Box<ServerConfig>),
    /// Deploy a repository (a new app, or a new version of an existing one).
    Deploy(Box<DeployArgs>),
    /// List apps.
    Apps,
    /// Show an app's release, replicas and recent deployments.
    Status {
        /// App name.
        app: String,
    },
    /// Show an app's output, or with --build its latest deployment's build log.
    Logs {
        /// App name.
        app: String,
        /// The latest deployment's build log instead of the app's output.
        #[arg(long)]
        build: bool,
        /// Keep streaming new lines.
        #[arg(long, short = 'f')]
        follow: bool,
        /// Lines from the end of each replica's output.
        #[arg(long, default_value_t = 100)]
        tail: usize,
    },
    /// Remove an app: replicas, images, route, workspace and history.
    Destroy {
        /// App name.
        app: String,
    },
    /// List the supported frameworks.
    Frameworks,
    /// Deployment statistics: outcomes, step durations, deploys per day.
    Stats {
        /// Only this app.
        app: Option<String>,
    },
    /// Request and resource metrics of an app: current figures and sparklines.
    Metrics(easydeploy::metrics::MetricsArgs),
    /// AWS: create or adopt the shared infrastructure.
    #[command(subcommand)]
    Aws(easydeploy::aws::AwsCommand),
    /// List an app's releases.
    Releases {
        /// App name.
        app: String,
    },
    /// Re-release an earlier release (image + configuration) without rebuilding.
    Rollback {
        /// App name.
        app: String,
        /// Release number (default: the one before the live release).
        #[arg(long)]
        to: Option<i64>,
    },
    /// Set the number of replicas (turns autoscaling off).
    Scale {
        /// App name.
        app: String,
        /// Replicas wanted.
        #[arg(long)]
        replicas: i64,
    },
    /// Scale replicas with the request rate.
    Autoscale {
        /// App name.
        app: String,
        /// Fewest replicas.
        #[arg(long, required_unless_present = "off")]
        min: Option<i64>,
        /// Most replicas.
        #[arg(long, required_unless_present = "off")]
        max: Option<i64>,
        /// Requests per second each replica should serve.
        #[arg(long, required_unless_present = "off")]
        target_rps: Option<f64>,
        /// Turn autoscaling off.
        #[arg(long, conflicts_with_all = ["min", "max", "target_rps"])]
        off: bool,
    },
    /// Show, set (--webhook URL, thresholds) or turn off (--off) an app's alerts.
    Alerts(easydeploy::alerts::AlertsArgs),
    /// Manage an app's environment variables (a change makes a new release, no rebuild).
    Env {
        #[command(subcommand)]
        action: EnvAction,
    },
    /// Create an account on the server and sign in.
    Signup {
        /// Your email.
        #[arg(long)]
        email: String,
    },
    /// Sign in; the token is saved in your config dir (mode 0600).
    Login {
        /// Your email.
        #[arg(long)]
        email: String,
    },
    /// Sign out: revoke and forget the saved token.
    Logout,
    /// Show who you are signed in as, and your teams.
    Whoami,
    /// Manage teams and their members.
    #[command(subcommand)]
    Teams(easydeploy::account::TeamsCommand),
    /// List or revoke your API tokens.
    #[command(subcommand)]
    Tokens(easydeploy::account::TokensCommand),
    /// Your GitHub repositories and branches (after signing in with GitHub).
    #[command(subcommand)]
    Github(easydeploy::account::GithubCommand),
}

#[derive(Subcommand)]
enum EnvAction {
    /// Set variables: NAME=value...
    Set {
        /// App name.
        app: String,
        /// NAME=value pairs.
        #[arg(required = true)]
        vars: Vec<String>,
    },
    /// Remove variables by name.
    Unset {
        /// App name.
        app: String,
        /// Names.
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// List variables (values masked unless --reveal).
    List {
        /// App name.
        app: String,
        /// Show the values (deployers and owners only).
        #[arg(long)]
        reveal: bool,
    },
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    if let Command::Server(config) = cli.command {
        tracing_subscriber::fmt()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_default_env()
                    .unwrap_or_else(|_| "info,sqlx=warn,bollard=warn,hyper=warn".into()),
            )
            .init();
        let running = server::start(*config).await?;
        println!(
            "easydeploy server: API http://{}  apps http://APP.<domain>:{}",
            running.api_addr,
            running.proxy_addr.port()
        );
        wait_for_signal().await;
        tracing::info!("shutting down: apps keep running");
        running.stop().await;
        return Ok(());
    }
    if let Command::Aws(command) = cli.command {
        return easydeploy::aws::run(command).await;
    }
    let client = Client::new(&cli.client)?;
    match cli.command {
        Command::Server(_) | Command::Aws(_) => unreachable!("handled above"),
        Command::Deploy(args) => client::deploy(&client, *args).await,
        Command::Apps => client::apps(&client).await,
        Command::Status { app } => client::status(&client, &app).await,
        Command::Logs {
            app,
            build,
            follow,
            tail,
        } => client::logs(&client, &app, build, follow, tail).await,
        Command::Destroy { app } => client::destroy(&client, &app).await,
        Command::Frameworks => client::frameworks(&client).await,
        Command::Stats { app } => client::stats(&client, app.as_deref()).await,
        Command::Releases { app } => client::releases(&client, &app).await,
        Command::Rollback { app, to } => client::rollback(&client, &app, to).await,
        Command::Scale { app, replicas } => client::scale(&client, &app, replicas).await,
        Command::Autoscale {
            app,
            min,
            max,
            target_rps,
            off,
        } => {
            let bounds = match (off, min, max, target_rps) {
                (false, Some(min), Some(max), Some(rps)) => Some((min, max, rps)),
                _ => None,
            };
            client::autoscale(&client, &app, bounds).await
        }
        Command::Alerts(args) => easydeploy::alerts::run(&client, args).await,
        Command::Metrics(args) => easydeploy::metrics::run(&client, args).await,
        Command::Env { action } => match action {
            EnvAction::Set { app, vars } => client::env(&client, &app, vars, Vec::new(), false).await,
            EnvAction::Unset { app, names } => client::env(&client, &app, Vec::new(), names, false).await,
            EnvAction::List { app, reveal } => {
                client::env(&client, &app, Vec::new(), Vec::new(), reveal).await
            }
        },
        Command::Signup { email } => account::signup(&client, &email).await,
        Command::Login { email } => account::login(&client, &email).await,
        Command::Logout => account::logout(&client).await,
        Command::Whoami => account::whoami(&client).await,
        Command::Teams(command) => account::teams(&client, command).await,
        Command::Tokens(command) => account::tokens(&client, command).await,
        Command::Github(command) => account::github(&client, command).await,
    }
}

async fn wait_for_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
