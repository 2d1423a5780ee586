"""The ``exporters`` lab service: one process serving /metrics and /metrics/app on 127.0.0.1.

With ``LAB_HISTORY_HOURS`` > 0 it first writes that much history (``lab.history``) for the
cluster as it is at start; the Prometheus service imports it before Prometheus starts, and
the exporter continues the same counters from there.
"""

from __future__ import annotations

import json
import time

from lab import history
from lab.servers.webhook import _pythonpath
from lab.services import LabContext, Service, free_port


class ExportersService(Service):
    name = "exporters"

    def start(self, ctx: LabContext) -> dict:
        data = ctx.data_dir(self.name)
        kubeconfig = (ctx.endpoints.get("apiserver") or {}).get("kubeconfig")
        state_file = data / "state.json"
        state_file.unlink(missing_ok=True)
        info: dict = {}
        port = free_port()
        hours = history.history_hours()
        if hours > 0:
            from lab.exporters.cluster import api_client, read_snapshot  # noqa: PLC0415
            from lab.exporters.model import Snapshot  # noqa: PLC0415

            snapshot = read_snapshot(api_client(kubeconfig)) if kubeconfig else Snapshot()
            out_dir = ctx.data_dir("history")
            t = time.monotonic()
            state = history.write_history(snapshot, hours, out_dir / "history.om", step=history.history_step(), instance=f"127.0.0.1:{port}")
            state_file.write_text(json.dumps(state))
            info["history_file"] = str(out_dir / "history.om")
            info["history"] = {**state["history"], "seconds": round(time.monotonic() - t, 3)}
        argv = [ctx.python, "-m", "lab.exporters.main", "--port", str(port), "--state-file", str(state_file)]
        if kubeconfig:
            argv += ["--kubeconfig", kubeconfig]
        proc = ctx.spawn(self.name, argv, env={"PYTHONPATH": _pythonpath()})
        url = f"http://127.0.0.1:{port}"
        ctx.wait_http(f"{url}/healthz", self.name, proc=proc, timeout=30)
        return {"url": url, "metrics_url": f"{url}/metrics", "app_metrics_url": f"{url}/metrics/app", "port": port, **info}
