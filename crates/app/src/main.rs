//! `ticketd`: the ticket gateway in front of InvGate Service Management.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use secrecy::ExposeSecret;
use ticketd::config::{DatabaseArgs, LogArgs, ServeArgs};
use ticketd::{Application, telemetry};

#[derive(Debug, Parser)]
#[command(
    name = "ticketd",
    version,
    about = "Creates InvGate service-desk tickets through one safe endpoint"
)]
struct Cli {
    #[command(flatten)]
    log: LogArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Apply pending database migrations, then serve the API.
    Serve(Box<ServeArgs>),
    /// Apply pending database migrations and exit.
    Migrate(DatabaseArgs),
}

// Multi-threaded: diesel's migration harness blocks, and actix-web runs its own workers anyway.
#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let log = match cli.log.settings() {
        Ok(log) => log,
        Err(err) => return config_failure(&err),
    };
    telemetry::init(&log);
    match cli.command {
        Command::Serve(args) => {
            let settings = match args.settings() {
                Ok(settings) => settings,
                Err(err) => return config_failure(&err),
            };
            let app = match Application::build(settings).await {
                Ok(app) => app,
                Err(err) => return failure(&err),
            };
            match app.run_until_stopped().await {
                Ok(()) => {
                    tracing::info!("ticketd stopped");
                    ExitCode::SUCCESS
                }
                Err(err) => failure(&err.into()),
            }
        }
        Command::Migrate(args) => {
            let url = match args.url() {
                Ok(url) => url,
                Err(err) => return config_failure(&err),
            };
            match ticketd::migrate(url.expose_secret()).await {
                Ok(applied) => {
                    tracing::info!(migrations = ?applied, count = applied.len(), "database is up to date");
                    ExitCode::SUCCESS
                }
                Err(err) => failure(&err),
            }
        }
    }
}

fn config_failure(err: &ticketd::config::ConfigError) -> ExitCode {
    eprintln!("ticketd: invalid configuration: {err}");
    ExitCode::from(2)
}

fn failure(err: &anyhow::Error) -> ExitCode {
    tracing::error!(error = ?err, "ticketd failed");
    eprintln!("ticketd: {err:#}");
    ExitCode::FAILURE
}
