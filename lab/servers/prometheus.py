"""Prometheus (the Debian package's binary) scraping the lab exporters every second.

Rules from ``lab/servers/rules/*.yml`` are evaluated every second and alerts go to the lab
Alertmanager. When the exporters service wrote preloaded history
(``<lab dir>/data/history/history.om``, see ``lab.history``), it is imported with
``promtool tsdb create-blocks-from openmetrics`` into the TSDB before Prometheus starts.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path
from urllib.parse import urlsplit

from lab.services import LabContext, LabError, Service, free_port

RULES_DIR = Path(__file__).resolve().parent / "rules"
PROMETHEUS_BIN = os.environ.get("LAB_PROMETHEUS_BIN", "/usr/bin/prometheus")
PROMTOOL_BIN = os.environ.get("LAB_PROMTOOL_BIN", "/usr/bin/promtool")


def _hostport(url: str) -> str:
    parts = urlsplit(url)
    return parts.netloc


def render_config(rule_files: list[str], alertmanager_url: str | None, exporters_url: str | None) -> str:
    lines = [
        "# Written by lab/servers/prometheus.py.",
        "global:",
        "  scrape_interval: 1s",
        "  scrape_timeout: 1s",
        "  evaluation_interval: 1s",
        "  external_labels:",
        "    lab: machinenativeops",
    ]
    lines += ["rule_files:", *[f"  - '{path}'" for path in rule_files]] if rule_files else ["rule_files: []"]
    if alertmanager_url:
        lines += [
            "alerting:",
            "  alertmanagers:",
            "    - static_configs:",
            f"        - targets: ['{_hostport(alertmanager_url)}']",
        ]
    lines.append("scrape_configs:")
    if exporters_url:
        target = _hostport(exporters_url)
        lines += [
            # Istio (reporter labels), cAdvisor and kube-state-metrics series keep their own labels.
            "  - job_name: lab-exporters",
            "    honor_labels: true",
            "    metrics_path: /metrics",
            f"    static_configs: [{{targets: ['{target}']}}]",
            # The platform application's own metrics, job="machine-native-ops" as the guide's rules expect.
            "  - job_name: machine-native-ops",
            "    metrics_path: /metrics/app",
            f"    static_configs: [{{targets: ['{target}']}}]",
        ]
    else:
        lines[-1] = "scrape_configs: []"
    return "\n".join(lines) + "\n"


def import_history(openmetrics: Path, tsdb: Path, log: Path) -> None:
    """Write TSDB blocks for ``openmetrics`` into ``tsdb`` (Prometheus must not run yet)."""
    with open(log, "ab") as fh:
        result = subprocess.run(
            [PROMTOOL_BIN, "tsdb", "create-blocks-from", "openmetrics", str(openmetrics), str(tsdb)],
            stdout=fh, stderr=subprocess.STDOUT, check=False,
        )
    if result.returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-15:])
        raise LabError(f"promtool could not import the preloaded history {openmetrics}:\n{tail}")


class PrometheusService(Service):
    name = "prometheus"

    def start(self, ctx: LabContext, keep_started_at: float | None = None) -> dict:
        if not Path(PROMETHEUS_BIN).exists():
            raise LabError(f"{PROMETHEUS_BIN} not found: apt-get install -y prometheus")
        data = ctx.data_dir(self.name)
        tsdb = data / "tsdb"
        tsdb.mkdir(exist_ok=True)
        rules = sorted(str(p) for p in RULES_DIR.glob("*.yml"))
        config = data / "prometheus.yml"
        config.write_text(render_config(
            rules,
            (ctx.endpoints.get("alertmanager") or {}).get("url"),
            (ctx.endpoints.get("exporters") or {}).get("url"),
        ))
        history = (ctx.endpoints.get("exporters") or {}).get("history_file")
        imported = False
        if history and Path(history).exists() and Path(history).stat().st_size > 0:
            ctx.log_dir.mkdir(parents=True, exist_ok=True)
            import_history(Path(history), tsdb, ctx.log_dir / "promtool.log")
            imported = True
        port = (ctx.endpoints.get(self.name) or {}).get("port") or free_port()
        started_at = keep_started_at or time.time()
        proc = ctx.spawn(self.name, [
            PROMETHEUS_BIN,
            f"--config.file={config}",
            f"--storage.tsdb.path={tsdb}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--web.enable-lifecycle",
            "--web.enable-admin-api",
            "--rules.alert.resend-delay=1s",
            "--storage.tsdb.retention.time=30d",
            "--log.level=info",
        ])
        url = f"http://127.0.0.1:{port}"
        ctx.wait_http(f"{url}/-/ready", self.name, proc=proc, timeout=60)
        return {"url": url, "port": port, "config": str(config), "tsdb": str(tsdb), "history_imported": imported,
                "started_at": round(started_at, 3)}
