//! Notifications: the inbox behind the bell, each person's choice of what reaches them and
//! how, a test email, and the admins' view of the outbox.

use leptos::prelude::*;
pub use model::notification::{Channel, DeliveryState, Event, WebhookScope};
use serde::{Deserialize, Serialize};

use crate::AppError;
#[cfg(feature = "ssr")]
use crate::ssr::{actor, platform, to_app_error};

/// A notification as the inbox lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NoticeRow {
    /// Its id.
    pub id: i64,
    /// One line.
    pub subject: String,
    /// A few sentences.
    pub body: String,
    /// The page about it.
    pub link: String,
    /// When, `YYYY-MM-DD HH:MM` UTC.
    pub at: String,
    /// Whether it was read.
    pub read: bool,
}

/// The inbox: the latest notifications and how many are unread.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InboxPage {
    /// The latest, the newest first.
    pub items: Vec<NoticeRow>,
    /// How many are unread.
    pub unread: i64,
}

/// One event's choices, a channel each.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChoiceRow {
    /// The event.
    pub event: Event,
    /// Whether it reaches the inbox, by email, by webhook.
    pub channels: Vec<(Channel, bool)>,
}

/// What a test (an email, a webhook's ping) did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TestOutcome {
    /// Whether the mail server or endpoint took it.
    pub sent: bool,
    /// Its own words.
    pub said: String,
}

/// A webhook as its page lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookRow {
    /// Its id.
    pub id: i64,
    /// Where it is sent.
    pub url: String,
    /// Whose notifications.
    pub scope: WebhookScope,
    /// Added, `YYYY-MM-DD` UTC.
    pub added: String,
    /// How its latest delivery went (None: none yet).
    pub last_state: Option<DeliveryState>,
    /// Its latest delivery's error.
    pub last_error: String,
}

/// A webhook just added: its secret is shown this once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddedWebhook {
    /// Where it is sent.
    pub url: String,
    /// The key of its signatures.
    pub secret: String,
}

/// A delivery as the admins' page lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryView {
    /// Its id.
    pub id: i64,
    /// Email or webhook.
    pub channel: Channel,
    /// Whom for.
    pub username: String,
    /// The webhook's origin and whether it is for everyone's events (None: an email).
    pub webhook: Option<(String, bool)>,
    /// The notification's subject.
    pub subject: String,
    /// Where it stands.
    pub state: DeliveryState,
    /// Attempts made.
    pub attempts: i32,
    /// The last attempt's error.
    pub last_error: String,
    /// Queued, `YYYY-MM-DD HH:MM:SS` UTC.
    pub queued: String,
    /// The next attempt, `YYYY-MM-DD HH:MM:SS` UTC.
    pub next_attempt: String,
}

/// The signed-in person's inbox.
#[server(prefix = "/fn", endpoint = "inbox")]
pub async fn inbox() -> Result<InboxPage, AppError> {
    let platform = platform();
    let actor = actor().await?;
    let (items, unread) = platform.inbox(actor.as_ref(), 100).await.map_err(to_app_error)?;
    Ok(InboxPage {
        items: items
            .into_iter()
            .map(|n| NoticeRow {
                id: n.id,
                subject: n.subject,
                body: n.body,
                link: n.link,
                at: n.created_at.format("%Y-%m-%d %H:%M").to_string(),
                read: n.read_at.is_some(),
            })
            .collect(),
        unread,
    })
}

/// Marks a notification read; an empty `id` marks them all.
#[server(prefix = "/fn", endpoint = "mark_read")]
pub async fn mark_read(id: String) -> Result<(), AppError> {
    let platform = platform();
    let actor = actor().await?;
    let id = match id.trim() {
        "" => None,
        given => Some(given.parse::<i64>().map_err(|_| AppError::Invalid {
            field: "id".to_owned(),
            message: "Not a notification.".to_owned(),
        })?),
    };
    platform.mark_read(actor.as_ref(), id).await.map_err(to_app_error)
}

/// The signed-in person's choices, event by event.
#[server(prefix = "/fn", endpoint = "notification_choices")]
pub async fn notification_choices() -> Result<Vec<ChoiceRow>, AppError> {
    let platform = platform();
    let actor = actor().await?;
    let choices = platform
        .notification_choices(actor.as_ref())
        .await
        .map_err(to_app_error)?;
    Ok(Event::ALL
        .iter()
        .map(|event| ChoiceRow {
            event: *event,
            channels: choices
                .iter()
                .filter(|(e, _, _)| e == event)
                .map(|(_, channel, enabled)| (*channel, *enabled))
                .collect(),
        })
        .collect())
}

/// Sets whether `event` reaches the signed-in person on `channel`.
#[server(prefix = "/fn", endpoint = "set_notification_choice")]
pub async fn set_notification_choice(event: Event, channel: Channel, enabled: bool) -> Result<(), AppError> {
    let platform = platform();
    let actor = actor().await?;
    platform
        .set_notification_choice(actor.as_ref(), event, channel, enabled)
        .await
        .map_err(to_app_error)
}

/// Sends the signed-in person a test email now, and says what the mail server answered.
#[server(prefix = "/fn", endpoint = "send_test_email")]
pub async fn send_test_email() -> Result<TestOutcome, AppError> {
    let platform = platform();
    let actor = actor().await?;
    let outcome = platform
        .send_test_email(actor.as_ref())
        .await
        .map_err(to_app_error)?;
    Ok(TestOutcome {
        sent: outcome.sent,
        said: outcome.said,
    })
}

/// The signed-in person's webhooks (and for admins everyone's).
#[server(prefix = "/fn", endpoint = "webhooks")]
pub async fn webhooks() -> Result<Vec<WebhookRow>, AppError> {
    let platform = platform();
    let actor = actor().await?;
    let hooks = platform.webhooks(actor.as_ref()).await.map_err(to_app_error)?;
    Ok(hooks
        .into_iter()
        .map(|w| WebhookRow {
            id: w.id,
            url: w.url,
            scope: w.scope,
            added: w.created_at.format("%Y-%m-%d").to_string(),
            last_state: w.last_state,
            last_error: w.last_error,
        })
        .collect())
}

/// Adds a webhook at `url` for the signed-in person's notifications (`Mine`), or for
/// everyone's (`Everyone`, admins); its secret is in the answer, this once.
#[server(prefix = "/fn", endpoint = "add_webhook")]
pub async fn add_webhook(url: String, scope: WebhookScope) -> Result<AddedWebhook, AppError> {
    let platform = platform();
    let actor = actor().await?;
    let (hook, secret) = platform
        .add_webhook(actor.as_ref(), &url, scope)
        .await
        .map_err(to_app_error)?;
    Ok(AddedWebhook {
        url: hook.url,
        secret,
    })
}

/// Removes a webhook.
#[server(prefix = "/fn", endpoint = "remove_webhook")]
pub async fn remove_webhook(id: i64) -> Result<(), AppError> {
    let platform = platform();
    let actor = actor().await?;
    platform
        .remove_webhook(actor.as_ref(), id)
        .await
        .map_err(to_app_error)
}

/// POSTs a test to a webhook now, and says how its endpoint answered.
#[server(prefix = "/fn", endpoint = "test_webhook")]
pub async fn test_webhook(id: i64) -> Result<TestOutcome, AppError> {
    let platform = platform();
    let actor = actor().await?;
    let outcome = platform
        .test_webhook(actor.as_ref(), id)
        .await
        .map_err(to_app_error)?;
    Ok(TestOutcome {
        sent: outcome.sent,
        said: outcome.said,
    })
}

/// The latest deliveries with their attempts (admins only).
#[server(prefix = "/fn", endpoint = "deliveries")]
pub async fn deliveries() -> Result<Vec<DeliveryView>, AppError> {
    let platform = platform();
    let actor = actor().await?;
    let rows = platform.deliveries(actor.as_ref()).await.map_err(to_app_error)?;
    Ok(rows
        .into_iter()
        .map(|d| DeliveryView {
            id: d.id,
            channel: d.channel,
            username: d.username,
            webhook: d.webhook,
            subject: d.subject,
            state: d.state,
            attempts: d.attempts,
            last_error: d.last_error,
            queued: d.created_at.format("%Y-%m-%d %H:%M:%S").to_string(),
            next_attempt: d.next_attempt_at.format("%Y-%m-%d %H:%M:%S").to_string(),
        })
        .collect())
}
