-- Accounts: users, their server-side sessions, failed logins (for rate limiting) and the
-- one-time setup tokens that let the first admin in without a default password.

CREATE TABLE users (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    username      TEXT        NOT NULL UNIQUE,
    display_name  TEXT        NOT NULL,
    email         TEXT        NOT NULL DEFAULT '',
    password_hash TEXT        NOT NULL,
    role          TEXT        NOT NULL DEFAULT 'user' CHECK (role IN ('user', 'admin')),
    active        BOOLEAN     NOT NULL DEFAULT TRUE,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Only a SHA-256 of the cookie's token is stored: a leaked table does not leak sessions.
CREATE TABLE sessions (
    token_hash   BYTEA       PRIMARY KEY,
    user_id      BIGINT      NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_seen_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at   TIMESTAMPTZ NOT NULL,
    ip           TEXT        NOT NULL DEFAULT '',
    user_agent   TEXT        NOT NULL DEFAULT ''
);
CREATE INDEX sessions_user_id ON sessions (user_id);
CREATE INDEX sessions_expires_at ON sessions (expires_at);

CREATE TABLE login_failures (
    id       BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    username TEXT        NOT NULL,
    ip       TEXT        NOT NULL,
    at       TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX login_failures_username_at ON login_failures (username, at);
CREATE INDEX login_failures_ip_at ON login_failures (ip, at);

CREATE TABLE setup_tokens (
    token_hash BYTEA       PRIMARY KEY,
    expires_at TIMESTAMPTZ NOT NULL
);
