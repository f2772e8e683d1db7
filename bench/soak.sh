#!/usr/bin/env bash
# Soak (issue: races and crash windows): random changes from three people (create, delete,
# restart, off/on air, domains, limits, fix) against one set of sites while the reconciler
# runs and workers are killed at random points; at the end every site's state, service,
# routes and files must agree with the database. CI runs the same test with 60 changes; this
# runs it with DIRECTOR_SOAK_CHANGES (default 3000) and prints its figures.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
eval "$(scripts/docker-engine)"
export DOCKER_HOST
: "${DATABASE_URL:?DATABASE_URL must point at a PostgreSQL server (scripts/test-postgres DIR starts one)}"
DIRECTOR_SOAK_CHANGES=${DIRECTOR_SOAK_CHANGES:-3000} cargo nextest run -p platform \
  -E 'test(random_changes_with_workers_killed_midway_converge_on_the_database)' --no-capture 2>&1 |
  grep -E '^soak|panicked|FAIL'
