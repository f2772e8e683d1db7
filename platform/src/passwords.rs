//! Argon2id password hashing, off the async runtime (a hash takes tens of milliseconds).

use std::sync::OnceLock;

use argon2::{
    Argon2,
    password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier as _, SaltString, rand_core::OsRng},
};

use crate::{Error, Result};

/// Hashes computed at once. Each argon2id run takes ~19 MiB and a core for tens of
/// milliseconds: a burst of sign-ins waits its turn instead of taking the memory and every
/// blocking thread.
const MAX_HASHING: usize = 4;

static HASHING: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(MAX_HASHING);

/// Runs one hash on a blocking thread, when a hashing slot is free.
async fn hashing<T: Send + 'static>(work: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    let _slot = HASHING.acquire().await.map_err(Error::internal)?;
    tokio::task::spawn_blocking(work).await.map_err(Error::internal)?
}

pub(crate) async fn hash(password: String) -> Result<String> {
    hashing(move || {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| Error::internal(e.to_string()))
    })
    .await
}

/// Verifies `password` against `stored`; with no stored hash (unknown user) it verifies against
/// a throw-away hash so that both cases take the same time.
pub(crate) async fn verify(password: String, stored: Option<String>) -> Result<bool> {
    hashing(move || {
        let known = stored.is_some();
        let stored = stored.unwrap_or_else(|| decoy().to_owned());
        let parsed = PasswordHash::new(&stored).map_err(|e| Error::internal(e.to_string()))?;
        let matches = Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok();
        Ok(known && matches)
    })
    .await
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
