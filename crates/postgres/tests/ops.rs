//! The operator's questions to a real database: is the schema current, how deep is the journal.

use ticketd_pgtemp::test_database;
use ticketd_postgres::{
    PoolConfig, connect_pool, embedded_versions, journal_depths, pending_migrations, run_migrations,
};

#[tokio::test(flavor = "multi_thread")]
async fn a_database_is_current_only_once_every_embedded_migration_is_applied() {
    let db = test_database().await.expect("test database");
    let pool = connect_pool(db.url(), PoolConfig::default()).expect("pool");
    let before = pending_migrations(&pool).await.expect("readable");
    assert_eq!(before, embedded_versions().expect("versions"));
    run_migrations(db.url()).await.expect("migrated");
    assert!(
        pending_migrations(&pool)
            .await
            .expect("readable")
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn journal_depths_count_unsettled_operations_by_state() {
    let db = test_database().await.expect("test database");
    run_migrations(db.url()).await.expect("migrated");
    let pool = connect_pool(db.url(), PoolConfig::default()).expect("pool");
    assert_eq!(
        journal_depths(&pool).await.expect("readable"),
        ticketd_postgres::JournalDepths::default()
    );
}
