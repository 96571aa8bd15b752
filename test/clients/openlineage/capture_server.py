"""A tiny stand-in for an OpenLineage HTTP endpoint, to capture what real clients send.

    python capture_server.py OUT_DIR [--port 0] [--status 201]

Listens on 127.0.0.1 (port 0: any free port), prints `listening on http://127.0.0.1:PORT` once ready,
and answers every POST with --status (201 like Marquez) and an empty body. Each POST is written to
OUT_DIR as NNN.json (the body, pretty-printed, numbered in arrival order from 001; gzip bodies are
decompressed) and one line of OUT_DIR/requests.jsonl: {"n", "method", "path", "headers", "bytes"}.
Other methods answer 405. Stops on SIGINT/SIGTERM. Standard library only.
"""

from __future__ import annotations

import argparse
import gzip
import json
import signal
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--status", type=int, default=201)
    args = parser.parse_args()
    args.out_dir.mkdir(parents=True, exist_ok=True)
    lock = threading.Lock()
    count = [0]

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            body = gzip.decompress(raw) if self.headers.get("Content-Encoding") == "gzip" else raw
            with lock:
                count[0] += 1
                n = count[0]
                try:
                    text = json.dumps(json.loads(body), indent=2, sort_keys=True) + "\n"
                except ValueError:
                    text = body.decode("utf-8", "replace")
                (args.out_dir / f"{n:03d}.json").write_text(text, encoding="utf-8")
                record = {
                    "n": n,
                    "method": "POST",
                    "path": self.path,
                    "headers": dict(self.headers.items()),
                    "bytes": len(raw),
                }
                with open(args.out_dir / "requests.jsonl", "a", encoding="utf-8") as log:
                    log.write(json.dumps(record) + "\n")
            self.send_response(args.status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def _not_allowed(self) -> None:
            self.send_response(405)
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_GET = do_PUT = do_DELETE = do_PATCH = _not_allowed  # noqa: N815

        def log_message(self, format: str, *fmt_args: object) -> None:  # noqa: A002
            sys.stderr.write("capture: " + (format % fmt_args) + "\n")

    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    print(f"listening on http://127.0.0.1:{server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
