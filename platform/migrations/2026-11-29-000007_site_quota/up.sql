-- The most sites a member may belong to, set by an admin; NULL: the server's default.
ALTER TABLE users ADD COLUMN site_quota INTEGER CHECK (site_quota >= 0);
