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
        password_set -> Bool,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        site_quota -> Nullable<Int4>,
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
        provider -> Nullable<Text>,
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

diesel::table! {
    images (id) {
        id -> Int8,
        name -> Text,
        description -> Text,
        reference -> Text,
        serves_static -> Bool,
        serves_dynamic -> Bool,
        run_sh -> Text,
        enabled -> Bool,
        allows_recipe -> Bool,
        allows_dockerfile -> Bool,
        has_pip -> Bool,
        has_npm -> Bool,
    }
}

diesel::table! {
    sites (id) {
        id -> Int4,
        name -> Text,
        description -> Text,
        purpose -> Text,
        kind -> Text,
        image_id -> Int8,
        availability -> Text,
        state -> Text,
        cpu_millis -> Int4,
        memory_mb -> Int4,
        body_limit_mb -> Int4,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        provisioned_at -> Nullable<Timestamptz>,
        built_image -> Nullable<Text>,
    }
}

diesel::table! {
    site_status (site_id) {
        site_id -> Int4,
        disk_bytes -> Nullable<Int8>,
        disk_measured_at -> Nullable<Timestamptz>,
        disk_over_since -> Nullable<Timestamptz>,
        reconcile_problem -> Text,
    }
}

diesel::table! {
    site_members (site_id, user_id) {
        site_id -> Int4,
        user_id -> Int8,
    }
}

diesel::table! {
    operations (id) {
        id -> Int8,
        site_id -> Int4,
        kind -> Text,
        state -> Text,
        created_by -> Nullable<Int8>,
        created_at -> Timestamptz,
        heartbeat -> Nullable<Timestamptz>,
        finished_at -> Nullable<Timestamptz>,
        claim -> Nullable<Int8>,
    }
}

diesel::table! {
    operation_actions (operation_id, position) {
        operation_id -> Int8,
        position -> Int4,
        action -> Text,
        state -> Text,
        output -> Text,
        started_at -> Nullable<Timestamptz>,
        finished_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    audit_log (id) {
        id -> Int8,
        at -> Timestamptz,
        actor_id -> Nullable<Int8>,
        actor -> Text,
        action -> Text,
        target -> Text,
        details -> Text,
    }
}

diesel::table! {
    ssh_keys (id) {
        id -> Int8,
        user_id -> Int8,
        name -> Text,
        algorithm -> Text,
        fingerprint -> Text,
        public_key -> Text,
        created_at -> Timestamptz,
        last_used_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    site_domains (id) {
        id -> Int8,
        site_id -> Int4,
        host -> Text,
        token -> Text,
        verified_at -> Nullable<Timestamptz>,
        verified_by -> Text,
        last_check_at -> Nullable<Timestamptz>,
        last_check_error -> Text,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    certificates (host) {
        host -> Text,
        state -> Text,
        not_after -> Nullable<Timestamptz>,
        error -> Text,
        failed_at -> Nullable<Timestamptz>,
        retry_at -> Nullable<Timestamptz>,
        attempts -> Int4,
        requested_at -> Nullable<Timestamptz>,
        updated_at -> Timestamptz,
        expiry_told -> Nullable<Timestamptz>,
    }
}

diesel::joinable!(site_domains -> sites (site_id));
diesel::joinable!(ssh_keys -> users (user_id));
diesel::joinable!(sites -> images (image_id));
diesel::joinable!(catalogue_builds -> images (image_id));
diesel::joinable!(site_members -> sites (site_id));
diesel::joinable!(site_members -> users (user_id));
diesel::table! {
    user_identities (issuer, subject) {
        issuer -> Text,
        subject -> Text,
        user_id -> Int8,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    oidc_logins (state_hash) {
        state_hash -> Bytea,
        browser_hash -> Bytea,
        provider -> Text,
        nonce -> Text,
        verifier -> Text,
        next -> Text,
        expires_at -> Timestamptz,
        link_user -> Nullable<Int8>,
    }
}

diesel::table! {
    pending_identities (issuer, subject) {
        issuer -> Text,
        subject -> Text,
        provider -> Text,
        user_id -> Int8,
        preferred_username -> Text,
        name -> Text,
        email -> Text,
        seen_at -> Timestamptz,
    }
}

diesel::joinable!(pending_identities -> users (user_id));

diesel::table! {
    site_policy (only_row) {
        only_row -> Bool,
        creation -> Text,
        steps -> Text,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    site_requests (id) {
        id -> Int8,
        requester_id -> Int8,
        approver_id -> Nullable<Int8>,
        name -> Text,
        description -> Text,
        purpose -> Text,
        kind -> Text,
        image -> Text,
        reason -> Text,
        state -> Text,
        site_id -> Nullable<Int4>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    site_request_steps (id) {
        id -> Int8,
        request_id -> Int8,
        actor_id -> Nullable<Int8>,
        actor_name -> Text,
        action -> Text,
        comment -> Text,
        at -> Timestamptz,
    }
}

diesel::joinable!(site_request_steps -> site_requests (request_id));

diesel::table! {
    notifications (id) {
        id -> Int8,
        user_id -> Int8,
        event -> Text,
        subject -> Text,
        body -> Text,
        link -> Text,
        created_at -> Timestamptz,
        read_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    notification_choices (user_id, event, channel) {
        user_id -> Int8,
        event -> Text,
        channel -> Text,
        enabled -> Bool,
    }
}

diesel::table! {
    webhooks (id) {
        id -> Int8,
        user_id -> Nullable<Int8>,
        url -> Text,
        secret -> Text,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    deliveries (id) {
        id -> Int8,
        notification_id -> Int8,
        channel -> Text,
        webhook_id -> Nullable<Int8>,
        state -> Text,
        attempts -> Int4,
        next_attempt_at -> Timestamptz,
        lease_until -> Nullable<Timestamptz>,
        last_error -> Text,
        created_at -> Timestamptz,
        delivered_at -> Nullable<Timestamptz>,
    }
}

diesel::joinable!(notifications -> users (user_id));
diesel::joinable!(deliveries -> notifications (notification_id));
diesel::joinable!(deliveries -> webhooks (webhook_id));

diesel::joinable!(user_identities -> users (user_id));

diesel::table! {
    installation (only_row) {
        only_row -> Bool,
        id -> Text,
    }
}

diesel::table! {
    site_databases (site_id, kind) {
        site_id -> Int4,
        kind -> Text,
        state -> Text,
        password -> Text,
        pending_password -> Nullable<Text>,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    sql_history (id) {
        id -> Int8,
        site_id -> Int4,
        user_id -> Int8,
        kind -> Text,
        statement -> Text,
        at -> Timestamptz,
    }
}

diesel::table! {
    site_recipes (site_id) {
        site_id -> Int4,
        source -> Text,
        apt -> Text,
        pip -> Text,
        npm -> Text,
        setup -> Text,
        dockerfile -> Text,
        context -> Text,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    catalogue_builds (id) {
        id -> Int8,
        image_id -> Int8,
        number -> Int4,
        dockerfile -> Text,
        state -> Text,
        enable -> Bool,
        tag -> Text,
        log -> Text,
        error -> Text,
        claim -> Nullable<Int8>,
        heartbeat -> Nullable<Timestamptz>,
        created_by -> Nullable<Int8>,
        created_at -> Timestamptz,
        started_at -> Nullable<Timestamptz>,
        finished_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    site_builds (id) {
        id -> Int8,
        site_id -> Int4,
        number -> Int4,
        state -> Text,
        recipe -> Text,
        tag -> Text,
        previous -> Nullable<Text>,
        log -> Text,
        error -> Text,
        created_by -> Nullable<Int8>,
        created_at -> Timestamptz,
        started_at -> Nullable<Timestamptz>,
        finished_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    site_variables (site_id, name) {
        site_id -> Int4,
        name -> Text,
        value -> Text,
        secret -> Bool,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    build_policy (only_row) {
        only_row -> Bool,
        time_limit_s -> Int4,
        memory_mb -> Int4,
        cpu_millis -> Int4,
        setup_commands -> Bool,
        apt_rule -> Text,
        apt_list -> Text,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    api_tokens (id) {
        id -> Int8,
        user_id -> Int8,
        name -> Text,
        token_hash -> Bytea,
        hint -> Text,
        access -> Text,
        admin -> Bool,
        limited -> Bool,
        created_at -> Timestamptz,
        expires_at -> Timestamptz,
        last_used_at -> Nullable<Timestamptz>,
        last_used_ip -> Text,
        revoked_at -> Nullable<Timestamptz>,
        revoked_by -> Nullable<Int8>,
    }
}

diesel::table! {
    api_token_sites (token_id, site_id) {
        token_id -> Int8,
        site_id -> Int4,
    }
}

diesel::joinable!(operation_actions -> operations (operation_id));
diesel::joinable!(site_databases -> sites (site_id));
diesel::joinable!(site_recipes -> sites (site_id));
diesel::joinable!(site_builds -> sites (site_id));
diesel::joinable!(site_variables -> sites (site_id));
diesel::joinable!(api_tokens -> users (user_id));
diesel::joinable!(api_token_sites -> api_tokens (token_id));
diesel::joinable!(api_token_sites -> sites (site_id));
diesel::allow_tables_to_appear_in_same_query!(
    images,
    sites,
    site_members,
    operations,
    operation_actions,
    users,
    audit_log,
    ssh_keys,
    site_domains,
    certificates,
    site_databases,
    sql_history,
    user_identities,
    oidc_logins,
    pending_identities,
    site_requests,
    site_request_steps,
    notifications,
    notification_choices,
    webhooks,
    deliveries,
    site_recipes,
    site_builds,
    site_variables,
    catalogue_builds,
    api_tokens,
    api_token_sites
);
