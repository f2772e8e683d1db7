DROP INDEX site_domains_host;
DROP INDEX site_domains_site_host;
DROP INDEX site_domains_verified_host;
DELETE FROM site_domains d WHERE verified_at IS NULL
  AND EXISTS (SELECT 1 FROM site_domains o WHERE o.host = d.host AND o.id <> d.id);
ALTER TABLE site_domains ADD CONSTRAINT site_domains_host_key UNIQUE (host);
