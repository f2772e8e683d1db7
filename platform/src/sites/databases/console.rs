//! The SQL console: a member's statements, run as the site's own role (never a superuser) on a
//! connection of their own, for at most [`CONSOLE_TIMEOUT_SECS`]; the first [`CONSOLE_ROWS`]
//! rows of each statement are kept and the rest counted, as they stream in.

use std::time::{Duration, Instant};

use futures::StreamExt as _;
use model::database::{CONSOLE_ROWS, CONSOLE_TIMEOUT_SECS, ConsoleRun, SqlError, StatementResult, Value};
use mysql_async::prelude::Queryable as _;
use orchestrator::databases::ServerSpec;

/// The limit the server holds a run to; the console's own wait is a little longer, and then
/// it cancels the run itself (a member may have lifted the server's limit).
const TIMEOUT: Duration = Duration::from_secs(CONSOLE_TIMEOUT_SECS);
const GRACE: Duration = Duration::from_secs(2);

fn timed_out() -> SqlError {
    SqlError {
        message: format!("canceled: the statements ran longer than {CONSOLE_TIMEOUT_SECS} s"),
        position: None,
        code: String::new(),
        at: None,
    }
}

/// Keeps a statement's first rows and counts the others.
#[derive(Default)]
struct Collect {
    result: StatementResult,
}

impl Collect {
    fn row(&mut self, values: impl FnOnce() -> Vec<Value>) {
        if self.result.rows.len() < CONSOLE_ROWS {
            self.result.rows.push(values());
        } else {
            self.result.more_rows += 1;
        }
    }
}

/// Runs `sql` on PostgreSQL as the role `name` in its database.
pub(crate) async fn postgres(spec: &ServerSpec, name: &str, password: &str, sql: &str) -> ConsoleRun {
    let started = Instant::now();
    let connected = tokio_postgres::Config::new()
        .host_path(spec.socket_dir())
        .port(spec.engine.port())
        .user(name)
        .password(password)
        .dbname(name)
        .application_name("director console")
        .options(format!("-c statement_timeout={}s", CONSOLE_TIMEOUT_SECS))
        .connect_timeout(Duration::from_secs(5))
        .connect(tokio_postgres::NoTls)
        .await;
    let client = match connected {
        Ok((client, connection)) => {
            tokio::spawn(connection);
            client
        }
        Err(err) => return failed(started, postgres_error(&err)),
    };
    let mut run = ConsoleRun::default();
    let work = async {
        let stream = match client.simple_query_raw(sql).await {
            Ok(stream) => stream,
            Err(err) => return Some(postgres_error(&err)),
        };
        futures::pin_mut!(stream);
        let mut current = Collect::default();
        while let Some(message) = stream.next().await {
            match message {
                Ok(tokio_postgres::SimpleQueryMessage::RowDescription(columns)) => {
                    current.result.columns = columns.iter().map(|c| c.name().to_owned()).collect();
                }
                Ok(tokio_postgres::SimpleQueryMessage::Row(row)) => current.row(|| {
                    (0..row.len())
                        .map(|i| row.get(i).map_or(Value::Null, Value::text))
                        .collect()
                }),
                Ok(tokio_postgres::SimpleQueryMessage::CommandComplete(count)) => {
                    let mut done = std::mem::take(&mut current).result;
                    done.affected = count;
                    run.results.push(done);
                }
                Ok(_) => {}
                Err(err) => return Some(postgres_error(&err)),
            }
        }
        None
    };
    let error = match tokio::time::timeout(TIMEOUT + GRACE, work).await {
        Ok(error) => error,
        Err(_) => {
            let _ = client.cancel_token().cancel_query(tokio_postgres::NoTls).await;
            Some(timed_out())
        }
    };
    run.error = error.map(|e| if e.code == "57014" { timed_out() } else { e });
    run.millis = elapsed(started);
    run
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
        None => SqlError {
            message: err.to_string(),
            position: None,
            code: String::new(),
            at: None,
        },
    }
}

/// Runs `sql` on MariaDB as the user `name` in its database.
pub(crate) async fn mysql(spec: &ServerSpec, name: &str, password: &str, sql: &str) -> ConsoleRun {
    let started = Instant::now();
    let mut conn = match super::mysql::connect(spec, name, password, Some(name)).await {
        Ok(conn) => conn,
        Err(message) => {
            return failed(
                started,
                SqlError {
                    message,
                    position: None,
                    code: String::new(),
                    at: None,
                },
            );
        }
    };
    let limit = format!("SET SESSION max_statement_time = {CONSOLE_TIMEOUT_SECS}");
    if let Err(err) = conn.query_drop(limit).await {
        return failed(started, mysql_error(err));
    }
    let id = conn.id();
    let mut run = ConsoleRun::default();
    let work = async {
        let mut result = match conn.query_iter(sql).await {
            Ok(result) => result,
            Err(err) => return Some(mysql_error(err)),
        };
        loop {
            let columns = result.columns().unwrap_or_default();
            let mut current = Collect::default();
            current.result.columns = columns.iter().map(|c| c.name_str().into_owned()).collect();
            current.result.affected = result.affected_rows();
            loop {
                match result.next().await {
                    Ok(Some(row)) => current.row(|| mysql_values(&columns, row)),
                    Ok(None) => break,
                    Err(err) => {
                        run.results.push(current.result);
                        return Some(mysql_error(err));
                    }
                }
            }
            if !current.result.columns.is_empty() {
                current.result.affected = current.result.rows.len() as u64 + current.result.more_rows;
            }
            run.results.push(current.result);
            if result.is_empty() {
                return None;
            }
        }
    };
    let error = match tokio::time::timeout(TIMEOUT + GRACE, work).await {
        Ok(error) => error,
        Err(_) => {
            // The run's connection is busy: the query is ended from a connection of the
            // site's own, which may end its own queries.
            if let Ok(mut other) = super::mysql::connect(spec, name, password, Some(name)).await {
                let _ = other.query_drop(format!("KILL QUERY {id}")).await;
            }
            Some(timed_out())
        }
    };
    // ER_STATEMENT_TIMEOUT
    run.error = error.map(|e| if e.code == "1969" { timed_out() } else { e });
    run.millis = elapsed(started);
    run
}

/// A row's values: text as it is, binary strings (and anything that is not UTF-8) in hex.
fn mysql_values(columns: &[mysql_async::Column], row: mysql_async::Row) -> Vec<Value> {
    use mysql_async::consts::ColumnType as T;
    let values = row.unwrap();
    values
        .into_iter()
        .zip(columns)
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

fn mysql_error(err: mysql_async::Error) -> SqlError {
    match err {
        mysql_async::Error::Server(server) => SqlError {
            // MariaDB says where a syntax error is as "near '…' at line N", never as an offset.
            position: None,
            message: server.message,
            code: server.code.to_string(),
            at: None,
        },
        other => SqlError {
            message: other.to_string(),
            position: None,
            code: String::new(),
            at: None,
        },
    }
}

fn failed(started: Instant, error: SqlError) -> ConsoleRun {
    ConsoleRun {
        results: Vec::new(),
        error: Some(error),
        millis: elapsed(started),
    }
}

fn elapsed(started: Instant) -> u64 {
    u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX)
}
