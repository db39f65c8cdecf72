//! What operators ask of the database: is the schema current, how deep is the journal.

use anyhow::Context;
use chrono::{DateTime, Utc};
use diesel::QueryableByName;
use diesel::sql_types::{BigInt, Nullable, Text, Timestamptz};
use diesel_async::RunQueryDsl;

use crate::migrate::embedded_versions;
use crate::pool::PgPool;

#[derive(QueryableByName)]
struct VersionRow {
    #[diesel(sql_type = Text)]
    version: String,
}

/// Migrations this build has that the database has not applied (empty: the schema is current).
///
/// # Errors
/// When the database cannot be reached or read.
pub async fn pending_migrations(pool: &PgPool) -> anyhow::Result<Vec<String>> {
    let mut conn = pool.get().await.context("getting a database connection")?;
    // A database never migrated has no bookkeeping table at all.
    let applied: Vec<VersionRow> = diesel::sql_query(
        "SELECT version FROM __diesel_schema_migrations \
         WHERE to_regclass('__diesel_schema_migrations') IS NOT NULL",
    )
    .load(&mut conn)
    .await
    .or_else(|e| match e {
        diesel::result::Error::DatabaseError(_, ref info)
            if info.message().contains("__diesel_schema_migrations") =>
        {
            Ok(Vec::new())
        }
        other => Err(other),
    })
    .context("reading the applied migrations")?;
    Ok(embedded_versions()?
        .into_iter()
        .filter(|v| !applied.iter().any(|a| &a.version == v))
        .collect())
}

/// Unsettled create operations, by state, and when the oldest one in doubt began.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JournalDepths {
    pub in_flight: i64,
    pub in_doubt: i64,
    pub queued: i64,
    pub oldest_in_doubt: Option<DateTime<Utc>>,
}

#[derive(QueryableByName)]
struct DepthRow {
    #[diesel(sql_type = Text)]
    state: String,
    #[diesel(sql_type = BigInt)]
    n: i64,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    oldest: Option<DateTime<Utc>>,
}

/// Reads [`JournalDepths`].
///
/// # Errors
/// When the database cannot be reached or read.
pub async fn journal_depths(pool: &PgPool) -> anyhow::Result<JournalDepths> {
    let mut conn = pool.get().await.context("getting a database connection")?;
    let rows: Vec<DepthRow> = diesel::sql_query(
        "SELECT state, count(*) AS n, min(attempt_started_at) AS oldest FROM ticket_operations \
         WHERE state IN ('in_flight', 'in_doubt', 'queued') GROUP BY state",
    )
    .load(&mut conn)
    .await
    .context("counting journal operations")?;
    let mut depths = JournalDepths::default();
    for row in rows {
        match row.state.as_str() {
            "in_flight" => depths.in_flight = row.n,
            "in_doubt" => {
                depths.in_doubt = row.n;
                depths.oldest_in_doubt = row.oldest;
            }
            "queued" => depths.queued = row.n,
            _ => {}
        }
    }
    Ok(depths)
}
