//! The operator endpoints' view of the application: readiness (database migrated, InvGate
//! answering) and the gauges read at scrape time (pool, journal, spool).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use ticketd_http::{Check, Operations};
use ticketd_invgate::ReqwestInvGateClient;
use ticketd_metrics::metrics;
use ticketd_postgres::{PgPool, journal_depths, pending_migrations};

/// How long one readiness check may take.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// How long InvGate's answer to `sd.version` is reused: probes come every few seconds from every
/// orchestrator replica, and InvGate's rate limits are shared with everyone.
const INVGATE_CHECK_TTL: Duration = Duration::from_secs(10);

pub(crate) struct AppOperations {
    pub pool: PgPool,
    pub client: ReqwestInvGateClient,
    pub spool_dir: PathBuf,
    invgate: tokio::sync::Mutex<Option<(Instant, Check)>>,
}

impl std::fmt::Debug for AppOperations {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppOperations")
            .field("spool_dir", &self.spool_dir)
            .finish_non_exhaustive()
    }
}

impl AppOperations {
    pub fn new(pool: PgPool, client: ReqwestInvGateClient, spool_dir: PathBuf) -> Self {
        Self {
            pool,
            client,
            spool_dir,
            invgate: tokio::sync::Mutex::new(None),
        }
    }

    async fn database(&self) -> Check {
        let (ok, detail) = match tokio::time::timeout(CHECK_TIMEOUT, pending_migrations(&self.pool))
            .await
        {
            Ok(Ok(pending)) if pending.is_empty() => (true, "reachable, migrations applied".into()),
            Ok(Ok(pending)) => (
                false,
                format!("migrations not applied: {}", pending.join(", ")),
            ),
            Ok(Err(err)) => (false, format!("unreachable: {err:#}")),
            Err(_) => (false, format!("no answer within {CHECK_TIMEOUT:?}")),
        };
        Check {
            name: "database",
            ok,
            detail,
        }
    }

    async fn invgate(&self) -> Check {
        let mut cached = self.invgate.lock().await;
        if let Some((at, check)) = cached.as_ref()
            && at.elapsed() < INVGATE_CHECK_TTL
        {
            return check.clone();
        }
        let (ok, detail) = match self.client.version(CHECK_TIMEOUT).await {
            Ok(version) => (true, format!("answering, version {version}")),
            Err(err) => (false, err.to_string()),
        };
        let check = Check {
            name: "invgate",
            ok,
            detail,
        };
        *cached = Some((Instant::now(), check.clone()));
        check
    }

    /// Counts the spool's records off the async threads: during a database outage the spool
    /// may hold many.
    async fn spool_records(&self) -> i64 {
        let dir = self.spool_dir.clone();
        tokio::task::spawn_blocking(move || {
            std::fs::read_dir(dir).map_or(0, |entries| {
                entries
                    .filter_map(Result::ok)
                    .filter(|e| e.file_name().to_string_lossy().ends_with(".json"))
                    .count() as i64
            })
        })
        .await
        .unwrap_or(0)
    }
}

#[async_trait]
impl Operations for AppOperations {
    async fn readiness(&self) -> Vec<Check> {
        let (database, invgate) = tokio::join!(self.database(), self.invgate());
        vec![database, invgate]
    }

    async fn refresh_metrics(&self) {
        let m = metrics();
        let status = self.pool.status();
        let in_use = status.size.saturating_sub(status.available);
        let gauge = |state: &str, value: usize| {
            m.db_pool
                .get_or_create(&[("state", state.to_owned())])
                .set(i64::try_from(value).unwrap_or(i64::MAX));
        };
        gauge("in_use", in_use);
        gauge("idle", status.available);
        gauge("waiting", status.waiting);
        m.spool_records.set(self.spool_records().await);
        match tokio::time::timeout(CHECK_TIMEOUT, journal_depths(&self.pool)).await {
            Ok(Ok(depths)) => {
                for (state, n) in [
                    ("in_flight", depths.in_flight),
                    ("in_doubt", depths.in_doubt),
                    ("queued", depths.queued),
                ] {
                    m.journal_operations
                        .get_or_create(&[("state", state.to_owned())])
                        .set(n);
                }
                let age = depths.oldest_in_doubt.map_or(0.0, |at| {
                    (chrono::Utc::now() - at).as_seconds_f64().max(0.0)
                });
                m.oldest_in_doubt_seconds.set(age);
            }
            Ok(Err(err)) => tracing::warn!(error = %err, "journal depths cannot be read"),
            Err(_) => tracing::warn!("journal depths did not come in time"),
        }
    }
}
