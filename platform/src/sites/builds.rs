//! Sites' own images (#20): a recipe per dynamic site — its catalogue image with extra Debian,
//! Python and Node packages and setup commands — built on the engine as an operation of the
//! queue, its output kept (capped) and shown live, then deployed health-gated; a failed build
//! leaves the running version serving.

use std::collections::VecDeque;

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncConnection as _, AsyncPgConnection, RunQueryDsl};
use serde::{Deserialize, Serialize};

use super::{Change, OperationKind, Runtime, Site, SiteKind, dockerfile, record_change};
use crate::{
    Access, Actor, Error, Permission, Platform, Result, authorize,
    schema::{build_policy, catalogue_builds, images, site_builds, site_recipes, sites},
};

pub use model::build::{AptRule, BuildState, RecipeSource};

/// The builds of a site whose output is kept; older ones are forgotten.
pub const KEPT_BUILDS: i64 = 5;
/// The images of a site kept on the engine (the running one among them).
pub const KEPT_IMAGES: usize = 3;
/// The most packages of each kind a recipe may name.
pub const MAX_PACKAGES: usize = 50;
/// The largest image a build may leave on the engine.
pub const MAX_IMAGE_BYTES: u64 = 8 << 30;
/// The most packages an admin's allow- or deny-list may name.
pub const MAX_LISTED: usize = 1000;
/// The longest setup commands, in bytes.
pub const MAX_SETUP_BYTES: usize = 8 * 1024;
/// The output of a build kept: its beginning and its end, this many bytes each.
const KEPT_HEAD: usize = 64 * 1024;
const KEPT_TAIL: usize = 448 * 1024;
/// The longest line of output kept.
const MAX_LINE: usize = 4 * 1024;

/// What a site's image is made of, beyond its catalogue image.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
// Builds recorded before Dockerfiles were built have no source: theirs was packages.
#[serde(default)]
pub struct Recipe {
    /// Packages on its catalogue image, or the site's own Dockerfile.
    pub source: RecipeSource,
    /// Debian packages (`jq`, `libpq5=15.*` is not allowed: `name` or `name=version`).
    pub apt: Vec<String>,
    /// Python requirements (`flask`, `flask==3.0.0`).
    pub pip: Vec<String>,
    /// Node packages (`express`, `@scope/name@1`).
    pub npm: Vec<String>,
    /// Commands run as root at build time, one per line.
    pub setup: String,
    /// The site's Dockerfile: its path in the site's folder.
    pub dockerfile: String,
    /// The folder of the site sent to the build as its context.
    pub context: String,
}

/// A recipe as a member writes it in the form: whitespace-separated names.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecipeInput {
    /// Packages on its catalogue image, or the site's own Dockerfile.
    pub source: RecipeSource,
    /// Debian packages.
    pub apt: String,
    /// Python requirements.
    pub pip: String,
    /// Node packages.
    pub npm: String,
    /// Setup commands.
    pub setup: String,
    /// The Dockerfile's path (`Dockerfile` when empty).
    pub dockerfile: String,
    /// The context's folder (the site's folder when empty).
    pub context: String,
}

/// How builds run, as an admin sets it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildPolicy {
    /// How long a build may take.
    pub time_limit_s: i32,
    /// The memory a build may use, in MiB.
    pub memory_mb: i32,
    /// The CPU a build may use, in thousandths of a core.
    pub cpu_millis: i32,
    /// Whether recipes may have setup commands.
    pub setup_commands: bool,
    /// Which Debian packages recipes may name.
    pub apt_rule: AptRule,
    /// The packages the rule lists.
    pub apt_list: Vec<String>,
}

/// A site's image as its page shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SiteImageView {
    /// The catalogue image it starts from.
    pub base: String,
    /// Its reference.
    pub base_reference: String,
    /// Whether the catalogue image takes a recipe.
    pub allows_recipe: bool,
    /// Whether sites on the catalogue image may build their own Dockerfile.
    pub allows_dockerfile: bool,
    /// Whether recipes on it may name Python packages.
    pub has_pip: bool,
    /// Whether recipes on it may name Node packages.
    pub has_npm: bool,
    /// Whether recipes may have setup commands.
    pub setup_commands: bool,
    /// The recipe as saved (empty when none was).
    pub recipe: Recipe,
    /// The image it runs: a build's, or its catalogue image.
    pub running: String,
    /// Its latest builds, newest first.
    pub builds: Vec<BuildSummary>,
}

/// One build, as a list shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildSummary {
    /// Its id.
    pub id: i64,
    /// Its number within the site.
    pub number: i32,
    /// Where it is.
    pub state: BuildState,
    /// Why it failed.
    pub error: String,
    /// When it was asked for.
    pub created_at: DateTime<Utc>,
    /// When it ended.
    pub finished_at: Option<DateTime<Utc>>,
}

/// One build with its output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildRecord {
    /// What the list shows.
    pub summary: BuildSummary,
    /// Its output as kept.
    pub log: String,
}

fn split(text: &str) -> Vec<String> {
    text.split_whitespace().map(str::to_owned).collect()
}

fn check_names(field: &'static str, names: &[String], pattern: &regex_lite::Regex, what: &str) -> Result<()> {
    if names.len() > MAX_PACKAGES {
        return Err(Error::invalid(
            field,
            format!("At most {MAX_PACKAGES} {what} packages."),
        ));
    }
    for name in names {
        if name.len() > 200 || !pattern.is_match(name) {
            return Err(Error::invalid(
                field,
                format!(
                    "{name:?} is not a {what} package name (an option, a path or shell syntax is not one)."
                ),
            ));
        }
    }
    Ok(())
}

/// Debian's package names (Policy 5.6.1), optionally `=version`.
fn apt_pattern() -> regex_lite::Regex {
    regex_lite::Regex::new(r"^[a-z0-9][a-z0-9+.-]+(=[A-Za-z0-9.+~:-]+)?$").expect("a valid pattern")
}

/// A PEP 508 name with extras and version specifiers, without URLs, markers or spaces.
fn pip_pattern() -> regex_lite::Regex {
    regex_lite::Regex::new(
        r"^[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?(\[[A-Za-z0-9._,-]+\])?((==|>=|<=|~=|!=|<|>)[A-Za-z0-9.*+!_-]+(,(==|>=|<=|~=|!=|<|>)[A-Za-z0-9.*+!_-]+)*)?$",
    )
    .expect("a valid pattern")
}

/// An npm package name (scoped or not), optionally `@version` or `@tag`.
fn npm_pattern() -> regex_lite::Regex {
    regex_lite::Regex::new(r"^(@[a-z0-9][a-z0-9._~-]*/)?[a-z0-9][a-z0-9._~-]*(@[A-Za-z0-9.^~*+<>=_-]+)?$")
        .expect("a valid pattern")
}

impl Recipe {
    /// The recipe in `input`, checked against what its base image has and the admin's policy.
    pub fn parse(input: &RecipeInput, image: &BaseFacts, policy: &BuildPolicy) -> Result<Self> {
        let recipe = Self {
            source: input.source,
            apt: split(&input.apt),
            pip: split(&input.pip),
            npm: split(&input.npm),
            setup: input.setup.replace("\r\n", "\n").trim().to_owned(),
            dockerfile: site_path("dockerfile", &input.dockerfile, DEFAULT_DOCKERFILE)?,
            context: site_path("context", &input.context, DEFAULT_CONTEXT)?,
        };
        check_names("apt", &recipe.apt, &apt_pattern(), "Debian")?;
        for name in &recipe.apt {
            // apt-get reads a trailing + or - as "install" or "remove", and a name with a dot
            // that names no package as a pattern: the lists are checked on the name apt will
            // install, and a deny-list cannot be read past with a pattern.
            let bare = name.split('=').next().unwrap_or(name);
            let bare = bare.trim_end_matches(['+', '-']);
            if policy.apt_rule == AptRule::Deny && bare.contains('.') {
                return Err(Error::invalid(
                    "apt",
                    format!(
                        "{name}: with a list of refused packages, a name with a dot is refused too (apt could read it as a pattern)."
                    ),
                ));
            }
            let listed = policy.apt_list.iter().any(|l| l == bare);
            match policy.apt_rule {
                AptRule::Allow if !listed => {
                    return Err(Error::invalid(
                        "apt",
                        format!("{bare} is not among the packages an administrator allows."),
                    ));
                }
                AptRule::Deny if listed => {
                    return Err(Error::invalid(
                        "apt",
                        format!("An administrator does not allow the package {bare}."),
                    ));
                }
                _ => {}
            }
        }
        check_names("pip", &recipe.pip, &pip_pattern(), "Python")?;
        check_names("npm", &recipe.npm, &npm_pattern(), "Node")?;
        if !recipe.pip.is_empty() && !image.has_pip {
            return Err(Error::invalid(
                "pip",
                format!("The image {} has no pip.", image.name),
            ));
        }
        if !recipe.npm.is_empty() && !image.has_npm {
            return Err(Error::invalid(
                "npm",
                format!("The image {} has no npm.", image.name),
            ));
        }
        if !recipe.setup.is_empty() {
            if !policy.setup_commands {
                return Err(Error::invalid(
                    "setup",
                    "An administrator turned setup commands off.",
                ));
            }
            if recipe.setup.len() > MAX_SETUP_BYTES {
                return Err(Error::invalid(
                    "setup",
                    format!("Setup commands are at most {} KiB.", MAX_SETUP_BYTES / 1024),
                ));
            }
            // Each line becomes a step of its own: a line that continues onto the next, or a
            // control character, would make it something else.
            // A line starting with - or [ would be read as a flag of RUN or its exec form.
            if recipe.setup.lines().any(|l| {
                let l = l.trim();
                l.ends_with('\\')
                    || l.starts_with(['-', '['])
                    || l.chars().any(|c| c.is_control() && c != '\t')
            }) {
                return Err(Error::invalid(
                    "setup",
                    "Write one whole command per line (not ending in \\, not starting with - or [, no control characters).",
                ));
            }
        }
        Ok(recipe)
    }

    /// The form's fields for it (to check a saved recipe again against today's policy).
    pub fn input(&self) -> RecipeInput {
        RecipeInput {
            source: self.source,
            apt: self.apt.join(" "),
            pip: self.pip.join(" "),
            npm: self.npm.join(" "),
            setup: self.setup.clone(),
            dockerfile: self.dockerfile.clone(),
            context: self.context.clone(),
        }
    }

    /// Whether it adds nothing to its catalogue image (a Dockerfile always makes an image).
    pub fn is_empty(&self) -> bool {
        self.source == RecipeSource::Packages
            && self.apt.is_empty()
            && self.pip.is_empty()
            && self.npm.is_empty()
            && self.setup.is_empty()
    }

    /// The Dockerfile that makes it on `base`. Every name was checked against its pattern and
    /// is single-quoted (patterns allow no quote), so none is read as an option or by the
    /// shell. With setup commands off, Python and Node packages run none of their own either
    /// (wheels only, no install scripts).
    pub fn dockerfile(&self, base: &str, policy: &BuildPolicy) -> String {
        let (pip_extra, npm_extra) = if policy.setup_commands {
            ("", "")
        } else {
            (" --only-binary=:all:", " --ignore-scripts")
        };
        let quoted = |names: &[String]| {
            names
                .iter()
                .map(|n| format!("'{n}'"))
                .collect::<Vec<_>>()
                .join(" ")
        };
        let mut file = format!("FROM {base}\nUSER root\n");
        if !self.apt.is_empty() {
            file.push_str(&format!(
                "RUN apt-get update \\\n && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends -- {} \\\n && rm -rf /var/lib/apt/lists/*\n",
                quoted(&self.apt)
            ));
        }
        if !self.pip.is_empty() {
            file.push_str(&format!(
                "RUN python3 -m pip install --no-cache-dir --break-system-packages --no-input{pip_extra} -- {}\n",
                quoted(&self.pip)
            ));
        }
        if !self.npm.is_empty() {
            file.push_str(&format!(
                "RUN npm install --global --no-fund --no-audit{npm_extra} -- {}\n",
                quoted(&self.npm)
            ));
        }
        for line in self
            .setup
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
        {
            file.push_str(&format!("RUN {line}\n"));
        }
        file
    }
}

/// A site's Dockerfile and its context folder when none is given.
const DEFAULT_DOCKERFILE: &str = "Dockerfile";
const DEFAULT_CONTEXT: &str = ".";

/// A path in the site's folder as given for `field` (`default` when empty), cleaned.
fn site_path(field: &'static str, path: &str, default: &str) -> Result<String> {
    let path = path.trim();
    let path = if path.is_empty() { default } else { path };
    let cleaned = crate::files::relative(path).map_err(|err| match err {
        Error::Invalid { message, .. } => Error::invalid(field, message),
        other => other,
    })?;
    Ok(cleaned.to_string_lossy().into_owned())
}

/// What a recipe needs to know of its catalogue image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseFacts {
    /// Its catalogue name.
    pub name: String,
    /// Its reference.
    pub reference: String,
    /// Whether it takes a recipe.
    pub allows_recipe: bool,
    /// Whether sites on it may build their own Dockerfile.
    pub allows_dockerfile: bool,
    /// Whether it has pip.
    pub has_pip: bool,
    /// Whether it has npm.
    pub has_npm: bool,
}

async fn base_facts(conn: &mut AsyncPgConnection, site_id: i32) -> Result<BaseFacts> {
    let image_id: i64 = sites::table
        .find(site_id)
        .select(sites::image_id)
        .first(conn)
        .await?;
    image_facts(conn, image_id).await
}

async fn image_facts(conn: &mut AsyncPgConnection, image_id: i64) -> Result<BaseFacts> {
    let (name, reference, allows_recipe, allows_dockerfile, has_pip, has_npm) = images::table
        .find(image_id)
        .select((
            images::name,
            images::reference,
            images::allows_recipe,
            images::allows_dockerfile,
            images::has_pip,
            images::has_npm,
        ))
        .first::<(String, String, bool, bool, bool, bool)>(conn)
        .await?;
    Ok(BaseFacts {
        name,
        reference,
        allows_recipe,
        allows_dockerfile,
        has_pip,
        has_npm,
    })
}

/// `input` checked as the recipe of a new site (None when it adds nothing).
pub(super) async fn check_new_recipe(
    conn: &mut AsyncPgConnection,
    site: &super::CheckedSite,
    input: &RecipeInput,
) -> Result<Option<Recipe>> {
    let base = image_facts(conn, site.image_id).await?;
    let policy = load_policy(conn).await?;
    let recipe = Recipe::parse(input, &base, &policy)?;
    if recipe.is_empty() {
        return Ok(None);
    }
    if site.kind != SiteKind::Dynamic {
        return Err(Error::invalid(
            "apt",
            "A static site is served by the edge itself: it has no image to add packages to.",
        ));
    }
    check_takes_recipe(&base, &recipe)?;
    Ok(Some(recipe))
}

/// Saves a new site's recipe and queues its build, in the transaction that made the site
/// (its create operation first).
pub(super) async fn save_new_recipe(
    conn: &mut AsyncPgConnection,
    actor: &Actor,
    site_id: i32,
    recipe: &Recipe,
) -> Result<i64> {
    let site = super::load_site(conn, site_id)
        .await?
        .ok_or(Error::NotFound("site"))?;
    store_recipe(conn, site_id, recipe).await?;
    queue_build(conn, actor, &site, recipe, "site.recipe.save").await
}

/// Refuses `recipe` on a catalogue image that does not take it (an empty one is taken by
/// every image).
fn check_takes_recipe(base: &BaseFacts, recipe: &Recipe) -> Result<()> {
    match recipe.source {
        RecipeSource::Dockerfile if !base.allows_dockerfile => Err(Error::Conflict(format!(
            "Sites on the image {} cannot build their own Dockerfile: an administrator decides which images allow it.",
            base.name
        ))),
        RecipeSource::Packages if !base.allows_recipe && !recipe.is_empty() => Err(Error::Conflict(format!(
            "The image {} takes no recipe: an administrator decides which do.",
            base.name
        ))),
        _ => Ok(()),
    }
}

async fn store_recipe(conn: &mut AsyncPgConnection, site_id: i32, recipe: &Recipe) -> Result<()> {
    let columns = (
        site_recipes::source.eq(recipe.source),
        site_recipes::apt.eq(recipe.apt.join(" ")),
        site_recipes::pip.eq(recipe.pip.join(" ")),
        site_recipes::npm.eq(recipe.npm.join(" ")),
        site_recipes::setup.eq(&recipe.setup),
        site_recipes::dockerfile.eq(&recipe.dockerfile),
        site_recipes::context.eq(&recipe.context),
    );
    diesel::insert_into(site_recipes::table)
        .values((site_recipes::site_id.eq(site_id), columns.clone()))
        .on_conflict(site_recipes::site_id)
        .do_update()
        .set((columns, site_recipes::updated_at.eq(diesel::dsl::now)))
        .execute(conn)
        .await?;
    Ok(())
}

pub(crate) async fn load_policy(conn: &mut AsyncPgConnection) -> Result<BuildPolicy> {
    let (time_limit_s, memory_mb, cpu_millis, setup_commands, apt_rule, apt_list) = build_policy::table
        .select((
            build_policy::time_limit_s,
            build_policy::memory_mb,
            build_policy::cpu_millis,
            build_policy::setup_commands,
            build_policy::apt_rule,
            build_policy::apt_list,
        ))
        .first::<(i32, i32, i32, bool, AptRule, String)>(conn)
        .await?;
    Ok(BuildPolicy {
        time_limit_s,
        memory_mb,
        cpu_millis,
        setup_commands,
        apt_rule,
        apt_list: split(&apt_list),
    })
}

async fn load_recipe(conn: &mut AsyncPgConnection, site_id: i32) -> Result<Recipe> {
    type Row = (RecipeSource, String, String, String, String, String, String);
    let row: Option<Row> = site_recipes::table
        .find(site_id)
        .select((
            site_recipes::source,
            site_recipes::apt,
            site_recipes::pip,
            site_recipes::npm,
            site_recipes::setup,
            site_recipes::dockerfile,
            site_recipes::context,
        ))
        .first(conn)
        .await
        .optional()?;
    Ok(row
        .map(|(source, apt, pip, npm, setup, dockerfile, context)| Recipe {
            source,
            apt: split(&apt),
            pip: split(&pip),
            npm: split(&npm),
            setup,
            dockerfile,
            context,
        })
        .unwrap_or_else(|| Recipe {
            dockerfile: DEFAULT_DOCKERFILE.to_owned(),
            context: DEFAULT_CONTEXT.to_owned(),
            ..Recipe::default()
        }))
}

type SummaryRow = (i64, i32, BuildState, String, DateTime<Utc>, Option<DateTime<Utc>>);

fn summary((id, number, state, error, created_at, finished_at): SummaryRow) -> BuildSummary {
    BuildSummary {
        id,
        number,
        state,
        error,
        created_at,
        finished_at,
    }
}

fn summary_columns() -> (
    site_builds::id,
    site_builds::number,
    site_builds::state,
    site_builds::error,
    site_builds::created_at,
    site_builds::finished_at,
) {
    Default::default()
}

/// Refuses a site that cannot have an image of its own.
fn check_buildable(site: &Site) -> Result<()> {
    if site.kind != SiteKind::Dynamic {
        return Err(Error::Conflict(
            "A static site is served by the edge itself: it has no image to build.".to_owned(),
        ));
    }
    Ok(())
}

impl Platform {
    /// A dynamic site's image: its catalogue image, recipe, what runs and its latest builds.
    pub async fn site_image(&self, actor: Option<&Actor>, site_id: i32) -> Result<SiteImageView> {
        let site = self.site(actor, site_id).await?;
        check_buildable(&site)?;
        let mut conn = self.conn().await?;
        let base = base_facts(&mut conn, site_id).await?;
        let policy = load_policy(&mut conn).await?;
        let recipe = load_recipe(&mut conn, site_id).await?;
        let builds = site_builds::table
            .filter(site_builds::site_id.eq(site_id))
            .order(site_builds::number.desc())
            .limit(KEPT_BUILDS)
            .select(summary_columns())
            .load::<SummaryRow>(&mut conn)
            .await?
            .into_iter()
            .map(summary)
            .collect();
        Ok(SiteImageView {
            running: site.running_image().to_owned(),
            base: base.name,
            base_reference: base.reference,
            allows_recipe: base.allows_recipe,
            allows_dockerfile: base.allows_dockerfile,
            has_pip: base.has_pip,
            has_npm: base.has_npm,
            setup_commands: policy.setup_commands,
            recipe,
            builds,
        })
    }

    /// One build of a site, with its output as kept so far.
    pub async fn site_build(
        &self,
        actor: Option<&Actor>,
        site_id: i32,
        build_id: i64,
    ) -> Result<BuildRecord> {
        self.site(actor, site_id).await?;
        let mut conn = self.conn().await?;
        let (row, log): (SummaryRow, String) = site_builds::table
            .filter(site_builds::id.eq(build_id))
            .filter(site_builds::site_id.eq(site_id))
            .select((summary_columns(), site_builds::log))
            .first(&mut conn)
            .await
            .optional()?
            .ok_or(Error::NotFound("build"))?;
        Ok(BuildRecord {
            summary: summary(row),
            log,
        })
    }

    /// Saves a dynamic site's recipe and queues its build (which deploys it when it succeeds).
    /// Returns the build's id.
    pub async fn save_recipe(&self, actor: Option<&Actor>, site_id: i32, input: &RecipeInput) -> Result<i64> {
        let (actor, site) = self.managed_site(actor, site_id, Access::Write).await?;
        check_buildable(&site)?;
        let mut conn = self.conn().await?;
        let base = base_facts(&mut conn, site_id).await?;
        let policy = load_policy(&mut conn).await?;
        let recipe = Recipe::parse(input, &base, &policy)?;
        check_takes_recipe(&base, &recipe)?;
        let build = conn
            .transaction::<_, Error, _>(async |conn| {
                store_recipe(conn, site_id, &recipe).await?;
                queue_build(conn, actor, &site, &recipe, "site.recipe.save").await
            })
            .await?;
        self.wake_workers();
        tracing::info!(user = %actor.username, site = %site.name, build, "recipe saved, build queued");
        Ok(build)
    }

    /// Queues a build of a dynamic site's recipe as it is (a failed build tried again, or its
    /// catalogue image made anew). Returns the build's id.
    pub async fn rebuild_site(&self, actor: Option<&Actor>, site_id: i32) -> Result<i64> {
        let (actor, site) = self.managed_site(actor, site_id, Access::Write).await?;
        check_buildable(&site)?;
        let mut conn = self.conn().await?;
        let build = conn
            .transaction::<_, Error, _>(async |conn| {
                let recipe = load_recipe(conn, site_id).await?;
                queue_build(conn, actor, &site, &recipe, "site.rebuild").await
            })
            .await?;
        self.wake_workers();
        Ok(build)
    }

    /// How builds run (admins).
    pub async fn build_policy(&self, actor: Option<&Actor>) -> Result<BuildPolicy> {
        authorize(actor, Permission::Administer, Access::Read)?;
        let mut conn = self.conn().await?;
        load_policy(&mut conn).await
    }

    /// Sets how builds run (admins); audited.
    pub async fn set_build_policy(&self, actor: Option<&Actor>, policy: &BuildPolicy) -> Result<()> {
        let actor = authorize(actor, Permission::Administer, Access::Write)?;
        if !(10..=7200).contains(&policy.time_limit_s) {
            return Err(Error::invalid("time_limit_s", "From 10 s to 2 hours."));
        }
        if !(64..=2047).contains(&policy.memory_mb) {
            return Err(Error::invalid(
                "memory_mb",
                "From 64 to 2047 MiB (the most the engine's build API takes).",
            ));
        }
        if !(100..=64000).contains(&policy.cpu_millis) {
            return Err(Error::invalid("cpu_millis", "From 0.1 to 64 cores."));
        }
        if policy.apt_list.len() > MAX_LISTED {
            return Err(Error::invalid(
                "apt_list",
                format!("At most {MAX_LISTED} packages."),
            ));
        }
        for name in &policy.apt_list {
            if !apt_pattern().is_match(name) || name.contains('=') {
                return Err(Error::invalid(
                    "apt_list",
                    format!("{name:?} is not a Debian package name."),
                ));
            }
        }
        let mut conn = self.conn().await?;
        conn.transaction::<_, Error, _>(async |conn| {
            diesel::update(build_policy::table)
                .set((
                    build_policy::time_limit_s.eq(policy.time_limit_s),
                    build_policy::memory_mb.eq(policy.memory_mb),
                    build_policy::cpu_millis.eq(policy.cpu_millis),
                    build_policy::setup_commands.eq(policy.setup_commands),
                    build_policy::apt_rule.eq(policy.apt_rule),
                    build_policy::apt_list.eq(policy.apt_list.join(" ")),
                    build_policy::updated_at.eq(diesel::dsl::now),
                ))
                .execute(conn)
                .await?;
            let details = format!(
                "{} s, {} MiB, {} mCPU, setup {}, packages: {}",
                policy.time_limit_s,
                policy.memory_mb,
                policy.cpu_millis,
                if policy.setup_commands { "on" } else { "off" },
                policy.apt_rule
            );
            super::audit(conn, actor, "build.policy", "builds", &details).await
        })
        .await
    }
}

/// Records a build of `recipe` and its operation, in the caller's transaction; the builds
/// beyond the last [`KEPT_BUILDS`] are forgotten.
async fn queue_build(
    conn: &mut AsyncPgConnection,
    actor: &Actor,
    site: &Site,
    recipe: &Recipe,
    audit_action: &str,
) -> Result<i64> {
    // The site's row is locked: two builds asked for at once get numbers of their own.
    sites::table
        .find(site.id)
        .select(sites::id)
        .for_update()
        .first::<i32>(conn)
        .await?;
    let number: i32 = site_builds::table
        .filter(site_builds::site_id.eq(site.id))
        .select(diesel::dsl::max(site_builds::number))
        .first::<Option<i32>>(conn)
        .await?
        .unwrap_or(0)
        + 1;
    let snapshot = serde_json::to_string(recipe).map_err(Error::internal)?;
    let id: i64 = diesel::insert_into(site_builds::table)
        .values((
            site_builds::site_id.eq(site.id),
            site_builds::number.eq(number),
            site_builds::recipe.eq(snapshot),
            site_builds::created_by.eq((actor.user_id > 0).then_some(actor.user_id)),
        ))
        .returning(site_builds::id)
        .get_result(conn)
        .await?;
    diesel::delete(
        site_builds::table
            .filter(site_builds::site_id.eq(site.id))
            .filter(site_builds::number.le(number - KEPT_BUILDS as i32))
            .filter(site_builds::state.ne_all([BuildState::Queued, BuildState::Running])),
    )
    .execute(conn)
    .await?;
    let details = format!("build {number}");
    record_change(
        conn,
        actor,
        site,
        &Change {
            kind: OperationKind::BuildImage,
            state: None,
            availability: None,
            audit_action,
            details: &details,
        },
    )
    .await?;
    Ok(id)
}

/// A build's output as kept: its beginning, and its end once it outgrows the room, with how
/// much was left out between — the failing step is at the end.
#[derive(Debug, Default)]
pub(crate) struct KeptLog {
    head: String,
    tail: VecDeque<String>,
    tail_bytes: usize,
    left_out: u64,
}

impl KeptLog {
    pub(crate) fn push(&mut self, line: &str) {
        let line: String = if line.len() > MAX_LINE {
            let mut end = MAX_LINE;
            while !line.is_char_boundary(end) {
                end -= 1;
            }
            format!("{}…", &line[..end])
        } else {
            line.to_owned()
        };
        if self.tail.is_empty() && self.head.len() + line.len() < KEPT_HEAD {
            self.head.push_str(&line);
            self.head.push('\n');
            return;
        }
        self.tail_bytes += line.len() + 1;
        self.tail.push_back(line);
        while self.tail_bytes > KEPT_TAIL {
            let Some(old) = self.tail.pop_front() else { break };
            self.tail_bytes -= old.len() + 1;
            self.left_out += old.len() as u64 + 1;
        }
    }

    pub(crate) fn text(&self) -> String {
        let mut text = self.head.clone();
        if self.left_out > 0 {
            text.push_str(&format!(
                "… {} of output left out …\n",
                model::human_bytes(self.left_out)
            ));
        }
        for line in &self.tail {
            text.push_str(line);
            text.push('\n');
        }
        text
    }
}

/// The newest build of `site` not finished yet: the one its operation runs.
async fn next_build(conn: &mut AsyncPgConnection, site_id: i32) -> Result<Option<(i64, i32, String)>> {
    Ok(site_builds::table
        .filter(site_builds::site_id.eq(site_id))
        .filter(site_builds::state.eq_any([BuildState::Queued, BuildState::Running]))
        .order(site_builds::number.asc())
        .select((site_builds::id, site_builds::number, site_builds::recipe))
        .first(conn)
        .await
        .optional()?)
}

impl Runtime {
    /// `build-image`: builds the oldest unfinished build of the site (one operation per
    /// build, run in order under the site's lock), or reuses the image its recipe made before.
    /// The site runs the image once its next action deploys it.
    pub(crate) async fn build_image(&self, site: &Site) -> Result<String, String> {
        let fail = |e: Error| e.to_string();
        if site.kind != SiteKind::Dynamic {
            return Ok("a static site has no image".to_owned());
        }
        let mut conn = self.platform.conn().await.map_err(fail)?;
        let Some((build_id, number, snapshot)) = next_build(&mut conn, site.id).await.map_err(fail)? else {
            // An operation whose build failed, retried: its build is over (a new one is a
            // new operation, so that a deploy's undo always belongs to its own build).
            return Err("no build of the site is waiting: press Build again for a new one".to_owned());
        };
        let recipe: Recipe = serde_json::from_str(&snapshot).unwrap_or_default();
        let base = base_facts(&mut conn, site.id).await.map_err(fail)?;
        let policy = load_policy(&mut conn).await.map_err(fail)?;
        // The image the site runs is recorded once, when the build leaves the queue: a build
        // run again after a crash keeps what the site ran before it, not its own image.
        diesel::update(
            site_builds::table
                .find(build_id)
                .filter(site_builds::state.eq(BuildState::Queued)),
        )
        .set(site_builds::previous.eq(&site.built_image))
        .execute(&mut conn)
        .await
        .map_err(|e| e.to_string())?;
        set_build(&mut conn, build_id, BuildState::Running, "")
            .await
            .map_err(fail)?;
        drop(conn);
        // What was saved is held to the catalogue and the policy as they are now: an admin may
        // have turned setup commands off, or refused a package, since.
        let allowed = Recipe::parse(&recipe.input(), &base, &policy)
            .and_then(|recipe| check_takes_recipe(&base, &recipe).map(|()| recipe));
        let outcome = match allowed {
            Ok(recipe) => {
                self.make_image(site, number, &recipe, &base, &policy, build_id)
                    .await
            }
            Err(err) => Err(err.to_string()),
        };
        let mut conn = self.platform.conn().await.map_err(fail)?;
        match outcome {
            Ok(made) => {
                let (image, state, said) = match made {
                    Made::Plain => (
                        None,
                        BuildState::Succeeded,
                        format!(
                            "build {number}: nothing to add, the catalogue image {} runs",
                            base.reference
                        ),
                    ),
                    Made::Reused(tag) => (
                        Some(tag.clone()),
                        BuildState::Reused,
                        format!("build {number}: the recipe is unchanged, {tag} is used again"),
                    ),
                    Made::Built(tag) => (
                        Some(tag.clone()),
                        BuildState::Succeeded,
                        format!("build {number}: built {tag}"),
                    ),
                };
                // The site's image and its build's end together: a crash between them would
                // leave a site running an image its builds do not account for.
                conn.transaction::<_, Error, _>(async |conn| {
                    set_built_image(conn, site.id, image.as_deref()).await?;
                    set_build(conn, build_id, state, "").await?;
                    set_tag(conn, build_id, image.as_deref().unwrap_or("")).await
                })
                .await
                .map_err(fail)?;
                Ok(said)
            }
            Err(why) => {
                set_build(&mut conn, build_id, BuildState::Failed, &why)
                    .await
                    .map_err(fail)?;
                Err(format!("build {number} failed: {why}"))
            }
        }
    }

    async fn make_image(
        &self,
        site: &Site,
        number: i32,
        recipe: &Recipe,
        base: &BaseFacts,
        policy: &BuildPolicy,
        build_id: i64,
    ) -> Result<Made, String> {
        if recipe.is_empty() {
            return Ok(Made::Plain);
        }
        let id = site.engine_id();
        let prepared = match recipe.source {
            RecipeSource::Packages => self.packages_context(recipe, base, policy).await?,
            RecipeSource::Dockerfile => self.own_dockerfile_context(site, recipe).await?,
        };
        if let Some(tag) = self
            .orchestrator
            .site_image_for(id, &prepared.digest)
            .await
            .map_err(|e| e.to_string())?
        {
            // Held to the size limit like a new one (its removal may have failed before).
            let size = self
                .orchestrator
                .image_size(&tag)
                .await
                .map_err(|e| e.to_string())?;
            if size <= MAX_IMAGE_BYTES {
                return Ok(Made::Reused(tag));
            }
            self.orchestrator
                .remove_image(&tag)
                .await
                .map_err(|e| e.to_string())?;
        }
        let build = orchestrator::ImageBuild {
            owner: orchestrator::ImageOwner::Site(id),
            number: u32::try_from(number).unwrap_or(0),
            context: prepared.context,
            dockerfile: prepared.dockerfile,
            recipe: prepared.digest,
            limits: orchestrator::BuildLimits {
                time_limit: prepared.time_left.unwrap_or(policy.limits().time_limit),
                ..policy.limits()
            },
        };
        self.run_build(build, &prepared.preface, LogSink::Site(build_id))
            .await
            .map(Made::Built)
    }

    /// Runs `build` on the engine, its output kept (after `preface`) in `sink` as it comes;
    /// an image over [`MAX_IMAGE_BYTES`] is removed and fails it. Returns the image's tag, or
    /// why it failed.
    pub(crate) async fn run_build(
        &self,
        build: orchestrator::ImageBuild,
        preface: &[String],
        sink: LogSink,
    ) -> Result<String, String> {
        let (lines, mut heard) = tokio::sync::mpsc::unbounded_channel();
        let built = self.orchestrator.build_labelled_image(build, move |line| {
            let _ = lines.send(line.0);
        });
        let mut built = std::pin::pin!(built);
        let mut log = KeptLog::default();
        for line in preface {
            log.push(line);
        }
        // The page reads the output once a second: written as often, whole (it is capped).
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
        let mut changed = true;
        let outcome = loop {
            tokio::select! {
                done = &mut built => break done,
                Some(line) = heard.recv() => {
                    log.push(&line);
                    changed = true;
                }
                _ = tick.tick() => {
                    // A catalogue build's write is its heartbeat too: made even when quiet.
                    // Its claim taken over by another worker, this one stops building.
                    if (changed || matches!(sink, LogSink::Catalogue { .. }))
                        && !self.write_log(sink, &log).await
                    {
                        break Err(orchestrator::Error::Transient(
                            "another worker took this build over".to_owned(),
                        ));
                    }
                    changed = false;
                }
            }
        };
        while let Ok(line) = heard.try_recv() {
            log.push(&line);
        }
        let mut outcome = outcome.map_err(|e| match e {
            orchestrator::Error::Build { message, .. } => message,
            other => other.to_string(),
        });
        // An image larger than the limit is not kept: the engine's disk is everyone's.
        if let Ok(tag) = &outcome {
            match self.orchestrator.image_size(tag).await {
                Ok(size) if size > MAX_IMAGE_BYTES => {
                    let removed = self.orchestrator.remove_image(tag).await;
                    if let Err(err) = removed {
                        tracing::warn!(image = %tag, error = %err, "removing an image over the limit failed");
                    }
                    outcome = Err(format!(
                        "the image is {}, more than the {} an image may take",
                        model::human_bytes(size),
                        model::human_bytes(MAX_IMAGE_BYTES)
                    ));
                }
                Ok(_) => {}
                Err(err) => outcome = Err(err.to_string()),
            }
        }
        if let Err(why) = &outcome {
            log.push(&format!("error: {why}"));
        }
        self.write_log(sink, &log).await;
        outcome
    }

    /// A recipe of packages: the Dockerfile Director writes for it on its catalogue image
    /// (made first when it is one of Director's own), alone in its context.
    async fn packages_context(
        &self,
        recipe: &Recipe,
        base: &BaseFacts,
        policy: &BuildPolicy,
    ) -> Result<Prepared, String> {
        // The recipe's digest names the very image it starts from.
        self.orchestrator
            .image_present(&base.reference)
            .await
            .map_err(|e| e.to_string())?;
        let base_id = self
            .orchestrator
            .image_id(&base.reference)
            .await
            .map_err(|e| e.to_string())?;
        let dockerfile = recipe.dockerfile(&base.reference, policy);
        Ok(Prepared {
            digest: short_digest(&[dockerfile.as_bytes(), base_id.as_bytes()]),
            context: orchestrator::dockerfile_context(&dockerfile).map_err(|e| e.to_string())?,
            dockerfile: "Dockerfile".to_owned(),
            preface: dockerfile.lines().map(|line| format!("> {line}")).collect(),
            time_left: None,
        })
    }

    /// The site's own Dockerfile, checked, with its context folder packed (on a blocking
    /// thread, through descriptors that never follow the site's links); the catalogue images
    /// it starts from are made first when they are Director's own.
    async fn own_dockerfile_context(&self, site: &Site, recipe: &Recipe) -> Result<Prepared, String> {
        let mut conn = self.platform.conn().await.map_err(|e| e.to_string())?;
        let mut catalogue: Vec<String> = images::table
            .filter(images::allows_dockerfile.eq(true))
            .filter(images::enabled.eq(true))
            .select(images::reference)
            .load(&mut conn)
            .await
            .map_err(|e| e.to_string())?;
        // An image an admin built anew keeps its earlier tags: a site's Dockerfile written
        // for one of them still builds.
        let earlier: Vec<String> = catalogue_builds::table
            .inner_join(images::table)
            .filter(images::allows_dockerfile.eq(true))
            .filter(images::enabled.eq(true))
            .filter(catalogue_builds::state.eq(BuildState::Succeeded))
            .select(catalogue_builds::tag)
            .load(&mut conn)
            .await
            .map_err(|e| e.to_string())?;
        catalogue.extend(earlier);
        let policy = load_policy(&mut conn).await.map_err(|e| e.to_string())?;
        drop(conn);
        // Packing is part of the build: it gives up at the build's time limit.
        let deadline = std::time::Instant::now() + policy.limits().time_limit;
        let (directory, uid) = (self.directory(site), Self::uid(site));
        let (path, context) = (recipe.dockerfile.clone(), recipe.context.clone());
        let (checked, packed) = crate::files::blocking(move || {
            let files = crate::files::SiteFiles::open(&directory, uid).map_err(|e| e.to_string())?;
            let read = files
                .read_versioned(&path, dockerfile::MAX_DOCKERFILE_BYTES)
                .map_err(|e| format!("the Dockerfile {path}: {e}"))?;
            if read.owner != uid {
                return Err(format!("the Dockerfile {path} is not the site's own file"));
            }
            let text = read.bytes.ok_or_else(|| {
                format!(
                    "the Dockerfile {path} has {}, more than the {} a Dockerfile may have",
                    model::human_bytes(read.size),
                    model::human_bytes(dockerfile::MAX_DOCKERFILE_BYTES)
                )
            })?;
            let checked = dockerfile::check(&text, &catalogue).map_err(|why| format!("{path}: {why}"))?;
            let packed = dockerfile::pack(&files, &context, checked.canonical.as_bytes(), deadline)?;
            Ok::<_, String>((checked, packed))
        })
        .await
        .map_err(|e| e.to_string())??;
        let mut parts: Vec<Vec<u8>> = vec![checked.canonical.into_bytes(), packed.digest.into_bytes()];
        for base in &checked.bases {
            self.orchestrator
                .image_present(base)
                .await
                .map_err(|e| e.to_string())?;
            let id = self
                .orchestrator
                .image_id(base)
                .await
                .map_err(|e| e.to_string())?;
            parts.push(id.into_bytes());
        }
        let parts: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
        Ok(Prepared {
            digest: short_digest(&parts),
            preface: vec![format!(
                "> {}, with the folder {} as its context ({})",
                recipe.dockerfile,
                recipe.context,
                model::human_bytes(packed.tar.len() as u64)
            )],
            context: packed.tar,
            dockerfile: dockerfile::CONTEXT_DOCKERFILE.to_owned(),
            time_left: Some(deadline.saturating_duration_since(std::time::Instant::now())),
        })
    }

    /// Keeps `log`; false when the build is no longer this worker's (a catalogue build taken
    /// over). A failed write is logged and the build goes on.
    async fn write_log(&self, sink: LogSink, log: &KeptLog) -> bool {
        let written = async {
            let mut conn = self.platform.conn().await?;
            let rows = match sink {
                LogSink::Site(id) => {
                    diesel::update(site_builds::table.find(id))
                        .set(site_builds::log.eq(log.text()))
                        .execute(&mut conn)
                        .await?
                }
                // Its heartbeat too: a worker that stops writing has died, and another takes
                // the build over.
                LogSink::Catalogue { id, claim } => {
                    diesel::update(
                        catalogue_builds::table
                            .find(id)
                            .filter(catalogue_builds::claim.eq(claim)),
                    )
                    .set((
                        catalogue_builds::log.eq(log.text()),
                        catalogue_builds::heartbeat.eq(diesel::dsl::now),
                    ))
                    .execute(&mut conn)
                    .await?
                }
            };
            Ok::<_, Error>(rows > 0)
        };
        match written.await {
            Ok(ours) => ours,
            Err(err) => {
                tracing::warn!(?sink, error = %err, "keeping a build's output failed");
                true
            }
        }
    }

    /// `remove-images`: every image of the site goes (it is being deleted).
    pub(crate) async fn remove_images(&self, site: &Site) -> Result<String, String> {
        let id = site.engine_id();
        self.orchestrator
            .remove_site_images(id)
            .await
            .map(|()| "its images removed".to_owned())
            .map_err(|e| e.to_string())
    }

    /// `prune-images`: the site's images beyond the last few go (never the one it runs).
    pub(crate) async fn prune_images(&self, site: &Site) -> Result<String, String> {
        let id = site.engine_id();
        let in_use: Vec<String> = site.built_image.iter().cloned().collect();
        let removed = self
            .orchestrator
            .prune_site_images(id, KEPT_IMAGES, &in_use)
            .await
            .map_err(|e| e.to_string())?;
        Ok(match removed.len() {
            0 => "no old image to remove".to_owned(),
            n => format!("{n} old image(s) removed"),
        })
    }
}

/// Where a build's output is kept.
#[derive(Debug, Clone, Copy)]
pub(crate) enum LogSink {
    /// A site's build.
    Site(i64),
    /// A catalogue image's build, while `claim` is its worker's.
    Catalogue {
        /// The build.
        id: i64,
        /// Its worker's claim.
        claim: i64,
    },
}

impl BuildPolicy {
    /// What a build may use.
    pub(crate) fn limits(&self) -> orchestrator::BuildLimits {
        orchestrator::BuildLimits {
            memory_bytes: u64::try_from(self.memory_mb).unwrap_or(2047) << 20,
            cpu_millis: u32::try_from(self.cpu_millis).unwrap_or(2000),
            time_limit: std::time::Duration::from_secs(u64::try_from(self.time_limit_s).unwrap_or(600)),
        }
    }
}

/// A build ready to send: what it is made from, packed.
struct Prepared {
    /// The digest of everything the image is made from: an image labelled with it is reused.
    digest: String,
    /// The context, a tar.
    context: Vec<u8>,
    /// The Dockerfile's path in the context.
    dockerfile: String,
    /// What the kept output starts with.
    preface: Vec<String>,
    /// What is left of the build's time limit when packing its context took some.
    time_left: Option<std::time::Duration>,
}

/// The first 128 bits of the SHA-256 of `parts`, in hex: the label an image is found by.
fn short_digest(parts: &[&[u8]]) -> String {
    let mut digest = dockerfile::hex_digest(&parts.concat());
    digest.truncate(32);
    digest
}

/// What a build made.
enum Made {
    /// Nothing: the recipe adds nothing, the catalogue image runs as it is.
    Plain,
    /// The image built before from the same recipe.
    Reused(String),
    /// A new image.
    Built(String),
}

async fn set_build(
    conn: &mut AsyncPgConnection,
    build_id: i64,
    state: BuildState,
    error: &str,
) -> Result<()> {
    let finished = (!state.under_way()).then(Utc::now);
    let started = (state == BuildState::Running).then(Utc::now);
    diesel::update(site_builds::table.find(build_id))
        .set((
            site_builds::state.eq(state),
            site_builds::error.eq(error),
            site_builds::finished_at.eq(finished),
        ))
        .execute(conn)
        .await?;
    if let Some(started) = started {
        diesel::update(site_builds::table.find(build_id))
            // A build run again after a crash starts its output anew.
            .set((site_builds::started_at.eq(started), site_builds::log.eq("")))
            .execute(conn)
            .await?;
    }
    Ok(())
}

/// After the deploy of the site's latest build was rolled back: the site runs again the image
/// it ran when that build started, and the build is marked failed with why.
pub(crate) async fn undo(conn: &mut AsyncPgConnection, site_id: i32) -> Result<()> {
    let latest: Option<(i64, Option<String>)> = site_builds::table
        .filter(site_builds::site_id.eq(site_id))
        .filter(site_builds::state.eq_any([BuildState::Succeeded, BuildState::Reused]))
        .order(site_builds::number.desc())
        .select((site_builds::id, site_builds::previous))
        .first(conn)
        .await
        .optional()?;
    let Some((build_id, previous)) = latest else {
        return Ok(());
    };
    set_built_image(conn, site_id, previous.as_deref()).await?;
    set_build(
        conn,
        build_id,
        BuildState::Failed,
        "its new version never answered HTTP on its port: rolled back",
    )
    .await
}

async fn set_tag(conn: &mut AsyncPgConnection, build_id: i64, tag: &str) -> Result<()> {
    diesel::update(site_builds::table.find(build_id))
        .set(site_builds::tag.eq(tag))
        .execute(conn)
        .await?;
    Ok(())
}

async fn set_built_image(conn: &mut AsyncPgConnection, site_id: i32, tag: Option<&str>) -> Result<()> {
    diesel::update(sites::table.find(site_id))
        .set(sites::built_image.eq(tag))
        .execute(conn)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn python() -> BaseFacts {
        BaseFacts {
            name: "python".into(),
            reference: "director/python:3".into(),
            allows_recipe: true,
            allows_dockerfile: false,
            has_pip: true,
            has_npm: false,
        }
    }

    fn policy() -> BuildPolicy {
        BuildPolicy {
            time_limit_s: 600,
            memory_mb: 2048,
            cpu_millis: 2000,
            setup_commands: true,
            apt_rule: AptRule::Any,
            apt_list: Vec::new(),
        }
    }

    fn parse(apt: &str, pip: &str, npm: &str, setup: &str) -> Result<Recipe> {
        let input = RecipeInput {
            apt: apt.into(),
            pip: pip.into(),
            npm: npm.into(),
            setup: setup.into(),
            ..RecipeInput::default()
        };
        Recipe::parse(&input, &python(), &policy())
    }

    #[test]
    fn package_names_with_options_or_shell_syntax_are_refused() {
        parse(
            "jq curl libpq5=15.4-0+deb12u1",
            "flask==3.0.0 requests[socks]>=2,<3",
            "",
            "",
        )
        .unwrap();
        for bad in [
            "-o",
            "--allow-unauthenticated",
            ";",
            "$(id)",
            "jq;id",
            "`id`",
            "a|b",
            "../x",
            "Jq",
            "a'b",
        ] {
            assert!(parse(bad, "", "", "").is_err(), "apt {bad:?}");
        }
        for bad in [
            "-r",
            "--index-url=http://x",
            "git+https://x",
            "./local",
            "a b;c",
            "x @ http://y",
            "$(id)",
        ] {
            assert!(parse("", bad, "", "").is_err(), "pip {bad:?}");
        }
        assert!(parse("", "", "express", "").is_err(), "no npm on python");
        assert!(parse("", "", "", "echo a \\\necho b").is_err());
    }

    #[test]
    fn the_admins_rule_and_setup_switch_are_kept() {
        let input = RecipeInput {
            apt: "jq".into(),
            ..RecipeInput::default()
        };
        let only_curl = BuildPolicy {
            apt_rule: AptRule::Allow,
            apt_list: vec!["curl".into()],
            ..policy()
        };
        assert!(Recipe::parse(&input, &python(), &only_curl).is_err());
        let no_jq = BuildPolicy {
            apt_rule: AptRule::Deny,
            apt_list: vec!["jq".into()],
            ..policy()
        };
        assert!(Recipe::parse(&input, &python(), &no_jq).is_err());
        let no_setup = BuildPolicy {
            setup_commands: false,
            ..policy()
        };
        let setup = RecipeInput {
            setup: "echo hi".into(),
            ..RecipeInput::default()
        };
        assert!(Recipe::parse(&setup, &python(), &no_setup).is_err());
        // apt's modifiers and patterns do not read past a deny-list.
        let no_ssh = BuildPolicy {
            apt_rule: AptRule::Deny,
            apt_list: vec!["openssh-server".into()],
            ..policy()
        };
        for sneaky in [
            "openssh-server+",
            "openssh-server-",
            "openssh-server=1",
            "openssh-serve.",
        ] {
            let input = RecipeInput {
                apt: sneaky.into(),
                ..RecipeInput::default()
            };
            assert!(Recipe::parse(&input, &python(), &no_ssh).is_err(), "{sneaky}");
        }
        // Without setup commands, packages run no scripts of their own either.
        let wheels = Recipe::parse(
            &RecipeInput {
                pip: "flask".into(),
                ..RecipeInput::default()
            },
            &python(),
            &no_setup,
        )
        .unwrap()
        .dockerfile("director/python:3", &no_setup);
        assert!(wheels.contains("--only-binary=:all: -- 'flask'"), "{wheels}");
    }

    #[test]
    fn setup_lines_cannot_become_flags_or_other_instructions() {
        for bad in [
            "--mount=type=bind,from=x,target=/x cat /x",
            "[\"sh\", \"-c\", \"id\"]",
            "echo a\rCOPY / /x",
            "echo \\",
        ] {
            assert!(parse("", "", "", bad).is_err(), "{bad:?}");
        }
        parse("", "", "", "  echo ok # - and [ later are fine").unwrap();
    }

    #[test]
    fn the_dockerfile_quotes_every_name_and_runs_each_setup_line() {
        let recipe = parse("jq", "flask<3", "", "mkdir /opt/x\n# a comment\n\necho done").unwrap();
        let file = recipe.dockerfile("director/python:3", &policy());
        assert!(file.starts_with("FROM director/python:3\n"), "{file}");
        assert!(file.contains("--no-install-recommends -- 'jq'"), "{file}");
        assert!(file.contains("-- 'flask<3'"), "{file}");
        assert!(file.contains("RUN mkdir /opt/x\nRUN echo done\n"), "{file}");
        assert!(!file.contains("comment"), "{file}");
    }

    #[test]
    fn a_huge_output_keeps_its_beginning_and_its_end() {
        let mut log = KeptLog::default();
        log.push("Step 1/3 : FROM x");
        for i in 0..200_000 {
            log.push(&format!("line {i} {}", "x".repeat(100)));
        }
        log.push("E: Unable to locate package nope");
        let text = log.text();
        assert!(text.len() < KEPT_HEAD + KEPT_TAIL + 1024, "{}", text.len());
        assert!(text.starts_with("Step 1/3"));
        assert!(text.contains("of output left out"));
        assert!(text.ends_with("E: Unable to locate package nope\n"));
        log.push(&"y".repeat(1 << 20));
        assert!(log.text().len() < KEPT_HEAD + KEPT_TAIL + 1024);
    }
}
