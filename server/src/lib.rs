//! The `director` binary's library: configuration, the HTTP router, the embedded PostgreSQL
//! cluster and the `serve` command. `main.rs` only parses the command line.

pub mod access;
pub mod api;
pub mod certificates;
pub mod client;
pub mod config;
pub mod databases;
pub mod edge;
pub mod embedded_pg;
pub mod files;
pub mod http;
pub mod multipart;
pub mod oidc;
pub mod places;
pub mod reconciler;
pub mod serve;
pub mod terminal;
pub mod workers;
