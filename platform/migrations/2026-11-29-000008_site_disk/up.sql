-- How much disk each site's files take, as last measured (NULL: not yet), and since when it
-- has been over the server's quota (NULL: it is not).
ALTER TABLE sites ADD COLUMN disk_bytes BIGINT;
ALTER TABLE sites ADD COLUMN disk_measured_at TIMESTAMPTZ;
ALTER TABLE sites ADD COLUMN disk_over_since TIMESTAMPTZ;
