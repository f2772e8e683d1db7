//! The SQL console: a member's statements, run as the site's own role (never a superuser) on a
//! connection of their own, for at most [`CONSOLE_TIMEOUT_SECS`]; the first [`CONSOLE_ROWS`]
//! rows of each statement are kept and the rest counted, as they stream in, within a budget
//! of bytes, columns and results for the whole run.
//!
//! A run that ends any other way than the server's own answer — the console's wait is over, or
//! the stream broke off (a `COPY`, which the console does not speak) — has its session ended by
//! the superuser: a member may have lifted the server's limit, or trapped the cancel in a
//! procedure, and nothing of the run may go on for nobody.

use std::time::{Duration, Instant};

use futures::StreamExt as _;
use model::database::{
    CONSOLE_BYTES, CONSOLE_COLUMNS, CONSOLE_RESULTS, CONSOLE_ROWS, CONSOLE_TIMEOUT_SECS, ConsoleRun,
    SqlError, StatementResult, Value,
};
use mysql_async::prelude::Queryable as _;

use super::servers::Server;

/// The limit the server holds a run to; the console's own wait is a little longer.
const TIMEOUT: Duration = Duration::from_secs(CONSOLE_TIMEOUT_SECS);
const GRACE: Duration = Duration::from_secs(2);

fn timed_out() -> SqlError {
    message(format!(
        "canceled: the statements ran longer than {CONSOLE_TIMEOUT_SECS} s"
    ))
}

fn message(message: String) -> SqlError {
    SqlError {
        message,
        position: None,
        code: String::new(),
        at: None,
    }
}

/// What a run keeps: each statement's first rows, within the run's budget; the rest counted.
#[derive(Default)]
struct Collect {
    run: ConsoleRun,
    current: StatementResult,
    bytes: usize,
}

impl Collect {
    fn columns(&mut self, names: impl Iterator<Item = String>) {
        let names: Vec<String> = names.collect();
        if names.len() > CONSOLE_COLUMNS {
            self.run.truncated = true;
        }
        self.current.columns = names.into_iter().take(CONSOLE_COLUMNS).collect();
    }

    /// Keeps a row (its first [`CONSOLE_COLUMNS`] values) while the statement has fewer than
    /// [`CONSOLE_ROWS`] and the run is within [`CONSOLE_BYTES`]; counts it otherwise.
    fn row(&mut self, values: impl FnOnce() -> Vec<Value>) {
        if self.current.rows.len() >= CONSOLE_ROWS || self.bytes >= CONSOLE_BYTES {
            self.current.more_rows += 1;
            self.run.truncated |= self.bytes >= CONSOLE_BYTES;
            return;
        }
        let row: Vec<Value> = values().into_iter().take(CONSOLE_COLUMNS).collect();
        self.bytes += row.iter().map(Value::size).sum::<usize>() + 8 * row.len();
        self.current.rows.push(row);
    }

    /// Ends the statement; false once the run has as many results as it may keep.
    fn done(&mut self, affected: Option<u64>) -> bool {
        let mut result = std::mem::take(&mut self.current);
        result.affected = affected.unwrap_or(result.rows.len() as u64 + result.more_rows);
        self.run.results.push(result);
        self.run.results.len() < CONSOLE_RESULTS
    }
}

/// How a run's work ended.
enum Ended {
    /// The server answered every statement (or refused one, as it said).
    Answered(Option<SqlError>),
    /// The run stopped early (the budget of results, a message the console does not speak):
    /// its session is ended.
    Broken(SqlError),
}

/// Runs `sql` on PostgreSQL as the role `name` in its database.
pub(crate) async fn postgres(server: &Server, name: &str, password: &str, sql: &str) -> ConsoleRun {
    let started = Instant::now();
    let connected = server
        .postgres(Some((name, password)), Some(name))
        .application_name("director console")
        .options(format!("-c statement_timeout={CONSOLE_TIMEOUT_SECS}s"))
        .connect(tokio_postgres::NoTls)
        .await;
    let (client, connection) = match connected {
        Ok((client, connection)) => (client, tokio::spawn(connection)),
        Err(err) => return failed(started, postgres_error(&err)),
    };
    let pid: Option<i32> = match client.query_one("SELECT pg_backend_pid()", &[]).await {
        Ok(row) => row.try_get(0).ok(),
        Err(err) => return failed(started, postgres_error(&err)),
    };
    let mut collect = Collect::default();
    let work = async {
        let stream = match client.simple_query_raw(sql).await {
            Ok(stream) => stream,
            Err(err) => return answered_or_broken(&err),
        };
        futures::pin_mut!(stream);
        while let Some(message) = stream.next().await {
            match message {
                Ok(tokio_postgres::SimpleQueryMessage::RowDescription(columns)) => {
                    collect.columns(columns.iter().map(|c| c.name().to_owned()));
                }
                Ok(tokio_postgres::SimpleQueryMessage::Row(row)) => collect.row(|| {
                    (0..row.len().min(CONSOLE_COLUMNS))
                        .map(|i| row.get(i).map_or(Value::Null, Value::text))
                        .collect()
                }),
                Ok(tokio_postgres::SimpleQueryMessage::CommandComplete(count)) => {
                    if !collect.done(Some(count)) {
                        return Ended::Broken(message_more_results());
                    }
                }
                Ok(_) => {}
                Err(err) => return answered_or_broken(&err),
            }
        }
        Ended::Answered(None)
    };
    let ended = match tokio::time::timeout(TIMEOUT + GRACE, work).await {
        Ok(Ended::Answered(error)) => error.map(|e| if e.code == "57014" { timed_out() } else { e }),
        Ok(Ended::Broken(error)) => {
            end_postgres_session(server, pid).await;
            Some(error)
        }
        Err(_) => {
            end_postgres_session(server, pid).await;
            Some(timed_out())
        }
    };
    drop(client);
    connection.abort();
    let mut run = collect.run;
    run.error = ended;
    run.millis = elapsed(started);
    run
}

fn message_more_results() -> SqlError {
    message(format!(
        "stopped: the console shows at most {CONSOLE_RESULTS} results per run"
    ))
}

/// A server's refusal is its answer; anything else (the connection broke, a `COPY` the console
/// does not speak) leaves the session in a state nobody should find it in.
fn answered_or_broken(err: &tokio_postgres::Error) -> Ended {
    match err.as_db_error() {
        Some(_) => Ended::Answered(Some(postgres_error(err))),
        None => Ended::Broken(message(format!(
            "the console does not run this (COPY to or from the client is not supported): {err}"
        ))),
    }
}

/// Ends the session `pid` as the superuser: a FATAL no procedure can trap.
async fn end_postgres_session(server: &Server, pid: Option<i32>) {
    let Some(pid) = pid else { return };
    match super::postgres::connect(server.postgres(None, None)).await {
        Ok(admin) => {
            if let Err(err) = admin.execute("SELECT pg_terminate_backend($1)", &[&pid]).await {
                tracing::warn!(pid, error = %err, "ending a console session failed");
            }
        }
        Err(err) => tracing::warn!(pid, error = %err, "ending a console session failed"),
    }
}

fn postgres_error(err: &tokio_postgres::Error) -> SqlError {
    match err.as_db_error() {
        Some(db) => SqlError {
            message: db.message().to_owned(),
            position: match db.position() {
                Some(tokio_postgres::error::ErrorPosition::Original(at)) => Some(*at),
                _ => None,
            },
            code: db.code().code().to_owned(),
            at: None,
        },
        None => message(err.to_string()),
    }
}

/// Runs `sql` on MariaDB as the user `name` in its database.
pub(crate) async fn mysql(server: &Server, name: &str, password: &str, sql: &str) -> ConsoleRun {
    let started = Instant::now();
    let mut conn = match super::mysql::connect(server.mysql(Some((name, password)), Some(name))).await {
        Ok(conn) => conn,
        Err(text) => return failed(started, message(text)),
    };
    let limit = format!("SET SESSION max_statement_time = {CONSOLE_TIMEOUT_SECS}");
    if let Err(err) = conn.query_drop(limit).await {
        return failed(started, mysql_error(err));
    }
    let id = conn.id();
    let mut collect = Collect::default();
    let work = async {
        let mut result = match conn.query_iter(sql).await {
            Ok(result) => result,
            Err(err) => return mysql_ended(err),
        };
        loop {
            let columns = result.columns().unwrap_or_default();
            collect.columns(columns.iter().map(|c| c.name_str().into_owned()));
            let affected = columns.is_empty().then(|| result.affected_rows());
            loop {
                match result.next().await {
                    Ok(Some(row)) => collect.row(|| mysql_values(&columns, row)),
                    Ok(None) => break,
                    Err(err) => {
                        collect.done(affected);
                        return mysql_ended(err);
                    }
                }
            }
            let room = collect.done(affected);
            if result.is_empty() {
                return Ended::Answered(None);
            }
            if !room {
                return Ended::Broken(message_more_results());
            }
        }
    };
    let ended = match tokio::time::timeout(TIMEOUT + GRACE, work).await {
        // ER_STATEMENT_TIMEOUT
        Ok(Ended::Answered(error)) => error.map(|e| if e.code == "1969" { timed_out() } else { e }),
        Ok(Ended::Broken(error)) => {
            end_mysql_session(server, id).await;
            Some(error)
        }
        Err(_) => {
            end_mysql_session(server, id).await;
            Some(timed_out())
        }
    };
    let mut run = collect.run;
    run.error = ended;
    run.millis = elapsed(started);
    run
}

/// Ends the connection `id` as the superuser (who has a connection kept for it when the
/// site's user holds all of its own).
async fn end_mysql_session(server: &Server, id: u32) {
    match super::mysql::connect(server.mysql(None, None)).await {
        Ok(mut admin) => {
            if let Err(err) = admin.query_drop(format!("KILL CONNECTION {id}")).await {
                tracing::warn!(id, error = %super::mysql::text(err), "ending a console session failed");
            }
        }
        Err(err) => tracing::warn!(id, error = %err, "ending a console session failed"),
    }
}

/// A row's values: text as it is, binary strings (and anything that is not UTF-8) in hex.
fn mysql_values(columns: &[mysql_async::Column], row: mysql_async::Row) -> Vec<Value> {
    use mysql_async::consts::ColumnType as T;
    let values = row.unwrap();
    values
        .into_iter()
        .zip(columns)
        .take(CONSOLE_COLUMNS)
        .map(|(value, column)| match value {
            mysql_async::Value::NULL => Value::Null,
            mysql_async::Value::Bytes(bytes) => {
                let binary = column.character_set() == 63
                    && matches!(
                        column.column_type(),
                        T::MYSQL_TYPE_BLOB
                            | T::MYSQL_TYPE_TINY_BLOB
                            | T::MYSQL_TYPE_MEDIUM_BLOB
                            | T::MYSQL_TYPE_LONG_BLOB
                            | T::MYSQL_TYPE_VAR_STRING
                            | T::MYSQL_TYPE_STRING
                            | T::MYSQL_TYPE_VARCHAR
                            | T::MYSQL_TYPE_BIT
                            | T::MYSQL_TYPE_GEOMETRY
                    );
                match std::str::from_utf8(&bytes) {
                    Ok(text) if !binary => Value::text(text),
                    _ => Value::binary(&bytes),
                }
            }
            other => Value::text(&other.as_sql(true)),
        })
        .collect()
}

/// The server's refusal is its answer; anything else leaves the session to be ended.
fn mysql_ended(err: mysql_async::Error) -> Ended {
    match err {
        server @ mysql_async::Error::Server(_) => Ended::Answered(Some(mysql_error(server))),
        other => Ended::Broken(mysql_error(other)),
    }
}

fn mysql_error(err: mysql_async::Error) -> SqlError {
    match err {
        mysql_async::Error::Server(server) => SqlError {
            message: server.message,
            // MariaDB says where a syntax error is as "near '…' at line N", never as an offset.
            position: None,
            code: server.code.to_string(),
            at: None,
        },
        other => message(other.to_string()),
    }
}

fn failed(started: Instant, error: SqlError) -> ConsoleRun {
    ConsoleRun {
        error: Some(error),
        millis: elapsed(started),
        ..ConsoleRun::default()
    }
}

fn elapsed(started: Instant) -> u64 {
    u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// The last run of each member's console on each site, kept until the page shows it: a page
/// without JavaScript posts its form, is sent back to itself, and shows the run from here.
/// Kept briefly and for few at once, since a run may hold megabytes: a page shows it within a
/// moment, or never.
#[derive(Debug, Default)]
pub(crate) struct LastRuns(std::sync::Mutex<std::collections::HashMap<(i64, i32), (Instant, ConsoleRun)>>);

/// How long a run waits for its page.
const LAST_RUN_KEPT: Duration = Duration::from_secs(60);
/// How many runs wait at once; past it, the oldest goes.
const LAST_RUNS: usize = 16;

impl LastRuns {
    fn runs(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::HashMap<(i64, i32), (Instant, ConsoleRun)>> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(crate) fn put(&self, user: i64, site: i32, run: ConsoleRun) {
        let mut runs = self.runs();
        runs.retain(|_, (at, _)| at.elapsed() < LAST_RUN_KEPT);
        runs.insert((user, site), (Instant::now(), run));
        while runs.len() > LAST_RUNS {
            let oldest = runs.iter().min_by_key(|(_, (at, _))| *at).map(|(key, _)| *key);
            if let Some(oldest) = oldest {
                runs.remove(&oldest);
            }
        }
    }

    pub(crate) fn take(&self, user: i64, site: i32) -> Option<ConsoleRun> {
        self.runs()
            .remove(&(user, site))
            .filter(|(at, _)| at.elapsed() < LAST_RUN_KEPT)
            .map(|(_, run)| run)
    }
}

#[cfg(test)]
mod last_runs {
    use super::*;

    fn run(millis: u64) -> ConsoleRun {
        ConsoleRun {
            millis,
            ..ConsoleRun::default()
        }
    }

    #[test]
    fn a_run_is_shown_once_to_its_member_on_its_site_and_the_oldest_make_room() {
        let runs = LastRuns::default();
        runs.put(1, 10, run(1));
        assert_eq!(runs.take(2, 10), None, "another member");
        assert_eq!(runs.take(1, 11), None, "another site");
        assert_eq!(runs.take(1, 10), Some(run(1)));
        assert_eq!(runs.take(1, 10), None, "shown once");
        for user in 0..=LAST_RUNS as i64 {
            runs.put(user, 10, run(user as u64));
        }
        assert_eq!(runs.take(0, 10), None, "the oldest made room");
        assert_eq!(runs.take(LAST_RUNS as i64, 10), Some(run(LAST_RUNS as u64)));
    }
}
