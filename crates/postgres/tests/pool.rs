//! The per-thread pools against a real database.

use std::sync::mpsc;
use std::time::Duration;

use diesel_async::RunQueryDsl;
use ticketd_pgtemp::test_database;
use ticketd_postgres::{PgPool, PoolConfig, connect_pool};

/// Runs `SELECT 1` on a connection from `pool`, on a single-threaded runtime of this thread.
async fn select_one(pool: &PgPool) -> anyhow::Result<()> {
    let mut conn = pool.get().await?;
    diesel::sql_query("SELECT 1").execute(&mut conn).await?;
    Ok(())
}

fn current_thread_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// A connection's driver task runs on the runtime that opened it. If threads shared one pool,
/// the second thread would be handed the first thread's idle connection, whose driver cannot run
/// while the first thread's runtime is parked, and its statement would hang.
#[test]
fn a_thread_gets_connections_driven_by_its_own_runtime_even_when_another_runtime_is_parked() {
    let db = current_thread_runtime()
        .block_on(test_database())
        .expect("test database");
    let pool = connect_pool(
        db.url(),
        PoolConfig {
            max_size: 2,
            threads: 2,
            timeout: Duration::from_secs(5),
        },
    )
    .expect("pool");

    let (used, wait_used) = mpsc::channel();
    let (release, parked) = mpsc::channel::<()>();
    let first = {
        let pool = pool.clone();
        std::thread::spawn(move || {
            let runtime = current_thread_runtime();
            runtime
                .block_on(select_one(&pool))
                .expect("first thread's query");
            // The connection is idle in this thread's pool; this runtime now stops running.
            used.send(()).expect("signal");
            let _ = parked.recv();
            drop(runtime);
        })
    };
    wait_used.recv().expect("first thread used the database");

    let second = {
        let pool = pool.clone();
        std::thread::spawn(move || {
            current_thread_runtime().block_on(async {
                tokio::time::timeout(Duration::from_secs(20), select_one(&pool)).await
            })
        })
    };
    let outcome = second.join().expect("second thread");
    release.send(()).expect("release the first thread");
    first.join().expect("first thread");

    assert!(
        matches!(outcome, Ok(Ok(()))),
        "the second thread's statement must complete: {outcome:?}"
    );
    let status = pool.status();
    assert_eq!((status.pools, status.size), (2, 2), "{status:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_database_that_is_down_is_reported_on_first_use_not_when_the_pool_is_built() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("port")
        .local_addr()
        .expect("addr")
        .port();
    let pool = connect_pool(
        &format!("postgres://postgres@127.0.0.1:{port}/nowhere"),
        PoolConfig {
            timeout: Duration::from_secs(2),
            ..PoolConfig::default()
        },
    )
    .expect("built lazily");
    assert!(select_one(&pool).await.is_err());
    assert_eq!(pool.status().size, 0);
}
