//! A site's PostgreSQL database, made and dropped as the superuser.
//!
//! Identifiers are quoted as PostgreSQL quotes them and come only from the site's validated
//! name; values are bound parameters wherever PostgreSQL takes them. A role's password reaches
//! the server as its SCRAM verifier, never in the clear.

use tokio_postgres::{Client, NoTls};

use super::servers::Server;

/// An admin's connection, with its server (to reach its other databases).
pub(crate) struct Admin {
    client: Client,
    server: Server,
}

/// `name` quoted as a PostgreSQL identifier.
pub(crate) fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A connection as `config` says.
pub(crate) async fn connect(mut config: tokio_postgres::Config) -> Result<Client, String> {
    let (client, connection) = config
        .application_name("director")
        .connect(NoTls)
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        if let Err(err) = connection.await {
            tracing::debug!(error = %err, "a PostgreSQL connection ended");
        }
    });
    Ok(client)
}

const ROLE_EXISTS: &str = "SELECT 1 FROM pg_roles WHERE rolname = $1";

fn text(err: tokio_postgres::Error) -> String {
    match err.as_db_error() {
        Some(db) => db.message().to_owned(),
        None => err.to_string(),
    }
}

impl Admin {
    pub(crate) async fn connect(server: &Server) -> Result<Self, String> {
        let client = connect(server.postgres(None, None)).await?;
        Ok(Self {
            client,
            server: server.clone(),
        })
    }

    /// On an operator's server, what of `name` this Director did not make: a role, or a
    /// database, without its mark (a database owned by a marked role is its own, marked or not
    /// yet). None on Director's own server, where every `site_…` is its own.
    async fn foreign(&self, name: &str) -> Result<Option<&'static str>, String> {
        let Some(mark) = self.server.mark() else {
            return Ok(None);
        };
        let row = self
            .client
            .query_opt(
                "SELECT 'role' FROM pg_roles WHERE rolname = $1 \
                 AND shobj_description(oid, 'pg_authid') IS DISTINCT FROM $2 \
                 UNION ALL SELECT 'database' FROM pg_database d WHERE datname = $1 \
                 AND shobj_description(d.oid, 'pg_database') IS DISTINCT FROM $2 \
                 AND shobj_description(d.datdba, 'pg_authid') IS DISTINCT FROM $2 LIMIT 1",
                &[&name, &mark],
            )
            .await
            .map_err(text)?;
        Ok(row.map(|row| match row.get::<_, &str>(0) {
            "role" => "role",
            _ => "database",
        }))
    }

    /// `; COMMENT ON <what> <name> IS '<mark>'` on an operator's server; nothing on Director's
    /// own.
    fn comment(&self, what: &str, name: &str) -> String {
        self.server.mark().map_or_else(String::new, |mark| {
            format!("; COMMENT ON {what} {name} IS '{}'", mark.replace('\'', "''"))
        })
    }

    /// Runs `statements` (one transaction when there are several).
    async fn run(&self, statements: &str) -> Result<(), String> {
        self.client.batch_execute(statements).await.map_err(text)
    }

    /// Whether `query`, with `name` as its one parameter, returns a row.
    async fn found(&self, query: &str, name: &str) -> Result<bool, String> {
        Ok(self
            .client
            .query_opt(query, &[&name])
            .await
            .map_err(text)?
            .is_some())
    }

    /// Makes (or brings back to what it should be) the role `name` with `password` and at most
    /// `connections` connections, and the database `name` it alone owns and may connect to.
    pub(crate) async fn ensure(&self, name: &str, password: &str, connections: u32) -> Result<(), String> {
        let role = quote(name);
        if let Some(what) = self.foreign(name).await? {
            return Err(format!(
                "the server has a {what} named {name} that this Director did not make: it is left alone \
                 (remove it from the server, or give the site another name)"
            ));
        }
        // INHERIT: the owner of a database gets its `public` schema through the implicit
        // pg_database_owner role, which a NOINHERIT role would not use.
        let verifier = postgres_protocol::password::scram_sha_256(password.as_bytes());
        // The verifier is base64 and `$:=` signs: it cannot close the literal.
        let attributes = format!(
            "LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE INHERIT NOREPLICATION NOBYPASSRLS \
             CONNECTION LIMIT {connections} PASSWORD '{verifier}'"
        );
        let verb = if self.found(ROLE_EXISTS, name).await? {
            "ALTER"
        } else {
            "CREATE"
        };
        // Marked in the same transaction: on an operator's server, a role of this name without
        // the mark is someone else's.
        self.run(&format!(
            "{verb} ROLE {role} WITH {attributes}{}",
            self.comment("ROLE", &role)
        ))
        .await?;
        // Take from the role what it may have been given: every membership in or of it is
        // revoked (PostgreSQL before 16 let a role's own session grant it to another, whose
        // site could then take it over). Its own settings are reset, and what only a superuser
        // may set is set: temporary files are limited to 1 GiB (the servers' disk is
        // everyone's).
        self.revoke_memberships(Some(name)).await?;
        self.run(&format!("ALTER ROLE {role} RESET ALL")).await?;
        self.run(&format!("ALTER ROLE {role} SET temp_file_limit = '1GB'"))
            .await?;
        if !self
            .found("SELECT 1 FROM pg_database WHERE datname = $1", name)
            .await?
        {
            self.run(&format!(
                "CREATE DATABASE {role} OWNER {role} ENCODING 'UTF8' TEMPLATE template0"
            ))
            .await?;
        }
        // (CREATE DATABASE takes no transaction: until it is marked, a database owned by a
        // marked role counts as marked.)
        let mark_database = self.comment("DATABASE", &role);
        if !mark_database.is_empty() {
            self.run(mark_database.trim_start_matches("; ")).await?;
        }
        // A new database lets PUBLIC (every role) connect and make temporary tables: only its
        // owner may.
        self.run(&format!(
            "REVOKE ALL ON DATABASE {role} FROM PUBLIC; ALTER DATABASE {role} OWNER TO {role}"
        ))
        .await
    }

    /// Revokes the memberships in or of the role `only`, or (None) every membership between
    /// sites' roles (`site_…`): what a pass of the reconciler does, so that none granted
    /// meanwhile outlives it. Returns how many there were.
    pub(crate) async fn revoke_memberships(&self, only: Option<&str>) -> Result<usize, String> {
        let pattern = only.map_or_else(|| "site\\_%".to_owned(), |name| name.replace('_', "\\_"));
        // On an operator's server, only the roles this Director made are its own to sweep.
        let ours = "($2::text IS NULL OR shobj_description(oid, 'pg_authid') = $2)";
        let memberships = self
            .client
            .query(
                &format!(
                    "SELECT r.rolname, m.rolname FROM pg_auth_members a \
                     JOIN pg_roles r ON r.oid = a.roleid JOIN pg_roles m ON m.oid = a.member \
                     WHERE (r.rolname LIKE $1 AND r.oid IN (SELECT oid FROM pg_roles WHERE {ours})) \
                     OR (m.rolname LIKE $1 AND m.oid IN (SELECT oid FROM pg_roles WHERE {ours}))"
                ),
                &[&pattern, &self.server.mark()],
            )
            .await
            .map_err(text)?;
        for membership in &memberships {
            let (granted, member): (String, String) = (membership.get(0), membership.get(1));
            self.run(&format!("REVOKE {} FROM {}", quote(&granted), quote(&member)))
                .await?;
        }
        Ok(memberships.len())
    }

    /// Ends the role's connections, then drops its database and the role; what is gone already
    /// is fine. What other sites granted it in their databases is revoked there first (a role
    /// with privileges cannot be dropped: another site could otherwise keep this one's deletion
    /// failing for ever).
    pub(crate) async fn remove(&self, name: &str) -> Result<(), String> {
        let role = quote(name);
        if let Some(what) = self.foreign(name).await? {
            tracing::warn!(name, what, "not dropping what this Director did not make");
            return Ok(());
        }
        let exists = self.found(ROLE_EXISTS, name).await?;
        if exists {
            // Logging in again is refused before the connections are ended.
            self.run(&format!("ALTER ROLE {role} NOLOGIN")).await?;
        }
        self.client
            .execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 OR usename = $1",
                &[&name],
            )
            .await
            .map_err(text)?;
        let elsewhere: Vec<String> = self
            .client
            .query(
                "SELECT DISTINCT d.datname FROM pg_shdepend s JOIN pg_database d ON d.oid = s.dbid \
                 WHERE s.refclassid = 'pg_authid'::regclass \
                 AND s.refobjid = (SELECT oid FROM pg_roles WHERE rolname = $1) AND d.datname <> $1",
                &[&name],
            )
            .await
            .map_err(text)?
            .iter()
            .map(|row| row.get(0))
            .collect();
        for database in elsewhere {
            let there = connect(self.server.postgres(None, Some(&database))).await?;
            there
                .batch_execute(&format!("DROP OWNED BY {role}"))
                .await
                .map_err(text)?;
        }
        // One statement each: several in one query run as one transaction, which DROP DATABASE
        // refuses.
        self.run(&format!("DROP DATABASE IF EXISTS {role} WITH (FORCE)"))
            .await?;
        if exists {
            // Privileges on shared objects (another site's database) are revoked from any
            // database; this one is the superuser's own.
            self.run(&format!("DROP OWNED BY {role}")).await?;
        }
        self.run(&format!("DROP ROLE IF EXISTS {role}")).await
    }

    /// The database's size on disk in bytes, and its connections now.
    pub(crate) async fn usage(&self, name: &str) -> Result<(u64, u32), String> {
        let row = self
            .client
            .query_one(
                "SELECT COALESCE((SELECT pg_database_size(datname) FROM pg_database WHERE datname = $1), 0), \
                 (SELECT count(*) FROM pg_stat_activity WHERE datname = $1)",
                &[&name],
            )
            .await
            .map_err(text)?;
        let size: i64 = row.get(0);
        let connections: i64 = row.get(1);
        Ok((
            u64::try_from(size).unwrap_or(0),
            u32::try_from(connections).unwrap_or(0),
        ))
    }

    /// The server's version, the size of all its databases in bytes, and its clients'
    /// connections now.
    pub(crate) async fn facts(&self) -> Result<super::ServerFacts, String> {
        let row = self
            .client
            .query_one(
                "SELECT current_setting('server_version'), \
                 (SELECT COALESCE(sum(pg_database_size(datname)), 0)::bigint FROM pg_database), \
                 (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend')",
                &[],
            )
            .await
            .map_err(text)?;
        let size: i64 = row.get(1);
        let connections: i64 = row.get(2);
        // On Director's own server its pg_hba.conf lets a role into its own database alone.
        let open_databases = match self.server.mark() {
            Some(_) => self
                .client
                .query(
                    "SELECT datname::text FROM pg_database WHERE datallowconn \
                     AND datname NOT LIKE 'site\\_%' AND has_database_privilege('public', datname, 'CONNECT') \
                     ORDER BY datname",
                    &[],
                )
                .await
                .map_err(text)?
                .iter()
                .map(|row| row.get(0))
                .collect(),
            None => Vec::new(),
        };
        Ok(super::ServerFacts {
            version: row.get(0),
            data_bytes: u64::try_from(size).unwrap_or(0),
            connections: u32::try_from(connections).unwrap_or(u32::MAX),
            open_databases,
        })
    }

    /// Every site database's size in bytes, by name.
    pub(crate) async fn sizes(&self) -> Result<Vec<(String, u64)>, String> {
        let rows = self
            .client
            .query(
                "SELECT datname::text, pg_database_size(datname) FROM pg_database \
                 WHERE datname LIKE 'site\\_%'",
                &[],
            )
            .await
            .map_err(text)?;
        Ok(rows
            .iter()
            .map(|row| {
                let size: i64 = row.get(1);
                (row.get(0), u64::try_from(size).unwrap_or(0))
            })
            .collect())
    }
}
