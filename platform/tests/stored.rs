//! States stored as text: the database allows exactly the names `model` maps, and a name it
//! does not know is refused where it is read.

use diesel::{QueryableByName, sql_types::Text};
use diesel_async::{AsyncConnection as _, AsyncPgConnection, RunQueryDsl as _};
use model::{
    Stored,
    account::Role,
    build::{AptRule, BuildState, RecipeSource},
    certificate::CertificateState,
    database::{DatabaseKind, DatabaseState},
    domain::Proof,
    operation::{Action, ActionState, OperationKind, OperationState},
    site::{Availability, Purpose, SiteKind, SiteState},
    token::TokenAccess,
};
use platform::{Error, testing::TestDb};

#[derive(QueryableByName)]
struct Definition {
    #[diesel(sql_type = Text)]
    definition: String,
}

/// The names a CHECK constraint allows (`CHECK ((state = ANY (ARRAY['a'::text, …])))`).
async fn allowed(conn: &mut AsyncPgConnection, constraint: &str) -> Vec<String> {
    let found: Vec<Definition> = diesel::sql_query(
        "SELECT pg_get_constraintdef(k.oid) AS definition FROM pg_constraint k \
         JOIN pg_namespace n ON n.oid = k.connamespace \
         WHERE k.conname = $1 AND n.nspname = current_schema()",
    )
    .bind::<Text, _>(constraint)
    .load(conn)
    .await
    .unwrap();
    let definition = found
        .into_iter()
        .next()
        .unwrap_or_else(|| panic!("no constraint {constraint}"))
        .definition;
    let mut names: Vec<String> = definition
        .split('\'')
        .collect::<Vec<_>>()
        .windows(2)
        .skip(1)
        .step_by(2)
        .filter(|pair| pair[1].starts_with("::"))
        .map(|pair| pair[0].to_owned())
        .collect();
    names.sort();
    names
}

fn names<T: Stored>(all: &[T]) -> Vec<String> {
    let mut names: Vec<String> = all.iter().map(|value| value.stored_name().to_owned()).collect();
    names.sort();
    names
}

#[tokio::test]
async fn every_stored_enum_is_exactly_what_its_column_allows() {
    let db = TestDb::new().await;
    let mut conn = AsyncPgConnection::establish(&db.url).await.unwrap();
    for (constraint, expected) in [
        ("users_role_check", names(Role::ALL)),
        ("sites_purpose_check", names(Purpose::ALL)),
        ("sites_kind_check", names(SiteKind::ALL)),
        ("sites_availability_check", names(Availability::ALL)),
        ("sites_state_check", names(SiteState::ALL)),
        ("operations_kind_check", names(OperationKind::ALL)),
        ("operations_state_check", names(OperationState::ALL)),
        ("operation_actions_action_check", names(Action::ALL)),
        ("operation_actions_state_check", names(ActionState::ALL)),
        ("certificates_state_check", names(CertificateState::ALL)),
        ("site_domains_verified_by_check", names(Proof::ALL)),
        ("site_databases_kind_check", names(DatabaseKind::ALL)),
        ("site_databases_state_check", names(DatabaseState::ALL)),
        ("site_builds_state_check", names(BuildState::ALL)),
        ("site_recipes_source_check", names(RecipeSource::ALL)),
        ("build_policy_apt_rule_check", names(AptRule::ALL)),
        ("api_tokens_access_check", names(TokenAccess::ALL)),
    ] {
        assert_eq!(allowed(&mut conn, constraint).await, expected, "{constraint}");
    }
}

/// A stored name this Director does not know (written by a newer one, or by hand) is refused
/// where it is read, never taken for another value: an unknown role is not a member's.
#[tokio::test]
async fn a_stored_state_no_enum_knows_is_refused_rather_than_guessed() {
    let db = TestDb::new().await;
    let (_, session) = platform::testing::signed_in_user(&db.platform, "root", Role::Admin).await;
    let mut conn = AsyncPgConnection::establish(&db.url).await.unwrap();
    for statement in [
        "ALTER TABLE users DROP CONSTRAINT users_role_check",
        "UPDATE users SET role = 'owner' WHERE username = 'root'",
    ] {
        diesel::sql_query(statement).execute(&mut conn).await.unwrap();
    }
    let read = db.platform.session_actor(&session.token).await;
    assert!(matches!(read, Err(Error::Internal(_))), "{read:?}");
}
