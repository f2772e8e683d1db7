//! One mapping per stored enum, between its values and their stored names.

/// A stored name that no value of the enum has: written by something else, or by a newer
/// Director. Refused rather than taken for another value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} {name:?}")]
pub struct UnknownName {
    /// What was being read (`site state`, …).
    pub what: &'static str,
    /// The name found.
    pub name: String,
}

/// An enum stored as text (see [`stored_enum!`]).
pub trait Stored: Copy {
    /// The stored name.
    fn stored_name(self) -> &'static str;
}

/// Defines an enum stored as text: its values, each with its stored name, and every mapping of
/// it — `as_str` (and [`Stored`]), `FromStr` and serde by those names (refusing any other), `Display`, `ALL`,
/// and with the `diesel` feature `ToSql`/`FromSql` on PostgreSQL `TEXT`.
macro_rules! stored_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident ($what:literal) {
            $( $(#[$vmeta:meta])* $variant:ident = $stored:literal, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
        #[cfg_attr(feature = "diesel", derive(diesel::expression::AsExpression, diesel::deserialize::FromSqlRow))]
        #[cfg_attr(feature = "diesel", diesel(sql_type = diesel::sql_types::Text))]
        pub enum $name {
            $( $(#[$vmeta])* #[serde(rename = $stored)] $variant, )+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [Self] = &[$(Self::$variant),+];

            /// The stored name.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $stored,)+
                }
            }
        }

        impl $crate::Stored for $name {
            fn stored_name(self) -> &'static str {
                self.as_str()
            }
        }

        impl std::str::FromStr for $name {
            type Err = $crate::UnknownName;

            fn from_str(name: &str) -> Result<Self, Self::Err> {
                match name {
                    $($stored => Ok(Self::$variant),)+
                    _ => Err($crate::UnknownName { what: $what, name: name.to_owned() }),
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        #[cfg(feature = "diesel")]
        impl diesel::serialize::ToSql<diesel::sql_types::Text, diesel::pg::Pg> for $name {
            fn to_sql<'b>(
                &'b self,
                out: &mut diesel::serialize::Output<'b, '_, diesel::pg::Pg>,
            ) -> diesel::serialize::Result {
                <str as diesel::serialize::ToSql<diesel::sql_types::Text, diesel::pg::Pg>>::to_sql(
                    self.as_str(),
                    out,
                )
            }
        }

        #[cfg(feature = "diesel")]
        impl diesel::deserialize::FromSql<diesel::sql_types::Text, diesel::pg::Pg> for $name {
            fn from_sql(bytes: diesel::pg::PgValue<'_>) -> diesel::deserialize::Result<Self> {
                let name = <String as diesel::deserialize::FromSql<
                    diesel::sql_types::Text,
                    diesel::pg::Pg,
                >>::from_sql(bytes)?;
                Ok(name.parse::<Self>()?)
            }
        }
    };
}

#[cfg(test)]
mod tests {
    stored_enum! {
        /// A test enum.
        pub enum Colour ("colour") {
            /// Red.
            Red = "red",
            /// Dark blue.
            DarkBlue = "dark-blue",
        }
    }

    #[test]
    fn every_value_reads_back_from_its_name_and_other_names_are_refused() {
        for colour in Colour::ALL {
            assert_eq!(colour.as_str().parse::<Colour>(), Ok(*colour));
            assert_eq!(colour.to_string(), colour.as_str());
        }
        let err = "green".parse::<Colour>().unwrap_err();
        assert_eq!(err.to_string(), "unknown colour \"green\"");
        assert!("Red".parse::<Colour>().is_err());
    }

    #[test]
    fn the_wire_carries_the_stored_names_and_refuses_others() {
        assert_eq!(serde_json::to_string(&Colour::DarkBlue).unwrap(), "\"dark-blue\"");
        assert_eq!(
            serde_json::from_str::<Colour>("\"dark-blue\"").unwrap(),
            Colour::DarkBlue
        );
        assert!(serde_json::from_str::<Colour>("\"DarkBlue\"").is_err());
    }
}
