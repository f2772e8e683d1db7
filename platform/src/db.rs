//! Connections and migrations.

use diesel::{Connection, RunQueryDsl as _};
use diesel_async::{
    AsyncPgConnection,
    async_connection_wrapper::AsyncConnectionWrapper,
    pooled_connection::{
        AsyncDieselConnectionManager, ManagerConfig, RecyclingMethod,
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
///
/// A task waits at most [`POOL_WAIT`] for a connection (then `Unavailable`, a 503), so that no
/// request or worker hangs for ever on a pool that is used up. Every connection ends a
/// transaction left idle for [`IDLE_IN_TRANSACTION`]: a task dropped in the middle of one (a
/// worker killed) cannot keep its row locks while its connection waits to be recycled.
pub fn pool(url: &str, max_size: usize) -> Result<DbPool> {
    let mut config = ManagerConfig::default();
    // A connection taken from the pool is checked by what its client knows (its socket closed,
    // a transaction left broken), not by a `SELECT 1` each time: that round trip cost every
    // request one per connection it used. A connection that died unnoticed fails its first
    // query, which answers 503 and drops it.
    config.recycling_method = RecyclingMethod::Fast;
    config.custom_setup = Box::new(|url| {
        Box::pin(async move {
            let mut conn = <AsyncPgConnection as diesel_async::AsyncConnection>::establish(url).await?;
            diesel_async::RunQueryDsl::execute(
                diesel::sql_query(format!(
                    "SET idle_in_transaction_session_timeout = {}",
                    IDLE_IN_TRANSACTION.as_millis()
                )),
                &mut conn,
            )
            .await
            .map_err(diesel::ConnectionError::CouldntSetupConfiguration)?;
            Ok(conn)
        })
    });
    let manager = AsyncDieselConnectionManager::<AsyncPgConnection>::new_with_config(url, config);
    Pool::builder(manager)
        .max_size(max_size)
        .wait_timeout(Some(POOL_WAIT))
        .runtime(deadpool::Runtime::Tokio1)
        .build()
        .map_err(Error::internal)
}

/// How long a task waits for a pooled connection.
const POOL_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// How long a transaction may sit idle before the database ends it.
const IDLE_IN_TRANSACTION: std::time::Duration = std::time::Duration::from_secs(60);

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

/// A constant piece of SQL as an expression of type `ST`, which diesel may keep prepared with
/// the statement around it. (Its own `sql()` never is: it cannot know that a literal's text is
/// the same each time, so every statement with one was parsed and planned anew.)
#[derive(Debug, Clone, Copy)]
pub(crate) struct ConstSql<ST> {
    sql: &'static str,
    of: std::marker::PhantomData<ST>,
}

impl<ST> ConstSql<ST> {
    pub(crate) const fn new(sql: &'static str) -> Self {
        Self {
            sql,
            of: std::marker::PhantomData,
        }
    }
}

impl<ST: diesel::sql_types::SqlType + diesel::expression::TypedExpressionType> diesel::Expression
    for ConstSql<ST>
{
    type SqlType = ST;
}

impl<ST> diesel::query_builder::QueryFragment<diesel::pg::Pg> for ConstSql<ST> {
    fn walk_ast<'b>(
        &'b self,
        mut out: diesel::query_builder::AstPass<'_, 'b, diesel::pg::Pg>,
    ) -> diesel::QueryResult<()> {
        out.push_sql(self.sql);
        Ok(())
    }
}

impl<ST> diesel::query_builder::QueryId for ConstSql<ST> {
    type QueryId = ();
    // Not a type of its own: the statement is kept by its text.
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<QS, ST> diesel::SelectableExpression<QS> for ConstSql<ST> where Self: diesel::AppearsOnTable<QS> {}

impl<QS, ST> diesel::AppearsOnTable<QS> for ConstSql<ST> where Self: diesel::Expression {}

impl<GB, ST> diesel::expression::ValidGrouping<GB> for ConstSql<ST> {
    type IsAggregate = diesel::expression::is_aggregate::Never;
}
