//! Members' own domains.

stored_enum! {
    /// How a site's claim on a domain was proved, if it was.
    pub enum Proof ("domain proof") {
        /// Not proved yet: the site does not serve it.
        Unproved = "",
        /// The TXT record Director asked for was found.
        Txt = "txt",
        /// An admin added it for the site.
        Admin = "admin",
    }
}
