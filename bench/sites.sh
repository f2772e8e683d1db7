#!/usr/bin/env bash
# Sites benchmark (issue: sites end to end): from the create-site server-function call to the
# first 200 from the site's address — 20 static and 20 dynamic (busybox) sites, p50/p95 — and
# the dashboard's SSR throughput for a member of 500 sites (wrk, 2 threads, 50 connections).
# Targets: static p95 <= 0.5 s, dynamic p95 <= 3 s.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
command -v wrk >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null
. bench/lib.sh
start_director

now() { date +%s%N; }
create_and_wait() { # name kind -> milliseconds to first 200
  local name=$1 kind=$2 start code
  start=$(now)
  fn_call create_site "name=$name&kind=$kind&image=busybox&purpose=project&description=" >/dev/null
  for _ in $(seq 3000); do
    code=$(curl -s -o /dev/null -w '%{http_code}' -H "Host: $name.localhost" "http://127.0.0.1:$edge_port/")
    [[ $code == 200 ]] && break
    sleep 0.01
  done
  [[ $code == 200 ]] || { echo "$name never answered" >&2; exit 1; }
  echo $(( ($(now) - start) / 1000000 ))
}
percentiles() { sort -n | awk '{v[NR]=$1} END {p50=v[int((NR+1)/2)]; i=int(NR*0.95+0.999); if (i>NR) i=NR; printf "p50 %d ms  p95 %d ms  max %d ms\n", p50, v[i], v[NR]}'; }

printf 'static  (20): '; for i in $(seq 20); do create_and_wait "st$i" static; done | percentiles
printf 'dynamic (20): '; for i in $(seq 20); do create_and_wait "dy$i" dynamic; done | percentiles

# 460 more static sites, then the dashboard of their member.
for i in $(seq 21 480); do
  fn_call create_site "name=st$i&kind=static&image=busybox&purpose=project&description=" >/dev/null
done
sites=$(curl -s -H "Origin: $base" -H 'Accept: application/json' -H "Cookie: $cookie" -X POST "$base/fn/my_sites" | grep -o '"id"' | wc -l)
out=$(wrk -t2 -c50 -d20s --latency -H 'Accept: text/html' -H "Cookie: $cookie" "$base/")
printf 'dashboard with %s sites: %s req/s, p50 %s, p99 %s\n' "$sites" \
  "$(awk '/^Requests\/sec/ {print $2}' <<<"$out")" "$(awk '$1=="50%" {print $2}' <<<"$out")" "$(awk '$1=="99%" {print $2}' <<<"$out")"
