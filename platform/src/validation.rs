//! Field rules shared by every door. Each returns the cleaned value or an [`Error::Invalid`]
//! naming the field, so a form can show the message beside it.

use crate::{Error, Result};

/// Longest username accepted.
pub const USERNAME_MAX: usize = 32;
/// Shortest password accepted for a new password.
pub const PASSWORD_MIN: usize = 10;
/// Longest password accepted: hashing is deliberately slow, so unbounded input is a DoS.
pub const PASSWORD_MAX: usize = 1024;
const DISPLAY_NAME_MAX: usize = 100;
const EMAIL_MAX: usize = 254;

/// A username: 1–32 of `a-z 0-9 . _ -`, starting with a letter. Upper case is folded.
pub fn username(raw: &str) -> Result<String> {
    let name = raw.trim().to_ascii_lowercase();
    if name.is_empty() {
        return Err(Error::invalid("username", "Enter a username."));
    }
    if name.chars().count() > USERNAME_MAX {
        return Err(Error::invalid(
            "username",
            format!("A username has at most {USERNAME_MAX} characters."),
        ));
    }
    let mut chars = name.chars();
    let starts_with_letter = chars.next().is_some_and(|c| c.is_ascii_lowercase());
    let rest_ok = name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-'));
    if !starts_with_letter || !rest_ok {
        return Err(Error::invalid(
            "username",
            "A username starts with a letter and has only letters, digits, '.', '_' and '-'.",
        ));
    }
    Ok(name)
}

/// A username as typed at sign-in: only bounded, so that a typo gets the usual
/// "wrong username or password" rather than a lecture on the rules.
pub fn login_username(raw: &str) -> Result<String> {
    let name = raw.trim().to_ascii_lowercase();
    if name.is_empty() {
        return Err(Error::invalid("username", "Enter your username."));
    }
    if name.len() > 4 * USERNAME_MAX {
        return Err(Error::invalid("username", "That username is too long."));
    }
    if name.contains(char::REPLACEMENT_CHARACTER) {
        // Form decoding replaces bytes that are not UTF-8 with U+FFFD.
        return Err(Error::invalid(
            "username",
            "The username is not valid text (UTF-8).",
        ));
    }
    Ok(name)
}

/// A password as typed at sign-in: only bounded.
pub fn login_password(raw: &str) -> Result<()> {
    if raw.is_empty() {
        return Err(Error::invalid("password", "Enter your password."));
    }
    if raw.len() > PASSWORD_MAX {
        return Err(Error::invalid(
            "password",
            format!("A password has at most {PASSWORD_MAX} bytes."),
        ));
    }
    Ok(())
}

/// A new password: 10 characters or more, at most 1024 bytes, not only white space.
pub fn new_password(field: &'static str, raw: &str) -> Result<()> {
    if raw.chars().count() < PASSWORD_MIN || raw.trim().is_empty() {
        return Err(Error::invalid(
            field,
            format!("A password has at least {PASSWORD_MIN} characters."),
        ));
    }
    if raw.len() > PASSWORD_MAX {
        return Err(Error::invalid(
            field,
            format!("A password has at most {PASSWORD_MAX} bytes."),
        ));
    }
    Ok(())
}

/// A display name: 1–100 characters with no control characters. Empty falls back to `default`.
pub fn display_name(raw: &str, default: &str) -> Result<String> {
    let name = raw.trim();
    let name = if name.is_empty() { default } else { name };
    if name.chars().count() > DISPLAY_NAME_MAX {
        return Err(Error::invalid(
            "display_name",
            format!("A display name has at most {DISPLAY_NAME_MAX} characters."),
        ));
    }
    if name.chars().any(char::is_control) {
        return Err(Error::invalid(
            "display_name",
            "A display name cannot contain control characters.",
        ));
    }
    Ok(name.to_owned())
}

/// An e-mail address, optional: empty, or `local@domain` of at most 254 characters.
pub fn email(raw: &str) -> Result<String> {
    let email = raw.trim();
    if email.is_empty() {
        return Ok(String::new());
    }
    let well_formed = email.len() <= EMAIL_MAX
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty() && domain.contains('.') && !domain.contains('@')
        });
    if well_formed {
        Ok(email.to_owned())
    } else {
        Err(Error::invalid(
            "email",
            "Enter an e-mail address like name@example.org, or leave it empty.",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_are_folded_and_checked() {
        assert_eq!(username("  Alice ").unwrap(), "alice");
        assert_eq!(username("a.b_c-9").unwrap(), "a.b_c-9");
        for bad in ["", "9lives", "-x", "has space", "é", &"a".repeat(33)] {
            assert!(username(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn passwords_have_bounds() {
        assert!(new_password("password", "short").is_err());
        assert!(new_password("password", "          ").is_err());
        assert!(new_password("password", "long enough!").is_ok());
        assert!(new_password("password", &"x".repeat(PASSWORD_MAX + 1)).is_err());
        assert!(login_password("").is_err());
        assert!(login_username("\u{FFFD}\u{FFFD}").is_err());
        assert!(login_password(&"x".repeat(PASSWORD_MAX + 1)).is_err());
    }

    #[test]
    fn emails_are_optional_but_well_formed() {
        assert_eq!(email(" ").unwrap(), "");
        assert_eq!(email("a@b.org").unwrap(), "a@b.org");
        for bad in ["a", "@b.org", "a@b", "a b@c.org", "a@b@c.org"] {
            assert!(email(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn display_names_fall_back_and_refuse_control_characters() {
        assert_eq!(display_name("", "alice").unwrap(), "alice");
        assert!(display_name("a\u{7}b", "x").is_err());
        assert!(display_name(&"n".repeat(101), "x").is_err());
    }
}

/// Whether a text must be given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Required {
    Yes,
    No,
}

/// Text typed into a form (a reason, a comment): trimmed, at most `max` characters, no control
/// characters but line breaks; `required` ones not empty.
pub(crate) fn text(field: &'static str, value: &str, max: usize, required: Required) -> Result<String> {
    let value = value.trim();
    if required == Required::Yes && value.is_empty() {
        return Err(Error::invalid(field, "Say why, in a sentence or two."));
    }
    if value.chars().count() > max || value.chars().any(|c| c.is_control() && c != '\n') {
        return Err(Error::invalid(
            field,
            format!("At most {max} characters of text."),
        ));
    }
    Ok(value.to_owned())
}
