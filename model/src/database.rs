//! Sites' databases: which kinds a site may have, and where each is in its life.

stored_enum! {
    /// Which database server a site's database is on.
    pub enum DatabaseKind ("database kind") {
        /// PostgreSQL.
        Postgresql = "postgresql",
        /// MySQL (MariaDB).
        Mysql = "mysql",
    }
}

stored_enum! {
    /// Where a site's database is in its life.
    pub enum DatabaseState ("database state") {
        /// Asked for: its database and role are being made.
        Creating = "creating",
        /// Made; its variables are in the site's environment.
        Ready = "ready",
        /// Being dropped with its role.
        Deleting = "deleting",
    }
}

/// How a database server is, as its administrator sees it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ServerState {
    /// Not started yet: no site has had a database on it.
    NotStarted,
    /// Its task runs, and it answers.
    Up,
    /// Its task is starting (or restarting), or runs without answering yet.
    Starting,
    /// No task of it runs; the engine's last word on why, when it said one.
    Down(Option<String>),
    /// Director is not connected to Docker: nothing can be said of it.
    Unknown,
}

impl ServerState {
    /// Its word for people.
    pub fn label(&self) -> &'static str {
        match self {
            Self::NotStarted => "not started",
            Self::Up => "up",
            Self::Starting => "starting",
            Self::Down(_) => "down",
            Self::Unknown => "unknown",
        }
    }
}

impl DatabaseKind {
    /// Its name for people.
    pub fn label(self) -> &'static str {
        match self {
            Self::Postgresql => "PostgreSQL",
            Self::Mysql => "MySQL (MariaDB)",
        }
    }

    /// The variables a site gets from a database of this kind, besides `DATABASE_URL`: its
    /// URL, then its host, port, user, password and database.
    pub fn variables(self) -> [&'static str; 6] {
        match self {
            Self::Postgresql => [
                "POSTGRES_URL",
                "PGHOST",
                "PGPORT",
                "PGUSER",
                "PGPASSWORD",
                "PGDATABASE",
            ],
            Self::Mysql => [
                "MYSQL_URL",
                "MYSQL_HOST",
                "MYSQL_PORT",
                "MYSQL_USER",
                "MYSQL_PASSWORD",
                "MYSQL_DATABASE",
            ],
        }
    }

    /// The scheme of its URLs.
    pub fn scheme(self) -> &'static str {
        match self {
            Self::Postgresql => "postgresql",
            Self::Mysql => "mysql",
        }
    }
}

/// The most rows of one statement's result the SQL console shows; the rest are counted.
pub const CONSOLE_ROWS: usize = 1000;
/// The most characters of one value the SQL console sends; a longer one is cut there.
pub const CONSOLE_VALUE_CHARS: usize = 4096;
/// The most bytes of values one run of the SQL console keeps; past it, rows are only counted.
pub const CONSOLE_BYTES: usize = 8 << 20;
/// The most columns of a result the SQL console keeps.
pub const CONSOLE_COLUMNS: usize = 200;
/// The most statements' results one run of the SQL console keeps; past it, the run is stopped.
pub const CONSOLE_RESULTS: usize = 100;
/// How long one run of the SQL console may take, in seconds.
pub const CONSOLE_TIMEOUT_SECS: u64 = 10;
/// The statements a member's SQL console history keeps per site.
pub const CONSOLE_HISTORY: usize = 50;

/// One value of a result, as the SQL console shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Value {
    /// SQL's NULL.
    Null,
    /// Text (binary values as `\x…` hex), cut at [`CONSOLE_VALUE_CHARS`] characters.
    Text {
        /// The value, or its beginning.
        text: String,
        /// Its whole size in bytes, when it was cut.
        cut_from: Option<usize>,
    },
}

impl Value {
    /// `text`, cut at [`CONSOLE_VALUE_CHARS`] characters. Only that beginning is looked at,
    /// however long the text (a value may be a gigabyte).
    pub fn text(text: &str) -> Self {
        match text.char_indices().nth(CONSOLE_VALUE_CHARS) {
            None => Self::Text {
                text: text.to_owned(),
                cut_from: None,
            },
            Some((end, _)) => Self::Text {
                text: text[..end].to_owned(),
                cut_from: Some(text.len()),
            },
        }
    }

    /// The bytes it holds.
    pub fn size(&self) -> usize {
        match self {
            Self::Null => 0,
            Self::Text { text, .. } => text.len(),
        }
    }

    /// Bytes as `\x` and their hex digits (only as many as are shown).
    pub fn binary(bytes: &[u8]) -> Self {
        let shown = &bytes[..bytes.len().min(CONSOLE_VALUE_CHARS / 2)];
        let mut hex = String::with_capacity(2 + 2 * shown.len());
        hex.push_str("\\x");
        for byte in shown {
            hex.push_str(&format!("{byte:02x}"));
        }
        Self::Text {
            text: hex,
            cut_from: (shown.len() < bytes.len()).then_some(2 + 2 * bytes.len()),
        }
    }
}

/// What one statement of a run gave.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StatementResult {
    /// Its columns' names (empty for a statement that returns no rows).
    pub columns: Vec<String>,
    /// Its first [`CONSOLE_ROWS`] rows.
    pub rows: Vec<Vec<Value>>,
    /// How many rows more it returned.
    pub more_rows: u64,
    /// Rows it changed or returned, as the server counts them.
    pub affected: u64,
}

/// The server's refusal of a statement.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SqlError {
    /// The server's own message.
    pub message: String,
    /// Where in the text it points, in characters from 1, when it says.
    pub position: Option<u32>,
    /// Its SQLSTATE (or MySQL's error code), when it has one.
    pub code: String,
    /// The line and column (from 1) `position` is at.
    pub at: Option<(u32, u32)>,
}

impl SqlError {
    /// The error, placed in `sql` when its position says where.
    pub fn placed(mut self, sql: &str) -> Self {
        self.at = self.position.and_then(|position| {
            let before: String = sql
                .chars()
                .take(usize::try_from(position).ok()?.checked_sub(1)?)
                .collect();
            let line = before.matches('\n').count() + 1;
            let column = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
            Some((u32::try_from(line).ok()?, u32::try_from(column).ok()?))
        });
        self
    }
}

/// A run of the SQL console: each statement's result in order, then the error that stopped
/// it, if one did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ConsoleRun {
    /// What the statements gave, in order.
    pub results: Vec<StatementResult>,
    /// Why the run stopped early.
    pub error: Option<SqlError>,
    /// Whether some rows or columns were left out to keep the run within the console's budget
    /// (they are counted in `more_rows`).
    pub truncated: bool,
    /// How long it took, in milliseconds.
    pub millis: u64,
}
