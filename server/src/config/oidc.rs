//! `[[oidc]]`: the identity providers people may sign in with (any number in the file; one by
//! flags or environment variables, with the id `sso`).

use std::path::PathBuf;

use anyhow::{Context as _, bail};
use clap::{Args, ValueEnum};
use platform::oidc::{LocalLogin, OidcProvider, Registration};
use serde::Deserialize;

/// Whether people new to Director get an account at their first sign-in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum RegistrationFlag {
    /// They do.
    #[default]
    Open,
    /// They are told to ask an admin.
    Closed,
}

/// Whether people may sign in with Director's own passwords.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LocalLoginFlag {
    /// The password form is offered.
    On,
    /// Only the identity providers are.
    Off,
}

/// Flags of one provider, and of passwords.
#[derive(Debug, Args, Default)]
pub struct OidcFlags {
    /// Whether people may sign in with Director's own passwords (off: only through the
    /// identity providers; the setup link and `director user create` still let an admin in).
    #[arg(long, env = "DIRECTOR_LOCAL_LOGIN")]
    pub local_login: Option<LocalLoginFlag>,
    /// An identity provider's issuer URL (OpenID Connect discovery is read from it).
    #[arg(long, env = "DIRECTOR_OIDC_ISSUER")]
    pub oidc_issuer: Option<String>,
    /// Director's client id at the provider.
    #[arg(long, env = "DIRECTOR_OIDC_CLIENT_ID")]
    pub oidc_client_id: Option<String>,
    /// A file holding Director's client secret at the provider.
    #[arg(long, env = "DIRECTOR_OIDC_CLIENT_SECRET_FILE")]
    pub oidc_client_secret_file: Option<PathBuf>,
    /// The provider's name on the sign-in page ("Sign in with <name>").
    #[arg(long, env = "DIRECTOR_OIDC_NAME")]
    pub oidc_name: Option<String>,
    /// Scopes asked for besides `openid`, separated by commas (default: email,profile).
    #[arg(long, env = "DIRECTOR_OIDC_SCOPES", value_delimiter = ',')]
    pub oidc_scopes: Option<Vec<String>>,
    /// Whether people without an account get one at their first sign-in.
    #[arg(long, env = "DIRECTOR_OIDC_REGISTRATION")]
    pub oidc_registration: Option<RegistrationFlag>,
    /// The claim listing a person's groups (default: groups).
    #[arg(long, env = "DIRECTOR_OIDC_ROLE_CLAIM")]
    pub oidc_role_claim: Option<String>,
    /// Groups whose members are Director's admins, separated by commas; re-applied at each
    /// sign-in (empty: roles are set by hand).
    #[arg(long, env = "DIRECTOR_OIDC_ADMIN_GROUPS", value_delimiter = ',')]
    pub oidc_admin_groups: Option<Vec<String>>,
    /// Groups whose members are approvers (they review requests for sites), separated by
    /// commas; re-applied at each sign-in.
    #[arg(long, env = "DIRECTOR_OIDC_APPROVER_GROUPS", value_delimiter = ',')]
    pub oidc_approver_groups: Option<Vec<String>>,
    /// A PEM file of the private certificate authority the provider's HTTPS certificate is
    /// signed by (trusted for it besides the usual ones).
    #[arg(long, env = "DIRECTOR_OIDC_CA_FILE")]
    pub oidc_ca_file: Option<PathBuf>,
}

/// The environment variable that may hold the flags' provider's client secret instead of a
/// file (never a flag: a command line is visible to every user of the machine).
const SECRET_ENV: &str = "DIRECTOR_OIDC_CLIENT_SECRET";

/// One `[[oidc]]` table.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct OidcFile {
    id: String,
    name: Option<String>,
    issuer: String,
    client_id: String,
    client_secret_file: Option<PathBuf>,
    scopes: Option<Vec<String>>,
    registration: Option<RegistrationFlag>,
    role_claim: Option<String>,
    #[serde(default)]
    admin_groups: Vec<String>,
    #[serde(default)]
    approver_groups: Vec<String>,
    client_secret_env: Option<String>,
    ca_file: Option<PathBuf>,
}

/// Whether passwords are on: off only with a provider to sign in with instead.
pub(super) fn local_login(
    flags: &OidcFlags,
    file: Option<LocalLoginFlag>,
    providers: &[OidcProvider],
) -> anyhow::Result<LocalLogin> {
    match flags.local_login.or(file).unwrap_or(LocalLoginFlag::On) {
        LocalLoginFlag::On => Ok(LocalLogin::On),
        LocalLoginFlag::Off if providers.is_empty() => {
            bail!("--local-login off needs an identity provider to sign in with (--oidc-issuer or [[oidc]])")
        }
        LocalLoginFlag::Off => Ok(LocalLogin::Off),
    }
}

/// The providers: the file's, then the flags' one (id `sso`).
pub(super) fn resolve(flags: &OidcFlags, file: Vec<OidcFile>) -> anyhow::Result<Vec<OidcProvider>> {
    let mut tables = file;
    if let Some(issuer) = &flags.oidc_issuer {
        tables.push(OidcFile {
            id: "sso".to_owned(),
            name: flags.oidc_name.clone(),
            issuer: issuer.clone(),
            client_id: flags
                .oidc_client_id
                .clone()
                .context("--oidc-issuer needs --oidc-client-id")?,
            client_secret_file: flags.oidc_client_secret_file.clone(),
            scopes: flags.oidc_scopes.clone(),
            registration: flags.oidc_registration,
            role_claim: flags.oidc_role_claim.clone(),
            admin_groups: flags.oidc_admin_groups.clone().unwrap_or_default(),
            approver_groups: flags.oidc_approver_groups.clone().unwrap_or_default(),
            client_secret_env: flags
                .oidc_client_secret_file
                .is_none()
                .then(|| SECRET_ENV.to_owned()),
            ca_file: flags.oidc_ca_file.clone(),
        });
    }
    let mut providers: Vec<OidcProvider> = Vec::new();
    for table in tables {
        let id = table.id;
        if id.is_empty()
            || id.len() > 32
            || !id
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        {
            bail!("an identity provider's id is 1 to 32 lower-case letters, digits and '-': {id:?}");
        }
        if providers.iter().any(|p| p.id == id) {
            bail!("two identity providers have the id {id:?}");
        }
        let issuer = url::Url::parse(&table.issuer)
            .with_context(|| format!("identity provider {id}: the issuer is not a URL"))?;
        // Over plain HTTP anyone on the way could serve keys of their own and sign in as
        // anyone: only a provider on this very machine may be reached so.
        let loopback = match issuer.host() {
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            Some(url::Host::Domain(name)) => name == "localhost",
            None => false,
        };
        if issuer.scheme() != "https" && !(issuer.scheme() == "http" && loopback) {
            bail!("identity provider {id}: the issuer is an https:// URL (http:// only on this machine)");
        }
        let client_secret = client_secret(&id, table.client_secret_file, table.client_secret_env)?;
        let ca_bundle = match table.ca_file {
            Some(path) => {
                let pem = std::fs::read(&path)
                    .with_context(|| format!("identity provider {id}: reading {}", path.display()))?;
                // Refused now rather than at someone's sign-in.
                platform::oidc::check_ca_bundle(&pem)
                    .with_context(|| format!("identity provider {id}: {}", path.display()))?;
                Some(pem)
            }
            None => None,
        };
        providers.push(OidcProvider {
            name: table.name.unwrap_or_else(|| id.clone()),
            id,
            // Kept as written: discovery compares the issuer exactly.
            issuer: table.issuer,
            client_id: table.client_id,
            client_secret,
            scopes: table
                .scopes
                .unwrap_or_else(|| vec!["email".to_owned(), "profile".to_owned()]),
            registration: match table.registration.unwrap_or_default() {
                RegistrationFlag::Open => Registration::Open,
                RegistrationFlag::Closed => Registration::Closed,
            },
            role_claim: table.role_claim.unwrap_or_else(|| "groups".to_owned()),
            admin_groups: table.admin_groups,
            approver_groups: table.approver_groups,
            ca_bundle,
        });
    }
    Ok(providers)
}

/// A provider's client secret: from its file, or from the environment variable named.
fn client_secret(id: &str, file: Option<PathBuf>, env: Option<String>) -> anyhow::Result<String> {
    let secret = match (file, env) {
        (Some(file), _) => std::fs::read_to_string(&file)
            .with_context(|| format!("identity provider {id}: reading {}", file.display()))?,
        (None, Some(name)) => std::env::var(&name).with_context(|| {
            format!("identity provider {id}: its client secret is read from a file (client_secret_file) or from the environment variable {name}, which is not set")
        })?,
        (None, None) => {
            bail!("identity provider {id}: its client secret is read from a file (client_secret_file) or an environment variable (client_secret_env)")
        }
    };
    let secret = secret.trim().to_owned();
    if secret.is_empty() {
        bail!("identity provider {id}: its client secret is empty");
    }
    Ok(secret)
}
