#!/usr/bin/env bash
# The analyst interface's client tests use real clients: clickhouse-connect (with pandas) in a venv,
# and the official ClickHouse JDBC driver's jars. Both go to one fixed place, outside the clone, so a
# second run on the same machine is quick. test/integration/analyst-clients.test.ts reads them there.
set -euo pipefail
cd "$(dirname "$0")/.."
dir="${LINEAGE_AUDIT_CLIENTS_DIR:-$HOME/.cache/lineage-audit/clients}"
mkdir -p "$dir"

if ! "$dir/py/bin/python" -c 'import clickhouse_connect, pandas' >/dev/null 2>&1; then
  python3 -m venv "$dir/py"
  "$dir/py/bin/pip" install --quiet --disable-pip-version-check 'clickhouse-connect==1.12.0' pandas
fi

if [ ! -f "$dir/jdbc/jdbc-v2-0.10.0.jar" ]; then
  mvn -q -f test/clients/jdbc/pom.xml dependency:copy-dependencies -DoutputDirectory="$dir/jdbc"
fi
echo "analyst clients in $dir: clickhouse-connect $("$dir/py/bin/pip" show clickhouse-connect | sed -n 's/^Version: //p'), $(ls "$dir/jdbc" | grep -c jar) JDBC jars"
