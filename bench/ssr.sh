#!/usr/bin/env bash
# SSR throughput and idle memory of the manager (issue: foundation).
#
# Builds the release server, starts it with its own embedded PostgreSQL in a temporary data
# directory, creates an admin, then drives it with wrk (2 threads, 50 connections, 20 s each):
#   1. the login page (anonymous: SSR only),
#   2. the dashboard of a signed-in user (SSR + session lookup in PostgreSQL).
# Prints requests/s and latency percentiles, and director's resident memory when idle
# (PostgreSQL runs in its own processes and is not counted).
# Targets on 2 cores: >= 2,000 req/s with p99 < 20 ms; idle RSS < 50 MB.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
command -v wrk >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null
scripts/build --release >/dev/null
bin="$CARGO_TARGET_DIR/release/director"
duration=${DURATION:-20s}
connections=${CONNECTIONS:-50}

data=$(mktemp -d /tmp/director-bench.XXXXXX)
log="$data/director.log"
pid=
cleanup() {
  [[ -n "$pid" ]] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  rm -rf "$data"
}
trap cleanup EXIT

echo 'bench password 123' | "$bin" --data-dir "$data" user create --username bench --admin >/dev/null 2>>"$log"
DIRECTOR_LOG=warn "$bin" --data-dir "$data" serve --listen 127.0.0.1:0 --edge off >"$data/out" 2>>"$log" &
pid=$!
for _ in $(seq 100); do grep -q 'running at' "$data/out" 2>/dev/null && break; sleep 0.1; done
base=$(sed -n 's/^Director is running at //p' "$data/out")
[[ -n "$base" ]] || { cat "$log"; exit 1; }

cookie=$(curl -s -D - -o /dev/null -H "Origin: $base" -H 'Accept: application/json' \
  --data 'username=bench&password=bench+password+123' "$base/fn/login" |
  sed -n 's/^set-cookie: \(director_session=[^;]*\).*/\1/ip')
[[ -n "$cookie" ]] || { echo "sign-in failed" >&2; exit 1; }

run() { # name, path, extra wrk args...
  local name=$1 path=$2; shift 2
  local out
  out=$(wrk -t2 -c"$connections" -d"$duration" --latency -H 'Accept: text/html' "$@" "$base$path")
  local rps p50 p99 non2xx
  rps=$(awk '/^Requests\/sec/ {print $2}' <<<"$out")
  p50=$(awk '$1=="50%" {print $2}' <<<"$out")
  p99=$(awk '$1=="99%" {print $2}' <<<"$out")
  non2xx=$(awk '/Non-2xx/ {print $NF}' <<<"$out")
  printf '%-22s %12s %10s %10s %10s\n' "$name" "$rps" "$p50" "$p99" "${non2xx:-0}"
}

printf '%-22s %12s %10s %10s %10s\n' page req/s p50 p99 non-2xx
run "login (anonymous)" /login
run "dashboard (signed in)" / -H "Cookie: $cookie"

sleep 2
rss_kb=$(awk '/^VmRSS/ {print $2}' "/proc/$pid/status")
printf 'director idle RSS after load: %.1f MB\n' "$(echo "$rss_kb / 1024" | bc -l)"
kill "$pid"; wait "$pid" 2>/dev/null || true
DIRECTOR_LOG=warn "$bin" --data-dir "$data" serve --listen 127.0.0.1:0 --edge off >"$data/out2" 2>>"$log" &
pid=$!
for _ in $(seq 100); do grep -q 'running at' "$data/out2" 2>/dev/null && break; sleep 0.1; done
sleep 2
rss_kb=$(awk '/^VmRSS/ {print $2}' "/proc/$pid/status")
printf 'director idle RSS at start: %.1f MB\n' "$(echo "$rss_kb / 1024" | bc -l)"
