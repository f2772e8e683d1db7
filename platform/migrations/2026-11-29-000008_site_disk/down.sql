ALTER TABLE sites DROP COLUMN disk_over_since;
ALTER TABLE sites DROP COLUMN disk_measured_at;
ALTER TABLE sites DROP COLUMN disk_bytes;
