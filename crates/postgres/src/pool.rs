//! The connection pool: one deadpool per thread that uses the database.
//!
//! diesel-async spawns each connection's driver task (the one that reads and writes the socket)
//! on the runtime that opened the connection. Every actix-web worker is a runtime of its own, so
//! with one shared pool a request on one worker often gets a connection whose driver lives on
//! another: every statement then wakes the other thread and is woken back, two cross-thread
//! wake-ups (eventfd writes and context switches) per round trip. With a pool per thread, a
//! request's connections are driven on its own thread. `just bench` measured the difference; see
//! docs/performance.md.
//!
//! Connections are not checked with a query each time they are handed out, only after sitting
//! idle for a while (see [`VERIFY_AFTER_IDLE`]).
//!
//! Besides its pool, each thread keeps one connection that many requests use at once
//! ([`PgPool::pipelined`]), for the two statements every ticket makes. Their statements are
//! pipelined: tokio-postgres writes all that are waiting in one system call and reads their
//! answers in one, and each is still its own transaction, answered only once committed. With a
//! connection per request, every statement cost a write and a read of its own. That connection
//! is one of the thread's pool.
//!
//! The total size is split evenly: each thread's pool holds at most `max_size / threads`
//! connections (at least one). Threads beyond `threads` (the background runtime's, say) get pools
//! of the same size, so the bound on open connections is that size times the threads that ever
//! used the database.

use std::cell::RefCell;
use std::sync::Arc;
use std::time::{Duration, Instant};

use diesel_async::pooled_connection::deadpool::{Hook, HookError, Object, Pool, PoolError};
use diesel_async::pooled_connection::{
    AsyncDieselConnectionManager, ManagerConfig, RecyclingMethod,
};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use thread_local::ThreadLocal;

/// Pool sizing and patience.
#[derive(Debug, Clone, Copy)]
pub struct PoolConfig {
    /// Connections for all threads together (see the module docs for how they are split).
    pub max_size: usize,
    /// How many threads serve requests; each gets `max_size / threads` connections.
    pub threads: usize,
    /// How long a request waits for a free connection (and for a new one to connect).
    pub timeout: Duration,
}

impl Default for PoolConfig {
    fn default() -> Self {
        Self {
            max_size: 16,
            threads: std::thread::available_parallelism().map_or(1, std::num::NonZero::get),
            timeout: Duration::from_secs(5),
        }
    }
}

impl PoolConfig {
    /// The most connections one thread's pool holds.
    #[must_use]
    pub fn per_thread(&self) -> usize {
        self.max_size.div_ceil(self.threads.max(1)).max(1)
    }
}

/// How full the pools are, summed over all threads.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PoolStatus {
    /// Connections open.
    pub size: usize,
    /// Connections open and idle.
    pub available: usize,
    /// Callers waiting for a connection.
    pub waiting: usize,
    /// Threads that have a pool.
    pub pools: usize,
}

/// PostgreSQL connections, pooled per thread (see the module docs). Cheap to clone.
#[derive(Clone)]
pub struct PgPool {
    inner: Arc<Inner>,
}

struct Inner {
    url: String,
    config: PoolConfig,
    pools: ThreadLocal<Pool<AsyncPgConnection>>,
    /// Each thread's pipelined connection, once it has one.
    pipelined: ThreadLocal<RefCell<Option<Slot>>>,
    /// Held while a thread's pipelined connection is checked or replaced, so that requests
    /// arriving meanwhile wait for it rather than each open a connection.
    replacing: ThreadLocal<tokio::sync::Mutex<()>>,
}

/// A thread's pipelined connection and when it was last handed out.
struct Slot {
    conn: Pipelined,
    last_used: Instant,
}

/// A connection that concurrent requests share; see [`PgPool::pipelined`]. Cheap to clone.
#[derive(Clone)]
pub struct Pipelined(Arc<Object<AsyncPgConnection>>);

impl std::fmt::Debug for Pipelined {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipelined")
            .field("users", &Arc::strong_count(&self.0))
            .finish_non_exhaustive()
    }
}

impl Pipelined {
    /// The connection, to run statements on through `&AsyncPgConnection`, which diesel-async
    /// pipelines.
    #[must_use]
    pub fn connection(&self) -> &AsyncPgConnection {
        &self.0
    }
}

impl std::fmt::Debug for PgPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may carry a password.
        f.debug_struct("PgPool")
            .field("config", &self.inner.config)
            .field("status", &self.status())
            .finish_non_exhaustive()
    }
}

/// Builds the pools. Connections are made lazily, so this succeeds with the database down; the
/// first use reports it.
///
/// # Errors
/// When the configuration cannot make a pool.
pub fn connect_pool(database_url: &str, config: PoolConfig) -> anyhow::Result<PgPool> {
    let pool = PgPool {
        inner: Arc::new(Inner {
            url: database_url.to_owned(),
            config,
            pools: ThreadLocal::new(),
            pipelined: ThreadLocal::new(),
            replacing: ThreadLocal::new(),
        }),
    };
    // Built once here so that a bad configuration is reported at start, not on first use.
    pool.inner
        .build()
        .map_err(|e| anyhow::anyhow!("building the PostgreSQL pool: {e}"))?;
    Ok(pool)
}

/// A connection idle for longer than this is checked with a query before it is handed out.
///
/// The check is a round trip, and checking every connection at every checkout made two of the six
/// round trips of a ticket. A connection the server closed (a restart, `idle_session_timeout`)
/// is found without a query: its driver task ends and diesel-async reports it broken. What a
/// check adds is a connection left half-open by the network, which is likelier the longer it
/// sat idle.
const VERIFY_AFTER_IDLE: Duration = Duration::from_secs(30);

/// The `pre_recycle` hook: checks a connection idle for [`VERIFY_AFTER_IDLE`] or longer, within
/// `timeout`. An error makes the pool drop the connection and hand out another.
fn verify_if_idle(timeout: Duration) -> Hook<AsyncPgConnection> {
    Hook::async_fn(move |conn, metrics| {
        let idle = metrics.last_used();
        Box::pin(async move {
            if idle < VERIFY_AFTER_IDLE {
                return Ok(());
            }
            match tokio::time::timeout(timeout, diesel::sql_query("SELECT 1").execute(conn)).await {
                Ok(Ok(_)) => Ok(()),
                Ok(Err(e)) => Err(HookError::Backend(
                    diesel_async::pooled_connection::PoolError::QueryError(e),
                )),
                Err(_) => Err(HookError::message("the idle connection did not answer")),
            }
        })
    })
}

/// Whether an idle pipelined connection may be handed out: its driver has not ended, and if it
/// sat idle for [`VERIFY_AFTER_IDLE`] it answers a query within `timeout`.
async fn usable(conn: &mut AsyncPgConnection, last_used: Instant, timeout: Duration) -> bool {
    use diesel_async::pooled_connection::PoolableConnection;
    if conn.is_broken() {
        return false;
    }
    if last_used.elapsed() < VERIFY_AFTER_IDLE {
        return true;
    }
    matches!(
        tokio::time::timeout(timeout, diesel::sql_query("SELECT 1").execute(conn)).await,
        Ok(Ok(_))
    )
}

impl Inner {
    fn build(&self) -> Result<Pool<AsyncPgConnection>, deadpool::managed::BuildError> {
        // `ManagerConfig` is non-exhaustive: it cannot be written as a literal.
        let mut manager_config = ManagerConfig::default();
        manager_config.recycling_method = RecyclingMethod::Fast;
        let manager = AsyncDieselConnectionManager::<AsyncPgConnection>::new_with_config(
            &self.url,
            manager_config,
        );
        Pool::builder(manager)
            .pre_recycle(verify_if_idle(self.config.timeout))
            .max_size(self.config.per_thread())
            .wait_timeout(Some(self.config.timeout))
            .create_timeout(Some(self.config.timeout))
            .recycle_timeout(Some(self.config.timeout))
            .runtime(deadpool::Runtime::Tokio1)
            .build()
    }
}

impl PgPool {
    /// A connection from this thread's pool, opened on this thread's runtime if none is idle.
    ///
    /// # Errors
    /// When none frees up in time, or a new one cannot connect.
    pub async fn get(&self) -> Result<Object<AsyncPgConnection>, PoolError> {
        let pool = self
            .inner
            .pools
            .get_or_try(|| self.inner.build())
            // The configuration already built a pool in `connect_pool`; this cannot differ.
            .map_err(|deadpool::managed::BuildError::NoRuntimeSpecified| {
                PoolError::NoRuntimeSpecified
            })?;
        pool.get().await
    }

    /// This thread's pipelined connection, shared by every request on the thread that asks for
    /// one (see the module docs). For single statements only: a transaction needs a connection
    /// of its own ([`PgPool::get`]).
    ///
    /// When no request is using it, it is checked like a pooled connection at checkout: replaced
    /// when its driver has ended, and queried first when it sat idle for [`VERIFY_AFTER_IDLE`].
    /// A caller whose statement fails calls [`PgPool::forget_pipelined`], so the next caller
    /// gets a fresh one.
    ///
    /// # Errors
    /// As [`PgPool::get`], when a new connection is needed.
    pub async fn pipelined(&self) -> Result<Pipelined, PoolError> {
        if let Some(conn) = self.pipelined_in_use() {
            return Ok(conn);
        }
        let _replacing = self.inner.replacing.get_or_default().lock().await;
        // Whoever held the lock before may have just put a connection in place.
        if let Some(conn) = self.pipelined_in_use() {
            return Ok(conn);
        }
        let idle = self.inner.pipelined.get_or_default().borrow_mut().take();
        let kept = match idle {
            Some(Slot {
                conn: Pipelined(mut conn),
                last_used,
            }) => {
                let healthy = match Arc::get_mut(&mut conn) {
                    Some(object) => usable(object, last_used, self.inner.config.timeout).await,
                    // Taken up by a request since: it is in use, so it works or they find out.
                    None => true,
                };
                if healthy {
                    Some(Pipelined(conn))
                } else {
                    // A broken or silent connection leaves the pool for good, rather than go
                    // back to it for the next caller.
                    if let Ok(object) = Arc::try_unwrap(conn) {
                        drop(Object::take(object));
                    }
                    None
                }
            }
            None => None,
        };
        let conn = match kept {
            Some(conn) => conn,
            None => Pipelined(Arc::new(self.get().await?)),
        };
        // Looked up afresh: on a multi-threaded runtime this task may have moved threads.
        *self.inner.pipelined.get_or_default().borrow_mut() = Some(Slot {
            conn: conn.clone(),
            last_used: Instant::now(),
        });
        Ok(conn)
    }

    /// This thread's pipelined connection when it can be handed out without a check: another
    /// request is using it (so it works, or they find out), or it was used a moment ago and its
    /// driver has not ended.
    fn pipelined_in_use(&self) -> Option<Pipelined> {
        let mut current = self.inner.pipelined.get_or_default().borrow_mut();
        let held = current.as_mut()?;
        let fresh = held.last_used.elapsed() < VERIFY_AFTER_IDLE;
        let usable = match Arc::get_mut(&mut held.conn.0) {
            None => true,
            Some(object) => {
                fresh
                    && !diesel_async::pooled_connection::PoolableConnection::is_broken(
                        &mut **object,
                    )
            }
        };
        usable.then(|| {
            held.last_used = Instant::now();
            held.conn.clone()
        })
    }

    /// Stops handing out `conn` as this thread's pipelined connection, after a statement on it
    /// failed. It goes back to the pool once its last user is done, where a broken connection is
    /// dropped.
    pub fn forget_pipelined(&self, conn: &Pipelined) {
        if let Some(slot) = self.inner.pipelined.get() {
            let mut current = slot.borrow_mut();
            if current
                .as_ref()
                .is_some_and(|held| Arc::ptr_eq(&held.conn.0, &conn.0))
            {
                *current = None;
            }
        }
    }

    /// How full the pools are, over all threads.
    #[must_use]
    pub fn status(&self) -> PoolStatus {
        self.inner
            .pools
            .iter()
            .fold(PoolStatus::default(), |sum, pool| {
                let status = pool.status();
                PoolStatus {
                    size: sum.size + status.size,
                    available: sum.available + status.available,
                    waiting: sum.waiting + status.waiting,
                    pools: sum.pools + 1,
                }
            })
    }

    /// The configuration the pools were built with.
    #[must_use]
    pub fn config(&self) -> PoolConfig {
        self.inner.config
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(max_size: usize, threads: usize) -> PoolConfig {
        PoolConfig {
            max_size,
            threads,
            timeout: Duration::from_secs(1),
        }
    }

    #[test]
    fn the_total_is_split_evenly_between_threads_and_rounded_up() {
        assert_eq!(config(16, 2).per_thread(), 8);
        assert_eq!(config(16, 3).per_thread(), 6);
        assert_eq!(config(16, 1).per_thread(), 16);
    }

    #[test]
    fn every_thread_gets_at_least_one_connection() {
        assert_eq!(config(2, 8).per_thread(), 1);
        assert_eq!(config(0, 0).per_thread(), 1);
    }
}
