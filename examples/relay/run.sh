#!/usr/bin/env bash
# The relay guide on one machine, without Docker: a mock provider standing in for OpenAI, a relay
# gateway that holds the provider key, and an edge gateway that holds none, all on loopback.
# It runs the guide's three parts in turn:
#
#   1. the basic setup: the guide's curl request to the edge, answered through the relay;
#   2. auth on the relay: the relay refuses calls without an API key, the edge sends its key;
#   3. dynamic credentials: the provider key travels with the request, edge -> relay -> provider.
#
# Usage: examples/relay/run.sh      (from anywhere; builds the binaries first)
# Ports: EDGE_PORT (3000), RELAY_PORT (3001), MOCK_PORT (3030). Part 2 needs PostgreSQL's server
# binaries (initdb, pg_ctl) for the API keys; it starts a throwaway server in a temporary folder.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
EDGE_PORT="${EDGE_PORT:-3000}"
RELAY_PORT="${RELAY_PORT:-3001}"
MOCK_PORT="${MOCK_PORT:-3030}"

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
fail() { echo "run.sh: $*" >&2; exit 1; }

work="$(mktemp -d)"
pids=()
pg_ctl_cmd=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ ${#pg_ctl_cmd[@]} -gt 0 ]; then
    "${pg_ctl_cmd[@]}" -m immediate stop >/dev/null 2>&1 || true
    rm -rf "$pg_dir"
  fi
  rm -rf "$work"
}
trap cleanup EXIT

cargo build --quiet --manifest-path "$root/Cargo.toml" --workspace --bins
bin="${CARGO_TARGET_DIR:-$root/target}/debug"

# The committed configs use the default ports; copies with the chosen ones are what runs.
config() {
  mkdir -p "$work/$1"
  sed -e "s/127.0.0.1:3001/127.0.0.1:$RELAY_PORT/; s/127.0.0.1:3030/127.0.0.1:$MOCK_PORT/" \
    "$here/$1/tensorzero.toml" >"$work/$1/tensorzero.toml"
  echo "$work/$1/tensorzero.toml"
}

wait_http() { # URL: waits until it answers
  for _ in $(seq 1 200); do
    curl -s -o /dev/null "$1" && return 0
    sleep 0.05
  done
  fail "nothing answers at $1 (see the logs in $work)"
}

# start NAME PORT ENV... -- ARGS...: runs a gateway in the background, logging to $work/NAME.log.
start() {
  local name="$1" port="$2"
  shift 2
  local envs=()
  while [ "$1" != "--" ]; do envs+=("$1"); shift; done
  shift
  env -u OPENAI_API_KEY -u TENSORZERO_RELAY_API_KEY -u TENSORZERO_POSTGRES_URL \
    -u TENSORZERO_GATEWAY_BIND_ADDRESS "${envs[@]}" \
    "$bin/switchyard" --bind-address "127.0.0.1:$port" "$@" >"$work/$name.log" 2>&1 &
  pids+=($!)
  eval "${name//-/_}_pid=$!"
  wait_http "http://127.0.0.1:$port/live"
}

stop() { # NAME
  local var="${1//-/_}_pid"
  kill "${!var}" && wait "${!var}" 2>/dev/null || true
}

# The guide's request, to the edge.
ask_edge() { # [extra JSON fields]
  curl -sS -w '\nHTTP %{http_code}\n' -X POST "http://127.0.0.1:$EDGE_PORT/inference" \
    -H "Content-Type: application/json" \
    -d '{
      "model_name": "openai::gpt-5-mini",
      "input": {
        "messages": [
          {
            "role": "user",
            "content": "Write a haiku about TensorZero."
          }
        ]
      }'"${1:-}"'
    }'
}

expect_ok() { # OUTPUT
  grep -q '^HTTP 200$' <<<"$1" || fail "expected HTTP 200, got: $1"
  head -n1 <<<"$1" | python3 -c 'import json, sys; assert json.load(sys.stdin)["content"][0]["text"]' 2>/dev/null \
    || fail "no text answer in: $1"
}

# What the provider received on its last call: the model and whose key (never printed).
provider_saw() { # EXPECTED_KEY
  curl -s "http://127.0.0.1:$MOCK_PORT/mock/requests" | python3 -c '
import json, sys
last = json.load(sys.stdin)[-1]
auth = last["headers"].get("authorization", "")
expected = "Bearer " + sys.argv[1]
print("provider received: model", last["body"]["model"] + ",", "the expected key" if auth == expected else "NOT the expected key")
sys.exit(0 if auth == expected else 1)' "$1" || fail "the provider did not receive the expected key"
}

"$bin/mock-provider" --bind "127.0.0.1:$MOCK_PORT" >"$work/mock.log" 2>&1 &
pids+=($!)
wait_http "http://127.0.0.1:$MOCK_PORT/mock/stats"

say "1. Basic setup: the edge relays, only the relay holds OPENAI_API_KEY"
relay_key="sk-relay-only-$(date +%s)"
start relay "$RELAY_PORT" "OPENAI_API_KEY=$relay_key" -- --config-file "$(config relay-config)"
start edge "$EDGE_PORT" -- --config-file "$(config edge-config)"
out="$(ask_edge)"
echo "$out"
expect_ok "$out"
provider_saw "$relay_key"

say "2. Auth on the relay: edges need an API key"
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && ! command -v initdb >/dev/null; then
  fail "part 2 needs PostgreSQL's server binaries (apt-get install postgresql)"
fi
pg_bin="$(dirname "$(ls /usr/lib/postgresql/*/bin/initdb 2>/dev/null | sort | tail -1 || command -v initdb)")"
pg_dir="$(mktemp -d)" # its own folder: the server may run as another user
as_pg=()
if [ "$(id -u)" = 0 ]; then # initdb refuses to run as root
  chown postgres: "$pg_dir"
  as_pg=(runuser -u postgres --)
fi
pg_port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
"${as_pg[@]}" "$pg_bin/initdb" -D "$pg_dir/data" -U postgres --auth=trust --no-sync >"$work/initdb.log"
pg_ctl_cmd=("${as_pg[@]}" "$pg_bin/pg_ctl" -D "$pg_dir/data")
"${pg_ctl_cmd[@]}" -l "$pg_dir/pg.log" -w start \
  -o "-p $pg_port -k $pg_dir -c listen_addresses=127.0.0.1 -c fsync=off" >/dev/null
export TENSORZERO_POSTGRES_URL="postgres://postgres@127.0.0.1:$pg_port/postgres"
"$bin/switchyard" --run-postgres-migrations
edge_key="$("$bin/switchyard" --create-api-key --description "edge gateway of the example")"
echo "created an API key for the edge: ${edge_key:0:18}... (the rest stays secret)"
stop relay
stop edge
start relay "$RELAY_PORT" "OPENAI_API_KEY=$relay_key" "TENSORZERO_POSTGRES_URL=$TENSORZERO_POSTGRES_URL" \
  -- --config-file "$(config relay-config-auth)"
unset TENSORZERO_POSTGRES_URL

echo "-- an edge without a key is refused by the relay:"
start edge "$EDGE_PORT" -- --config-file "$(config edge-config)"
out="$(ask_edge)"
echo "$out"
grep -q '^HTTP 401$' <<<"$out" || fail "the relay should refuse a call without a key: $out"
stop edge

echo "-- the edge with TENSORZERO_RELAY_API_KEY gets through:"
start edge "$EDGE_PORT" "TENSORZERO_RELAY_API_KEY=$edge_key" -- --config-file "$(config edge-config-auth)"
out="$(ask_edge)"
echo "$out"
expect_ok "$out"
provider_saw "$relay_key"
stop relay
stop edge

say "3. Dynamic credentials: the provider key comes with the request"
start relay "$RELAY_PORT" -- --config-file "$(config relay-config-dynamic)"
start edge "$EDGE_PORT" -- --config-file "$(config edge-config)"
request_key="sk-from-the-request-$(date +%s)"
out="$(ask_edge ', "credentials": {"openai_api_key": "'"$request_key"'"}')"
echo "$out"
expect_ok "$out"
provider_saw "$request_key"
echo "-- without the credential, the relay says which one is missing:"
out="$(ask_edge)"
echo "$out"
grep -q 'openai_api_key' <<<"$out" || fail "the error should name the missing credential: $out"
grep -q '^HTTP 200$' <<<"$out" && fail "a call without the credential must fail"

say "All three parts of the relay guide work"
