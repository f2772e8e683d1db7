//! Sites: the model, the permission check on each, and the changes made to them — each an
//! operation of ordered actions in the durable queue (`operations`), run by workers.

mod builds;
mod catalogue;
mod catalogue_builds;
mod certificates;
pub(crate) mod databases;
mod disk;
mod dockerfile;
mod domains;
mod lock;
mod logs;
mod manage;
mod queue;
mod reconcile;
mod runtime;
mod shell;
mod variables;

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncConnection as _, RunQueryDsl};

pub use builds::{
    AptRule, BuildPolicy, BuildRecord, BuildState, BuildSummary, KEPT_BUILDS, Recipe, RecipeInput,
    RecipeSource, SiteImageView,
};
pub use catalogue::{CatalogueImage, EngineImage, RecipeSupport};
pub use catalogue_builds::CatalogueBuild;
pub use certificates::{
    CertificatePass, CertificateProblem, CertificateRecord, CertificateState, HostCertificate, ServedHost,
    certificate_backoff,
};
pub use databases::{
    Connection, DatabaseInfo, DatabaseKind, DatabaseServers, DatabaseState, ExternalServer, ServerFacts,
    ServerOverview, SiteDatabase, SiteDatabaseSize, database_name,
};
pub use disk::{DiskUse, measure};
pub use domains::{
    Domain, DomainRules, Proof, UNVERIFIED_CLAIM_DAYS, check_domain, txt_name, txt_value, wildcard_over,
};
pub use logs::{LogEntry, MAX_LOG_LINES};
pub use manage::{AuditEntry, BODY_LIMIT_MB, CPU_MILLIS, Limits, MEMORY_MB, SITES_PER_PAGE, SiteWithMembers};
pub use model::site::{Availability, Event, IllegalTransition, Purpose, SiteKind, SiteState};
/// A shell's streams and controls, as the engine gives them: the doors (the browser's terminal,
/// SSH) pump them without knowing the engine.
pub use orchestrator::{ExecControl, ExecInput, ExecOutput, ExecSession, ExitCode, LogStream};
pub use queue::{
    Action, ActionRecord, ActionState, Actions, ClaimedOperation, OperationKind, OperationRecord,
    OperationState,
};
pub use reconcile::Correction;
pub use runtime::{Runtime, TraefikMode};
pub use shell::{DatabaseDump, MAX_COLS, MAX_ROWS, OpenedFiles, ShellRequest, clamp_size};
pub use variables::{MAX_VARIABLES, Variable, VariableInput, Variables};

use crate::{
    Access, Actor, Error, Permission, Platform, Result, authorize,
    schema::{audit_log, images, operations, site_members, sites},
};

/// Names no site may take: they would read as the manager's or the mail's.
const RESERVED: [&str; 14] = [
    "www",
    "admin",
    "api",
    "manager",
    "director",
    "mail",
    "smtp",
    "imap",
    "ftp",
    "ssh",
    "static",
    "assets",
    "localhost",
    "root",
];

/// A site's name: a DNS label of 1–32 lower-case letters, digits and inner hyphens, not reserved.
pub fn validate_site_name(raw: &str) -> Result<String> {
    let name = raw.trim().to_ascii_lowercase();
    if name.is_empty() {
        return Err(Error::invalid("name", "Enter a name for the site."));
    }
    if name.len() > 32 {
        return Err(Error::invalid("name", "A site's name has at most 32 characters."));
    }
    // The label rule itself is the orchestrator's, the one checked before anything reaches Docker.
    if orchestrator::validate_site_name(&name).is_err() {
        return Err(Error::invalid(
            "name",
            "A site's name has only letters, digits and hyphens, and starts and ends with a letter or digit.",
        ));
    }
    if RESERVED.contains(&name.as_str()) {
        return Err(Error::invalid("name", format!("The name {name} is reserved.")));
    }
    // `xn--` starts an IDNA A-label, which browsers show as Unicode: a site could look like
    // another one. The third and fourth places are reserved for such prefixes (RFC 5891).
    if name.get(2..4) == Some("--") {
        return Err(Error::invalid(
            "name",
            "A site's name cannot have two hyphens in its third and fourth places (like xn--, which browsers show as other letters).",
        ));
    }
    Ok(name)
}

/// The fields of a new site, as typed.
#[derive(Debug, Clone)]
pub struct NewSite {
    /// Its name (a DNS label).
    pub name: String,
    /// What it is for, in a sentence.
    pub description: String,
    /// `user`, `project`, `activity` or `other`.
    pub purpose: String,
    /// Static or dynamic.
    pub kind: String,
    /// The image's catalogue name.
    pub image: String,
}

/// A new site's fields, checked (see `Platform::check_new_site`).
#[derive(Debug, Clone)]
pub(crate) struct CheckedSite {
    pub(crate) name: String,
    pub(crate) kind: SiteKind,
    pub(crate) purpose: Purpose,
    pub(crate) description: String,
    pub(crate) image_id: i64,
}

/// A site as the pages show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Site {
    /// Its id (its service is `site_NNNN`).
    pub id: i32,
    /// Its name.
    pub name: String,
    /// Its description.
    pub description: String,
    /// Its purpose.
    pub purpose: Purpose,
    /// Static or dynamic.
    pub kind: SiteKind,
    /// Its image's catalogue name.
    pub image: String,
    /// Its image's reference.
    pub image_reference: String,
    /// Whether it is served, and who decided.
    pub availability: Availability,
    /// Where it is in its life.
    pub state: SiteState,
    /// CPU limit in thousandths of a core.
    pub cpu_millis: i32,
    /// Memory limit in MiB.
    pub memory_mb: i32,
    /// Request body limit in MiB.
    pub body_limit_mb: i32,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// Whether a create or fix operation ever made it whole (its directory, service and
    /// routes): only then is it served and corrected by the reconciler.
    pub provisioned: bool,
    /// Its verified domains of its own, besides `<name>.<sites domain>`.
    pub domains: Vec<String>,
    /// Its databases, by kind.
    pub databases: Vec<SiteDatabase>,
    /// The image a build made for it, when one did (it runs that instead of its catalogue
    /// image as it is).
    pub built_image: Option<String>,
    /// Its own environment variables.
    pub variables: Variables,
}

/// One change to a site: the operation that carries it out, the state and availability it
/// moves the site to (when they change), and its audit line.
struct Change<'a> {
    kind: OperationKind,
    state: Option<SiteState>,
    availability: Option<Availability>,
    audit_action: &'a str,
    details: &'a str,
}

/// Records, in the caller's transaction, the end of the terminal containers (and, for dynamic
/// sites, of the service's task) of every site `user_id` could open a terminal in — the sites
/// they are a member of, every site if they are an admin — because they lost that access
/// (`why`), or a credential of theirs may be in other hands. A site with a reset queued
/// already gets no second one. The caller wakes the workers once it commits.
pub(crate) async fn reset_terminals_of(
    conn: &mut diesel_async::AsyncPgConnection,
    actor: &Actor,
    user_id: i64,
    why: &str,
) -> Result<()> {
    use crate::schema::users;
    let role: Option<crate::Role> = users::table
        .find(user_id)
        .select(users::role)
        .first(conn)
        .await
        .optional()?;
    let ids: Vec<i32> = if role == Some(crate::Role::Admin) {
        sites::table.select(sites::id).load(conn).await?
    } else {
        site_members::table
            .filter(site_members::user_id.eq(user_id))
            .select(site_members::site_id)
            .load(conn)
            .await?
    };
    let queued: std::collections::HashSet<i32> = operations::table
        .filter(operations::kind.eq(OperationKind::ResetTerminal))
        .filter(operations::state.eq(OperationState::Queued))
        .select(operations::site_id)
        .load::<i32>(conn)
        .await?
        .into_iter()
        .collect();
    for id in ids.into_iter().filter(|id| !queued.contains(id)) {
        if let Some(site) = load_site(conn, id).await?
            && site.state != SiteState::Deleting
        {
            record_change(conn, actor, &site, &terminal_reset(why)).await?;
        }
    }
    Ok(())
}

/// Ends a site's terminal container (see [`OperationKind::ResetTerminal`]) because `why`.
fn terminal_reset(why: &str) -> Change<'_> {
    Change {
        kind: OperationKind::ResetTerminal,
        state: None,
        availability: None,
        audit_action: "site.terminal.reset",
        details: why,
    }
}

/// Records `change` in the caller's transaction: the site's new state and availability, the
/// operation and the audit line, so that nothing of it is committed without the rest (a
/// domain removed with no operation to take its routes away). The caller wakes the workers
/// once it commits.
async fn record_change(
    conn: &mut diesel_async::AsyncPgConnection,
    actor: &Actor,
    site: &Site,
    change: &Change<'_>,
) -> Result<i64> {
    // The new state was worked out from the state the caller read: it is written only if the
    // site is still in that state (compare-and-set), so a change that happened meanwhile is
    // refused rather than overwritten.
    if let Some(state) = change.state {
        let written = diesel::update(sites::table.find(site.id).filter(sites::state.eq(site.state)))
            .set((sites::state.eq(state), sites::updated_at.eq(Utc::now())))
            .execute(conn)
            .await?;
        if written == 0 {
            return Err(Error::Conflict(
                "The site changed meanwhile: look at it again, then retry.".to_owned(),
            ));
        }
    }
    if let Some(availability) = change.availability {
        diesel::update(sites::table.find(site.id))
            .set(sites::availability.eq(availability))
            .execute(conn)
            .await?;
    }
    let operation = queue::enqueue(conn, site.id, change.kind, site.kind, actor).await?;
    audit(conn, actor, change.audit_action, &site.name, change.details).await?;
    Ok(operation)
}

impl Site {
    /// Its id as the engine names it (`site_0042`).
    pub fn engine_id(&self) -> orchestrator::SiteId {
        orchestrator::SiteId(u32::try_from(self.id).unwrap_or(0))
    }

    /// The image it runs: the one its latest build made, or its catalogue image as it is.
    pub fn running_image(&self) -> &str {
        self.built_image.as_deref().unwrap_or(&self.image_reference)
    }

    /// Whether it is made and at rest in its life (not being created or deleted): what the
    /// reconciler may correct. A site whose create never finished is not: nothing of it may
    /// be served (its files or service may be missing).
    pub(crate) fn settled(&self) -> bool {
        self.provisioned
            && matches!(
                self.state,
                SiteState::Running | SiteState::Failing | SiteState::Stopped
            )
    }
}

type SiteRow = (
    (
        i32,
        String,
        String,
        Purpose,
        SiteKind,
        Availability,
        SiteState,
        i32,
        i32,
        i32,
        DateTime<Utc>,
        Option<DateTime<Utc>>,
    ),
    (String, String, Option<String>),
    Vec<String>,
    Vec<String>,
    Vec<String>,
);

/// The columns a [`Site`] is read from, sites joined with their image.
type SiteColumns = (
    (
        sites::id,
        sites::name,
        sites::description,
        sites::purpose,
        sites::kind,
        sites::availability,
        sites::state,
        sites::cpu_millis,
        sites::memory_mb,
        sites::body_limit_mb,
        sites::created_at,
        sites::provisioned_at,
    ),
    // What it runs: its catalogue image, and the image a build made for it.
    (images::name, images::reference, sites::built_image),
    TextArray,
    TextArray,
    TextArray,
);

type TextArray = crate::db::ConstSql<diesel::sql_types::Array<diesel::sql_types::Text>>;

fn site_columns() -> SiteColumns {
    // diesel's columns are unit structs with `Default`: the type says them; the verified domains,
    // databases and variables come with the row from subqueries (one query per page of sites,
    // not one per site), constant text so that the statement stays prepared.
    (
        Default::default(),
        Default::default(),
        TextArray::new(
            "array(SELECT d.host FROM site_domains d \
             WHERE d.site_id = sites.id AND d.verified_at IS NOT NULL ORDER BY d.host)",
        ),
        TextArray::new(databases::SITE_DATABASES_COLUMN),
        TextArray::new(variables::SITE_VARIABLES_COLUMN),
    )
}

fn site_from_row(row: SiteRow) -> Site {
    let (
        (
            id,
            name,
            description,
            purpose,
            kind,
            availability,
            state,
            cpu_millis,
            memory_mb,
            body_limit_mb,
            created_at,
            provisioned_at,
        ),
        (image, image_reference, built_image),
        domains,
        databases,
        variables,
    ) = row;
    Site {
        id,
        name,
        description,
        purpose,
        kind,
        image,
        image_reference,
        availability,
        state,
        cpu_millis,
        memory_mb,
        body_limit_mb,
        created_at,
        provisioned: provisioned_at.is_some(),
        domains,
        databases: databases::parse_column(&databases),
        built_image,
        variables: variables::parse_column(&variables),
    }
}

pub(crate) async fn load_site(conn: &mut diesel_async::AsyncPgConnection, id: i32) -> Result<Option<Site>> {
    Ok(sites::table
        .inner_join(images::table)
        .filter(sites::id.eq(id))
        .select(site_columns())
        .first::<SiteRow>(conn)
        .await
        .optional()?
        .map(site_from_row))
}

/// Every site, in the order they were made (passes over all of them are the same each time).
pub(crate) async fn load_all_sites(conn: &mut diesel_async::AsyncPgConnection) -> Result<Vec<Site>> {
    Ok(sites::table
        .inner_join(images::table)
        .select(site_columns())
        .order(sites::id)
        .load::<SiteRow>(conn)
        .await?
        .into_iter()
        .map(site_from_row)
        .collect())
}

pub(crate) async fn audit(
    conn: &mut diesel_async::AsyncPgConnection,
    actor: &Actor,
    action: &str,
    target: &str,
    details: &str,
) -> Result<()> {
    diesel::insert_into(audit_log::table)
        .values((
            audit_log::actor_id.eq((actor.user_id > 0).then_some(actor.user_id)),
            audit_log::actor.eq(&actor.username),
            audit_log::action.eq(action),
            audit_log::target.eq(target),
            audit_log::details.eq(details),
        ))
        .execute(conn)
        .await?;
    Ok(())
}

/// The most sites one page of [`Platform::list_sites`] holds.
pub const MAX_PAGE: i64 = 200;

/// Cuts `rows` — read as one more than `limit`, to learn whether a page follows — to `limit`,
/// and gives the next page's cursor (`cursor` of the page's last row) when one follows.
pub fn cut_page<T, C>(rows: &mut Vec<T>, limit: i64, cursor: impl Fn(&T) -> C) -> Option<C> {
    let limit = usize::try_from(limit).unwrap_or_default();
    if rows.len() <= limit {
        return None;
    }
    rows.truncate(limit);
    rows.last().map(cursor)
}

/// Whose sites a listing shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Whose {
    /// The actor's own (those they belong to).
    Mine,
    /// Every site (admins).
    Everyone,
}

/// Which page of sites to list.
#[derive(Debug, Clone)]
pub struct SiteQuery {
    /// Whose.
    pub whose: Whose,
    /// Only sites with this in their name.
    pub name: Option<String>,
    /// The name of the last site of the page before (the cursor).
    pub after: Option<String>,
    /// How many at most (clamped to 1..=[`MAX_PAGE`]).
    pub limit: i64,
}

/// One page of sites.
#[derive(Debug, Clone)]
pub struct SitePage {
    /// The sites, in name order.
    pub sites: Vec<Site>,
    /// The cursor of the next page, when there is one.
    pub next: Option<String>,
}

impl Platform {
    /// The address of a site, as visitors reach it.
    pub fn url_of(&self, site: &Site) -> String {
        self.site_address(&site.name)
    }

    /// The address of the site called `name`: `https://` when the edge serves HTTPS (the
    /// default ports left out).
    pub fn site_address(&self, name: &str) -> String {
        let settings = self.settings();
        let (scheme, port, default) = match settings.sites_https_port {
            Some(port) => ("https", port, 443),
            None => ("http", settings.sites_port, 80),
        };
        let port = if port == default {
            String::new()
        } else {
            format!(":{port}")
        };
        format!("{scheme}://{name}.{}{port}", settings.sites_domain)
    }

    /// The images a new site may use, by name: (name, description, serves static, serves dynamic).
    pub async fn site_images(&self, actor: Option<&Actor>) -> Result<Vec<(String, String, bool, bool)>> {
        authorize(actor, Permission::UseManager, Access::Read)?;
        let mut conn = self.conn().await?;
        Ok(images::table
            .filter(images::enabled.eq(true))
            .order(images::name.asc())
            .select((
                images::name,
                images::description,
                images::serves_static,
                images::serves_dynamic,
            ))
            .load(&mut conn)
            .await?)
    }

    /// The site `id`, if `actor` may manage it (a member, or an admin). To anyone else it does
    /// not exist: the answer is `NotFound`, never `Forbidden`.
    pub async fn site(&self, actor: Option<&Actor>, id: i32) -> Result<Site> {
        Ok(self.managed_site(actor, id, Access::Read).await?.1)
    }

    /// The site `id` and the actor the check proved may take `access` to it (see
    /// [`Platform::site`]).
    pub(crate) async fn managed_site<'a>(
        &self,
        actor: Option<&'a Actor>,
        id: i32,
        access: Access,
    ) -> Result<(&'a Actor, Site)> {
        let actor = authorize(actor, Permission::UseManager, Access::Read)?;
        let mut conn = self.conn().await?;
        let site = load_site(&mut conn, id).await?.ok_or(Error::NotFound("site"))?;
        let is_member = site_members::table
            .filter(site_members::site_id.eq(id))
            .filter(site_members::user_id.eq(actor.user_id))
            .count()
            .get_result::<i64>(&mut conn)
            .await?
            > 0;
        // Whoever may not see the site is not told it exists; a token that reaches it but not
        // this far is told why.
        let actor = authorize(
            Some(actor),
            Permission::ManageSite { site: id, is_member },
            access,
        )
        .map_err(|err| match err {
            Error::Forbidden => Error::NotFound("site"),
            other => other,
        })?;
        Ok((actor, site))
    }

    /// The site called `name`, if `actor` may manage it (as [`Platform::site`]).
    pub async fn site_by_name(&self, actor: Option<&Actor>, name: &str) -> Result<Site> {
        authorize(actor, Permission::UseManager, Access::Read)?;
        let mut conn = self.conn().await?;
        let id: i32 = sites::table
            .filter(sites::name.eq(name))
            .select(sites::id)
            .first(&mut conn)
            .await
            .optional()?
            .ok_or(Error::NotFound("site"))?;
        self.site(actor, id).await
    }

    /// The sites `actor` is a member of, by name.
    pub async fn my_sites(&self, actor: Option<&Actor>) -> Result<Vec<Site>> {
        let actor = authorize(actor, Permission::UseManager, Access::Read)?;
        let mut conn = self.conn().await?;
        let mut query = sites::table
            .inner_join(images::table)
            .inner_join(site_members::table)
            .filter(site_members::user_id.eq(actor.user_id))
            .order(sites::name.asc())
            .select(site_columns())
            .into_boxed();
        if let Some(only) = actor.grant.sites() {
            query = query.filter(sites::id.eq_any(only.to_vec()));
        }
        let rows: Vec<SiteRow> = query.load(&mut conn).await?;
        Ok(rows.into_iter().map(site_from_row).collect())
    }

    /// A page of the sites the actor belongs to (or, with [`Whose::Everyone`], every site: an
    /// admin's), in name order, after `query.after` and with `query.name` in their name.
    pub async fn list_sites(&self, actor: Option<&Actor>, query: &SiteQuery) -> Result<SitePage> {
        let actor = match query.whose {
            Whose::Mine => authorize(actor, Permission::UseManager, Access::Read)?,
            Whose::Everyone => authorize(actor, Permission::Administer, Access::Read)?,
        };
        let limit = query.limit.clamp(1, MAX_PAGE);
        let mut conn = self.conn().await?;
        // The page's sites are chosen first, by their ids alone; their whole rows (with the
        // subqueries of each) are read for those only — asked in one query, the database
        // computed every member site's subqueries before it sorted and cut the page.
        let mut rows = sites::table
            .order(sites::name.asc())
            .select((sites::id, sites::name))
            .limit(limit + 1)
            .into_boxed();
        if query.whose == Whose::Mine {
            rows = rows.filter(
                sites::id.eq_any(
                    site_members::table
                        .filter(site_members::user_id.eq(actor.user_id))
                        .select(site_members::site_id),
                ),
            );
        }
        if let Some(only) = actor.grant.sites() {
            rows = rows.filter(sites::id.eq_any(only.to_vec()));
        }
        if let Some(after) = &query.after {
            rows = rows.filter(sites::name.gt(after.clone()));
        }
        if let Some(part) = query.name.as_deref().filter(|part| !part.is_empty()) {
            // Site names are lower-case letters, digits and hyphens: anything else in the
            // filter matches nothing, and LIKE's own signs cannot occur in it.
            let part = part.to_ascii_lowercase();
            if !part
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                || part.len() > 63
            {
                return Err(Error::invalid(
                    "name",
                    "Site names have only letters, digits and hyphens: filter by a part of one.",
                ));
            }
            rows = rows.filter(sites::name.like(format!("%{part}%")));
        }
        let mut page: Vec<(i32, String)> = rows.load(&mut conn).await?;
        // Whether there is a next page is the choice's to say: a site deleted before its row
        // is read must not end the paging early.
        let next = cut_page(&mut page, limit, |(_, name)| name.clone());
        let ids: Vec<i32> = page.into_iter().map(|(id, _)| id).collect();
        let sites: Vec<Site> = sites::table
            .inner_join(images::table)
            .filter(sites::id.eq_any(&ids))
            .order(sites::name.asc())
            .select(site_columns())
            .load(&mut conn)
            .await?
            .into_iter()
            .map(site_from_row)
            .collect();
        Ok(SitePage { sites, next })
    }

    /// `name` as a new site's name ([`validate_site_name`]), refused when the site's host
    /// would be the manager's own host or a parent of it.
    fn site_name(&self, name: &str) -> Result<String> {
        let name = validate_site_name(name)?;
        let host = format!("{name}.{}", self.settings().sites_domain.to_ascii_lowercase());
        let manager = &self.settings().manager_host;
        if !manager.is_empty() && (*manager == host || manager.ends_with(&format!(".{host}"))) {
            return Err(Error::invalid(
                "name",
                format!("{host} is (or covers) the manager's own address: choose another name."),
            ));
        }
        Ok(name)
    }

    /// Whether `name` would be accepted for a new site now: the normalised name, or why not.
    pub async fn check_site_name(&self, actor: Option<&Actor>, name: &str) -> Result<String> {
        authorize(actor, Permission::UseManager, Access::Read)?;
        let name = self.site_name(name)?;
        let mut conn = self.conn().await?;
        let taken: i64 = sites::table
            .filter(sites::name.eq(&name))
            .count()
            .get_result(&mut conn)
            .await?;
        if taken > 0 {
            return Err(Error::invalid("name", format!("The name {name} is taken.")));
        }
        Ok(name)
    }

    /// Creates a site with `actor` as its first member, and queues the operation that builds
    /// it. Nothing is created when a field is refused. Where members request sites, only
    /// admins create them directly.
    pub async fn create_site(&self, actor: Option<&Actor>, new: NewSite) -> Result<(Site, i64)> {
        self.create_site_with(actor, new, None).await
    }

    /// Creates a dynamic site whose image gets `recipe` (extra packages): checked before the
    /// site is made, saved with it, and its build queued after its create, in one transaction.
    pub async fn create_site_with_recipe(
        &self,
        actor: Option<&Actor>,
        new: NewSite,
        recipe: &RecipeInput,
    ) -> Result<(Site, i64)> {
        self.create_site_with(actor, new, Some(recipe)).await
    }

    async fn create_site_with(
        &self,
        actor: Option<&Actor>,
        new: NewSite,
        recipe: Option<&RecipeInput>,
    ) -> Result<(Site, i64)> {
        let actor = authorize(actor, Permission::UseManager, Access::Write)?.clone();
        if !actor.is_admin()
            && self.site_policy_now().await?.creation == model::request::SiteCreation::Request
        {
            return Err(Error::Conflict(
                "Sites here are requested and approved first: use Request a site.".to_owned(),
            ));
        }
        let mut conn = self.conn().await?;
        let checked = self.check_new_site(&mut conn, &new).await?;
        let recipe = match recipe {
            Some(input) => builds::check_new_recipe(&mut conn, &checked, input).await?,
            None => None,
        };
        let member = (actor.user_id > 0).then_some(actor.user_id);
        let (id, operation) = conn
            .transaction::<_, Error, _>(async |conn| {
                let (id, operation) = self.insert_site(conn, &actor, member, &checked).await?;
                if let Some(recipe) = &recipe {
                    builds::save_new_recipe(conn, &actor, id, recipe).await?;
                }
                Ok((id, operation))
            })
            .await?;
        self.wake_workers();
        tracing::info!(user = %actor.username, site = %checked.name, id, "site created; its operation is queued");
        let site = load_site(&mut conn, id).await?.ok_or(Error::NotFound("site"))?;
        Ok((site, operation))
    }

    /// `new`'s fields checked as a new site's: a valid name, a kind, a purpose, a description,
    /// an enabled image of the catalogue that serves that kind.
    pub(crate) async fn check_new_site(
        &self,
        conn: &mut diesel_async::AsyncPgConnection,
        new: &NewSite,
    ) -> Result<CheckedSite> {
        let name = self.site_name(&new.name)?;
        let kind: SiteKind = new
            .kind
            .trim()
            .parse()
            .map_err(|_| Error::invalid("kind", "Choose static or dynamic."))?;
        let purpose: Purpose = new
            .purpose
            .trim()
            .parse()
            .map_err(|_| Error::invalid("purpose", "Choose what the site is for."))?;
        let description = new.description.trim().to_owned();
        if description.chars().count() > 500 || description.chars().any(|c| c.is_control() && c != '\n') {
            return Err(Error::invalid(
                "description",
                "A description has at most 500 characters of text.",
            ));
        }
        let image: Option<(i64, bool, bool, bool)> = images::table
            .filter(images::name.eq(new.image.trim()))
            .select((
                images::id,
                images::serves_static,
                images::serves_dynamic,
                images::enabled,
            ))
            .first(conn)
            .await
            .optional()?;
        let image_id = match image {
            Some((id, serves_static, serves_dynamic, true))
                if (kind == SiteKind::Static && serves_static)
                    || (kind == SiteKind::Dynamic && serves_dynamic) =>
            {
                id
            }
            Some((_, _, _, true)) => {
                return Err(Error::invalid(
                    "image",
                    format!("That image cannot run {} sites.", kind.as_str()),
                ));
            }
            _ => return Err(Error::invalid("image", "Choose an image from the catalogue.")),
        };
        Ok(CheckedSite {
            name,
            kind,
            purpose,
            description,
            image_id,
        })
    }

    /// Inserts `site` for `by` with `member` (when there is one, within their quota) as its
    /// first member, and queues its create operation; in the caller's transaction.
    pub(crate) async fn insert_site(
        &self,
        conn: &mut diesel_async::AsyncPgConnection,
        by: &Actor,
        member: Option<i64>,
        site: &CheckedSite,
    ) -> Result<(i32, i64)> {
        if let Some(member) = member
            && let Some((has, _)) = self.at_site_quota(conn, member).await?
        {
            return Err(Error::Conflict(if member == by.user_id {
                format!(
                    "You have {has} site(s), the most you may have: delete one, or ask an admin for more."
                )
            } else {
                format!(
                    "The member has {has} site(s), the most they may have: they may delete one, or an admin give them more."
                )
            }));
        }
        let name = &site.name;
        let id: i32 = diesel::insert_into(sites::table)
            .values((
                sites::name.eq(name),
                sites::description.eq(&site.description),
                sites::purpose.eq(site.purpose),
                sites::kind.eq(site.kind),
                sites::image_id.eq(site.image_id),
            ))
            .returning(sites::id)
            .get_result(conn)
            .await
            .map_err(|e| match e {
                diesel::result::Error::DatabaseError(
                    diesel::result::DatabaseErrorKind::UniqueViolation,
                    _,
                ) => Error::invalid("name", format!("The name {name} is taken.")),
                other => other.into(),
            })?;
        if let Some(member) = member {
            diesel::insert_into(site_members::table)
                .values((site_members::site_id.eq(id), site_members::user_id.eq(member)))
                .execute(conn)
                .await?;
        }
        let operation = queue::enqueue(conn, id, OperationKind::CreateSite, site.kind, by).await?;
        audit(conn, by, "site.create", name, site.kind.as_str()).await?;
        Ok((id, operation))
    }

    /// Whether user `user_id` is at their quota of sites: how many they have and may have,
    /// or None while they have room (admins always do). Their account's row is locked first,
    /// so that creates and additions at the same moment are counted one after another.
    pub(crate) async fn at_site_quota(
        &self,
        conn: &mut diesel_async::AsyncPgConnection,
        user_id: i64,
    ) -> Result<Option<(i64, i64)>> {
        Ok(self
            .site_room(conn, user_id)
            .await?
            .filter(|(has, quota)| has >= quota))
    }

    /// How many sites user `user_id` has and may have (None: no limit, an admin), their
    /// account's row locked as [`Self::at_site_quota`] does.
    pub(crate) async fn site_room(
        &self,
        conn: &mut diesel_async::AsyncPgConnection,
        user_id: i64,
    ) -> Result<Option<(i64, i64)>> {
        use crate::schema::users;
        let (role, quota): (crate::Role, Option<i32>) = users::table
            .find(user_id)
            .select((users::role, users::site_quota))
            .for_update()
            .first(conn)
            .await?;
        if role == crate::Role::Admin {
            return Ok(None);
        }
        let quota = quota.map_or(self.settings().sites_per_user, i64::from);
        let has: i64 = site_members::table
            .inner_join(sites::table)
            .filter(site_members::user_id.eq(user_id))
            .filter(sites::state.ne(SiteState::Deleting))
            .count()
            .get_result(conn)
            .await?;
        Ok(Some((has, quota)))
    }

    /// One change to a site, atomically (see [`record_change`]); then a worker is woken.
    async fn queue_change(&self, actor: &Actor, site: &Site, change: Change<'_>) -> Result<i64> {
        self.queue_changes(actor, site, &[change]).await
    }

    /// Changes to a site, atomically and in order (see [`record_change`]); then a worker is
    /// woken. Returns the first one's operation.
    async fn queue_changes(&self, actor: &Actor, site: &Site, changes: &[Change<'_>]) -> Result<i64> {
        self.queue_changes_telling(actor, site, changes, None).await
    }

    /// Changes to a site as [`Platform::queue_changes`], and, in the same transaction, its
    /// members told of `notice` when there is one.
    async fn queue_changes_telling(
        &self,
        actor: &Actor,
        site: &Site,
        changes: &[Change<'_>],
        notice: Option<&crate::notify::Notice>,
    ) -> Result<i64> {
        let mut conn = self.conn().await?;
        let operation = conn
            .transaction::<_, Error, _>(async |conn| {
                let mut first = None;
                for change in changes {
                    let operation = record_change(conn, actor, site, change).await?;
                    first.get_or_insert(operation);
                }
                if let Some(notice) = notice {
                    let members = crate::notify::members_of(conn, site.id).await?;
                    self.notify(conn, &members, notice).await?;
                }
                first.ok_or_else(|| Error::internal("no change to queue"))
            })
            .await?;
        self.wake_workers();
        if notice.is_some() {
            self.wake_deliveries();
        }
        Ok(operation)
    }

    /// Restarts a dynamic site: its task is replaced (start-first).
    pub async fn restart_site(&self, actor: Option<&Actor>, id: i32) -> Result<i64> {
        let (actor, site) = self.managed_site(actor, id, Access::Write).await?;
        let actor = actor.clone();
        if site.kind != SiteKind::Dynamic {
            return Err(Error::Conflict(
                "A static site has nothing to restart.".to_owned(),
            ));
        }
        if !matches!(site.state, SiteState::Running | SiteState::Failing) {
            return Err(Error::Conflict(format!(
                "A site that is {} cannot be restarted.",
                site.state
            )));
        }
        self.queue_change(
            &actor,
            &site,
            Change {
                kind: OperationKind::RestartSite,
                state: None,
                availability: None,
                audit_action: "site.restart",
                details: "",
            },
        )
        .await
    }

    /// Serves a site again or stops serving it (`served`). Members may; a site an admin
    /// disabled stays disabled.
    pub async fn set_served(&self, actor: Option<&Actor>, id: i32, served: bool) -> Result<i64> {
        let (actor, site) = self.managed_site(actor, id, Access::Write).await?;
        let actor = actor.clone();
        if site.availability == Availability::Disabled {
            return Err(Error::Conflict("An administrator disabled this site.".to_owned()));
        }
        if !site.provisioned {
            return Err(Error::Conflict(
                "The site is not made yet: retry its create (or ask an administrator to fix it) first."
                    .to_owned(),
            ));
        }
        let event = if served { Event::Started } else { Event::Stopped };
        let next = site
            .state
            .apply(event)
            .map_err(|e| Error::Conflict(format!("Not now: {e}.")))?;
        let availability = if served {
            Availability::Enabled
        } else {
            Availability::NotServed
        };
        self.queue_change(
            &actor,
            &site,
            Change {
                kind: OperationKind::SetAvailability,
                state: Some(next),
                availability: Some(availability),
                audit_action: "site.availability",
                details: availability.as_str(),
            },
        )
        .await
    }

    /// Deletes a site: `confirm` must repeat its name. Its state turns `deleting` and the
    /// operation that removes everything of it is queued; the row goes when that finishes.
    pub async fn delete_site(&self, actor: Option<&Actor>, id: i32, confirm: &str) -> Result<i64> {
        let (actor, site) = self.managed_site(actor, id, Access::Write).await?;
        let actor = actor.clone();
        if confirm.trim() != site.name {
            return Err(Error::invalid(
                "confirm",
                format!("Type {} to confirm.", site.name),
            ));
        }
        let next = site
            .state
            .apply(Event::DeletionRequested)
            .map_err(|e| Error::Conflict(format!("The site cannot be deleted now: {e}.")))?;
        let operation = self
            .queue_change(
                &actor,
                &site,
                Change {
                    kind: OperationKind::DeleteSite,
                    state: Some(next),
                    availability: None,
                    audit_action: "site.delete",
                    details: "",
                },
            )
            .await?;
        tracing::info!(user = %actor.username, site = %site.name, "site deletion queued");
        self.access_changed();
        Ok(operation)
    }
}

#[cfg(test)]
mod tests {
    use super::validate_site_name;

    #[test]
    fn site_names_are_dns_labels_and_not_reserved() {
        assert_eq!(validate_site_name(" My-Site2 ").unwrap(), "my-site2");
        assert_eq!(validate_site_name("a--b").unwrap(), "a--b");
        for bad in [
            "",
            "-a",
            "a-",
            "a_b",
            "a.b",
            "www",
            "admin",
            &"x".repeat(33),
            "é",
            "xn--80ak6aa92e",
            "ab--cd",
        ] {
            assert!(validate_site_name(bad).is_err(), "{bad:?}");
        }
    }
}
