#!/usr/bin/env bash
# Sites benchmark (issue: sites end to end): from the create-site server-function call to the
# first 200 from the site's address — 20 static and 20 dynamic (busybox) sites, p50/p95 — and
# the dashboard's SSR throughput for a member of 500 sites (wrk, 2 threads, 50 connections).
# Targets: static p95 <= 0.5 s, dynamic p95 <= 3 s.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
command -v wrk >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null
scripts/build --release >/dev/null 2>&1
eval "$(scripts/docker-engine)"
export DOCKER_HOST
scripts/images >/dev/null
bin="$CARGO_TARGET_DIR/release/director"
data=$(mktemp -d /tmp/director-bench-sites.XXXXXX)
ns="bench$$"
edge_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
pid=
cleanup() {
  [[ -n "$pid" ]] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  label="--filter label=director.namespace=$ns"
  /usr/bin/docker service ls -q $label | xargs -r /usr/bin/docker service rm >/dev/null
  /usr/bin/docker ps -aq $label | xargs -r /usr/bin/docker rm -f >/dev/null
  sleep 2
  /usr/bin/docker network ls -q $label | xargs -r /usr/bin/docker network rm >/dev/null || true
  umount "$data/edge/sites" 2>/dev/null || true
  rm -rf "$data"
}
trap cleanup EXIT

echo 'bench password 123' | "$bin" --data-dir "$data" user create --username bench --admin >/dev/null 2>>"$data/log"
DIRECTOR_NAMESPACE=$ns DIRECTOR_LOG=warn "$bin" --data-dir "$data" serve --listen 127.0.0.1:0 \
  --edge-listen "127.0.0.1:$edge_port" >"$data/out" 2>>"$data/log" &
pid=$!
for _ in $(seq 300); do grep -q 'running at' "$data/out" 2>/dev/null && break; sleep 0.1; done
base=$(sed -n 's/^Director is running at //p' "$data/out")
cookie=$(curl -s -D - -o /dev/null -H "Origin: $base" -H 'Accept: application/json' \
  --data 'username=bench&password=bench+password+123' "$base/fn/login" |
  sed -n 's/^set-cookie: \(director_session=[^;]*\).*/\1/ip')
# The edge must be up before timing starts.
for _ in $(seq 600); do
  [[ $(curl -s -o /dev/null -w '%{http_code}' -H 'Host: none.localhost' "http://127.0.0.1:$edge_port/") == 404 ]] && break
  sleep 0.1
done

now() { date +%s%N; }
create_and_wait() { # name kind -> milliseconds to first 200
  local name=$1 kind=$2 start code
  start=$(now)
  curl -s -o /dev/null -H "Origin: $base" -H 'Accept: application/json' -H "Cookie: $cookie" \
    --data "name=$name&kind=$kind&image=busybox&purpose=project&description=" "$base/fn/create_site"
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
  curl -s -o /dev/null -H "Origin: $base" -H 'Accept: application/json' -H "Cookie: $cookie" \
    --data "name=st$i&kind=static&image=busybox&purpose=project&description=" "$base/fn/create_site"
done
sites=$(curl -s -H "Origin: $base" -H 'Accept: application/json' -H "Cookie: $cookie" -X POST "$base/fn/my_sites" | grep -o '"id"' | wc -l)
out=$(wrk -t2 -c50 -d20s --latency -H 'Accept: text/html' -H "Cookie: $cookie" "$base/")
printf 'dashboard with %s sites: %s req/s, p50 %s, p99 %s\n' "$sites" \
  "$(awk '/^Requests\/sec/ {print $2}' <<<"$out")" "$(awk '$1=="50%" {print $2}' <<<"$out")" "$(awk '$1=="99%" {print $2}' <<<"$out")"
