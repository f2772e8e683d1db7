//! Argon2id password hashing, off the async runtime (a hash takes tens of milliseconds).

use std::sync::OnceLock;

use argon2::{
    Argon2,
    password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier as _, SaltString, rand_core::OsRng},
};

use crate::{Error, Result};

pub(crate) async fn hash(password: String) -> Result<String> {
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| Error::internal(e.to_string()))
    })
    .await
    .map_err(Error::internal)?
}

/// Verifies `password` against `stored`; with no stored hash (unknown user) it verifies against
/// a throw-away hash so that both cases take the same time.
pub(crate) async fn verify(password: String, stored: Option<String>) -> Result<bool> {
    tokio::task::spawn_blocking(move || {
        let known = stored.is_some();
        let stored = stored.unwrap_or_else(|| decoy().to_owned());
        let parsed = PasswordHash::new(&stored).map_err(|e| Error::internal(e.to_string()))?;
        let matches = Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok();
        Ok(known && matches)
    })
    .await
    .map_err(Error::internal)?
}

fn decoy() -> &'static str {
    static DECOY: OnceLock<String> = OnceLock::new();
    DECOY.get_or_init(|| {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default()
            .hash_password(b"decoy password never used", &salt)
            .map(|h| h.to_string())
            .unwrap_or_default()
    })
}
