"""Fixtures of the unit tests: a clean Kubernetes auth environment, and a real Prometheus (Debian package) scraping a tiny exporter run in a thread."""

import json
import math
import os
import shutil
import socket
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest


@pytest.fixture
def clean_kube_env(monkeypatch, tmp_path):
    """No K8S_AUTH_* / KUBECONFIG from the developer's shell, no in-cluster env, an empty HOME."""
    for name in list(os.environ):
        if name.startswith("K8S_AUTH_") or name in ("KUBECONFIG", "KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))


PROMETHEUS_BIN = shutil.which("prometheus") or "/usr/bin/prometheus"

RULES = """
groups:
  - name: unit
    interval: 1s
    rules:
      - record: unit:test_value:sum
        expr: sum(test_value{case="five"})
      - alert: UnitValueHigh
        expr: test_value{case="five"} > 3
        labels:
          severity: warning
        annotations:
          summary: test value is high
"""


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Exporter:
    """Serves ``/metrics`` with gauges whose values the tests control (NaN included)."""

    def __init__(self):
        self.values = {"zero": 0.0, "five": 5.0, "nan": float("nan")}
        exporter = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                lines = ["# TYPE test_value gauge"]
                lines += [f'test_value{{case="{case}"}} {"NaN" if math.isnan(value) else repr(value)}' for case, value in sorted(exporter.values.items())]
                data = ("\n".join(lines) + "\n").encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.address = f"127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def _ready(url, promql):
    """True once ``promql`` returns a series (the scrape and the rules have run)."""
    try:
        with urllib.request.build_opener().open(f"{url}/api/v1/query?query={urllib.parse.quote(promql)}", timeout=2) as response:
            return bool(json.load(response)["data"]["result"])
    except OSError:
        return False


@pytest.fixture(scope="session")
def prometheus_url(tmp_path_factory):
    """URL of a real Prometheus scraping the exporter every second, with one alerting and one recording rule."""
    if not shutil.which(PROMETHEUS_BIN):
        pytest.skip("the prometheus binary is not installed (apt-get install prometheus)")
    exporter = Exporter()
    workdir = tmp_path_factory.mktemp("prometheus")
    (workdir / "rules.yml").write_text(RULES)
    (workdir / "prometheus.yml").write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        f"rule_files:\n  - {workdir / 'rules.yml'}\n"
        f"scrape_configs:\n  - job_name: unit\n    static_configs:\n      - targets: ['{exporter.address}']\n"
    )
    port = free_port()
    log = open(workdir / "prometheus.log", "wb")
    process = subprocess.Popen(
        [PROMETHEUS_BIN, f"--config.file={workdir / 'prometheus.yml'}", f"--storage.tsdb.path={workdir / 'data'}",
         f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
        stdout=log, stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        ready_queries = ('count_over_time(test_value{case="nan"}[1m]) >= 3', 'ALERTS{alertname="UnitValueHigh",alertstate="firing"}')
        while not all(_ready(url, query) for query in ready_queries):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"prometheus did not become ready; log: {(workdir / 'prometheus.log').read_text()[-2000:]}")
            time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
        exporter.close()
