#!/usr/bin/env bash
# Sites' databases benchmark (issue: per-site databases): from the add_database call to the
# site's first request that uses the database answering 200 — 10 Python sites whose app reads
# DATABASE_URL — p50/p95; the SQL console's round trip of `SELECT 1` through its server
# function (p50 of 50); the memory of each idle database server.
# Targets: add → first use p95 <= 3 s; console p50 <= 20 ms.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
. bench/lib.sh
start_director

now() { date +%s%N; }
percentiles() { sort -n | awk '{v[NR]=$1} END {p50=v[int((NR+1)/2)]; i=int(NR*0.95+0.999); if (i>NR) i=NR; printf "p50 %s ms  p95 %s ms  max %s ms\n", p50, v[i], v[NR]}'; }
get() { curl -s -o /dev/null -w '%{http_code}' -H "Host: $1.localhost" "http://127.0.0.1:$edge_port/"; }

# The app answers 200 only once its query went through, 503 before.
app='import http.server, os
import psycopg2
class Page(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        try:
            with psycopg2.connect(os.environ["DATABASE_URL"], connect_timeout=2) as c, c.cursor() as cur:
                cur.execute("SELECT 1")
            code = 200
        except Exception:
            code = 503
        self.send_response(code)
        self.send_header("Content-Length", "0")
        self.end_headers()
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer(("", int(os.environ["PORT"])), Page).serve_forever()
'

ids=()
for i in $(seq 10); do
  # The server function answers the new site's id.
  id=$(fn_call create_site "name=db$i&kind=dynamic&image=python&purpose=project&description=")
  [[ $id =~ ^[0-9]+$ ]] || { echo "creating db$i: $id" >&2; exit 1; }
  ids+=("$id")
done
# Every site serves its starter page, then runs the app (a restart picks up the new run.sh).
for i in $(seq 10); do
  for _ in $(seq 1200); do [[ $(get "db$i") == 200 ]] && break; sleep 0.1; done
  dir="$data/sites/$(printf '%04d' "${ids[$((i - 1))]}")"
  uid=$((100000 + ${ids[$((i - 1))]}))
  printf '%s' "$app" >"$dir/app.py"
  printf '#!/bin/sh\nexec python3 /site/app.py\n' >"$dir/run.sh"
  chown "$uid:$uid" "$dir/app.py" "$dir/run.sh"
  fn_call restart_site "id=${ids[$((i - 1))]}" >/dev/null
done
for i in $(seq 10); do
  for _ in $(seq 1200); do [[ $(get "db$i") == 503 ]] && break; sleep 0.1; done
done

# The servers' first start (and their images) are not what is measured: one site's database
# is added first, untimed.
fn_call add_database "site=${ids[0]}&kind=postgresql" >/dev/null
for _ in $(seq 3000); do [[ $(get db1) == 200 ]] && break; sleep 0.1; done

printf 'add database -> first use (9): '
for i in $(seq 2 10); do
  start=$(now)
  fn_call add_database "site=${ids[$((i - 1))]}&kind=postgresql" >/dev/null
  code=
  for _ in $(seq 3000); do code=$(get "db$i"); [[ $code == 200 ]] && break; sleep 0.02; done
  [[ $code == 200 ]] || { echo "db$i never used its database" >&2; exit 1; }
  echo $(( ($(now) - start) / 1000000 ))
done | percentiles

printf 'SQL console SELECT 1 (50): '
for _ in $(seq 50); do
  curl -s -o /dev/null -w '%{time_total}\n' -H "Origin: $base" -H 'Accept: application/json' -H "Cookie: $cookie" \
    --data "site=${ids[0]}&kind=postgresql&sql=SELECT+1" "$base/fn/run_sql"
done | awk '{printf "%d\n", $1 * 1000}' | percentiles

# MariaDB too, then both idle for a while.
fn_call add_database "site=${ids[0]}&kind=mysql" >/dev/null
sleep 20
for engine in postgres mariadb; do
  container=$(/usr/bin/docker ps -q --filter "label=com.docker.swarm.service.name=${ns}_director_$engine")
  printf 'idle %s server: %s\n' "$engine" "$(/usr/bin/docker stats --no-stream --format '{{.MemUsage}}' "$container")"
done
