#!/usr/bin/env bash
# Sign-in through an identity provider and notifications by email, against a release Director
# with a real provider (npm oidc-provider, end2end/oidc-provider.mjs) and a real mail server
# (npm maildev). Prints:
# - the sign-in round trip through the provider (Director's start door, the provider's login
#   page posted, the code exchanged, the session made), p50 and p95 over ROUNDS;
# - the outbox's throughput: one request for a site told to APPROVERS approvers at once, emails
#   per second until the mail server has them all;
# - the delay from an event (a member added to a site) to its email at the mail server, p50 and
#   p95 over EVENTS events one after the other (each email awaited before the next event).
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
  for helper in "${helpers[@]}"; do kill "$helper" 2>/dev/null || true; done
  rm -rf "$work"
  if [[ -n ${data:-} ]]; then stop_director; fi
}
trap cleanup EXIT

node_modules/.bin/maildev --smtp "$smtp" --web "$mail_web" --ip 127.0.0.1 --web-ip 127.0.0.1 >/dev/null 2>&1 &
helpers+=($!)
mail_api="http://127.0.0.1:$mail_web/api/email"
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
# start_director's own trap stops Director only.
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
    # Its login form (its action an absolute URL, or a path).
    form=$(sed -n 's/.*action="\([^"]*\)".*/\1/p' "$work/page" | head -1)
    [[ $form == http* ]] || form="http://127.0.0.1:$oidc$form"
    next=$(curl -s -o /dev/null -w '%{redirect_url}' -c "$provider_jar" -b "$provider_jar" \
      --data 'prompt=login&login=dana-sub&password=anything' "$form")
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
curl -s -X DELETE "$mail_api/all" >/dev/null
emails() { curl -s "$mail_api" | python3 -c 'import json, sys; print(len(json.load(sys.stdin)))'; }
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
curl -s -X DELETE "$mail_api/all" >/dev/null
# One event at a time: the member is added, and the mail server asked every 20 ms until it has
# their email (maildev's own time of arrival is the message's Date header, to the second).
: >"$work/delays"
for i in $(seq "$events"); do
  started=$(now_ms)
  fn_call add_member "site=$site&username=member$i" >/dev/null
  for _ in $(seq 500); do
    curl -s "$mail_api" | grep -q "member$i@bench.example" && break
    sleep 0.02
  done
  echo $(($(now_ms) - started)) >>"$work/delays"
done
printf 'event to email: p50 %s ms, p95 %s ms (%s events)\n' \
  "$(percentile 50 <"$work/delays")" "$(percentile 95 <"$work/delays")" "$events"
