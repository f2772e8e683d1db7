//! Users' SSH public keys: added, named and removed by their owner (admins see and revoke any),
//! and the lookup the SSH server authenticates with. A key belongs to one user only.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncConnection as _, RunQueryDsl};
use ssh_key::{Algorithm, HashAlg, PublicKey};

use crate::{
    Access, Actor, Error, Permission, Platform, Result, Role, authorize,
    schema::{ssh_keys, users},
};

/// The smallest RSA key accepted.
const MIN_RSA_BITS: usize = 2048;

/// A key as its owner's page shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshKey {
    /// Its id.
    pub id: i64,
    /// The name its owner gave it.
    pub name: String,
    /// `ssh-ed25519`, `ecdsa-sha2-nistp256`, `ssh-rsa`, …
    pub algorithm: String,
    /// `SHA256:…`, as `ssh-keygen -l` prints it.
    pub fingerprint: String,
    /// When it was added.
    pub created_at: DateTime<Utc>,
    /// When it last opened an SSH session.
    pub last_used_at: Option<DateTime<Utc>>,
}

/// A public key as pasted: one line of OpenSSH's format, of an accepted kind.
/// Returns (algorithm, fingerprint, the key line without its comment, its comment).
pub fn parse_public_key(text: &str) -> Result<(String, String, String, String)> {
    let text = text.trim();
    if text.is_empty() {
        return Err(Error::invalid(
            "public_key",
            "Paste a public key (the contents of a .pub file).",
        ));
    }
    if text.lines().count() > 1 {
        return Err(Error::invalid("public_key", "Paste one key at a time."));
    }
    if text.contains("PRIVATE KEY") {
        return Err(Error::invalid(
            "public_key",
            "This is a private key: never share it. Paste the .pub file instead.",
        ));
    }
    let key = PublicKey::from_openssh(text).map_err(|_| {
        Error::invalid(
            "public_key",
            "This is not an OpenSSH public key; it starts with ssh-ed25519, ecdsa-sha2-… or ssh-rsa.",
        )
    })?;
    match key.algorithm() {
        Algorithm::Ed25519 | Algorithm::Ecdsa { .. } => {}
        Algorithm::Rsa { .. } => {
            let bits = key
                .key_data()
                .rsa()
                .and_then(|rsa| rsa.n().as_positive_bytes())
                .map_or(0, |n| n.len() * 8);
            if bits < MIN_RSA_BITS {
                return Err(Error::invalid(
                    "public_key",
                    format!("This RSA key has {bits} bits; use at least {MIN_RSA_BITS}, or an ed25519 key."),
                ));
            }
        }
        _ => {
            return Err(Error::invalid("public_key", "Use an ed25519, ECDSA or RSA key."));
        }
    }
    let comment = key.comment().to_string();
    let mut bare = key.clone();
    bare.set_comment("");
    let line = bare
        .to_openssh()
        .map_err(|_| Error::invalid("public_key", "This key cannot be read."))?;
    Ok((
        key.algorithm().as_str().to_owned(),
        key.fingerprint(HashAlg::Sha256).to_string(),
        line.trim().to_owned(),
        comment,
    ))
}

type KeyRow = (i64, String, String, String, DateTime<Utc>, Option<DateTime<Utc>>);

fn key_from_row((id, name, algorithm, fingerprint, created_at, last_used_at): KeyRow) -> SshKey {
    SshKey {
        id,
        name,
        algorithm,
        fingerprint,
        created_at,
        last_used_at,
    }
}

impl Platform {
    /// Adds a public key to the actor's own account. `name` defaults to the key's comment.
    pub async fn add_ssh_key(&self, actor: Option<&Actor>, name: &str, public_key: &str) -> Result<SshKey> {
        let actor = authorize(actor, Permission::UseManager, Access::Credentials)?;
        if actor.user_id <= 0 {
            return Err(Error::Conflict("The command line has no SSH keys.".to_owned()));
        }
        let (algorithm, fingerprint, line, comment) = parse_public_key(public_key)?;
        let name = match name.trim() {
            "" if comment.trim().is_empty() => algorithm.clone(),
            "" => comment.trim().to_owned(),
            given => given.to_owned(),
        };
        if name.chars().count() > 100 || name.chars().any(char::is_control) {
            return Err(Error::invalid(
                "name",
                "A key's name has at most 100 characters of text.",
            ));
        }
        let mut conn = self.conn().await?;
        let row: KeyRow = diesel::insert_into(ssh_keys::table)
            .values((
                ssh_keys::user_id.eq(actor.user_id),
                ssh_keys::name.eq(&name),
                ssh_keys::algorithm.eq(&algorithm),
                ssh_keys::fingerprint.eq(&fingerprint),
                ssh_keys::public_key.eq(&line),
            ))
            .returning((
                ssh_keys::id,
                ssh_keys::name,
                ssh_keys::algorithm,
                ssh_keys::fingerprint,
                ssh_keys::created_at,
                ssh_keys::last_used_at,
            ))
            .get_result(&mut conn)
            .await
            .map_err(|e| match e {
                diesel::result::Error::DatabaseError(
                    diesel::result::DatabaseErrorKind::UniqueViolation,
                    _,
                ) => Error::invalid("public_key", "This key has been added already."),
                other => other.into(),
            })?;
        crate::sites::audit(&mut conn, actor, "ssh-key.add", &actor.username, &fingerprint).await?;
        tracing::info!(user = %actor.username, %fingerprint, "SSH key added");
        Ok(key_from_row(row))
    }

    /// The keys of `user` (the actor's own when None; another's for admins only), oldest first.
    pub async fn ssh_keys(&self, actor: Option<&Actor>, user: Option<i64>) -> Result<Vec<SshKey>> {
        let actor = authorize(actor, Permission::OwnRecords, Access::Read)?;
        let user = match user {
            Some(id) if id != actor.user_id => {
                authorize(Some(actor), Permission::ManageUsers, Access::Read)?;
                id
            }
            _ => actor.user_id,
        };
        let mut conn = self.conn().await?;
        let rows: Vec<KeyRow> = ssh_keys::table
            .filter(ssh_keys::user_id.eq(user))
            .order(ssh_keys::id.asc())
            .select((
                ssh_keys::id,
                ssh_keys::name,
                ssh_keys::algorithm,
                ssh_keys::fingerprint,
                ssh_keys::created_at,
                ssh_keys::last_used_at,
            ))
            .load(&mut conn)
            .await?;
        Ok(rows.into_iter().map(key_from_row).collect())
    }

    /// Removes a key: the owner's own, or any for an admin. Others learn nothing (not found).
    pub async fn remove_ssh_key(&self, actor: Option<&Actor>, key_id: i64) -> Result<()> {
        let actor = authorize(actor, Permission::UseManager, Access::Credentials)?;
        let mut conn = self.conn().await?;
        let owner: Option<(i64, String)> = ssh_keys::table
            .find(key_id)
            .select((ssh_keys::user_id, ssh_keys::fingerprint))
            .first(&mut conn)
            .await
            .optional()?;
        let Some((owner, fingerprint)) =
            owner.filter(|(owner, _)| *owner == actor.user_id || actor.is_admin())
        else {
            return Err(Error::NotFound("key"));
        };
        conn.transaction::<_, Error, _>(async |conn| {
            diesel::delete(ssh_keys::table.find(key_id)).execute(conn).await?;
            crate::sites::audit(conn, actor, "ssh-key.remove", &owner.to_string(), &fingerprint).await?;
            // The key may be in other hands: nothing started with it lives on.
            let why = "an SSH key of a member was removed";
            crate::sites::reset_terminals_of(conn, actor, owner, why).await
        })
        .await?;
        tracing::info!(user = %actor.username, owner, %fingerprint, "SSH key removed");
        self.wake_workers();
        self.access_changed();
        Ok(())
    }

    /// The active user a key belongs to, for the SSH server's authentication (it records the
    /// key's use). None for an unknown key or a deactivated account.
    pub async fn actor_for_key(&self, fingerprint: &str) -> Result<Option<Actor>> {
        let mut conn = self.conn().await?;
        let found: Option<(i64, i64, String, String, Role)> = ssh_keys::table
            .inner_join(users::table)
            .filter(ssh_keys::fingerprint.eq(fingerprint))
            .filter(users::active.eq(true))
            .select((
                ssh_keys::id,
                users::id,
                users::username,
                users::display_name,
                users::role,
            ))
            .first(&mut conn)
            .await
            .optional()?;
        let Some((key_id, user_id, username, display_name, role)) = found else {
            return Ok(None);
        };
        diesel::update(ssh_keys::table.find(key_id))
            .set(ssh_keys::last_used_at.eq(Utc::now()))
            .execute(&mut conn)
            .await?;
        Ok(Some(Actor {
            user_id,
            username,
            display_name,
            role,
            grant: crate::Grant::Full,
        }))
    }
}
