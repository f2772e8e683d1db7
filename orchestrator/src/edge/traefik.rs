//! The Traefik driver, for operators who run Traefik (v3) on their Swarm instead of letting
//! Director run Caddy. It emits what Traefik reads; Traefik itself is theirs:
//! - for a dynamic site, labels for its service (Swarm provider): a router whose rule matches
//!   every host of the site, the entrypoints, the TLS certificate resolver, the service's port,
//!   and a buffering middleware carrying the body-size limit;
//! - for static sites, a file-provider configuration routing their hosts to one shared static
//!   file server (Director's Caddy with its file routes serves them, without a container per site).

use std::collections::BTreeMap;

use serde::Serialize;

use super::{Availability, SITE_PORT, SiteRoutes, Target, body_limit_tier};

/// What the operator's Traefik looks like.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraefikConfig {
    /// Entrypoints the routers listen on (e.g. `web`, `websecure`).
    pub entrypoints: Vec<String>,
    /// The certificate resolver for TLS, if the routers terminate TLS.
    pub cert_resolver: Option<String>,
    /// The Swarm network Traefik reaches the sites on.
    pub network: String,
    /// The shared static file server's URL, as Traefik reaches it.
    pub static_server: String,
}

fn router_name(routes: &SiteRoutes) -> String {
    format!("director-site-{}", routes.site)
}

/// A router rule matching every host: `Host` for names, `HostRegexp` (Traefik v3's Go
/// regular expressions) for a wildcard's names one label deep.
fn rule(hosts: &[String]) -> String {
    hosts
        .iter()
        .map(|h| match h.strip_prefix("*.") {
            Some(domain) => format!("HostRegexp(`^[a-z0-9-]+\\.{}$`)", domain.replace('.', "\\.")),
            None => format!("Host(`{h}`)"),
        })
        .collect::<Vec<_>>()
        .join(" || ")
}

/// The labels of a dynamic site's Swarm service. A site that is not served gets
/// `traefik.enable=false` (its service has no task to route to anyway).
pub fn traefik_labels(routes: &SiteRoutes, config: &TraefikConfig) -> BTreeMap<String, String> {
    let name = router_name(routes);
    let mut labels = BTreeMap::new();
    let served = routes.availability == Availability::Served && routes.target == Target::Service;
    labels.insert("traefik.enable".to_owned(), served.to_string());
    if !served {
        return labels;
    }
    let router = format!("traefik.http.routers.{name}");
    let body = format!("{name}-body");
    labels.insert("traefik.swarm.network".to_owned(), config.network.clone());
    labels.insert(format!("{router}.rule"), rule(&routes.hosts));
    labels.insert(format!("{router}.entrypoints"), config.entrypoints.join(","));
    labels.insert(format!("{router}.service"), name.clone());
    labels.insert(format!("{router}.middlewares"), body.clone());
    if let Some(resolver) = &config.cert_resolver {
        labels.insert(format!("{router}.tls"), "true".to_owned());
        labels.insert(format!("{router}.tls.certresolver"), resolver.clone());
    }
    labels.insert(
        format!("traefik.http.services.{name}.loadbalancer.server.port"),
        SITE_PORT.to_string(),
    );
    labels.insert(
        format!("traefik.http.middlewares.{body}.buffering.maxRequestBodyBytes"),
        body_limit_tier(routes.body_limit).to_string(),
    );
    labels
}

#[derive(Serialize)]
struct FileConfig {
    http: Http,
}

#[derive(Serialize)]
struct Http {
    routers: BTreeMap<String, Router>,
    services: BTreeMap<String, Service>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Router {
    rule: String,
    entry_points: Vec<String>,
    service: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    tls: Option<Tls>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Tls {
    cert_resolver: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Service {
    load_balancer: LoadBalancer,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct LoadBalancer {
    servers: Vec<Server>,
    pass_host_header: bool,
}

#[derive(Serialize)]
struct Server {
    url: String,
}

/// The file-provider configuration (TOML) routing every static site's hosts to the shared
/// static file server, which answers not-served and disabled sites with their pages itself.
pub fn traefik_file_config(sites: &[SiteRoutes], config: &TraefikConfig) -> String {
    let routers = sites
        .iter()
        .filter(|s| matches!(s.target, Target::Static { .. }) && !s.hosts.is_empty())
        .map(|s| {
            let router = Router {
                rule: rule(&s.hosts),
                entry_points: config.entrypoints.clone(),
                service: "director-static".to_owned(),
                tls: config
                    .cert_resolver
                    .clone()
                    .map(|cert_resolver| Tls { cert_resolver }),
            };
            (router_name(s), router)
        })
        .collect();
    let services = BTreeMap::from([(
        "director-static".to_owned(),
        Service {
            load_balancer: LoadBalancer {
                servers: vec![Server {
                    url: config.static_server.clone(),
                }],
                pass_host_header: true,
            },
        },
    )]);
    let file = FileConfig {
        http: Http { routers, services },
    };
    toml::to_string(&file).expect("the file configuration serialises")
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::SiteId;

    fn config() -> TraefikConfig {
        TraefikConfig {
            entrypoints: vec!["web".into(), "websecure".into()],
            cert_resolver: Some("letsencrypt".into()),
            network: "director_sites".into(),
            static_server: "http://director_edge:8080".into(),
        }
    }

    fn dynamic() -> SiteRoutes {
        SiteRoutes {
            site: SiteId(42),
            hosts: vec!["blog.sites.example.org".into(), "www.blog.example".into()],
            target: Target::Service,
            body_limit: 10 << 20,
            availability: Availability::Served,
        }
    }

    #[test]
    fn a_dynamic_site_gets_router_service_and_body_limit_labels() {
        let labels = traefik_labels(&dynamic(), &config());
        let text: String = labels.iter().map(|(k, v)| format!("{k}={v}\n")).collect();
        insta::assert_snapshot!(text);
        // Every key follows Traefik's documented label grammar.
        for key in labels.keys() {
            assert!(
                key == "traefik.enable"
                    || key == "traefik.swarm.network"
                    || key.starts_with("traefik.http.routers.director-site-0042.")
                    || key.starts_with("traefik.http.services.director-site-0042.loadbalancer.")
                    || key.starts_with("traefik.http.middlewares.director-site-0042-body.buffering."),
                "{key}"
            );
        }
    }

    #[test]
    fn a_wildcard_is_a_host_regexp_one_label_deep() {
        assert_eq!(
            rule(&["shop.example.org".to_owned(), "*.shop.example.net".to_owned()]),
            r"Host(`shop.example.org`) || HostRegexp(`^[a-z0-9-]+\.shop\.example\.net$`)"
        );
    }

    #[test]
    fn a_site_that_is_not_served_is_not_routed() {
        let routes = SiteRoutes {
            availability: Availability::Disabled,
            ..dynamic()
        };
        let labels = traefik_labels(&routes, &config());
        assert_eq!(
            labels,
            BTreeMap::from([("traefik.enable".to_owned(), "false".to_owned())])
        );
    }

    #[test]
    fn static_sites_route_to_the_shared_static_server() {
        let sites = [
            SiteRoutes {
                site: SiteId(7),
                hosts: vec!["docs.sites.example.org".into()],
                target: Target::Static {
                    public_dir: PathBuf::from("/var/lib/director/sites/0007/public"),
                },
                body_limit: 1 << 20,
                availability: Availability::Served,
            },
            dynamic(),
        ];
        let toml_text = traefik_file_config(&sites, &config());
        insta::assert_snapshot!(toml_text);
        let parsed: toml::Table = toml::from_str(&toml_text).unwrap();
        let routers = parsed["http"]["routers"].as_table().unwrap();
        assert_eq!(routers.len(), 1, "only the static site");
        assert_eq!(
            routers["director-site-0007"]["service"].as_str(),
            Some("director-static")
        );
    }
}
