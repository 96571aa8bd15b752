#!/usr/bin/env bash
# The OpenLineage intake's client tests use real clients: openlineage-python (its HTTP transport) and
# openlineage-dbt's dbt-ol wrapper around dbt-core + dbt-duckdb, in one venv outside the clone, so a
# second run on the same machine is quick. test/clients/openlineage/README.md says how they are used.
# dbt-core stays on 1.11: 1.12 requires dbt-core-experimental-parser, whose build downloads a wheel
# from outside the package registries, which fails here. duckdb is the version dbt-duckdb's own "md"
# extra pins.
set -euo pipefail
cd "$(dirname "$0")/.."
dir="${LINEAGE_AUDIT_CLIENTS_DIR:-$HOME/.cache/lineage-audit/clients}"
venv="$dir/openlineage"
pins=(
  'openlineage-python==1.54.0'
  'openlineage-dbt==1.54.0'
  'dbt-core==1.11.16'
  'dbt-duckdb==1.11.1'
  'duckdb==1.5.5'
)
mkdir -p "$dir"

# Skip the install when the venv already imports everything at the pinned versions.
check='
import sys
from importlib.metadata import version
import openlineage.client, openlineage.dbt, dbt.adapters.duckdb, duckdb
for pin in sys.argv[1:]:
    name, want = pin.split("==")
    if version(name) != want:
        sys.exit(f"{name} {version(name)} != {want}")
'
if ! "$venv/bin/python" -c "$check" "${pins[@]}" >/dev/null 2>&1; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "${pins[@]}"
  "$venv/bin/python" -c "$check" "${pins[@]}"
fi
echo "openlineage clients in $venv: $("$venv/bin/python" -c '
from importlib.metadata import version
print(", ".join(f"{n} {version(n)}" for n in ("openlineage-python", "openlineage-dbt", "dbt-core", "dbt-duckdb", "duckdb")))')"
