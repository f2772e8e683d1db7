ALTER TABLE sites DROP COLUMN provisioned_at;
ALTER TABLE operations DROP COLUMN claim;
DROP SEQUENCE operation_claims;
