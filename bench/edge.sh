#!/usr/bin/env bash
# Edge benchmark (issue: edge routing): route changes with 10, 1,000 and 10,000 routes in
# place — time to a 200 (p50/p95 over 50 changes), Caddy's CPU per change, Caddy's memory.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
eval "$(scripts/docker-engine)"
export DOCKER_HOST
cargo run -q --release -p orchestrator --example edge_bench
