-- Sign-in with the organisation's identity providers (OpenID Connect).
--
-- An account is linked to a provider's person by (issuer, subject) only: never by an email
-- address or a username, which a provider may let people choose.
CREATE TABLE user_identities (
    issuer     TEXT        NOT NULL,
    subject    TEXT        NOT NULL,
    user_id    BIGINT      NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (issuer, subject)
);
CREATE INDEX user_identities_user_id ON user_identities (user_id);

-- A sign-in under way, between the redirect to the provider and its callback: kept here so
-- that the callback may land on any manager process. Only SHA-256 digests of the `state` and of
-- the secret the starting browser keeps in a cookie are stored; a row is taken (deleted) by the
-- one callback that uses it, which must come from that browser.
CREATE TABLE oidc_logins (
    state_hash   BYTEA       PRIMARY KEY,
    browser_hash BYTEA       NOT NULL,
    provider   TEXT        NOT NULL,
    nonce      TEXT        NOT NULL,
    verifier   TEXT        NOT NULL,
    next       TEXT        NOT NULL DEFAULT '/',
    expires_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX oidc_logins_expires_at ON oidc_logins (expires_at);
