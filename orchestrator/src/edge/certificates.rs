//! Certificates the Caddy edge obtains through ACME on demand, as Director sees them.
//!
//! Caddy asks the CA for a host's certificate during the first TLS handshake naming it (after
//! asking Director whether it serves that host), keeps it in its storage, renews it, and on a
//! failure retries with backoff by itself. It offers no API for any of this, so Director reads
//! what it needs from three places Caddy keeps anyway:
//!
//! - the certificate in Caddy's storage (`certificates/<issuer>/<host>/<host>.crt`): issued, and
//!   until when;
//! - Caddy's log lines of `tls.obtain` and `tls.renew`: why an attempt failed (the CA's own
//!   words) and when Caddy tries again;
//! - a handshake Director starts itself ([`Caddy::request_certificate`]) so that a new host gets
//!   its certificate before its first visitor, not during their request. It is a TLS client's
//!   handshake naming the host that takes whatever certificate it is shown (it sends nothing
//!   over the connection, and only asks whether the edge had one to show).

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use bollard::{container::LogOutput, query_parameters::LogsOptions};
use futures::{Stream, StreamExt as _};
use serde::Deserialize;
use tokio::net::TcpStream;

use super::{Caddy, validate_host};
use crate::{Error, Result};

/// How Caddy gets certificates: ACME, on demand, for the hosts Director says it serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcmeConfig {
    /// The host address visitors reach HTTPS at (published to Caddy's TLS port); its port is
    /// the one in sites' `https://` addresses and redirects (443 is left out).
    pub listen: SocketAddr,
    /// The ACME directory (Let's Encrypt's by default).
    pub ca: String,
    /// The ACME account's contact, to whom the CA writes about certificates that expire.
    pub email: Option<String>,
    /// Roots (a PEM file) that the CA's own HTTPS is verified with, for a private CA.
    pub ca_root: Option<PathBuf>,
}

/// Let's Encrypt's production directory.
pub const LETS_ENCRYPT: &str = "https://acme-v02.api.letsencrypt.org/directory";

impl AcmeConfig {
    /// Where Caddy keeps this CA's data: the directory's URL made a path segment, as CertMagic
    /// names it (`acme-v02.api.letsencrypt.org-directory`, `localhost-14000-dir`).
    pub fn issuer_key(&self) -> String {
        let rest = self
            .ca
            .split_once("://")
            .map_or(self.ca.as_str(), |(_, rest)| rest);
        let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
        let path = path.split(['?', '#']).next().unwrap_or_default();
        let path = path.replace(['/', '\\'], "-");
        let path = path.trim_matches('-');
        let key = if path.is_empty() {
            host.to_owned()
        } else {
            format!("{host}-{path}")
        };
        key.to_ascii_lowercase().replace(':', "-")
    }
}

/// A certificate Caddy holds for a host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Certificate {
    /// When it expires, in seconds since the Unix epoch.
    pub not_after: i64,
}

/// What Caddy reported about a host's certificate.
#[derive(Debug, Clone, PartialEq)]
pub enum CertificateEvent {
    /// It was obtained or renewed.
    Obtained {
        /// The host.
        host: String,
    },
    /// An attempt failed; `reason` is what the CA (or the way to it) said.
    Failed {
        /// The host.
        host: String,
        /// Why.
        reason: String,
        /// When, in seconds since the Unix epoch.
        at: f64,
    },
    /// Caddy will try again by itself.
    WillRetry {
        /// The host.
        host: String,
        /// Which attempt failed (1 for the first).
        attempt: u32,
        /// When the next attempt starts, in seconds since the Unix epoch.
        at: f64,
    },
}

/// What the edge did with a handshake naming a host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handshake {
    /// It answered with a certificate: the host has one.
    Served,
    /// It refused (a TLS alert or a closed connection): Director does not serve the host, or
    /// the attempt to get a certificate failed at once.
    Refused,
    /// It is still getting the certificate (the CA answers within seconds when all goes well;
    /// Caddy keeps trying after this call returns).
    Waiting,
}

/// How long a requested handshake waits for the edge's answer.
const HANDSHAKE_WAIT: Duration = Duration::from_secs(3);

impl Caddy {
    /// The certificate Caddy has stored for `host`, if any. None without ACME.
    pub fn certificate(&self, host: &str) -> Result<Option<Certificate>> {
        let Some(acme) = &self.config.acme else {
            return Ok(None);
        };
        let host = validate_host(host, false)?;
        let file = self
            .config
            .certificates_dir(acme)
            .join(&host)
            .join(format!("{host}.crt"));
        let pem = match std::fs::read_to_string(&file) {
            Ok(pem) => pem,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(Error::Io {
                    context: format!("reading the certificate of {host}"),
                    source,
                });
            }
        };
        let not_after = not_after(&pem).ok_or_else(|| {
            Error::invalid("certificate", format!("{} is not a certificate", file.display()))
        })?;
        Ok(Some(Certificate { not_after }))
    }

    /// Starts a TLS handshake naming `host` on the edge's HTTPS port, so that Caddy gets its
    /// certificate now; returns what the edge did within a few seconds.
    pub async fn request_certificate(&self, host: &str) -> Result<Handshake> {
        let Some(acme) = &self.config.acme else {
            return Err(Error::invalid("certificate", "the edge has no ACME configured"));
        };
        let host = validate_host(host, false)?;
        let mut address = acme.listen;
        if address.ip().is_unspecified() {
            address.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
        }
        let io = |source| Error::Io {
            context: format!("starting a handshake for {host} at {address}"),
            source,
        };
        let stream = tokio::time::timeout(HANDSHAKE_WAIT, TcpStream::connect(address))
            .await
            .map_err(|_| Error::Transient(format!("the edge's HTTPS port {address} does not answer")))?
            .map_err(io)?;
        let name = rustls::pki_types::ServerName::try_from(host.clone())
            .map_err(|e| Error::invalid("host", e.to_string()))?;
        let connector = tokio_rustls::TlsConnector::from(any_certificate());
        Ok(
            match tokio::time::timeout(HANDSHAKE_WAIT, connector.connect(name, stream)).await {
                Err(_) => Handshake::Waiting,
                Ok(Ok(_)) => Handshake::Served,
                Ok(Err(_)) => Handshake::Refused,
            },
        )
    }

    /// Caddy's reports about certificates from `since` (seconds since the Unix epoch) on, for as
    /// long as its container runs; the stream ends when the container stops or is replaced.
    pub fn certificate_events(
        &self,
        since: i64,
    ) -> impl Stream<Item = Result<CertificateEvent>> + Send + use<> {
        let options = LogsOptions {
            follow: true,
            stdout: true,
            stderr: true,
            since: i32::try_from(since).unwrap_or(0),
            ..Default::default()
        };
        self.orch
            .docker
            .logs(&self.container, Some(options))
            .filter_map(|item| async move {
                match item {
                    Ok(LogOutput::StdErr { message } | LogOutput::StdOut { message }) => {
                        parse_event(&String::from_utf8_lossy(&message)).map(Ok)
                    }
                    Ok(_) => None,
                    Err(e) => Some(Err(e.into())),
                }
            })
    }

    /// Forgets Caddy's ACME account with this CA, so that its next attempt registers a new one.
    /// For a CA that no longer knows the account (`accountDoesNotExist`: a CA reset, a test CA
    /// restarted), which Caddy would otherwise present on every retry.
    pub fn forget_acme_account(&self) -> Result<()> {
        let Some(acme) = &self.config.acme else {
            return Ok(());
        };
        let users = self
            .config
            .data_dir()
            .join("caddy/acme")
            .join(acme.issuer_key())
            .join("users");
        match std::fs::remove_dir_all(&users) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::Io {
                context: "forgetting the ACME account".to_owned(),
                source: e,
            }),
            _ => Ok(()),
        }
    }
}

/// One line of Caddy's JSON log.
#[derive(Deserialize)]
struct LogEntry {
    #[serde(default)]
    logger: String,
    #[serde(default)]
    msg: String,
    #[serde(default)]
    ts: f64,
    identifier: Option<String>,
    error: Option<String>,
    attempt: Option<u32>,
    retrying_in: Option<f64>,
}

/// The certificate event in one of Caddy's log lines, if it is one.
fn parse_event(line: &str) -> Option<CertificateEvent> {
    let entry: LogEntry = serde_json::from_str(line.trim()).ok()?;
    if entry.logger != "tls.obtain" && entry.logger != "tls.renew" {
        return None;
    }
    match entry.msg.as_str() {
        "certificate obtained successfully" | "certificate renewed successfully" => {
            Some(CertificateEvent::Obtained {
                host: entry.identifier?,
            })
        }
        "could not get certificate from issuer" => {
            let host = entry.identifier?;
            let error = entry.error.unwrap_or_default();
            // Caddy starts some reasons with the host, which the page shows beside them anyway.
            let reason = error
                .strip_prefix(&format!("[{host}] "))
                .unwrap_or(&error)
                .to_owned();
            Some(CertificateEvent::Failed {
                host,
                reason,
                at: entry.ts,
            })
        }
        // This line names no identifier: its error starts with `[<host>] `.
        "will retry" => {
            let error = entry.error?;
            let host = error.strip_prefix('[')?.split(']').next()?.to_owned();
            Some(CertificateEvent::WillRetry {
                host,
                attempt: entry.attempt.unwrap_or(1),
                at: entry.ts + entry.retrying_in.unwrap_or(0.0),
            })
        }
        _ => None,
    }
}

/// The expiry of the first certificate (the leaf of a chain) in a PEM file, in seconds since
/// the Unix epoch.
fn not_after(pem: &str) -> Option<i64> {
    use x509_cert::der::DecodePem as _;
    let begin = pem.find("-----BEGIN CERTIFICATE-----")?;
    let end = begin + pem[begin..].find("-----END CERTIFICATE-----")? + "-----END CERTIFICATE-----".len();
    let certificate = x509_cert::Certificate::from_pem(&pem[begin..end]).ok()?;
    let not_after = certificate.tbs_certificate.validity.not_after.to_unix_duration();
    i64::try_from(not_after.as_secs()).ok()
}

/// A TLS client for [`Caddy::request_certificate`]: it verifies nothing, because it trusts
/// nothing it is shown and sends nothing after the handshake; whether a certificate came is
/// all it asks.
fn any_certificate() -> std::sync::Arc<rustls::ClientConfig> {
    use rustls::{
        DigitallySignedStruct, SignatureScheme,
        client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier},
        crypto::CryptoProvider,
        pki_types::{CertificateDer, ServerName, UnixTime},
    };

    #[derive(Debug)]
    struct AnyCertificate(std::sync::Arc<CryptoProvider>);

    impl ServerCertVerifier for AnyCertificate {
        fn verify_server_cert(
            &self,
            _: &CertificateDer<'_>,
            _: &[CertificateDer<'_>],
            _: &ServerName<'_>,
            _: &[u8],
            _: UnixTime,
        ) -> std::result::Result<ServerCertVerified, rustls::Error> {
            Ok(ServerCertVerified::assertion())
        }

        fn verify_tls12_signature(
            &self,
            _: &[u8],
            _: &CertificateDer<'_>,
            _: &DigitallySignedStruct,
        ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
            Ok(HandshakeSignatureValid::assertion())
        }

        fn verify_tls13_signature(
            &self,
            _: &[u8],
            _: &CertificateDer<'_>,
            _: &DigitallySignedStruct,
        ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
            Ok(HandshakeSignatureValid::assertion())
        }

        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            self.0.signature_verification_algorithms.supported_schemes()
        }
    }

    static CONFIG: std::sync::OnceLock<std::sync::Arc<rustls::ClientConfig>> = std::sync::OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
            let config = rustls::ClientConfig::builder_with_provider(provider.clone())
                .with_safe_default_protocol_versions()
                .expect("ring supports the default protocol versions")
                .dangerous()
                .with_custom_certificate_verifier(std::sync::Arc::new(AnyCertificate(provider)))
                .with_no_client_auth();
            std::sync::Arc::new(config)
        })
        .clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Made with `openssl req -x509 … -days 3650`; `openssl x509 -enddate` says
    /// `notAfter=Nov 23 05:36:58 2036 GMT`.
    const PEM: &str = include_str!("test-certificate.pem");

    #[test]
    fn a_certificate_expiry_is_read_from_its_pem() {
        // 2036-11-23T05:36:58Z
        assert_eq!(not_after(PEM), Some(2_111_031_418));
        let truncated = format!("{}\n-----END CERTIFICATE-----\n", &PEM[..200]);
        assert_eq!(
            not_after(&truncated),
            None,
            "a truncated certificate is no certificate"
        );
        assert_eq!(not_after("nothing here"), None);
    }

    #[test]
    fn the_issuer_key_is_the_directory_url_as_caddy_names_it() {
        let key = |ca: &str| {
            AcmeConfig {
                listen: "127.0.0.1:443".parse().unwrap(),
                ca: ca.to_owned(),
                email: None,
                ca_root: None,
            }
            .issuer_key()
        };
        assert_eq!(key(LETS_ENCRYPT), "acme-v02.api.letsencrypt.org-directory");
        assert_eq!(key("https://172.18.0.1:14000/dir"), "172.18.0.1-14000-dir");
        assert_eq!(
            key("https://ca.example.org/acme/acme/directory"),
            "ca.example.org-acme-acme-directory"
        );
    }

    #[test]
    fn caddys_log_lines_become_events() {
        // Lines as Caddy 2.6 writes them.
        let failed = r#"{"level":"error","ts":1795671316.853225,"logger":"tls.obtain","msg":"could not get certificate from issuer","identifier":"blog.sites.test","issuer":"172.18.0.1:14000-dir","error":"HTTP 400 urn:ietf:params:acme:error:malformed - no such name"}"#;
        let retry = r#"{"level":"error","ts":1795671300.5,"logger":"tls.obtain","msg":"will retry","error":"[down.sites.test] Obtain: [down.sites.test] creating new order: connection refused (ca=https://172.18.0.1:14000/dir)","attempt":2,"retrying_in":120,"elapsed":0.5,"max_duration":2592000}"#;
        let obtained = r#"{"level":"info","ts":1795671360.6,"logger":"tls.obtain","msg":"certificate obtained successfully","identifier":"down.sites.test"}"#;
        assert_eq!(
            parse_event(failed),
            Some(CertificateEvent::Failed {
                host: "blog.sites.test".to_owned(),
                reason: "HTTP 400 urn:ietf:params:acme:error:malformed - no such name".to_owned(),
                at: 1_795_671_316.853_225,
            })
        );
        assert_eq!(
            parse_event(retry),
            Some(CertificateEvent::WillRetry {
                host: "down.sites.test".to_owned(),
                attempt: 2,
                at: 1_795_671_420.5,
            })
        );
        assert_eq!(
            parse_event(obtained),
            Some(CertificateEvent::Obtained {
                host: "down.sites.test".to_owned()
            })
        );
        assert_eq!(
            parse_event(r#"{"logger":"http.log","msg":"server running"}"#),
            None
        );
        assert_eq!(parse_event("not json"), None);
    }
}
