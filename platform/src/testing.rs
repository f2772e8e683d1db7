//! Test support: each test gets its own PostgreSQL schema on the server in `DATABASE_URL`,
//! migrated from scratch and dropped when the test ends, pass or fail.

use diesel_async::{AsyncConnection as _, AsyncPgConnection, RunQueryDsl as _};
use rand::Rng as _;

use crate::{Platform, Settings, db};

/// A migrated schema of its own and a platform on it.
#[derive(Debug)]
pub struct TestDb {
    /// The platform, on this test's schema.
    pub platform: Platform,
    /// A URL whose connections use this test's schema.
    pub url: String,
    base_url: String,
    schema: String,
}

/// The server the tests use; the test script starts one when none is given.
pub fn database_url() -> String {
    std::env::var("DATABASE_URL")
        .expect("DATABASE_URL must point at a PostgreSQL server the tests may create schemas in (scripts/test starts one)")
}

impl TestDb {
    /// A fresh schema with default settings.
    pub async fn new() -> Self {
        Self::with_settings(Settings::default()).await
    }

    /// A fresh schema with the given settings.
    pub async fn with_settings(settings: Settings) -> Self {
        let base_url = database_url();
        let schema = format!("test_{:016x}", rand::rng().random::<u64>());
        let mut conn = AsyncPgConnection::establish(&base_url)
            .await
            .expect("connecting to DATABASE_URL");
        diesel::sql_query(format!("CREATE SCHEMA {schema}"))
            .execute(&mut conn)
            .await
            .expect("creating the test schema");
        let separator = if base_url.contains('?') { '&' } else { '?' };
        let url = format!("{base_url}{separator}options=-c%20search_path%3D{schema}");
        db::run_migrations(&url).await.expect("migrating the test schema");
        let pool = db::pool(&url, 4).expect("building the pool");
        Self {
            platform: Platform::new(pool, settings),
            url,
            base_url,
            schema,
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let (url, schema) = (self.base_url.clone(), self.schema.clone());
        // Drop cannot await, and may run inside a runtime: a thread of its own with a
        // throw-away runtime drops the schema either way.
        let dropped = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("building a runtime")
                .block_on(async {
                    let mut conn = AsyncPgConnection::establish(&url).await?;
                    diesel::sql_query(format!("DROP SCHEMA {schema} CASCADE"))
                        .execute(&mut conn)
                        .await
                        .map(drop)
                        .map_err(diesel::ConnectionError::CouldntSetupConfiguration)
                })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("warning: could not drop test schema {}", self.schema);
        }
    }
}

/// The password of every test account: `<username> password 123`.
pub fn password(username: &str) -> String {
    format!("{username} password 123")
}

/// A new account `username` (shown as `<username> display`) with `role` and [`password`].
pub async fn create_user(platform: &Platform, username: &str, role: crate::Role) {
    let new = crate::NewUser {
        username: username.to_owned(),
        display_name: format!("{username} display"),
        email: String::new(),
        password: password(username),
        role,
    };
    platform
        .create_user(Some(&crate::Actor::operator()), new)
        .await
        .expect("creating a test account");
}

/// A new account `username` with `role`, signed in: its actor and session.
pub async fn signed_in_user(
    platform: &Platform,
    username: &str,
    role: crate::Role,
) -> (crate::Actor, crate::SessionToken) {
    create_user(platform, username, role).await;
    platform
        .login(username, &password(username), &crate::ClientInfo::default())
        .await
        .expect("signing a test account in")
}

/// A static site called `name` on the busybox image.
pub fn static_site(name: &str) -> crate::sites::NewSite {
    crate::sites::NewSite {
        name: name.to_owned(),
        description: format!("{name}'s site"),
        purpose: "project".to_owned(),
        kind: "static".to_owned(),
        image: "busybox".to_owned(),
    }
}

/// Every failed operation's kind with the output of its failed action: what a test shows when
/// it expected every operation to succeed.
pub async fn failed_operations(platform: &Platform) -> Vec<(String, String)> {
    use diesel::{ExpressionMethods as _, QueryDsl as _};

    use crate::schema::{operation_actions, operations};
    let mut conn = platform.conn().await.expect("a connection");
    operations::table
        .inner_join(operation_actions::table)
        .filter(operations::state.eq("failed"))
        .filter(operation_actions::state.eq("failed"))
        .select((operations::kind, operation_actions::output))
        .load(&mut conn)
        .await
        .expect("reading the operations")
}

/// A port free on 127.0.0.1 now (for a server a test starts). It is picked below the kernel's
/// ephemeral range (32768 and up here): a port the kernel handed out could be given again to
/// any test's outgoing connection before the server binds it, one from below is only ever
/// taken by a test asking for it.
pub fn free_port() -> u16 {
    use rand::Rng;
    let mut rng = rand::rng();
    (0..100)
        .map(|_| rng.random_range(10_000..32_768))
        .find(|port| std::net::TcpListener::bind(("127.0.0.1", *port)).is_ok())
        .expect("a free port on 127.0.0.1")
}
