//! Sign-in with the organisation's identity providers (OpenID Connect): the authorization code
//! flow with PKCE, `state` and `nonce`, the provider found by discovery from its issuer URL,
//! the ID token's signature, issuer, audience, expiry and nonce checked (crate `openidconnect`).
//!
//! What a sign-in needs between the redirect and the callback is kept in PostgreSQL
//! (`oidc_logins`, the `state` only as a digest), so the callback may land on any manager
//! process, and each is taken by one callback only. An account is linked to a provider's person
//! by (issuer, subject) alone; a new person gets an account of their own (unless the provider
//! does not let people register), never one that merely shares an email address.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncConnection as _, RunQueryDsl};
use model::account::SignInRefusal;
use openidconnect::{
    AdditionalClaims, AuthorizationCode, ClientId, ClientSecret, CsrfToken, EndpointMaybeSet, EndpointNotSet,
    EndpointSet, IssuerUrl, Nonce, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, Scope,
    TokenResponse as _,
    core::{
        CoreAuthDisplay, CoreAuthPrompt, CoreAuthenticationFlow, CoreErrorResponseType, CoreGenderClaim,
        CoreJsonWebKey, CoreJweContentEncryptionAlgorithm, CoreJwsSigningAlgorithm, CoreProviderMetadata,
        CoreRevocableToken, CoreRevocationErrorResponse, CoreTokenIntrospectionResponse, CoreTokenType,
    },
};
use serde::{Deserialize, Serialize};

use crate::{
    ClientInfo, Error, Platform, Result, Role, SessionToken,
    accounts::Actor,
    schema::{oidc_logins, user_identities, users},
    tokens,
};

/// How long a sign-in may take at the provider (its login page, a second factor).
const LOGIN_TTL: chrono::Duration = chrono::Duration::minutes(10);
/// The longest issuer or subject kept (OpenID Connect says a subject has at most 255 ASCII
/// characters).
const MAX_ID: usize = 255;
/// The clock difference allowed between this machine and the provider.
const CLOCK_SKEW: chrono::Duration = chrono::Duration::seconds(60);

/// One identity provider, as the operator configured it.
#[derive(Clone)]
pub struct OidcProvider {
    /// Its id in Director's URLs (`/auth/oidc/<id>/…`): letters, digits, `-`.
    pub id: String,
    /// Its name on the sign-in page: "Sign in with <name>".
    pub name: String,
    /// Its issuer URL, from which its endpoints and keys are discovered.
    pub issuer: String,
    /// Director's client id there.
    pub client_id: String,
    /// Director's client secret there.
    pub client_secret: String,
    /// Scopes asked for besides `openid`.
    pub scopes: Vec<String>,
    /// Whether a person the provider vouches for, without an account yet, gets one.
    pub registration: Registration,
    /// The claim listing the person's groups.
    pub role_claim: String,
    /// Groups whose members are Director's admins; re-applied at each sign-in when not empty.
    pub admin_groups: Vec<String>,
}

impl std::fmt::Debug for OidcProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcProvider")
            .field("id", &self.id)
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

/// Whether people may sign in with Director's own passwords: an organisation that signs everyone
/// in through its provider turns them off (the first-run setup link and `director user create`
/// still let an admin in, for recovery).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LocalLogin {
    /// The password form is offered.
    On,
    /// Only the identity providers are.
    Off,
}

/// Whether people new to Director get an account on their first sign-in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Registration {
    /// They do.
    Open,
    /// They are told to ask an admin.
    Closed,
}

/// The claims Director reads besides the standard ones: the person's groups.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
pub struct GroupClaims {
    #[serde(default, flatten)]
    other: serde_json::Map<String, serde_json::Value>,
}

impl AdditionalClaims for GroupClaims {}

impl GroupClaims {
    /// The strings of claim `name` (a list of strings, or one string); None without it.
    fn strings(&self, name: &str) -> Option<Vec<String>> {
        match self.other.get(name)? {
            serde_json::Value::Array(values) => Some(
                values
                    .iter()
                    .filter_map(|v| v.as_str().map(ToOwned::to_owned))
                    .collect(),
            ),
            serde_json::Value::String(value) => Some(vec![value.clone()]),
            _ => None,
        }
    }
}

type TokenResponse = openidconnect::StandardTokenResponse<
    openidconnect::IdTokenFields<
        GroupClaims,
        openidconnect::EmptyExtraTokenFields,
        CoreGenderClaim,
        CoreJweContentEncryptionAlgorithm,
        CoreJwsSigningAlgorithm,
    >,
    CoreTokenType,
>;

type OidcClient = openidconnect::Client<
    GroupClaims,
    CoreAuthDisplay,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJsonWebKey,
    CoreAuthPrompt,
    openidconnect::StandardErrorResponse<CoreErrorResponseType>,
    TokenResponse,
    CoreTokenIntrospectionResponse,
    CoreRevocableToken,
    CoreRevocationErrorResponse,
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

/// A sign-in under way, as `oidc_logins` keeps it.
#[derive(Queryable, Selectable)]
#[diesel(table_name = oidc_logins)]
struct Login {
    provider: String,
    nonce: String,
    verifier: String,
    next: String,
    expires_at: DateTime<Utc>,
    browser_hash: Vec<u8>,
}

/// What a provider's callback brought back, with this manager's callback URL and the
/// browser's secret (its cookie; None when it sent none).
#[derive(Debug, Clone, Copy)]
pub struct Callback<'a> {
    /// This manager's callback URL for the provider.
    pub redirect: &'a str,
    /// The `state` it carries.
    pub state: &'a str,
    /// The code it carries.
    pub code: &'a str,
    /// The secret the browser kept since the start.
    pub browser: Option<&'a str>,
}

/// The person a provider vouched for, as its ID token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The provider's issuer.
    pub issuer: String,
    /// The person's id there, for ever.
    pub subject: String,
    /// The username they would like.
    pub preferred_username: Option<String>,
    /// Their name.
    pub name: Option<String>,
    /// Their email address.
    pub email: Option<String>,
    /// Their groups (the provider's role claim), when the token has that claim.
    pub groups: Option<Vec<String>>,
}

fn unavailable(provider: &OidcProvider, err: impl std::fmt::Display) -> Error {
    tracing::warn!(provider = %provider.id, error = %err, "identity provider unavailable");
    Error::ProviderUnavailable(format!(
        "{} did not answer. Try again in a moment.",
        provider.name
    ))
}

fn refused(provider: &OidcProvider, why: SignInRefusal, err: impl std::fmt::Display) -> Error {
    tracing::warn!(provider = %provider.id, error = %err, why = why.as_str(), "sign-in refused");
    Error::SignInRefused(why)
}

/// The provider's client, from its discovery document.
async fn client(provider: &OidcProvider, redirect: &str, http: &reqwest::Client) -> Result<OidcClient> {
    let issuer = IssuerUrl::new(provider.issuer.clone()).map_err(Error::internal)?;
    let metadata = CoreProviderMetadata::discover_async(issuer, http)
        .await
        .map_err(|e| unavailable(provider, e))?;
    Ok(OidcClient::from_provider_metadata(
        metadata,
        ClientId::new(provider.client_id.clone()),
        Some(ClientSecret::new(provider.client_secret.clone())),
    )
    .set_redirect_uri(RedirectUrl::new(redirect.to_owned()).map_err(Error::internal)?))
}

impl Platform {
    /// The HTTP client for providers, made at its first use: no redirects followed (a
    /// provider's answer is taken as it is, never fetched from somewhere else it points to).
    fn oidc_http(&self) -> Result<&reqwest::Client> {
        if let Some(http) = self.inner.oidc_http.get() {
            return Ok(http);
        }
        let made = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(std::time::Duration::from_secs(10))
            .build()
            .map_err(Error::internal)?;
        Ok(self.inner.oidc_http.get_or_init(|| made))
    }

    /// The configured provider `id`.
    pub fn oidc_provider(&self, id: &str) -> Result<&OidcProvider> {
        self.settings()
            .oidc
            .iter()
            .find(|p| p.id == id)
            .ok_or(Error::NotFound("identity provider"))
    }

    /// Starts a sign-in with provider `id`: where to send the browser, and a secret it is to
    /// keep (a cookie) and show again at the callback. `redirect` is this manager's callback
    /// URL for the provider; `next` the page to land on after.
    pub async fn oidc_begin(&self, id: &str, redirect: &str, next: &str) -> Result<(String, String)> {
        let provider = self.oidc_provider(id)?;
        let http = self.oidc_http()?;
        let client = client(provider, redirect, http).await?;
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let mut request = client.authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        );
        for scope in &provider.scopes {
            request = request.add_scope(Scope::new(scope.clone()));
        }
        let (url, state, nonce) = request.set_pkce_challenge(challenge).url();
        let browser = tokens::generate();
        let mut conn = self.conn().await?;
        diesel::delete(oidc_logins::table.filter(oidc_logins::expires_at.lt(Utc::now())))
            .execute(&mut conn)
            .await?;
        diesel::insert_into(oidc_logins::table)
            .values((
                oidc_logins::state_hash.eq(tokens::digest(state.secret())),
                oidc_logins::provider.eq(&provider.id),
                oidc_logins::nonce.eq(nonce.secret()),
                oidc_logins::verifier.eq(verifier.secret()),
                oidc_logins::next.eq(next),
                oidc_logins::browser_hash.eq(tokens::digest(&browser)),
                oidc_logins::expires_at.eq(Utc::now() + LOGIN_TTL),
            ))
            .execute(&mut conn)
            .await?;
        Ok((url.to_string(), browser))
    }

    /// Ends a sign-in with provider `id` at its callback: the `state` must be one this
    /// Director gave (once, within ten minutes) to this `browser`, the code is exchanged with
    /// the PKCE verifier, and the ID token checked. Returns the session and the page to land on.
    pub async fn oidc_finish(
        &self,
        id: &str,
        callback: Callback<'_>,
        client_info: &ClientInfo,
    ) -> Result<(Actor, SessionToken, String)> {
        let Callback {
            redirect,
            state,
            code,
            browser,
        } = callback;
        let provider = self.oidc_provider(id)?;
        let login: Option<Login> = {
            let mut conn = self.conn().await?;
            diesel::delete(oidc_logins::table.find(tokens::digest(state)))
                .returning(Login::as_returning())
                .get_result(&mut conn)
                .await
                .optional()?
        };
        let Some(Login {
            provider: login_provider,
            nonce,
            verifier,
            next,
            expires_at,
            browser_hash,
        }) = login
        else {
            return Err(refused(provider, SignInRefusal::Unknown, "unknown state"));
        };
        if login_provider != provider.id {
            return Err(refused(
                provider,
                SignInRefusal::Unknown,
                "another provider's state",
            ));
        }
        if expires_at < Utc::now() {
            return Err(refused(provider, SignInRefusal::Expired, "expired state"));
        }
        // The browser that started the sign-in must be the one finishing it: otherwise anyone
        // could have someone else's browser finish a sign-in of theirs (login CSRF).
        if browser.map(tokens::digest).as_deref() != Some(browser_hash.as_slice()) {
            return Err(refused(
                provider,
                SignInRefusal::OtherBrowser,
                "another browser's state",
            ));
        }
        let http = self.oidc_http()?;
        let client = client(provider, redirect, http).await?;
        let token: TokenResponse = client
            .exchange_code(AuthorizationCode::new(code.to_owned()))
            .map_err(|e| refused(provider, SignInRefusal::NotAccepted, e))?
            .set_pkce_verifier(PkceCodeVerifier::new(verifier))
            .request_async(http)
            .await
            .map_err(|e| match e {
                openidconnect::RequestTokenError::Request(e) => unavailable(provider, e),
                other => refused(provider, SignInRefusal::NotAccepted, other),
            })?;
        let id_token = token
            .id_token()
            .ok_or_else(|| refused(provider, SignInRefusal::BadToken, "no id_token"))?;
        // The provider's clock may run up to a minute ahead of this one.
        let verifier = client.id_token_verifier().set_time_fn(|| Utc::now() - CLOCK_SKEW);
        let claims = id_token
            .claims(&verifier, &Nonce::new(nonce))
            .map_err(|e| refused(provider, SignInRefusal::BadToken, e))?;
        let identity = Identity {
            issuer: claims.issuer().as_str().to_owned(),
            subject: claims.subject().as_str().to_owned(),
            preferred_username: claims.preferred_username().map(|u| u.as_str().to_owned()),
            name: claims
                .name()
                .and_then(|n| n.get(None))
                .map(|n| n.as_str().to_owned()),
            email: claims.email().map(|e| e.as_str().to_owned()),
            groups: claims.additional_claims().strings(&provider.role_claim),
        };
        let (actor, session) = self.sign_in_as(provider, &identity, client_info).await?;
        Ok((actor, session, next))
    }

    /// Signs in the person `identity` names: their linked account, or (registration open) a new
    /// one. When the provider maps groups to roles and said the person's groups, their role is
    /// applied again (never leaving Director without an admin).
    pub async fn sign_in_as(
        &self,
        provider: &OidcProvider,
        identity: &Identity,
        client_info: &ClientInfo,
    ) -> Result<(Actor, SessionToken)> {
        if identity.issuer.len() > MAX_ID || identity.subject.len() > MAX_ID {
            return Err(refused(
                provider,
                SignInRefusal::BadToken,
                "issuer or subject over 255 bytes",
            ));
        }
        // A provider that did not say the groups (a claim it gives only elsewhere) changes no
        // one's role: never a demotion for want of a claim.
        let role = match (&identity.groups, provider.admin_groups.is_empty()) {
            (Some(groups), false) => Some(if groups.iter().any(|g| provider.admin_groups.contains(g)) {
                Role::Admin
            } else {
                Role::User
            }),
            _ => None,
        };
        let linked = linked_user(&mut *self.conn().await?, identity).await?;
        let user_id = match linked {
            Some(user_id) => user_id,
            None if provider.registration == Registration::Closed => {
                tracing::info!(provider = %provider.id, subject = ?identity.subject, "sign-in of a person without an account");
                return Err(Error::SignInRefused(SignInRefusal::NoAccount));
            }
            None => {
                self.register(provider, identity, role.unwrap_or(Role::User))
                    .await?
            }
        };
        let mut conn = self.conn().await?;
        let (username, display_name, was, active): (String, String, Role, bool) = users::table
            .find(user_id)
            .select((users::username, users::display_name, users::role, users::active))
            .first(&mut conn)
            .await?;
        if !active {
            return Err(Error::SignInRefused(SignInRefusal::Deactivated));
        }
        let mut actor = Actor {
            user_id,
            username,
            display_name,
            role: was,
        };
        if let Some(role) = role.filter(|role| *role != was) {
            // The provider decides: the change is the person's own sign-in's, in the audit log.
            match self.change_role(&actor.clone(), user_id, role).await {
                Ok(_) => actor.role = role,
                Err(Error::Conflict(why)) => {
                    tracing::warn!(user = %actor.username, provider = %provider.id, %why, "the provider's groups would leave no admin; the role is kept");
                }
                Err(err) => return Err(err),
            }
        }
        let session = self.new_session(&mut conn, user_id, client_info).await?;
        tracing::info!(user = %actor.username, provider = %provider.id, ip = %client_info.ip, "signed in with an identity provider");
        Ok((actor, session))
    }

    /// Makes an account for `identity`, linked to it: its username from the one they would
    /// like (made valid, then unique), its name and email when they are valid ones, a password
    /// nobody knows. Two first sign-ins at once (two tabs, two people wanting one name) take
    /// turns: the second finds the first's link, or picks the next free name.
    async fn register(&self, provider: &OidcProvider, identity: &Identity, role: Role) -> Result<i64> {
        let wanted = identity
            .preferred_username
            .as_deref()
            .or(identity.email.as_deref().and_then(|e| e.split('@').next()))
            .unwrap_or("user");
        let base = username_from(wanted);
        // Nobody knows it: the account signs in through its provider (an admin's setup link
        // may give it a password later).
        let password_hash = crate::passwords::hash(tokens::generate()).await?;
        let display_name = identity
            .name
            .as_deref()
            .map(|name| name.chars().filter(|c| !c.is_control()).collect::<String>())
            .and_then(|name| crate::validation::display_name(&name, &base).ok())
            .unwrap_or_else(|| base.clone());
        let email = identity
            .email
            .as_deref()
            .and_then(|e| crate::validation::email(e).ok())
            .unwrap_or_default();
        let mut conn = self.conn().await?;
        let user_id = conn
            .transaction::<_, Error, _>(async |conn| {
                diesel::sql_query("SELECT pg_advisory_xact_lock(hashtext('director.register'))")
                    .execute(conn)
                    .await?;
                if let Some(user_id) = linked_user(conn, identity).await? {
                    return Ok(user_id);
                }
                let taken: Vec<String> = users::table
                    .filter(users::username.like(format!("{}%", base.replace('_', "\\_"))))
                    .select(users::username)
                    .load(conn)
                    .await?;
                let username = unique(&base, &taken);
                let user_id: i64 = diesel::insert_into(users::table)
                    .values((
                        users::username.eq(&username),
                        users::display_name.eq(&display_name),
                        users::email.eq(&email),
                        users::password_hash.eq(&password_hash),
                        users::role.eq(role),
                    ))
                    .returning(users::id)
                    .get_result(conn)
                    .await?;
                diesel::insert_into(user_identities::table)
                    .values((
                        user_identities::issuer.eq(&identity.issuer),
                        user_identities::subject.eq(&identity.subject),
                        user_identities::user_id.eq(user_id),
                    ))
                    .execute(conn)
                    .await?;
                let actor = Actor {
                    user_id,
                    username: username.clone(),
                    display_name: display_name.clone(),
                    role,
                };
                crate::sites::audit(conn, &actor, "user.register", &username, &provider.id).await?;
                Ok(user_id)
            })
            .await?;
        tracing::info!(provider = %provider.id, user_id, "account made at first sign-in");
        Ok(user_id)
    }
}

/// The account linked to `identity`, if one is.
async fn linked_user(conn: &mut diesel_async::AsyncPgConnection, identity: &Identity) -> Result<Option<i64>> {
    Ok(user_identities::table
        .filter(user_identities::issuer.eq(&identity.issuer))
        .filter(user_identities::subject.eq(&identity.subject))
        .select(user_identities::user_id)
        .first(conn)
        .await
        .optional()?)
}

/// A valid username from what a provider says the person would like: lower case, letters,
/// digits, `.`, `_`, `-`, starting with a letter, at most 28 characters (room for a suffix).
pub fn username_from(wanted: &str) -> String {
    let cleaned: String = wanted
        .to_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '-'
            }
        })
        .collect();
    let trimmed = cleaned.trim_start_matches(|c: char| !c.is_ascii_lowercase());
    let name: String = trimmed.chars().take(28).collect();
    let name = name.trim_end_matches(['-', '.', '_']).to_owned();
    if name.is_empty() { "user".to_owned() } else { name }
}

/// `base`, or `base2`, `base3`… whichever `taken` does not hold.
fn unique(base: &str, taken: &[String]) -> String {
    if !taken.iter().any(|t| t == base) {
        return base.to_owned();
    }
    (2..)
        .map(|n| format!("{base}{n}"))
        .find(|candidate| !taken.contains(candidate))
        .expect("an unbounded range has a free name")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wanted_username_is_made_valid_and_unique() {
        assert_eq!(username_from("Alice.Liddell"), "alice.liddell");
        assert_eq!(username_from("  42 Émile Zola!"), "mile-zola");
        assert_eq!(username_from("_x_"), "x");
        assert_eq!(username_from("日本"), "user");
        assert_eq!(username_from(&"a".repeat(60)).len(), 28);
        for name in ["Alice.Liddell", "42 Émile Zola!", "日本", "a-b-"] {
            assert!(
                crate::validation::username(&username_from(name)).is_ok(),
                "{name}"
            );
        }
        let taken = ["alice".to_owned(), "alice2".to_owned()];
        assert_eq!(unique("alice", &taken), "alice3");
        assert_eq!(unique("bob", &taken), "bob");
    }

    #[test]
    fn groups_are_read_from_a_list_or_a_string() {
        let claims: GroupClaims =
            serde_json::from_str(r#"{"groups": ["staff", 3, "admins"], "role": "approver"}"#).unwrap();
        assert_eq!(claims.strings("groups").unwrap(), ["staff", "admins"]);
        assert_eq!(claims.strings("role").unwrap(), ["approver"]);
        assert_eq!(claims.strings("missing"), None);
    }
}
