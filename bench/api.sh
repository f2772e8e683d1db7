#!/usr/bin/env bash
# REST API benchmark (issue: REST API and tokens): `GET /api/v1/sites` with a member's token
# (a member of 500 sites) and with an admin's token with the admin scope (`all=true`, 10,000
# sites), wrk 2 threads, 50 connections, 20 s each — goal >= 2,000 req/s with p99 < 20 ms on 2
# cores, whatever the number of sites (paging) — then 1,000 static sites created in a row
# through the API, each waited for until it is served by the edge (total time, sites/s).
# The 10,000 listed sites are rows written straight into the database (never made on the
# engine: the listing is what is measured); the created ones are made for real, each with its
# own disk: on this machine, making 1,000 filled the 42 GB left free before it ended (session
# 15), so CREATES (default 200) says how many, and what they take on disk is printed.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
command -v wrk >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null
. bench/lib.sh
# The benchmark measures the API, not its allowance per token.
serve_args=(--api-rate 1000000)
start_director

token() { # the signed-in cookie's account makes a token: token COOKIE SCOPE ADMIN
  curl -s -H "Origin: $base" -H 'Accept: application/json' -H "Cookie: $1" \
    --data "name=bench&days=30&access=$2&${3:+admin=on&}sites=" "$base/fn/create_api_token" |
    sed -n 's/.*"secret":"\([^"]*\)".*/\1/p'
}
sql() { psql -q -h "$data/run" -U director director -c "$1" >/dev/null; }

admin_token=$(token "$cookie" write on)
fn_call create_user 'username=member&display_name=&email=&password=member+password+123&role=user' >/dev/null
member_cookie=$(curl -s -D - -o /dev/null -H "Origin: $base" -H 'Accept: application/json' \
  --data 'username=member&password=member+password+123' "$base/fn/login" |
  sed -n 's/^set-cookie: \(director_session=[^;]*\).*/\1/ip')
member_token=$(token "$member_cookie" read '')
[[ -n $admin_token && -n $member_token ]] || { echo "no tokens" >&2; exit 1; }

sql "INSERT INTO sites (name, purpose, kind, image_id)
       SELECT 'listed' || n, 'project', 'static', (SELECT id FROM images WHERE name = 'busybox')
       FROM generate_series(1, 10000) n;
     INSERT INTO site_members (site_id, user_id)
       SELECT s.id, (SELECT id FROM users WHERE username = 'member')
       FROM sites s WHERE s.name LIKE 'listed%' ORDER BY s.id LIMIT 500;
     ANALYZE;" # as autovacuum would soon: plans made on an empty table's statistics measure nothing

measure() { # label URL TOKEN
  local out
  out=$(wrk -t2 -c50 -d"${DURATION:-20s}" --latency -H "Authorization: Bearer $3" "$2")
  printf '%s: %s req/s, p50 %s, p99 %s, non-2xx %s\n' "$1" \
    "$(awk '/^Requests\/sec/ {print $2}' <<<"$out")" "$(awk '$1=="50%" {print $2}' <<<"$out")" \
    "$(awk '$1=="99%" {print $2}' <<<"$out")" "$(awk '/Non-2xx/ {print $NF}' <<<"$out" | grep . || echo 0)"
}
measure "GET /api/v1/sites, member of 500" "$base/api/v1/sites" "$member_token"
measure "GET /api/v1/sites?all=true, admin, 10000 sites" "$base/api/v1/sites?all=true" "$admin_token"

start=$(date +%s%N)
for i in $(seq "${CREATES:-200}"); do
  curl -sf -o /dev/null -H "Authorization: Bearer $admin_token" -H 'Content-Type: application/json' \
    --data "{\"name\":\"made$i\",\"kind\":\"static\",\"image\":\"busybox\"}" "$base/api/v1/sites"
  for _ in $(seq 3000); do
    [[ $(curl -s -o /dev/null -w '%{http_code}' -H "Host: made$i.localhost" "http://127.0.0.1:$edge_port/") == 200 ]] && break
    sleep 0.01
  done
done
elapsed=$(( ($(date +%s%N) - start) / 1000000 ))
printf 'the sites directory takes %s on disk\n' "$(du -sh "$data" 2>/dev/null | cut -f1)"
printf '%s static sites created through the API, each served before the next: %d.%03d s, %s sites/s\n' \
  "${CREATES:-200}" $((elapsed / 1000)) $((elapsed % 1000)) \
  "$(awk -v n="${CREATES:-200}" -v ms="$elapsed" 'BEGIN {printf "%.1f", n * 1000 / ms}')"
