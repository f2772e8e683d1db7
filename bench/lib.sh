# Shared by the benchmarks that need a running Director: builds it (release), makes sure the
# engine and images are there, starts `director serve` in a fresh data directory and Docker
# namespace with an admin `bench`, signs in, and cleans everything up on exit.
# After `start_director`: $bin $data $ns $pid $base (manager URL) $edge_port $cookie.
# shellcheck shell=bash

start_director() {
  # Director as the README runs it: on its embedded database (a test server's URL in the
  # environment would be another setup).
  unset DATABASE_URL
  scripts/build --release >/dev/null 2>&1
  eval "$(scripts/docker-engine)"
  export DOCKER_HOST
  scripts/images >/dev/null
  bin="$CARGO_TARGET_DIR/release/director"
  data=$(mktemp -d /tmp/director-bench.XXXXXX)
  ns="bench$$"
  edge_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  pid=
  trap stop_director EXIT
  echo 'bench password 123' | "$bin" --data-dir "$data" user create --username bench --admin >/dev/null 2>>"$data/log"
  serve_director
  cookie=$(curl -s -D - -o /dev/null -H "Origin: $base" -H 'Accept: application/json' \
    --data 'username=bench&password=bench+password+123' "$base/fn/login" |
    sed -n 's/^set-cookie: \(director_session=[^;]*\).*/\1/ip')
  # The edge must be up before timing starts.
  for _ in $(seq 600); do
    [[ $(curl -s -o /dev/null -w '%{http_code}' -H 'Host: none.localhost' "http://127.0.0.1:$edge_port/") == 404 ]] && break
    sleep 0.1
  done
}

# Starts `director serve` on the benchmark's data directory and namespace (on $listen when set,
# with the flags in the array $serve_args); waits until it says where it runs: $pid, $base.
serve_director() {
  : >"$data/out"
  DIRECTOR_NAMESPACE=$ns DIRECTOR_LOG=warn "$bin" --data-dir "$data" serve --listen "${listen:-127.0.0.1:0}" \
    --edge-listen "127.0.0.1:$edge_port" --ssh-listen 127.0.0.1:0 ${serve_args[@]+"${serve_args[@]}"} \
    >"$data/out" 2>>"$data/log" &
  pid=$!
  for _ in $(seq 300); do grep -q 'running at' "$data/out" 2>/dev/null && break; sleep 0.1; done
  base=$(sed -n 's/^Director is running at //p' "$data/out")
}

stop_director() {
  [[ -n "$pid" ]] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  local label="--filter label=director.namespace=$ns"
  /usr/bin/docker service ls -q $label | xargs -r /usr/bin/docker service rm >/dev/null
  /usr/bin/docker ps -aq $label | xargs -r /usr/bin/docker rm -f >/dev/null
  sleep 2
  /usr/bin/docker network ls -q $label | xargs -r /usr/bin/docker network rm >/dev/null || true
  /usr/bin/docker secret ls -q $label | xargs -r /usr/bin/docker secret rm >/dev/null || true
  # Everything mounted beneath the data directory (the edge's views, the sites' disks), deepest
  # first.
  findmnt -rno TARGET | grep "^$data/" | sort -r | xargs -r umount -l 2>/dev/null || true
  rm -rf "$data"
}

# Calls a server function as the signed-in admin: fn_call NAME FORM-DATA
fn_call() {
  curl -s -H "Origin: $base" -H 'Accept: application/json' -H "Cookie: $cookie" --data "$2" "$base/fn/$1"
}
