//! Personal access tokens: what one may do with what its user may reach.

stored_enum! {
    /// How far a personal access token reaches into what its user may do.
    pub enum TokenAccess ("token access") {
        /// Look only.
        Read = "read",
        /// Look and change.
        Write = "write",
    }
}

/// The longest a token may live, in days.
pub const MAX_TOKEN_DAYS: u32 = 365;

/// How long a token lives unless its maker says otherwise, in days.
pub const DEFAULT_TOKEN_DAYS: u32 = 90;

/// What a token carries in front of its secret, so that a leaked one is recognised for what it
/// is (by secret scanners, and by people).
pub const TOKEN_PREFIX: &str = "dpat_";
