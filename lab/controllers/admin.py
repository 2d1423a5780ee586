"""The controllers' admin HTTP API on 127.0.0.1 (clock, synchronous reconciles, status).

- ``GET /status``: clock, enabled controllers, cached object counts, queue, timers, stats.
- ``POST /clock`` ``{"mode": "manual"|"real", "now"?: RFC3339}``: switch the clock (``now`` sets a manual clock).
- ``POST /clock/advance`` ``{"seconds": N}``: advance the manual clock, firing timers in order and
  reconciling until quiescent; answers when done.
- ``POST /reconcile``: one synchronous full pass (relist everything, reconcile until quiescent).
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from lab.controllers.clock import format_time, parse_time


def make_server(ctl, host: str = "127.0.0.1", port: int = 0) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        server_version = "lab-controllers/1"

        def log_message(self, fmt, *args):  # quiet
            return

        def _send(self, code: int, body: dict) -> None:
            data = json.dumps(body, sort_keys=True).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _body(self) -> dict:
            length = int(self.headers.get("Content-Length") or 0)
            if not length:
                return {}
            data = json.loads(self.rfile.read(length) or b"{}")
            if not isinstance(data, dict):
                raise ValueError("the request body must be a JSON object")
            return data

        def do_GET(self):
            if self.path.split("?")[0] in ("/status", "/"):
                self._send(200, ctl.status())
            elif self.path == "/healthz":
                self._send(200, {"ok": True})
            else:
                self._send(404, {"error": f"no such endpoint {self.path}"})

        def do_POST(self):
            path = self.path.split("?")[0]
            try:
                body = self._body()
                if path == "/clock":
                    mode = body.get("mode", ctl.clock.mode)
                    with ctl.lock:
                        if mode == "manual":
                            now = parse_time(body.get("now")) if body.get("now") else None
                            if ctl.clock.mode == "manual" and now is None:
                                pass
                            else:
                                ctl.clock.set_manual(now)
                        elif mode == "real":
                            ctl.clock.set_real()
                        else:
                            raise ValueError(f"mode must be 'manual' or 'real', not {mode!r}")
                    ctl.wake.set()
                    self._send(200, {"mode": ctl.clock.mode, "now": format_time(ctl.clock.now())})
                elif path == "/clock/advance":
                    seconds = float(body.get("seconds", 0))
                    if seconds < 0:
                        raise ValueError("seconds must not be negative")
                    self._send(200, ctl.advance(seconds))
                elif path == "/reconcile":
                    self._send(200, ctl.reconcile_once())
                else:
                    self._send(404, {"error": f"no such endpoint {path}"})
            except ValueError as exc:
                self._send(409 if "real mode" in str(exc) else 400, {"error": str(exc)})
            except Exception as exc:
                self._send(500, {"error": f"{type(exc).__name__}: {exc}"})

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    return server


def serve_in_thread(server: ThreadingHTTPServer) -> threading.Thread:
    thread = threading.Thread(target=server.serve_forever, name="controllers-admin", daemon=True)
    thread.start()
    return thread
