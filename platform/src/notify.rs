//! Notifications: what happened that someone should know. Each is a row of its person's inbox
//! (the manager's bell), written in the transaction of what happened, with a delivery for each
//! channel they chose (an email; a webhook) in the same transaction: the durable outbox. A
//! worker takes due deliveries one at a time (a lease, like operations), sends them, and retries
//! a failed one with a growing wait for a day; nothing is lost across a restart, and a delivery
//! is sent again only when its worker died between sending and recording it.

use std::time::Duration;

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use lettre::{
    AsyncSmtpTransport, AsyncTransport as _, Message, Tokio1Executor,
    message::{Mailbox, MultiPart},
    transport::smtp::authentication::Credentials,
};
use model::notification::{Channel, DeliveryState, Event};

use crate::{
    Access, Actor, Error, Permission, Platform, Result, Role, authorize,
    schema::{deliveries, notification_choices, notifications, site_members, users, webhooks},
    webhooks::{Payload, PostFailure},
};

/// How long a worker may hold a delivery before another takes it over: longer than a send may
/// take.
const LEASE: Duration = Duration::from_secs(120);
/// The longest a connection to the mail server may take.
const SMTP_TIMEOUT: Duration = Duration::from_secs(15);
/// The longest a whole send may take (connecting, the greeting, TLS, signing in, the message):
/// the mail server's every step is bounded, not only its connection.
const SEND_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a read notification is kept (an unread one stays until it is read).
pub const READ_KEPT: Duration = Duration::from_secs(180 * 24 * 3600);
/// How long a finished delivery (delivered, or given up) is kept for the admins' page.
pub const FINISHED_DELIVERY_KEPT: Duration = Duration::from_secs(30 * 24 * 3600);

/// How often one person may send a test email, or a test to a webhook.
pub const TEST_EVERY: Duration = Duration::from_secs(30);

/// Why a delivery failed: worth trying again later, or not.
#[derive(Debug)]
enum Failure {
    /// The server was down, slow, or refused it for now.
    Transient(String),
    /// It was refused for good, or can never be sent.
    Permanent(String),
}

/// The mail server Director sends through.
#[derive(Clone)]
pub struct SmtpSettings {
    /// `smtp://host:port` (STARTTLS when the server offers it: `?tls=required` to insist),
    /// `smtps://host:port` (TLS from the start).
    pub url: String,
    /// The account to sign in with, if the server wants one.
    pub username: Option<String>,
    /// Its password.
    pub password: Option<String>,
    /// The sender: `Director <director@example.org>`.
    pub from: String,
}

impl std::fmt::Debug for SmtpSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpSettings")
            .field("url", &self.url)
            .field("username", &self.username)
            .field("from", &self.from)
            .finish_non_exhaustive()
    }
}

/// Checks a mail server's URL as the mail library reads it (a misspelt `tls=` is refused when
/// the configuration is read rather than at every email).
pub fn check_smtp_url(url: &str) -> Result<()> {
    AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
        .map(drop)
        .map_err(|e| Error::invalid("smtp_url", format!("Not a mail server URL: {e}")))
}

/// Checks a sender (`Name <address>`): refused when the configuration is read rather than at
/// the first email.
pub fn check_sender(from: &str) -> Result<()> {
    from.parse::<Mailbox>()
        .map(drop)
        .map_err(|e| Error::invalid("smtp_from", format!("Not a sender: {e}")))
}

/// Something to tell people.
#[derive(Debug, Clone)]
pub struct Notice {
    /// What happened.
    pub event: Event,
    /// One line.
    pub subject: String,
    /// A few sentences of plain text.
    pub body: String,
    /// The manager's page about it (a path: `/requests/3`).
    pub link: String,
}

/// A row of someone's inbox.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable)]
#[diesel(table_name = notifications)]
pub struct InboxItem {
    /// Its id.
    pub id: i64,
    /// What happened.
    pub event: Event,
    /// One line.
    pub subject: String,
    /// A few sentences.
    pub body: String,
    /// The page about it.
    pub link: String,
    /// When.
    pub created_at: DateTime<Utc>,
    /// When they read it.
    pub read_at: Option<DateTime<Utc>>,
}

/// A delivery, as the admins' page lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryRow {
    /// Its id.
    pub id: i64,
    /// Email or webhook.
    pub channel: Channel,
    /// Whom for (a username).
    pub username: String,
    /// The webhook's address (its origin: the path may be a credential) and whether it is for
    /// everyone's events (None: an email).
    pub webhook: Option<(String, bool)>,
    /// The notification's subject.
    pub subject: String,
    /// Where it stands.
    pub state: DeliveryState,
    /// Attempts made.
    pub attempts: i32,
    /// The last attempt's error.
    pub last_error: String,
    /// When it was queued.
    pub created_at: DateTime<Utc>,
    /// When the next attempt is due.
    pub next_attempt_at: DateTime<Utc>,
}

#[derive(Debug, Clone, QueryableByName)]
#[diesel(table_name = deliveries)]
struct Claimed {
    id: i64,
    notification_id: i64,
    channel: Channel,
    webhook_id: Option<i64>,
    attempts: i32,
    created_at: DateTime<Utc>,
    lease_until: Option<DateTime<Utc>>,
}

/// What a test email did: whether the mail server took it, and what it said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestEmail {
    /// Whether the server took it.
    pub sent: bool,
    /// The server's own words (or why nothing was sent).
    pub said: String,
}

/// The wait before attempt `attempts + 1`: the base, doubled at each failure, at most an hour.
fn backoff(base: Duration, attempts: i32) -> Duration {
    let factor = 2u32.saturating_pow(u32::try_from(attempts.clamp(0, 16)).unwrap_or(16));
    base.saturating_mul(factor).min(Duration::from_secs(3600))
}

/// The email a notification is: a plain-text and an HTML part, both with the link back.
fn email(from: &str, to: &str, item: &InboxItem, public_url: &str, message_id: &str) -> Result<Message> {
    let from: Mailbox = from
        .parse()
        .map_err(|e| Error::invalid("smtp_from", format!("The sender is not an address: {e}")))?;
    let to: Mailbox = to
        .parse()
        .map_err(|e| Error::invalid("email", format!("Not an address: {e}")))?;
    let link = format!("{}{}", public_url.trim_end_matches('/'), item.link);
    let settings = format!("{}/account", public_url.trim_end_matches('/'));
    let text = format!(
        "{}\n\n{}\n\nOpen it: {link}\n\n-- \nDirector. Choose what you are told on your account page: {settings}\n",
        item.subject, item.body
    );
    let html = format!(
        "<!doctype html><html><body><h1 style=\"font-size:1.2em\">{}</h1><p>{}</p><p><a href=\"{}\">Open it in Director</a></p><hr><p style=\"color:#666;font-size:.9em\">Choose what you are told on <a href=\"{}\">your account page</a>.</p></body></html>",
        html_escape(&item.subject),
        html_escape(&item.body).replace('\n', "<br>"),
        html_escape(&link),
        html_escape(&settings),
    );
    Message::builder()
        .from(from)
        .to(to)
        .subject(format!("[Director] {}", item.subject))
        .message_id(Some(message_id.to_owned()))
        .multipart(MultiPart::alternative_plain_html(text, html))
        .map_err(Error::internal)
}

/// The active people of `role` (to tell them what concerns their role).
pub(crate) async fn people_with(conn: &mut AsyncPgConnection, role: Role) -> Result<Vec<i64>> {
    Ok(users::table
        .filter(users::role.eq(role))
        .filter(users::active.eq(true))
        .select(users::id)
        .load(conn)
        .await?)
}

/// The active members of the site `site_id` (a deactivated account is told nothing more).
pub(crate) async fn members_of(conn: &mut AsyncPgConnection, site_id: i32) -> Result<Vec<i64>> {
    Ok(site_members::table
        .inner_join(users::table)
        .filter(site_members::site_id.eq(site_id))
        .filter(users::active.eq(true))
        .select(site_members::user_id)
        .load(conn)
        .await?)
}

/// Whether anyone was told of `event` about the page `link` since `since` (to tell of a
/// repeated trouble once in a while, not at every repeat).
pub(crate) async fn told_since(
    conn: &mut AsyncPgConnection,
    event: Event,
    link: &str,
    since: DateTime<Utc>,
) -> Result<bool> {
    Ok(diesel::select(diesel::dsl::exists(
        notifications::table
            .filter(notifications::event.eq(event))
            .filter(notifications::link.eq(link))
            .filter(notifications::created_at.gt(since)),
    ))
    .get_result(conn)
    .await?)
}

/// When each person's last test of each kind counted.
pub(crate) type TestsSent = std::collections::HashMap<(i64, &'static str), std::time::Instant>;

/// Refuses a test of `kind` when the actor's last one counted less than [`TEST_EVERY`] ago.
fn too_soon(last: &TestsSent, actor: &Actor, kind: &'static str) -> Result<()> {
    if last
        .get(&(actor.user_id, kind))
        .is_some_and(|at| at.elapsed() < TEST_EVERY)
    {
        return Err(Error::Conflict(format!(
            "One test {kind} per {} seconds: wait a moment.",
            TEST_EVERY.as_secs()
        )));
    }
    Ok(())
}

/// Queues a POST of notification `id` to each of `webhooks`.
async fn queue_webhooks(conn: &mut AsyncPgConnection, id: i64, webhooks: &[i64]) -> Result<()> {
    let rows: Vec<_> = webhooks
        .iter()
        .map(|webhook| {
            (
                deliveries::notification_id.eq(id),
                deliveries::channel.eq(Channel::Webhook),
                deliveries::webhook_id.eq(Some(*webhook)),
            )
        })
        .collect();
    if !rows.is_empty() {
        diesel::insert_into(deliveries::table)
            .values(rows)
            .execute(conn)
            .await?;
    }
    Ok(())
}

/// Text made safe inside HTML.
fn html_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

impl Platform {
    /// Tells `recipients` of `notice`, in the caller's transaction: a row of each one's inbox
    /// (read already when they turned the inbox off for the event), and the deliveries their
    /// choices ask for. Call [`Platform::wake_deliveries`] once it is committed.
    pub(crate) async fn notify(
        &self,
        conn: &mut AsyncPgConnection,
        recipients: &[i64],
        notice: &Notice,
    ) -> Result<()> {
        let mut recipients = recipients.to_vec();
        recipients.sort_unstable();
        recipients.dedup();
        let mut first = None;
        for user_id in recipients.into_iter().filter(|id| *id > 0) {
            let choices: Vec<(Channel, bool)> = notification_choices::table
                .filter(notification_choices::user_id.eq(user_id))
                .filter(notification_choices::event.eq(notice.event))
                .select((notification_choices::channel, notification_choices::enabled))
                .load(conn)
                .await?;
            let wants = |channel: Channel| {
                choices
                    .iter()
                    .find(|(c, _)| *c == channel)
                    .is_none_or(|(_, enabled)| *enabled)
            };
            let id: i64 = diesel::insert_into(notifications::table)
                .values((
                    notifications::user_id.eq(user_id),
                    notifications::event.eq(notice.event),
                    notifications::subject.eq(&notice.subject),
                    notifications::body.eq(&notice.body),
                    notifications::link.eq(&notice.link),
                    notifications::read_at.eq((!wants(Channel::Inbox)).then(Utc::now)),
                ))
                .returning(notifications::id)
                .get_result(conn)
                .await?;
            first.get_or_insert(id);
            if wants(Channel::Webhook) {
                let theirs: Vec<i64> = webhooks::table
                    .filter(webhooks::user_id.eq(user_id))
                    .select(webhooks::id)
                    .load(conn)
                    .await?;
                queue_webhooks(conn, id, &theirs).await?;
            }
            let email: String = users::table
                .find(user_id)
                .select(users::email)
                .first(conn)
                .await?;
            if self.settings().smtp.is_some() && !email.is_empty() && wants(Channel::Email) {
                diesel::insert_into(deliveries::table)
                    .values((
                        deliveries::notification_id.eq(id),
                        deliveries::channel.eq(Channel::Email),
                    ))
                    .execute(conn)
                    .await?;
            }
        }
        // Everyone's webhooks hear of the event once, through its first notification.
        if let Some(first) = first {
            let everyone: Vec<i64> = webhooks::table
                .filter(webhooks::user_id.is_null())
                .select(webhooks::id)
                .load(conn)
                .await?;
            queue_webhooks(conn, first, &everyone).await?;
        }
        Ok(())
    }

    /// Forgets notifications read more than [`READ_KEPT`] ago and deliveries finished more
    /// than [`FINISHED_DELIVERY_KEPT`] ago. Returns how many of each went.
    pub async fn purge_old_notifications(&self) -> Result<(usize, usize)> {
        let now = Utc::now();
        let read_before = now - chrono::Duration::from_std(READ_KEPT).map_err(Error::internal)?;
        let finished_before =
            now - chrono::Duration::from_std(FINISHED_DELIVERY_KEPT).map_err(Error::internal)?;
        let mut conn = self.conn().await?;
        let deliveries = diesel::delete(
            deliveries::table
                .filter(deliveries::state.eq_any([DeliveryState::Delivered, DeliveryState::Failed]))
                .filter(deliveries::created_at.lt(finished_before)),
        )
        .execute(&mut conn)
        .await?;
        // A notification goes with the deliveries still queued for it (none, after so long).
        let notifications =
            diesel::delete(notifications::table.filter(notifications::read_at.lt(read_before)))
                .execute(&mut conn)
                .await?;
        Ok((notifications, deliveries))
    }

    /// Wakes a delivery worker: something was queued.
    pub(crate) fn wake_deliveries(&self) {
        self.inner.deliveries_queued.notify_one();
    }

    /// Waits until a delivery is queued in this process, or `timeout` passes.
    pub async fn delivery_queued(&self, timeout: Duration) {
        let _ = tokio::time::timeout(timeout, self.inner.deliveries_queued.notified()).await;
    }

    /// The actor's inbox, the latest first (at most `limit`), and how many are unread.
    pub async fn inbox(&self, actor: Option<&Actor>, limit: i64) -> Result<(Vec<InboxItem>, i64)> {
        let actor = authorize(actor, Permission::OwnRecords, Access::Read)?;
        let mut conn = self.conn().await?;
        let items = notifications::table
            .filter(notifications::user_id.eq(actor.user_id))
            .order(notifications::id.desc())
            .limit(limit.clamp(1, 200))
            .select(InboxItem::as_select())
            .load(&mut conn)
            .await?;
        let unread = self.unread(&mut conn, actor.user_id).await?;
        Ok((items, unread))
    }

    /// How many of the actor's notifications are unread (for the bell on every page).
    pub async fn unread_notifications(&self, actor: Option<&Actor>) -> Result<i64> {
        let actor = authorize(actor, Permission::UseManager, Access::Read)?;
        let mut conn = self.conn().await?;
        self.unread(&mut conn, actor.user_id).await
    }

    async fn unread(&self, conn: &mut AsyncPgConnection, user_id: i64) -> Result<i64> {
        Ok(notifications::table
            .filter(notifications::user_id.eq(user_id))
            .filter(notifications::read_at.is_null())
            .count()
            .get_result(conn)
            .await?)
    }

    /// Marks the actor's notification `id` read (None: all of them).
    pub async fn mark_read(&self, actor: Option<&Actor>, id: Option<i64>) -> Result<()> {
        let actor = authorize(actor, Permission::OwnRecords, Access::Write)?;
        let mut conn = self.conn().await?;
        let mine = notifications::table
            .filter(notifications::user_id.eq(actor.user_id))
            .filter(notifications::read_at.is_null());
        let changed = match id {
            Some(id) => {
                diesel::update(mine.filter(notifications::id.eq(id)))
                    .set(notifications::read_at.eq(Utc::now()))
                    .execute(&mut conn)
                    .await?
            }
            None => {
                diesel::update(mine)
                    .set(notifications::read_at.eq(Utc::now()))
                    .execute(&mut conn)
                    .await?
            }
        };
        if changed == 0 && id.is_some() {
            // Someone else's, or no such one: nothing to say about it.
            let exists: i64 = notifications::table
                .filter(notifications::user_id.eq(actor.user_id))
                .filter(notifications::id.eq(id.unwrap_or_default()))
                .count()
                .get_result(&mut conn)
                .await?;
            if exists == 0 {
                return Err(Error::NotFound("notification"));
            }
        }
        Ok(())
    }

    /// The actor's choice for every event and channel (every one on unless they said not).
    pub async fn notification_choices(&self, actor: Option<&Actor>) -> Result<Vec<(Event, Channel, bool)>> {
        let actor = authorize(actor, Permission::UseManager, Access::Read)?;
        let mut conn = self.conn().await?;
        let set: Vec<(Event, Channel, bool)> = notification_choices::table
            .filter(notification_choices::user_id.eq(actor.user_id))
            .select((
                notification_choices::event,
                notification_choices::channel,
                notification_choices::enabled,
            ))
            .load(&mut conn)
            .await?;
        Ok(Event::ALL
            .iter()
            .flat_map(|event| Channel::ALL.iter().map(move |channel| (*event, *channel)))
            .map(|(event, channel)| {
                let enabled = set
                    .iter()
                    .find(|(e, c, _)| *e == event && *c == channel)
                    .is_none_or(|(_, _, enabled)| *enabled);
                (event, channel, enabled)
            })
            .collect())
    }

    /// Sets the actor's choice for `event` on `channel`.
    pub async fn set_notification_choice(
        &self,
        actor: Option<&Actor>,
        event: Event,
        channel: Channel,
        enabled: bool,
    ) -> Result<()> {
        let actor = authorize(actor, Permission::UseManager, Access::Write)?;
        let mut conn = self.conn().await?;
        diesel::insert_into(notification_choices::table)
            .values((
                notification_choices::user_id.eq(actor.user_id),
                notification_choices::event.eq(event),
                notification_choices::channel.eq(channel),
                notification_choices::enabled.eq(enabled),
            ))
            .on_conflict((
                notification_choices::user_id,
                notification_choices::event,
                notification_choices::channel,
            ))
            .do_update()
            .set(notification_choices::enabled.eq(enabled))
            .execute(&mut conn)
            .await?;
        Ok(())
    }

    /// The mail transport, from the settings (None: no mail server configured).
    /// Made once: its pool of connections is shared by every send, so that a burst of emails is
    /// not a connection (and a TLS handshake, a sign-in) per email.
    fn smtp(&self) -> Result<Option<(AsyncSmtpTransport<Tokio1Executor>, &str)>> {
        let Some(smtp) = &self.settings().smtp else {
            return Ok(None);
        };
        if let Some(transport) = self.inner.smtp_transport.get() {
            return Ok(Some((transport.clone(), smtp.from.as_str())));
        }
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::from_url(&smtp.url)
            .map_err(|e| Error::invalid("smtp_url", format!("Not a mail server URL: {e}")))?
            .timeout(Some(SMTP_TIMEOUT));
        if let (Some(username), Some(password)) = (&smtp.username, &smtp.password) {
            builder = builder.credentials(Credentials::new(username.clone(), password.clone()));
        }
        let transport = self.inner.smtp_transport.get_or_init(|| builder.build());
        Ok(Some((transport.clone(), smtp.from.as_str())))
    }

    /// Takes the next due delivery (or one whose worker died), sends it, and records what
    /// happened: delivered, or failed with the error and retried later until a day has passed
    /// (at once given up when the mail server refused it for good). Returns whether there was
    /// one. The result is recorded only while the lease is still this worker's: one that took
    /// too long and was taken over records nothing.
    pub async fn deliver_next(&self) -> Result<bool> {
        let claimed: Option<Claimed> = {
            let mut conn = self.conn().await?;
            diesel::sql_query(
                "UPDATE deliveries SET state = 'sending', lease_until = now() + $1 * interval '1 second' \
                 WHERE id = (SELECT id FROM deliveries \
                             WHERE (state = 'pending' AND next_attempt_at <= now()) \
                                OR (state = 'sending' AND lease_until < now()) \
                             ORDER BY next_attempt_at, id LIMIT 1 FOR UPDATE SKIP LOCKED) \
                 RETURNING id, notification_id, channel, webhook_id, attempts, created_at, lease_until",
            )
            .bind::<diesel::sql_types::Double, _>(LEASE.as_secs_f64())
            .get_result(&mut conn)
            .await
            .optional()?
        };
        let Some(claimed) = claimed else {
            return Ok(false);
        };
        // No database connection is held while the mail server takes its time.
        let outcome = match tokio::time::timeout(SEND_TIMEOUT, self.send(&claimed)).await {
            Ok(outcome) => outcome,
            Err(_) => Err(Failure::Transient(format!(
                "no answer within {} s",
                SEND_TIMEOUT.as_secs()
            ))),
        };
        let now = Utc::now();
        let ours = deliveries::table
            .filter(deliveries::id.eq(claimed.id))
            .filter(deliveries::state.eq(DeliveryState::Sending))
            .filter(deliveries::lease_until.eq(claimed.lease_until));
        let mut conn = self.conn().await?;
        let recorded = match outcome {
            Ok(()) => {
                let recorded = diesel::update(ours)
                    .set((
                        deliveries::state.eq(DeliveryState::Delivered),
                        deliveries::attempts.eq(claimed.attempts + 1),
                        deliveries::delivered_at.eq(now),
                        deliveries::lease_until.eq(None::<DateTime<Utc>>),
                        deliveries::last_error.eq(""),
                    ))
                    .execute(&mut conn)
                    .await?;
                tracing::info!(
                    delivery = claimed.id,
                    channel = claimed.channel.as_str(),
                    "delivered"
                );
                recorded
            }
            Err(failure) => {
                let attempts = claimed.attempts + 1;
                let wait = chrono::Duration::from_std(backoff(self.settings().delivery_retry, attempts - 1))
                    .map_err(Error::internal)?;
                let give_up =
                    chrono::Duration::from_std(self.settings().delivery_give_up).map_err(Error::internal)?;
                let next = now + wait;
                let (state, error) = match failure {
                    Failure::Permanent(error) => (DeliveryState::Failed, error),
                    Failure::Transient(error) if next > claimed.created_at + give_up => {
                        (DeliveryState::Failed, error)
                    }
                    Failure::Transient(error) => (DeliveryState::Pending, error),
                };
                let error: String = error.chars().take(1000).collect();
                let recorded = diesel::update(ours)
                    .set((
                        deliveries::state.eq(state),
                        deliveries::attempts.eq(attempts),
                        deliveries::next_attempt_at.eq(next),
                        deliveries::lease_until.eq(None::<DateTime<Utc>>),
                        deliveries::last_error.eq(&error),
                    ))
                    .execute(&mut conn)
                    .await?;
                tracing::warn!(delivery = claimed.id, attempts, state = state.as_str(), error = %error, "a delivery failed");
                recorded
            }
        };
        if recorded == 0 {
            tracing::warn!(
                delivery = claimed.id,
                "the delivery was taken over, or its webhook removed, before its result was recorded"
            );
        }
        Ok(true)
    }

    /// Sends one delivery.
    async fn send(&self, claimed: &Claimed) -> std::result::Result<(), Failure> {
        let loaded: Option<(InboxItem, String, String)> = {
            let mut conn = self.conn().await.map_err(|e| Failure::Transient(e.to_string()))?;
            notifications::table
                .inner_join(users::table)
                .filter(notifications::id.eq(claimed.notification_id))
                .select((InboxItem::as_select(), users::email, users::username))
                .first(&mut conn)
                .await
                .optional()
                .map_err(|e| Failure::Transient(e.to_string()))?
        };
        let Some((item, address, username)) = loaded else {
            return Err(Failure::Permanent("the notification is gone".to_owned()));
        };
        match claimed.channel {
            Channel::Email => {
                let (transport, from) = self
                    .smtp()
                    .map_err(|e| Failure::Permanent(e.to_string()))?
                    .ok_or_else(|| Failure::Permanent("no mail server is configured".to_owned()))?;
                if address.is_empty() {
                    return Err(Failure::Permanent("the person has no email address".to_owned()));
                }
                let message_id = format!("<delivery-{}@{}>", claimed.id, self.mail_domain());
                let message = email(from, &address, &item, &self.settings().public_url, &message_id)
                    .map_err(|e| Failure::Permanent(e.to_string()))?;
                transport.send(message).await.map_err(|e| {
                    if e.is_permanent() {
                        Failure::Permanent(e.to_string())
                    } else {
                        Failure::Transient(e.to_string())
                    }
                })?;
                Ok(())
            }
            Channel::Webhook => {
                let hook: Option<(String, String, Option<i64>)> = {
                    let mut conn = self.conn().await.map_err(|e| Failure::Transient(e.to_string()))?;
                    webhooks::table
                        .find(claimed.webhook_id.unwrap_or_default())
                        .select((webhooks::url, webhooks::secret, webhooks::user_id))
                        .first(&mut conn)
                        .await
                        .optional()
                        .map_err(|e| Failure::Transient(e.to_string()))?
                };
                let Some((url, secret, owner)) = hook else {
                    return Err(Failure::Permanent("the webhook was removed".to_owned()));
                };
                let link = self.absolute_link(&item.link);
                let payload = Payload {
                    event: item.event.as_str(),
                    time: item.created_at.to_rfc3339(),
                    subject: &item.subject,
                    body: &item.body,
                    text: format!("{}\n{link}", item.subject),
                    link,
                    recipient: owner.is_some().then_some(username.as_str()),
                    delivery: claimed.id,
                };
                self.post_webhook(&url, &secret, &payload)
                    .await
                    .map(drop)
                    .map_err(|failure| match failure {
                        PostFailure::Transient(e) => Failure::Transient(e),
                        PostFailure::Permanent(e) => Failure::Permanent(e),
                    })
            }
            Channel::Inbox => Err(Failure::Permanent("not a channel of deliveries".to_owned())),
        }
    }

    /// The domain of Director's own message ids: the manager's host.
    fn mail_domain(&self) -> String {
        url::Url::parse(&self.settings().public_url)
            .ok()
            .and_then(|u| u.host_str().map(ToOwned::to_owned))
            .unwrap_or_else(|| "localhost".to_owned())
    }

    /// Sends the actor a test email now, and says what the mail server answered: its own words
    /// to admins (who configure it), whether it was taken to members. Once per
    /// [`TEST_EVERY`] per person.
    pub async fn send_test_email(&self, actor: Option<&Actor>) -> Result<TestEmail> {
        let actor = authorize(actor, Permission::UseManager, Access::Write)?;
        let address: String = {
            let mut conn = self.conn().await?;
            users::table
                .find(actor.user_id)
                .select(users::email)
                .first(&mut conn)
                .await?
        };
        if address.is_empty() {
            return Err(Error::invalid("email", "Your account has no email address."));
        }
        let Some((transport, from)) = self.smtp()? else {
            return Ok(TestEmail {
                sent: false,
                said: "No mail server is configured: ask an administrator (--smtp-url).".to_owned(),
            });
        };
        self.check_test_turn(actor, "email")?;
        let item = InboxItem {
            id: 0,
            event: Event::Membership,
            subject: "A test from Director".to_owned(),
            body: format!("{} asked for this test: the mail server took it.", actor.username),
            link: "/account".to_owned(),
            created_at: Utc::now(),
            read_at: None,
        };
        let message_id = format!("<test-{}@{}>", crate::tokens::generate(), self.mail_domain());
        let message = email(from, &address, &item, &self.settings().public_url, &message_id)?;
        let sent = tokio::time::timeout(SEND_TIMEOUT, transport.send(message)).await;
        let (sent, said) = match sent {
            Ok(Ok(response)) => (true, response.message().collect::<Vec<_>>().join(" ")),
            Ok(Err(err)) => (false, err.to_string()),
            Err(_) => (
                false,
                format!(
                    "the mail server did not finish within {} s",
                    SEND_TIMEOUT.as_secs()
                ),
            ),
        };
        tracing::info!(user = %actor.username, sent, said = %said, "test email");
        if sent {
            self.record_test_turn(actor, "email");
        }
        let said = if actor.is_admin() {
            said
        } else if sent {
            "The mail server took it.".to_owned()
        } else {
            "The mail server did not take it: an administrator sees why on the notifications page.".to_owned()
        };
        Ok(TestEmail { sent, said })
    }

    /// Refuses a test of `kind` (`email`, `webhook`) when the actor's last one that counted
    /// was less than [`TEST_EVERY`] ago.
    pub(crate) fn check_test_turn(&self, actor: &Actor, kind: &'static str) -> Result<()> {
        let last = self
            .inner
            .tests_sent
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        too_soon(&last, actor, kind)
    }

    /// Refuses a test of `kind` as [`Platform::check_test_turn`] does, else counts it, at once
    /// (two at the same moment cannot both pass).
    pub(crate) fn take_test_turn(&self, actor: &Actor, kind: &'static str) -> Result<()> {
        let mut last = self
            .inner
            .tests_sent
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        too_soon(&last, actor, kind)?;
        last.retain(|_, at| at.elapsed() < TEST_EVERY);
        last.insert((actor.user_id, kind), std::time::Instant::now());
        Ok(())
    }

    /// Counts a test that went through. Only those count: whoever fixes the settings may try
    /// again at once.
    pub(crate) fn record_test_turn(&self, actor: &Actor, kind: &'static str) {
        let mut last = self
            .inner
            .tests_sent
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        last.retain(|_, at| at.elapsed() < TEST_EVERY);
        last.insert((actor.user_id, kind), std::time::Instant::now());
    }

    /// The latest deliveries with their attempts (admins only).
    pub async fn deliveries(&self, actor: Option<&Actor>) -> Result<Vec<DeliveryRow>> {
        authorize(actor, Permission::Administer, Access::Read)?;
        let mut conn = self.conn().await?;
        type Row = (
            i64,
            Channel,
            String,
            Option<(String, Option<i64>)>,
            String,
            DeliveryState,
            i32,
            String,
            DateTime<Utc>,
            DateTime<Utc>,
        );
        let rows: Vec<Row> = deliveries::table
            .inner_join(notifications::table.inner_join(users::table))
            .left_join(webhooks::table)
            .order(deliveries::id.desc())
            .limit(200)
            .select((
                deliveries::id,
                deliveries::channel,
                users::username,
                (webhooks::url, webhooks::user_id).nullable(),
                notifications::subject,
                deliveries::state,
                deliveries::attempts,
                deliveries::last_error,
                deliveries::created_at,
                deliveries::next_attempt_at,
            ))
            .load(&mut conn)
            .await?;
        Ok(rows
            .into_iter()
            .map(
                |(id, channel, username, webhook, subject, state, attempts, last_error, created_at, next)| {
                    DeliveryRow {
                        id,
                        channel,
                        username,
                        webhook: webhook.map(|(url, owner)| {
                            let origin = url::Url::parse(&url)
                                .map(|u| u.origin().ascii_serialization())
                                .unwrap_or_default();
                            (origin, owner.is_none())
                        }),
                        subject,
                        state,
                        attempts,
                        last_error,
                        created_at,
                        next_attempt_at: next,
                    }
                },
            )
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wait_doubles_up_to_an_hour() {
        let base = Duration::from_secs(30);
        assert_eq!(backoff(base, 0), Duration::from_secs(30));
        assert_eq!(backoff(base, 1), Duration::from_secs(60));
        assert_eq!(backoff(base, 3), Duration::from_secs(240));
        assert_eq!(backoff(base, 20), Duration::from_secs(3600));
    }

    #[test]
    fn html_is_escaped() {
        assert_eq!(
            html_escape("<a href='x'>&</a>"),
            "&lt;a href=&#39;x&#39;&gt;&amp;&lt;/a&gt;"
        );
    }
}
