//! The `ticketd` application: typed settings, telemetry, and the wiring of the domain service to
//! its adapters (actix-web in, reqwest to InvGate and diesel-async to PostgreSQL out).

pub mod config;
pub mod demo;
mod failpoints;
mod ops;
pub mod telemetry;
pub mod token;

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::Duration;

use actix_web::HttpServer;
use actix_web::dev::{Server, ServerHandle};
use anyhow::Context;
use secrecy::ExposeSecret;
use ticketd_auth::{HttpJwksSource, JwksCache, Verifier};
use ticketd_domain::{CircuitBreaker, TicketCreator, TicketReader};
use ticketd_http::{HttpState, RateLimiter};
use ticketd_invgate::ReqwestInvGateClient;
use ticketd_postgres::{PgTicketRepository, PoolConfig, connect_pool, run_migrations};
use ticketd_spool::FsRecordSpool;

pub use config::{AuthSettings, ServerSettings, Settings};
use failpoints::Failpoints;

/// How long in-flight requests get to finish after SIGTERM/SIGINT.
const SHUTDOWN_GRACE_SECS: u64 = 30;

/// A built, bound, not yet running server, with its background workers.
pub struct Application {
    server: Server,
    addr: SocketAddr,
    workers: Workers,
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
        // A pool per HTTP worker, so that a request's statements are driven on its own thread.
        let pool = connect_pool(
            database_url,
            PoolConfig {
                threads: settings
                    .workers
                    .unwrap_or_else(|| PoolConfig::default().threads),
                ..PoolConfig::default()
            },
        )?;
        let repository = PgTicketRepository::new(pool.clone());
        let spool = FsRecordSpool::open(&settings.spool_dir)?;
        tracing::info!(spool.dir = %settings.spool_dir.display(), "spool ready");
        let service_config = settings.service_config();
        let client = ReqwestInvGateClient::new(settings.invgate)
            .context("configuring the InvGate client")?;
        // Reads get a breaker of their own (failing reads must not stop creates), over the same
        // connection pool and call slots.
        let reader = Arc::new(TicketReader::new(
            CircuitBreaker::new(client.clone(), settings.breaker),
            repository.clone(),
        ));
        let ops = Arc::new(ops::AppOperations::new(
            pool,
            client.clone(),
            settings.spool_dir.clone(),
        ));
        let gateway = CircuitBreaker::new(Failpoints::from_env(client), settings.breaker);
        let service = Arc::new(TicketCreator::new(
            gateway,
            repository,
            spool,
            service_config,
        ));
        // Records spooled before a crash or outage go in before anything new is accepted.
        if let Err(err) = service.replay_spool().await {
            tracing::error!(error = ?err, "the spool cannot be read");
        }
        let verifier = Arc::new(verifier(&settings.auth).await?);
        {
            let (service, reader) = (service.clone(), reader.clone());
            ticketd_metrics::metrics().set_cache_source(move || {
                let (user_hits, user_misses) = service.user_cache_stats().snapshot();
                let (meta_hits, meta_misses) = reader.meta_cache_stats().snapshot();
                vec![
                    ("invgate_user", user_hits, user_misses),
                    ("ticket_meta", meta_hits, meta_misses),
                ]
            });
        }
        let workers = Workers::start(service.clone(), reader.clone(), settings.worker_interval);
        let state = HttpState {
            service: service.clone(),
            queries: reader,
            ops,
            verifier,
            limits: settings.limits,
            rate_limiter: RateLimiter::new(settings.server.rate_limit).map(Arc::new),
            cors_origins: settings.server.cors_origins.clone(),
        };

        let listener = TcpListener::bind(settings.listen)
            .with_context(|| format!("binding {}", settings.listen))?;
        let addr = listener.local_addr()?;
        let server_limits = &settings.server;
        let mut server = HttpServer::new(move || ticketd_http::app(state.clone()))
            .shutdown_timeout(SHUTDOWN_GRACE_SECS)
            // Slow-loris: a client gets this long for its request line and headers…
            .client_request_timeout(server_limits.header_timeout)
            // …and idle keep-alive connections are closed.
            .keep_alive(server_limits.keep_alive)
            .client_disconnect_timeout(Duration::from_secs(1))
            .max_connections(server_limits.max_connections);
        if let Some(workers) = settings.workers {
            server = server.workers(workers);
        }
        let server = server.listen(listener)?.run();
        tracing::info!(address = %addr, "ticketd listening");
        Ok(Self {
            server,
            addr,
            workers,
        })
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
        let served = self.server.await;
        // Requests have drained; now let the workers finish what they are doing.
        self.workers.stop().await;
        served
    }
}

type Reader = TicketReader<CircuitBreaker<ReqwestInvGateClient>, PgTicketRepository>;

/// Open tickets whose status the sync refreshes per round (one InvGate call each): with the
/// default 5 s interval, at most 2 calls a second.
const SYNC_BATCH: usize = 10;

/// A ticket's status is refreshed when it is older than this.
const SYNC_MIN_AGE: Duration = Duration::from_secs(60);

type Service = TicketCreator<
    CircuitBreaker<Failpoints<ReqwestInvGateClient>>,
    PgTicketRepository,
    FsRecordSpool,
>;

/// The background loop: spool replay, reconciliation of abandoned operations, the queue of tickets
/// accepted while InvGate was unavailable. Safe to run in any number of instances at once: the
/// journal hands each operation to one of them (leases, `FOR UPDATE SKIP LOCKED`).
struct Workers {
    stop: tokio::sync::watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Workers {
    fn start(service: Arc<Service>, reader: Arc<Reader>, interval: Duration) -> Self {
        let (stop, mut stopped) = tokio::sync::watch::channel(false);
        let replay = tokio::spawn(async move {
            loop {
                // Only the wait is interruptible: a round in progress always completes.
                tokio::select! {
                    _ = stopped.changed() => break,
                    () = tokio::time::sleep(interval) => {}
                }
                if let Err(err) = service.replay_spool().await {
                    tracing::error!(error = ?err, "the spool cannot be read");
                }
                if let Err(err) = service.reconcile().await {
                    tracing::warn!(error = ?err, "cannot reconcile operations now");
                }
                if let Err(err) = service.process_queue().await {
                    tracing::warn!(error = ?err, "cannot work off the queue now");
                }
                if let Err(err) = reader.sync_open(SYNC_BATCH, SYNC_MIN_AGE).await {
                    tracing::warn!(error = ?err, "cannot sync ticket statuses now");
                }
            }
        });
        Self {
            stop,
            tasks: vec![replay],
        }
    }

    async fn stop(self) {
        let _ = self.stop.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
    }
}

/// The token verifier: static keys, plus the provider's JWKS fetched once now (a failure is
/// logged, not fatal: the cache retries on the first token).
async fn verifier(auth: &AuthSettings) -> anyhow::Result<Verifier> {
    for warning in &auth.warnings {
        tracing::warn!("{warning}");
    }
    let jwks = match &auth.jwks {
        None => None,
        Some((url, policy)) => {
            let source = HttpJwksSource::new(url, Duration::from_secs(5))
                .context("configuring the JWKS source")?;
            let cache = Arc::new(JwksCache::new(Arc::new(source), *policy));
            if !cache.warm_up().await {
                tracing::warn!(
                    "no usable key in the JWKS yet; tokens it signs fail until it has one"
                );
            }
            Some(cache)
        }
    };
    Ok(Verifier::new(auth.keys.clone(), jwks, auth.policy.clone()))
}

/// `ticketd migrate`: apply pending migrations and report them.
///
/// # Errors
/// When the database cannot be reached or a migration fails.
pub async fn migrate(database_url: &str) -> anyhow::Result<Vec<String>> {
    run_migrations(database_url).await
}
