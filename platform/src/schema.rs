//! The diesel schema, kept by hand in step with `migrations/`.

diesel::table! {
    users (id) {
        id -> Int8,
        username -> Text,
        display_name -> Text,
        email -> Text,
        password_hash -> Text,
        role -> Text,
        active -> Bool,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    sessions (token_hash) {
        token_hash -> Bytea,
        user_id -> Int8,
        created_at -> Timestamptz,
        last_seen_at -> Timestamptz,
        expires_at -> Timestamptz,
        ip -> Text,
        user_agent -> Text,
    }
}

diesel::table! {
    login_failures (id) {
        id -> Int8,
        username -> Text,
        ip -> Text,
        at -> Timestamptz,
    }
}

diesel::table! {
    setup_tokens (token_hash) {
        token_hash -> Bytea,
        expires_at -> Timestamptz,
    }
}

diesel::joinable!(sessions -> users (user_id));
diesel::allow_tables_to_appear_in_same_query!(users, sessions, login_failures, setup_tokens);
