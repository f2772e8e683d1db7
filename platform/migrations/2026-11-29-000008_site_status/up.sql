-- What Director measures and finds about each site, apart from what is asked of it: how much
-- disk its files take (as last measured; NULL: not yet) and since when they have been over the
-- server's quota (NULL: they are not), and why the reconciler could not correct it at its last
-- pass (empty: it could, or had nothing to do).
CREATE TABLE site_status (
    site_id INTEGER PRIMARY KEY REFERENCES sites (id) ON DELETE CASCADE,
    disk_bytes BIGINT,
    disk_measured_at TIMESTAMPTZ,
    disk_over_since TIMESTAMPTZ,
    reconcile_problem TEXT NOT NULL DEFAULT ''
);
