#!/usr/bin/env bash
# Orchestrator benchmark (issue: orchestrator): ensure -> HTTP p50/p95 over 20 busybox sites,
# and the time to ensure 100 already-running sites. Needs a Docker engine (started if missing).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
eval "$(scripts/docker-engine)"
export DOCKER_HOST
cargo run -q --release -p orchestrator --example ensure_bench
