#!/usr/bin/env bash
# SSH and SFTP benchmark (issue: SSH and SFTP), against a release `director` with the real
# OpenSSH client: login to first output (`ssh site@host 'echo ready'`: TCP, key exchange, key
# authentication, a shell in the site's terminal container) p50/p95 over 50 logins, and SFTP
# upload and download of a 200 MB file, beside OpenSSH's own sftp-server on the same machine
# (run directly over a pipe with `sftp -D`, so without any SSH transport: an upper bound).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
[[ -x /usr/lib/openssh/sftp-server ]] || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssh-sftp-server >/dev/null
. bench/lib.sh
start_director
port=$(sed -n 's/^SSH and SFTP: ssh -p \([0-9]*\) .*/\1/p' "$data/out")
work=$(mktemp -d /tmp/director-bench-ssh.XXXXXX)
trap 'stop_director; rm -rf "$work"' EXIT
ssh-keygen -q -t ed25519 -N '' -f "$work/key"
curl -s -o /dev/null -H "Origin: $base" -H 'Accept: application/json' -H "Cookie: $cookie" \
  --data-urlencode "name=bench" --data-urlencode "public_key@$work/key.pub" "$base/fn/add_ssh_key"
fn_call create_site "name=sshbench&kind=static&image=busybox&purpose=project&description=" >/dev/null
for _ in $(seq 300); do
  fn_call my_sites "" | grep -q '"state":"running"' && break
  sleep 0.2
done
opts=(-i "$work/key" -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o IdentitiesOnly=yes -o LogLevel=ERROR)

percentiles() { sort -n | awk '{v[NR]=$1} END {p50=v[int((NR+1)/2)]; i=int(NR*0.95+0.999); if (i>NR) i=NR; printf "p50 %d ms  p95 %d ms  max %d ms\n", p50, v[i], v[NR]}'; }
printf 'login to first output (50): '
for _ in $(seq 50); do
  start=$(date +%s%N)
  out=$(ssh -p "$port" "${opts[@]}" sshbench@127.0.0.1 'echo ready')
  [[ $out == ready ]] || { echo "login failed: $out" >&2; exit 1; }
  echo $(( ($(date +%s%N) - start) / 1000000 ))
done | percentiles

head -c 200M /dev/urandom >"$work/big"
mkdir -p "$work/openssh"
rate() { awk -v s="$1" 'BEGIN { printf "%.1f", 209.7152 / s }'; }
timed() { local start; start=$(date +%s%N); "$@" >/dev/null; awk -v n="$(($(date +%s%N) - start))" 'BEGIN { printf "%.3f", n / 1e9 }'; }
up=$(timed sftp -P "$port" "${opts[@]}" -b <(echo "put $work/big big") sshbench@127.0.0.1)
down=$(timed sftp -P "$port" "${opts[@]}" -b <(echo "get big $work/back") sshbench@127.0.0.1)
cmp -s "$work/big" "$work/back" || { echo "the downloaded file differs" >&2; exit 1; }
(cd "$work/openssh" && ref_up=$(timed sftp -D /usr/lib/openssh/sftp-server -b <(echo "put $work/big big")) &&
  ref_down=$(timed sftp -D /usr/lib/openssh/sftp-server -b <(echo "get big $work/back2")) &&
  echo "$ref_up $ref_down" >"$work/ref")
read -r ref_up ref_down <"$work/ref"
printf 'SFTP 200 MB upload:   Director %s MB/s, OpenSSH sftp-server %s MB/s (ratio %s)\n' \
  "$(rate "$up")" "$(rate "$ref_up")" "$(awk -v a="$ref_up" -v b="$up" 'BEGIN { printf "%.2f", a / b }')"
printf 'SFTP 200 MB download: Director %s MB/s, OpenSSH sftp-server %s MB/s (ratio %s)\n' \
  "$(rate "$down")" "$(rate "$ref_down")" "$(awk -v a="$ref_down" -v b="$down" 'BEGIN { printf "%.2f", a / b }')"
