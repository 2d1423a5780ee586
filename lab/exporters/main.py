"""``python -m lab exporters``: serve the generated metrics on 127.0.0.1.

``/metrics`` has the Istio, cAdvisor and kube-state-metrics series, ``/metrics/app`` the
platform application's (scraped as job ``machine-native-ops``), ``/debug/flows`` the
traffic flows in JSON. The cluster is re-read every ``--refresh`` seconds; counters are
integrated on every scrape (see ``lab.exporters.model``).
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
import traceback
from dataclasses import asdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from lab.exporters.model import Generator, Snapshot, exposition


class Exporter:
    """The generator shared by the HTTP handler and the refresh thread."""

    def __init__(self, kubeconfig: str | None, state: dict | None = None, refresh: float = 1.0):
        self.kubeconfig = kubeconfig
        self.refresh = refresh
        self.lock = threading.Lock()
        self.generator = Generator(Snapshot(), state)
        self.last_error: str | None = None
        self.refreshed = threading.Event()
        self._stop = threading.Event()
        self._api = None
        self._rendered: tuple[float, dict] | None = None

    def refresh_once(self) -> None:
        if not self.kubeconfig:
            self.refreshed.set()
            return
        from lab.exporters.cluster import api_client, read_snapshot  # noqa: PLC0415 - kubernetes only when a cluster is used

        if self._api is None:
            self._api = api_client(self.kubeconfig)
        snapshot = read_snapshot(self._api)
        with self.lock:
            # Integrate up to now with the old objects before the new ones apply.
            self.generator.advance(time.time())
            self.generator.set_snapshot(snapshot)
        self.refreshed.set()

    def run_refresh(self) -> None:
        while not self._stop.is_set():
            try:
                self.refresh_once()
                self.last_error = None
            except Exception as exc:  # keep serving the last snapshot
                if self.last_error != str(exc):
                    traceback.print_exc()
                self.last_error = str(exc)
            self._stop.wait(self.refresh)

    def stop(self) -> None:
        self._stop.set()

    def metrics(self, app: bool) -> str:
        """The exposition text; /metrics and /metrics/app scraped together share one render (within 0.5 s)."""
        with self.lock:
            now = time.time()
            if self._rendered is None or now - self._rendered[0] > 0.5:
                self.generator.advance(now)
                self._rendered = (now, self.generator.render(now))
            return exposition(self._rendered[1], app=app)

    def flows(self) -> list[dict]:
        with self.lock:
            return [asdict(f) for f in self.generator.cluster.flows()]

    def state(self) -> dict:
        with self.lock:
            return json.loads(json.dumps(self.generator.state()))


def make_handler(exporter: Exporter):
    class Handler(BaseHTTPRequestHandler):
        server_version = "lab-exporters/1"

        def log_message(self, fmt, *args):  # scraped every second: stay quiet
            return

        def _send(self, status: int, body: str, ctype: str) -> None:
            data = body.encode()
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            path = self.path.split("?", 1)[0]
            if path in ("/metrics", "/metrics/app"):
                self._send(200, exporter.metrics(app=path == "/metrics/app"), "text/plain; version=0.0.4; charset=utf-8")
            elif path == "/debug/flows":
                self._send(200, json.dumps(exporter.flows(), indent=2), "application/json")
            elif path == "/healthz":
                # Serving already; the first read of the cluster may still be under way (counters start then).
                body = {"status": "ok", "cluster_read": exporter.refreshed.is_set(), "last_error": exporter.last_error}
                self._send(200, json.dumps(body), "application/json")
            else:
                self._send(404, json.dumps({"error": f"no such path {path}"}), "application/json")

    return Handler


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9100)
    parser.add_argument("--kubeconfig", help="kubeconfig of the API emulator (default: <dir>/kubeconfig)")
    parser.add_argument("--dir", help="lab directory (to find the kubeconfig)")
    parser.add_argument("--state-file", help="JSON counters to start from (written by lab.history) and saved to on exit")
    parser.add_argument("--refresh", type=float, default=1.0, help="seconds between reads of the cluster")


def run(args: argparse.Namespace) -> int:
    kubeconfig = args.kubeconfig or (str(Path(args.dir) / "kubeconfig") if args.dir else None)
    state = None
    state_file = Path(args.state_file) if args.state_file else None
    if state_file and state_file.exists():
        state = json.loads(state_file.read_text() or "{}")
    exporter = Exporter(kubeconfig, state, args.refresh)
    thread = threading.Thread(target=exporter.run_refresh, name="refresh", daemon=True)
    thread.start()
    server = ThreadingHTTPServer((args.host, args.port), make_handler(exporter))
    server.daemon_threads = True

    def _terminate(signum, frame):
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, _terminate)
    print(f"exporters serving http://{args.host}:{args.port}/metrics (cluster: {kubeconfig or 'none'})", flush=True)
    try:
        server.serve_forever()
    finally:
        exporter.stop()
        server.server_close()
        if state_file:
            state_file.write_text(json.dumps(exporter.state()))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lab.exporters.main")
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
