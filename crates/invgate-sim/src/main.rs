//! `invgate-sim`: serve the InvGate simulator on its own.

use std::net::TcpListener;
use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use invgate_sim::{Credentials, Seed, Simulator};

#[derive(Debug, Parser)]
#[command(
    name = "invgate-sim",
    version,
    about = "A simulator of InvGate Service Management's v1 API, for tests and demos"
)]
struct Args {
    /// Address to bind.
    #[arg(long, env = "INVGATE_SIM_LISTEN", default_value = "127.0.0.1:9090")]
    listen: String,
    /// User name clients must send (HTTP Basic).
    #[arg(long, env = "INVGATE_SIM_USERNAME", default_value = "ticketd")]
    username: String,
    /// Password (API key) clients must send (HTTP Basic).
    #[arg(
        long,
        env = "INVGATE_SIM_PASSWORD",
        default_value = "simulated-api-key",
        hide_default_value = true
    )]
    password: String,
    /// JSON file with users, categories, statuses and sources (see the crate docs); built-in
    /// defaults otherwise.
    #[arg(long, env = "INVGATE_SIM_SEED")]
    seed: Option<PathBuf>,
    /// Do not record requests (for benchmarks: recording keeps every request in memory).
    #[arg(long)]
    no_record: bool,
    /// Worker threads.
    #[arg(long, default_value_t = 2)]
    workers: usize,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let seed = match &args.seed {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            serde_json::from_str::<Seed>(&text)
                .with_context(|| format!("parsing {}", path.display()))?
        }
        None => Seed::default(),
    };
    let sim = Simulator::new(
        Credentials {
            username: args.username,
            password: args.password,
        },
        seed,
    );
    sim.set_recording(!args.no_record);
    let listener =
        TcpListener::bind(&args.listen).with_context(|| format!("binding {}", args.listen))?;
    let addr = listener.local_addr()?;
    let server = sim.serve(listener, args.workers)?;
    let handle = server.handle();
    println!("invgate-sim listening on http://{addr}/api/v1/ (control API: http://{addr}/_sim/)");
    let running = tokio::spawn(server);
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("listening for SIGTERM")?;
    tokio::select! {
        result = tokio::signal::ctrl_c() => result.context("listening for Ctrl-C")?,
        _ = terminate.recv() => {}
    }
    handle.stop(true).await;
    running.await??;
    Ok(())
}
