#!/usr/bin/env bash
# Resume after a crash (issue: a brand-new machine): a static and a dynamic site are created
# and Director is killed (-9) at once, mid-operation; started again on the same data directory,
# it must serve both within 10 s of the restart. Prints the time from the restart to each
# site's first 200.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
. bench/lib.sh
start_director
now() { date +%s%N; }
first_200() { # name start -> milliseconds from start to the site's first 200
  local code
  for _ in $(seq 1200); do
    code=$(curl -s -o /dev/null -w '%{http_code}' -H "Host: $1.localhost" "http://127.0.0.1:$edge_port/")
    [[ $code == 200 ]] && { echo $(( ($(now) - $2) / 1000000 )); return; }
    sleep 0.025
  done
  echo "$1 never answered" >&2; exit 1
}
fn_call create_site "name=crashst&kind=static&image=busybox&purpose=project&description=" >/dev/null
fn_call create_site "name=crashdy&kind=dynamic&image=busybox&purpose=project&description=" >/dev/null
kill -9 "$pid"; wait "$pid" 2>/dev/null || true
restart=$(now)
serve_director
printf 'after kill -9 mid-create and a restart: static %s ms, dynamic %s ms (goal < 10000)\n' \
  "$(first_200 crashst "$restart")" "$(first_200 crashdy "$restart")"
