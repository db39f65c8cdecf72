//! `ticketd demo`: everything on embedded defaults. A throwaway PostgreSQL (or `DATABASE_URL`), the
//! InvGate simulator on a free loopback port, and the gateway, with a fresh random JWT secret;
//! prints a token and ready-to-paste curl commands; Ctrl-C or SIGTERM stops and removes it all.

use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use invgate_sim::{Credentials, Seed, Simulator};
use secrecy::{ExposeSecret, SecretString};
use ticketd_domain::{BreakerConfig, MarkerTemplate};
use ticketd_http::Limits;
use ticketd_invgate::{InvGateConfig, RetryPolicy};
use ticketd_pgtemp::TempCluster;

use crate::config::{ConfigError, DatabaseArgs};
use crate::{Application, AuthSettings, ServerSettings, Settings};

/// The seeded user the demo token is for.
pub const DEMO_EMAIL: &str = "alice@example.com";

#[derive(Debug, Clone, Args)]
pub struct DemoArgs {
    /// Address for the gateway.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: String,
    #[command(flatten)]
    pub database: DatabaseArgs,
}

/// 256 random bits as hex, from the operating system's generator (through uuid v4).
fn random_hex() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

/// Runs the demo until a stop signal.
///
/// # Errors
/// When PostgreSQL cannot be started or reached, or a port cannot be bound.
pub async fn run(args: DemoArgs) -> anyhow::Result<()> {
    let listen: SocketAddr = args.listen.parse().map_err(|_| ConfigError {
        variable: "listen",
        flag: "listen",
        problem: format!(
            "must be an address like 127.0.0.1:8080, got {:?}",
            args.listen
        ),
    })?;

    // Keep the cluster alive for the whole demo; dropping it stops the server and removes its files.
    let (database_url, cluster) = match args
        .database
        .database_url
        .as_deref()
        .filter(|u| !u.trim().is_empty())
    {
        Some(_) => (args.database.url()?, None),
        None => {
            let cluster = tokio::task::spawn_blocking(TempCluster::start)
                .await
                .context("starting PostgreSQL")??;
            (SecretString::from(cluster.url()), Some(cluster))
        }
    };

    let credentials = Credentials {
        username: "ticketd".into(),
        password: random_hex(),
    };
    let sim = Simulator::new(credentials.clone(), Seed::default());
    let sim_listener = TcpListener::bind("127.0.0.1:0").context("binding the simulator")?;
    let sim_addr = sim_listener.local_addr()?;
    let sim_server = sim.serve(sim_listener, 1)?;
    let sim_handle = sim_server.handle();
    let sim_task = tokio::spawn(sim_server);

    // The demo's spool is as throwaway as its database.
    let spool_dir = tempfile::Builder::new()
        .prefix("ticketd-demo-spool-")
        .tempdir()
        .context("creating the spool directory")?;
    let jwt_secret = SecretString::from(random_hex());
    let settings = Settings {
        listen,
        database_url: database_url.clone(),
        invgate: InvGateConfig {
            base_url: format!("http://{sim_addr}/api/v1/"),
            username: credentials.username.clone(),
            password: SecretString::from(credentials.password.clone()),
            timeout: Duration::from_secs(15),
            retry: RetryPolicy::default(),
            max_concurrent_calls: 16,
        },
        auth: AuthSettings::hs256(&jwt_secret)?,
        server: ServerSettings::default(),
        limits: Limits::default(),
        operation_marker: MarkerTemplate::default(),
        spool_dir: spool_dir.path().to_path_buf(),
        worker_interval: Duration::from_secs(1),
        breaker: BreakerConfig::default(),
        workers: Some(2),
    };
    let app = Application::build(settings).await?;
    let token =
        ticketd_http::mint_hs256_token(&jwt_secret, DEMO_EMAIL, Duration::from_secs(24 * 3600))?;
    print_banner(&Banner {
        api: app.local_addr(),
        sim: sim_addr,
        credentials: &credentials,
        database_url: database_url.expose_secret(),
        cluster_dir: cluster.as_ref().map(|c| c.root().display().to_string()),
        token: &token,
    });

    // The gateway owns the signals: on SIGINT/SIGTERM it stops accepting and drains; then the
    // simulator (which the gateway's last requests may still need) and PostgreSQL go.
    let served = app.run_until_stopped().await;
    sim_handle.stop(true).await;
    let _ = sim_task.await;
    if let Some(mut cluster) = cluster {
        tokio::task::spawn_blocking(move || cluster.stop())
            .await
            .context("stopping PostgreSQL")?;
    }
    drop(spool_dir);
    println!("ticketd demo stopped; nothing left behind.");
    served.context("serving")
}

struct Banner<'a> {
    api: SocketAddr,
    sim: SocketAddr,
    credentials: &'a Credentials,
    database_url: &'a str,
    cluster_dir: Option<String>,
    token: &'a str,
}

fn print_banner(b: &Banner<'_>) {
    let api = format!("http://{}", b.api);
    let sim = format!("http://{}", b.sim);
    let database = match &b.cluster_dir {
        Some(dir) => format!(
            "{}   (throwaway, in {dir}, removed on exit)",
            b.database_url
        ),
        None => format!("{}   (from DATABASE_URL)", b.database_url),
    };
    let ticket = r#"{"title":"VPN is down","description":"Cannot connect since 9am","category_id":3,"priority_id":3,"type_id":1}"#;
    let with_file = r#"{"title":"Screen flickers","description":"Video attached","category_id":5,"priority_id":2,"type_id":1}"#;
    let user = &b.credentials.username;
    let key = &b.credentials.password;
    println!(
        "\
ticketd demo is running.

  API:                {api}   (health: {api}/healthz)
  InvGate simulator:  {sim}/api/v1/   (user {user}, key {key}; received requests: {sim}/_sim/requests)
  PostgreSQL:         {database}

A token for {DEMO_EMAIL} (valid 24 h); paste these first:
export TICKETD={api}
export TOKEN={token}

Create a ticket from JSON:
  curl -i $TICKETD/api/v1/tickets -H \"Authorization: Bearer $TOKEN\" -H 'Content-Type: application/json' -d '{ticket}'

Create a ticket with a file:
  echo 'hello from the demo' > note.txt
  curl -i $TICKETD/api/v1/tickets -H \"Authorization: Bearer $TOKEN\" -F 'request={with_file}' -F 'attachments[]=@note.txt;type=text/plain'

See them in InvGate (the simulator numbers tickets from 1000) and in the database:
  curl -s -u {user}:{key} '{sim}/api/v1/incident?id=1000'
  psql '{db}' -c 'SELECT inv_gate_id, creator_email, title, attachments FROM tickets'

Ctrl-C stops everything.",
        token = b.token,
        db = b.database_url,
    );
}
