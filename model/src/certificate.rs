//! Certificates of the hosts Director serves over HTTPS.

stored_enum! {
    /// A certificate record's state.
    pub enum CertificateState ("certificate state") {
        /// Asked for; the CA has not answered yet.
        Pending = "pending",
        /// The edge holds a certificate.
        Issued = "issued",
        /// The last attempt failed (the edge may still hold an older certificate).
        Failed = "failed",
    }
}
