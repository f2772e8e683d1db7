#!/usr/bin/env bash
# Images benchmark (#20): a recipe build adding Debian packages (jq, tree) to a Python site, cold
# and cached, each from the save to the site serving the new image; a redeploy of an unchanged
# image (a restart) until its new task serves, p50/p95 over 10; and the failed requests of a
# load through the edge (wrk, far above 200 requests/s) during 10 consecutive redeploys, which
# must be 0.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
command -v wrk >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null
. bench/lib.sh
start_director
# The images this run built go with it, so that the next run's first build is cold again.
trap 'stop_director; /usr/bin/docker image ls -q --filter "label=director.namespace=$ns" | xargs -r /usr/bin/docker rmi -f >/dev/null 2>&1 || true' EXIT

now() { date +%s%N; }
get() { curl -s -H 'Host: img.localhost' "http://127.0.0.1:$edge_port/"; }
percentiles() { sort -n | awk '{v[NR]=$1} END {p50=v[int((NR+1)/2)]; i=int(NR*0.95+0.999); if (i>NR) i=NR; printf "p50 %d ms  p95 %d ms  max %d ms\n", p50, v[i], v[NR]}'; }
# Waits until the site's page matches $1 (a grep pattern) and differs from $2.
wait_page() {
  local page
  for _ in $(seq 6000); do
    page=$(get || true)
    if grep -q -- "$1" <<<"$page" && [[ $page != "$2" ]]; then return 0; fi
    sleep 0.05
  done
  echo "the site never served '$1'" >&2
  exit 1
}

id=$(fn_call create_site "name=img&kind=dynamic&image=python&purpose=project&description=")
[[ $id =~ ^[0-9]+$ ]] || { echo "creating the site: $id" >&2; exit 1; }
for _ in $(seq 3000); do [[ $(curl -s -o /dev/null -w '%{http_code}' -H 'Host: img.localhost' "http://127.0.0.1:$edge_port/") == 200 ]] && break; sleep 0.1; done
dir="$data/sites/$(printf '%04d' "$id")"
# Each task says who it is (a new id per start) and whether it has jq.
printf '#!/bin/sh\n{ echo "task $(cat /proc/sys/kernel/random/uuid)"; jq --version 2>/dev/null || echo "no jq"; } > /tmp/index.html\nexec busybox httpd -f -p "$PORT" -h /tmp\n' >"$dir/run.sh"
chown "$((100000 + id)):$((100000 + id))" "$dir/run.sh"
fn_call restart_site "id=$id" >/dev/null
wait_page 'no jq' ''

# Waits until no build or operation of the site is under way (a deploy's operation goes on a
# few seconds after the new task serves: the engine watches it, the old task stops).
settle() {
  for _ in $(seq 1200); do
    fn_call site_image "site=$id" | python3 -c '
import json, sys
page = json.load(sys.stdin)
busy = [x for x in page["builds"] + page["operations"] if x["state"] in ("queued", "running")]
sys.exit(1 if busy else 0)' && return 0
    sleep 0.1
  done
  echo "the site's operations never ended" >&2
  exit 1
}
# The first line of each page the site answers with for a second: the tasks serving it.
seen_tasks() {
  for _ in $(seq 20); do get | head -n 1; sleep 0.05; done | sort -u
}
# Calls a server function, then waits until a task that did not serve before answers with a
# page matching a pattern: timed PATTERN FUNCTION FORM -> milliseconds; then lets the site
# settle (the old task stops, the operation ends).
timed() {
  local start seen page ms
  settle
  seen=$(seen_tasks)
  start=$(now)
  fn_call "$2" "$3" >/dev/null
  for _ in $(seq 6000); do
    page=$(get || true)
    if grep -q -- "$1" <<<"$page" && ! grep -qxF -- "$(head -n 1 <<<"$page")" <<<"$seen"; then
      ms=$(( ($(now) - start) / 1000000 ))
      settle
      echo "$ms"
      return 0
    fi
    sleep 0.02
  done
  echo "no new task served '$1'" >&2
  exit 1
}
restart() { timed '^task' restart_site "id=$id"; }
# The first build names a package set no earlier run left in the engine's cache (this run's
# images go at its end); the second changes only a later step, so apt's layer is cached.
printf 'recipe build, one Debian package, cold:   %s ms\n' \
  "$(timed '^jq-' save_recipe "site=$id&apt=jq+tree&pip=&npm=&setup=echo+first-$$")"
printf 'recipe build, one Debian package, cached: %s ms\n' \
  "$(timed '^jq-' save_recipe "site=$id&apt=jq+tree&pip=&npm=&setup=echo+second-$$")"
times=$(for _ in $(seq 10); do restart; done)
printf 'redeploy of an unchanged image -> new task serving (10): %s\n' "$(percentiles <<<"$times")"

# The load runs from before the first redeploy until the last has settled (wrk prints its
# figures when interrupted).
wrk -t1 -c8 -d600s -H 'Host: img.localhost' "http://127.0.0.1:$edge_port/" >"$data/wrk" 2>&1 &
load=$!
sleep 2
for _ in $(seq 10); do restart >/dev/null; done
sleep 2
kill -INT "$load"
wait "$load" || true
requests=$(sed -n 's/^ *\([0-9]*\) requests in.*/\1/p' "$data/wrk")
rate=$(sed -n 's/^Requests\/sec: *\([0-9.]*\).*/\1/p' "$data/wrk")
non2xx=$(sed -n 's/^ *Non-2xx or 3xx responses: *\([0-9]*\).*/\1/p' "$data/wrk")
socket=$(sed -n 's/^ *Socket errors: connect \([0-9]*\), read \([0-9]*\), write \([0-9]*\), timeout \([0-9]*\).*/\1 \2 \3 \4/p' "$data/wrk" | awk '{print $1 + $2 + $3 + $4}')
failed=$(( ${non2xx:-0} + ${socket:-0} ))
printf 'load during 10 redeploys: %s requests (%s/s), %d failed (non-2xx %s, socket errors %s)\n' \
  "$requests" "$rate" "$failed" "${non2xx:-0}" "${socket:-0}"
[[ $failed == 0 ]] || { cat "$data/wrk" >&2; exit 1; }
