//! The image catalogue: the images sites may run, with the `run.sh` new sites start with.
//! Everyone signed in reads the enabled ones; admins add, edit, disable and enable them.

use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use super::audit;
use crate::{
    Access, Actor, Error, Permission, Platform, Result, authorize,
    schema::{images, sites},
};

/// One image of the catalogue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogueImage {
    /// Its id (0 for a new one).
    pub id: i64,
    /// Its name in the catalogue (a lower-case label).
    pub name: String,
    /// What it offers, in a sentence.
    pub description: String,
    /// The Docker image reference (`director/python:3`).
    pub reference: String,
    /// Whether static sites may use it.
    pub serves_static: bool,
    /// Whether dynamic sites may use it.
    pub serves_dynamic: bool,
    /// The `run.sh` a new dynamic site on it starts with.
    pub run_sh: String,
    /// Whether new sites may choose it.
    pub enabled: bool,
    /// What sites' recipes may add to it.
    pub recipes: RecipeSupport,
}

/// What the recipes of sites on a catalogue image may add to it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RecipeSupport {
    /// Whether sites on it may have a recipe at all (Debian packages and setup commands).
    pub allowed: bool,
    /// Whether it has pip, for Python packages.
    pub pip: bool,
    /// Whether it has npm, for Node packages.
    pub npm: bool,
    /// Whether sites on it may build their own Dockerfile (and start its stages from it).
    pub dockerfile: bool,
}

/// A Docker image reference: `[registry[:port]/]path[:tag]`, lower-case path components.
fn valid_reference(reference: &str) -> bool {
    let (path, tag) = match reference.rsplit_once(':') {
        // A colon inside the registry part (a port) is followed by a slash.
        Some((path, tag)) if !tag.contains('/') => (path, Some(tag)),
        _ => (reference, None),
    };
    let tag_ok = tag.is_none_or(|t| {
        (1..=128).contains(&t.len())
            && t.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
            && t.chars().all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
    });
    let path_ok = !path.is_empty()
        && path.len() <= 255
        && path.split('/').all(|part| {
            !part.is_empty()
                && part
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-:".contains(c))
                && part.starts_with(|c: char| c.is_ascii_alphanumeric())
        });
    tag_ok && path_ok
}

impl CatalogueImage {
    pub(super) fn validated(mut self) -> Result<Self> {
        self.name = self.name.trim().to_ascii_lowercase();
        self.reference = self.reference.trim().to_owned();
        self.description = self.description.trim().to_owned();
        if orchestrator::validate_site_name(&self.name).is_err() {
            return Err(Error::invalid(
                "name",
                "An image's name has 1–32 lower-case letters, digits and inner hyphens.",
            ));
        }
        if !valid_reference(&self.reference) {
            return Err(Error::invalid(
                "reference",
                "Enter a Docker image reference such as director/python:3.",
            ));
        }
        if !self.serves_static && !self.serves_dynamic {
            return Err(Error::invalid(
                "serves",
                "An image serves static sites, dynamic sites or both.",
            ));
        }
        if [&self.name, &self.reference, &self.description, &self.run_sh]
            .iter()
            .any(|text| text.contains('\0'))
        {
            return Err(Error::invalid("description", "Text cannot hold a NUL byte."));
        }
        if self.description.chars().count() > 500 {
            return Err(Error::invalid("description", "At most 500 characters."));
        }
        if self.run_sh.len() > 64 * 1024 || self.run_sh.contains('\0') {
            return Err(Error::invalid("run_sh", "A run.sh has at most 64 KiB of text."));
        }
        if self.serves_dynamic && !self.run_sh.starts_with("#!") {
            return Err(Error::invalid(
                "run_sh",
                "A dynamic image's run.sh starts with #! (for example #!/bin/sh).",
            ));
        }
        // Scripts typed in a browser come with CRLF line ends, which a shell would choke on.
        self.run_sh = self.run_sh.replace("\r\n", "\n");
        Ok(self)
    }
}

/// How long the catalogue waits for the engine to say whether it has an image.
const ENGINE_ASK: std::time::Duration = std::time::Duration::from_secs(5);

/// Where a catalogue image stands on the engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EngineImage {
    /// The engine has it.
    Ready,
    /// Director is making it (one of its base images); the latest step.
    Making(String),
    /// Making it failed (a site that needs it tries again); why.
    Failed(String),
    /// Not on the engine yet: made (one of Director's base images) or pulled when a site
    /// needs it.
    Missing,
    /// Director is not connected to the engine.
    Unknown,
}

type ImageRow = (
    (i64, String, String, String, bool, bool, String, bool),
    (bool, bool, bool, bool),
);

impl Platform {
    /// Where each of `references` stands on the engine (in that order): what the engine has,
    /// and what Director is making or failed to make. Admins only.
    pub async fn images_on_engine(
        &self,
        actor: Option<&Actor>,
        references: &[String],
    ) -> Result<Vec<EngineImage>> {
        authorize(actor, Permission::Administer, Access::Read)?;
        let Some(runtime) = self.runtime_if_up() else {
            return Ok(vec![EngineImage::Unknown; references.len()]);
        };
        let orchestrator = &runtime.orchestrator;
        let base = orchestrator.base_images();
        // Asked of the engine all at once, each for a few seconds at most: the page waits for
        // the slowest, never for their sum.
        let present = futures::future::join_all(references.iter().map(|reference| async move {
            tokio::time::timeout(ENGINE_ASK, orchestrator.image_exists(reference)).await
        }))
        .await;
        let states = references
            .iter()
            .zip(present)
            .map(|(reference, present)| {
                let progress = base.of(reference).and_then(|image| base.progress(image));
                match (progress, present) {
                    (Some(orchestrator::base_images::Progress::Making(step)), _) => EngineImage::Making(step),
                    (_, Ok(Ok(true))) => EngineImage::Ready,
                    (Some(orchestrator::base_images::Progress::Failed(why)), Ok(Ok(false))) => {
                        EngineImage::Failed(why)
                    }
                    (_, Ok(Ok(false))) => EngineImage::Missing,
                    (_, _) => EngineImage::Unknown,
                }
            })
            .collect::<Vec<_>>();
        Ok(states)
    }

    /// The whole catalogue, enabled or not, by name. Admins only.
    pub async fn catalogue(&self, actor: Option<&Actor>) -> Result<Vec<CatalogueImage>> {
        authorize(actor, Permission::Administer, Access::Read)?;
        let mut conn = self.conn().await?;
        let rows: Vec<ImageRow> = images::table
            .order(images::name.asc())
            .select((
                (
                    images::id,
                    images::name,
                    images::description,
                    images::reference,
                    images::serves_static,
                    images::serves_dynamic,
                    images::run_sh,
                    images::enabled,
                ),
                (
                    images::allows_recipe,
                    images::has_pip,
                    images::has_npm,
                    images::allows_dockerfile,
                ),
            ))
            .load(&mut conn)
            .await?;
        Ok(rows
            .into_iter()
            .map(
                |(
                    (id, name, description, reference, serves_static, serves_dynamic, run_sh, enabled),
                    (allowed, pip, npm, dockerfile),
                )| CatalogueImage {
                    id,
                    name,
                    description,
                    reference,
                    serves_static,
                    serves_dynamic,
                    run_sh,
                    enabled,
                    recipes: RecipeSupport {
                        allowed,
                        pip,
                        npm,
                        dockerfile,
                    },
                },
            )
            .collect())
    }

    /// Adds an image (`id` 0) or changes one. Sites already on it keep running what they run
    /// until they are next fixed or their settings change. Admins only. Returns its id.
    pub async fn save_image(&self, actor: Option<&Actor>, image: CatalogueImage) -> Result<i64> {
        let actor = authorize(actor, Permission::Administer, Access::Write)?;
        let image = image.validated()?;
        let mut conn = self.conn().await?;
        if image.enabled && image.id != 0 && !super::catalogue_builds::has_made(&mut conn, image.id).await? {
            return Err(Error::Conflict(format!(
                "No build has made {} yet: it is offered to new sites once one has.",
                image.name
            )));
        }
        store_image(&mut conn, actor, &image).await
    }

    /// How many sites use each image, by image id. Admins only.
    pub async fn image_usage(&self, actor: Option<&Actor>) -> Result<Vec<(i64, i64)>> {
        authorize(actor, Permission::Administer, Access::Read)?;
        let mut conn = self.conn().await?;
        Ok(sites::table
            .group_by(sites::image_id)
            .select((sites::image_id, diesel::dsl::count_star()))
            .load(&mut conn)
            .await?)
    }
}

/// Adds (`id` 0) or changes the checked `image`, audited; returns its id.
pub(super) async fn store_image(
    conn: &mut AsyncPgConnection,
    actor: &Actor,
    image: &CatalogueImage,
) -> Result<i64> {
    let taken = |e: diesel::result::Error| match e {
        diesel::result::Error::DatabaseError(diesel::result::DatabaseErrorKind::UniqueViolation, _) => {
            Error::invalid("name", format!("An image is called {} already.", image.name))
        }
        other => other.into(),
    };
    let values = (
        images::name.eq(&image.name),
        images::description.eq(&image.description),
        images::reference.eq(&image.reference),
        images::serves_static.eq(image.serves_static),
        images::serves_dynamic.eq(image.serves_dynamic),
        images::run_sh.eq(&image.run_sh),
        images::enabled.eq(image.enabled),
        images::allows_recipe.eq(image.recipes.allowed),
        images::has_pip.eq(image.recipes.pip),
        images::has_npm.eq(image.recipes.npm),
        images::allows_dockerfile.eq(image.recipes.dockerfile),
    );
    let id = if image.id == 0 {
        diesel::insert_into(images::table)
            .values(values)
            .returning(images::id)
            .get_result(conn)
            .await
            .map_err(taken)?
    } else {
        diesel::update(images::table.find(image.id))
            .set(values)
            .returning(images::id)
            .get_result(conn)
            .await
            .optional()
            .map_err(taken)?
            .ok_or(Error::NotFound("image"))?
    };
    let action = if image.id == 0 { "image.add" } else { "image.edit" };
    audit(conn, actor, action, &image.name, &image.reference).await?;
    tracing::info!(user = %actor.username, image = %image.name, reference = %image.reference, action, "catalogue changed");
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::valid_reference;

    #[test]
    fn image_references_are_checked() {
        for good in [
            "director/python:3",
            "busybox",
            "registry.example.org:5000/team/app:1.2-rc",
            "ghcr.io/owner/image",
        ] {
            assert!(valid_reference(good), "{good}");
        }
        for bad in [
            "",
            "Upper/case",
            "a b",
            "x:",
            "a//b",
            "x:-tag",
            "/abs",
            "a;rm -rf",
        ] {
            assert!(!valid_reference(bad), "{bad}");
        }
    }
}
