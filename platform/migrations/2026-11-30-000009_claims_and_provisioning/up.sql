-- A worker's claim on an operation: a number drawn when it claims it. Every write the worker
-- makes afterwards names it, so a worker whose claim was taken over (it went silent for too
-- long) writes nothing more, and the one that took over never runs after it unawares.
CREATE SEQUENCE operation_claims;
ALTER TABLE operations ADD COLUMN claim BIGINT;

-- When the site was last made whole by a create or fix operation (NULL: never). Only a made
-- site is served or corrected by the reconciler; the last operation succeeding says nothing
-- about it (a domain change on a site whose create failed succeeds too).
-- Sites already served (running or stopped, whatever their operations say: before this,
-- any operation that succeeded could mark a site running) count as made, so that a later
-- change, a disabling above all, still reaches them.
ALTER TABLE sites ADD COLUMN provisioned_at TIMESTAMPTZ;
UPDATE sites SET provisioned_at = now()
WHERE state IN ('running', 'stopped') OR EXISTS (
    SELECT 1 FROM operations o
    WHERE o.site_id = sites.id AND o.kind IN ('create-site', 'fix-site') AND o.state = 'done'
);
