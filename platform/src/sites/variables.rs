//! A site's own environment variables: set by its members on its page, given to its service
//! (a start-first update, so without downtime) and to its terminal when it is next opened.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncConnection as _, RunQueryDsl};

use super::{Change, OperationKind, Site, SiteKind, record_change};
use crate::{Access, Actor, Error, Platform, Result, schema::site_variables};

/// The most variables a site may have.
pub const MAX_VARIABLES: usize = 100;
/// The longest value, in bytes.
pub const MAX_VALUE_BYTES: usize = 32 * 1024;
/// The most bytes all of a site's values may take together: they are in its service's spec
/// and in every process's environment.
pub const MAX_TOTAL_BYTES: usize = 64 * 1024;

/// A site's own variables. Their values may be secrets: `Debug` shows only their names.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Variables(pub BTreeMap<String, String>);

impl std::fmt::Debug for Variables {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.0.keys()).finish()
    }
}

/// Names Director sets itself (the databases' variables are added from their kinds).
const RESERVED: [&str; 5] = ["PORT", "SITE_NAME", "SITE_URL", "HOME", "DATABASE_URL"];

/// One variable as the site's page shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Variable {
    /// Its name.
    pub name: String,
    /// Its value; None for a secret, whose value is never shown again.
    pub value: Option<String>,
    /// Whether its value is hidden.
    pub secret: bool,
    /// When it was last set.
    pub updated_at: DateTime<Utc>,
}

/// A variable as a member sets it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VariableInput {
    /// Its name.
    pub name: String,
    /// Its value; None keeps the value it has (to change only whether it is secret).
    pub value: Option<String>,
    /// Whether its value is hidden from then on.
    pub secret: bool,
}

/// The reason `name` cannot be a variable of a site, if it cannot.
fn check_name(name: &str) -> Result<()> {
    if orchestrator::validate_env_name(name).is_err() {
        return Err(Error::invalid(
            "name",
            "A variable's name is letters, digits and _ (not first a digit), at most 128 of them.",
        ));
    }
    let from_databases = model::database::DatabaseKind::ALL
        .iter()
        .any(|kind| kind.variables().contains(&name));
    if RESERVED.contains(&name) || from_databases {
        return Err(Error::invalid(
            "name",
            format!("{name} is set by Director; choose another name."),
        ));
    }
    Ok(())
}

fn check_value(value: &str) -> Result<()> {
    if value.contains('\0') {
        return Err(Error::invalid("value", "A value cannot hold a NUL character."));
    }
    if value.len() > MAX_VALUE_BYTES {
        return Err(Error::invalid(
            "value",
            format!("A value is at most {} KiB.", MAX_VALUE_BYTES / 1024),
        ));
    }
    Ok(())
}

/// A static site runs no code of its own: it has no environment.
fn check_dynamic(site: &Site) -> Result<()> {
    if site.kind != SiteKind::Dynamic {
        return Err(Error::Conflict(
            "A static site runs no code, so it has no environment variables.".to_owned(),
        ));
    }
    Ok(())
}

/// The variables in a row of [`SITE_VARIABLES_COLUMN`]: `name=value` (names hold no `=`).
pub(super) fn parse_column(values: &[String]) -> Variables {
    Variables(
        values
            .iter()
            .filter_map(|pair| pair.split_once('='))
            .map(|(name, value)| (name.to_owned(), value.to_owned()))
            .collect(),
    )
}

/// A site's variables with its row, as `name=value` texts.
pub(super) const SITE_VARIABLES_COLUMN: &str =
    "array(SELECT v.name || '=' || v.value FROM site_variables v WHERE v.site_id = sites.id ORDER BY v.name)";

impl Platform {
    /// The variables of a site the actor may manage, by name; secrets without their values.
    pub async fn site_variables(&self, actor: Option<&Actor>, site_id: i32) -> Result<Vec<Variable>> {
        self.site(actor, site_id).await?;
        let mut conn = self.conn().await?;
        let rows: Vec<(String, String, bool, DateTime<Utc>)> = site_variables::table
            .filter(site_variables::site_id.eq(site_id))
            .order(site_variables::name.asc())
            .select((
                site_variables::name,
                site_variables::value,
                site_variables::secret,
                site_variables::updated_at,
            ))
            .load(&mut conn)
            .await?;
        Ok(rows
            .into_iter()
            .map(|(name, value, secret, updated_at)| Variable {
                name,
                value: (!secret).then_some(value),
                secret,
                updated_at,
            })
            .collect())
    }

    /// Adds or changes a variable of a dynamic site, and queues its service's update. A value
    /// left out keeps the one the variable has; a secret stays secret (its value was never
    /// shown, so making it plain would show it).
    pub async fn set_site_variable(
        &self,
        actor: Option<&Actor>,
        site_id: i32,
        input: VariableInput,
    ) -> Result<i64> {
        let (actor, site) = self.managed_site(actor, site_id, Access::Write).await?;
        check_dynamic(&site)?;
        let name = input.name.trim().to_owned();
        check_name(&name)?;
        if let Some(value) = &input.value {
            check_value(value)?;
        }
        let mut conn = self.conn().await?;
        let operation = conn
            .transaction::<_, Error, _>(async |conn| {
                // The site's row is locked: two members adding variables at once count each
                // other's.
                crate::schema::sites::table
                    .find(site_id)
                    .select(crate::schema::sites::id)
                    .for_update()
                    .first::<i32>(conn)
                    .await?;
                let current: Option<bool> = site_variables::table
                    .find((site_id, &name))
                    .select(site_variables::secret)
                    .first(conn)
                    .await
                    .optional()?;
                match (&current, &input.value) {
                    (None, None) => {
                        return Err(Error::invalid("value", "Give the new variable a value."));
                    }
                    (Some(true), _) if !input.secret => {
                        return Err(Error::invalid(
                            "secret",
                            "A secret stays secret: remove it and add it again to make it plain.",
                        ));
                    }
                    _ => {}
                }
                if let Some(value) = &input.value {
                    let others: Option<i64> = site_variables::table
                        .filter(site_variables::site_id.eq(site_id))
                        .filter(site_variables::name.ne(&name))
                        .select(diesel::dsl::sum(diesel::dsl::sql::<diesel::sql_types::Integer>(
                            "octet_length(value)",
                        )))
                        .first(conn)
                        .await?;
                    if others.unwrap_or(0) as usize + value.len() > MAX_TOTAL_BYTES {
                        return Err(Error::invalid(
                            "value",
                            format!(
                                "A site's values take at most {} KiB together.",
                                MAX_TOTAL_BYTES / 1024
                            ),
                        ));
                    }
                }
                if current.is_none() {
                    let count: i64 = site_variables::table
                        .filter(site_variables::site_id.eq(site_id))
                        .count()
                        .get_result(conn)
                        .await?;
                    if count >= MAX_VARIABLES as i64 {
                        return Err(Error::invalid(
                            "name",
                            format!("A site has at most {MAX_VARIABLES} variables."),
                        ));
                    }
                }
                match &input.value {
                    Some(value) => {
                        diesel::insert_into(site_variables::table)
                            .values((
                                site_variables::site_id.eq(site_id),
                                site_variables::name.eq(&name),
                                site_variables::value.eq(value),
                                site_variables::secret.eq(input.secret),
                            ))
                            .on_conflict((site_variables::site_id, site_variables::name))
                            .do_update()
                            .set((
                                site_variables::value.eq(value),
                                site_variables::secret.eq(input.secret),
                                site_variables::updated_at.eq(diesel::dsl::now),
                            ))
                            .execute(conn)
                            .await?;
                    }
                    None => {
                        diesel::update(site_variables::table.find((site_id, &name)))
                            .set((
                                site_variables::secret.eq(input.secret),
                                site_variables::updated_at.eq(diesel::dsl::now),
                            ))
                            .execute(conn)
                            .await?;
                    }
                }
                let details = format!("{name}{}", if input.secret { " (secret)" } else { "" });
                queue_update(conn, actor, &site, "site.variable.set", &details).await
            })
            .await?;
        self.wake_workers();
        tracing::info!(user = %actor.username, site = %site.name, variable = %name, "variable set");
        Ok(operation)
    }

    /// Removes a variable of a site, and queues its service's update.
    pub async fn remove_site_variable(&self, actor: Option<&Actor>, site_id: i32, name: &str) -> Result<i64> {
        let (actor, site) = self.managed_site(actor, site_id, Access::Write).await?;
        check_dynamic(&site)?;
        check_name(name)?;
        let mut conn = self.conn().await?;
        let operation = conn
            .transaction::<_, Error, _>(async |conn| {
                let removed = diesel::delete(site_variables::table.find((site_id, name)))
                    .execute(conn)
                    .await?;
                if removed == 0 {
                    return Err(Error::NotFound("variable"));
                }
                queue_update(conn, actor, &site, "site.variable.remove", name).await
            })
            .await?;
        self.wake_workers();
        Ok(operation)
    }
}

/// Queues the service's update with the variables as they are once the transaction commits.
async fn queue_update(
    conn: &mut diesel_async::AsyncPgConnection,
    actor: &Actor,
    site: &Site,
    audit_action: &str,
    details: &str,
) -> Result<i64> {
    let change = Change {
        kind: OperationKind::UpdateVariables,
        state: None,
        availability: None,
        audit_action,
        details,
    };
    record_change(conn, actor, site, &change).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked_and_directors_own_are_refused() {
        for good in ["GREETING", "_x", "a1_B2"] {
            check_name(good).unwrap();
        }
        for bad in [
            "",
            "1A",
            "A-B",
            "A B",
            "Ä",
            "PORT",
            "SITE_URL",
            "DATABASE_URL",
            "PGHOST",
            "HOME",
            &"A".repeat(129),
        ] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
        assert!(check_value("a\0b").is_err());
        assert!(check_value(&"x".repeat(MAX_VALUE_BYTES + 1)).is_err());
        check_value("multi\nline $(not run)").unwrap();
    }

    #[test]
    fn the_column_splits_at_the_first_equals_sign() {
        let parsed = parse_column(&["A=b=c".to_owned(), "E=".to_owned()]);
        assert_eq!(parsed.0["A"], "b=c");
        assert_eq!(parsed.0["E"], "");
        assert_eq!(format!("{parsed:?}"), r#"["A", "E"]"#, "values are never shown");
    }
}
