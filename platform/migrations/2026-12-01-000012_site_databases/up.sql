-- A site's databases: at most one of each kind. The password is the role's, kept so that the
-- site's service and terminal can be given it (and the database made again with it); a new
-- password waits in pending_password until its operation has given it to the role.
CREATE TABLE site_databases (
    site_id INT4 NOT NULL REFERENCES sites (id) ON DELETE CASCADE,
    kind TEXT NOT NULL CONSTRAINT site_databases_kind_check CHECK (kind IN ('postgresql', 'mysql')),
    state TEXT NOT NULL DEFAULT 'creating'
        CONSTRAINT site_databases_state_check CHECK (state IN ('creating', 'ready', 'deleting')),
    password TEXT NOT NULL CHECK (password ~ '^[A-Za-z0-9]{32,}$'),
    pending_password TEXT CHECK (pending_password ~ '^[A-Za-z0-9]{32,}$'),
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (site_id, kind)
);

-- The SQL console's history: each member's last statements per site.
CREATE TABLE sql_history (
    id BIGSERIAL PRIMARY KEY,
    site_id INT4 NOT NULL REFERENCES sites (id) ON DELETE CASCADE,
    user_id INT8 NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    kind TEXT NOT NULL CHECK (kind IN ('postgresql', 'mysql')),
    statement TEXT NOT NULL,
    at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX sql_history_by_user ON sql_history (user_id, site_id, id DESC);

ALTER TABLE operations DROP CONSTRAINT operations_kind_check;
ALTER TABLE operations ADD CONSTRAINT operations_kind_check
    CHECK (kind IN ('create-site', 'delete-site', 'restart-site', 'set-availability',
                    'apply-settings', 'fix-site', 'update-domains', 'reset-terminal',
                    'add-database', 'rotate-database-password', 'delete-database'));
ALTER TABLE operation_actions DROP CONSTRAINT operation_actions_action_check;
ALTER TABLE operation_actions ADD CONSTRAINT operation_actions_action_check
    CHECK (action IN ('create-directory', 'ensure-service', 'put-routes', 'restart-service',
                      'remove-routes', 'remove-service', 'remove-terminal', 'remove-directory',
                      'ensure-databases', 'drop-databases', 'forget-site'));
