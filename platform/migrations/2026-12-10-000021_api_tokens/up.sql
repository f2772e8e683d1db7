-- Personal access tokens for the REST API (#21): stored as digests, never as themselves; each
-- reaches what its user may reach, only as far as its access says (read, or read and write),
-- with an admin's powers only when it says so, and — when `limited` — only the sites listed in
-- api_token_sites (a site deleted leaves a limited token reaching fewer sites, never more).
CREATE TABLE api_tokens (
    id           BIGINT      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id      BIGINT      NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name         TEXT        NOT NULL CHECK (char_length(name) BETWEEN 1 AND 100),
    token_hash   BYTEA       NOT NULL UNIQUE,
    -- The token's first characters, shown so that people tell their tokens apart.
    hint         TEXT        NOT NULL,
    access       TEXT        NOT NULL
                 CONSTRAINT api_tokens_access_check CHECK (access IN ('read', 'write')),
    admin        BOOLEAN     NOT NULL DEFAULT FALSE,
    limited      BOOLEAN     NOT NULL DEFAULT FALSE,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at   TIMESTAMPTZ NOT NULL,
    last_used_at TIMESTAMPTZ,
    last_used_ip TEXT        NOT NULL DEFAULT '',
    revoked_at   TIMESTAMPTZ,
    revoked_by   BIGINT      REFERENCES users (id) ON DELETE SET NULL
);
CREATE INDEX api_tokens_user ON api_tokens (user_id);

CREATE TABLE api_token_sites (
    token_id BIGINT  NOT NULL REFERENCES api_tokens (id) ON DELETE CASCADE,
    site_id  INTEGER NOT NULL REFERENCES sites (id) ON DELETE CASCADE,
    PRIMARY KEY (token_id, site_id)
);
CREATE INDEX api_token_sites_site ON api_token_sites (site_id);
