//! `easydeploy`: git repository in, load-balanced container service out.

use clap::{Parser, Subcommand};
use easydeploy::client::{self, Client, ClientConfig, DeployArgs};
use easydeploy::server::{self, ServerConfig};

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
    let client = Client::new(&cli.client)?;
    match cli.command {
        Command::Server(_) => unreachable!("handled above"),
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
