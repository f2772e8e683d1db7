//! One module per page.

mod account;
mod admin_users;
mod dashboard;
mod login;
mod new_site;
mod not_found;
mod setup;
mod site;

pub use account::AccountPage;
pub use admin_users::AdminUsersPage;
pub use dashboard::DashboardPage;
pub use login::LoginPage;
pub use new_site::NewSitePage;
pub use not_found::NotFoundPage;
pub use setup::SetupPage;
pub use site::SitePage;
