//! A site's MySQL (MariaDB) database, made and dropped as the superuser.
//!
//! MySQL takes no identifier as a bound parameter: identifiers come only from the site's
//! validated name and are quoted as MySQL quotes them. In `GRANT … ON db.*`, `_` and `%` are
//! wildcards: there they are escaped too, or `site_a` would match `siteXa`.

use super::servers::Server;
use mysql_async::{Conn, prelude::Queryable as _};

/// A superuser's connection, with the mark of what this installation makes on an operator's
/// server (see `Server::mark`).
pub(crate) struct Admin {
    conn: Conn,
    mark: Option<String>,
}

/// `name` quoted as a MySQL identifier.
pub(crate) fn quote(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

/// `name` as a string literal.
fn literal(name: &str) -> String {
    format!("'{}'", name.replace('\\', "\\\\").replace('\'', "''"))
}

/// A connection as `opts` say.
pub(crate) async fn connect(opts: mysql_async::OptsBuilder) -> Result<Conn, String> {
    tokio::time::timeout(
        std::time::Duration::from_secs(5),
        Conn::new(opts.wait_timeout(Some(600))),
    )
    .await
    .map_err(|_| "the server did not answer within 5 s".to_owned())?
    .map_err(text)
}

pub(crate) fn text(err: mysql_async::Error) -> String {
    match err {
        mysql_async::Error::Server(server) => server.message,
        other => other.to_string(),
    }
}

impl Admin {
    pub(crate) async fn connect(server: &Server) -> Result<Self, String> {
        let conn = connect(server.mysql(None, None)).await?;
        Ok(Self {
            conn,
            mark: server.mark().map(ToOwned::to_owned),
        })
    }

    /// Makes (or brings back to what it should be) the user `name`@`%` with `password` and at
    /// most `connections` connections, and the database `name` it alone has rights on.
    pub(crate) async fn ensure(
        &mut self,
        name: &str,
        password: &str,
        connections: u32,
    ) -> Result<(), String> {
        if self.foreign(name).await? {
            return Err(format!(
                "the server has a database or user named {name} that this Director did not make: it is \
                 left alone (remove it from the server, or give the site another name)"
            ));
        }
        let (database, user) = (quote(name), format!("{}@'%'", literal(name)));
        let grant_target = quote(&name.replace('_', "\\_").replace('%', "\\%"));
        // On an operator's server the database is marked as it is made, before its user.
        let comment = self
            .mark
            .as_deref()
            .map_or_else(String::new, |mark| format!(" COMMENT {}", literal(mark)));
        // The password is letters and digits (checked where it is made and by the table).
        let statements = [
            format!(
                "CREATE DATABASE IF NOT EXISTS {database} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci{comment}"
            ),
            format!(
                "CREATE USER IF NOT EXISTS {user} IDENTIFIED BY {}",
                literal(password)
            ),
            format!(
                "ALTER USER {user} IDENTIFIED BY {} WITH MAX_USER_CONNECTIONS {connections}",
                literal(password)
            ),
            format!("GRANT ALL PRIVILEGES ON {grant_target}.* TO {user}"),
        ];
        for statement in statements {
            self.conn.query_drop(statement).await.map_err(text)?;
        }
        Ok(())
    }

    /// On an operator's server, whether `name` is someone else's: a database of that name
    /// without this installation's mark, or a user without its database (Director makes the
    /// database first and drops it last). Never on Director's own server.
    async fn foreign(&mut self, name: &str) -> Result<bool, String> {
        let Some(mark) = self.mark.clone() else {
            return Ok(false);
        };
        let comment: Option<Option<String>> = self
            .conn
            .exec_first(
                "SELECT schema_comment FROM information_schema.schemata WHERE schema_name = ?",
                (name,),
            )
            .await
            .map_err(text)?;
        if let Some(comment) = comment {
            return Ok(comment.as_deref() != Some(mark.as_str()));
        }
        let user: Option<u8> = self
            .conn
            .exec_first("SELECT 1 FROM mysql.user WHERE user = ? AND host = '%'", (name,))
            .await
            .map_err(text)?;
        Ok(user.is_some())
    }

    /// Ends the user's connections, then drops its database and the user; what is gone already
    /// is fine.
    pub(crate) async fn remove(&mut self, name: &str) -> Result<(), String> {
        if self.foreign(name).await? {
            tracing::warn!(name, "not dropping what this Director did not make");
            return Ok(());
        }
        let user = format!("{}@'%'", literal(name));
        self.conn
            .query_drop(format!("DROP USER IF EXISTS {user}"))
            .await
            .map_err(text)?;
        let connections: Vec<u64> = self
            .conn
            .exec(
                "SELECT id FROM information_schema.processlist WHERE user = ?",
                (name,),
            )
            .await
            .map_err(text)?;
        for id in connections {
            // One that ended meanwhile is fine.
            let _ = self.conn.query_drop(format!("KILL CONNECTION {id}")).await;
        }
        self.conn
            .query_drop(format!("DROP DATABASE IF EXISTS {}", quote(name)))
            .await
            .map_err(text)
    }

    /// The database's size in bytes (its tables' data and indexes), and its connections now.
    pub(crate) async fn usage(&mut self, name: &str) -> Result<(u64, u32), String> {
        let size: Option<u64> = self
            .conn
            .exec_first(
                "SELECT CAST(COALESCE(SUM(data_length + index_length), 0) AS UNSIGNED) \
                 FROM information_schema.tables WHERE table_schema = ?",
                (name,),
            )
            .await
            .map_err(text)?;
        let connections: Option<u64> = self
            .conn
            .exec_first(
                "SELECT COUNT(*) FROM information_schema.processlist WHERE user = ?",
                (name,),
            )
            .await
            .map_err(text)?;
        Ok((
            size.unwrap_or(0),
            u32::try_from(connections.unwrap_or(0)).unwrap_or(u32::MAX),
        ))
    }

    /// The server's version, the size of all its schemas in bytes, and its clients'
    /// connections now.
    pub(crate) async fn facts(&mut self) -> Result<super::ServerFacts, String> {
        let version: Option<String> = self.conn.query_first("SELECT VERSION()").await.map_err(text)?;
        let size: Option<u64> = self
            .conn
            .query_first(
                "SELECT CAST(COALESCE(SUM(data_length + index_length), 0) AS UNSIGNED) \
                 FROM information_schema.tables",
            )
            .await
            .map_err(text)?;
        let connections: Option<u64> = self
            .conn
            .query_first("SELECT COUNT(*) FROM information_schema.processlist")
            .await
            .map_err(text)?;
        Ok(super::ServerFacts {
            version: version.unwrap_or_default(),
            data_bytes: size.unwrap_or(0),
            connections: u32::try_from(connections.unwrap_or(0)).unwrap_or(u32::MAX),
            // A MySQL user has no rights on a schema it was not granted.
            open_databases: Vec::new(),
        })
    }

    /// Every site database's size in bytes, by name (one without tables is not listed).
    pub(crate) async fn sizes(&mut self) -> Result<Vec<(String, u64)>, String> {
        self.conn
            .query(
                "SELECT table_schema, CAST(SUM(data_length + index_length) AS UNSIGNED) \
                 FROM information_schema.tables WHERE table_schema LIKE 'site\\_%' GROUP BY table_schema",
            )
            .await
            .map_err(text)
    }
}
