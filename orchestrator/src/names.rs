//! Names of Director's Docker objects, validated before they reach the engine.

use std::fmt;

use crate::{Error, Result};

/// A site's numeric id; its service is `site_0042`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SiteId(pub u32);

impl fmt::Display for SiteId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}", self.0)
    }
}

/// A prefix for every object this orchestrator makes: empty in production (`site_0042`), a
/// random one per test so that tests never touch each other's objects or a real deployment's.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Namespace(String);

/// Label on every object: which namespace made it.
pub const LABEL_NAMESPACE: &str = "director.namespace";
/// Label on every object: which site it belongs to.
pub const LABEL_SITE: &str = "director.site";
/// Label on every object: what it is (`service`, `terminal`).
pub const LABEL_ROLE: &str = "director.role";
/// Label on services and terminals: a digest of the spec they were made from.
pub const LABEL_SPEC: &str = "director.spec";

impl Namespace {
    /// The production namespace: no prefix.
    pub fn production() -> Self {
        Self::default()
    }

    /// A namespace with `prefix` (lower-case letters and digits, at most 16).
    pub fn prefixed(prefix: &str) -> Result<Self> {
        let ok = !prefix.is_empty()
            && prefix.len() <= 16
            && prefix
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
            && prefix.starts_with(|c: char| c.is_ascii_lowercase());
        if !ok {
            return Err(Error::invalid(
                "namespace",
                "1-16 lower-case letters and digits, starting with a letter",
            ));
        }
        Ok(Self(format!("{prefix}_")))
    }

    /// The label value naming this namespace (`-` for production).
    pub fn label(&self) -> &str {
        if self.0.is_empty() {
            "-"
        } else {
            self.0.trim_end_matches('_')
        }
    }

    /// The service of a site: `site_0042`.
    pub fn service(&self, site: SiteId) -> String {
        format!("{}{site}", self.service_prefix())
    }

    /// What every site's service name starts with: `site_`.
    pub fn service_prefix(&self) -> String {
        format!("{}site_", self.0)
    }

    /// The terminal container of a site: `site_0042_terminal`.
    pub fn terminal(&self, site: SiteId) -> String {
        format!("{}site_{site}_terminal", self.0)
    }

    /// The service of one of Director's database servers: `director_postgres`.
    pub fn database_server(&self, engine: &str) -> String {
        format!("{}director_{engine}", self.0)
    }

    /// The database shell container of a site: `site_0042_dbshell`.
    pub fn database_shell(&self, site: SiteId) -> String {
        format!("{}site_{site}_dbshell", self.0)
    }

    /// A network's (or secret's) name in this namespace.
    pub fn network(&self, name: &str) -> String {
        format!("{}{name}", self.0)
    }
}

/// A site name: a DNS label of 1–32 lower-case letters, digits and inner hyphens.
pub fn validate_site_name(name: &str) -> Result<()> {
    let ok = (1..=32).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(
            "site name",
            format!("{name:?} is not 1-32 lower-case letters, digits and inner hyphens"),
        ))
    }
}

/// An environment variable name: `[A-Za-z_][A-Za-z0-9_]*`, at most 128 characters.
pub fn validate_env_name(name: &str) -> Result<()> {
    let ok = (1..=128).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(
            "environment variable",
            format!("{name:?} is not a valid variable name"),
        ))
    }
}

/// An environment variable value: no NUL (the engine would cut it), at most 32 KiB.
pub fn validate_env_value(name: &str, value: &str) -> Result<()> {
    if value.contains('\0') || value.len() > 32 * 1024 {
        return Err(Error::invalid(
            "environment variable",
            format!("the value of {name} contains NUL or is longer than 32 KiB"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_zero_padded_and_namespaced() {
        let prod = Namespace::production();
        assert_eq!(prod.service(SiteId(42)), "site_0042");
        assert_eq!(prod.terminal(SiteId(42)), "site_0042_terminal");
        assert_eq!(prod.service(SiteId(12345)), "site_12345");
        let test = Namespace::prefixed("t1a2").unwrap();
        assert_eq!(test.service(SiteId(7)), "t1a2_site_0007");
        assert_eq!(test.label(), "t1a2");
        assert!(Namespace::prefixed("Bad").is_err());
        assert!(Namespace::prefixed("1abc").is_err());
    }

    #[test]
    fn bad_names_never_reach_docker() {
        assert!(validate_site_name("my-site2").is_ok());
        for bad in ["", "-a", "a-", "UPPER", "a_b", "a.b", &"x".repeat(33)] {
            assert!(validate_site_name(bad).is_err(), "{bad:?}");
        }
        assert!(validate_env_name("DATABASE_URL").is_ok());
        for bad in ["", "1X", "A-B", "A B"] {
            assert!(validate_env_name(bad).is_err(), "{bad:?}");
        }
        assert!(validate_env_value("X", "a\0b").is_err());
    }
}
