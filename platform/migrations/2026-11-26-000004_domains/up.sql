-- Domains of members' own, routed to a site once their ownership is verified (a TXT record
-- `_director.<host>` holding the token) or an admin added them.
CREATE TABLE site_domains (
    id BIGSERIAL PRIMARY KEY,
    site_id INTEGER NOT NULL REFERENCES sites (id) ON DELETE CASCADE,
    host TEXT NOT NULL UNIQUE,
    token TEXT NOT NULL,
    verified_at TIMESTAMPTZ,
    -- 'txt' or 'admin'; empty while unverified.
    verified_by TEXT NOT NULL DEFAULT '',
    last_check_at TIMESTAMPTZ,
    last_check_error TEXT NOT NULL DEFAULT '',
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX site_domains_site ON site_domains (site_id);
