DELETE FROM operations WHERE kind IN ('build-image', 'update-variables');
ALTER TABLE operation_actions DROP CONSTRAINT operation_actions_action_check;
ALTER TABLE operation_actions ADD CONSTRAINT operation_actions_action_check
    CHECK (action IN ('create-directory', 'ensure-service', 'put-routes', 'restart-service',
                      'remove-routes', 'remove-service', 'remove-terminal', 'remove-directory',
                      'ensure-databases', 'drop-databases', 'forget-site'));
ALTER TABLE operations DROP CONSTRAINT operations_kind_check;
ALTER TABLE operations ADD CONSTRAINT operations_kind_check
    CHECK (kind IN ('create-site', 'delete-site', 'restart-site', 'set-availability',
                    'apply-settings', 'fix-site', 'update-domains', 'reset-terminal',
                    'add-database', 'rotate-database-password', 'delete-database'));
DROP TABLE build_policy;
DROP TABLE site_variables;
ALTER TABLE sites DROP COLUMN built_image;
DROP TABLE site_builds;
DROP TABLE site_recipes;
ALTER TABLE images DROP COLUMN allows_recipe, DROP COLUMN allows_dockerfile, DROP COLUMN has_pip, DROP COLUMN has_npm;
