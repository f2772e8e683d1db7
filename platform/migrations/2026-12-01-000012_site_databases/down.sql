ALTER TABLE operation_actions DROP CONSTRAINT operation_actions_action_check;
ALTER TABLE operation_actions ADD CONSTRAINT operation_actions_action_check
    CHECK (action IN ('create-directory', 'ensure-service', 'put-routes', 'restart-service',
                      'remove-routes', 'remove-service', 'remove-terminal', 'remove-directory',
                      'forget-site'));
ALTER TABLE operations DROP CONSTRAINT operations_kind_check;
ALTER TABLE operations ADD CONSTRAINT operations_kind_check
    CHECK (kind IN ('create-site', 'delete-site', 'restart-site', 'set-availability',
                    'apply-settings', 'fix-site', 'update-domains', 'reset-terminal'));
DROP TABLE sql_history;
DROP TABLE site_databases;
