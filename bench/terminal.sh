#!/usr/bin/env bash
# Browser terminal benchmark (issue: web terminal), through the real websocket of a release
# `director`: keystroke echo latency p50/p99 over 1,000 keystrokes, `cat` of a 100 MB file to
# the client, and 200 concurrent terminals on 20 sites with their echo p99 and the server's
# memory. Targets: echo p99 < 15 ms, >= 20 MB/s, 200 concurrent held.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
. bench/lib.sh
cargo build --release -p server --example terminal_bench >/dev/null 2>&1
start_director

ids=()
for i in $(seq 20); do
  fn_call create_site "name=term$i&kind=static&image=busybox&purpose=project&description=" >/dev/null
done
# Every site running (their create operations done) before timing.
for _ in $(seq 600); do
  running=$(fn_call my_sites "" | grep -o '"state":"running"' | wc -l)
  [[ $running -ge 20 ]] && break
  sleep 0.2
done
mapfile -t ids < <(fn_call my_sites "" | grep -o '"id":[0-9]*' | cut -d: -f2)
"$CARGO_TARGET_DIR/release/examples/terminal_bench" "$base" "$cookie" "$pid" "${ids[@]}"
