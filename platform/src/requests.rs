//! Requests for sites, where an admin chose that members request them: a member submits what
//! the create form asks with why they want it (and, if they like, the approver they ask); an
//! approver approves or denies it, then an admin (unless the admin step is off), and the last
//! approval makes the site with the member as its first member, through the normal create
//! operation. Every step is in the request's history and in the audit log.
//!
//! Who may act: the requester withdraws their open request; an approver reviews submitted
//! requests addressed to them or to any approver; an admin reviews any open one (an admin's
//! approval of a submitted request is the last one). Nobody reviews their own request.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncConnection as _, AsyncPgConnection, RunQueryDsl};
use model::{
    account::Role,
    notification::Event,
    request::{ApprovalSteps, RequestAction, RequestState, SiteCreation},
    site::{Purpose, SiteKind},
};

use crate::{
    Access, Actor, Error, Permission, Platform, Result, authorize,
    notify::{Notice, people_with},
    schema::{site_policy, site_request_steps, site_requests, sites, users},
    sites::{NewSite, audit},
    validation::{Required, text},
};

/// The longest reason a request gives.
const MAX_REASON: usize = 1000;
/// The longest comment on a step.
const MAX_COMMENT: usize = 1000;
/// The most requests a member may submit within a day.
const MAX_REQUESTS_PER_DAY: i64 = 10;

/// How members get sites, as an admin set it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SitePolicy {
    /// Directly, or by request.
    pub creation: SiteCreation,
    /// Who approves a request.
    pub steps: ApprovalSteps,
}

/// A request as a member types it.
#[derive(Debug, Clone)]
pub struct NewRequest {
    /// The site they would like.
    pub site: NewSite,
    /// Why.
    pub reason: String,
    /// The username of the approver they ask; empty: any approver.
    pub approver: String,
}

/// Which requests to list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestScope {
    /// The actor's own.
    Mine,
    /// The open ones the actor may review.
    ToReview,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = site_requests)]
struct RequestRow {
    id: i64,
    requester_id: i64,
    approver_id: Option<i64>,
    name: String,
    description: String,
    purpose: Purpose,
    kind: SiteKind,
    image: String,
    reason: String,
    state: RequestState,
    site_id: Option<i32>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

/// A person, as a request names them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Person {
    /// Username.
    pub username: String,
    /// Shown name.
    pub display_name: String,
}

/// A request as the pages show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SiteRequest {
    /// Its id.
    pub id: i64,
    /// Who asked.
    pub requester: Person,
    /// The approver asked; None: any approver.
    pub approver: Option<Person>,
    /// The site's name.
    pub name: String,
    /// The site's description.
    pub description: String,
    /// What the site is for.
    pub purpose: Purpose,
    /// Static or dynamic.
    pub kind: SiteKind,
    /// The image's catalogue name.
    pub image: String,
    /// Why they want it.
    pub reason: String,
    /// Where it stands.
    pub state: RequestState,
    /// The site made for it.
    pub site_id: Option<i32>,
    /// When it was submitted.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

/// One step of a request's history.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable)]
#[diesel(table_name = site_request_steps)]
pub struct RequestStep {
    /// Who (their username then).
    pub actor_name: String,
    /// What they did.
    pub action: RequestAction,
    /// What they said.
    pub comment: String,
    /// When.
    pub at: DateTime<Utc>,
}

/// What the actor's approval of a request does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Approval {
    /// Passes it on to the admins.
    ToAdmins,
    /// Approves it all the way: the site is made.
    Final,
}

impl Platform {
    /// The policy, for the code that follows it.
    pub(crate) async fn site_policy_now(&self) -> Result<SitePolicy> {
        let mut conn = self.conn().await?;
        let (creation, steps): (SiteCreation, ApprovalSteps) = site_policy::table
            .select((site_policy::creation, site_policy::steps))
            .first(&mut conn)
            .await?;
        Ok(SitePolicy { creation, steps })
    }

    /// How members get sites (anyone signed in may know).
    pub async fn site_policy(&self, actor: Option<&Actor>) -> Result<SitePolicy> {
        authorize(actor, Permission::UseManager, Access::Read)?;
        self.site_policy_now().await
    }

    /// Sets how members get sites (admins only). Requests already open stay, and are reviewed
    /// under the new steps.
    pub async fn set_site_policy(&self, actor: Option<&Actor>, policy: SitePolicy) -> Result<()> {
        let actor = authorize(actor, Permission::Administer, Access::Write)?;
        let mut conn = self.conn().await?;
        conn.transaction::<_, Error, _>(async |conn| {
            diesel::update(site_policy::table)
                .set((
                    site_policy::creation.eq(policy.creation),
                    site_policy::steps.eq(policy.steps),
                    site_policy::updated_at.eq(Utc::now()),
                ))
                .execute(conn)
                .await?;
            let details = format!("{} / {}", policy.creation.as_str(), policy.steps.as_str());
            audit(conn, actor, "policy.sites", "site creation", &details).await
        })
        .await?;
        tracing::info!(by = %actor.username, creation = policy.creation.as_str(), steps = policy.steps.as_str(), "site policy set");
        Ok(())
    }

    /// The people a member may ask to approve their request: active approvers.
    pub async fn approvers(&self, actor: Option<&Actor>) -> Result<Vec<Person>> {
        authorize(actor, Permission::UseManager, Access::Read)?;
        let mut conn = self.conn().await?;
        let rows: Vec<(String, String)> = users::table
            .filter(users::role.eq(Role::Approver))
            .filter(users::active.eq(true))
            .order(users::username)
            .select((users::username, users::display_name))
            .load(&mut conn)
            .await?;
        Ok(rows
            .into_iter()
            .map(|(username, display_name)| Person {
                username,
                display_name,
            })
            .collect())
    }

    /// Submits a request for a site. Its fields are checked as a new site's, its name must be
    /// free (of sites and of other open requests), and the member must have room for one more
    /// site counting their open requests.
    pub async fn submit_request(&self, actor: Option<&Actor>, new: NewRequest) -> Result<i64> {
        let actor = authorize(actor, Permission::UseManager, Access::Write)?.clone();
        if self.site_policy_now().await?.creation == SiteCreation::Direct {
            return Err(Error::Conflict(
                "Sites here are created directly: use New site.".to_owned(),
            ));
        }
        let reason = text("reason", &new.reason, MAX_REASON, Required::Yes)?;
        let mut conn = self.conn().await?;
        let checked = self.check_new_site(&mut conn, &new.site).await?;
        let approver = match new.approver.trim() {
            "" => None,
            username => {
                let found: Option<(i64, Role, bool)> = users::table
                    .filter(users::username.eq(username))
                    .select((users::id, users::role, users::active))
                    .first(&mut conn)
                    .await
                    .optional()?;
                match found {
                    Some((id, Role::Approver, true)) if id != actor.user_id => Some(id),
                    Some((id, _, _)) if id == actor.user_id => {
                        return Err(Error::invalid(
                            "approver",
                            "Ask someone else: nobody reviews their own request.",
                        ));
                    }
                    _ => {
                        return Err(Error::invalid(
                            "approver",
                            "Choose one of the approvers, or any approver.",
                        ));
                    }
                }
            }
        };
        let id = conn
            .transaction::<_, Error, _>(async |conn| {
                let taken: i64 = sites::table
                    .filter(sites::name.eq(&checked.name))
                    .count()
                    .get_result(conn)
                    .await?;
                if taken > 0 {
                    return Err(Error::invalid("name", format!("The name {} is taken.", checked.name)));
                }
                // Every request tells its approvers: a member asking and withdrawing over and
                // over would flood them.
                let today: i64 = site_requests::table
                    .filter(site_requests::requester_id.eq(actor.user_id))
                    .filter(site_requests::created_at.gt(Utc::now() - chrono::Duration::days(1)))
                    .count()
                    .get_result(conn)
                    .await?;
                if today >= MAX_REQUESTS_PER_DAY {
                    return Err(Error::Conflict(format!(
                        "You have asked for {today} sites within a day, the most you may: ask again tomorrow."
                    )));
                }
                let open = self.open_requests_of(conn, actor.user_id).await?;
                if let Some((has, quota)) = self.site_room(conn, actor.user_id).await?
                    && has + open >= quota
                {
                    return Err(Error::Conflict(format!(
                        "You have {has} site(s) and {open} open request(s), the most you may have ({quota}): withdraw one, or ask an admin for more."
                    )));
                }
                let id: i64 = diesel::insert_into(site_requests::table)
                    .values((
                        site_requests::requester_id.eq(actor.user_id),
                        site_requests::approver_id.eq(approver),
                        site_requests::name.eq(&checked.name),
                        site_requests::description.eq(&checked.description),
                        site_requests::purpose.eq(checked.purpose),
                        site_requests::kind.eq(checked.kind),
                        site_requests::image.eq(new.site.image.trim()),
                        site_requests::reason.eq(&reason),
                    ))
                    .returning(site_requests::id)
                    .get_result(conn)
                    .await
                    .map_err(|e| match e {
                        diesel::result::Error::DatabaseError(diesel::result::DatabaseErrorKind::UniqueViolation, _) => {
                            Error::invalid("name", format!("Someone has asked for {} already.", checked.name))
                        }
                        other => other.into(),
                    })?;
                step(conn, id, &actor, RequestAction::Submit, &reason).await?;
                audit(conn, &actor, "request.submit", &checked.name, &format!("request {id}")).await?;
                // The approver asked, or every other approver; with none, the admins (who may
                // always review).
                let mut reviewers = match approver {
                    Some(approver) => vec![approver],
                    None => people_with(conn, Role::Approver).await?,
                };
                reviewers.retain(|id| *id != actor.user_id);
                if reviewers.is_empty() {
                    reviewers = people_with(conn, Role::Admin).await?;
                }
                let notice = Notice {
                    event: Event::RequestSubmitted,
                    subject: format!("{} asks for the site {}", actor.display_name, checked.name),
                    body: format!(
                        "{} asks for the site {}: “{reason}”",
                        actor.named(), checked.name
                    ),
                    link: format!("/requests/{id}"),
                };
                self.notify(conn, &reviewers, &notice).await?;
                Ok(id)
            })
            .await?;
        self.wake_deliveries();
        tracing::info!(user = %actor.username, site = %checked.name, id, "site requested");
        Ok(id)
    }

    /// How many open requests `user_id` has.
    async fn open_requests_of(&self, conn: &mut AsyncPgConnection, user_id: i64) -> Result<i64> {
        Ok(site_requests::table
            .filter(site_requests::requester_id.eq(user_id))
            .filter(site_requests::state.eq_any([RequestState::Submitted, RequestState::Approved]))
            .count()
            .get_result(conn)
            .await?)
    }

    /// The requests of `scope` the actor may see, the latest first.
    pub async fn site_requests(
        &self,
        actor: Option<&Actor>,
        scope: RequestScope,
    ) -> Result<Vec<SiteRequest>> {
        let actor = match scope {
            RequestScope::Mine => authorize(actor, Permission::OwnRecords, Access::Read)?,
            RequestScope::ToReview => authorize(actor, Permission::ReviewRequests, Access::Read)?,
        };
        let mut conn = self.conn().await?;
        let mut query = site_requests::table
            .order(site_requests::id.desc())
            .select(RequestRow::as_select())
            .into_boxed();
        query = match scope {
            RequestScope::Mine => query.filter(site_requests::requester_id.eq(actor.user_id)),
            RequestScope::ToReview if actor.is_admin() => {
                query.filter(site_requests::state.eq_any([RequestState::Submitted, RequestState::Approved]))
            }
            RequestScope::ToReview => query
                .filter(site_requests::state.eq(RequestState::Submitted))
                .filter(
                    site_requests::approver_id
                        .is_null()
                        .or(site_requests::approver_id.eq(actor.user_id)),
                ),
        };
        let rows = query.load(&mut conn).await?;
        self.shown(&mut conn, rows).await
    }

    /// Request `id` with its history, for its requester, its approvers and admins.
    pub async fn site_request(
        &self,
        actor: Option<&Actor>,
        id: i64,
    ) -> Result<(SiteRequest, Vec<RequestStep>)> {
        let actor = authorize(actor, Permission::OwnRecords, Access::Read)?;
        let mut conn = self.conn().await?;
        let row = load_request(&mut conn, id, Lock::No).await?;
        if !may_see(actor, &row) {
            return Err(Error::NotFound("request"));
        }
        let steps = site_request_steps::table
            .filter(site_request_steps::request_id.eq(id))
            .order(site_request_steps::id)
            .select(RequestStep::as_select())
            .load(&mut conn)
            .await?;
        let request = self
            .shown(&mut conn, vec![row])
            .await?
            .pop()
            .ok_or(Error::NotFound("request"))?;
        Ok((request, steps))
    }

    /// Approves request `id`: passes it on to the admins, or (the last approval) makes its
    /// site, whose id is returned. The site's fields are checked again, as at a create: a name
    /// taken since, or an image gone, is refused and the request stays open.
    pub async fn approve_request(
        &self,
        actor: Option<&Actor>,
        id: i64,
        comment: &str,
    ) -> Result<Option<i32>> {
        let actor = authorize(actor, Permission::UseManager, Access::Write)?.clone();
        let steps = self.site_policy_now().await?.steps;
        let mut conn = self.conn().await?;
        let made = conn
            .transaction::<_, Error, _>(async |conn| {
                let row = load_request(conn, id, Lock::ForUpdate).await?;
                let approval = review(&actor, &row, steps)?;
                // Checked once the actor may review: a stranger learns nothing from it.
                let comment = text("comment", comment, MAX_COMMENT, Required::No)?;
                step(conn, id, &actor, RequestAction::Approve, &comment).await?;
                match approval {
                    Approval::ToAdmins => {
                        set_state(conn, id, RequestState::Approved, None).await?;
                        audit(
                            conn,
                            &actor,
                            "request.approve",
                            &row.name,
                            &format!("request {id}, on to the admins"),
                        )
                        .await?;
                        let approved = Notice {
                            event: Event::RequestApproved,
                            subject: format!("{} approved your request for {}", actor.display_name, row.name),
                            body: format!(
                                "{} approved your request for the site {}; an admin decides now.{}",
                                actor.named(),
                                row.name,
                                said(&comment)
                            ),
                            link: format!("/requests/{id}"),
                        };
                        self.notify(conn, &[row.requester_id], &approved).await?;
                        let waiting = Notice {
                            event: Event::RequestSubmitted,
                            subject: format!("A request for the site {} waits for an admin", row.name),
                            body: format!(
                                "{} approved it. The member says: “{}”",
                                actor.named(), row.reason
                            ),
                            link: format!("/requests/{id}"),
                        };
                        let admins = people_with(conn, Role::Admin).await?;
                        self.notify(conn, &admins, &waiting).await?;
                        Ok(None)
                    }
                    Approval::Final => {
                        let new = NewSite {
                            name: row.name.clone(),
                            description: row.description.clone(),
                            purpose: row.purpose.as_str().to_owned(),
                            kind: row.kind.as_str().to_owned(),
                            image: row.image.clone(),
                        };
                        let checked = self.check_new_site(conn, &new).await?;
                        let (site_id, _) = self
                            .insert_site(conn, &actor, Some(row.requester_id), &checked)
                            .await?;
                        set_state(conn, id, RequestState::Created, Some(site_id)).await?;
                        audit(
                            conn,
                            &actor,
                            "request.approve",
                            &row.name,
                            &format!("request {id}, site created"),
                        )
                        .await?;
                        let created = Notice {
                            event: Event::SiteCreated,
                            subject: format!("Your site {} was created", row.name),
                            body: format!(
                                "{} approved your request: the site {} is being made, and you are its member.{}",
                                actor.named(),
                                row.name,
                                said(&comment)
                            ),
                            link: format!("/sites/{site_id}"),
                        };
                        self.notify(conn, &[row.requester_id], &created).await?;
                        Ok(Some(site_id))
                    }
                }
            })
            .await?;
        if made.is_some() {
            self.wake_workers();
        }
        self.wake_deliveries();
        tracing::info!(by = %actor.username, id, site = ?made, "request approved");
        Ok(made)
    }

    /// Denies request `id`, with the reason the requester will read.
    pub async fn deny_request(&self, actor: Option<&Actor>, id: i64, reason: &str) -> Result<()> {
        let actor = authorize(actor, Permission::UseManager, Access::Write)?.clone();
        let steps = self.site_policy_now().await?.steps;
        let mut conn = self.conn().await?;
        conn.transaction::<_, Error, _>(async |conn| {
            let row = load_request(conn, id, Lock::ForUpdate).await?;
            review(&actor, &row, steps)?;
            let reason = text("comment", reason, MAX_COMMENT, Required::Yes)?;
            step(conn, id, &actor, RequestAction::Deny, &reason).await?;
            set_state(conn, id, RequestState::Denied, None).await?;
            audit(conn, &actor, "request.deny", &row.name, &format!("request {id}")).await?;
            let denied = Notice {
                event: Event::RequestDenied,
                subject: format!("Your request for {} was denied", row.name),
                body: format!(
                    "{} denied your request for the site {}: “{reason}”",
                    actor.named(),
                    row.name
                ),
                link: format!("/requests/{id}"),
            };
            self.notify(conn, &[row.requester_id], &denied).await
        })
        .await?;
        self.wake_deliveries();
        tracing::info!(by = %actor.username, id, "request denied");
        Ok(())
    }

    /// Withdraws the actor's own open request `id`.
    pub async fn withdraw_request(&self, actor: Option<&Actor>, id: i64) -> Result<()> {
        let actor = authorize(actor, Permission::UseManager, Access::Write)?.clone();
        let mut conn = self.conn().await?;
        conn.transaction::<_, Error, _>(async |conn| {
            let row = load_request(conn, id, Lock::ForUpdate).await?;
            if row.requester_id != actor.user_id {
                return Err(if may_see(&actor, &row) {
                    Error::Forbidden
                } else {
                    Error::NotFound("request")
                });
            }
            if !row.state.is_open() {
                return Err(decided(row.state));
            }
            step(conn, id, &actor, RequestAction::Withdraw, "").await?;
            set_state(conn, id, RequestState::Withdrawn, None).await?;
            audit(
                conn,
                &actor,
                "request.withdraw",
                &row.name,
                &format!("request {id}"),
            )
            .await
        })
        .await
    }

    /// Rows with their people's names.
    async fn shown(&self, conn: &mut AsyncPgConnection, rows: Vec<RequestRow>) -> Result<Vec<SiteRequest>> {
        let ids: Vec<i64> = rows
            .iter()
            .flat_map(|r| std::iter::once(r.requester_id).chain(r.approver_id))
            .collect();
        let people: Vec<(i64, String, String)> = users::table
            .filter(users::id.eq_any(&ids))
            .select((users::id, users::username, users::display_name))
            .load(conn)
            .await?;
        let person = |id: i64| {
            people
                .iter()
                .find(|(p, _, _)| *p == id)
                .map(|(_, username, display_name)| Person {
                    username: username.clone(),
                    display_name: display_name.clone(),
                })
        };
        Ok(rows
            .into_iter()
            .map(|r| SiteRequest {
                id: r.id,
                requester: person(r.requester_id).unwrap_or(Person {
                    username: String::new(),
                    display_name: String::new(),
                }),
                approver: r.approver_id.and_then(person),
                name: r.name,
                description: r.description,
                purpose: r.purpose,
                kind: r.kind,
                image: r.image,
                reason: r.reason,
                state: r.state,
                site_id: r.site_id,
                created_at: r.created_at,
                updated_at: r.updated_at,
            })
            .collect())
    }
}

/// Whether a request's row is read for an update.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lock {
    No,
    ForUpdate,
}

async fn load_request(conn: &mut AsyncPgConnection, id: i64, lock: Lock) -> Result<RequestRow> {
    let query = site_requests::table.find(id).select(RequestRow::as_select());
    let row = match lock {
        Lock::No => query.first(conn).await,
        Lock::ForUpdate => query.for_update().first(conn).await,
    };
    row.optional()?.ok_or(Error::NotFound("request"))
}

/// Whether `actor` may see `row`: its requester, admins, and the approvers it is addressed to.
fn may_see(actor: &Actor, row: &RequestRow) -> bool {
    row.requester_id == actor.user_id
        || actor.is_admin()
        || (actor.role == Role::Approver && row.approver_id.is_none_or(|a| a == actor.user_id))
}

/// What `actor` may do to `row` as a reviewer under `steps`, or why not.
fn review(actor: &Actor, row: &RequestRow, steps: ApprovalSteps) -> Result<Approval> {
    if !may_see(actor, row) {
        return Err(Error::NotFound("request"));
    }
    if row.requester_id == actor.user_id {
        return Err(Error::Conflict(
            "Nobody reviews their own request: another approver or an admin will.".to_owned(),
        ));
    }
    match (row.state, actor.role) {
        (RequestState::Submitted, Role::Admin) | (RequestState::Approved, Role::Admin) => Ok(Approval::Final),
        (RequestState::Submitted, Role::Approver) => Ok(match steps {
            ApprovalSteps::Approver => Approval::Final,
            ApprovalSteps::ApproverAndAdmin => Approval::ToAdmins,
        }),
        (state, _) if !state.is_open() => Err(decided(state)),
        // An approver, once they approved: the admins decide now.
        _ => Err(Error::Conflict(
            "An approver approved it already: an admin decides now.".to_owned(),
        )),
    }
}

fn decided(state: RequestState) -> Error {
    Error::Conflict(format!(
        "This request is no longer open: {}.",
        state.label().to_lowercase()
    ))
}

/// A reviewer's comment, quoted after a sentence (nothing when they said nothing).
fn said(comment: &str) -> String {
    if comment.is_empty() {
        String::new()
    } else {
        format!(" They said: “{comment}”")
    }
}

async fn step(
    conn: &mut AsyncPgConnection,
    request: i64,
    actor: &Actor,
    action: RequestAction,
    comment: &str,
) -> Result<()> {
    diesel::insert_into(site_request_steps::table)
        .values((
            site_request_steps::request_id.eq(request),
            site_request_steps::actor_id.eq((actor.user_id > 0).then_some(actor.user_id)),
            site_request_steps::actor_name.eq(&actor.username),
            site_request_steps::action.eq(action),
            site_request_steps::comment.eq(comment),
        ))
        .execute(conn)
        .await?;
    Ok(())
}

async fn set_state(
    conn: &mut AsyncPgConnection,
    id: i64,
    state: RequestState,
    site: Option<i32>,
) -> Result<()> {
    diesel::update(site_requests::table.find(id))
        .set((
            site_requests::state.eq(state),
            site_requests::site_id.eq(site),
            site_requests::updated_at.eq(Utc::now()),
        ))
        .execute(conn)
        .await?;
    Ok(())
}
