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
//!   its certificate before its first visitor, not during their request. The handshake is a
//!   bare ClientHello naming the host: enough for Caddy to start, and nothing to verify.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use base64::Engine as _;
use bollard::{container::LogOutput, query_parameters::LogsOptions};
use futures::{Stream, StreamExt as _};
use serde::Deserialize;
use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::TcpStream,
};

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
        let not_after = first_certificate(&pem)
            .and_then(|der| not_after(&der))
            .ok_or_else(|| {
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
        let mut stream = tokio::time::timeout(HANDSHAKE_WAIT, TcpStream::connect(address))
            .await
            .map_err(|_| Error::Transient(format!("the edge's HTTPS port {address} does not answer")))?
            .map_err(io)?;
        stream.write_all(&client_hello(&host)).await.map_err(io)?;
        let mut first = [0u8; 1];
        Ok(
            match tokio::time::timeout(HANDSHAKE_WAIT, stream.read(&mut first)).await {
                Err(_) => Handshake::Waiting,
                // 22: a handshake record (the ServerHello).
                Ok(Ok(1)) if first[0] == 22 => Handshake::Served,
                Ok(_) => Handshake::Refused,
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

/// The DER of the first certificate in a PEM file (the leaf of a chain).
fn first_certificate(pem: &str) -> Option<Vec<u8>> {
    let start = pem.find("-----BEGIN CERTIFICATE-----")? + "-----BEGIN CERTIFICATE-----".len();
    let end = start + pem[start..].find("-----END CERTIFICATE-----")?;
    let body: String = pem[start..end].split_whitespace().collect();
    base64::engine::general_purpose::STANDARD.decode(body).ok()
}

/// One DER item: (tag, contents, what follows).
fn der_item(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, mut rest) = rest.split_first()?;
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        let count = usize::from(first & 0x7f);
        if count == 0 || count > 4 {
            return None;
        }
        let (bytes, after) = rest.split_at_checked(count)?;
        rest = after;
        bytes.iter().fold(0usize, |len, b| len << 8 | usize::from(*b))
    };
    let (contents, rest) = rest.split_at_checked(len)?;
    Some((tag, contents, rest))
}

/// A certificate's `notAfter` in seconds since the Unix epoch (RFC 5280 §4.1: the validity
/// follows the optional version, the serial number, the signature algorithm and the issuer).
fn not_after(der: &[u8]) -> Option<i64> {
    let (_, certificate, _) = der_item(der)?;
    let (_, tbs, _) = der_item(certificate)?;
    let (tag, _, after_version) = der_item(tbs)?;
    let mut rest = if tag == 0xa0 { after_version } else { tbs };
    for _ in 0..3 {
        rest = der_item(rest)?.2;
    }
    let (_, validity, _) = der_item(rest)?;
    let (_, _, after_not_before) = der_item(validity)?;
    let (tag, time, _) = der_item(after_not_before)?;
    let text = std::str::from_utf8(time).ok()?.strip_suffix('Z')?;
    let (year, rest) = match tag {
        // UTCTime: two-digit years, 50-99 in the 1900s.
        0x17 => {
            let yy: i64 = text.get(..2)?.parse().ok()?;
            (if yy >= 50 { 1900 + yy } else { 2000 + yy }, text.get(2..)?)
        }
        // GeneralizedTime.
        0x18 => (text.get(..4)?.parse().ok()?, text.get(4..)?),
        _ => return None,
    };
    let field = |i: usize| -> Option<i64> { rest.get(i..i + 2)?.parse().ok() };
    let (month, day) = (field(0)?, field(2)?);
    let (hour, minute, second) = (field(4)?, field(6)?, field(8)?);
    Some(days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_index = (month + 9) % 12;
    let day_of_year = (153 * month_index + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// A TLS 1.2 ClientHello naming `host` (RFC 5246 §7.4.1.2, server_name of RFC 6066): modern
/// ECDHE suites and the extensions a Go server needs to pick a certificate.
fn client_hello(host: &str) -> Vec<u8> {
    fn u16_be(n: usize) -> [u8; 2] {
        u16::try_from(n).unwrap_or(u16::MAX).to_be_bytes()
    }
    fn extension(out: &mut Vec<u8>, kind: u16, data: &[u8]) {
        out.extend(kind.to_be_bytes());
        out.extend(u16_be(data.len()));
        out.extend(data);
    }
    let name = host.as_bytes();
    let mut server_name = Vec::with_capacity(name.len() + 5);
    server_name.extend(u16_be(name.len() + 3));
    server_name.push(0);
    server_name.extend(u16_be(name.len()));
    server_name.extend(name);
    let mut extensions = Vec::new();
    extension(&mut extensions, 0x0000, &server_name);
    // Groups: x25519, secp256r1, secp384r1.
    extension(&mut extensions, 0x000a, &[0, 6, 0, 0x1d, 0, 0x17, 0, 0x18]);
    // Point formats: uncompressed.
    extension(&mut extensions, 0x000b, &[1, 0]);
    // Signature algorithms: ECDSA, RSA-PSS and RSA PKCS#1 with SHA-256/384/512.
    extension(
        &mut extensions,
        0x000d,
        &[0, 16, 4, 3, 8, 4, 4, 1, 5, 3, 8, 5, 5, 1, 8, 6, 6, 1],
    );
    let suites = [
        0xc0, 0x2b, 0xc0, 0x2f, 0xc0, 0x2c, 0xc0, 0x30, 0xcc, 0xa9, 0xcc, 0xa8,
    ];
    let mut body = vec![3, 3];
    body.extend(rand_bytes());
    body.push(0);
    body.extend(u16_be(suites.len()));
    body.extend(suites);
    body.extend([1, 0]);
    body.extend(u16_be(extensions.len()));
    body.extend(extensions);
    let mut handshake = vec![1];
    handshake.extend(&u32::try_from(body.len()).unwrap_or(0).to_be_bytes()[1..]);
    handshake.extend(body);
    let mut record = vec![22, 3, 1];
    record.extend(u16_be(handshake.len()));
    record.extend(handshake);
    record
}

/// The ClientHello's 32 random bytes. Nothing is ever encrypted with this handshake: they need
/// to differ, not to be secret.
fn rand_bytes() -> [u8; 32] {
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    let mut out = [0u8; 32];
    for (i, chunk) in out.chunks_mut(16).enumerate() {
        chunk.copy_from_slice(&(seed.rotate_left(u32::try_from(i).unwrap_or(0) * 17)).to_le_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Made with `openssl req -x509 … -days 3650`; `openssl x509 -enddate` says
    /// `notAfter=Nov 23 05:36:58 2036 GMT`.
    const PEM: &str = include_str!("test-certificate.pem");

    #[test]
    fn a_certificate_expiry_is_read_from_its_pem() {
        let der = first_certificate(PEM).expect("a PEM certificate");
        // 2036-11-23T05:36:58Z
        assert_eq!(not_after(&der), Some(2_111_031_418));
        assert_eq!(
            not_after(&der[..40]),
            None,
            "a truncated certificate is no certificate"
        );
        assert_eq!(first_certificate("nothing here"), None);
    }

    #[test]
    fn dates_count_days_from_the_epoch() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(days_from_civil(2026, 11, 26), 20_783);
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

    #[test]
    fn the_client_hello_is_one_well_formed_record_naming_the_host() {
        let hello = client_hello("shop.example.org");
        assert_eq!(hello[0], 22, "a handshake record");
        let record_len = usize::from(u16::from_be_bytes([hello[3], hello[4]]));
        assert_eq!(record_len, hello.len() - 5);
        assert_eq!(hello[5], 1, "a ClientHello");
        let body_len = usize::from(hello[6]) << 16 | usize::from(hello[7]) << 8 | usize::from(hello[8]);
        assert_eq!(body_len, hello.len() - 9);
        let text = String::from_utf8_lossy(&hello);
        assert!(text.contains("shop.example.org"));
    }
}
