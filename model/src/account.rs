//! Accounts.

stored_enum! {
    /// What an account may do.
    pub enum Role ("role") {
        /// A member: manages the sites they belong to.
        User = "user",
        /// A member who also reviews other members' requests for sites; no other admin right.
        Approver = "approver",
        /// A superuser: manages everything.
        Admin = "admin",
    }
}

impl Role {
    /// Its name in the manager's pages.
    pub fn label(self) -> &'static str {
        match self {
            Self::User => "Member",
            Self::Approver => "Approver",
            Self::Admin => "Admin",
        }
    }
}

stored_enum! {
    /// Why a sign-in through an identity provider did not sign anyone in: its name travels in
    /// the sign-in page's address (`?failed=`), which shows the fixed words of [`Self::message`],
    /// so that nobody can make Director's own page say what they like.
    pub enum SignInRefusal ("sign-in refusal") {
        /// The `state` is not one Director gave, or it was used already.
        Unknown = "unknown",
        /// The sign-in took longer than Director waits.
        Expired = "expired",
        /// It was started in another browser.
        OtherBrowser = "other-browser",
        /// The person cancelled at the provider, or the provider refused them.
        Cancelled = "cancelled",
        /// The provider did not accept the code.
        NotAccepted = "not-accepted",
        /// The ID token failed Director's checks.
        BadToken = "bad-token",
        /// The person has no account, and the provider does not let people register.
        NoAccount = "no-account",
        /// The account is deactivated.
        Deactivated = "deactivated",
        /// An account has the person's email address: it is not theirs until linked.
        AccountExists = "account-exists",
        /// The person is linked to another account already (when linking).
        LinkedElsewhere = "linked-elsewhere",
        /// The provider did not answer.
        Unavailable = "unavailable",
    }
}

impl SignInRefusal {
    /// What the sign-in page says, after "Signing in with <provider> failed: ".
    pub fn message(self) -> &'static str {
        match self {
            Self::Unknown => "this sign-in is not one Director started, or it was used already. Start again.",
            Self::Expired => "it took too long. Start again.",
            Self::OtherBrowser => "it was started in another browser. Start again here.",
            Self::Cancelled => "it was cancelled, or the provider refused it.",
            Self::NotAccepted => "the provider did not accept it. Start again.",
            Self::BadToken => "the provider's answer did not pass Director's checks.",
            Self::NoAccount => "you have no account on this Director yet. Ask an administrator for one.",
            Self::Deactivated => "your account is deactivated. Ask an administrator.",
            Self::AccountExists => {
                "an account with your email address exists already. Sign in to it and link the provider from your account page, or ask an administrator to link them."
            }
            Self::LinkedElsewhere => "that person at the provider is linked to another account already.",
            Self::Unavailable => "the provider did not answer. Try again in a moment.",
        }
    }
}
