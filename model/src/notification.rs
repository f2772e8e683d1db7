//! Notifications: what happened that someone should know, and how it reaches them — the
//! manager's inbox, an email, a webhook.

stored_enum! {
    /// What happened.
    pub enum Event ("notification event") {
        /// A member asked for a site (to its approvers; to admins when it waits for them).
        RequestSubmitted = "request-submitted",
        /// A request was approved (to its requester).
        RequestApproved = "request-approved",
        /// A request was denied, with the reason (to its requester).
        RequestDenied = "request-denied",
        /// A site was made for the person (a request's last approval).
        SiteCreated = "site-created",
        /// An operation of a site of theirs failed.
        OperationFailed = "operation-failed",
        /// An admin disabled or enabled a site of theirs, with the reason.
        SiteDisabled = "site-disabled",
        /// A certificate of a site of theirs failed, or expires within 14 days.
        CertificateProblem = "certificate-problem",
        /// They were added to a site, or removed from one.
        Membership = "membership",
    }
}

impl Event {
    /// How the preferences page names it.
    pub fn label(self) -> &'static str {
        match self {
            Self::RequestSubmitted => "A request for a site waits for you",
            Self::RequestApproved => "Your request was approved",
            Self::RequestDenied => "Your request was denied",
            Self::SiteCreated => "A site was created for you",
            Self::OperationFailed => "An operation of your site failed",
            Self::SiteDisabled => "Your site was disabled or enabled",
            Self::CertificateProblem => "A certificate of your site failed or expires soon",
            Self::Membership => "You were added to or removed from a site",
        }
    }
}

stored_enum! {
    /// How a notification reaches someone.
    pub enum Channel ("notification channel") {
        /// The manager's own inbox (the bell).
        Inbox = "inbox",
        /// An email to their address.
        Email = "email",
        /// A signed JSON POST to their webhook.
        Webhook = "webhook",
    }
}

stored_enum! {
    /// Where a delivery (an email, a webhook's POST) stands.
    pub enum DeliveryState ("delivery state") {
        /// Waiting for its (next) attempt.
        Pending = "pending",
        /// A worker is sending it.
        Sending = "sending",
        /// The server took it.
        Delivered = "delivered",
        /// Retried for a day in vain, or refused for good.
        Failed = "failed",
    }
}

/// Whose notifications a webhook is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum WebhookScope {
    /// Its owner's, as their choices say.
    Mine,
    /// Everyone's, every event once (admins').
    Everyone,
}
