//! Connections and migrations.

use diesel::{Connection, RunQueryDsl as _};
use diesel_async::{
    AsyncPgConnection,
    async_connection_wrapper::AsyncConnectionWrapper,
    pooled_connection::{
        AsyncDieselConnectionManager,
        deadpool::{Object, Pool},
    },
};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

use crate::{Error, Result};

/// The migrations, compiled into the binary so that a release needs no files beside it.
pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations");

/// An arbitrary constant shared by every Director process: the advisory lock that keeps two
/// managers starting at once from running the same migration twice.
const MIGRATION_LOCK: i64 = 0x4449_5245_4354;

/// A pool of database connections.
pub type DbPool = Pool<AsyncPgConnection>;
/// A connection borrowed from the pool.
pub type DbConn = Object<AsyncPgConnection>;

/// Builds a pool for `url`. No connection is made until one is needed, so a database that is
/// down at start-up shows as `/readyz` failing rather than as a crash.
pub fn pool(url: &str, max_size: usize) -> Result<DbPool> {
    let manager = AsyncDieselConnectionManager::<AsyncPgConnection>::new(url);
    Pool::builder(manager)
        .max_size(max_size)
        .build()
        .map_err(Error::internal)
}

/// Applies every pending migration, holding an advisory lock while doing so.
pub async fn run_migrations(url: &str) -> Result<Vec<String>> {
    let url = url.to_owned();
    tokio::task::spawn_blocking(move || -> Result<Vec<String>> {
        let mut conn = AsyncConnectionWrapper::<AsyncPgConnection>::establish(&url)
            .map_err(|e| Error::Unavailable(Box::new(e)))?;
        diesel::sql_query(format!("SELECT pg_advisory_lock({MIGRATION_LOCK})")).execute(&mut conn)?;
        let applied = conn
            .run_pending_migrations(MIGRATIONS)
            .map(|versions| versions.iter().map(ToString::to_string).collect())
            .map_err(Error::Internal);
        diesel::sql_query(format!("SELECT pg_advisory_unlock({MIGRATION_LOCK})")).execute(&mut conn)?;
        applied
    })
    .await
    .map_err(Error::internal)?
}
