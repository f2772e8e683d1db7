-- Sites, their images and members, the durable operations queue, and the audit log.

CREATE TABLE images (
    id             BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name           TEXT    NOT NULL UNIQUE,
    description    TEXT    NOT NULL DEFAULT '',
    reference      TEXT    NOT NULL,
    serves_static  BOOLEAN NOT NULL,
    serves_dynamic BOOLEAN NOT NULL,
    run_sh         TEXT    NOT NULL DEFAULT '',
    enabled        BOOLEAN NOT NULL DEFAULT TRUE
);

INSERT INTO images (name, description, reference, serves_static, serves_dynamic, run_sh) VALUES
  ('busybox', 'A tiny image with a shell and busybox''s tools; its httpd can serve a site.',
   'director/busybox:latest', TRUE, TRUE,
   E'#!/bin/sh\n# Serves public/ on $PORT. Replace this with your own server.\nexec httpd -f -p "$PORT" -h /site/public\n'),
  ('python', 'Debian with Python 3.', 'director/python:3', FALSE, TRUE,
   E'#!/bin/sh\n# Serves public/ on $PORT. Replace this with your own server.\nexec python3 -m http.server "$PORT" --directory /site/public\n');

CREATE TABLE sites (
    id            INTEGER GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name          TEXT        NOT NULL UNIQUE,
    description   TEXT        NOT NULL DEFAULT '',
    purpose       TEXT        NOT NULL CHECK (purpose IN ('user', 'project', 'activity', 'other')),
    kind          TEXT        NOT NULL CHECK (kind IN ('static', 'dynamic')),
    image_id      BIGINT      NOT NULL REFERENCES images (id),
    availability  TEXT        NOT NULL DEFAULT 'enabled' CHECK (availability IN ('enabled', 'not-served', 'disabled')),
    state         TEXT        NOT NULL DEFAULT 'provisioning'
                  CHECK (state IN ('provisioning', 'running', 'failing', 'stopped', 'deleting')),
    cpu_millis    INTEGER     NOT NULL DEFAULT 1000,
    memory_mb     INTEGER     NOT NULL DEFAULT 512,
    body_limit_mb INTEGER     NOT NULL DEFAULT 8,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE site_members (
    site_id INTEGER NOT NULL REFERENCES sites (id) ON DELETE CASCADE,
    user_id BIGINT  NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    PRIMARY KEY (site_id, user_id)
);
CREATE INDEX site_members_user ON site_members (user_id);

-- An operation is a change to a site made of ordered actions, run by whichever worker claims
-- it (FOR UPDATE SKIP LOCKED); a worker that dies stops renewing its heartbeat, and another
-- resumes the operation at its first unfinished action.
CREATE TABLE operations (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    site_id     INTEGER     NOT NULL,
    kind        TEXT        NOT NULL,
    state       TEXT        NOT NULL DEFAULT 'queued' CHECK (state IN ('queued', 'running', 'done', 'failed')),
    created_by  BIGINT      REFERENCES users (id) ON DELETE SET NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    heartbeat   TIMESTAMPTZ,
    finished_at TIMESTAMPTZ
);
CREATE INDEX operations_site ON operations (site_id, id);
CREATE INDEX operations_pending ON operations (id) WHERE state IN ('queued', 'running');

CREATE TABLE operation_actions (
    operation_id BIGINT      NOT NULL REFERENCES operations (id) ON DELETE CASCADE,
    position     INTEGER     NOT NULL,
    action       TEXT        NOT NULL,
    state        TEXT        NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'running', 'done', 'failed')),
    output       TEXT        NOT NULL DEFAULT '',
    started_at   TIMESTAMPTZ,
    finished_at  TIMESTAMPTZ,
    PRIMARY KEY (operation_id, position)
);

CREATE TABLE audit_log (
    id       BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    actor_id BIGINT      REFERENCES users (id) ON DELETE SET NULL,
    actor    TEXT        NOT NULL,
    action   TEXT        NOT NULL,
    target   TEXT        NOT NULL,
    details  TEXT        NOT NULL DEFAULT ''
);
CREATE INDEX audit_log_at ON audit_log (at);
