#!/usr/bin/env bash
# Re-captures the fixtures in test/fixtures/openlineage/: runs the real clients (send_events.py, then
# dbt-ol seed + dbt-ol run on test/clients/dbt) against capture_server.py on 127.0.0.1 and copies what
# arrived, one pretty-printed NNN.json per event in arrival order, plus requests.jsonl (path + headers).
# Needs the venv that .ci/openlineage.sh makes.
set -euo pipefail
cd "$(dirname "$0")/../../.."
venv="${LINEAGE_AUDIT_CLIENTS_DIR:-$HOME/.cache/lineage-audit/clients}/openlineage"
py="$venv/bin/python"
work="$(mktemp -d)"
server_pid=""
stop_server() {
  if [ -n "$server_pid" ]; then
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
    server_pid=""
  fi
}
trap 'stop_server; rm -rf "$work"' EXIT

# capture NAME COMMAND...: runs COMMAND with OPENLINEAGE_URL set to a fresh capture server, then
# replaces test/fixtures/openlineage/NAME with what the server received.
capture() {
  local name="$1" out="$work/$1"
  shift
  "$py" test/clients/openlineage/capture_server.py "$out" >"$work/$name.url" 2>"$work/$name.server.log" &
  server_pid=$!
  for _ in $(seq 100); do grep -q listening "$work/$name.url" 2>/dev/null && break; sleep 0.1; done
  OPENLINEAGE_URL="$(sed -n 's/^listening on //p' "$work/$name.url")" "$@"
  stop_server
  local n
  n="$(ls "$out" | grep -c '^[0-9]*\.json$' || true)"
  if [ "$n" -eq 0 ]; then
    echo "capture $name: no event arrived" >&2
    return 1
  fi
  local dest="test/fixtures/openlineage/$name"
  mkdir -p "$dest"
  rm -f "$dest"/*.json "$dest/requests.jsonl"
  cp "$out"/*.json "$out/requests.jsonl" "$dest/"
  echo "capture $name: $n events -> $dest"
}

export OPENLINEAGE_API_KEY=test-token
capture python-client "$py" test/clients/openlineage/send_events.py

dbt_events() {
  (
    cd test/clients/dbt && rm -rf target logs &&
      PATH="$venv/bin:$PATH" dbt-ol seed && PATH="$venv/bin:$PATH" dbt-ol run
  ) >"$work/dbt.log" 2>&1 || { cat "$work/dbt.log" >&2; return 1; }
  # dbt-ol only logs a failed POST and exits with dbt's code: look for its warning.
  if grep -q "failed to emit" "$work/dbt.log"; then
    cat "$work/dbt.log" >&2
    return 1
  fi
}
capture dbt dbt_events
# dbt's output (and the DuckDB file) would otherwise be left for prettier --check to trip on.
rm -rf test/clients/dbt/target test/clients/dbt/logs
