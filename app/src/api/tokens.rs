//! Personal access tokens for the REST API: one's own on the account page, everyone's for
//! admins.

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

use crate::AppError;
#[cfg(feature = "ssr")]
use crate::ssr::{actor, platform, to_app_error};

/// A token as the pages list it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRow {
    /// Its id.
    pub id: i64,
    /// Whose it is.
    pub username: String,
    /// What it is for.
    pub name: String,
    /// Its first characters.
    pub hint: String,
    /// "read", "read, write", with ", admin" when it carries an admin's powers.
    pub scopes: String,
    /// The sites it is limited to, by name (empty: all the owner's).
    pub sites: Vec<String>,
    /// When it stops working (a date).
    pub expires: String,
    /// When it was last used (to the minute) and from where, if ever.
    pub last_used: Option<String>,
    /// Whether it still works (not revoked, not expired).
    pub live: bool,
    /// "revoked", "expired" or "" while it works.
    pub ended: String,
}

/// Tokens, and what the form to make one needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokensPage {
    /// The tokens, newest first.
    pub tokens: Vec<TokenRow>,
    /// Whether the viewer may give a token an admin's powers.
    pub admin: bool,
    /// The names of the sites the viewer belongs to (a token may be limited to some).
    pub sites: Vec<String>,
}

/// A token just made: the secret, shown this once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewTokenShown {
    /// What it is for.
    pub name: String,
    /// The token itself.
    pub secret: String,
}

#[cfg(feature = "ssr")]
fn row(token: platform::api_tokens::TokenRecord) -> TokenRow {
    let now = chrono::Utc::now();
    let ended = if token.revoked_at.is_some() {
        "revoked"
    } else if token.expires_at <= now {
        "expired"
    } else {
        ""
    };
    let mut scopes = match token.access {
        model::token::TokenAccess::Read => "read".to_owned(),
        model::token::TokenAccess::Write => "read, write".to_owned(),
    };
    if token.admin {
        scopes.push_str(", admin");
    }
    TokenRow {
        id: token.id,
        username: token.username,
        name: token.name,
        hint: token.hint,
        scopes,
        sites: token
            .sites
            .unwrap_or_default()
            .into_iter()
            .map(|(_, name)| name)
            .collect(),
        expires: token.expires_at.format("%Y-%m-%d").to_string(),
        last_used: token
            .last_used
            .map(|(at, ip)| format!("{} from {ip}", at.format("%Y-%m-%d %H:%M"))),
        live: ended.is_empty(),
        ended: ended.to_owned(),
    }
}

/// One's own tokens, or — `everyone`, for admins — every account's.
#[server(prefix = "/fn", endpoint = "api_tokens")]
pub async fn api_tokens(everyone: bool) -> Result<TokensPage, AppError> {
    let platform = platform();
    let actor = actor().await?;
    let tokens = if everyone {
        platform.all_tokens(actor.as_ref()).await
    } else {
        platform.my_tokens(actor.as_ref()).await
    }
    .map_err(to_app_error)?;
    let sites = platform
        .my_sites(actor.as_ref())
        .await
        .map_err(to_app_error)?
        .into_iter()
        .map(|site| site.name)
        .collect();
    Ok(TokensPage {
        tokens: tokens.into_iter().map(row).collect(),
        admin: actor.as_ref().is_some_and(platform::Actor::is_admin),
        sites,
    })
}

/// Makes a token: `access` is `read` or `write`; `admin` (a checkbox) gives it the maker's
/// admin powers; `sites`, names separated by commas or spaces, limits it to those sites.
#[server(prefix = "/fn", endpoint = "create_api_token")]
pub async fn create_api_token(
    name: String,
    days: String,
    access: String,
    admin: Option<String>,
    sites: String,
) -> Result<NewTokenShown, AppError> {
    let platform = platform();
    let actor = actor().await?;
    let invalid = |field: &str, message: &str| AppError::Invalid {
        field: field.to_owned(),
        message: message.to_owned(),
    };
    let days = match days.trim() {
        "" => None,
        given => Some(
            given
                .parse::<u32>()
                .map_err(|_| invalid("days", "A number of days, from 1 to 365."))?,
        ),
    };
    let access = access
        .parse::<model::token::TokenAccess>()
        .map_err(|_| invalid("access", "Choose read, or read and write."))?;
    let names: Vec<&str> = sites
        .split([',', ' ', '\n'])
        .map(str::trim)
        .filter(|name| !name.is_empty())
        .collect();
    let sites = if names.is_empty() {
        None
    } else {
        let mut ids = Vec::new();
        for name in names {
            let site = platform
                .site_by_name(actor.as_ref(), name)
                .await
                .map_err(|_| invalid("sites", &format!("You belong to no site called {name}.")))?;
            ids.push(site.id);
        }
        Some(ids)
    };
    let issued = platform
        .create_token(
            actor.as_ref(),
            platform::api_tokens::NewToken {
                name,
                days,
                access,
                admin: admin.is_some(),
                sites,
            },
        )
        .await
        .map_err(to_app_error)?;
    Ok(NewTokenShown {
        name: issued.record.name,
        secret: issued.secret,
    })
}

/// Revokes a token (one's own, or anyone's for an admin).
#[server(prefix = "/fn", endpoint = "revoke_api_token")]
pub async fn revoke_api_token(id: i64) -> Result<(), AppError> {
    let platform = platform();
    let actor = actor().await?;
    platform
        .revoke_token(actor.as_ref(), id)
        .await
        .map_err(to_app_error)
}
