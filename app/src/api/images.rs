//! A dynamic site's image (its recipe, its builds and their output) and its environment
//! variables. The platform checks who may; a secret's value never leaves it.

use leptos::prelude::*;
pub use model::build::{BuildState, RecipeSource};
use serde::{Deserialize, Serialize};

use super::{OperationView, SiteCard};
use crate::AppError;
#[cfg(feature = "ssr")]
use crate::ssr::{actor, platform, to_app_error};

/// One build as the list shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuildRow {
    /// Its id.
    pub id: i64,
    /// Its number within the site.
    pub number: i32,
    /// Where it is.
    pub state: BuildState,
    /// Why it failed.
    pub error: String,
    /// When it was asked for, UTC.
    pub created: String,
}

/// One environment variable; a secret's value is None.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VariableRow {
    /// Its name.
    pub name: String,
    /// Its value, unless it is secret.
    pub value: Option<String>,
    /// Whether it is secret.
    pub secret: bool,
}

/// The site's image page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImagePageData {
    /// The site.
    pub card: SiteCard,
    /// Its catalogue image's name.
    pub base: String,
    /// Its catalogue image's reference.
    pub base_reference: String,
    /// Whether the catalogue image takes a recipe.
    pub allows_recipe: bool,
    /// Whether the site may build its own Dockerfile on it.
    pub allows_dockerfile: bool,
    /// What the recipe builds from.
    pub source: RecipeSource,
    /// The site's Dockerfile (a path in its folder).
    pub dockerfile: String,
    /// The folder sent as the Dockerfile's context.
    pub context: String,
    /// Whether recipes may name Python packages.
    pub has_pip: bool,
    /// Whether recipes may name Node packages.
    pub has_npm: bool,
    /// Whether recipes may have setup commands.
    pub setup_commands: bool,
    /// The recipe's Debian packages, space-separated.
    pub apt: String,
    /// Its Python packages.
    pub pip: String,
    /// Its Node packages.
    pub npm: String,
    /// Its setup commands.
    pub setup: String,
    /// The image the site runs.
    pub running: String,
    /// Its latest builds, newest first.
    pub builds: Vec<BuildRow>,
    /// The build shown with its output (the one asked for, or the newest).
    pub shown: Option<(BuildRow, String)>,
    /// Its variables, by name.
    pub variables: Vec<VariableRow>,
    /// Its builds' and variables' operations, newest first.
    pub operations: Vec<OperationView>,
}

impl ImagePageData {
    /// Whether something is under way (the page then refreshes itself).
    pub fn busy(&self) -> bool {
        self.builds.iter().any(|b| b.state.under_way()) || self.operations.iter().any(|o| o.state.under_way())
    }
}

#[cfg(feature = "ssr")]
fn build_row(b: platform::sites::BuildSummary) -> BuildRow {
    BuildRow {
        id: b.id,
        number: b.number,
        state: b.state,
        error: b.error,
        created: b.created_at.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
    }
}

/// The site's image, builds (with `build`'s output, or the newest's) and variables.
#[server(prefix = "/fn", endpoint = "site_image")]
pub async fn site_image(site: i32, build: Option<i64>) -> Result<ImagePageData, AppError> {
    let platform = platform();
    let actor = actor().await?;
    let actor = actor.as_ref();
    let detail = platform.site(actor, site).await.map_err(to_app_error)?;
    let view = platform.site_image(actor, site).await.map_err(to_app_error)?;
    let shown_id = build.or_else(|| view.builds.first().map(|b| b.id));
    let shown = match shown_id {
        Some(id) => {
            let record = platform.site_build(actor, site, id).await.map_err(to_app_error)?;
            Some((build_row(record.summary), record.log))
        }
        None => None,
    };
    let variables = platform
        .site_variables(actor, site)
        .await
        .map_err(to_app_error)?
        .into_iter()
        .map(|v| VariableRow {
            name: v.name,
            value: v.value,
            secret: v.secret,
        })
        .collect();
    let operations = platform
        .site_operations(actor, site)
        .await
        .map_err(to_app_error)?
        .into_iter()
        .filter(|op| {
            matches!(
                op.kind,
                model::operation::OperationKind::BuildImage
                    | model::operation::OperationKind::UpdateVariables
            )
        })
        .take(5)
        .map(super::operation_view)
        .collect();
    Ok(ImagePageData {
        card: super::card(&platform, &detail),
        base: view.base,
        base_reference: view.base_reference,
        allows_recipe: view.allows_recipe,
        allows_dockerfile: view.allows_dockerfile,
        source: view.recipe.source,
        dockerfile: view.recipe.dockerfile.clone(),
        context: view.recipe.context.clone(),
        has_pip: view.has_pip,
        has_npm: view.has_npm,
        setup_commands: view.setup_commands,
        apt: view.recipe.apt.join(" "),
        pip: view.recipe.pip.join(" "),
        npm: view.recipe.npm.join(" "),
        setup: view.recipe.setup,
        running: view.running,
        builds: view.builds.into_iter().map(build_row).collect(),
        shown,
        variables,
        operations,
    })
}

/// The recipe form's fields (`recipe[apt]`, …).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecipeForm {
    /// Packages or the site's own Dockerfile.
    pub source: RecipeSource,
    /// Debian packages, space-separated.
    pub apt: String,
    /// Python packages.
    pub pip: String,
    /// Node packages.
    pub npm: String,
    /// Setup commands.
    pub setup: String,
    /// The Dockerfile's path in the site's folder.
    pub dockerfile: String,
    /// The context folder.
    pub context: String,
}

/// Saves the site's recipe and queues its build.
#[server(prefix = "/fn", endpoint = "save_recipe")]
pub async fn save_recipe(site: i32, recipe: RecipeForm) -> Result<(), AppError> {
    let platform = platform();
    let actor = actor().await?;
    let input = platform::sites::RecipeInput {
        source: recipe.source,
        apt: recipe.apt,
        pip: recipe.pip,
        npm: recipe.npm,
        setup: recipe.setup,
        dockerfile: recipe.dockerfile,
        context: recipe.context,
    };
    platform
        .save_recipe(actor.as_ref(), site, &input)
        .await
        .map(|_| ())
        .map_err(to_app_error)
}

/// Builds the site's recipe again as it is.
#[server(prefix = "/fn", endpoint = "rebuild_site")]
pub async fn rebuild_site(site: i32) -> Result<(), AppError> {
    let platform = platform();
    let actor = actor().await?;
    platform
        .rebuild_site(actor.as_ref(), site)
        .await
        .map(|_| ())
        .map_err(to_app_error)
}

/// Adds or changes an environment variable (`secret` hides its value from then on).
#[server(prefix = "/fn", endpoint = "set_variable")]
pub async fn set_variable(
    site: i32,
    name: String,
    value: String,
    secret: Option<String>,
) -> Result<(), AppError> {
    let platform = platform();
    let actor = actor().await?;
    let input = platform::sites::VariableInput {
        name,
        value: Some(value),
        secret: secret.is_some(),
    };
    platform
        .set_site_variable(actor.as_ref(), site, input)
        .await
        .map(|_| ())
        .map_err(to_app_error)
}

/// Removes an environment variable.
#[server(prefix = "/fn", endpoint = "remove_variable")]
pub async fn remove_variable(site: i32, name: String) -> Result<(), AppError> {
    let platform = platform();
    let actor = actor().await?;
    platform
        .remove_site_variable(actor.as_ref(), site, &name)
        .await
        .map(|_| ())
        .map_err(to_app_error)
}

/// How builds run, as the admin's form shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuildPolicyView {
    /// How long a build may take, in seconds.
    pub time_limit_s: i32,
    /// Its memory, in MiB.
    pub memory_mb: i32,
    /// Its CPU, in thousandths of a core.
    pub cpu_millis: i32,
    /// Whether recipes may have setup commands.
    pub setup_commands: bool,
    /// Which Debian packages recipes may name.
    pub apt_rule: model::build::AptRule,
    /// The packages the rule lists, space-separated.
    pub apt_list: String,
}

/// How builds run (admins).
#[server(prefix = "/fn", endpoint = "build_policy")]
pub async fn build_policy() -> Result<BuildPolicyView, AppError> {
    let platform = platform();
    let actor = actor().await?;
    let p = platform
        .build_policy(actor.as_ref())
        .await
        .map_err(to_app_error)?;
    Ok(BuildPolicyView {
        time_limit_s: p.time_limit_s,
        memory_mb: p.memory_mb,
        cpu_millis: p.cpu_millis,
        setup_commands: p.setup_commands,
        apt_rule: p.apt_rule,
        apt_list: p.apt_list.join(" "),
    })
}

/// Sets how builds run (admins); `setup` is a checkbox, present when ticked.
#[server(prefix = "/fn", endpoint = "set_build_policy")]
pub async fn set_build_policy(
    time_limit_s: i32,
    memory_mb: i32,
    cpu_millis: i32,
    setup: Option<String>,
    apt_rule: model::build::AptRule,
    apt_list: String,
) -> Result<(), AppError> {
    let platform = platform();
    let actor = actor().await?;
    let policy = platform::sites::BuildPolicy {
        time_limit_s,
        memory_mb,
        cpu_millis,
        setup_commands: setup.is_some(),
        apt_rule,
        apt_list: apt_list.split_whitespace().map(str::to_owned).collect(),
    };
    platform
        .set_build_policy(actor.as_ref(), &policy)
        .await
        .map_err(to_app_error)
}
