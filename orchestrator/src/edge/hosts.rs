//! Host names a site may be reached at, checked before they reach the router.

use crate::{Error, Result};

/// A valid, lower-cased host name: ASCII (IDNs in punycode), labels of 1–63 letters, digits and
/// inner hyphens, at most 253 characters, at least two labels, not an IP address, and no
/// wildcard unless `allow_wildcard` (then only as the whole first label, over a domain of two
/// labels or more).
pub fn validate_host(raw: &str, allow_wildcard: bool) -> Result<String> {
    let host = raw.trim().trim_end_matches('.').to_ascii_lowercase();
    let bad = |why: &str| Err(Error::invalid("host", format!("{raw:?}: {why}")));
    if host.is_empty() {
        return bad("empty");
    }
    if !host.is_ascii() {
        return bad("international names must be given in punycode (xn--…)");
    }
    if host.len() > 253 {
        return bad("longer than 253 characters");
    }
    let labels: Vec<&str> = host.split('.').collect();
    if labels.len() < 2 {
        return bad("needs at least two labels (name.domain)");
    }
    for (i, label) in labels.iter().enumerate() {
        if *label == "*" {
            if allow_wildcard && i == 0 && labels.len() >= 3 {
                continue;
            }
            if allow_wildcard && i == 0 {
                return bad("a wildcard covers the names of a domain: *.example.org, not *.org");
            }
            return bad("wildcards are not allowed here");
        }
        if label.is_empty() || label.len() > 63 {
            return bad("each label has 1-63 characters");
        }
        if !label
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        {
            return bad("only letters, digits and hyphens are allowed");
        }
        if label.starts_with('-') || label.ends_with('-') {
            return bad("a label cannot start or end with a hyphen");
        }
    }
    if labels
        .last()
        .is_some_and(|tld| tld.chars().all(|c| c.is_ascii_digit()))
    {
        return bad("an IP address is not a site's host");
    }
    Ok(host)
}

#[cfg(test)]
mod tests {
    use super::validate_host;

    #[test]
    fn good_hosts_are_lower_cased() {
        assert_eq!(validate_host("Blog.Localhost", false).unwrap(), "blog.localhost");
        assert_eq!(
            validate_host("xn--bcher-kva.example.", false).unwrap(),
            "xn--bcher-kva.example"
        );
        assert_eq!(validate_host("*.Example.org", true).unwrap(), "*.example.org");
        assert!(
            validate_host("*.org", true).is_err(),
            "a wildcard over a whole top-level domain"
        );
        assert!(validate_host("a.*.org", true).is_err());
    }

    #[test]
    fn bad_hosts_are_refused_with_the_reason() {
        let long_label = format!("{}.org", "a".repeat(64));
        let long_host = format!("{}.org", ["abcdefghij"; 25].join("."));
        for (host, why) in [
            ("", "empty"),
            ("bücher.example", "punycode"),
            ("localhost", "two labels"),
            ("127.0.0.1", "IP address"),
            ("*.example.org", "wildcards"),
            ("a.*.org", "wildcards"),
            ("-a.org", "hyphen"),
            ("a_b.org", "letters, digits"),
            ("a..org", "1-63"),
            ("evil.org/path", "letters, digits"),
            ("evil.org:2019", "letters, digits"),
            (long_label.as_str(), "1-63"),
            (long_host.as_str(), "253"),
        ] {
            let err = validate_host(host, false).unwrap_err().to_string();
            assert!(err.contains(why), "{host:?}: {err}");
        }
    }
}
