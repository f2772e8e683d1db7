//! Webhooks: a signed JSON POST for each notification, to a person's own endpoint, or to one
//! an admin set for everyone's events.
//!
//! Director runs as root beside its tenants' code, so a webhook is an obvious way to make it
//! reach what only it can reach. Its destination is resolved when it is added and again at
//! every send, and refused when any of its addresses is not a public one (loopback, private,
//! link-local — the clouds' metadata services —, shared, reserved, multicast, or an IPv6 form
//! that carries an IPv4 address to somewhere else), is the host's own, or is inside a network of
//! the Docker engine (where sites and their databases are) — unless the operator allowed that
//! range (`--webhook-allow`). The POST goes
//! to the addresses that were checked (the HTTP client never resolves the name again, so a
//! second answer cannot differ), follows no redirect and uses no proxy.

use std::{
    net::{IpAddr, SocketAddr},
    time::Duration,
};

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncConnection as _, RunQueryDsl};
use hmac::{Hmac, Mac as _};
use ipnet::IpNet;
use model::notification::{DeliveryState, WebhookScope};
use sha2::Sha256;

use crate::{
    Access, Actor, Error, Permission, Platform, Result, authorize,
    schema::{deliveries, webhooks},
    sites::audit,
};

/// The header that carries the signature: `t=<unix time>,v1=<hex HMAC-SHA256 of "<t>.<body>">`.
pub const SIGNATURE_HEADER: &str = "X-Director-Signature";
/// The most webhooks one person may have.
const PER_PERSON: i64 = 5;
/// The most webhooks for everyone's events.
const FOR_EVERYONE: i64 = 10;
/// The longest a POST may take, connecting included.
const POST_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest connecting may take: a destination that drops packets frees the worker soon.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest resolving a name may take.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a URL may be.
const URL_MAX: usize = 2000;
/// The address ranges that are not the public Internet (IANA's special-purpose registries,
/// IPv4 and IPv6), with what each is. IPv6 ranges that carry an IPv4 address (NAT64, 6to4,
/// Teredo, IPv4-compatible) are refused whole: through them a POST could reach any IPv4
/// address, private ones included. (`::ffff:a.b.c.d` is judged as `a.b.c.d` before.)
const NOT_PUBLIC: [(&str, &str); 31] = [
    ("0.0.0.0/8", "an unspecified address"),
    ("10.0.0.0/8", "a private address"),
    ("100.64.0.0/10", "a shared (carrier-grade NAT) address"),
    ("127.0.0.0/8", "a loopback address"),
    ("169.254.0.0/16", "a link-local address"),
    ("172.16.0.0/12", "a private address"),
    ("192.0.0.0/24", "a reserved address"),
    ("192.0.2.0/24", "a documentation address"),
    ("192.88.99.0/24", "a reserved address"),
    ("192.168.0.0/16", "a private address"),
    ("198.18.0.0/15", "a benchmarking address"),
    ("198.51.100.0/24", "a documentation address"),
    ("203.0.113.0/24", "a documentation address"),
    ("224.0.0.0/4", "a multicast address"),
    ("240.0.0.0/4", "a reserved or broadcast address"),
    ("::/128", "an unspecified address"),
    ("::1/128", "a loopback address"),
    ("::/96", "an IPv4-compatible address"),
    ("64:ff9b::/96", "a NAT64 address"),
    ("64:ff9b:1::/48", "a NAT64 address"),
    ("100::/64", "a discard address"),
    ("2001::/23", "a reserved (Teredo, benchmarking…) address"),
    ("2001:db8::/32", "a documentation address"),
    ("2002::/16", "a 6to4 address"),
    ("3fff::/20", "a documentation address"),
    ("5f00::/16", "a segment-routing address"),
    ("fc00::/7", "a private (unique local) address"),
    ("fe80::/10", "a link-local address"),
    ("fec0::/10", "a site-local address"),
    ("ff00::/8", "a multicast address"),
    ("2001:2::/48", "a benchmarking address"),
];

/// A webhook as its owner (or, for everyone's, any admin) sees it; never its secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Webhook {
    /// Its id.
    pub id: i64,
    /// Where it is sent.
    pub url: String,
    /// Whose notifications.
    pub scope: WebhookScope,
    /// When it was added.
    pub created_at: DateTime<Utc>,
    /// How its latest delivery went (None: none yet).
    pub last_state: Option<DeliveryState>,
    /// Its latest delivery's error, if it failed.
    pub last_error: String,
}

/// What a test POST did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestPost {
    /// Whether the endpoint answered with success (2xx).
    pub sent: bool,
    /// Its status line, or why nothing was sent.
    pub said: String,
}

/// Why a POST did not succeed: worth trying again later, or not.
#[derive(Debug)]
pub(crate) enum PostFailure {
    /// Down, slow, or busy (a 5xx, 408, 429).
    Transient(String),
    /// Refused for good (another 4xx, a redirect), or a destination that may not be reached.
    Permanent(String),
}

impl PostFailure {
    fn message(&self) -> &str {
        match self {
            Self::Transient(m) | Self::Permanent(m) => m,
        }
    }
}

/// What a webhook receives.
#[derive(Debug, serde::Serialize)]
pub(crate) struct Payload<'a> {
    /// The event's name (`request-approved`; `ping` for a test).
    pub event: &'a str,
    /// When it happened (RFC 3339).
    pub time: String,
    /// One line.
    pub subject: &'a str,
    /// A few sentences.
    pub body: &'a str,
    /// The manager's page about it, absolute.
    pub link: String,
    /// The subject and the link on two lines: what chat services' incoming hooks that read
    /// `text` show as the message.
    pub text: String,
    /// Whose notification it is (absent for everyone's webhooks).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recipient: Option<&'a str>,
    /// The delivery's id: the same on every attempt, so a receiver can drop a repeat.
    pub delivery: i64,
}

/// The signature header's value for `body` sent at `unix`.
pub fn signature(secret: &str, unix: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    mac.update(unix.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("t={unix},v1={hex}")
}

/// A webhook's URL, checked for its form: `http` or `https`, a host, no password in it.
fn parse_url(given: &str) -> Result<url::Url> {
    let too_long = || Error::invalid("url", format!("At most {URL_MAX} characters."));
    let given = given.trim();
    if given.len() > URL_MAX {
        return Err(too_long());
    }
    let url = url::Url::parse(given)
        .map_err(|e| Error::invalid("url", format!("Not a URL ({e}): give https://host/path.")))?;
    // What is kept is the URL as written out (percent-encoded): that is what must fit.
    if url.as_str().len() > URL_MAX {
        return Err(too_long());
    }
    if !matches!(url.scheme(), "http" | "https") {
        return Err(Error::invalid(
            "url",
            "Only http:// and https:// URLs receive webhooks.",
        ));
    }
    if url.host().is_none() {
        return Err(Error::invalid("url", "The URL has no host."));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(Error::invalid(
            "url",
            "Put no user or password in the URL: the signature proves a POST is Director's.",
        ));
    }
    if url.fragment().is_some() {
        return Err(Error::invalid(
            "url",
            "A URL with a #fragment is not sent anywhere.",
        ));
    }
    Ok(url)
}

/// Why `ip` may not receive webhooks (None: it may). `allowed` ranges are the operator's
/// exceptions; `engine` the Docker engine's networks.
fn refusal(ip: IpAddr, allowed: &[IpNet], engine: &[IpNet]) -> Option<String> {
    // An IPv4 address written as IPv6 (::ffff:127.0.0.1) is judged as the IPv4 one.
    let ip = ip.to_canonical();
    if allowed.iter().any(|net| net.contains(&ip)) {
        return None;
    }
    let special = NOT_PUBLIC.iter().find_map(|(range, what)| {
        let range: IpNet = range.parse().expect("the table's ranges are valid");
        range.contains(&ip).then_some(*what)
    });
    if let Some(what) = special {
        return Some(format!("{ip} is {what}, not a public one"));
    }
    // The range is not named: it tells a member nothing they need.
    if engine.iter().any(|net| net.contains(&ip)) {
        return Some(format!("{ip} is in a network of the sites' Docker engine"));
    }
    // An address the host can bind is one of its own: a POST there reaches whatever listens on
    // the host (its database, its Docker API), whichever interface it is on.
    if std::net::UdpSocket::bind(SocketAddr::new(ip, 0)).is_ok() {
        return Some(format!("{ip} is an address of Director's own host"));
    }
    None
}

/// Where a webhook's URL may be sent: its host name and the addresses it resolved to, every
/// one of them allowed.
#[derive(Debug)]
struct Destination {
    host: String,
    addresses: Vec<SocketAddr>,
}

impl Platform {
    /// The address ranges of the Docker engine's networks: asked of the engine when it is up
    /// (and remembered), else the last answer. (Docker's default pools are private ranges,
    /// refused anyway.)
    async fn engine_networks(&self) -> Vec<IpNet> {
        if let Some(runtime) = self.runtime_if_up() {
            match runtime.orchestrator.network_subnets().await {
                Ok(subnets) => {
                    let nets: Vec<IpNet> = subnets.iter().filter_map(|s| s.parse().ok()).collect();
                    *self
                        .inner
                        .engine_networks
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(nets.clone());
                    return nets;
                }
                Err(err) => tracing::warn!(error = %err, "the engine's networks could not be listed"),
            }
        }
        self.inner
            .engine_networks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
            .unwrap_or_default()
    }

    /// Resolves `url`'s host and checks every address it has.
    async fn destination(&self, url: &url::Url) -> std::result::Result<Destination, PostFailure> {
        let port = url
            .port_or_known_default()
            .ok_or_else(|| PostFailure::Permanent("the URL has no port".to_owned()))?;
        let (host, addresses) = match url.host() {
            Some(url::Host::Ipv4(ip)) => (ip.to_string(), vec![SocketAddr::new(ip.into(), port)]),
            Some(url::Host::Ipv6(ip)) => (ip.to_string(), vec![SocketAddr::new(ip.into(), port)]),
            Some(url::Host::Domain(name)) => {
                let found: Vec<SocketAddr> =
                    tokio::time::timeout(RESOLVE_TIMEOUT, tokio::net::lookup_host((name, port)))
                        .await
                        .map_err(|_| {
                            PostFailure::Transient(format!(
                                "{name} was not resolved within {} s",
                                RESOLVE_TIMEOUT.as_secs()
                            ))
                        })?
                        .map_err(|e| PostFailure::Transient(format!("{name} could not be resolved: {e}")))?
                        .collect();
                if found.is_empty() {
                    return Err(PostFailure::Transient(format!("{name} has no address")));
                }
                (name.to_owned(), found)
            }
            None => return Err(PostFailure::Permanent("the URL has no host".to_owned())),
        };
        let engine = self.engine_networks().await;
        let allowed = &self.settings().webhook_allowed_networks;
        if let Some(why) = addresses
            .iter()
            .find_map(|address| refusal(address.ip(), allowed, &engine))
        {
            return Err(PostFailure::Permanent(format!(
                "{host} may not receive webhooks: {why}"
            )));
        }
        Ok(Destination { host, addresses })
    }

    /// POSTs `payload` to `url`, signed with `secret`: to the checked addresses only.
    pub(crate) async fn post_webhook(
        &self,
        url: &str,
        secret: &str,
        payload: &Payload<'_>,
    ) -> std::result::Result<String, PostFailure> {
        let url = parse_url(url).map_err(|e| PostFailure::Permanent(e.to_string()))?;
        let destination = self.destination(&url).await?;
        let mut client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .timeout(POST_TIMEOUT)
            .connect_timeout(CONNECT_TIMEOUT)
            .user_agent("Director-Webhook/1");
        if matches!(url.host(), Some(url::Host::Domain(_))) {
            client = client.resolve_to_addrs(&destination.host, &destination.addresses);
        }
        let client = client
            .build()
            .map_err(|e| PostFailure::Permanent(format!("no HTTP client: {e}")))?;
        let body = serde_json::to_vec(payload).map_err(|e| PostFailure::Permanent(e.to_string()))?;
        let response = client
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header("X-Director-Event", payload.event)
            .header("X-Director-Delivery", payload.delivery.to_string())
            .header(SIGNATURE_HEADER, signature(secret, Utc::now().timestamp(), &body))
            .body(body)
            .send()
            .await
            .map_err(|e| {
                // Without the URL: it may be a credential itself (a chat's hook), and this text
                // is kept and shown.
                let e = e.without_url();
                let cause = std::error::Error::source(&e).map(ToString::to_string);
                PostFailure::Transient(match cause {
                    Some(cause) => format!("{e}: {cause}"),
                    None => e.to_string(),
                })
            })?;
        let status = response.status();
        let said = format!(
            "{} {}",
            status.as_u16(),
            status.canonical_reason().unwrap_or_default()
        );
        if status.is_success() {
            Ok(said)
        } else if status.is_redirection() {
            Err(PostFailure::Permanent(format!(
                "answered {said}: redirects are not followed, give the final URL"
            )))
        } else if status.is_server_error()
            || status == reqwest::StatusCode::REQUEST_TIMEOUT
            || status == reqwest::StatusCode::TOO_MANY_REQUESTS
        {
            Err(PostFailure::Transient(format!("answered {said}")))
        } else {
            Err(PostFailure::Permanent(format!("answered {said}")))
        }
    }

    /// The actor's webhooks, and for admins everyone's, each with how its latest delivery went.
    pub async fn webhooks(&self, actor: Option<&Actor>) -> Result<Vec<Webhook>> {
        let actor = authorize(actor, Permission::UseManager, Access::Read)?;
        let mut conn = self.conn().await?;
        let mut query = webhooks::table
            .filter(webhooks::user_id.eq(actor.user_id))
            .into_boxed();
        if actor.is_admin() {
            query = query.or_filter(webhooks::user_id.is_null());
        }
        let rows: Vec<(i64, Option<i64>, String, DateTime<Utc>)> = query
            .order(webhooks::id)
            .select((
                webhooks::id,
                webhooks::user_id,
                webhooks::url,
                webhooks::created_at,
            ))
            .load(&mut conn)
            .await?;
        let ids: Vec<i64> = rows.iter().map(|r| r.0).collect();
        let latest: Vec<(Option<i64>, DeliveryState, String)> = deliveries::table
            .filter(deliveries::webhook_id.eq_any(&ids))
            .filter(deliveries::attempts.gt(0))
            .order((deliveries::webhook_id, deliveries::id.desc()))
            .distinct_on(deliveries::webhook_id)
            .select((deliveries::webhook_id, deliveries::state, deliveries::last_error))
            .load(&mut conn)
            .await?;
        Ok(rows
            .into_iter()
            .map(|(id, user_id, url, created_at)| {
                let last = latest.iter().find(|(w, _, _)| *w == Some(id));
                Webhook {
                    id,
                    url,
                    scope: if user_id.is_some() {
                        WebhookScope::Mine
                    } else {
                        WebhookScope::Everyone
                    },
                    created_at,
                    last_state: last.map(|(_, state, _)| *state),
                    last_error: last.map(|(_, _, e)| e.clone()).unwrap_or_default(),
                }
            })
            .collect())
    }

    /// Adds a webhook at `url` for the actor's notifications (an admin's may take everyone's)
    /// and returns it with its secret: shown this once, kept only to sign.
    pub async fn add_webhook(
        &self,
        actor: Option<&Actor>,
        url: &str,
        scope: WebhookScope,
    ) -> Result<(Webhook, String)> {
        let actor = match scope {
            WebhookScope::Mine => authorize(actor, Permission::UseManager, Access::Write)?,
            WebhookScope::Everyone => authorize(actor, Permission::Administer, Access::Write)?,
        };
        let parsed = parse_url(url)?;
        self.destination(&parsed)
            .await
            .map_err(|failure| Error::invalid("url", format!("{}.", failure.message())))?;
        let secret = format!("whsec_{}", crate::tokens::generate());
        let owner = match scope {
            WebhookScope::Mine => Some(actor.user_id),
            WebhookScope::Everyone => None,
        };
        let url = parsed.to_string();
        let mut conn = self.conn().await?;
        let (id, created_at) = conn
            .transaction::<_, Error, _>(async |conn| {
                // One at a time per owner, so that two adds at once cannot pass the limit.
                diesel::sql_query("SELECT pg_advisory_xact_lock(hashtext('webhooks'), $1::int)")
                    .bind::<diesel::sql_types::Integer, _>(
                        i32::try_from(owner.unwrap_or(0) % i64::from(i32::MAX)).unwrap_or(0),
                    )
                    .execute(conn)
                    .await?;
                let (have, limit) = match owner {
                    Some(user_id) => (
                        webhooks::table
                            .filter(webhooks::user_id.eq(user_id))
                            .count()
                            .get_result::<i64>(conn)
                            .await?,
                        PER_PERSON,
                    ),
                    None => (
                        webhooks::table
                            .filter(webhooks::user_id.is_null())
                            .count()
                            .get_result::<i64>(conn)
                            .await?,
                        FOR_EVERYONE,
                    ),
                };
                if have >= limit {
                    return Err(Error::Conflict(format!(
                        "At most {limit} webhooks: remove one first."
                    )));
                }
                let added: (i64, DateTime<Utc>) = diesel::insert_into(webhooks::table)
                    .values((
                        webhooks::user_id.eq(owner),
                        webhooks::url.eq(&url),
                        webhooks::secret.eq(&secret),
                    ))
                    .returning((webhooks::id, webhooks::created_at))
                    .get_result(conn)
                    .await?;
                if owner.is_none() {
                    audit(conn, actor, "webhook.add", &url, "every event, everyone's").await?;
                }
                Ok(added)
            })
            .await?;
        tracing::info!(user = %actor.username, webhook = id, scope = ?scope, "webhook added");
        Ok((
            Webhook {
                id,
                url,
                scope,
                created_at,
                last_state: None,
                last_error: String::new(),
            },
            secret,
        ))
    }

    /// The webhook `id` as the actor may touch it: their own, or (admins) one for everyone.
    async fn my_webhook(&self, actor: &Actor, id: i64) -> Result<(String, String, Option<i64>)> {
        let mut conn = self.conn().await?;
        let found: Option<(String, String, Option<i64>)> = webhooks::table
            .find(id)
            .select((webhooks::url, webhooks::secret, webhooks::user_id))
            .first(&mut conn)
            .await
            .optional()?;
        match found {
            Some(hook) if hook.2 == Some(actor.user_id) || (hook.2.is_none() && actor.is_admin()) => Ok(hook),
            _ => Err(Error::NotFound("webhook")),
        }
    }

    /// Removes the webhook `id` (the actor's own, or for admins one for everyone's events); its
    /// deliveries not yet sent go with it.
    pub async fn remove_webhook(&self, actor: Option<&Actor>, id: i64) -> Result<()> {
        let actor = authorize(actor, Permission::UseManager, Access::Write)?;
        let (url, _, owner) = self.my_webhook(actor, id).await?;
        let mut conn = self.conn().await?;
        conn.transaction::<_, Error, _>(async |conn| {
            diesel::delete(webhooks::table.find(id)).execute(conn).await?;
            if owner.is_none() {
                audit(conn, actor, "webhook.remove", &url, "").await?;
            }
            Ok(())
        })
        .await?;
        tracing::info!(user = %actor.username, webhook = id, "webhook removed");
        Ok(())
    }

    /// POSTs a `ping` to the webhook `id` now and says how its endpoint answered.
    pub async fn test_webhook(&self, actor: Option<&Actor>, id: i64) -> Result<TestPost> {
        let actor = authorize(actor, Permission::UseManager, Access::Write)?;
        let (url, secret, owner) = self.my_webhook(actor, id).await?;
        // Every attempt counts, taken before it is made: a test may not probe one address
        // after another.
        self.take_test_turn(actor, "webhook")?;
        let body = format!("{} asked for this test.", actor.username);
        let link = self.absolute_link("/notifications");
        let payload = Payload {
            event: "ping",
            time: Utc::now().to_rfc3339(),
            subject: "A test from Director",
            body: &body,
            text: format!("A test from Director\n{link}"),
            link,
            recipient: owner.is_some().then_some(actor.username.as_str()),
            delivery: 0,
        };
        let outcome = self.post_webhook(&url, &secret, &payload).await;
        tracing::info!(user = %actor.username, webhook = id, ok = outcome.is_ok(), "test webhook");
        let origin = url::Url::parse(&url)
            .map(|u| u.origin().ascii_serialization())
            .unwrap_or_default();
        Ok(match outcome {
            Ok(said) => TestPost {
                sent: true,
                said: format!("{origin} answered {said}"),
            },
            Err(failure) => TestPost {
                sent: false,
                said: format!("{origin}: {}", failure.message()),
            },
        })
    }

    /// The manager's page `path` as an absolute URL.
    pub(crate) fn absolute_link(&self, path: &str) -> String {
        format!("{}{path}", self.settings().public_url.trim_end_matches('/'))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(ip: &str) -> bool {
        refusal(ip.parse().unwrap(), &[], &["10.0.1.0/24".parse().unwrap()]).is_some()
    }

    #[test]
    fn loopback_link_local_unspecified_multicast_and_the_engine_are_refused() {
        for ip in [
            "127.0.0.1",
            "127.1.2.3",
            "::1",
            "::ffff:127.0.0.1",
            "0.0.0.0",
            "0.1.2.3",
            "::",
            "169.254.169.254",
            "fe80::1",
            "224.0.0.1",
            "255.255.255.255",
            "ff02::1",
            "10.0.1.7",
            "::ffff:10.0.1.7",
        ] {
            assert!(refused(ip), "{ip} is refused");
        }
        for ip in [
            "10.20.0.7",
            "172.16.5.4",
            "192.168.1.1",
            "100.100.100.200",
            "192.0.2.77",
            "fd00:ec2::254",
            "fd00:c1::a9fe:a9fe",
            "::7f00:1",
            "64:ff9b::a00:5",
            "2002:7f00:1::",
            "2001:0:4136:e378::1",
            "fec0::1",
            "240.1.2.3",
        ] {
            assert!(refused(ip), "{ip}, not public, is refused");
        }
        for ip in [
            "8.8.8.8",
            "1.1.1.1",
            "2606:4700:4700::1111",
            "2a00:1450:4001::200e",
        ] {
            assert!(!refused(ip), "{ip} may receive webhooks");
        }
    }

    #[test]
    fn an_allowed_range_is_an_exception() {
        let allowed = ["127.0.0.1/32".parse().unwrap()];
        assert!(refusal("127.0.0.1".parse().unwrap(), &allowed, &[]).is_none());
        assert!(refusal("127.0.0.2".parse().unwrap(), &allowed, &[]).is_some());
    }

    #[test]
    fn urls_without_a_host_with_a_password_or_another_scheme_are_refused() {
        for url in [
            "ftp://example.org/x",
            "file:///etc/passwd",
            "https://user:pw@example.org/x",
            "https://example.org/x#y",
            "not a url",
            "unix:/run/docker.sock",
        ] {
            assert!(parse_url(url).is_err(), "{url} is refused");
        }
        assert!(parse_url(" https://hooks.example.org/director?x=1 ").is_ok());
        // Short as typed, too long once percent-encoded as it is kept.
        let encoded = format!("https://example.org/{}", "é".repeat(900));
        assert!(encoded.len() < URL_MAX);
        assert!(parse_url(&encoded).is_err());
    }

    #[test]
    fn the_signature_is_hmac_sha256_of_the_time_and_body() {
        // Worked out independently: printf '1700000000.{}' | openssl dgst -sha256 -hmac secret
        assert_eq!(
            signature("secret", 1_700_000_000, b"{}"),
            "t=1700000000,v1=b8569b78799ff9e3cbff0fc2d63a33a2b57f3282abd07c37ae5e8e7d79a5f163"
        );
    }
}
