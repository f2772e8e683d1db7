//! Catalogue images built from a Dockerfile an administrator pastes (#20): the same build path
//! as sites' images (the engine's build API, the admin's limits, the output kept and shown live),
//! tagged `director/catalogue_7:<n>`. Each build waits in its own small queue: a worker claims
//! it with a number and keeps a heartbeat while it runs, so a build whose worker died is taken
//! over, and one whose claim was taken writes nothing more.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncConnection as _, AsyncPgConnection, RunQueryDsl};

use super::{
    Runtime,
    builds::{KEPT_BUILDS, LogSink, load_policy},
    catalogue::{CatalogueImage, store_image},
    dockerfile,
};
use model::build::BuildState;

use crate::{
    Access, Actor, Error, Permission, Platform, Result, authorize,
    schema::{catalogue_builds, images},
};

/// A catalogue image's latest build, as the admin page shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogueBuild {
    /// Its id.
    pub id: i64,
    /// The image it builds.
    pub image_id: i64,
    /// Its number for that image.
    pub number: i32,
    /// Where it is.
    pub state: BuildState,
    /// The Dockerfile it builds.
    pub dockerfile: String,
    /// Why it failed.
    pub error: String,
    /// Its output as kept so far.
    pub log: String,
    /// When it was asked for.
    pub created_at: DateTime<Utc>,
}

/// The longest pasted Dockerfile: its form, encoded, stays well within a request's size.
pub const MAX_PASTED_BYTES: usize = 256 * 1024;

/// What a pasted Dockerfile must be: text of at most [`MAX_PASTED_BYTES`] with a `FROM` (an
/// administrator may start from any image and fetch what they like).
fn check_pasted(text: &str) -> Result<()> {
    if text.len() > MAX_PASTED_BYTES {
        return Err(Error::invalid(
            "dockerfile",
            format!(
                "A pasted Dockerfile has at most {}.",
                model::human_bytes(MAX_PASTED_BYTES as u64)
            ),
        ));
    }
    if text.contains('\0') || !dockerfile::has_from(text) {
        return Err(Error::invalid(
            "dockerfile",
            "Paste a Dockerfile: text with at least a FROM line.",
        ));
    }
    Ok(())
}

/// Queues build `number` of `image_id` from `text`, in the caller's transaction; the image's
/// builds beyond the last [`KEPT_BUILDS`] are forgotten. Refused while one is under way.
async fn queue(
    conn: &mut AsyncPgConnection,
    actor: &Actor,
    image_id: i64,
    text: &str,
    enable: bool,
) -> Result<i64> {
    // The image's row is locked: two builds asked for at once are told apart.
    let name: String = images::table
        .find(image_id)
        .select(images::name)
        .for_update()
        .first(conn)
        .await
        .optional()?
        .ok_or(Error::NotFound("image"))?;
    let under_way: i64 = catalogue_builds::table
        .filter(catalogue_builds::image_id.eq(image_id))
        .filter(catalogue_builds::state.eq_any([BuildState::Queued, BuildState::Running]))
        .count()
        .get_result(conn)
        .await?;
    if under_way > 0 {
        return Err(Error::Conflict(format!(
            "A build of {name} is under way: wait for it to end."
        )));
    }
    let number: i32 = catalogue_builds::table
        .filter(catalogue_builds::image_id.eq(image_id))
        .select(diesel::dsl::max(catalogue_builds::number))
        .first::<Option<i32>>(conn)
        .await?
        .unwrap_or(0)
        + 1;
    let id: i64 = diesel::insert_into(catalogue_builds::table)
        .values((
            catalogue_builds::image_id.eq(image_id),
            catalogue_builds::number.eq(number),
            catalogue_builds::dockerfile.eq(text.replace("\r\n", "\n")),
            catalogue_builds::enable.eq(enable),
            catalogue_builds::created_by.eq((actor.user_id > 0).then_some(actor.user_id)),
        ))
        .returning(catalogue_builds::id)
        .get_result(conn)
        .await?;
    diesel::delete(
        catalogue_builds::table
            .filter(catalogue_builds::image_id.eq(image_id))
            .filter(catalogue_builds::number.le(number - KEPT_BUILDS as i32)),
    )
    .execute(conn)
    .await?;
    super::audit(conn, actor, "image.build", &name, &format!("build {number}")).await?;
    Ok(id)
}

/// Whether a build made the catalogue image `image_id`, or none was ever asked for (its
/// reference is then an image of the engine's or a registry's).
pub(super) async fn has_made(conn: &mut AsyncPgConnection, image_id: i64) -> Result<bool> {
    let states: Vec<BuildState> = catalogue_builds::table
        .filter(catalogue_builds::image_id.eq(image_id))
        .select(catalogue_builds::state)
        .load(conn)
        .await?;
    Ok(states.is_empty() || states.contains(&BuildState::Succeeded))
}

type BuildRow = (i64, i64, i32, BuildState, String, String, String, DateTime<Utc>);

impl Platform {
    /// Saves a catalogue image (`id` 0: adds one) and builds it from `text`, together (the
    /// Dockerfile checked first). A new image's reference is the tag its first build makes.
    /// An image no build has made yet stays off new sites' list until one does, whatever
    /// `image.enabled` asks; that build then offers it if it asked. A build that succeeds
    /// points the image to its tag (sites on it move to it when next fixed or changed).
    /// Admins. Returns the image's id and the build's.
    pub async fn save_and_build_image(
        &self,
        actor: Option<&Actor>,
        image: CatalogueImage,
        text: &str,
    ) -> Result<(i64, i64)> {
        let actor = authorize(actor, Permission::Administer, Access::Write)?;
        check_pasted(text)?;
        let runtime = self.runtime("Builds are")?;
        let new = image.id == 0;
        // A reference to pass the checks until the new image's id, which its tag holds, is
        // known.
        let image = if new {
            CatalogueImage {
                reference: "director/pending:0".to_owned(),
                ..image
            }
        } else {
            image
        }
        .validated()?;
        let mut conn = self.conn().await?;
        let ids = conn
            .transaction::<_, Error, _>(async |conn| {
                let made = !new && has_made(conn, image.id).await?;
                let stored = CatalogueImage {
                    enabled: image.enabled && made,
                    ..image.clone()
                };
                let id = store_image(conn, actor, &stored).await?;
                if new {
                    diesel::update(images::table.find(id))
                        .set(images::reference.eq(runtime.orchestrator.catalogue_image_tag(id, 1)))
                        .execute(conn)
                        .await?;
                }
                let build = queue(conn, actor, id, text, image.enabled && !made).await?;
                Ok((id, build))
            })
            .await?;
        self.wake_workers();
        Ok(ids)
    }

    /// The latest build of each catalogue image that has one. Admins.
    pub async fn catalogue_builds(&self, actor: Option<&Actor>) -> Result<Vec<CatalogueBuild>> {
        authorize(actor, Permission::Administer, Access::Read)?;
        let mut conn = self.conn().await?;
        let rows: Vec<BuildRow> = catalogue_builds::table
            .distinct_on(catalogue_builds::image_id)
            .order((catalogue_builds::image_id, catalogue_builds::number.desc()))
            .select((
                catalogue_builds::id,
                catalogue_builds::image_id,
                catalogue_builds::number,
                catalogue_builds::state,
                catalogue_builds::dockerfile,
                catalogue_builds::error,
                catalogue_builds::log,
                catalogue_builds::created_at,
            ))
            .load(&mut conn)
            .await?;
        Ok(rows
            .into_iter()
            .map(
                |(id, image_id, number, state, dockerfile, error, log, created_at)| CatalogueBuild {
                    id,
                    image_id,
                    number,
                    state,
                    dockerfile,
                    error,
                    log,
                    created_at,
                },
            )
            .collect())
    }

    /// Claims and runs the oldest catalogue build waiting (or one whose worker went silent for
    /// longer than the operations' heartbeat timeout). Returns whether there was one.
    pub async fn run_next_catalogue_build(&self, runtime: &Runtime) -> Result<bool> {
        let claim: i64 = rand::random::<i64>().abs();
        let stale = Utc::now()
            - chrono::Duration::from_std(self.settings().operation_heartbeat_timeout)
                .map_err(Error::internal)?;
        let mut conn = self.conn().await?;
        let claimed = conn
            .transaction::<_, Error, _>(async |conn| {
                // One catalogue build at a time, so that sites' operations always have a
                // worker.
                let running: i64 = catalogue_builds::table
                    .filter(catalogue_builds::state.eq(BuildState::Running))
                    .filter(catalogue_builds::heartbeat.ge(stale))
                    .count()
                    .get_result(conn)
                    .await?;
                if running > 0 {
                    return Ok(None);
                }
                let next: Option<(i64, i64, i32, String, bool)> = catalogue_builds::table
                    .filter(
                        catalogue_builds::state
                            .eq(BuildState::Queued)
                            .or(catalogue_builds::state
                                .eq(BuildState::Running)
                                .and(catalogue_builds::heartbeat.lt(stale))),
                    )
                    .order(catalogue_builds::id.asc())
                    .select((
                        catalogue_builds::id,
                        catalogue_builds::image_id,
                        catalogue_builds::number,
                        catalogue_builds::dockerfile,
                        catalogue_builds::enable,
                    ))
                    .for_update()
                    .skip_locked()
                    .first(conn)
                    .await
                    .optional()?;
                if let Some((id, ..)) = next {
                    diesel::update(catalogue_builds::table.find(id))
                        .set((
                            catalogue_builds::state.eq(BuildState::Running),
                            catalogue_builds::claim.eq(claim),
                            catalogue_builds::heartbeat.eq(diesel::dsl::now),
                            catalogue_builds::started_at.eq(diesel::dsl::now),
                            // A build taken over starts its output anew.
                            catalogue_builds::log.eq(""),
                        ))
                        .execute(conn)
                        .await?;
                }
                Ok(next)
            })
            .await?;
        let Some((id, image_id, number, text, enable)) = claimed else {
            return Ok(false);
        };
        let policy = load_policy(&mut conn).await?;
        drop(conn);
        let context = orchestrator::dockerfile_context(&text).map_err(Error::internal)?;
        let build = orchestrator::ImageBuild {
            owner: orchestrator::ImageOwner::Catalogue(image_id),
            number: u32::try_from(number).unwrap_or(0),
            context,
            dockerfile: "Dockerfile".to_owned(),
            recipe: dockerfile::hex_digest(text.as_bytes()),
            limits: policy.limits(),
        };
        let preface = vec![format!("> build {number}, within the limits of sites' builds")];
        let outcome = runtime
            .run_build(build, &preface, LogSink::Catalogue { id, claim })
            .await;
        let mut conn = self.conn().await?;
        conn.transaction::<_, Error, _>(async |conn| {
            let mine = catalogue_builds::table
                .find(id)
                .filter(catalogue_builds::claim.eq(claim))
                .select(catalogue_builds::id)
                .for_update()
                .first::<i64>(conn)
                .await
                .optional()?
                .is_some();
            // Taken over meanwhile: the other worker decides.
            if !mine {
                return Ok(());
            }
            let (state, tag, error) = match &outcome {
                Ok(tag) => (BuildState::Succeeded, tag.as_str(), ""),
                Err(why) => (BuildState::Failed, "", why.as_str()),
            };
            diesel::update(catalogue_builds::table.find(id))
                .set((
                    catalogue_builds::state.eq(state),
                    catalogue_builds::tag.eq(tag),
                    catalogue_builds::error.eq(error),
                    catalogue_builds::finished_at.eq(diesel::dsl::now),
                ))
                .execute(conn)
                .await?;
            if let Ok(tag) = &outcome {
                diesel::update(images::table.find(image_id))
                    .set(images::reference.eq(tag))
                    .execute(conn)
                    .await?;
                if enable {
                    diesel::update(images::table.find(image_id))
                        .set(images::enabled.eq(true))
                        .execute(conn)
                        .await?;
                }
            }
            Ok(())
        })
        .await?;
        match &outcome {
            Ok(tag) => tracing::info!(image = image_id, build = number, %tag, "catalogue image built"),
            Err(why) => {
                tracing::info!(image = image_id, build = number, %why, "catalogue image build failed")
            }
        }
        Ok(true)
    }
}
