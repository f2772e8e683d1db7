-- Requests for sites (Director 4.0's student → teacher → admin flow): how members get sites is
-- an admin's choice, kept in the one row of site_policy.
CREATE TABLE site_policy (
    only_row   BOOLEAN     PRIMARY KEY DEFAULT TRUE CHECK (only_row),
    creation   TEXT        NOT NULL DEFAULT 'direct' CHECK (creation IN ('direct', 'request')),
    steps      TEXT        NOT NULL DEFAULT 'approver-and-admin' CHECK (steps IN ('approver-and-admin', 'approver')),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
INSERT INTO site_policy DEFAULT VALUES;

-- What the create form asks, with why, and whom the member asks (NULL: any approver).
CREATE TABLE site_requests (
    id           BIGINT      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    requester_id BIGINT      NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    approver_id  BIGINT      REFERENCES users (id) ON DELETE SET NULL,
    name         TEXT        NOT NULL,
    description  TEXT        NOT NULL DEFAULT '',
    purpose      TEXT        NOT NULL,
    kind         TEXT        NOT NULL,
    image        TEXT        NOT NULL,
    reason       TEXT        NOT NULL,
    state        TEXT        NOT NULL DEFAULT 'submitted'
                 CHECK (state IN ('submitted', 'approved', 'created', 'denied', 'withdrawn')),
    site_id      INTEGER     REFERENCES sites (id) ON DELETE SET NULL,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at   TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX site_requests_requester_id ON site_requests (requester_id);
-- A name is asked for by one open request at a time.
CREATE UNIQUE INDEX site_requests_open_name ON site_requests (name) WHERE state IN ('submitted', 'approved');

-- Each request's history: who did what, when, and what they said.
CREATE TABLE site_request_steps (
    id         BIGINT      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    request_id BIGINT      NOT NULL REFERENCES site_requests (id) ON DELETE CASCADE,
    actor_id   BIGINT      REFERENCES users (id) ON DELETE SET NULL,
    actor_name TEXT        NOT NULL,
    action     TEXT        NOT NULL CHECK (action IN ('submit', 'approve', 'deny', 'withdraw')),
    comment    TEXT        NOT NULL DEFAULT '',
    at         TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX site_request_steps_request_id ON site_request_steps (request_id);
