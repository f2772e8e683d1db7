-- Every column that stores one of model's enums takes only its stored names (these four had no
-- such check): a row written by something else is refused when written, not found when read.
ALTER TABLE certificates ADD CONSTRAINT certificates_state_check
    CHECK (state IN ('pending', 'issued', 'failed'));
ALTER TABLE operations ADD CONSTRAINT operations_kind_check
    CHECK (kind IN ('create-site', 'delete-site', 'restart-site', 'set-availability',
                    'apply-settings', 'fix-site', 'update-domains', 'reset-terminal'));
ALTER TABLE operation_actions ADD CONSTRAINT operation_actions_action_check
    CHECK (action IN ('create-directory', 'ensure-service', 'put-routes', 'restart-service',
                      'remove-routes', 'remove-service', 'remove-terminal', 'remove-directory',
                      'forget-site'));
ALTER TABLE site_domains ADD CONSTRAINT site_domains_verified_by_check
    CHECK (verified_by IN ('', 'txt', 'admin'));
