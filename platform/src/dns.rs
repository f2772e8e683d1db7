//! DNS lookups for domain verification: the system's resolver, or a name server given in the
//! configuration (a split-horizon deployment, or the tests' own DNS server). Answers are never
//! cached: a member who just added a record expects the next check to see it.

use std::net::SocketAddr;

use hickory_resolver::{
    TokioResolver,
    config::{ConnectionConfig, NameServerConfig, ResolverConfig},
    net::runtime::TokioRuntimeProvider,
    proto::rr::RData,
};

use crate::{Error, Result};

/// A resolver for TXT records.
#[derive(Clone)]
pub struct Dns {
    resolver: TokioResolver,
}

impl std::fmt::Debug for Dns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dns").finish_non_exhaustive()
    }
}

impl Dns {
    /// The system's resolver (`/etc/resolv.conf`), or `server` (UDP and TCP) when given.
    pub fn new(server: Option<SocketAddr>) -> Result<Self> {
        let provider = TokioRuntimeProvider::default();
        let mut builder = match server {
            Some(server) => {
                let connection = |mut c: ConnectionConfig| {
                    c.port = server.port();
                    c
                };
                let name_server = NameServerConfig::new(
                    server.ip(),
                    true,
                    vec![
                        connection(ConnectionConfig::udp()),
                        connection(ConnectionConfig::tcp()),
                    ],
                );
                TokioResolver::builder_with_config(
                    ResolverConfig::from_name_servers(vec![name_server]),
                    provider,
                )
            }
            None => TokioResolver::builder(provider).map_err(Error::internal)?,
        };
        builder.options_mut().cache_size = 0;
        Ok(Self {
            resolver: builder.build().map_err(Error::internal)?,
        })
    }

    /// The TXT strings at `name` (each record's strings joined); none when it has none.
    pub async fn txt(&self, name: &str) -> Result<Vec<String>> {
        match self.resolver.txt_lookup(format!("{name}.")).await {
            Ok(lookup) => Ok(lookup
                .answers()
                .iter()
                .filter_map(|record| match &record.data {
                    RData::TXT(txt) => Some(
                        txt.txt_data
                            .iter()
                            .map(|part| String::from_utf8_lossy(part))
                            .collect::<String>(),
                    ),
                    _ => None,
                })
                .collect()),
            Err(err) if err.is_no_records_found() || err.is_nx_domain() => Ok(Vec::new()),
            Err(err) => Err(Error::Conflict(format!(
                "The DNS lookup of {name} failed: {err}."
            ))),
        }
    }
}
