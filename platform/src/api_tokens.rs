//! Personal access tokens for the REST API: made by a person signed in to the manager, shown
//! once, kept as digests, checked on every request they come with.
//!
//! A token reaches what its user may reach, no further: as far as its access says (read, or
//! read and write), with an admin's powers only when it has the admin scope (admins' tokens
//! only), and only the sites it is limited to when it is (see [`crate::authz`]).

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncConnection as _, RunQueryDsl};
use model::token::{DEFAULT_TOKEN_DAYS, MAX_TOKEN_DAYS, TOKEN_PREFIX, TokenAccess};

use crate::{
    Access, Actor, Error, Grant, Permission, Platform, Result, Role, TokenGrant, authorize,
    schema::{api_token_sites, api_tokens, site_members, sites, users},
    tokens,
};

/// How many live tokens one person may have.
pub const TOKENS_PER_USER: i64 = 50;

/// A new token, as its maker asks for it.
#[derive(Debug, Clone)]
pub struct NewToken {
    /// What it is for, in a few words.
    pub name: String,
    /// How many days it lives (default 90, at most 365).
    pub days: Option<u32>,
    /// Read, or read and write.
    pub access: TokenAccess,
    /// Whether it carries its maker's admin powers (admins only).
    pub admin: bool,
    /// The only sites it reaches, when it is limited to some.
    pub sites: Option<Vec<i32>>,
}

/// A token as its owner (or an admin) sees it: never its secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRecord {
    /// Its id.
    pub id: i64,
    /// Whose it is.
    pub username: String,
    /// What it is for.
    pub name: String,
    /// Its first characters, to tell it apart.
    pub hint: String,
    /// Read, or read and write.
    pub access: TokenAccess,
    /// Whether it carries an admin's powers.
    pub admin: bool,
    /// The sites it is limited to (id and name), when it is.
    pub sites: Option<Vec<(i32, String)>>,
    /// When it was made.
    pub created_at: DateTime<Utc>,
    /// When it stops working.
    pub expires_at: DateTime<Utc>,
    /// When it was last used (to the minute), and from where.
    pub last_used: Option<(DateTime<Utc>, String)>,
    /// When it was revoked, if it was.
    pub revoked_at: Option<DateTime<Utc>>,
}

/// A token just made: its record, and its secret — shown this once, kept nowhere.
#[derive(Clone)]
pub struct IssuedToken {
    /// What is kept of it.
    pub record: TokenRecord,
    /// The token itself.
    pub secret: String,
}

impl std::fmt::Debug for IssuedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedToken")
            .field("record", &self.record)
            .finish_non_exhaustive()
    }
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = api_tokens, check_for_backend(diesel::pg::Pg))]
struct TokenRow {
    id: i64,
    #[diesel(select_expression = users::username, select_expression_type = users::username)]
    username: String,
    name: String,
    hint: String,
    access: TokenAccess,
    admin: bool,
    limited: bool,
    created_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
    last_used_at: Option<DateTime<Utc>>,
    last_used_ip: String,
    revoked_at: Option<DateTime<Utc>>,
}

/// Whose tokens to list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Owner {
    One(i64),
    Everyone,
}

impl Platform {
    /// Makes a personal access token for the actor — only a person signed in to the manager
    /// may, never another token.
    pub async fn create_token(&self, actor: Option<&Actor>, new: NewToken) -> Result<IssuedToken> {
        let actor = authorize(actor, Permission::UseManager, Access::Credentials)?;
        if actor.user_id <= 0 {
            return Err(Error::Conflict("The command line has no tokens.".to_owned()));
        }
        let name = new.name.trim();
        if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
            return Err(Error::invalid(
                "name",
                "Name the token (what it is for) in at most 100 characters of text.",
            ));
        }
        let days = new.days.unwrap_or(DEFAULT_TOKEN_DAYS);
        if !(1..=MAX_TOKEN_DAYS).contains(&days) {
            return Err(Error::invalid(
                "days",
                format!("A token lives from 1 to {MAX_TOKEN_DAYS} days."),
            ));
        }
        if new.admin && actor.role != Role::Admin {
            return Err(Error::invalid(
                "admin",
                "Only an admin's token may carry an admin's powers.",
            ));
        }
        if new.admin && new.sites.is_some() {
            return Err(Error::invalid(
                "admin",
                "A token limited to some sites carries no admin powers: choose one or the other.",
            ));
        }
        let mut conn = self.conn().await?;
        let sites = match new.sites {
            None => None,
            Some(mut ids) => {
                ids.sort_unstable();
                ids.dedup();
                if ids.is_empty() || ids.len() > 100 {
                    return Err(Error::invalid(
                        "sites",
                        "Choose from 1 to 100 sites, or none to reach them all.",
                    ));
                }
                // Only sites the maker belongs to: a token never names a site its maker could
                // not see.
                let theirs: Vec<i32> = site_members::table
                    .filter(site_members::user_id.eq(actor.user_id))
                    .filter(site_members::site_id.eq_any(&ids))
                    .select(site_members::site_id)
                    .load(&mut conn)
                    .await?;
                if theirs.len() != ids.len() {
                    return Err(Error::invalid(
                        "sites",
                        "A token may only be limited to sites you belong to.",
                    ));
                }
                Some(ids)
            }
        };
        let secret = format!("{TOKEN_PREFIX}{}", tokens::generate());
        let hint: String = secret.chars().take(TOKEN_PREFIX.len() + 4).collect();
        let expires_at = Utc::now() + chrono::Duration::days(i64::from(days));
        let id = conn
            .transaction::<_, Error, _>(async |conn| {
                // One at a time per person, so that the count below holds.
                diesel::select(diesel::dsl::sql::<diesel::sql_types::Bool>(&format!(
                    "pg_advisory_xact_lock(hashtext(current_schema() || '/tokens'), {})",
                    actor.user_id
                )))
                .execute(conn)
                .await?;
                let live: i64 = api_tokens::table
                    .filter(api_tokens::user_id.eq(actor.user_id))
                    .filter(api_tokens::revoked_at.is_null())
                    .filter(api_tokens::expires_at.gt(Utc::now()))
                    .count()
                    .get_result(conn)
                    .await?;
                if live >= TOKENS_PER_USER {
                    return Err(Error::Conflict(format!(
                        "You have {TOKENS_PER_USER} tokens already: revoke one you no longer use."
                    )));
                }
                let id: i64 = diesel::insert_into(api_tokens::table)
                    .values((
                        api_tokens::user_id.eq(actor.user_id),
                        api_tokens::name.eq(name),
                        api_tokens::token_hash.eq(tokens::digest(&secret)),
                        api_tokens::hint.eq(&hint),
                        api_tokens::access.eq(new.access),
                        api_tokens::admin.eq(new.admin),
                        api_tokens::limited.eq(sites.is_some()),
                        api_tokens::expires_at.eq(expires_at),
                    ))
                    .returning(api_tokens::id)
                    .get_result(conn)
                    .await?;
                if let Some(sites) = &sites {
                    let rows: Vec<_> = sites
                        .iter()
                        .map(|site| {
                            (
                                api_token_sites::token_id.eq(id),
                                api_token_sites::site_id.eq(site),
                            )
                        })
                        .collect();
                    diesel::insert_into(api_token_sites::table)
                        .values(rows)
                        .execute(conn)
                        .await?;
                }
                crate::sites::audit(
                    conn,
                    actor,
                    "token.create",
                    &actor.username,
                    &format!("{hint}… {name}"),
                )
                .await?;
                Ok(id)
            })
            .await?;
        let record = self
            .tokens_of(Owner::One(actor.user_id))
            .await?
            .into_iter()
            .find(|token| token.id == id)
            .ok_or(Error::NotFound("token"))?;
        Ok(IssuedToken { record, secret })
    }

    /// The actor's own tokens, newest first (revoked and expired ones too, for a while).
    pub async fn my_tokens(&self, actor: Option<&Actor>) -> Result<Vec<TokenRecord>> {
        let actor = authorize(actor, Permission::UseManager, Access::Read)?;
        let mut tokens = self.tokens_of(Owner::One(actor.user_id)).await?;
        // A token limited to some sites sees itself only: the others' names and sites are not
        // within its reach.
        if let Grant::Token(TokenGrant {
            id, sites: Some(_), ..
        }) = &actor.grant
        {
            tokens.retain(|token| token.id == *id);
        }
        Ok(tokens)
    }

    /// Everyone's tokens, newest first (admins).
    pub async fn all_tokens(&self, actor: Option<&Actor>) -> Result<Vec<TokenRecord>> {
        authorize(actor, Permission::ManageUsers, Access::Read)?;
        self.tokens_of(Owner::Everyone).await
    }

    /// Revokes a token: the actor's own, or anyone's for an admin. It stops working at once.
    pub async fn revoke_token(&self, actor: Option<&Actor>, id: i64) -> Result<()> {
        let actor = authorize(actor, Permission::UseManager, Access::Write)?;
        let mut conn = self.conn().await?;
        let owner: i64 = api_tokens::table
            .find(id)
            .select(api_tokens::user_id)
            .first(&mut conn)
            .await
            .optional()?
            .ok_or(Error::NotFound("token"))?;
        if owner != actor.user_id {
            authorize(Some(actor), Permission::ManageUsers, Access::Write).map_err(|err| match err {
                Error::Forbidden => Error::NotFound("token"),
                other => other,
            })?;
        }
        conn.transaction::<_, Error, _>(async |conn| {
            let hint: Option<String> = diesel::update(
                api_tokens::table
                    .find(id)
                    .filter(api_tokens::revoked_at.is_null()),
            )
            .set((
                api_tokens::revoked_at.eq(Utc::now()),
                api_tokens::revoked_by.eq((actor.user_id > 0).then_some(actor.user_id)),
            ))
            .returning(api_tokens::hint)
            .get_result(conn)
            .await
            .optional()?;
            if let Some(hint) = hint {
                crate::sites::audit(conn, actor, "token.revoke", &hint, "").await?;
            }
            Ok(())
        })
        .await?;
        self.access_changed();
        Ok(())
    }

    /// The actor behind a token, if it is live (not revoked, not expired, its user active).
    /// Its use is recorded, at most once a minute so that requests do not each write.
    pub async fn token_actor(&self, secret: &str, ip: &str) -> Result<Option<Actor>> {
        let well_formed = secret.len() <= 128
            && secret.starts_with(TOKEN_PREFIX)
            && secret
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !well_formed {
            return Ok(None);
        }
        let now = Utc::now();
        let mut conn = self.conn().await?;
        let found: Option<TokenAuth> = api_tokens::table
            .inner_join(users::table)
            .filter(api_tokens::token_hash.eq(tokens::digest(secret)))
            .filter(api_tokens::revoked_at.is_null())
            .filter(api_tokens::expires_at.gt(now))
            .filter(users::active.eq(true))
            .select((
                api_tokens::id,
                users::id,
                users::username,
                users::display_name,
                users::role,
                api_tokens::access,
                api_tokens::admin,
                api_tokens::limited,
                api_tokens::last_used_at,
            ))
            .first(&mut conn)
            .await
            .optional()?;
        let Some(found) = found else {
            return Ok(None);
        };
        let sites = if found.limited {
            Some(
                api_token_sites::table
                    .filter(api_token_sites::token_id.eq(found.id))
                    .select(api_token_sites::site_id)
                    .load(&mut conn)
                    .await?,
            )
        } else {
            None
        };
        if found
            .last_used_at
            .is_none_or(|last| now - last > chrono::Duration::minutes(1))
        {
            let ip: String = ip.chars().take(64).collect();
            diesel::update(api_tokens::table.find(found.id))
                .set((api_tokens::last_used_at.eq(now), api_tokens::last_used_ip.eq(ip)))
                .execute(&mut conn)
                .await?;
        }
        Ok(Some(Actor {
            user_id: found.user_id,
            username: found.username,
            display_name: found.display_name,
            role: found.role,
            grant: Grant::Token(TokenGrant {
                id: found.id,
                access: found.access,
                admin: found.admin,
                sites,
            }),
        }))
    }

    /// `actor` as its credentials stand now: None once its token was revoked or expired or its
    /// user deactivated — for what lasts beyond one request (an event stream), which asks again
    /// now and then.
    pub async fn refreshed(&self, actor: &Actor) -> Result<Option<Actor>> {
        let Grant::Token(token) = &actor.grant else {
            return Ok(Some(actor.clone()));
        };
        let mut conn = self.conn().await?;
        let found: Option<(String, String, Role)> = api_tokens::table
            .inner_join(users::table)
            .filter(api_tokens::id.eq(token.id))
            .filter(api_tokens::revoked_at.is_null())
            .filter(api_tokens::expires_at.gt(Utc::now()))
            .filter(users::active.eq(true))
            .select((users::username, users::display_name, users::role))
            .first(&mut conn)
            .await
            .optional()?;
        Ok(found.map(|(username, display_name, role)| Actor {
            username,
            display_name,
            role,
            ..actor.clone()
        }))
    }

    async fn tokens_of(&self, owner: Owner) -> Result<Vec<TokenRecord>> {
        let mut conn = self.conn().await?;
        // Tokens that ended more than 30 days ago are no longer shown.
        let shown_since = Utc::now() - chrono::Duration::days(30);
        let mut query = api_tokens::table
            .inner_join(users::table)
            .filter(api_tokens::expires_at.gt(shown_since))
            .filter(
                api_tokens::revoked_at
                    .is_null()
                    .or(api_tokens::revoked_at.gt(shown_since)),
            )
            .order(api_tokens::id.desc())
            .select(TokenRow::as_select())
            .into_boxed();
        if let Owner::One(user) = owner {
            query = query.filter(api_tokens::user_id.eq(user));
        }
        let rows: Vec<TokenRow> = query.load(&mut conn).await?;
        let limited: Vec<i64> = rows.iter().filter(|r| r.limited).map(|r| r.id).collect();
        let named: Vec<(i64, i32, String)> = api_token_sites::table
            .inner_join(sites::table)
            .filter(api_token_sites::token_id.eq_any(&limited))
            .order(sites::name.asc())
            .select((api_token_sites::token_id, sites::id, sites::name))
            .load(&mut conn)
            .await?;
        Ok(rows
            .into_iter()
            .map(|row| TokenRecord {
                sites: row.limited.then(|| {
                    named
                        .iter()
                        .filter(|(token, _, _)| *token == row.id)
                        .map(|(_, id, name)| (*id, name.clone()))
                        .collect()
                }),
                id: row.id,
                username: row.username,
                name: row.name,
                hint: row.hint,
                access: row.access,
                admin: row.admin,
                created_at: row.created_at,
                expires_at: row.expires_at,
                last_used: row.last_used_at.map(|at| (at, row.last_used_ip)),
                revoked_at: row.revoked_at,
            })
            .collect())
    }
}

#[derive(Queryable)]
struct TokenAuth {
    id: i64,
    user_id: i64,
    username: String,
    display_name: String,
    role: Role,
    access: TokenAccess,
    admin: bool,
    limited: bool,
    last_used_at: Option<DateTime<Utc>>,
}
