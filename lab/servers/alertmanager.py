"""Alertmanager (the Debian package's binary) routing every alert to the lab webhook receiver.

Timings are short so a notification arrives within seconds of Prometheus firing:
group_wait 1s, group_interval 1s, repeat_interval 1m (production routes use tens of
seconds to hours). Clustering is off (``--cluster.listen-address=`` empty).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from lab.services import LabContext, LabError, Service, free_port

BINARY_CANDIDATES = ("/usr/bin/prometheus-alertmanager", "/usr/bin/alertmanager")

CONFIG = """\
# Written by lab/servers/alertmanager.py for the lab: every alert goes to the lab webhook receiver.
global:
  resolve_timeout: 1m
route:
  receiver: lab-webhook
  group_by: ['alertname', 'namespace']
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 1m
receivers:
  - name: lab-webhook
{webhook}
"""

WEBHOOK = """\
    webhook_configs:
      - url: '{url}'
        send_resolved: true
        max_alerts: 0
"""


def find_binary() -> str:
    env = os.environ.get("LAB_ALERTMANAGER_BIN")
    for candidate in ([env] if env else []) + list(BINARY_CANDIDATES):
        if candidate and Path(candidate).exists():
            return candidate
    found = shutil.which("alertmanager")
    if found:
        return found
    raise LabError("Alertmanager not found: apt-get install -y prometheus-alertmanager")


def render_config(webhook_url: str | None) -> str:
    return CONFIG.format(webhook=WEBHOOK.format(url=webhook_url) if webhook_url else "")


class AlertmanagerService(Service):
    name = "alertmanager"

    def start(self, ctx: LabContext) -> dict:
        data = ctx.data_dir(self.name)
        webhook_url = (ctx.endpoints.get("webhook") or {}).get("url")
        config = data / "alertmanager.yml"
        config.write_text(render_config(webhook_url))
        port = free_port()
        storage = data / "storage"
        storage.mkdir(exist_ok=True)
        proc = ctx.spawn(self.name, [
            find_binary(),
            f"--config.file={config}",
            f"--storage.path={storage}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
            "--log.level=info",
        ])
        url = f"http://127.0.0.1:{port}"
        ctx.wait_http(f"{url}/-/ready", self.name, proc=proc)
        return {"url": url, "port": port, "config": str(config)}
