//! One module per page.

mod account;
mod admin_users;
mod dashboard;
mod login;
mod not_found;
mod setup;

pub use account::AccountPage;
pub use admin_users::AdminUsersPage;
pub use dashboard::DashboardPage;
pub use login::LoginPage;
pub use not_found::NotFoundPage;
pub use setup::SetupPage;
