//! Sites' own images: what a recipe is made from, where each build is, and what an admin lets
//! recipes name.

stored_enum! {
    /// What a site's image is built from.
    pub enum RecipeSource ("recipe source") {
        /// Its catalogue image with extra packages and setup commands.
        Packages = "packages",
        /// The site's own Dockerfile, from a folder of its files.
        Dockerfile = "dockerfile",
    }
}

stored_enum! {
    /// Where one build of a site's image is.
    pub enum BuildState ("build state") {
        /// Waiting for its turn (one build of a site at a time).
        Queued = "queued",
        /// Being built; its output grows.
        Running = "running",
        /// Built and deployed.
        Succeeded = "succeeded",
        /// The recipe had not changed: the image built for it before was deployed again.
        Reused = "reused",
        /// It failed (or ran over its time); the site runs what it ran before.
        Failed = "failed",
    }
}

stored_enum! {
    /// Which Debian packages recipes may name.
    pub enum AptRule ("package rule") {
        /// Any name that is a Debian package name.
        Any = "any",
        /// Only the names the admin listed.
        Allow = "allow",
        /// Any but the names the admin listed.
        Deny = "deny",
    }
}

impl BuildState {
    /// Whether it has not ended yet.
    pub fn under_way(self) -> bool {
        matches!(self, Self::Queued | Self::Running)
    }
}

/// A site that never chose builds from packages (none, until it adds some).
impl Default for RecipeSource {
    fn default() -> Self {
        Self::Packages
    }
}

impl RecipeSource {
    /// Its name for people.
    pub fn label(self) -> &'static str {
        match self {
            Self::Packages => "Catalogue image with extra packages",
            Self::Dockerfile => "The site's own Dockerfile",
        }
    }
}

impl AptRule {
    /// Its name for people.
    pub fn label(self) -> &'static str {
        match self {
            Self::Any => "Any Debian package",
            Self::Allow => "Only the packages listed",
            Self::Deny => "Any package but those listed",
        }
    }
}
