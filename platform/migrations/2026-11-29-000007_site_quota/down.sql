ALTER TABLE users DROP COLUMN site_quota;
