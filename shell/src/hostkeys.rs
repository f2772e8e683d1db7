//! The server's host key: made once, kept in the data directory, so that clients' known_hosts
//! stay valid across restarts. Its fingerprint is shown in the manager for users to verify.

use std::path::Path;

use russh::keys::{Algorithm, HashAlg, PrivateKey, ssh_key::LineEnding};

use crate::{Error, Result};

/// The host keys and their fingerprints.
#[derive(Debug, Clone)]
pub struct HostKeys {
    pub(crate) keys: Vec<PrivateKey>,
    /// `SHA256:…` of each key, as `ssh` shows them on first connection.
    pub fingerprints: Vec<String>,
}

/// Reads the host key from `dir`, making it (ed25519, mode 0600) on first use.
pub fn host_keys(dir: &Path) -> Result<HostKeys> {
    let io = |context: &str| {
        let context = context.to_owned();
        move |source| Error::Io { context, source }
    };
    std::fs::create_dir_all(dir).map_err(io("making the SSH host key directory"))?;
    let path = dir.join("ssh_host_ed25519_key");
    let key = match std::fs::read_to_string(&path) {
        Ok(text) => {
            PrivateKey::from_openssh(&text).map_err(|e| Error::HostKey(format!("{}: {e}", path.display())))?
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = PrivateKey::random(&mut rand_ssh::rng(), Algorithm::Ed25519)
                .map_err(|e| Error::HostKey(e.to_string()))?;
            let text = key
                .to_openssh(LineEnding::LF)
                .map_err(|e| Error::HostKey(e.to_string()))?;
            write_private(&path, text.as_bytes()).map_err(io("writing the SSH host key"))?;
            tracing::info!(path = %path.display(), "SSH host key made");
            key
        }
        Err(e) => return Err(io("reading the SSH host key")(e)),
    };
    let fingerprints = vec![key.public_key().fingerprint(HashAlg::Sha256).to_string()];
    Ok(HostKeys {
        keys: vec![key],
        fingerprints,
    })
}

/// Writes a secret readable by its owner only, from its first byte.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::{io::Write as _, os::unix::fs::OpenOptionsExt as _};
    let tmp = path.with_extension("tmp");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)
}
