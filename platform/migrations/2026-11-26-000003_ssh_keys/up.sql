-- Users' SSH public keys. A key identifies one user: its fingerprint is unique across all.
CREATE TABLE ssh_keys (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id      BIGINT      NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name         TEXT        NOT NULL,
    algorithm    TEXT        NOT NULL,
    fingerprint  TEXT        NOT NULL UNIQUE,
    public_key   TEXT        NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_used_at TIMESTAMPTZ
);
CREATE INDEX ssh_keys_user ON ssh_keys (user_id);
