//! Requests for sites: a member asks, an approver and then an admin approve (or one approver,
//! when the admin step is off), and the site is made for the member.

stored_enum! {
    /// Where a request stands.
    pub enum RequestState ("request state") {
        /// Waiting for an approver (or an admin).
        Submitted = "submitted",
        /// An approver approved it; waiting for an admin.
        Approved = "approved",
        /// Approved all the way: its site was made.
        Created = "created",
        /// Someone who could approve it refused it, with the reason.
        Denied = "denied",
        /// Its requester took it back.
        Withdrawn = "withdrawn",
    }
}

impl RequestState {
    /// Whether someone may still act on it.
    pub fn is_open(self) -> bool {
        matches!(self, Self::Submitted | Self::Approved)
    }

    /// How it reads in the pages.
    pub fn label(self) -> &'static str {
        match self {
            Self::Submitted => "Waiting for an approver",
            Self::Approved => "Waiting for an admin",
            Self::Created => "Site created",
            Self::Denied => "Denied",
            Self::Withdrawn => "Withdrawn",
        }
    }
}

stored_enum! {
    /// One step in a request's history.
    pub enum RequestAction ("request action") {
        /// The member asked.
        Submit = "submit",
        /// An approver or an admin approved.
        Approve = "approve",
        /// An approver or an admin refused.
        Deny = "deny",
        /// The member took it back.
        Withdraw = "withdraw",
    }
}

stored_enum! {
    /// How members get sites, as an admin set it.
    pub enum SiteCreation ("site creation policy") {
        /// They create them (and become their first member) at once.
        Direct = "direct",
        /// They request them, and the request is approved first.
        Request = "request",
    }
}

stored_enum! {
    /// Who approves a request.
    pub enum ApprovalSteps ("approval steps") {
        /// An approver, then an admin.
        ApproverAndAdmin = "approver-and-admin",
        /// An approver (or an admin) alone.
        Approver = "approver",
    }
}
