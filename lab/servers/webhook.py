"""A webhook receiver that records Alertmanager notifications.

Alertmanager POSTs its webhook payload (``{"version": "4", "status": ..., "alerts": [...]}``)
to ``url``; each payload is appended, with the time it arrived, to a JSON file.
``GET alerts_url`` returns the recorded notifications as a JSON list, ``DELETE alerts_url``
clears them. Run in the foreground with ``python -m lab.servers.webhook --port P --file F``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from lab.services import LabContext, Service, free_port

HOOK_PATH = "/hook"
ALERTS_PATH = "/alerts"


class Recorder:
    """The notifications received so far, persisted to ``path`` after every change."""

    def __init__(self, path: Path):
        self.path = path
        self.lock = threading.Lock()
        self.items: list[dict] = []
        if path.exists():
            try:
                self.items = json.loads(path.read_text() or "[]")
            except ValueError:
                self.items = []

    def _save(self) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.items))
        os.replace(tmp, self.path)

    def add(self, path: str, payload) -> None:
        with self.lock:
            self.items.append({"received_at": time.time(), "path": path, "payload": payload})
            self._save()

    def snapshot(self) -> list[dict]:
        with self.lock:
            return list(self.items)

    def clear(self) -> int:
        with self.lock:
            count = len(self.items)
            self.items = []
            self._save()
            return count


def make_handler(recorder: Recorder):
    class Handler(BaseHTTPRequestHandler):
        server_version = "lab-webhook/1"

        def log_message(self, fmt, *args):
            sys.stderr.write(f"{self.log_date_time_string()} {fmt % args}\n")

        def _send(self, status: int, body) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            path = self.path.split("?", 1)[0]
            if path == ALERTS_PATH:
                self._send(200, recorder.snapshot())
            elif path == "/healthz":
                self._send(200, {"status": "ok"})
            else:
                self._send(404, {"error": f"no such path {path}"})

        def do_DELETE(self):
            if self.path.split("?", 1)[0] == ALERTS_PATH:
                self._send(200, {"deleted": recorder.clear()})
            else:
                self._send(404, {"error": "no such path"})

        def do_POST(self):
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            try:
                payload = json.loads(raw or b"null")
            except ValueError:
                self._send(400, {"error": "body is not JSON"})
                return
            recorder.add(self.path, payload)
            self._send(200, {"status": "recorded"})

    return Handler


def serve(port: int, path: Path, host: str = "127.0.0.1") -> None:
    server = ThreadingHTTPServer((host, port), make_handler(Recorder(path)))
    server.daemon_threads = True
    try:
        server.serve_forever()
    finally:
        server.server_close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lab.servers.webhook", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--file", required=True, help="JSON file the notifications are recorded in")
    args = parser.parse_args(argv)
    serve(args.port, Path(args.file), args.host)
    return 0


class WebhookService(Service):
    name = "webhook"

    def start(self, ctx: LabContext) -> dict:
        data = ctx.data_dir(self.name)
        port = free_port()
        record = data / "notifications.json"
        record.unlink(missing_ok=True)
        proc = ctx.spawn(self.name, [ctx.python, "-m", "lab.servers.webhook", "--port", str(port), "--file", str(record)],
                         env={"PYTHONPATH": _pythonpath()})
        base = f"http://127.0.0.1:{port}"
        ctx.wait_http(f"{base}/healthz", self.name, proc=proc)
        return {"url": base + HOOK_PATH, "alerts_url": base + ALERTS_PATH, "file": str(record), "port": port}


def _pythonpath() -> str:
    root = str(Path(__file__).resolve().parents[2])
    current = os.environ.get("PYTHONPATH")
    return f"{root}{os.pathsep}{current}" if current else root


if __name__ == "__main__":
    sys.exit(main())
