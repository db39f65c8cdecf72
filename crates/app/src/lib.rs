//! The `ticketd` application: typed settings, telemetry, and the wiring of the domain service to
//! its adapters (actix-web in, reqwest to InvGate and diesel-async to PostgreSQL out).

pub mod config;
pub mod demo;
pub mod telemetry;
pub mod token;

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;

use actix_web::HttpServer;
use actix_web::dev::{Server, ServerHandle};
use anyhow::Context;
use secrecy::ExposeSecret;
use ticketd_domain::TicketCreator;
use ticketd_http::{HttpState, JwtVerifier};
use ticketd_invgate::ReqwestInvGateClient;
use ticketd_postgres::{PgTicketRepository, PoolConfig, connect_pool, run_migrations};

pub use config::Settings;

/// How long in-flight requests get to finish after SIGTERM/SIGINT.
const SHUTDOWN_GRACE_SECS: u64 = 30;

/// A built, bound, not yet running server.
pub struct Application {
    server: Server,
    addr: SocketAddr,
}

impl std::fmt::Debug for Application {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Application")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl Application {
    /// Applies pending migrations, builds the adapters and binds the listener.
    ///
    /// # Errors
    /// When the database cannot be migrated, the InvGate client cannot be built or the address
    /// cannot be bound.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let database_url = settings.database_url.expose_secret();
        let applied = run_migrations(database_url)
            .await
            .context("migrating the database (is DATABASE_URL right and PostgreSQL up?)")?;
        if !applied.is_empty() {
            tracing::info!(migrations = ?applied, "applied pending migrations");
        }
        let pool = connect_pool(database_url, PoolConfig::default())?;
        let repository = PgTicketRepository::new(pool);
        let service_config = settings.service_config();
        let gateway = ReqwestInvGateClient::new(settings.invgate)
            .context("configuring the InvGate client")?;
        let service = TicketCreator::new(gateway, repository, service_config);
        let state = HttpState {
            service: Arc::new(service),
            verifier: Arc::new(JwtVerifier::hs256(
                &settings.jwt_secret,
                settings.jwt_leeway,
            )),
            limits: settings.limits,
        };

        let listener = TcpListener::bind(settings.listen)
            .with_context(|| format!("binding {}", settings.listen))?;
        let addr = listener.local_addr()?;
        let mut server = HttpServer::new(move || ticketd_http::app(state.clone()))
            .shutdown_timeout(SHUTDOWN_GRACE_SECS);
        if let Some(workers) = settings.workers {
            server = server.workers(workers);
        }
        let server = server.listen(listener)?.run();
        tracing::info!(address = %addr, "ticketd listening");
        Ok(Self { server, addr })
    }

    #[must_use]
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// A handle to stop the server from elsewhere (tests).
    #[must_use]
    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    /// Serves until SIGTERM/SIGINT (or a stop through the handle), letting in-flight requests
    /// finish first.
    ///
    /// # Errors
    /// When the server fails.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.server.await
    }
}

/// `ticketd migrate`: apply pending migrations and report them.
///
/// # Errors
/// When the database cannot be reached or a migration fails.
pub async fn migrate(database_url: &str) -> anyhow::Result<Vec<String>> {
    run_migrations(database_url).await
}
