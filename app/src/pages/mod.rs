//! One module per page.

mod account;
mod admin_audit;
mod admin_certificates;
mod admin_databases;
mod admin_images;
mod admin_sites;
mod admin_users;
mod dashboard;
mod database;
mod files;
mod keys;
mod login;
mod new_site;
mod not_found;
mod requests;
mod setup;
mod site;
mod terminal;

pub use account::AccountPage;
pub use admin_audit::AdminAuditPage;
pub use admin_certificates::AdminCertificatesPage;
pub use admin_databases::AdminDatabasesPage;
pub use admin_images::AdminImagesPage;
pub use admin_sites::AdminSitesPage;
pub use admin_users::AdminUsersPage;
pub use dashboard::DashboardPage;
pub use database::DatabasePage;
pub use files::FilesPage;
pub use keys::UserKeysPage;
pub use login::LoginPage;
pub use new_site::NewSitePage;
pub use not_found::NotFoundPage;
pub use requests::{MyRequestsPage, RequestPage, RequestSitePage, ReviewRequestsPage};
pub use setup::SetupPage;
pub use site::SitePage;
pub use terminal::TerminalPage;
