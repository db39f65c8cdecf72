//! `ticketd`: the ticket gateway in front of InvGate Service Management.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use secrecy::ExposeSecret;
use ticketd::config::{ConfigError, DatabaseArgs, LogArgs, LogFormat, ServeArgs};
use ticketd::demo::DemoArgs;
use ticketd::token::TokenArgs;
use ticketd::{Application, telemetry};

/// mimalloc rather than glibc's malloc: a ticket allocates and frees a few hundred small blocks,
/// and glibc's allocator (with its fastbin consolidation) was about 16% of ticketd's CPU in the
/// profile; mimalloc runs about 13% fewer instructions per ticket (docs/performance.md). Built
/// without transparent huge pages, which doubled idle memory.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
    /// Run everything on embedded defaults: a throwaway PostgreSQL, the InvGate simulator and the
    /// gateway; prints a token and curl commands. Ctrl-C stops and removes it all.
    Demo(DemoArgs),
    /// Print an HS256 token for a caller, signed with JWT_SECRET.
    Token(TokenArgs),
}

// Multi-threaded: diesel's migration harness blocks, and actix-web runs its own workers anyway.
#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    // The demo is for people at a terminal; the service's logs are for machines.
    let default_format = if matches!(cli.command, Command::Demo(_)) {
        LogFormat::Pretty
    } else {
        LogFormat::Json
    };
    match cli.log.settings(default_format) {
        Ok(log) => telemetry::init(&log),
        Err(err) => return config_failure(&err),
    }
    let code = run(cli.command).await;
    // Log lines are written by a background thread: let it finish before the process ends.
    telemetry::flush();
    code
}

async fn run(command: Command) -> ExitCode {
    match command {
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
        Command::Demo(args) => match ticketd::demo::run(args).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => failure(&err),
        },
        Command::Token(args) => match args.token() {
            Ok(token) => {
                println!("{token}");
                ExitCode::SUCCESS
            }
            Err(err) => config_failure(&err),
        },
    }
}

fn config_failure(err: &ConfigError) -> ExitCode {
    eprintln!("ticketd: invalid configuration: {err}");
    ExitCode::from(2)
}

/// The process's last words: one line, with the cause chain.
fn failure(err: &anyhow::Error) -> ExitCode {
    // After the log lines before it.
    telemetry::flush();
    eprintln!("ticketd: {err:#}");
    ExitCode::FAILURE
}
