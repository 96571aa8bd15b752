"""What a pandas/Jupyter user does with clickhouse-connect against the analyst interface.

Usage: python query.py URL USER PASSWORD. Prints one JSON object: the server version, a count,
a DataFrame's shape, columns and dtypes, and the refusal of a statement that is not a read.
"""

import json
import sys
from urllib.parse import urlparse

import clickhouse_connect

url, user, password = sys.argv[1], sys.argv[2], sys.argv[3]
parsed = urlparse(url)
client = clickhouse_connect.get_client(host=parsed.hostname, port=parsed.port, username=user, password=password)
out = {"server_version": client.server_version}
out["events"] = client.query("SELECT uniqExact(event_id) AS n FROM events_v1").result_rows[0][0]
df = client.query_df(
    "SELECT service, uniqExact(subject_id) AS users FROM violation_subjects_v1 WHERE rule_id = {rule:String} GROUP BY service ORDER BY service",
    parameters={"rule": "security-contact-not-for-marketing"},
)
out["frame"] = {
    "shape": list(df.shape),
    "columns": list(df.columns),
    "dtypes": [str(t) for t in df.dtypes],
    "users": int(df["users"].sum()) if len(df) else 0,
}
try:
    client.command("SYSTEM STOP MERGES")
    out["refused"] = None
except Exception as error:  # clickhouse_connect.driver.exceptions.DatabaseError
    out["refused"] = str(error).splitlines()[0]
print(json.dumps(out, default=str))
