//! What admins do: every site, limits, disabling, fixing, the image catalogue, the audit log.
//! The platform refuses everyone else; these functions only name the actor.

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

use crate::{
    AppError,
    api::{Availability, SiteCard},
};
#[cfg(feature = "ssr")]
use crate::{
    api::card,
    ssr::{actor, platform, to_app_error},
};

/// A row of the admin's site list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminSiteRow {
    /// The site.
    pub card: SiteCard,
    /// Whether it is served, and who decided.
    pub availability: Availability,
    /// Its members' usernames.
    pub members: Vec<String>,
    /// Why the reconciler could not correct it at its last pass; empty when it could.
    pub problem: String,
}

/// A page of the admin's site list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SitesPage {
    /// The sites on this page.
    pub sites: Vec<AdminSiteRow>,
    /// How many sites match, in all.
    pub total: i64,
    /// This page (from 0).
    pub page: i64,
    /// Sites per page.
    pub per_page: i64,
}

/// A catalogue image's latest build from a Dockerfile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatalogueBuildRow {
    /// The image it builds.
    pub image_id: i64,
    /// Its number for the image.
    pub number: i32,
    /// Where it is.
    pub state: model::build::BuildState,
    /// The Dockerfile it builds.
    pub dockerfile: String,
    /// Why it failed.
    pub error: String,
    /// Its output as kept so far.
    pub log: String,
}

/// An image of the catalogue, as the admin edits it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageRow {
    /// Its id.
    pub id: i64,
    /// Its name.
    pub name: String,
    /// What it offers.
    pub description: String,
    /// Its Docker reference.
    pub reference: String,
    /// For static sites.
    pub serves_static: bool,
    /// For dynamic sites.
    pub serves_dynamic: bool,
    /// The run.sh new sites start with.
    pub run_sh: String,
    /// Offered to new sites.
    pub enabled: bool,
    /// Sites on it may have a recipe.
    pub allows_recipe: bool,
    /// It has pip.
    pub has_pip: bool,
    /// It has npm.
    pub has_npm: bool,
    /// Sites on it may build their own Dockerfile.
    pub allows_dockerfile: bool,
    /// How many sites use it.
    pub sites: i64,
    /// Where it stands on the engine.
    pub on_engine: OnEngine,
}

/// Where a catalogue image stands on the engine, as admins see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum OnEngine {
    /// The engine has it.
    Ready,
    /// Director is making it; the latest step.
    Making(String),
    /// Making it failed; why.
    Failed(String),
    /// Not there yet: made or pulled when a site needs it.
    Missing,
    /// Director is not connected to the engine.
    Unknown,
}

impl OnEngine {
    /// The sentence the catalogue shows.
    pub fn describe(&self) -> String {
        match self {
            Self::Ready => "On the engine.".to_owned(),
            Self::Making(step) => format!("Being made: {step}"),
            Self::Failed(why) => format!("Making it failed ({why}); a site that needs it tries again."),
            Self::Missing => "Not on the engine yet: made or pulled when a site needs it.".to_owned(),
            Self::Unknown => "Director is not connected to Docker.".to_owned(),
        }
    }
}

/// One line of the audit log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRow {
    /// When, `YYYY-MM-DD HH:MM:SS` UTC.
    pub at: String,
    /// Who.
    pub actor: String,
    /// What.
    pub action: String,
    /// On what.
    pub target: String,
    /// With what.
    pub details: String,
}

/// Every site (or `member`'s), a page at a time.
#[server(prefix = "/fn", endpoint = "admin_sites")]
pub async fn admin_sites(member: Option<String>, page: i64) -> Result<SitesPage, AppError> {
    let platform = platform();
    let actor = actor().await?;
    let (sites, total) = platform
        .all_sites(actor.as_ref(), member.as_deref(), page)
        .await
        .map_err(to_app_error)?;
    Ok(SitesPage {
        sites: sites
            .into_iter()
            .map(|s| AdminSiteRow {
                card: card(&platform, &s.site),
                availability: s.site.availability,
                members: s.members,
                problem: s.problem,
            })
            .collect(),
        total,
        page: page.max(0),
        per_page: platform::sites::SITES_PER_PAGE,
    })
}

/// Sets a site's resource limits.
#[server(prefix = "/fn", endpoint = "set_limits")]
pub async fn set_limits(
    id: i32,
    cpu_millis: String,
    memory_mb: String,
    body_limit_mb: String,
) -> Result<(), AppError> {
    let number = |field: &str, value: &str| {
        value.trim().parse::<i32>().map_err(|_| AppError::Invalid {
            field: field.to_owned(),
            message: "Enter a whole number.".to_owned(),
        })
    };
    let limits = platform::sites::Limits {
        cpu_millis: number("cpu_millis", &cpu_millis)?,
        memory_mb: number("memory_mb", &memory_mb)?,
        body_limit_mb: number("body_limit_mb", &body_limit_mb)?,
    };
    let platform = platform();
    let actor = actor().await?;
    platform
        .set_limits(actor.as_ref(), id, limits)
        .await
        .map_err(to_app_error)?;
    Ok(())
}

/// Disables a site (`disabled`), or enables it again (`enabled`), with the reason its members
/// are told.
#[server(prefix = "/fn", endpoint = "set_availability")]
pub async fn set_availability(id: i32, availability: Availability, reason: String) -> Result<(), AppError> {
    let platform = platform();
    let actor = actor().await?;
    platform
        .set_availability(actor.as_ref(), id, availability, &reason)
        .await
        .map_err(to_app_error)?;
    Ok(())
}

/// Re-runs everything that makes a site.
#[server(prefix = "/fn", endpoint = "fix_site")]
pub async fn fix_site(id: i32) -> Result<(), AppError> {
    let platform = platform();
    let actor = actor().await?;
    platform
        .fix_site(actor.as_ref(), id)
        .await
        .map_err(to_app_error)?;
    Ok(())
}

/// The whole image catalogue, with how many sites use each image.
#[server(prefix = "/fn", endpoint = "catalogue")]
pub async fn catalogue() -> Result<Vec<ImageRow>, AppError> {
    use platform::sites::EngineImage;
    let platform = platform();
    let actor = actor().await?;
    let images = platform.catalogue(actor.as_ref()).await.map_err(to_app_error)?;
    let usage = platform.image_usage(actor.as_ref()).await.map_err(to_app_error)?;
    let references: Vec<String> = images.iter().map(|i| i.reference.clone()).collect();
    let states = platform
        .images_on_engine(actor.as_ref(), &references)
        .await
        .map_err(to_app_error)?;
    Ok(images
        .into_iter()
        .zip(states)
        .map(|(i, state)| ImageRow {
            on_engine: match state {
                EngineImage::Ready => OnEngine::Ready,
                EngineImage::Making(step) => OnEngine::Making(step),
                EngineImage::Failed(why) => OnEngine::Failed(why),
                EngineImage::Missing => OnEngine::Missing,
                EngineImage::Unknown => OnEngine::Unknown,
            },
            sites: usage.iter().find(|(id, _)| *id == i.id).map_or(0, |(_, n)| *n),
            id: i.id,
            name: i.name,
            description: i.description,
            reference: i.reference,
            serves_static: i.serves_static,
            serves_dynamic: i.serves_dynamic,
            run_sh: i.run_sh,
            enabled: i.enabled,
            allows_recipe: i.recipes.allowed,
            has_pip: i.recipes.pip,
            has_npm: i.recipes.npm,
            allows_dockerfile: i.recipes.dockerfile,
        })
        .collect())
}

/// The latest build of each catalogue image built from a Dockerfile (polled alone while one
/// runs, so that the forms being typed in are not redrawn).
#[server(prefix = "/fn", endpoint = "catalogue_builds")]
pub async fn catalogue_builds() -> Result<Vec<CatalogueBuildRow>, AppError> {
    let platform = platform();
    let actor = actor().await?;
    Ok(platform
        .catalogue_builds(actor.as_ref())
        .await
        .map_err(to_app_error)?
        .into_iter()
        .map(|b| CatalogueBuildRow {
            image_id: b.image_id,
            number: b.number,
            state: b.state,
            dockerfile: b.dockerfile,
            error: b.error,
            log: b.log,
        })
        .collect())
}

/// An image's checkboxes (`checks[enabled]`, …), each present when ticked.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageChecks {
    /// Offered to new sites.
    pub enabled: Option<String>,
    /// Sites on it may have a recipe.
    pub recipe: Option<String>,
    /// It has pip.
    pub pip: Option<String>,
    /// It has npm.
    pub npm: Option<String>,
    /// Sites on it may build their own Dockerfile.
    pub dockerfile: Option<String>,
}

/// An image's longer texts (`texts[run_sh]`, `texts[dockerfile]`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageTexts {
    /// The run.sh new sites start with.
    pub run_sh: String,
    /// A Dockerfile to build the image from (empty: its reference as it is).
    #[serde(default)]
    pub dockerfile: String,
}

/// Adds an image (`id` 0) or changes one. `serves` is `static`, `dynamic` or `both`. With a
/// Dockerfile, the image is built from it (a new one offered to sites once it is made).
#[server(prefix = "/fn", endpoint = "save_image")]
pub async fn save_image(
    id: i64,
    name: String,
    description: String,
    reference: String,
    serves: String,
    checks: Option<ImageChecks>,
    texts: ImageTexts,
) -> Result<(), AppError> {
    let (serves_static, serves_dynamic) = match serves.as_str() {
        "static" => (true, false),
        "dynamic" => (false, true),
        "both" => (true, true),
        _ => {
            return Err(AppError::Invalid {
                field: "serves".to_owned(),
                message: "Choose which sites the image serves.".to_owned(),
            });
        }
    };
    let platform = platform();
    let actor = actor().await?;
    let image = platform::sites::CatalogueImage {
        id,
        name,
        description,
        reference,
        serves_static,
        serves_dynamic,
        run_sh: texts.run_sh,
        enabled: checks.as_ref().is_some_and(|c| c.enabled.is_some()),
        recipes: platform::sites::RecipeSupport {
            allowed: checks.as_ref().is_some_and(|c| c.recipe.is_some()),
            pip: checks.as_ref().is_some_and(|c| c.pip.is_some()),
            npm: checks.as_ref().is_some_and(|c| c.npm.is_some()),
            dockerfile: checks.as_ref().is_some_and(|c| c.dockerfile.is_some()),
        },
    };
    let dockerfile = texts.dockerfile.trim();
    if dockerfile.is_empty() {
        platform.save_image(actor.as_ref(), image).await.map(|_| ())
    } else {
        platform
            .save_and_build_image(actor.as_ref(), image, dockerfile)
            .await
            .map(|_| ())
    }
    .map_err(to_app_error)
}

/// The newest 200 entries of the audit log.
#[server(prefix = "/fn", endpoint = "audit_log")]
pub async fn audit_log() -> Result<Vec<AuditRow>, AppError> {
    let platform = platform();
    let actor = actor().await?;
    let entries = platform
        .audit_entries(actor.as_ref(), None, 200)
        .await
        .map_err(to_app_error)?;
    Ok(entries
        .into_iter()
        .map(|e| AuditRow {
            at: e.at.format("%Y-%m-%d %H:%M:%S").to_string(),
            actor: e.actor,
            action: e.action,
            target: e.target,
            details: e.details,
        })
        .collect())
}
