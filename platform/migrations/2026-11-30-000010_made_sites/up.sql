-- Sites served before `provisioned_at` existed count as made (a database that applied 000009
-- before its backfill covered them): otherwise a change to them, a disabling above all, would
-- be skipped as if they were half-made.
UPDATE sites SET provisioned_at = now()
WHERE provisioned_at IS NULL AND state IN ('running', 'stopped');
