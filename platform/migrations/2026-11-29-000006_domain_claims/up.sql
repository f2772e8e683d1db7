-- A host may be claimed by several sites while none has proved it: an unverified claim must
-- not keep the real owner (or an admin) from adding the name. Only one claim per host can be
-- verified, and a site claims a host once.
ALTER TABLE site_domains DROP CONSTRAINT site_domains_host_key;
CREATE UNIQUE INDEX site_domains_verified_host ON site_domains (host) WHERE verified_at IS NOT NULL;
CREATE UNIQUE INDEX site_domains_site_host ON site_domains (site_id, host);
CREATE INDEX site_domains_host ON site_domains (host);
