//! Server functions: the browser's calls into the platform. Each body is thin — who is asking,
//! then one platform call, whose permission check decides — and has a fixed URL under `/fn/` so
//! that server and client never disagree about where it lives.

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

use crate::AppError;
#[cfg(feature = "ssr")]
use crate::ssr::{actor, client_info, platform, session_token, set_session_cookie, to_app_error};

/// The signed-in user, as the pages show them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Me {
    /// Login name.
    pub username: String,
    /// Shown name.
    pub display_name: String,
    /// Whether the admin pages are open to them.
    pub is_admin: bool,
}

/// A row of the admin users page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRow {
    /// The user's id.
    pub id: i64,
    /// Login name.
    pub username: String,
    /// Shown name.
    pub display_name: String,
    /// E-mail, possibly empty.
    pub email: String,
    /// Admin or not.
    pub is_admin: bool,
    /// May sign in.
    pub active: bool,
    /// Creation date, `YYYY-MM-DD`.
    pub created: String,
}

/// Only same-site paths are followed after sign-in, so `?next=` cannot bounce a user elsewhere.
#[cfg_attr(not(feature = "ssr"), allow(dead_code))]
fn safe_next(next: Option<String>) -> String {
    match next {
        Some(path) if path.starts_with('/') && !path.starts_with("//") && !path.contains('\\') => path,
        _ => "/".to_owned(),
    }
}

/// The signed-in user, or None.
#[server(prefix = "/fn", endpoint = "current_user")]
pub async fn current_user() -> Result<Option<Me>, AppError> {
    Ok(actor().await?.map(|a| Me {
        is_admin: a.is_admin(),
        username: a.username,
        display_name: a.display_name,
    }))
}

/// Signs in and goes to `next` (a same-site path) or the dashboard.
#[server(prefix = "/fn", endpoint = "login")]
pub async fn login(username: String, password: String, next: Option<String>) -> Result<(), AppError> {
    let platform = platform();
    let (_, session) = platform
        .login(&username, &password, &client_info())
        .await
        .map_err(to_app_error)?;
    set_session_cookie(&session.token, platform.settings().session_ttl.as_secs() as i64);
    leptos_axum::redirect(&safe_next(next));
    Ok(())
}

/// Ends this session and goes to the sign-in page.
#[server(prefix = "/fn", endpoint = "logout")]
pub async fn logout() -> Result<(), AppError> {
    if let Some(token) = session_token() {
        platform().logout(&token).await.map_err(to_app_error)?;
    }
    set_session_cookie("", 0);
    leptos_axum::redirect("/login");
    Ok(())
}

/// Changes the signed-in user's password; their other sessions end.
#[server(prefix = "/fn", endpoint = "change_password")]
pub async fn change_password(current: String, new: String, confirm: String) -> Result<(), AppError> {
    let actor = actor().await?;
    let keep = session_token().unwrap_or_default();
    platform()
        .change_password(actor.as_ref(), &current, &new, &confirm, &keep)
        .await
        .map_err(to_app_error)
}

/// Every account (admins only).
#[server(prefix = "/fn", endpoint = "list_users")]
pub async fn list_users() -> Result<Vec<UserRow>, AppError> {
    let actor = actor().await?;
    let users = platform()
        .list_users(actor.as_ref())
        .await
        .map_err(to_app_error)?;
    Ok(users
        .into_iter()
        .map(|u| UserRow {
            id: u.id,
            is_admin: u.role == platform::Role::Admin,
            username: u.username,
            display_name: u.display_name,
            email: u.email,
            active: u.active,
            created: u.created_at.format("%Y-%m-%d").to_string(),
        })
        .collect())
}

/// Creates an account (admins only); `admin` is a checkbox, present when ticked.
#[server(prefix = "/fn", endpoint = "create_user")]
pub async fn create_user(
    username: String,
    display_name: String,
    email: String,
    password: String,
    admin: Option<String>,
) -> Result<String, AppError> {
    let actor = actor().await?;
    let role = if admin.is_some() {
        platform::Role::Admin
    } else {
        platform::Role::User
    };
    let new = platform::NewUser {
        username,
        display_name,
        email,
        password,
        role,
    };
    let user = platform()
        .create_user(actor.as_ref(), new)
        .await
        .map_err(to_app_error)?;
    Ok(user.username)
}

/// Activates or deactivates an account (admins only).
#[server(prefix = "/fn", endpoint = "set_user_active")]
pub async fn set_user_active(id: i64, active: bool) -> Result<(), AppError> {
    let actor = actor().await?;
    platform()
        .set_user_active(actor.as_ref(), id, active)
        .await
        .map_err(to_app_error)?;
    Ok(())
}

/// Promotes or demotes an account (admins only).
#[server(prefix = "/fn", endpoint = "set_user_admin")]
pub async fn set_user_admin(id: i64, admin: bool) -> Result<(), AppError> {
    let actor = actor().await?;
    let role = if admin {
        platform::Role::Admin
    } else {
        platform::Role::User
    };
    platform()
        .set_user_role(actor.as_ref(), id, role)
        .await
        .map_err(to_app_error)?;
    Ok(())
}

/// Whether a setup link is still good (the first admin has not been created).
#[server(prefix = "/fn", endpoint = "setup_link_valid")]
pub async fn setup_link_valid(token: String) -> Result<bool, AppError> {
    platform().setup_token_valid(&token).await.map_err(to_app_error)
}

/// Creates the first admin through the setup link and signs them in.
#[server(prefix = "/fn", endpoint = "complete_setup")]
pub async fn complete_setup(
    token: String,
    username: String,
    display_name: String,
    password: String,
    confirm: String,
) -> Result<(), AppError> {
    if password != confirm {
        return Err(AppError::Invalid {
            field: "confirm".to_owned(),
            message: "The two passwords differ.".to_owned(),
        });
    }
    let platform = platform();
    let new = platform::NewUser {
        username,
        display_name,
        email: String::new(),
        password,
        role: platform::Role::Admin,
    };
    let (_, session) = platform
        .complete_setup(&token, new, &client_info())
        .await
        .map_err(to_app_error)?;
    set_session_cookie(&session.token, platform.settings().session_ttl.as_secs() as i64);
    leptos_axum::redirect("/");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::safe_next;

    #[test]
    fn next_only_follows_same_site_paths() {
        assert_eq!(safe_next(Some("/admin/users".into())), "/admin/users");
        for bad in [
            "",
            "https://evil.example",
            "//evil.example",
            "/\\evil.example",
            "admin",
        ] {
            assert_eq!(safe_next(Some(bad.into())), "/", "{bad:?}");
        }
        assert_eq!(safe_next(None), "/");
    }
}
