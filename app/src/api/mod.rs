//! Server functions: the browser's calls into the platform. Each body is thin — who is asking,
//! then one platform call, whose permission check decides — and has a fixed URL under `/fn/` so
//! that server and client never disagree about where it lives.

use leptos::prelude::*;
pub use model::{
    certificate::CertificateState,
    domain::Proof,
    operation::{Action, ActionState, OperationKind, OperationState},
    site::{Availability, Purpose, SiteKind, SiteState},
};
use serde::{Deserialize, Serialize};

mod admin;
mod certificates;
mod databases;
mod domains;
mod files;
mod identities;
mod images;
mod keys;
mod members;
mod notifications;
mod requests;
mod tokens;

pub use admin::*;
pub use certificates::*;
pub use databases::*;
pub use domains::*;
pub use files::*;
pub use identities::*;
pub use images::*;
pub use keys::*;
pub use members::*;
pub use notifications::*;
pub use requests::*;
pub use tokens::*;

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
    /// Their role.
    pub role: model::account::Role,
    /// How members get sites here.
    pub site_creation: SiteCreation,
    /// How many of their notifications are unread (the bell's number).
    pub unread: i64,
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
    /// Their role.
    pub role: model::account::Role,
    /// May sign in.
    pub active: bool,
    /// Creation date, `YYYY-MM-DD`.
    pub created: String,
    /// The most sites they may belong to, when an admin set it; None: the server's default.
    pub site_quota: Option<i32>,
}

/// Only same-site paths are followed after sign-in, so `?next=` cannot bounce a user elsewhere.
/// `next` is parsed as a browser would parse it against this site (tabs and newlines dropped,
/// backslashes taken for slashes, `//host` taken for another host), and kept only when it
/// stays on this site; what is returned is the parsed path, query and fragment, serialized
/// (so nothing in it can break a header).
#[cfg(feature = "ssr")]
pub fn safe_next(next: Option<String>) -> String {
    const HERE: &str = "http://director.invalid/";
    let base = url::Url::parse(HERE).expect("a valid base");
    let parsed = next
        .filter(|path| path.starts_with('/'))
        .and_then(|path| base.join(&path).ok())
        .filter(|url| url.origin() == base.origin());
    // A path that parses to `//…` (from `/.//host`, `/..//host`) would be followed by the
    // browser as another host's address.
    match parsed.map(|url| url.as_str()[HERE.len() - 1..].to_owned()) {
        Some(path) if !path.starts_with("//") => path,
        _ => "/".to_owned(),
    }
}

/// An identity provider people may sign in with, as the sign-in page offers it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignInProvider {
    /// Its id in the sign-in URL.
    pub id: String,
    /// "Sign in with <name>".
    pub name: String,
}

/// How people may sign in here.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignInChoices {
    /// The identity providers offered.
    pub providers: Vec<SignInProvider>,
    /// Whether the password form is.
    pub passwords: bool,
}

/// How the sign-in page offers to sign in.
#[server(prefix = "/fn", endpoint = "sign_in_options")]
pub async fn sign_in_options() -> Result<SignInChoices, AppError> {
    let platform = platform();
    let settings = platform.settings();
    Ok(SignInChoices {
        providers: settings
            .oidc
            .iter()
            .map(|p| SignInProvider {
                id: p.id.clone(),
                name: p.name.clone(),
            })
            .collect(),
        passwords: settings.local_login == platform::oidc::LocalLogin::On,
    })
}

/// The signed-in user, or None.
#[server(prefix = "/fn", endpoint = "current_user")]
pub async fn current_user() -> Result<Option<Me>, AppError> {
    let Some(a) = actor().await? else {
        return Ok(None);
    };
    let platform = platform();
    let policy = platform.site_policy(Some(&a)).await.map_err(to_app_error)?;
    let unread = platform
        .unread_notifications(Some(&a))
        .await
        .map_err(to_app_error)?;
    Ok(Some(Me {
        is_admin: a.is_admin(),
        role: a.role,
        site_creation: policy.creation,
        unread,
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

/// Ends this session and goes to the sign-in page, which offers to sign out of the identity
/// provider too when the session was its sign-in's.
#[server(prefix = "/fn", endpoint = "logout")]
pub async fn logout() -> Result<(), AppError> {
    let platform = platform();
    let mut provider = None;
    if let Some(token) = session_token().await? {
        provider = platform.logout(&token).await.map_err(to_app_error)?;
    }
    set_session_cookie("", 0);
    match provider.filter(|id| platform.oidc_provider(id).is_ok()) {
        Some(id) => leptos_axum::redirect(&format!("/login?signed_out={}", url_encode(&id))),
        None => leptos_axum::redirect("/login"),
    }
    Ok(())
}

/// Changes the signed-in user's password; their other sessions end.
#[server(prefix = "/fn", endpoint = "change_password")]
pub async fn change_password(current: String, new: String, confirm: String) -> Result<(), AppError> {
    let platform = platform();
    let actor = actor().await?;
    let keep = session_token().await?.unwrap_or_default();
    platform
        .change_password(actor.as_ref(), &current, &new, &confirm, &keep)
        .await
        .map_err(to_app_error)
}

/// Every account (admins only).
#[server(prefix = "/fn", endpoint = "list_users")]
pub async fn list_users() -> Result<Vec<UserRow>, AppError> {
    let platform = platform();
    let actor = actor().await?;
    let users = platform.list_users(actor.as_ref()).await.map_err(to_app_error)?;
    Ok(users
        .into_iter()
        .map(|u| UserRow {
            id: u.id,
            role: u.role,
            username: u.username,
            display_name: u.display_name,
            email: u.email,
            active: u.active,
            created: u.created_at.format("%Y-%m-%d").to_string(),
            site_quota: u.site_quota,
        })
        .collect())
}

/// Creates an account (admins only).
#[server(prefix = "/fn", endpoint = "create_user")]
pub async fn create_user(
    username: String,
    display_name: String,
    email: String,
    password: String,
    role: model::account::Role,
) -> Result<String, AppError> {
    let platform = platform();
    let actor = actor().await?;
    let new = platform::NewUser {
        username,
        display_name,
        email,
        password,
        role,
    };
    let user = platform
        .create_user(actor.as_ref(), new)
        .await
        .map_err(to_app_error)?;
    Ok(user.username)
}

/// Activates or deactivates an account (admins only).
#[server(prefix = "/fn", endpoint = "set_user_active")]
pub async fn set_user_active(id: i64, active: bool) -> Result<(), AppError> {
    let platform = platform();
    let actor = actor().await?;
    platform
        .set_user_active(actor.as_ref(), id, active)
        .await
        .map_err(to_app_error)?;
    Ok(())
}

/// Sets the most sites an account may belong to (admins only); an empty `quota` gives it the
/// server's default again.
#[server(prefix = "/fn", endpoint = "set_site_quota")]
pub async fn set_site_quota(id: i64, quota: String) -> Result<(), AppError> {
    let platform = platform();
    let actor = actor().await?;
    let quota = match quota.trim() {
        "" => None,
        given => Some(given.parse::<i32>().map_err(|_| AppError::Invalid {
            field: "quota".to_owned(),
            message: "A quota is a number of sites, or empty for the default.".to_owned(),
        })?),
    };
    platform
        .set_site_quota(actor.as_ref(), id, quota)
        .await
        .map_err(to_app_error)?;
    Ok(())
}

/// The server's default quota of sites per member, for the admin users page.
#[server(prefix = "/fn", endpoint = "default_site_quota")]
pub async fn default_site_quota() -> Result<i64, AppError> {
    let platform = platform();
    let actor = actor().await?;
    platform::authorize(
        actor.as_ref(),
        platform::Permission::ManageUsers,
        platform::Access::Read,
    )
    .map_err(to_app_error)?;
    Ok(platform.settings().sites_per_user)
}

/// Gives an account a role (admins only).
#[server(prefix = "/fn", endpoint = "set_user_role")]
pub async fn set_user_role(id: i64, role: model::account::Role) -> Result<(), AppError> {
    let platform = platform();
    let actor = actor().await?;
    platform
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

#[cfg(all(test, feature = "ssr"))]
mod tests {
    use super::safe_next;

    #[test]
    fn next_only_follows_same_site_paths() {
        assert_eq!(safe_next(Some("/admin/users".into())), "/admin/users");
        assert_eq!(
            safe_next(Some("/sites/3?tab=files#x".into())),
            "/sites/3?tab=files#x"
        );
        for bad in [
            "",
            "https://evil.example",
            "//evil.example",
            "/\\evil.example",
            "admin",
            // Browsers drop tabs and newlines, and then follow `//evil.example`.
            "/\t/evil.example",
            "/\n/evil.example",
            "\t//evil.example",
            "/\\/evil.example",
            "/.//evil.example",
            "/..//evil.example",
            "/%2e//evil.example",
        ] {
            assert_eq!(safe_next(Some(bad.into())), "/", "{bad:?}");
        }
        // A newline inside a path (which broke the redirect's header) is dropped as browsers do.
        assert_eq!(safe_next(Some("/sites\n/1".into())), "/sites/1");
        assert_eq!(safe_next(Some("/a b".into())), "/a%20b");
        assert_eq!(safe_next(None), "/");
    }
}

/// A site as lists show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SiteCard {
    /// Its id.
    pub id: i32,
    /// Its name.
    pub name: String,
    /// Its description.
    pub description: String,
    /// Static or dynamic.
    pub kind: SiteKind,
    /// Where it is in its life.
    pub state: SiteState,
    /// Its address.
    pub url: String,
}

/// One action of an operation, as its progress shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActionView {
    /// What it does.
    pub action: Action,
    /// Where it is.
    pub state: ActionState,
    /// What it said.
    pub output: String,
}

/// An operation and its actions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OperationView {
    /// Its id.
    pub id: i64,
    /// What it does.
    pub kind: OperationKind,
    /// Where it is.
    pub state: OperationState,
    /// When it was queued.
    pub created: String,
    /// Its actions, in order.
    pub actions: Vec<ActionView>,
}

/// A site's page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SitePageData {
    /// The site.
    pub card: SiteCard,
    /// What it is for.
    pub purpose: Purpose,
    /// Its image's name.
    pub image: String,
    /// Whether it is served, and who decided.
    pub availability: Availability,
    /// CPU limit, thousandths of a core.
    pub cpu_millis: i32,
    /// Memory limit, MiB.
    pub memory_mb: i32,
    /// Request body limit, MiB.
    pub body_limit_mb: i32,
    /// Creation date.
    pub created: String,
    /// Its members: (user id, username).
    pub members: Vec<(i64, String)>,
    /// The newest lines of its output (dynamic sites).
    pub logs: Vec<LogLineView>,
    /// Its operations, newest first.
    pub operations: Vec<OperationView>,
    /// Its domains of its own.
    pub domains: Vec<DomainRow>,
    /// Its hosts' certificates (its own name first); empty when sites are served over HTTP.
    pub certificates: Vec<CertificateView>,
    /// What its files take of their disk quota, in words ("120 MiB of 2 GiB"); None until
    /// first measured.
    pub disk: Option<String>,
    /// Whether its files are over their quota (the file manager and SFTP write nothing more).
    pub disk_full: bool,
}

impl SitePageData {
    /// Whether something is under way: the site is being made or removed, or an operation is
    /// queued or running.
    pub fn busy(&self) -> bool {
        matches!(self.card.state, SiteState::Provisioning | SiteState::Deleting)
            || self.operations.iter().any(|op| op.state.under_way())
    }
}

/// An image a new site may use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageOption {
    /// Its catalogue name.
    pub name: String,
    /// What it offers.
    pub description: String,
    /// Whether static sites may use it.
    pub serves_static: bool,
    /// Whether dynamic sites may use it.
    pub serves_dynamic: bool,
}

#[cfg(feature = "ssr")]
pub(crate) fn card(platform: &platform::Platform, site: &platform::sites::Site) -> SiteCard {
    SiteCard {
        id: site.id,
        url: platform.url_of(site),
        name: site.name.clone(),
        description: site.description.clone(),
        kind: site.kind,
        state: site.state,
    }
}

/// The signed-in user's sites.
#[server(prefix = "/fn", endpoint = "my_sites")]
pub async fn my_sites() -> Result<Vec<SiteCard>, AppError> {
    let platform = platform();
    let actor = actor().await?;
    let sites = platform.my_sites(actor.as_ref()).await.map_err(to_app_error)?;
    Ok(sites.iter().map(|s| card(&platform, s)).collect())
}

/// The images a new site may use.
#[server(prefix = "/fn", endpoint = "site_images")]
pub async fn site_images() -> Result<Vec<ImageOption>, AppError> {
    let platform = platform();
    let actor = actor().await?;
    let images = platform.site_images(actor.as_ref()).await.map_err(to_app_error)?;
    Ok(images
        .into_iter()
        .map(|(name, description, serves_static, serves_dynamic)| ImageOption {
            name,
            description,
            serves_static,
            serves_dynamic,
        })
        .collect())
}

/// Why `name` would be refused for a new site, or None when it is free.
#[server(prefix = "/fn", endpoint = "check_site_name")]
pub async fn check_site_name(name: String) -> Result<Option<String>, AppError> {
    let platform = platform();
    let actor = actor().await?;
    match platform.check_site_name(actor.as_ref(), &name).await {
        Ok(_) => Ok(None),
        Err(platform::Error::Invalid { message, .. }) => Ok(Some(message)),
        Err(other) => Err(to_app_error(other)),
    }
}

/// Creates a site (a dynamic one with extra Debian `packages` in its image, when given) and
/// goes to its page, where its creation shows as it happens.
#[server(prefix = "/fn", endpoint = "create_site")]
pub async fn create_site(
    name: String,
    kind: String,
    image: String,
    purpose: String,
    description: String,
    packages: Option<String>,
) -> Result<i32, AppError> {
    let platform = platform();
    let actor = actor().await?;
    let new = platform::sites::NewSite {
        name,
        description,
        purpose,
        kind,
        image,
    };
    let created = match packages.filter(|p| !p.trim().is_empty()) {
        Some(apt) => {
            let recipe = platform::sites::RecipeInput {
                apt,
                ..Default::default()
            };
            platform
                .create_site_with_recipe(actor.as_ref(), new, &recipe)
                .await
        }
        None => platform.create_site(actor.as_ref(), new).await,
    };
    let (site, _) = created.map_err(to_app_error)?;
    leptos_axum::redirect(&format!("/sites/{}", site.id));
    Ok(site.id)
}

/// A site with its operations.
#[server(prefix = "/fn", endpoint = "site_detail")]
pub async fn site_detail(id: i32) -> Result<SitePageData, AppError> {
    // Context is read before the first await: it is not there after one.
    let platform = platform();
    let sites_domain = platform.settings().sites_domain.clone();
    let actor = actor().await?;
    let site = platform.site(actor.as_ref(), id).await.map_err(to_app_error)?;
    let served = site.availability == Availability::Enabled;
    let operations = platform
        .site_operations(actor.as_ref(), id)
        .await
        .map_err(to_app_error)?;
    let certificates = site_certificates(&platform, actor.as_ref(), &site).await?;
    let disk = platform
        .site_disk(actor.as_ref(), id)
        .await
        .map_err(to_app_error)?;
    Ok(SitePageData {
        disk: disk.bytes.map(|used| {
            format!(
                "{} of {}",
                model::human_bytes(used),
                model::human_bytes(disk.quota)
            )
        }),
        disk_full: disk.room() == Some(0),
        card: card(&platform, &site),
        purpose: site.purpose,
        image: site.image,
        availability: site.availability,
        cpu_millis: site.cpu_millis,
        memory_mb: site.memory_mb,
        body_limit_mb: site.body_limit_mb,
        created: site.created_at.format("%Y-%m-%d %H:%M").to_string(),
        members: platform
            .site_members(actor.as_ref(), id)
            .await
            .map_err(to_app_error)?,
        domains: {
            let target = format!("{}.{}", site.name, sites_domain);
            platform
                .site_domains(actor.as_ref(), id)
                .await
                .map_err(to_app_error)?
                .into_iter()
                .map(|d| domain_row(d, &target))
                .collect()
        },
        certificates,
        // The page shows the site without its output rather than not at all; a site taken
        // off the air has no task to read from (its page follows the output once hydrated).
        logs: if served {
            read_logs(&platform, actor.as_ref(), id).await.unwrap_or_default()
        } else {
            Vec::new()
        },
        operations: operations.into_iter().map(operation_view).collect(),
    })
}

/// An operation as its progress shows.
#[cfg(feature = "ssr")]
pub(crate) fn operation_view(op: platform::sites::OperationRecord) -> OperationView {
    OperationView {
        id: op.id,
        kind: op.kind,
        state: op.state,
        created: op.created_at.format("%Y-%m-%d %H:%M:%S").to_string(),
        actions: op
            .actions
            .into_iter()
            .map(|a| ActionView {
                action: a.action,
                state: a.state,
                output: a.output,
            })
            .collect(),
    }
}

/// Deletes a site (`confirm` repeats its name) and goes back to the dashboard.
#[server(prefix = "/fn", endpoint = "delete_site")]
pub async fn delete_site(id: i32, confirm: String) -> Result<(), AppError> {
    let platform = platform();
    let actor = actor().await?;
    platform
        .delete_site(actor.as_ref(), id, &confirm)
        .await
        .map_err(to_app_error)?;
    leptos_axum::redirect("/");
    Ok(())
}

/// Runs a failed operation again from its first unfinished action.
#[server(prefix = "/fn", endpoint = "retry_operation")]
pub async fn retry_operation(site: i32, operation: i64) -> Result<(), AppError> {
    let platform = platform();
    let actor = actor().await?;
    platform
        .retry_operation(actor.as_ref(), site, operation)
        .await
        .map_err(to_app_error)
}

/// Takes a site off the air (`served` false) or puts it back.
#[server(prefix = "/fn", endpoint = "set_served")]
pub async fn set_served(id: i32, served: bool) -> Result<(), AppError> {
    let platform = platform();
    let actor = actor().await?;
    platform
        .set_served(actor.as_ref(), id, served)
        .await
        .map_err(to_app_error)?;
    Ok(())
}

/// Restarts a dynamic site.
#[server(prefix = "/fn", endpoint = "restart_site")]
pub async fn restart_site(id: i32) -> Result<(), AppError> {
    let platform = platform();
    let actor = actor().await?;
    platform
        .restart_site(actor.as_ref(), id)
        .await
        .map_err(to_app_error)?;
    Ok(())
}
