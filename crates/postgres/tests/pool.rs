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

#[derive(diesel::QueryableByName)]
struct Pid {
    #[diesel(sql_type = diesel::sql_types::Integer)]
    pid: i32,
}

#[derive(diesel::QueryableByName)]
struct Count {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

/// Connections are not checked with a query at every checkout; one the server closed must still
/// never be handed out.
#[tokio::test]
async fn a_connection_the_server_closed_is_replaced_not_handed_out() {
    let db = test_database().await.expect("test database");
    let pool = connect_pool(
        db.url(),
        PoolConfig {
            max_size: 1,
            threads: 1,
            timeout: Duration::from_secs(5),
        },
    )
    .expect("pool");
    let pid = {
        let mut conn = pool.get().await.expect("connection");
        diesel::sql_query("SELECT pg_backend_pid() AS pid")
            .get_result::<Pid>(&mut conn)
            .await
            .expect("pid")
            .pid
    };

    terminate(db.url(), pid).await;
    // Lets the connection's driver task, on this runtime, read the end of its socket.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let mut conn = pool.get().await.expect("a fresh connection");
    let now = diesel::sql_query("SELECT pg_backend_pid() AS pid")
        .get_result::<Pid>(&mut conn)
        .await
        .expect("the connection handed out works");
    assert_ne!(now.pid, pid);
}

/// Ends the server process `pid` from a connection outside any pool, and waits until it is gone.
async fn terminate(url: &str, pid: i32) {
    let mut admin =
        <diesel_async::AsyncPgConnection as diesel_async::AsyncConnection>::establish(url)
            .await
            .expect("admin connection");
    diesel::sql_query("SELECT pg_terminate_backend($1)")
        .bind::<diesel::sql_types::Integer, _>(pid)
        .execute(&mut admin)
        .await
        .expect("terminated");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let left = diesel::sql_query("SELECT count(*) AS n FROM pg_stat_activity WHERE pid = $1")
            .bind::<diesel::sql_types::Integer, _>(pid)
            .get_result::<Count>(&mut admin)
            .await
            .expect("count")
            .n;
        if left == 0 {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the backend never ended"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The server process behind a pipelined connection.
async fn pipelined_pid(pool: &PgPool) -> i32 {
    let conn = pool.pipelined().await.expect("pipelined connection");
    let mut shared = conn.connection();
    diesel::sql_query("SELECT pg_backend_pid() AS pid")
        .get_result::<Pid>(&mut shared)
        .await
        .expect("pid")
        .pid
}

fn pool_of(url: &str, max_size: usize) -> PgPool {
    connect_pool(
        url,
        PoolConfig {
            max_size,
            threads: 1,
            timeout: Duration::from_secs(5),
        },
    )
    .expect("pool")
}

#[tokio::test(flavor = "current_thread")]
async fn concurrent_statements_on_one_thread_share_its_pipelined_connection() {
    let db = test_database().await.expect("test database");
    let pool = pool_of(db.url(), 4);
    let pids = futures_util::future::join_all((0..20).map(|_| pipelined_pid(&pool))).await;
    assert!(
        pids.iter().all(|pid| *pid == pids[0]),
        "one server process answered them all: {pids:?}"
    );
    assert_eq!(pool.status().size, 1, "one connection was opened");
}

#[tokio::test(flavor = "current_thread")]
async fn a_pipelined_connection_the_server_closed_is_replaced_not_handed_out() {
    let db = test_database().await.expect("test database");
    let pool = pool_of(db.url(), 2);
    let pid = pipelined_pid(&pool).await;
    terminate(db.url(), pid).await;
    // Lets the connection's driver task, on this runtime, read the end of its socket.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let now = pipelined_pid(&pool).await;
    assert_ne!(now, pid);
}

#[tokio::test(flavor = "current_thread")]
async fn after_a_failed_statement_the_next_caller_gets_another_pipelined_connection() {
    let db = test_database().await.expect("test database");
    let pool = pool_of(db.url(), 2);
    let failed = pool.pipelined().await.expect("pipelined connection");
    let mut shared = failed.connection();
    let before = diesel::sql_query("SELECT pg_backend_pid() AS pid")
        .get_result::<Pid>(&mut shared)
        .await
        .expect("pid")
        .pid;
    pool.forget_pipelined(&failed);
    assert_ne!(pipelined_pid(&pool).await, before);
    drop(failed);
}
