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
    EndpointSet, IssuerUrl, LogoutRequest, Nonce, OAuth2TokenResponse as _, PkceCodeChallenge,
    PkceCodeVerifier, ProviderMetadataWithLogout, RedirectUrl, Scope, SubjectIdentifier, TokenResponse as _,
    core::{
        CoreAuthDisplay, CoreAuthPrompt, CoreAuthenticationFlow, CoreErrorResponseType, CoreGenderClaim,
        CoreJsonWebKey, CoreJweContentEncryptionAlgorithm, CoreJwsSigningAlgorithm, CoreRevocableToken,
        CoreRevocationErrorResponse, CoreTokenIntrospectionResponse, CoreTokenType,
    },
};
use serde::{Deserialize, Serialize};

use crate::{
    Access, ClientInfo, Error, Permission, Platform, Result, Role, SessionToken,
    accounts::Actor,
    authorize,
    schema::{oidc_logins, pending_identities, sessions, user_identities, users},
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
    /// Groups whose members are Director's admins; with `approver_groups`, re-applied at each
    /// sign-in when either is not empty.
    pub admin_groups: Vec<String>,
    /// Groups whose members are approvers (unless an admin group has them).
    pub approver_groups: Vec<String>,
    /// Certificates (PEM) of a private authority the provider's HTTPS certificate is signed by,
    /// trusted for this provider besides the usual ones.
    pub ca_bundle: Option<Vec<u8>>,
}

impl OidcProvider {
    /// The role `groups` give, when this provider maps groups to roles.
    fn role_of(&self, groups: &[String]) -> Option<Role> {
        if self.admin_groups.is_empty() && self.approver_groups.is_empty() {
            return None;
        }
        let any_of = |wanted: &[String]| groups.iter().any(|g| wanted.contains(g));
        Some(if any_of(&self.admin_groups) {
            Role::Admin
        } else if any_of(&self.approver_groups) {
            Role::Approver
        } else {
            Role::User
        })
    }

    /// Whether an ID token without `claim` leaves something Director wants unsaid: then the
    /// provider's userinfo endpoint is asked.
    fn wants_more(&self, identity: &Identity) -> bool {
        identity.preferred_username.is_none()
            || identity.email.is_none()
            || (identity.groups.is_none() && self.role_of(&[]).is_some())
    }
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

/// An ID token, with the claims Director reads.
pub type IdToken = openidconnect::IdToken<
    GroupClaims,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJwsSigningAlgorithm,
>;

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
    link_user: Option<i64>,
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
    /// Their email address, when the provider says it verified it (an address anyone could
    /// type is neither kept nor matched to an account).
    pub email: Option<String>,
    /// Their groups (the provider's role claim), when the token has that claim.
    pub groups: Option<Vec<String>>,
}

impl Identity {
    /// Fills what the ID token left unsaid from the provider's userinfo answer (for the same
    /// subject: the request checked it).
    fn fill_from(
        &mut self,
        provider: &OidcProvider,
        info: &openidconnect::UserInfoClaims<GroupClaims, CoreGenderClaim>,
    ) {
        if self.preferred_username.is_none() {
            self.preferred_username = info.preferred_username().map(|u| u.as_str().to_owned());
        }
        if self.name.is_none() {
            self.name = info
                .name()
                .and_then(|n| n.get(None))
                .map(|n| n.as_str().to_owned());
        }
        if self.email.is_none() {
            self.email = verified(info.email(), info.email_verified());
        }
        if self.groups.is_none() {
            self.groups = info.additional_claims().strings(&provider.role_claim);
        }
    }
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

/// Checks that `pem` holds certificates (a provider's private authority), so that a wrong
/// file is refused when the configuration is read rather than at someone's sign-in.
pub fn check_ca_bundle(pem: &[u8]) -> Result<()> {
    match reqwest::Certificate::from_pem_bundle(pem) {
        Ok(certificates) if !certificates.is_empty() => Ok(()),
        Ok(_) => Err(Error::invalid("ca_file", "It holds no PEM certificate.")),
        Err(err) => Err(Error::invalid(
            "ca_file",
            format!("It is not PEM certificates: {err}"),
        )),
    }
}

/// The provider's discovery document (with its end-session endpoint, when it has one).
async fn discover(provider: &OidcProvider, http: &reqwest::Client) -> Result<ProviderMetadataWithLogout> {
    let issuer = IssuerUrl::new(provider.issuer.clone()).map_err(Error::internal)?;
    ProviderMetadataWithLogout::discover_async(issuer, http)
        .await
        .map_err(|e| unavailable(provider, e))
}

/// The provider's client, from its discovery document.
async fn client(provider: &OidcProvider, redirect: &str, http: &reqwest::Client) -> Result<OidcClient> {
    let metadata = discover(provider, http).await?;
    Ok(OidcClient::from_provider_metadata(
        metadata,
        ClientId::new(provider.client_id.clone()),
        Some(ClientSecret::new(provider.client_secret.clone())),
    )
    .set_redirect_uri(RedirectUrl::new(redirect.to_owned()).map_err(Error::internal)?))
}

/// An email address the provider says it verified.
fn verified(email: Option<&openidconnect::EndUserEmail>, verified: Option<bool>) -> Option<String> {
    email
        .filter(|_| verified == Some(true))
        .map(|e| e.as_str().to_owned())
}

/// The person `claims` (an ID token's) name.
fn identity_of(
    provider: &OidcProvider,
    claims: &openidconnect::IdTokenClaims<GroupClaims, CoreGenderClaim>,
) -> Identity {
    Identity {
        issuer: claims.issuer().as_str().to_owned(),
        subject: claims.subject().as_str().to_owned(),
        preferred_username: claims.preferred_username().map(|u| u.as_str().to_owned()),
        name: claims
            .name()
            .and_then(|n| n.get(None))
            .map(|n| n.as_str().to_owned()),
        email: verified(claims.email(), claims.email_verified()),
        groups: claims.additional_claims().strings(&provider.role_claim),
    }
}

/// Checks an ID token: its signature by one of the provider's keys, its issuer, its audience
/// (this client), its expiry (the provider's clock may run up to a minute ahead of this
/// one) and its nonce (the one this sign-in sent).
pub fn check_id_token(
    provider: &OidcProvider,
    verifier: &openidconnect::IdTokenVerifier<'_, CoreJsonWebKey>,
    id_token: &IdToken,
    nonce: &str,
) -> Result<Identity> {
    let verifier = verifier.clone().set_time_fn(|| Utc::now() - CLOCK_SKEW);
    let claims = id_token
        .claims(&verifier, &Nonce::new(nonce.to_owned()))
        .map_err(|e| refused(provider, SignInRefusal::BadToken, e))?;
    Ok(identity_of(provider, claims))
}

/// How a callback ended.
#[derive(Debug)]
pub enum Finished {
    /// Someone signed in: their session, and the page to land on.
    SignedIn {
        /// Who.
        actor: Actor,
        /// Their new session.
        session: SessionToken,
        /// The page to land on.
        next: String,
    },
    /// A signed-in person linked the provider's person to their account.
    Linked {
        /// The page to land on.
        next: String,
    },
}

impl Platform {
    /// The HTTP client for `provider`, made at its first use: no redirects followed (a
    /// provider's answer is taken as it is, never fetched from somewhere else it points to),
    /// its private authority trusted when it has one.
    fn oidc_http(&self, provider: &OidcProvider) -> Result<reqwest::Client> {
        let mut clients = self
            .inner
            .oidc_http
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(http) = clients.get(&provider.id) {
            return Ok(http.clone());
        }
        let mut builder = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(std::time::Duration::from_secs(10));
        if let Some(pem) = &provider.ca_bundle {
            for certificate in reqwest::Certificate::from_pem_bundle(pem).map_err(Error::internal)? {
                builder = builder.add_root_certificate(certificate);
            }
        }
        let made = builder.build().map_err(Error::internal)?;
        clients.insert(provider.id.clone(), made.clone());
        Ok(made)
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
    /// URL for the provider; `next` the page to land on after. With `link`, the signed-in
    /// person links the provider's person to their account instead of signing in.
    pub async fn oidc_begin(
        &self,
        id: &str,
        redirect: &str,
        next: &str,
        link: Option<&Actor>,
    ) -> Result<(String, String)> {
        let provider = self.oidc_provider(id)?;
        if let Some(actor) = link {
            authorize(Some(actor), Permission::UseManager, Access::Credentials)?;
        }
        let http = self.oidc_http(provider)?;
        let client = client(provider, redirect, &http).await?;
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let mut request = client.authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        );
        for scope in &provider.scopes {
            request = request.add_scope(Scope::new(scope.clone()));
        }
        if link.is_some() {
            // Linking is a deliberate act: the provider asks who the person is even when its
            // own session would have answered silently.
            request = request.add_prompt(CoreAuthPrompt::Login);
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
                oidc_logins::link_user.eq(link.map(|a| a.user_id)),
            ))
            .execute(&mut conn)
            .await?;
        Ok((url.to_string(), browser))
    }

    /// Ends a sign-in with provider `id` at its callback: the `state` must be one this
    /// Director gave (once, within ten minutes) to this `browser`, the code is exchanged with
    /// the PKCE verifier, and the ID token checked. `signed_in` is who the browser is signed in
    /// as: a sign-in begun to link must end in that same account.
    pub async fn oidc_finish(
        &self,
        id: &str,
        callback: Callback<'_>,
        client_info: &ClientInfo,
        signed_in: Option<&Actor>,
    ) -> Result<Finished> {
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
        let Some(login) = login else {
            return Err(refused(provider, SignInRefusal::Unknown, "unknown state"));
        };
        if login.provider != provider.id {
            return Err(refused(
                provider,
                SignInRefusal::Unknown,
                "another provider's state",
            ));
        }
        if login.expires_at < Utc::now() {
            return Err(refused(provider, SignInRefusal::Expired, "expired state"));
        }
        // The browser that started the sign-in must be the one finishing it: otherwise anyone
        // could have someone else's browser finish a sign-in of theirs (login CSRF).
        if browser.map(tokens::digest).as_deref() != Some(login.browser_hash.as_slice()) {
            return Err(refused(
                provider,
                SignInRefusal::OtherBrowser,
                "another browser's state",
            ));
        }
        let linking = match login.link_user {
            Some(user_id) => match signed_in {
                Some(actor) if actor.user_id == user_id => Some(actor),
                _ => {
                    return Err(refused(
                        provider,
                        SignInRefusal::OtherBrowser,
                        "a link finished outside the account that began it",
                    ));
                }
            },
            None => None,
        };
        let http = self.oidc_http(provider)?;
        let client = client(provider, redirect, &http).await?;
        let token: TokenResponse = client
            .exchange_code(AuthorizationCode::new(code.to_owned()))
            .map_err(|e| refused(provider, SignInRefusal::NotAccepted, e))?
            .set_pkce_verifier(PkceCodeVerifier::new(login.verifier))
            .request_async(&http)
            .await
            .map_err(|e| match e {
                openidconnect::RequestTokenError::Request(e) => unavailable(provider, e),
                other => refused(provider, SignInRefusal::NotAccepted, other),
            })?;
        let id_token = token
            .id_token()
            .ok_or_else(|| refused(provider, SignInRefusal::BadToken, "no id_token"))?;
        let mut identity = check_id_token(provider, &client.id_token_verifier(), id_token, &login.nonce)?;
        if provider.wants_more(&identity)
            && let Ok(request) = client.user_info(
                token.access_token().clone(),
                Some(SubjectIdentifier::new(identity.subject.clone())),
            )
        {
            let info: openidconnect::UserInfoClaims<GroupClaims, CoreGenderClaim> =
                request.request_async(&http).await.map_err(|e| match e {
                    openidconnect::UserInfoError::Request(e) => unavailable(provider, e),
                    other => refused(provider, SignInRefusal::BadToken, other),
                })?;
            identity.fill_from(provider, &info);
        }
        match linking {
            Some(actor) => {
                self.link_identity(actor, provider, &identity).await?;
                Ok(Finished::Linked { next: login.next })
            }
            None => {
                let (actor, session) = self.sign_in_as(provider, &identity, client_info).await?;
                Ok(Finished::SignedIn {
                    actor,
                    session,
                    next: login.next,
                })
            }
        }
    }

    /// Where to send a browser to sign out of provider `id` too, when it says where.
    pub async fn oidc_end_session(&self, id: &str) -> Result<Option<String>> {
        let provider = self.oidc_provider(id)?;
        let http = self.oidc_http(provider)?;
        let metadata = discover(provider, &http).await?;
        Ok(metadata
            .additional_metadata()
            .end_session_endpoint
            .clone()
            .map(|url| {
                LogoutRequest::from(url)
                    .set_client_id(ClientId::new(provider.client_id.clone()))
                    .http_get_url()
                    .to_string()
            }))
    }

    /// Signs in the person `identity` names: their linked account, or (registration open) a new
    /// one. When the provider maps groups to roles and said the person's groups, their role is
    /// applied again (never leaving Director without an admin). A person whose email address
    /// an account already has is not signed in: they wait to be linked to it.
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
        let role = identity
            .groups
            .as_deref()
            .and_then(|groups| provider.role_of(groups));
        let linked = linked_user(&mut *self.conn().await?, identity).await?;
        let user_id = match linked {
            Some(user_id) => user_id,
            None => {
                let held = self.hold_for_link(provider, identity).await?;
                // Where people do not register, being told an account has one's address would
                // say who has an account here: they are told to ask an admin, who sees them
                // waiting.
                if held && provider.registration == Registration::Open {
                    return Err(Error::SignInRefused(SignInRefusal::AccountExists));
                }
                if provider.registration == Registration::Closed {
                    tracing::info!(provider = %provider.id, subject = ?identity.subject, "sign-in of a person without an account");
                    return Err(Error::SignInRefused(SignInRefusal::NoAccount));
                }
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
            grant: crate::Grant::Full,
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
        let session = self
            .new_session(&mut conn, user_id, client_info, Some(&provider.id))
            .await?;
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
                        users::password_set.eq(false),
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
                    grant: crate::Grant::Full,
                };
                crate::sites::audit(conn, &actor, "user.register", &username, &provider.id).await?;
                Ok(user_id)
            })
            .await?;
        tracing::info!(provider = %provider.id, user_id, "account made at first sign-in");
        Ok(user_id)
    }
}

/// A provider's person waiting to be linked to the account that has their email address.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = pending_identities)]
pub struct PendingIdentity {
    /// The provider's issuer.
    pub issuer: String,
    /// The person's id there.
    pub subject: String,
    /// The provider's id in this Director's settings.
    pub provider: String,
    /// The account with their email address.
    pub user_id: i64,
    /// The username they would like.
    pub preferred_username: String,
    /// Their name, as the provider says it.
    pub name: String,
    /// Their email address, as the provider says it.
    pub email: String,
    /// When they last tried to sign in.
    pub seen_at: DateTime<Utc>,
}

/// A provider's person to link to an account.
#[derive(Debug, Clone, Copy)]
struct Link<'a> {
    user_id: i64,
    provider: &'a OidcProvider,
    issuer: &'a str,
    subject: &'a str,
}

/// A provider's person linked to an account: a way in to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkedIdentity {
    /// The provider's id in this Director's settings, when it is still configured.
    pub provider: Option<String>,
    /// Its issuer.
    pub issuer: String,
    /// The person's id there.
    pub subject: String,
    /// Since when.
    pub since: DateTime<Utc>,
}

impl Platform {
    /// Keeps `identity` waiting for a link when an active account has its email address, and
    /// says whether it does: such a person is never signed in to that account, nor given
    /// another. Only plain ASCII addresses are compared (letter case aside): a look-alike in
    /// other letters (`\u{212A}` for `K`) matches nobody.
    async fn hold_for_link(&self, provider: &OidcProvider, identity: &Identity) -> Result<bool> {
        let Some(email) = identity
            .email
            .as_deref()
            .and_then(|e| crate::validation::email(e).ok())
            .filter(|e| !e.is_empty() && e.is_ascii())
        else {
            return Ok(false);
        };
        let mut conn = self.conn().await?;
        let owner: Option<i64> = users::table
            .filter(lower(users::email).eq(email.to_ascii_lowercase()))
            .filter(users::active.eq(true))
            .order(users::id)
            .select(users::id)
            .first(&mut conn)
            .await
            .optional()?;
        let Some(user_id) = owner else {
            return Ok(false);
        };
        let clean = |text: &Option<String>| -> String {
            text.as_deref()
                .unwrap_or_default()
                .chars()
                .filter(|c| !c.is_control())
                .take(128)
                .collect()
        };
        diesel::insert_into(pending_identities::table)
            .values((
                pending_identities::issuer.eq(&identity.issuer),
                pending_identities::subject.eq(&identity.subject),
                pending_identities::provider.eq(&provider.id),
                pending_identities::user_id.eq(user_id),
                pending_identities::preferred_username.eq(clean(&identity.preferred_username)),
                pending_identities::name.eq(clean(&identity.name)),
                pending_identities::email.eq(&email),
            ))
            .on_conflict((pending_identities::issuer, pending_identities::subject))
            .do_update()
            .set((
                pending_identities::provider.eq(&provider.id),
                pending_identities::user_id.eq(user_id),
                pending_identities::preferred_username.eq(clean(&identity.preferred_username)),
                pending_identities::name.eq(clean(&identity.name)),
                pending_identities::email.eq(&email),
                pending_identities::seen_at.eq(Utc::now()),
            ))
            .execute(&mut conn)
            .await?;
        tracing::info!(provider = %provider.id, user_id, "a provider's person shares an account's email address: waiting for a link");
        Ok(true)
    }

    /// Links `identity` to `actor`'s own account (they proved both: signed in here, and at the
    /// provider just now).
    async fn link_identity(&self, actor: &Actor, provider: &OidcProvider, identity: &Identity) -> Result<()> {
        let link = Link {
            user_id: actor.user_id,
            provider,
            issuer: &identity.issuer,
            subject: &identity.subject,
        };
        self.link(actor, link).await
    }

    /// Links `link`'s person to its account, for `by`; the person no longer waits.
    async fn link(&self, by: &Actor, link: Link<'_>) -> Result<()> {
        let Link {
            user_id,
            provider,
            issuer,
            subject,
        } = link;
        if issuer.len() > MAX_ID || subject.len() > MAX_ID {
            return Err(refused(
                provider,
                SignInRefusal::BadToken,
                "issuer or subject over 255 bytes",
            ));
        }
        let mut conn = self.conn().await?;
        conn.transaction::<_, Error, _>(async |conn| {
            let linked: Option<i64> = user_identities::table
                .find((issuer, subject))
                .select(user_identities::user_id)
                .for_update()
                .first(conn)
                .await
                .optional()?;
            match linked {
                Some(owner) if owner == user_id => {}
                Some(_) => {
                    return Err(refused(
                        provider,
                        SignInRefusal::LinkedElsewhere,
                        "linked to another account",
                    ));
                }
                None => {
                    diesel::insert_into(user_identities::table)
                        .values((
                            user_identities::issuer.eq(issuer),
                            user_identities::subject.eq(subject),
                            user_identities::user_id.eq(user_id),
                        ))
                        .execute(conn)
                        .await
                        .map_err(|e| match e {
                            // Linked at this very moment by someone else (there was no row
                            // to lock).
                            diesel::result::Error::DatabaseError(
                                diesel::result::DatabaseErrorKind::UniqueViolation,
                                _,
                            ) => refused(
                                provider,
                                SignInRefusal::LinkedElsewhere,
                                "linked at the same moment",
                            ),
                            other => other.into(),
                        })?;
                    let username: String = users::table
                        .find(user_id)
                        .select(users::username)
                        .first(conn)
                        .await?;
                    crate::sites::audit(conn, by, "user.link", &username, &provider.id).await?;
                }
            }
            diesel::delete(pending_identities::table.find((issuer, subject)))
                .execute(conn)
                .await?;
            Ok(())
        })
        .await?;
        tracing::info!(by = %by.username, user_id, provider = %provider.id, "identity linked");
        Ok(())
    }

    /// The providers' people waiting to be linked (admins only), the latest first.
    pub async fn pending_identities(&self, actor: Option<&Actor>) -> Result<Vec<PendingIdentity>> {
        authorize(actor, Permission::ManageUsers, Access::Read)?;
        let mut conn = self.conn().await?;
        Ok(pending_identities::table
            .order(pending_identities::seen_at.desc())
            .select(PendingIdentity::as_select())
            .load(&mut conn)
            .await?)
    }

    /// Links a waiting person to the account with their email address (admins only), which
    /// must be `user_id`, the one the admin saw: a person who signed in again since with
    /// another address waits for another account, and the admin is told to look again.
    pub async fn link_pending(
        &self,
        actor: Option<&Actor>,
        issuer: &str,
        subject: &str,
        user_id: i64,
    ) -> Result<()> {
        let actor = authorize(actor, Permission::ManageUsers, Access::Credentials)?;
        let pending = self.pending(issuer, subject).await?;
        if pending.user_id != user_id {
            return Err(Error::Conflict(
                "This person signed in again since, with another account's address: look again.".to_owned(),
            ));
        }
        let provider = self.oidc_provider(&pending.provider)?;
        let link = Link {
            user_id,
            provider,
            issuer,
            subject,
        };
        self.link(actor, link).await
    }

    /// Forgets a waiting person (admins only): they are refused again at their next sign-in.
    pub async fn dismiss_pending(&self, actor: Option<&Actor>, issuer: &str, subject: &str) -> Result<()> {
        let actor = authorize(actor, Permission::ManageUsers, Access::Write)?;
        let pending = self.pending(issuer, subject).await?;
        let mut conn = self.conn().await?;
        diesel::delete(pending_identities::table.find((issuer, subject)))
            .execute(&mut conn)
            .await?;
        tracing::info!(by = %actor.username, provider = %pending.provider, "a waiting identity dismissed");
        Ok(())
    }

    async fn pending(&self, issuer: &str, subject: &str) -> Result<PendingIdentity> {
        let mut conn = self.conn().await?;
        pending_identities::table
            .find((issuer, subject))
            .select(PendingIdentity::as_select())
            .first(&mut conn)
            .await
            .optional()?
            .ok_or(Error::NotFound("waiting identity"))
    }

    /// The configured provider of `issuer`, if one is.
    fn provider_of(&self, issuer: &str) -> Option<&OidcProvider> {
        self.settings()
            .oidc
            .iter()
            .find(|p| p.issuer.trim_end_matches('/') == issuer.trim_end_matches('/'))
    }

    /// The providers' people linked to the actor's account.
    pub async fn my_identities(&self, actor: Option<&Actor>) -> Result<Vec<LinkedIdentity>> {
        let actor = authorize(actor, Permission::UseManager, Access::Read)?;
        let mut conn = self.conn().await?;
        let rows: Vec<(String, String, DateTime<Utc>)> = user_identities::table
            .filter(user_identities::user_id.eq(actor.user_id))
            .order(user_identities::created_at)
            .select((
                user_identities::issuer,
                user_identities::subject,
                user_identities::created_at,
            ))
            .load(&mut conn)
            .await?;
        Ok(rows
            .into_iter()
            .map(|(issuer, subject, since)| LinkedIdentity {
                provider: self.provider_of(&issuer).map(|p| p.id.clone()),
                issuer,
                subject,
                since,
            })
            .collect())
    }

    /// Unlinks a provider's person from the actor's account, unless that would leave the
    /// account no way in (no other link, and no password its owner knows or passwords off).
    pub async fn unlink_identity(&self, actor: Option<&Actor>, issuer: &str, subject: &str) -> Result<()> {
        let actor = authorize(actor, Permission::UseManager, Access::Credentials)?;
        let passwords_on = self.settings().local_login == LocalLogin::On;
        let mut conn = self.conn().await?;
        conn.transaction::<_, Error, _>(async |conn| {
            let password_set: bool = users::table
                .find(actor.user_id)
                .select(users::password_set)
                .for_update()
                .first(conn)
                .await?;
            // What is left once this link is gone: links to a configured provider only are
            // ways in.
            let links: Vec<(String, String)> = user_identities::table
                .filter(user_identities::user_id.eq(actor.user_id))
                .select((user_identities::issuer, user_identities::subject))
                .load(conn)
                .await?;
            if !links.iter().any(|(i, s)| i == issuer && s == subject) {
                return Err(Error::NotFound("linked identity"));
            }
            let ways_left = links
                .iter()
                .filter(|(i, s)| !(i == issuer && s == subject) && self.provider_of(i).is_some())
                .count();
            if ways_left == 0 && !(password_set && passwords_on) {
                return Err(Error::Conflict(
                    "This is your only way to sign in: set a password first, or link another provider."
                        .to_owned(),
                ));
            }
            diesel::delete(user_identities::table.find((issuer, subject)))
                .execute(conn)
                .await?;
            // The sessions its sign-ins made end with it: a link made by mistake (or by someone
            // else) leaves nobody signed in through it.
            if let Some(provider) = self.provider_of(issuer) {
                diesel::delete(
                    sessions::table
                        .filter(sessions::user_id.eq(actor.user_id))
                        .filter(sessions::provider.eq(&provider.id)),
                )
                .execute(conn)
                .await?;
            }
            crate::sites::audit(conn, actor, "user.unlink", &actor.username, issuer).await?;
            Ok(())
        })
        .await?;
        Ok(())
    }
}

diesel::define_sql_function!(fn lower(text: diesel::sql_types::Text) -> diesel::sql_types::Text);

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

    /// ID tokens as a provider would sign them, with the test's keys and claims.
    mod tokens {
        use openidconnect::{
            Audience, IdTokenClaims, IdTokenVerifier, IssuerUrl, JsonWebKeyId, PrivateSigningKey as _,
            StandardClaims, SubjectIdentifier,
            core::{CoreJsonWebKeySet, CoreJwsSigningAlgorithm, CoreRsaPrivateSigningKey},
        };

        use super::super::*;

        pub const ISSUER: &str = "https://id.example.org";
        pub const CLIENT: &str = "director";

        fn key(pem: &str) -> CoreRsaPrivateSigningKey {
            CoreRsaPrivateSigningKey::from_pem(pem, Some(JsonWebKeyId::new("provider-key".to_owned())))
                .unwrap()
        }

        pub fn provider_key() -> CoreRsaPrivateSigningKey {
            key(include_str!("../tests/keys/provider.pem"))
        }

        pub fn impostor_key() -> CoreRsaPrivateSigningKey {
            key(include_str!("../tests/keys/impostor.pem"))
        }

        /// What a token says.
        pub struct Says<'a> {
            pub issuer: &'a str,
            pub audience: &'a str,
            pub expires: DateTime<Utc>,
            pub nonce: &'a str,
        }

        impl Default for Says<'_> {
            fn default() -> Self {
                Self {
                    issuer: ISSUER,
                    audience: CLIENT,
                    expires: Utc::now() + chrono::Duration::minutes(5),
                    nonce: "the nonce",
                }
            }
        }

        /// A token saying `says`, signed by `key`, for subject `alice-sub` in groups `staff`.
        pub fn signed(key: &CoreRsaPrivateSigningKey, says: Says<'_>) -> IdToken {
            let groups: GroupClaims = serde_json::from_str(r#"{"groups": ["staff"]}"#).unwrap();
            let claims = IdTokenClaims::new(
                IssuerUrl::new(says.issuer.to_owned()).unwrap(),
                vec![Audience::new(says.audience.to_owned())],
                says.expires,
                Utc::now() - chrono::Duration::minutes(1),
                StandardClaims::new(SubjectIdentifier::new("alice-sub".to_owned())),
                groups,
            )
            .set_nonce(Some(Nonce::new(says.nonce.to_owned())));
            IdToken::new(
                claims,
                key,
                CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
                None,
                None,
            )
            .unwrap()
        }

        /// The verifier of a client of the provider whose published key is `provider_key`'s.
        pub fn verifier() -> IdTokenVerifier<'static, CoreJsonWebKey> {
            let keys = CoreJsonWebKeySet::new(vec![provider_key().as_verification_key()]);
            IdTokenVerifier::new_confidential_client(
                ClientId::new(CLIENT.to_owned()),
                ClientSecret::new("secret".to_owned()),
                IssuerUrl::new(ISSUER.to_owned()).unwrap(),
                keys,
            )
        }
    }

    fn provider() -> OidcProvider {
        OidcProvider {
            id: "test".to_owned(),
            name: "Test".to_owned(),
            issuer: tokens::ISSUER.to_owned(),
            client_id: tokens::CLIENT.to_owned(),
            client_secret: "secret".to_owned(),
            scopes: Vec::new(),
            registration: Registration::Open,
            role_claim: "groups".to_owned(),
            admin_groups: vec!["admins".to_owned()],
            approver_groups: vec!["staff".to_owned()],
            ca_bundle: None,
        }
    }

    fn refusal(result: Result<Identity>) -> SignInRefusal {
        match result {
            Err(Error::SignInRefused(why)) => why,
            other => panic!("not refused: {other:?}"),
        }
    }

    #[test]
    fn an_id_token_is_taken_only_when_signed_by_the_provider_for_this_client_in_time_with_the_nonce() {
        use tokens::{Says, impostor_key, provider_key, signed, verifier};
        let provider = provider();
        let check = |token: &IdToken, nonce: &str| check_id_token(&provider, &verifier(), token, nonce);

        let good = signed(&provider_key(), Says::default());
        let identity = check(&good, "the nonce").unwrap();
        assert_eq!(identity.subject, "alice-sub");
        assert_eq!(identity.groups.as_deref(), Some(&["staff".to_owned()][..]));
        assert_eq!(
            provider.role_of(identity.groups.as_deref().unwrap()),
            Some(Role::Approver)
        );

        // Another key's signature (someone who is not the provider).
        assert_eq!(
            refusal(check(&signed(&impostor_key(), Says::default()), "the nonce")),
            SignInRefusal::BadToken
        );
        // Another issuer.
        let other_issuer = Says {
            issuer: "https://evil.example.org",
            ..Says::default()
        };
        assert_eq!(
            refusal(check(&signed(&provider_key(), other_issuer), "the nonce")),
            SignInRefusal::BadToken
        );
        // A token for another client of the same provider.
        let other_client = Says {
            audience: "another-app",
            ..Says::default()
        };
        assert_eq!(
            refusal(check(&signed(&provider_key(), other_client), "the nonce")),
            SignInRefusal::BadToken
        );
        // Expired beyond the clock skew allowed; within it, taken.
        let expired = Says {
            expires: Utc::now() - chrono::Duration::minutes(2),
            ..Says::default()
        };
        assert_eq!(
            refusal(check(&signed(&provider_key(), expired), "the nonce")),
            SignInRefusal::BadToken
        );
        let just = Says {
            expires: Utc::now() - chrono::Duration::seconds(30),
            ..Says::default()
        };
        assert!(check(&signed(&provider_key(), just), "the nonce").is_ok());
        // Another sign-in's nonce (a token replayed into this one).
        assert_eq!(refusal(check(&good, "another nonce")), SignInRefusal::BadToken);
    }

    #[test]
    fn groups_map_to_the_highest_role_and_no_mapping_changes_nobody() {
        let provider = provider();
        let groups = |names: &[&str]| names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>();
        assert_eq!(provider.role_of(&groups(&["staff", "admins"])), Some(Role::Admin));
        assert_eq!(provider.role_of(&groups(&["staff"])), Some(Role::Approver));
        assert_eq!(provider.role_of(&groups(&["pupils"])), Some(Role::User));
        let unmapped = OidcProvider {
            admin_groups: Vec::new(),
            approver_groups: Vec::new(),
            ..provider
        };
        assert_eq!(unmapped.role_of(&groups(&["admins"])), None);
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
