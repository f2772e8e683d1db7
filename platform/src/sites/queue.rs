//! The durable operations queue. An operation's actions run in order; each is idempotent, so a
//! worker that dies mid-way is replaced by another that resumes at the first unfinished action.
//! A failed action leaves the operation `failed` and retryable.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncConnection as _, AsyncPgConnection, RunQueryDsl};

use super::{Event, Runtime, Site, SiteKind, SiteState, load_site};
use crate::{
    Actor, Error, Platform, Result,
    schema::{operation_actions, operations, sites},
};

pub use model::operation::{Action, ActionState, OperationKind, OperationState};

/// What the operations queue asks of the engine and the edge: one action on one site — Ok with
/// what to show, Err with why it failed. [`Runtime`] is the real one; the queue's own logic
/// (order, skips, failures, retries, the site's lifecycle) runs the same against another, so
/// it can be tested in-process.
pub trait Actions: Send + Sync {
    /// Runs `action` for `site`. Every action is idempotent: it may run again after a crash.
    fn run(&self, action: Action, site: &Site) -> impl Future<Output = Result<String, String>> + Send;
}

impl Actions for Runtime {
    fn run(&self, action: Action, site: &Site) -> impl Future<Output = Result<String, String>> + Send {
        Runtime::run(self, action, site)
    }
}

/// An operation as its progress is shown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperationRecord {
    /// Its id.
    pub id: i64,
    /// Its site.
    pub site_id: i32,
    /// What it does.
    pub kind: OperationKind,
    /// Where it is.
    pub state: OperationState,
    /// When it was queued.
    pub created_at: DateTime<Utc>,
    /// Its actions in order.
    pub actions: Vec<ActionRecord>,
}

/// One action's progress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActionRecord {
    /// The action.
    pub action: Action,
    /// Where it is.
    pub state: ActionState,
    /// What it said (its error when it failed).
    pub output: String,
}

pub(crate) async fn enqueue(
    conn: &mut AsyncPgConnection,
    site_id: i32,
    kind: OperationKind,
    site_kind: SiteKind,
    actor: &Actor,
) -> Result<i64> {
    let id: i64 = diesel::insert_into(operations::table)
        .values((
            operations::site_id.eq(site_id),
            operations::kind.eq(kind),
            operations::created_by.eq((actor.user_id > 0).then_some(actor.user_id)),
        ))
        .returning(operations::id)
        .get_result(conn)
        .await?;
    let rows: Vec<_> = kind
        .actions(site_kind)
        .into_iter()
        .enumerate()
        .map(|(position, action)| {
            (
                operation_actions::operation_id.eq(id),
                operation_actions::position.eq(position as i32),
                operation_actions::action.eq(action),
            )
        })
        .collect();
    diesel::insert_into(operation_actions::table)
        .values(rows)
        .execute(conn)
        .await?;
    Ok(id)
}

impl Platform {
    /// The operations of a site the actor may manage, newest first, with their actions.
    pub async fn site_operations(&self, actor: Option<&Actor>, site_id: i32) -> Result<Vec<OperationRecord>> {
        self.site(actor, site_id).await?;
        let mut conn = self.conn().await?;
        let rows: Vec<OperationRow> = operations::table
            .filter(operations::site_id.eq(site_id))
            .order(operations::id.desc())
            .select(OperationRow::as_select())
            .load(&mut conn)
            .await?;
        let mut records = Vec::new();
        for row in rows {
            records.push(row.with_actions(&mut conn).await?);
        }
        Ok(records)
    }

    /// One operation, with its actions, if the actor may see its site.
    pub async fn operation(&self, actor: Option<&Actor>, id: i64) -> Result<OperationRecord> {
        crate::authorize(actor, crate::Permission::UseManager, crate::Access::Read)?;
        let mut conn = self.conn().await?;
        let row: OperationRow = operations::table
            .find(id)
            .select(OperationRow::as_select())
            .first(&mut conn)
            .await
            .optional()?
            .ok_or(Error::NotFound("operation"))?;
        // Whoever may not see the site is not told its operation exists.
        self.site(actor, row.site_id).await.map_err(|err| match err {
            Error::NotFound(_) => Error::NotFound("operation"),
            other => other,
        })?;
        row.with_actions(&mut conn).await
    }

    /// Queues a failed operation again: its failed and unfinished actions will run, its done
    /// ones will not.
    pub async fn retry_operation(
        &self,
        actor: Option<&Actor>,
        site_id: i32,
        operation_id: i64,
    ) -> Result<()> {
        self.managed_site(actor, site_id, crate::Access::Write).await?;
        let mut conn = self.conn().await?;
        conn.transaction::<_, Error, _>(async |conn| {
            let updated = diesel::update(
                operations::table
                    .filter(operations::id.eq(operation_id))
                    .filter(operations::site_id.eq(site_id))
                    .filter(operations::state.eq(OperationState::Failed)),
            )
            .set((
                operations::state.eq(OperationState::Queued),
                operations::finished_at.eq(None::<DateTime<Utc>>),
            ))
            .execute(conn)
            .await?;
            if updated == 0 {
                return Err(Error::Conflict(
                    "Only a failed operation can be retried.".to_owned(),
                ));
            }
            diesel::update(
                operation_actions::table
                    .filter(operation_actions::operation_id.eq(operation_id))
                    .filter(operation_actions::state.ne(ActionState::Done)),
            )
            .set(operation_actions::state.eq(ActionState::Pending))
            .execute(conn)
            .await?;
            Ok(())
        })
        .await?;
        self.wake_workers();
        Ok(())
    }

    /// Claims the oldest queued operation — or a running one whose worker went silent — and
    /// runs its unfinished actions. Returns whether there was one.
    pub async fn run_next_operation(&self, engine: &impl Actions) -> Result<bool> {
        let Some(claimed) = self.claim_operation().await? else {
            return Ok(false);
        };
        self.run_claimed(engine, claimed).await?;
        Ok(true)
    }

    /// Puts every running operation back in the queue, to be claimed at once. Only for a
    /// database no other process uses (the embedded one, whose data directory this process
    /// holds locked): its running operations are then a killed predecessor's, and waiting out
    /// their heartbeats would only delay them. Returns how many there were.
    pub async fn resume_orphaned_operations(&self) -> Result<usize> {
        let mut conn = self.conn().await?;
        let resumed = diesel::update(operations::table.filter(operations::state.eq(OperationState::Running)))
            .set((
                operations::state.eq(OperationState::Queued),
                operations::claim.eq(None::<i64>),
            ))
            .execute(&mut conn)
            .await?;
        // The catalogue's builds likewise.
        let resumed = resumed
            + diesel::update(
                crate::schema::catalogue_builds::table
                    .filter(crate::schema::catalogue_builds::state.eq(model::build::BuildState::Running)),
            )
            .set((
                crate::schema::catalogue_builds::state.eq(model::build::BuildState::Queued),
                crate::schema::catalogue_builds::claim.eq(None::<i64>),
            ))
            .execute(&mut conn)
            .await?;
        if resumed > 0 {
            self.wake_workers();
        }
        Ok(resumed)
    }

    /// Claims the oldest queued operation, or a running one whose worker has been silent for
    /// longer than [`crate::Settings::operation_heartbeat_timeout`]. The claim is a number
    /// drawn for this worker: whoever claims the operation after it takes it over, and this
    /// worker's later writes then find it is no longer theirs.
    pub async fn claim_operation(&self) -> Result<Option<ClaimedOperation>> {
        let mut conn = self.conn().await?;
        let timeout = self.settings().operation_heartbeat_timeout.as_secs_f64();
        // Heartbeats are the database's clock alone (`now()`), here and wherever they are
        // renewed: managers whose clocks differ never take each other's live work.
        // An operation of a site whose other operation a live worker runs is left for later:
        // it would only wait for the site's lock, holding this worker from every other site
        // (a ten-minute build must not stop another site's create).
        let claimed = diesel::sql_query(
            "UPDATE operations SET state = $2, heartbeat = now(), \
               claim = nextval('operation_claims') WHERE id = (\
               SELECT o.id FROM operations o \
               WHERE (o.state = $3 \
                  OR (o.state = $2 AND o.heartbeat < now() - make_interval(secs => $1))) \
                 AND NOT EXISTS (SELECT 1 FROM operations r WHERE r.site_id = o.site_id \
                   AND r.id <> o.id AND r.state = $2 \
                   AND r.heartbeat >= now() - make_interval(secs => $1)) \
               ORDER BY o.id FOR UPDATE OF o SKIP LOCKED LIMIT 1) \
             RETURNING id, claim",
        )
        .bind::<diesel::sql_types::Double, _>(timeout)
        .bind::<diesel::sql_types::Text, _>(OperationState::Running)
        .bind::<diesel::sql_types::Text, _>(OperationState::Queued)
        .get_result::<ClaimedOperation>(&mut conn)
        .await
        .optional()?;
        Ok(claimed)
    }

    /// Runs a claimed operation's unfinished actions, under its site's lock. Waiting for the
    /// lock and running each action renew the claim's heartbeat as they go; once the claim is
    /// found taken over (this worker was silent too long), it stops and writes nothing more.
    pub async fn run_claimed(&self, engine: &impl Actions, claimed: ClaimedOperation) -> Result<()> {
        let mut conn = self.conn().await?;
        let site_id: i32 = operations::table
            .find(claimed.id)
            .select(operations::site_id)
            .first(&mut conn)
            .await?;
        // The reconciler stays off the site while its operation runs.
        let mut lock_conn = self.own_conn().await?;
        let renew_every = self.settings().operation_heartbeat_timeout / 3;
        let mut locked = false;
        let outcome = async {
            claimed
                .renewing(&mut conn, renew_every, super::lock::lock(&mut lock_conn, site_id))
                .await??;
            locked = true;
            // The wait may have been long: the claim is checked again before anything runs.
            claimed.renew(&mut conn).await?;
            self.run_locked(engine, claimed, site_id, &mut conn, renew_every)
                .await
        }
        .await;
        // A wait given up (the claim taken over meanwhile) may still be queued at the server:
        // an unlock would queue behind it, so the connection is closed instead, which ends both.
        if locked {
            super::lock::unlock(&mut lock_conn, site_id).await?;
        }
        drop(lock_conn);
        match outcome {
            Ok(()) => Ok(()),
            Err(Stop::TakenOver) => {
                tracing::info!(
                    operation = claimed.id,
                    site = site_id,
                    "another worker took the operation over; this one stops"
                );
                Ok(())
            }
            Err(Stop::Failed(error)) => Err(error),
        }
    }

    async fn run_locked(
        &self,
        engine: &impl Actions,
        claimed: ClaimedOperation,
        site_id: i32,
        conn: &mut AsyncPgConnection,
        renew_every: std::time::Duration,
    ) -> Result<(), Stop> {
        let id = claimed.id;
        let kind: OperationKind = operations::table
            .find(id)
            .select(operations::kind)
            .first(conn)
            .await?;
        let actions = load_actions(conn, id).await?;
        // The last action's end is recorded with the operation's, in one transaction: a worker
        // that stops between the two leaves the action to run again (from the site as it is
        // then), never a finished action whose operation a later one finds unfinished.
        let mut last_done = None;
        for (position, record) in actions.iter().enumerate() {
            if record.state == ActionState::Done {
                continue;
            }
            let site = load_site(conn, site_id).await?;
            claimed
                .set_action(conn, position, ActionState::Running, "")
                .await?;
            let outcome = match &site {
                // A site being deleted gets nothing back (routes, a service) from a change
                // queued before or during its deletion.
                Some(site) if site.state == SiteState::Deleting && kind != OperationKind::DeleteSite => {
                    Ok("skipped: the site is being deleted".to_owned())
                }
                // A site no create or fix has made whole yet has nothing to change: what an
                // operation would put in place (its routes, its service) comes with its create
                // when it is retried, from the settings and domains as they are then.
                Some(site) if !site.provisioned && !kind.makes_site() && record.action.needs_made_site() => {
                    Ok("skipped: the site is not made yet (retry its create, or fix it)".to_owned())
                }
                // Forgetting the site is the database's part of a deletion, not the engine's.
                Some(_) if record.action == Action::ForgetSite => diesel::delete(sites::table.find(site_id))
                    .execute(conn)
                    .await
                    .map(|_| "record deleted".to_owned())
                    .map_err(|e| e.to_string()),
                Some(site) => {
                    claimed
                        .renewing(conn, renew_every, engine.run(record.action, site))
                        .await?
                }
                // Only a finished deletion removes the record; its later actions have nothing left to do.
                None => Ok("the site is already gone".to_owned()),
            };
            match outcome {
                Ok(output) if position + 1 == actions.len() => last_done = Some((position, output)),
                Ok(output) => {
                    claimed
                        .set_action(conn, position, ActionState::Done, &output)
                        .await?
                }
                Err(error) => {
                    tracing::warn!(operation = id, site = site_id, action = record.action.as_str(), %error, "action failed");
                    claimed
                        .set_action(conn, position, ActionState::Failed, &error)
                        .await?;
                    conn.transaction::<_, Stop, _>(async |conn| {
                        claimed.finish(conn, OperationState::Failed).await?;
                        if kind.moves_state() {
                            self.site_event(conn, site_id, Event::Failed).await?;
                        }
                        if let Some(site) = &site {
                            self.tell_of_failure(conn, site, kind, record.action, &error)
                                .await?;
                        }
                        Ok(())
                    })
                    .await?;
                    self.wake_deliveries();
                    return Ok(());
                }
            }
        }
        conn.transaction::<_, Stop, _>(async |conn| {
            if let Some((position, output)) = &last_done {
                claimed
                    .set_action(conn, *position, ActionState::Done, output)
                    .await?;
            }
            claimed.finish(conn, OperationState::Done).await?;
            let Some(site) = load_site(conn, site_id).await? else {
                return Ok(());
            };
            if kind.makes_site() {
                diesel::update(sites::table.find(site_id))
                    .set(sites::provisioned_at.eq(diesel::dsl::now))
                    .execute(conn)
                    .await?;
                if matches!(site.state, SiteState::Provisioning | SiteState::Failing) {
                    self.site_event(conn, site_id, Event::Provisioned).await?;
                }
            } else if kind.moves_state() && site.provisioned && site.state == SiteState::Failing {
                // Any other change that went through brings a site failing from an earlier
                // failed operation back (the reconciler sends it back to failing if its
                // service still is). A site never made stays failing: nothing of it runs.
                self.site_event(conn, site_id, Event::Recovered).await?;
            }
            Ok(())
        })
        .await?;
        tracing::info!(
            operation = id,
            site = site_id,
            kind = kind.as_str(),
            "operation done"
        );
        Ok(())
    }

    /// Tells the site's members that an operation failed, in the transaction that records it:
    /// once an hour per site at most, so that an operation retried or reconciled again and
    /// again does not flood them.
    async fn tell_of_failure(
        &self,
        conn: &mut AsyncPgConnection,
        site: &Site,
        kind: OperationKind,
        action: Action,
        error: &str,
    ) -> Result<()> {
        use model::notification::Event as Told;
        let link = format!("/sites/{}", site.id);
        let hour_ago = Utc::now() - chrono::Duration::hours(1);
        if crate::notify::told_since(conn, Told::OperationFailed, &link, hour_ago).await? {
            return Ok(());
        }
        let members = crate::notify::members_of(conn, site.id).await?;
        let error: String = error.chars().take(500).collect();
        let notice = crate::notify::Notice {
            event: Told::OperationFailed,
            subject: format!("{} failed for {}", kind.label(), site.name),
            body: format!(
                "{} failed: {error}\nThe site's page shows the operation: retry it there, or ask an administrator.",
                action.label()
            ),
            link,
        };
        self.notify(conn, &members, &notice).await
    }

    /// Moves the site by `event` through its lifecycle, from its state as it is now: read and
    /// written in one transaction on the locked row, so no change made meanwhile (a deletion
    /// queued while a create finished) is overwritten. A transition the lifecycle refuses
    /// leaves the state as it is, and says so in the log.
    async fn site_event(&self, conn: &mut AsyncPgConnection, site_id: i32, event: Event) -> Result<()> {
        conn.transaction::<_, Error, _>(async |conn| {
            let current: Option<SiteState> = sites::table
                .find(site_id)
                .select(sites::state)
                .for_update()
                .first(conn)
                .await
                .optional()?;
            let Some(current) = current else {
                return Ok(());
            };
            match current.apply(event) {
                Ok(next) => {
                    diesel::update(sites::table.find(site_id))
                        .set((sites::state.eq(next), sites::updated_at.eq(Utc::now())))
                        .execute(conn)
                        .await?;
                }
                Err(refused) => {
                    tracing::warn!(site = site_id, %refused, "a state change was refused: the site changed meanwhile");
                }
            }
            Ok(())
        })
        .await
    }
}

/// An operation's row, as its record shows it.
#[derive(Queryable, Selectable)]
#[diesel(table_name = operations, check_for_backend(diesel::pg::Pg))]
struct OperationRow {
    id: i64,
    site_id: i32,
    kind: OperationKind,
    state: OperationState,
    created_at: DateTime<Utc>,
}

impl OperationRow {
    async fn with_actions(self, conn: &mut AsyncPgConnection) -> Result<OperationRecord> {
        Ok(OperationRecord {
            actions: load_actions(conn, self.id).await?,
            id: self.id,
            site_id: self.site_id,
            kind: self.kind,
            state: self.state,
            created_at: self.created_at,
        })
    }
}

async fn load_actions(conn: &mut AsyncPgConnection, operation_id: i64) -> Result<Vec<ActionRecord>> {
    Ok(operation_actions::table
        .filter(operation_actions::operation_id.eq(operation_id))
        .order(operation_actions::position.asc())
        .select((
            operation_actions::action,
            operation_actions::state,
            operation_actions::output,
        ))
        .load::<(Action, ActionState, String)>(conn)
        .await?
        .into_iter()
        .map(|(action, state, output)| ActionRecord {
            action,
            state,
            output,
        })
        .collect())
}

/// A worker's claim on one operation (see [`Platform::claim_operation`]).
#[derive(Debug, Clone, Copy, QueryableByName)]
pub struct ClaimedOperation {
    /// The operation.
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    pub id: i64,
    /// The number drawn for this claim.
    #[diesel(sql_type = diesel::sql_types::BigInt, column_name = claim)]
    token: i64,
}

/// An operation's row, filtered to a claim's.
type ClaimedRow = diesel::dsl::Filter<
    diesel::dsl::Filter<diesel::dsl::Find<operations::table, i64>, diesel::dsl::Eq<operations::claim, i64>>,
    diesel::dsl::Eq<operations::state, OperationState>,
>;

/// Why a worker stopped short of finishing an operation.
enum Stop {
    /// Another worker claimed the operation since: it is theirs to finish.
    TakenOver,
    /// Something failed (the database, mostly).
    Failed(Error),
}

impl From<Error> for Stop {
    fn from(error: Error) -> Self {
        Self::Failed(error)
    }
}

impl From<diesel::result::Error> for Stop {
    fn from(error: diesel::result::Error) -> Self {
        Self::Failed(error.into())
    }
}

impl ClaimedOperation {
    /// The operation's row, if it is still this claim's.
    fn row(self) -> ClaimedRow {
        operations::table
            .find(self.id)
            .filter(operations::claim.eq(self.token))
            .filter(operations::state.eq(OperationState::Running))
    }

    /// Renews the heartbeat, or finds the claim taken over.
    async fn renew(self, conn: &mut AsyncPgConnection) -> Result<(), Stop> {
        let renewed = diesel::update(self.row())
            .set(operations::heartbeat.eq(diesel::dsl::now))
            .execute(conn)
            .await?;
        if renewed == 0 {
            return Err(Stop::TakenOver);
        }
        Ok(())
    }

    /// Awaits `work`, renewing the heartbeat every `every` meanwhile; stops waiting (and drops
    /// `work`) as soon as the claim is found taken over.
    async fn renewing<T>(
        self,
        conn: &mut AsyncPgConnection,
        every: std::time::Duration,
        work: impl Future<Output = T>,
    ) -> Result<T, Stop> {
        let mut work = std::pin::pin!(work);
        loop {
            tokio::select! {
                done = &mut work => return Ok(done),
                () = tokio::time::sleep(every) => self.renew(conn).await?,
            }
        }
    }

    async fn set_action(
        self,
        conn: &mut AsyncPgConnection,
        position: usize,
        state: ActionState,
        output: &str,
    ) -> Result<(), Stop> {
        // Checked first, in the same transaction: a worker that lost its claim records nothing.
        conn.transaction::<_, Stop, _>(async |conn| {
            self.renew(conn).await?;
            let target = operation_actions::table
                .filter(operation_actions::operation_id.eq(self.id))
                .filter(operation_actions::position.eq(position as i32));
            if state == ActionState::Running {
                diesel::update(target)
                    .set((
                        operation_actions::state.eq(state),
                        operation_actions::started_at.eq(diesel::dsl::now),
                    ))
                    .execute(conn)
                    .await?;
            } else {
                diesel::update(target)
                    .set((
                        operation_actions::state.eq(state),
                        operation_actions::output.eq(output),
                        operation_actions::finished_at.eq(diesel::dsl::now),
                    ))
                    .execute(conn)
                    .await?;
            }
            Ok(())
        })
        .await
    }

    async fn finish(self, conn: &mut AsyncPgConnection, state: OperationState) -> Result<(), Stop> {
        let finished = diesel::update(self.row())
            .set((
                operations::state.eq(state),
                operations::finished_at.eq(diesel::dsl::now),
            ))
            .execute(conn)
            .await?;
        if finished == 0 {
            return Err(Stop::TakenOver);
        }
        Ok(())
    }
}
