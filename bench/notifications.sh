#!/usr/bin/env bash
# Sign-in through an identity provider and notifications by email, against a release Director
# with a real provider (npm oidc-provider, end2end/oidc-provider.mjs) and a real mail server
# (npm maildev). Prints:
# - the sign-in round trip through the provider (Director's start door, the provider's login
#   page posted, the code exchanged, the session made), p50 and p95 over ROUNDS;
# - the outbox's throughput: one request for a site told to APPROVERS approvers at once, emails
#   per second until the mail server has them all;
# - the delay from an event (a member added to a site) to its email at the mail server, p50 and
#   p95 over EVENTS events a few hundred milliseconds apart.
# Usage: bench/notifications.sh [ROUNDS=30] [APPROVERS=200] [EVENTS=50]
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
. bench/lib.sh
rounds=${1:-30}
approvers=${2:-200}
events=${3:-50}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
now_ms() { date +%s%3N; }
# The p-th percentile of the numbers on standard input.
percentile() { sort -n | awk -v p="$1" '{ a[NR] = $1 } END { i = int(NR * p / 100 + 0.999); if (i < 1) i = 1; print a[i] }'; }

work=$(mktemp -d /tmp/director-bench-notify.XXXXXX)
smtp=$(free_port)
mail_web=$(free_port)
oidc=$(free_port)
listen_port=$(free_port)
helpers=()
cleanup() {
  stop_director
  for helper in "${helpers[@]}"; do kill "$helper" 2>/dev/null || true; done
  rm -rf "$work"
}

node_modules/.bin/maildev --smtp "$smtp" --web "$mail_web" --ip 127.0.0.1 --web-ip 127.0.0.1 >/dev/null 2>&1 &
helpers+=($!)
mail_api="http://127.0.0.1:$mail_web"
cat >"$work/provider.json" <<EOF
{"clients": [{"client_id": "director", "client_secret": "bench secret",
  "redirect_uris": ["http://127.0.0.1:$listen_port/auth/oidc/sso/callback"]}],
 "accounts": {"dana-sub": {"preferred_username": "dana", "name": "Dana", "email": "dana@bench.example", "groups": []}}}
EOF
echo 'bench secret' >"$work/secret"
node end2end/oidc-provider.mjs "$oidc" "$work/provider.json" >"$work/provider.log" 2>&1 &
helpers+=($!)
for _ in $(seq 100); do grep -q ready "$work/provider.log" && break; sleep 0.1; done

listen="127.0.0.1:$listen_port"
serve_args=(--smtp-url "smtp://127.0.0.1:$smtp" --smtp-from 'Director <director@bench.example>'
  --oidc-issuer "http://127.0.0.1:$oidc" --oidc-client-id director --oidc-client-secret-file "$work/secret"
  --oidc-name Bench --oidc-scopes email,profile,groups)
start_director
trap cleanup EXIT

# --- Sign-in through the provider --------------------------------------------------------
# One round, as a browser: Director's start door, the provider's redirects and its login form
# (any password; the login is the person's subject), back to Director's callback. Fresh
# cookies each time, so every round signs in at the provider too.
sign_in() {
  local director_jar provider_jar next answer status form
  director_jar=$(mktemp -p "$work") provider_jar=$(mktemp -p "$work")
  next=$(curl -s -o /dev/null -w '%{redirect_url}' -c "$director_jar" -b "$director_jar" "$base/auth/oidc/sso/start")
  for _ in $(seq 10); do
    if [[ $next == "$base"* ]]; then
      answer=$(curl -s -o /dev/null -w '%{http_code} %{redirect_url}' -c "$director_jar" -b "$director_jar" "$next")
      [[ $answer == "303 $base/" ]] || { echo "the sign-in failed: $answer" >&2; return 1; }
      grep -q director_session "$director_jar" || { echo "no session" >&2; return 1; }
      return 0
    fi
    answer=$(curl -s -o "$work/page" -w '%{http_code} %{redirect_url}' -c "$provider_jar" -b "$provider_jar" "$next")
    status=${answer%% *}
    if [[ $status == 30* ]]; then
      next=${answer#* }
      continue
    fi
    form=$(sed -n 's/.*action="\([^"]*\)".*/\1/p' "$work/page" | head -1)
    next=$(curl -s -o /dev/null -w '%{redirect_url}' -c "$provider_jar" -b "$provider_jar" \
      --data 'prompt=login&login=dana-sub&password=anything' "http://127.0.0.1:$oidc$form")
  done
  echo "the sign-in did not come back to Director" >&2
  return 1
}
sign_in # the first makes the account and reads the provider's discovery
: >"$work/sign-ins"
for _ in $(seq "$rounds"); do
  started=$(now_ms)
  sign_in
  echo $(($(now_ms) - started)) >>"$work/sign-ins"
done
printf 'sign-in through the provider: p50 %s ms, p95 %s ms (%s rounds)\n' \
  "$(percentile 50 <"$work/sign-ins")" "$(percentile 95 <"$work/sign-ins")" "$rounds"

# --- The outbox's throughput ---------------------------------------------------------------
fn_call set_site_policy 'creation=request&steps=approver-and-admin' >/dev/null
for i in $(seq "$approvers"); do
  fn_call create_user "username=approver$i&display_name=&email=approver$i%40bench.example&password=approver+password+$i&role=approver" >/dev/null
done
fn_call create_user 'username=asker&display_name=&email=asker%40bench.example&password=asker+password+12&role=user' >/dev/null
asker=$(curl -s -D - -o /dev/null -H "Origin: $base" -H 'Accept: application/json' \
  --data 'username=asker&password=asker+password+12' "$base/fn/login" |
  sed -n 's/^set-cookie: \(director_session=[^;]*\).*/\1/ip')
curl -s -X DELETE "$mail_api/email/all" >/dev/null
emails() { curl -s "$mail_api/email" | python3 -c 'import json, sys; print(len(json.load(sys.stdin)))'; }
started=$(now_ms)
curl -s -o /dev/null -H "Origin: $base" -H 'Accept: application/json' -H "Cookie: $asker" \
  --data 'name=bench-request&description=&purpose=project&kind=static&image=busybox&reason=a+benchmark&approver=' \
  "$base/fn/submit_request"
for _ in $(seq 1200); do
  [[ $(emails) -ge $approvers ]] && break
  sleep 0.1
done
took=$(($(now_ms) - started))
got=$(emails)
printf 'outbox: %s emails in %s ms: %s emails/s\n' "$got" "$took" \
  "$(python3 -c "print(round($got / ($took / 1000), 1))")"

# --- From an event to its email ------------------------------------------------------------
fn_call set_site_policy 'creation=direct&steps=approver-and-admin' >/dev/null
fn_call create_site 'name=bench-notices&kind=static&image=busybox&purpose=project&description=' >/dev/null
site=$(fn_call my_sites '' | python3 -c 'import json, sys; print([s["id"] for s in json.load(sys.stdin) if s["name"] == "bench-notices"][0])')
for i in $(seq "$events"); do
  fn_call create_user "username=member$i&display_name=&email=member$i%40bench.example&password=member+password+$i&role=user" >/dev/null
done
curl -s -X DELETE "$mail_api/email/all" >/dev/null
: >"$work/events"
for i in $(seq "$events"); do
  echo "member$i@bench.example $(now_ms)" >>"$work/events"
  fn_call add_member "site=$site&username=member$i" >/dev/null
  sleep 0.3
done
for _ in $(seq 300); do
  [[ $(emails) -ge $events ]] && break
  sleep 0.1
done
curl -s "$mail_api/email" >"$work/emails.json"
python3 - "$work/events" "$work/emails.json" <<'EOF' >"$work/delays"
import datetime, json, sys
sent = dict(line.split() for line in open(sys.argv[1]))
for email in json.load(open(sys.argv[2])):
    to = email["to"][0]["address"]
    if to in sent:
        received = datetime.datetime.fromisoformat(email["time"].replace("Z", "+00:00"))
        print(int(received.timestamp() * 1000) - int(sent[to]))
EOF
printf 'event to email: p50 %s ms, p95 %s ms (%s of %s events)\n' \
  "$(percentile 50 <"$work/delays")" "$(percentile 95 <"$work/delays")" "$(wc -l <"$work/delays")" "$events"
