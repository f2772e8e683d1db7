//! Caddy's constant configuration (its routes look hosts up in the route files) and the build
//! context of its image.

use std::path::{Path, PathBuf};

use serde_json::json;

use super::{
    ADMIN_SOCKET_IN, ASK_IN, ASK_SOCKET_IN, CA_ROOT_IN, HOST_REDIRECTS, HTTP_IN, HTTPS_IN, ROUTES_IN,
    STORAGE_IN, io, routes::WILDCARD_ROUTE,
};
use crate::{
    Result,
    edge::{AcmeConfig, BODY_LIMIT_TIERS, SITE_PORT, pages},
};

/// A host as Caddy must see it before using it in a path: DNS labels, lower case, no `..`.
const HOST_PATTERN: &str = r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+$";
/// A host as routed once lowercased and without its trailing dot.
fn normalisable_host() -> String {
    // Letters spelled out: `(?i)` would match Unicode's long s and Kelvin sign too.
    HOST_PATTERN
        .replace("a-z0-9", "A-Za-z0-9")
        .replace("+$", "+\\.?$")
}
/// What a dynamic route's marker file must be called to be dialled.
const UPSTREAM_PATTERN: &str = r"^/[^/]+/((?:[a-z0-9]+_)?site_[0-9]+)$";

/// Caddy's whole configuration: constant, whatever the sites (it changes only with the ACME
/// settings).
pub(super) fn caddy_json(acme: Option<&AcmeConfig>) -> serde_json::Value {
    let (routes, errors) = (site_routes(), error_routes());
    match acme {
        None => json!({
            "admin": {"listen": format!("unix/{ADMIN_SOCKET_IN}")},
            "logging": {"logs": {"default": {"level": "WARN"}}},
            "apps": {"http": {"servers": {"edge": {
                "listen": [format!(":{HTTP_IN}")],
                "automatic_https": {"disable": true},
                "routes": routes,
                "errors": {"routes": errors},
            }}}},
        }),
        Some(acme) => with_https(acme, routes, errors),
    }
}

/// A page Caddy answers itself.
fn html(status: u16, body: String) -> serde_json::Value {
    json!({
        "handler": "static_response",
        "status_code": status,
        "headers": {"Content-Type": ["text/html; charset=utf-8"], "Cache-Control": ["no-store"]},
        "body": body,
    })
}

/// The routes every request takes, in order: refusals of bad paths and hosts, the host's
/// route (its own or its parent's wildcard), availability, body limits, then its files or its
/// service.
fn site_routes() -> Vec<serde_json::Value> {
    let hosts = format!("{ROUTES_IN}/hosts");
    // The route a request takes: its host's own, or else the wildcard over its parent domain
    // (`a.example.org` → `_wildcard.example.org`; one label deep, as in certificates).
    let has =
        |file: &str| json!({"file": {"root": hosts, "try_files": [format!("/{{http.vars.route}}/{file}")]}});
    let exact = json!({"file": {"root": hosts, "try_files": ["/{http.request.host}/.site"]}});
    let mut routes = vec![
        // A path no file can have (a NUL, a part past the kernel's 255 bytes) is the visitor's
        // mistake, answered as such before any site's files are looked at.
        json!({
            "match": [{"path_regexp": {"pattern": r"\x00|[^/]{256,}"}}],
            "handle": [html(400, pages::bad_path())],
            "terminal": true,
        }),
        // A host in capitals or with a trailing dot is the same host as routed: Director
        // redirects it there (Caddy cannot lowercase). Only what would then be a host at all.
        json!({
            "match": [{
                "vars_regexp": {"{http.request.host}": {"pattern": normalisable_host()}},
                "not": [{"vars_regexp": {"{http.request.host}": {"pattern": HOST_PATTERN}}}],
            }],
            // To one fixed path (a rewrite would decode the visitor's path), with the request's
            // own URI, undecoded, in a header.
            "handle": [
                {"handler": "rewrite", "uri": HOST_REDIRECTS},
                {
                    "handler": "reverse_proxy",
                    "upstreams": [{"dial": format!("unix/{ASK_SOCKET_IN}")}],
                    "headers": {"request": {"set": {"X-Director-Uri": ["{http.request.orig_uri}"]}}},
                },
            ],
            "terminal": true,
        }),
        json!({
            "match": [{"not": [{"vars_regexp": {"{http.request.host}": {"pattern": HOST_PATTERN}}}]}],
            "handle": [html(404, pages::no_such_site())],
            "terminal": true,
        }),
        json!({"match": [exact], "handle": [{"handler": "vars", "route": "{http.request.host}"}]}),
        json!({
            "match": [{
                "not": [exact],
                "vars_regexp": {"{http.request.host}": {"name": "parent", "pattern": r"^[^.]+\.(.+)$"}},
            }],
            "handle": [{"handler": "vars", "route": format!("{WILDCARD_ROUTE}{{http.regexp.parent.1}}")}],
        }),
        json!({"match": [has("disabled")], "handle": [html(503, pages::disabled())], "terminal": true}),
        json!({"match": [has("not-served")], "handle": [html(503, pages::not_served())], "terminal": true}),
    ];
    for tier in BODY_LIMIT_TIERS {
        let marker = format!("body-{tier}");
        // One matcher set (an object) ANDs its matchers; several sets in the list would OR them.
        let mut too_large = has(&marker);
        too_large["expression"] = json!(format!(
            "{{http.request.header.Content-Length}} != \"\" && int({{http.request.header.Content-Length}}) > {tier}"
        ));
        routes
            .push(json!({"match": [too_large], "handle": [html(413, pages::too_large())], "terminal": true}));
        routes.push(
            json!({"match": [has(&marker)], "handle": [{"handler": "request_body", "max_size": tier}]}),
        );
    }
    routes.push(json!({
        "match": [has("static/")],
        "handle": [{"handler": "file_server", "root": format!("{ROUTES_IN}/hosts/{{http.vars.route}}/static")}],
        "terminal": true,
    }));
    routes.push(json!({
        "match": [has("*site_*")],
        "handle": [{"handler": "subroute", "routes": [{
            "match": [{"vars_regexp": {"{http.matchers.file.relative}": {"name": "up", "pattern": UPSTREAM_PATTERN}}}],
            "handle": [{
                "handler": "reverse_proxy",
                "upstreams": [{"dial": format!("{{http.regexp.up.1}}:{SITE_PORT}")}],
                // A task that is restarting or being replaced refuses connections for a moment:
                // retry for a while rather than fail the visitor's request.
                "load_balancing": {"try_duration": "5s", "try_interval": "250ms"},
            }],
        }]}],
        "terminal": true,
    }));
    routes.push(json!({"handle": [html(404, pages::no_such_site())]}));
    routes
}

/// What Caddy answers when handling failed: the visitor's pages for a body too large, a link
/// not followed, a service starting or failing.
fn error_routes() -> Vec<serde_json::Value> {
    let error = |pattern: &str, status: u16, body: String| json!({"match": [{"vars_regexp": {"{http.error.message}": {"pattern": pattern}}}], "handle": [html(status, body)], "terminal": true});
    vec![
        error("(?i)request body too large", 413, pages::too_large()),
        error("(?i)too many levels of symbolic links", 404, pages::not_found()),
        json!({
            "match": [{"vars_regexp": {"{http.error.status_code}": {"pattern": "^50[234]$"}}}],
            "handle": [html(502, pages::starting_or_failing())],
            "terminal": true,
        }),
        json!({"handle": [{"handler": "static_response", "status_code": "{http.error.status_code}", "body": "{http.error.status_code} {http.error.status_text}"}]}),
    ]
}

/// The configuration with HTTPS: the same routes on both ports, plain HTTP redirected for hosts
/// with a certificate, certificates obtained on demand for the hosts Director says it serves.
fn with_https(
    acme: &AcmeConfig,
    routes: Vec<serde_json::Value>,
    errors: Vec<serde_json::Value>,
) -> serde_json::Value {
    // Plain HTTP moves to HTTPS once the host has its certificate: the file is Caddy's own,
    // so the redirect starts the moment the certificate lands, with no change to this
    // configuration. Hosts without one (pending, failed, never asked for) stay on HTTP.
    // ACME's HTTP challenges are answered by Caddy before any route.
    let port = match acme.listen.port() {
        443 => String::new(),
        port => format!(":{port}"),
    };
    let mut http_routes = routes.clone();
    // After the refusals of bad paths, the hosts to normalise, and unknown hosts.
    http_routes.insert(
        3,
        json!({
            "match": [{"file": {
                "root": format!("{STORAGE_IN}/certificates/{}", acme.issuer_key()),
                "try_files": ["/{http.request.host}/{http.request.host}.crt"],
            }}],
            "handle": [{
                "handler": "static_response",
                "status_code": 308,
                "headers": {"Location": [format!("https://{{http.request.host}}{port}{{http.request.uri}}")]},
            }],
            "terminal": true,
        }),
    );
    // What Director reads of Caddy's certificate work (see `certificates`): tls.obtain and
    // tls.renew at INFO, as JSON; everything else at WARN.
    let certificate_loggers = ["tls.obtain", "tls.renew"];
    json!({
        "admin": {"listen": format!("unix/{ADMIN_SOCKET_IN}")},
        "logging": {"logs": {
            "default": {"level": "WARN", "exclude": certificate_loggers},
            "certificates": {"level": "INFO", "include": certificate_loggers, "encoder": {"format": "json"}},
        }},
        "apps": {
            "http": {
                "http_port": HTTP_IN,
                "https_port": HTTPS_IN,
                "servers": {
                    "edge": {
                        "listen": [format!(":{HTTP_IN}")],
                        "automatic_https": {"disable": true},
                        "routes": http_routes,
                        "errors": {"routes": errors},
                    },
                    "edge_tls": {
                        "listen": [format!(":{HTTPS_IN}")],
                        "automatic_https": {"disable": true},
                        "tls_connection_policies": [{}],
                        "routes": routes,
                        "errors": {"routes": errors},
                    },
                    "ask": {
                        "listen": [ASK_IN],
                        "automatic_https": {"disable": true},
                        "routes": [{"handle": [{
                            "handler": "reverse_proxy",
                            "upstreams": [{"dial": format!("unix/{ASK_SOCKET_IN}")}],
                        }]}],
                    },
                },
            },
            "tls": {"automation": {
                "policies": [{"issuers": [issuer(acme)], "on_demand": true}],
                "on_demand": {"ask": format!("http://{ASK_IN}/edge/ask")},
            }},
        },
    })
}

/// The ACME issuer: its CA, the account's contact, and a private CA's roots.
fn issuer(acme: &AcmeConfig) -> serde_json::Value {
    let mut issuer = json!({"module": "acme", "ca": acme.ca});
    if let Some(email) = &acme.email {
        issuer["email"] = json!(email);
    }
    if acme.ca_root.is_some() {
        issuer["trusted_roots_pem_files"] = json!([CA_ROOT_IN]);
    }
    issuer
}

/// The build context of Director's Caddy image: Debian's `caddy` binary with the shared
/// libraries it links (it is not static), on `scratch`.
pub fn caddy_context(dir: &Path) -> Result<PathBuf> {
    let caddy = std::env::var_os("CADDY").map_or_else(|| PathBuf::from("/usr/bin/caddy"), PathBuf::from);
    let root = dir.join("root");
    let copy = |from: &Path| -> Result<()> {
        let to = root.join(from.strip_prefix("/").unwrap_or(from));
        std::fs::create_dir_all(to.parent().expect("absolute paths have parents"))
            .map_err(io("creating the Caddy context"))?;
        std::fs::copy(from, &to)
            .map_err(io(format!("copying {} (install Debian's caddy)", from.display())))?;
        Ok(())
    };
    copy(&caddy)?;
    if caddy != Path::new("/usr/bin/caddy") {
        std::fs::rename(
            root.join(caddy.strip_prefix("/").unwrap_or(&caddy)),
            root.join("usr/bin/caddy"),
        )
        .map_err(io("placing the caddy binary"))?;
    }
    let ldd = std::process::Command::new("ldd")
        .arg(&caddy)
        .output()
        .map_err(io("running ldd"))?;
    for line in String::from_utf8_lossy(&ldd.stdout).lines() {
        let path = line
            .split("=>")
            .last()
            .and_then(|rest| rest.split_whitespace().next())
            .filter(|p| p.starts_with('/'));
        if let Some(path) = path {
            copy(Path::new(path))?;
        }
    }
    let certs = Path::new("/etc/ssl/certs/ca-certificates.crt");
    if certs.exists() {
        copy(certs)?;
    }
    std::fs::write(
        dir.join("Dockerfile"),
        "# Director's edge: Debian's caddy and the libraries it links, nothing else.\n\
         FROM scratch\nCOPY root/ /\nENTRYPOINT [\"/usr/bin/caddy\"]\n",
    )
    .map_err(io("writing the Dockerfile"))?;
    Ok(dir.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_configuration_keeps_the_admin_api_off_the_network_and_https_off_without_acme() {
        // (It takes no sites: that it is the same whatever the sites is its signature's.)
        let a = serde_json::to_string(&caddy_json(None)).unwrap();
        assert!(
            a.contains("unix//run/caddy/admin.sock"),
            "the admin API is on a socket, not the network"
        );
        assert!(!a.contains("edge_tls"), "no HTTPS without ACME");
    }

    #[test]
    fn with_acme_https_asks_director_and_http_redirects_hosts_with_a_certificate() {
        let acme = AcmeConfig {
            listen: "0.0.0.0:443".parse().unwrap(),
            ca: crate::edge::LETS_ENCRYPT.to_owned(),
            email: Some("admin@example.org".to_owned()),
            ca_root: None,
        };
        let config = caddy_json(Some(&acme));
        let servers = &config["apps"]["http"]["servers"];
        assert_eq!(servers["edge_tls"]["listen"][0], ":8443");
        assert_eq!(
            config["apps"]["tls"]["automation"]["on_demand"]["ask"],
            "http://127.0.0.1:2020/edge/ask"
        );
        assert_eq!(
            servers["ask"]["listen"][0], "127.0.0.1:2020",
            "the ask is on loopback only"
        );
        let issuer = &config["apps"]["tls"]["automation"]["policies"][0]["issuers"][0];
        assert_eq!(issuer["ca"], crate::edge::LETS_ENCRYPT);
        assert_eq!(issuer["email"], "admin@example.org");
        assert!(issuer.get("trusted_roots_pem_files").is_none());
        // The refusals of bad paths, the hosts to normalise and unknown hosts stay first; the
        // redirect comes right after them, on HTTP only.
        let redirect = &servers["edge"]["routes"][3];
        assert_eq!(redirect["handle"][0]["status_code"], 308);
        assert_eq!(
            redirect["handle"][0]["headers"]["Location"][0],
            "https://{http.request.host}{http.request.uri}"
        );
        assert_eq!(
            redirect["match"][0]["file"]["root"],
            "/data/caddy/certificates/acme-v02.api.letsencrypt.org-directory"
        );
        assert_eq!(servers["edge"]["routes"][0], servers["edge_tls"]["routes"][0]);
        assert_eq!(
            servers["edge"]["routes"].as_array().unwrap().len(),
            servers["edge_tls"]["routes"].as_array().unwrap().len() + 1
        );
    }

    #[test]
    fn only_what_is_a_host_once_lowercased_and_undotted_is_sent_to_be_normalised() {
        let (normalisable, routed) = (
            regex_lite::Regex::new(&normalisable_host()).unwrap(),
            regex_lite::Regex::new(HOST_PATTERN).unwrap(),
        );
        for host in ["Docs.LocalHost", "docs.localhost.", "DOCS.EXAMPLE.ORG."] {
            assert!(normalisable.is_match(host) && !routed.is_match(host), "{host}");
        }
        for host in [
            "..",
            "docs..localhost",
            "Bad_Host.localhost",
            "docs.localhost..",
            "-a.localhost",
        ] {
            assert!(!normalisable.is_match(host), "{host}");
        }
    }

    #[test]
    fn the_host_pattern_admits_only_dns_names() {
        let re = regex_lite::Regex::new(HOST_PATTERN).unwrap();
        for good in ["blog.localhost", "a-b.c9.example.org"] {
            assert!(re.is_match(good), "{good}");
        }
        for bad in [
            "..",
            "a..b",
            "localhost",
            "evil.org/x",
            "a.b:2019",
            "Blog.localhost",
            "-a.b",
            "a_b.c",
            "",
        ] {
            assert!(!re.is_match(bad), "{bad}");
        }
        let up = regex_lite::Regex::new(UPSTREAM_PATTERN).unwrap();
        assert!(up.is_match("/blog.localhost/site_0042"));
        assert!(up.is_match("/blog.localhost/t1a2_site_0042"));
        for bad in [
            "/blog.localhost/postgres",
            "/blog.localhost/site_42.evil",
            "/a/b/site_1",
            "/blog.localhost/x_y_site_1",
        ] {
            assert!(!up.is_match(bad), "{bad}");
        }
    }
}
