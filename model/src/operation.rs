//! Operations: the durable changes made to sites, each a list of idempotent actions run in
//! order by a worker.

use crate::site::SiteKind;

stored_enum! {
    /// What an operation does.
    pub enum OperationKind ("operation kind") {
        /// Build a new site.
        CreateSite = "create-site",
        /// Remove a site and everything of it.
        DeleteSite = "delete-site",
        /// Replace a dynamic site's task.
        RestartSite = "restart-site",
        /// Serve the site, or stop serving it.
        SetAvailability = "set-availability",
        /// Apply changed settings (resource limits, body size) to its service and routes.
        ApplySettings = "apply-settings",
        /// Re-run everything that makes the site (an admin's "fix site"): files, service, routes.
        FixSite = "fix-site",
        /// Put its routes again after its domains changed.
        UpdateDomains = "update-domains",
        /// End its terminal container, and with it every process left in it (someone lost
        /// access to the site: nothing they started there may outlive it). The next terminal
        /// opened makes a new one.
        ResetTerminal = "reset-terminal",
        /// Make a database (and its role) for the site and give the site its variables.
        AddDatabase = "add-database",
        /// Give a database's role a new password, and the site the new variables.
        RotateDatabasePassword = "rotate-database-password",
        /// Take a database's variables from the site, then drop the database and its role.
        DeleteDatabase = "delete-database",
        /// Build the site's image from its recipe and deploy it without downtime.
        BuildImage = "build-image",
        /// Give its service its changed environment variables (a start-first update).
        UpdateVariables = "update-variables",
    }
}

stored_enum! {
    /// One step of an operation. Every one is idempotent.
    pub enum Action ("action") {
        /// Make the site's directory with its starter files.
        CreateDirectory = "create-directory",
        /// Create or update its Swarm service.
        EnsureService = "ensure-service",
        /// Put its routes on the edge.
        PutRoutes = "put-routes",
        /// Replace its service's task.
        RestartService = "restart-service",
        /// Take its routes off the edge.
        RemoveRoutes = "remove-routes",
        /// Remove its service.
        RemoveService = "remove-service",
        /// Remove its terminal container.
        RemoveTerminal = "remove-terminal",
        /// Remove its directory.
        RemoveDirectory = "remove-directory",
        /// Make its databases and roles, each with its password, as its records say.
        EnsureDatabases = "ensure-databases",
        /// Drop the databases (and roles) being deleted: all of them when the site is.
        DropDatabases = "drop-databases",
        /// Delete its record.
        ForgetSite = "forget-site",
        /// Build its image from its recipe (an unchanged recipe reuses the image built for it).
        BuildImage = "build-image",
        /// Deploy the image its build made (health-gated); one never answering is undone.
        DeployImage = "deploy-image",
        /// Remove its images beyond the last few.
        PruneImages = "prune-images",
        /// Remove all its images (it is being deleted).
        RemoveImages = "remove-images",
    }
}

stored_enum! {
    /// Where an operation is.
    pub enum OperationState ("operation state") {
        /// Waiting for a worker.
        Queued = "queued",
        /// A worker runs it.
        Running = "running",
        /// Every action done.
        Done = "done",
        /// An action failed; a person may retry it.
        Failed = "failed",
    }
}

stored_enum! {
    /// Where one action of an operation is.
    pub enum ActionState ("action state") {
        /// Not run yet.
        Pending = "pending",
        /// Being run.
        Running = "running",
        /// Done.
        Done = "done",
        /// Failed, with its reason as its output.
        Failed = "failed",
    }
}

impl OperationKind {
    /// What it does, for people.
    pub fn label(self) -> &'static str {
        match self {
            Self::CreateSite => "Create site",
            Self::DeleteSite => "Delete site",
            Self::RestartSite => "Restart",
            Self::SetAvailability => "Serve or stop serving",
            Self::ApplySettings => "Apply settings",
            Self::FixSite => "Fix site",
            Self::UpdateDomains => "Update domains",
            Self::ResetTerminal => "Reset terminal",
            Self::AddDatabase => "Add database",
            Self::RotateDatabasePassword => "Rotate database password",
            Self::DeleteDatabase => "Delete database",
            Self::BuildImage => "Build image",
            Self::UpdateVariables => "Update variables",
        }
    }

    /// Whether it changes one of the site's databases.
    pub fn is_database(self) -> bool {
        matches!(
            self,
            Self::AddDatabase | Self::RotateDatabasePassword | Self::DeleteDatabase
        )
    }

    /// Whether it makes the whole site (its directory, service and routes).
    pub fn makes_site(self) -> bool {
        matches!(self, Self::CreateSite | Self::FixSite)
    }

    /// Whether it moves the site through its lifecycle when it fails or succeeds. Ending the
    /// terminal container, a change to a database, or a build (whose failure leaves the
    /// running version serving) says nothing about the site's health:
    /// its failure is shown on the operation (to be retried) and leaves the site where it was.
    pub fn moves_state(self) -> bool {
        !matches!(self, Self::ResetTerminal | Self::BuildImage) && !self.is_database()
    }

    /// Its actions, in order, for a site of `kind`.
    pub fn actions(self, kind: SiteKind) -> Vec<Action> {
        use Action as A;
        match (self, kind) {
            (Self::CreateSite | Self::FixSite, SiteKind::Static) => vec![A::CreateDirectory, A::PutRoutes],
            (Self::CreateSite | Self::FixSite, SiteKind::Dynamic) => {
                vec![A::CreateDirectory, A::EnsureService, A::PutRoutes]
            }
            (Self::RestartSite, _) => vec![A::RestartService],
            (Self::UpdateDomains, _) => vec![A::PutRoutes],
            (Self::ResetTerminal, SiteKind::Static) => vec![A::RemoveTerminal],
            // The site's own service runs its members' code too: its task is replaced, so
            // that nothing started there by the one who lost access goes on either.
            (Self::ResetTerminal, SiteKind::Dynamic) => vec![A::RemoveTerminal, A::RestartService],
            (Self::SetAvailability | Self::ApplySettings, SiteKind::Static) => vec![A::PutRoutes],
            (Self::SetAvailability | Self::ApplySettings, SiteKind::Dynamic) => {
                vec![A::EnsureService, A::PutRoutes]
            }
            // Its service gets the new variables (start-first) after the database is made and
            // before one is dropped; its terminal gets them when it is next opened (a terminal
            // container whose settings changed is made again).
            (Self::AddDatabase | Self::RotateDatabasePassword | Self::DeleteDatabase, SiteKind::Static) => {
                vec![A::EnsureDatabases, A::DropDatabases]
            }
            (Self::AddDatabase | Self::RotateDatabasePassword | Self::DeleteDatabase, SiteKind::Dynamic) => {
                vec![A::EnsureDatabases, A::EnsureService, A::DropDatabases]
            }
            // A static site has no image of its own: there is nothing to build, nor any
            // service to give variables to; the actions then say so.
            (Self::BuildImage, _) => vec![A::BuildImage, A::DeployImage, A::PruneImages],
            (Self::UpdateVariables, _) => vec![A::EnsureService],
            (Self::DeleteSite, _) => vec![
                A::RemoveRoutes,
                A::RemoveService,
                A::RemoveTerminal,
                A::RemoveImages,
                A::DropDatabases,
                A::RemoveDirectory,
                A::ForgetSite,
            ],
        }
    }
}

impl Action {
    /// Whether it changes what a made site has (its service, its routes): on a site no create
    /// or fix has made yet, there is nothing to change (and a service or routes made now
    /// would serve a half-made site).
    pub fn needs_made_site(self) -> bool {
        matches!(
            self,
            Self::EnsureService | Self::DeployImage | Self::PutRoutes | Self::RestartService
        )
    }

    /// What it does, for people.
    pub fn label(self) -> &'static str {
        match self {
            Self::CreateDirectory => "Make the site's files",
            Self::EnsureService => "Start its service",
            Self::PutRoutes => "Route its addresses",
            Self::RestartService => "Restart its service",
            Self::RemoveRoutes => "Remove its routes",
            Self::RemoveService => "Remove its service",
            Self::RemoveTerminal => "End its terminal",
            Self::RemoveDirectory => "Remove its files",
            Self::EnsureDatabases => "Make its databases",
            Self::DropDatabases => "Drop databases being deleted",
            Self::ForgetSite => "Forget the site",
            Self::BuildImage => "Build its image",
            Self::DeployImage => "Deploy the new image",
            Self::PruneImages => "Remove its old images",
            Self::RemoveImages => "Remove its images",
        }
    }
}

impl OperationState {
    /// Whether it has not ended yet.
    pub fn under_way(self) -> bool {
        matches!(self, Self::Queued | Self::Running)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::{Action, OperationKind};
    use crate::site::SiteKind;

    #[test]
    fn every_kind_and_action_has_a_name_and_a_label_of_its_own() {
        let names: BTreeSet<_> = OperationKind::ALL.iter().map(|k| k.as_str()).collect();
        let labels: BTreeSet<_> = OperationKind::ALL.iter().map(|k| k.label()).collect();
        assert_eq!(
            (names.len(), labels.len()),
            (OperationKind::ALL.len(), OperationKind::ALL.len())
        );
        let labels: BTreeSet<_> = Action::ALL.iter().map(|a| a.label()).collect();
        assert_eq!(labels.len(), Action::ALL.len());
    }

    #[test]
    fn every_kind_has_actions_for_every_site_kind_and_only_making_a_site_starts_with_its_files() {
        for kind in OperationKind::ALL {
            for site in SiteKind::ALL {
                let actions = kind.actions(*site);
                assert!(!actions.is_empty(), "{kind} on a {site} site");
                assert_eq!(actions[0] == Action::CreateDirectory, kind.makes_site(), "{kind}");
            }
        }
    }
}
