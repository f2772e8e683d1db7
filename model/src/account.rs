//! Accounts.

stored_enum! {
    /// What an account may do.
    pub enum Role ("role") {
        /// A member: manages the sites they belong to.
        User = "user",
        /// A superuser: manages everything.
        Admin = "admin",
    }
}
