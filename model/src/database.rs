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

impl DatabaseKind {
    /// Its name for people.
    pub fn label(self) -> &'static str {
        match self {
            Self::Postgresql => "PostgreSQL",
            Self::Mysql => "MySQL (MariaDB)",
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
