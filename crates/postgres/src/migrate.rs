use anyhow::Context;
use diesel::Connection;
use diesel_async::AsyncPgConnection;
use diesel_async::async_connection_wrapper::AsyncConnectionWrapper;
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

const MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations");

/// Applies every pending migration and returns the versions it applied (empty when up to date).
///
/// Migrations are run through diesel's synchronous harness on a blocking thread, which keeps them
/// working under any tokio runtime flavour.
///
/// # Errors
/// When the database is unreachable or a migration fails.
pub async fn run_migrations(database_url: &str) -> anyhow::Result<Vec<String>> {
    let url = database_url.to_owned();
    tokio::task::spawn_blocking(move || {
        let mut conn = <AsyncConnectionWrapper<AsyncPgConnection> as Connection>::establish(&url)
            .context("connecting to PostgreSQL to migrate")?;
        let applied = conn
            .run_pending_migrations(MIGRATIONS)
            .map_err(|e| anyhow::anyhow!(e))
            .context("applying migrations")?;
        Ok(applied.iter().map(ToString::to_string).collect())
    })
    .await
    .context("the migration task panicked")?
}

/// The versions of the migrations this build embeds.
///
/// # Errors
/// When the embedded migrations cannot be listed (a build defect).
pub fn embedded_versions() -> anyhow::Result<Vec<String>> {
    use diesel::migration::MigrationSource;
    let migrations = MigrationSource::<diesel::pg::Pg>::migrations(&MIGRATIONS)
        .map_err(|e| anyhow::anyhow!(e))?;
    Ok(migrations
        .iter()
        .map(|m| m.name().version().to_string())
        .collect())
}
