-- Site images built by Director (#20): each dynamic site's recipe, its builds with their kept
-- output, the image it runs, its environment variables, and what the catalogue allows.

ALTER TABLE images
    ADD COLUMN allows_recipe     BOOLEAN NOT NULL DEFAULT TRUE,
    ADD COLUMN allows_dockerfile BOOLEAN NOT NULL DEFAULT FALSE,
    -- Whether recipes on it may name Python (pip) or Node (npm) packages.
    ADD COLUMN has_pip           BOOLEAN NOT NULL DEFAULT FALSE,
    ADD COLUMN has_npm           BOOLEAN NOT NULL DEFAULT FALSE;
UPDATE images SET has_pip = TRUE WHERE reference LIKE '%/python:%';
-- Busybox has no package manager for a recipe to use.
UPDATE images SET allows_recipe = FALSE WHERE reference LIKE '%/busybox:%';

-- What a site's image is made of, beyond its catalogue image.
CREATE TABLE site_recipes (
    site_id    INTEGER     PRIMARY KEY REFERENCES sites (id) ON DELETE CASCADE,
    source     TEXT        NOT NULL DEFAULT 'packages'
               CONSTRAINT site_recipes_source_check CHECK (source IN ('packages', 'dockerfile')),
    -- Whitespace-separated names, each checked against its pattern where it is set.
    apt        TEXT        NOT NULL DEFAULT '',
    pip        TEXT        NOT NULL DEFAULT '',
    npm        TEXT        NOT NULL DEFAULT '',
    setup      TEXT        NOT NULL DEFAULT '',
    -- For a Dockerfile build: the file, and the folder sent as its context (both in /site).
    dockerfile TEXT        NOT NULL DEFAULT 'Dockerfile',
    context    TEXT        NOT NULL DEFAULT '.',
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Each build of a site's image: its output (capped) kept for the last few.
CREATE TABLE site_builds (
    id           BIGINT      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    site_id      INTEGER     NOT NULL REFERENCES sites (id) ON DELETE CASCADE,
    number       INTEGER     NOT NULL,
    state        TEXT        NOT NULL DEFAULT 'queued'
                 CONSTRAINT site_builds_state_check
                 CHECK (state IN ('queued', 'running', 'succeeded', 'reused', 'failed')),
    recipe       TEXT        NOT NULL DEFAULT '',
    tag          TEXT        NOT NULL DEFAULT '',
    -- The image the site ran when the build started: put back if its deploy is rolled back.
    previous     TEXT,
    log          TEXT        NOT NULL DEFAULT '',
    error        TEXT        NOT NULL DEFAULT '',
    created_by   BIGINT      REFERENCES users (id) ON DELETE SET NULL,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    started_at   TIMESTAMPTZ,
    finished_at  TIMESTAMPTZ,
    UNIQUE (site_id, number)
);

-- The image a site runs when a build made it one (NULL: its catalogue image as it is).
ALTER TABLE sites ADD COLUMN built_image TEXT;

-- A site's own environment variables.
CREATE TABLE site_variables (
    site_id    INTEGER     NOT NULL REFERENCES sites (id) ON DELETE CASCADE,
    name       TEXT        NOT NULL CHECK (name ~ '^[A-Za-z_][A-Za-z0-9_]{0,127}$'),
    value      TEXT        NOT NULL,
    secret     BOOLEAN     NOT NULL DEFAULT FALSE,
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (site_id, name)
);

-- How builds run: an admin's choice, kept in one row.
CREATE TABLE build_policy (
    only_row       BOOLEAN     PRIMARY KEY DEFAULT TRUE CHECK (only_row),
    time_limit_s   INTEGER     NOT NULL DEFAULT 600 CHECK (time_limit_s BETWEEN 10 AND 7200),
    -- The engine's build API takes at most 2 GiB less a byte (a 32-bit field).
    memory_mb      INTEGER     NOT NULL DEFAULT 2047 CHECK (memory_mb BETWEEN 64 AND 2047),
    cpu_millis     INTEGER     NOT NULL DEFAULT 2000 CHECK (cpu_millis BETWEEN 100 AND 64000),
    setup_commands BOOLEAN     NOT NULL DEFAULT TRUE,
    -- Debian packages: any that match the pattern, only those listed, or any but those listed.
    apt_rule       TEXT        NOT NULL DEFAULT 'any'
                   CONSTRAINT build_policy_apt_rule_check CHECK (apt_rule IN ('any', 'allow', 'deny')),
    apt_list       TEXT        NOT NULL DEFAULT '',
    updated_at     TIMESTAMPTZ NOT NULL DEFAULT now()
);
INSERT INTO build_policy DEFAULT VALUES;

ALTER TABLE operations DROP CONSTRAINT operations_kind_check;
ALTER TABLE operations ADD CONSTRAINT operations_kind_check
    CHECK (kind IN ('create-site', 'delete-site', 'restart-site', 'set-availability',
                    'apply-settings', 'fix-site', 'update-domains', 'reset-terminal',
                    'add-database', 'rotate-database-password', 'delete-database',
                    'build-image', 'update-variables'));
ALTER TABLE operation_actions DROP CONSTRAINT operation_actions_action_check;
ALTER TABLE operation_actions ADD CONSTRAINT operation_actions_action_check
    CHECK (action IN ('create-directory', 'ensure-service', 'put-routes', 'restart-service',
                      'remove-routes', 'remove-service', 'remove-terminal', 'remove-directory',
                      'ensure-databases', 'drop-databases', 'forget-site',
                      'build-image', 'deploy-image', 'prune-images', 'remove-images'));
