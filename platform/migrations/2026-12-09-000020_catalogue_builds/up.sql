-- Catalogue images built from a Dockerfile an administrator pasted (#20): each build, its
-- Dockerfile and kept output; a worker claims it like an operation (a claim number and a
-- heartbeat, so that a build whose worker died is taken over).
CREATE TABLE catalogue_builds (
    id          BIGINT      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    image_id    BIGINT      NOT NULL REFERENCES images (id) ON DELETE CASCADE,
    number      INTEGER     NOT NULL,
    dockerfile  TEXT        NOT NULL,
    state       TEXT        NOT NULL DEFAULT 'queued'
                CONSTRAINT catalogue_builds_state_check
                CHECK (state IN ('queued', 'running', 'succeeded', 'reused', 'failed')),
    -- Offer the image to new sites once this build made it (its first build).
    enable      BOOLEAN     NOT NULL DEFAULT FALSE,
    tag         TEXT        NOT NULL DEFAULT '',
    log         TEXT        NOT NULL DEFAULT '',
    error       TEXT        NOT NULL DEFAULT '',
    claim       BIGINT,
    heartbeat   TIMESTAMPTZ,
    created_by  BIGINT      REFERENCES users (id) ON DELETE SET NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    started_at  TIMESTAMPTZ,
    finished_at TIMESTAMPTZ,
    UNIQUE (image_id, number)
);
