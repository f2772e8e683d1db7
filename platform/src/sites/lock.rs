//! A site's lock, held while something changes what runs for it: a worker running one of its
//! operations, or the reconciler correcting it. PostgreSQL advisory locks, so that they hold
//! across manager processes, on a connection of their own (session locks, released
//! explicitly; a connection that breaks releases them too).

use diesel::{sql_query, sql_types::Integer};
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use crate::Result;

/// The first key of every site lock, apart from any other advisory lock: drawn from the
/// schema's name, because advisory locks are the database's, not the schema's (two Directors,
/// or two tests, on schemas of one database must not hold each other's sites).
const SITE_LOCKS: &str = "hashtext(current_schema() || '/site')";

#[derive(diesel::QueryableByName)]
struct Locked {
    #[diesel(sql_type = diesel::sql_types::Bool)]
    locked: bool,
}

/// Waits for the site's lock.
pub(crate) async fn lock(conn: &mut AsyncPgConnection, site: i32) -> Result<()> {
    sql_query(format!("SELECT pg_advisory_lock({SITE_LOCKS}, $1)"))
        .bind::<Integer, _>(site)
        .execute(conn)
        .await?;
    Ok(())
}

/// Takes the site's lock if nobody holds it.
pub(crate) async fn try_lock(conn: &mut AsyncPgConnection, site: i32) -> Result<bool> {
    let row: Locked = sql_query(format!("SELECT pg_try_advisory_lock({SITE_LOCKS}, $1) AS locked"))
        .bind::<Integer, _>(site)
        .get_result(conn)
        .await?;
    Ok(row.locked)
}

/// Releases the site's lock.
pub(crate) async fn unlock(conn: &mut AsyncPgConnection, site: i32) -> Result<()> {
    sql_query(format!("SELECT pg_advisory_unlock({SITE_LOCKS}, $1)"))
        .bind::<Integer, _>(site)
        .execute(conn)
        .await?;
    Ok(())
}
