//! Accounts: users, sign-in with rate limiting, server-side sessions, and first-run setup.

use chrono::{DateTime, Utc};
use diesel::{
    dsl::{IntervalDsl as _, min},
    prelude::*,
    sql_types::Timestamptz,
};
use diesel_async::{AsyncConnection as _, RunQueryDsl};

use crate::{
    Access, Error, Permission, Platform, Result, authorize, passwords,
    schema::{api_tokens, login_failures, sessions, setup_tokens, users},
    tokens, validation,
};

pub use model::account::Role;

/// Who is acting: the signed-in user behind a request, or the local operator at the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    /// The user's id; 0 for the operator.
    pub user_id: i64,
    /// The user's login name.
    pub username: String,
    /// How the user is shown.
    pub display_name: String,
    /// The user's role.
    pub role: Role,
    /// What the credentials the request came with allow, within the role.
    pub grant: crate::Grant,
}

impl Actor {
    /// The person at the server's command line (`director user create`): whoever can run the
    /// binary against the database already owns it, so they act as an admin.
    pub fn operator() -> Self {
        Self {
            user_id: 0,
            username: "operator".to_owned(),
            display_name: "Command line".to_owned(),
            role: Role::Admin,
            grant: crate::Grant::Full,
        }
    }

    /// Whether the actor may use an admin's powers: an admin, with credentials that carry them
    /// (a session; a token only with the admin scope).
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin && self.grant.admin_powers()
    }

    /// "Name (username)", as notifications name who did something.
    pub fn named(&self) -> String {
        format!("{} ({})", self.display_name, self.username)
    }
}

/// A user as the admin pages list them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserSummary {
    /// The user's id.
    pub id: i64,
    /// The user's login name.
    pub username: String,
    /// How the user is shown.
    pub display_name: String,
    /// The user's e-mail address, possibly empty.
    pub email: String,
    /// The user's role.
    pub role: Role,
    /// Whether the user may sign in.
    pub active: bool,
    /// When the account was made.
    pub created_at: DateTime<Utc>,
    /// The most sites they may belong to, when an admin set it (else the server's default).
    pub site_quota: Option<i32>,
}

/// Which page of users to list.
#[derive(Debug, Clone)]
pub struct UserQuery {
    /// Only users with this in their username or shown name.
    pub name: Option<String>,
    /// The username of the last user of the page before (the cursor).
    pub after: Option<String>,
    /// How many at most (clamped to 1..=[`crate::sites::MAX_PAGE`]).
    pub limit: i64,
}

/// One page of users.
#[derive(Debug, Clone)]
pub struct UserPage {
    /// The users, by username.
    pub users: Vec<UserSummary>,
    /// The cursor of the next page, when there is one.
    pub next: Option<String>,
}

/// The fields of a new account, as typed.
#[derive(Debug, Clone)]
pub struct NewUser {
    /// Login name; validated and folded to lower case.
    pub username: String,
    /// Shown name; the username when empty.
    pub display_name: String,
    /// Optional e-mail address.
    pub email: String,
    /// The initial password.
    pub password: String,
    /// The new account's role.
    pub role: Role,
}

/// A freshly issued session: the cookie's value and when it lapses.
#[derive(Clone)]
pub struct SessionToken {
    /// The secret to put in the session cookie; never logged.
    pub token: String,
    /// When the session ends unless used.
    pub expires_at: DateTime<Utc>,
}

impl std::fmt::Debug for SessionToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionToken")
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// Where a sign-in comes from, for rate limiting and the session record.
#[derive(Debug, Clone, Default)]
pub struct ClientInfo {
    /// The client's address as the server sees it.
    pub ip: String,
    /// The browser's User-Agent, truncated.
    pub user_agent: String,
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = users, check_for_backend(diesel::pg::Pg))]
struct UserRow {
    id: i64,
    username: String,
    display_name: String,
    email: String,
    password_hash: String,
    role: Role,
    active: bool,
    created_at: DateTime<Utc>,
    site_quota: Option<i32>,
}

impl UserRow {
    fn actor(&self) -> Actor {
        Actor {
            user_id: self.id,
            username: self.username.clone(),
            display_name: self.display_name.clone(),
            role: self.role,
            grant: crate::Grant::Full,
        }
    }

    fn summary(self) -> UserSummary {
        UserSummary {
            id: self.id,
            role: self.role,
            username: self.username,
            display_name: self.display_name,
            email: self.email,
            active: self.active,
            created_at: self.created_at,
            site_quota: self.site_quota,
        }
    }
}

fn duration(d: std::time::Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

impl Platform {
    /// Signs a user in. Unknown user, wrong password and deactivated account all give
    /// [`Error::BadCredentials`]; too many recent failures for the account or the address give
    /// [`Error::RateLimited`] without looking at the password.
    pub async fn login(
        &self,
        username: &str,
        password: &str,
        client: &ClientInfo,
    ) -> Result<(Actor, SessionToken)> {
        if self.settings().local_login == crate::oidc::LocalLogin::Off {
            return Err(Error::Conflict(
                "Signing in with a password is turned off here: sign in with your organisation's account."
                    .to_owned(),
            ));
        }
        let username = validation::login_username(username)?;
        validation::login_password(password)?;
        let settings = self.settings();
        let mut conn = self.conn().await?;
        // One clock, the database's: the rows' times are its own `now()`.
        let window =
            diesel::dsl::now.into_sql::<Timestamptz>() - settings.login_window.as_secs_f64().seconds();

        // Increment, then check: the attempt is recorded before the counts are read, so of
        // any number of attempts at the same moment only as many as the limit allows see a
        // count within it (each sees at least every attempt recorded before its own). One
        // that is refused or succeeds takes its record back; one that fails leaves it.
        let attempt: i64 = diesel::insert_into(login_failures::table)
            .values((
                login_failures::username.eq(&username),
                login_failures::ip.eq(&client.ip),
            ))
            .returning(login_failures::id)
            .get_result(&mut conn)
            .await?;
        let by_account: (i64, Option<DateTime<Utc>>) = login_failures::table
            .filter(login_failures::username.eq(&username))
            .filter(login_failures::at.gt(window))
            .select((diesel::dsl::count_star(), min(login_failures::at)))
            .get_result(&mut conn)
            .await?;
        let by_ip: (i64, Option<DateTime<Utc>>) = login_failures::table
            .filter(login_failures::ip.eq(&client.ip))
            .filter(login_failures::at.gt(window))
            .select((diesel::dsl::count_star(), min(login_failures::at)))
            .get_result(&mut conn)
            .await?;
        for ((count, oldest), limit) in [
            (by_account, settings.max_failures_per_account),
            (by_ip, settings.max_failures_per_ip),
        ] {
            // This attempt is one of `count`: it may go on while the earlier ones are fewer
            // than the limit.
            if count > limit {
                diesel::delete(login_failures::table.find(attempt))
                    .execute(&mut conn)
                    .await?;
                let now = Utc::now();
                let free_at = oldest.unwrap_or(now) + duration(settings.login_window);
                let retry_after_secs = u64::try_from((free_at - now).num_seconds()).unwrap_or(0).max(1);
                tracing::warn!(%username, ip = %client.ip, count, "sign-in refused: rate limited");
                return Err(Error::RateLimited { retry_after_secs });
            }
        }

        let row: Option<UserRow> = users::table
            .filter(users::username.eq(&username))
            .select(UserRow::as_select())
            .first(&mut conn)
            .await
            .optional()?;
        let stored = row.as_ref().map(|r| r.password_hash.clone());
        // The connection goes back to the pool while the hash runs (and waits for its turn):
        // a burst of sign-ins must not hold every connection the manager has.
        drop(conn);
        let matches = passwords::verify(password.to_owned(), stored).await?;
        let mut conn = self.conn().await?;
        let Some(user) = row.filter(|r| matches && r.active) else {
            // The failure stays recorded; records older than the window go.
            diesel::delete(login_failures::table.filter(login_failures::at.le(window)))
                .execute(&mut conn)
                .await?;
            tracing::info!(%username, ip = %client.ip, "sign-in failed");
            return Err(Error::BadCredentials);
        };

        diesel::delete(login_failures::table.filter(login_failures::username.eq(&username)))
            .execute(&mut conn)
            .await?;
        let session = self.new_session(&mut conn, user.id, client, None).await?;
        tracing::info!(user = %user.username, ip = %client.ip, "signed in");
        Ok((user.actor(), session))
    }

    pub(crate) async fn new_session(
        &self,
        conn: &mut diesel_async::AsyncPgConnection,
        user_id: i64,
        client: &ClientInfo,
        provider: Option<&str>,
    ) -> Result<SessionToken> {
        let token = tokens::generate();
        let expires_at = Utc::now() + duration(self.settings().session_ttl);
        let user_agent: String = client.user_agent.chars().take(256).collect();
        diesel::insert_into(sessions::table)
            .values((
                sessions::token_hash.eq(tokens::digest(&token)),
                sessions::user_id.eq(user_id),
                sessions::expires_at.eq(expires_at),
                sessions::ip.eq(&client.ip),
                sessions::user_agent.eq(user_agent),
                sessions::provider.eq(provider),
            ))
            .execute(conn)
            .await?;
        Ok(SessionToken { token, expires_at })
    }

    /// The active user behind a session token, if the session is live. Use slides the expiry,
    /// at most once a minute so that page views do not each write.
    pub async fn session_actor(&self, token: &str) -> Result<Option<Actor>> {
        if token.is_empty() || token.len() > 128 {
            return Ok(None);
        }
        let digest = tokens::digest(token);
        let now = Utc::now();
        let mut conn = self.conn().await?;
        let found: Option<(UserRow, DateTime<Utc>)> = sessions::table
            .inner_join(users::table)
            .filter(sessions::token_hash.eq(&digest))
            .filter(sessions::expires_at.gt(now))
            .filter(users::active.eq(true))
            .select((UserRow::as_select(), sessions::last_seen_at))
            .first(&mut conn)
            .await
            .optional()?;
        let Some((user, last_seen)) = found else {
            return Ok(None);
        };
        if now - last_seen > chrono::Duration::minutes(1) {
            diesel::update(sessions::table.filter(sessions::token_hash.eq(&digest)))
                .set((
                    sessions::last_seen_at.eq(now),
                    sessions::expires_at.eq(now + duration(self.settings().session_ttl)),
                ))
                .execute(&mut conn)
                .await?;
        }
        Ok(Some(user.actor()))
    }

    /// Ends the session behind `token` (ending one that does not exist is not an error), and
    /// names the identity provider whose sign-in made it, if one did.
    pub async fn logout(&self, token: &str) -> Result<Option<String>> {
        let mut conn = self.conn().await?;
        let provider: Option<Option<String>> =
            diesel::delete(sessions::table.filter(sessions::token_hash.eq(tokens::digest(token))))
                .returning(sessions::provider)
                .get_result(&mut conn)
                .await
                .optional()?;
        self.access_changed();
        Ok(provider.flatten())
    }

    /// Whether the session behind `token` is live (without sliding its expiry: a terminal
    /// checking its grounds is not the user's activity).
    pub(crate) async fn session_live(&self, token: &str) -> Result<bool> {
        let mut conn = self.conn().await?;
        let found: i64 = sessions::table
            .filter(sessions::token_hash.eq(tokens::digest(token)))
            .filter(sessions::expires_at.gt(Utc::now()))
            .count()
            .get_result(&mut conn)
            .await?;
        Ok(found > 0)
    }

    /// Changes the actor's own password after checking the current one, and ends every other
    /// session of theirs (the one identified by `keep_session` stays).
    pub async fn change_password(
        &self,
        actor: Option<&Actor>,
        current: &str,
        new: &str,
        confirm: &str,
        keep_session: &str,
    ) -> Result<()> {
        let actor = authorize(actor, Permission::UseManager, Access::Credentials)?;
        validation::login_password(current)
            .map_err(|_| Error::invalid("current", "Enter your current password."))?;
        validation::new_password("new", new)?;
        if new != confirm {
            return Err(Error::invalid("confirm", "The two new passwords differ."));
        }
        let mut conn = self.conn().await?;
        let stored: String = users::table
            .find(actor.user_id)
            .select(users::password_hash)
            .first(&mut conn)
            .await?;
        if !passwords::verify(current.to_owned(), Some(stored)).await? {
            return Err(Error::invalid("current", "Your current password is not that."));
        }
        let hash = passwords::hash(new.to_owned()).await?;
        let keep = tokens::digest(keep_session);
        let user_id = actor.user_id;
        conn.transaction::<_, Error, _>(async move |conn| {
            diesel::update(users::table.find(user_id))
                .set((
                    users::password_hash.eq(hash),
                    users::password_set.eq(true),
                    users::updated_at.eq(Utc::now()),
                ))
                .execute(conn)
                .await?;
            diesel::delete(
                sessions::table
                    .filter(sessions::user_id.eq(user_id))
                    .filter(sessions::token_hash.ne(keep)),
            )
            .execute(conn)
            .await?;
            // The old password may be in other hands: nothing started with it lives on.
            let why = "a member changed their password";
            crate::sites::reset_terminals_of(conn, actor, user_id, why).await?;
            Ok(())
        })
        .await?;
        tracing::info!(user = %actor.username, "password changed; other sessions ended");
        self.wake_workers();
        self.access_changed();
        Ok(())
    }

    /// Every account, admins first, then by username.
    pub async fn list_users(&self, actor: Option<&Actor>) -> Result<Vec<UserSummary>> {
        authorize(actor, Permission::ManageUsers, Access::Read)?;
        let mut conn = self.conn().await?;
        let rows: Vec<UserRow> = users::table
            .select(UserRow::as_select())
            .order((users::role.asc(), users::username.asc()))
            .load(&mut conn)
            .await?;
        Ok(rows.into_iter().map(UserRow::summary).collect())
    }

    /// One page of the users, by username: those with `name` in their username or shown
    /// name, after the cursor. Admins only.
    pub async fn users_page(&self, actor: Option<&Actor>, query: UserQuery) -> Result<UserPage> {
        authorize(actor, Permission::ManageUsers, Access::Read)?;
        let limit = query.limit.clamp(1, crate::sites::MAX_PAGE);
        let mut conn = self.conn().await?;
        let mut rows = users::table
            .select(UserRow::as_select())
            .order(users::username.asc())
            .limit(limit + 1)
            .into_boxed();
        if let Some(name) = query.name.filter(|n| !n.is_empty()) {
            // Matched as typed: LIKE's wildcards (and its escape) in it are escaped.
            let escaped: String = name
                .chars()
                .flat_map(|c| match c {
                    '%' | '_' | '\\' => vec!['\\', c],
                    c => vec![c],
                })
                .collect();
            let pattern = format!("%{escaped}%");
            rows = rows.filter(
                users::username
                    .ilike(pattern.clone())
                    .or(users::display_name.ilike(pattern)),
            );
        }
        if let Some(after) = query.after {
            rows = rows.filter(users::username.gt(after));
        }
        let mut users: Vec<UserSummary> = rows
            .load::<UserRow>(&mut conn)
            .await?
            .into_iter()
            .map(UserRow::summary)
            .collect();
        let next = crate::sites::cut_page(&mut users, limit, |u| u.username.clone());
        Ok(UserPage { users, next })
    }

    /// Creates an account.
    pub async fn create_user(&self, actor: Option<&Actor>, new: NewUser) -> Result<UserSummary> {
        let actor = authorize(actor, Permission::ManageUsers, Access::Credentials)?;
        let mut conn = self.conn().await?;
        let user = insert_user(&mut conn, new).await?;
        tracing::info!(by = %actor.username, user = %user.username, role = user.role.as_str(), "user created");
        Ok(user)
    }

    /// Activates or deactivates an account; deactivating ends its sessions. Admins cannot
    /// deactivate themselves (that is how a server loses its last admin).
    pub async fn set_user_active(
        &self,
        actor: Option<&Actor>,
        user_id: i64,
        active: bool,
    ) -> Result<UserSummary> {
        let actor = authorize(actor, Permission::ManageUsers, Access::Write)?;
        if !active && actor.user_id == user_id {
            return Err(Error::Conflict(
                "You cannot deactivate your own account.".to_owned(),
            ));
        }
        let mut conn = self.conn().await?;
        let user = conn
            .transaction::<_, Error, _>(async move |conn| {
                let row: UserRow = diesel::update(users::table.find(user_id))
                    .set((users::active.eq(active), users::updated_at.eq(Utc::now())))
                    .returning(UserRow::as_returning())
                    .get_result(conn)
                    .await
                    .optional()?
                    .ok_or(Error::NotFound("user"))?;
                if !active {
                    ensure_an_admin_remains(conn).await?;
                    diesel::delete(sessions::table.filter(sessions::user_id.eq(user_id)))
                        .execute(conn)
                        .await?;
                    // Revoked, not merely suspended: an account activated again starts without
                    // the tokens it had (which may have leaked meanwhile).
                    diesel::update(
                        api_tokens::table
                            .filter(api_tokens::user_id.eq(user_id))
                            .filter(api_tokens::revoked_at.is_null()),
                    )
                    .set(api_tokens::revoked_at.eq(Utc::now()))
                    .execute(conn)
                    .await?;
                    let why = format!("{} was deactivated", row.username);
                    crate::sites::reset_terminals_of(conn, actor, user_id, &why).await?;
                }
                let action = if active {
                    "user.activate"
                } else {
                    "user.deactivate"
                };
                crate::sites::audit(conn, actor, action, &row.username, "").await?;
                Ok(row.summary())
            })
            .await?;
        tracing::info!(by = %actor.username, user = %user.username, active, "user activity changed");
        self.wake_workers();
        self.access_changed();
        Ok(user)
    }

    /// Sets the most sites `user_id` may belong to (None: the server's default). Admins only;
    /// sites they have already stay.
    pub async fn set_site_quota(
        &self,
        actor: Option<&Actor>,
        user_id: i64,
        quota: Option<i32>,
    ) -> Result<UserSummary> {
        let actor = authorize(actor, Permission::ManageUsers, Access::Write)?;
        if quota.is_some_and(|q| !(0..=10_000).contains(&q)) {
            return Err(Error::invalid(
                "quota",
                "A quota is a number of sites from 0 to 10000.",
            ));
        }
        let mut conn = self.conn().await?;
        let user = conn
            .transaction::<_, Error, _>(async |conn| {
                let row: UserRow = diesel::update(users::table.find(user_id))
                    .set((users::site_quota.eq(quota), users::updated_at.eq(Utc::now())))
                    .returning(UserRow::as_returning())
                    .get_result(conn)
                    .await
                    .optional()?
                    .ok_or(Error::NotFound("user"))?;
                let details = quota.map_or_else(|| "default".to_owned(), |q| q.to_string());
                crate::sites::audit(conn, actor, "user.site-quota", &row.username, &details).await?;
                Ok(row.summary())
            })
            .await?;
        tracing::info!(by = %actor.username, user = %user.username, ?quota, "site quota set");
        Ok(user)
    }

    /// Promotes or demotes an account. The last active admin cannot be demoted.
    pub async fn set_user_role(
        &self,
        actor: Option<&Actor>,
        user_id: i64,
        role: Role,
    ) -> Result<UserSummary> {
        let actor = authorize(actor, Permission::ManageUsers, Access::Credentials)?;
        let user = self.change_role(actor, user_id, role).await?;
        tracing::info!(by = %actor.username, user = %user.username, role = role.as_str(), "user role changed");
        Ok(user)
    }

    /// Gives `user_id` the role `role` for `by`: a demoted admin's terminals are reset, and an
    /// admin always remains (Conflict otherwise, nothing changed).
    pub(crate) async fn change_role(&self, by: &Actor, user_id: i64, role: Role) -> Result<UserSummary> {
        let mut conn = self.conn().await?;
        let user = conn
            .transaction::<_, Error, _>(async move |conn| {
                let was: Option<Role> = users::table
                    .find(user_id)
                    .select(users::role)
                    .for_update()
                    .first(conn)
                    .await
                    .optional()?;
                if was == Some(Role::Admin) && role != Role::Admin {
                    // Read while still an admin: every site's terminal they could open.
                    let why = "an administrator of the site's server was demoted";
                    crate::sites::reset_terminals_of(conn, by, user_id, why).await?;
                }
                let row: UserRow = diesel::update(users::table.find(user_id))
                    .set((users::role.eq(role), users::updated_at.eq(Utc::now())))
                    .returning(UserRow::as_returning())
                    .get_result(conn)
                    .await
                    .optional()?
                    .ok_or(Error::NotFound("user"))?;
                ensure_an_admin_remains(conn).await?;
                if was != Some(role) {
                    crate::sites::audit(conn, by, "user.role", &row.username, role.as_str()).await?;
                }
                Ok(row.summary())
            })
            .await?;
        self.wake_workers();
        self.access_changed();
        Ok(user)
    }

    /// Whether an active admin exists.
    pub async fn has_admin(&self) -> Result<bool> {
        let mut conn = self.conn().await?;
        Ok(active_admins(&mut conn).await? > 0)
    }

    /// On a server with no active admin, issues a one-time setup token (for the link printed at
    /// start-up) and returns it; with an admin, returns None.
    pub async fn issue_setup_token(&self) -> Result<Option<String>> {
        if self.has_admin().await? {
            return Ok(None);
        }
        let token = tokens::generate();
        let mut conn = self.conn().await?;
        diesel::insert_into(setup_tokens::table)
            .values((
                setup_tokens::token_hash.eq(tokens::digest(&token)),
                setup_tokens::expires_at.eq(Utc::now() + duration(self.settings().setup_token_ttl)),
            ))
            .execute(&mut conn)
            .await?;
        Ok(Some(token))
    }

    /// Whether `token` is a live setup token on a server that still has no admin.
    pub async fn setup_token_valid(&self, token: &str) -> Result<bool> {
        let mut conn = self.conn().await?;
        Ok(live_setup_token(&mut conn, token).await? && active_admins(&mut conn).await? == 0)
    }

    /// Creates the first admin with a setup token, consumes every setup token, and signs the
    /// new admin in.
    pub async fn complete_setup(
        &self,
        token: &str,
        mut new: NewUser,
        client: &ClientInfo,
    ) -> Result<(Actor, SessionToken)> {
        new.role = Role::Admin;
        let mut conn = self.conn().await?;
        let token = token.to_owned();
        let user = conn
            .transaction::<_, Error, _>(async move |conn| {
                // Serialises concurrent setups: only one can create the first admin.
                diesel::sql_query("LOCK TABLE setup_tokens IN EXCLUSIVE MODE")
                    .execute(conn)
                    .await?;
                if !live_setup_token(conn, &token).await? || active_admins(conn).await? > 0 {
                    return Err(Error::Conflict(
                        "This setup link has been used or has expired. Sign in instead.".to_owned(),
                    ));
                }
                let user = insert_user(conn, new).await?;
                diesel::delete(setup_tokens::table).execute(conn).await?;
                Ok(user)
            })
            .await?;
        let session = self.new_session(&mut conn, user.id, client, None).await?;
        tracing::info!(user = %user.username, "first admin created through the setup link");
        Ok((
            Actor {
                user_id: user.id,
                username: user.username,
                display_name: user.display_name,
                role: user.role,
                grant: crate::Grant::Full,
            },
            session,
        ))
    }
}

async fn insert_user(conn: &mut diesel_async::AsyncPgConnection, new: NewUser) -> Result<UserSummary> {
    let username = validation::username(&new.username)?;
    let display_name = validation::display_name(&new.display_name, &username)?;
    let email = validation::email(&new.email)?;
    validation::new_password("password", &new.password)?;
    let hash = passwords::hash(new.password).await?;
    let row: UserRow = diesel::insert_into(users::table)
        .values((
            users::username.eq(&username),
            users::display_name.eq(display_name),
            users::email.eq(email),
            users::password_hash.eq(hash),
            users::role.eq(new.role),
        ))
        .returning(UserRow::as_returning())
        .get_result(conn)
        .await
        .map_err(|e| match e {
            diesel::result::Error::DatabaseError(diesel::result::DatabaseErrorKind::UniqueViolation, _) => {
                Error::invalid("username", format!("The username {username} is taken."))
            }
            other => other.into(),
        })?;
    Ok(row.summary())
}

async fn active_admins(conn: &mut diesel_async::AsyncPgConnection) -> Result<i64> {
    Ok(users::table
        .filter(users::role.eq(Role::Admin))
        .filter(users::active.eq(true))
        .count()
        .get_result(conn)
        .await?)
}

async fn ensure_an_admin_remains(conn: &mut diesel_async::AsyncPgConnection) -> Result<()> {
    // Changes that may take away an admin take turns from here to their commit: two admins
    // demoted at the same moment (two sign-ins whose groups changed) would otherwise each
    // count the other and both go.
    diesel::sql_query("SELECT pg_advisory_xact_lock(hashtext('director.admins'))")
        .execute(conn)
        .await?;
    if active_admins(conn).await? == 0 {
        return Err(Error::Conflict(
            "Director needs at least one active admin; promote someone else first.".to_owned(),
        ));
    }
    Ok(())
}

async fn live_setup_token(conn: &mut diesel_async::AsyncPgConnection, token: &str) -> Result<bool> {
    let count: i64 = setup_tokens::table
        .filter(setup_tokens::token_hash.eq(tokens::digest(token)))
        .filter(setup_tokens::expires_at.gt(Utc::now()))
        .count()
        .get_result(conn)
        .await?;
    Ok(count > 0)
}

impl Platform {
    /// Deletes sessions past their expiry; returns how many.
    pub async fn purge_expired_sessions(&self) -> Result<usize> {
        let mut conn = self.conn().await?;
        Ok(
            diesel::delete(sessions::table.filter(sessions::expires_at.lt(Utc::now())))
                .execute(&mut conn)
                .await?,
        )
    }
}
