"""Preloaded metric history: the exporters' generator run over the past hours.

``write_history`` runs ``lab.exporters.model.Generator`` from ``end - hours`` to ``end``
every ``step`` seconds over the cluster as it is now, writes the samples as OpenMetrics
text (what ``promtool tsdb create-blocks-from openmetrics`` reads) and returns the
generator state at ``end``, so the live exporter continues the same counters.

Two ways to use it:

- at ``python -m lab up``: set ``LAB_HISTORY_HOURS`` (e.g. ``LAB_HISTORY_HOURS=1``); the
  exporters service writes ``<lab dir>/data/history/history.om`` and the Prometheus service
  imports it before Prometheus starts (default 0: no history, ``up`` stays fast);
  ``LAB_HISTORY_STEP`` sets the sample spacing (default 15 seconds).
- on a running lab, after creating workloads and traffic: ``preload(lab_dir, hours)`` writes
  history ending where the live series begin (Prometheus' start), imports it and restarts
  Prometheus on the same port (its data is kept). The live counters start from 0 there, which
  Prometheus treats as a counter reset: rate() and increase() stay correct across it.
  CLI: ``python -m lab.history --dir D --hours 1``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from lab.exporters.model import APP_FAMILIES, Generator, Snapshot, labels_text

DEFAULT_STEP = 15.0


def history_hours() -> float:
    try:
        return max(0.0, float(os.environ.get("LAB_HISTORY_HOURS", "0") or 0))
    except ValueError:
        return 0.0


def history_step() -> float:
    try:
        return max(1.0, float(os.environ.get("LAB_HISTORY_STEP", DEFAULT_STEP) or DEFAULT_STEP))
    except ValueError:
        return DEFAULT_STEP


def _fmt(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def target_labels(instance: str | None) -> dict[str, dict]:
    """The labels Prometheus adds when it scrapes the exporters (see lab/servers/prometheus.py)."""
    extra = {"instance": instance} if instance else {}
    return {"app": {"job": "machine-native-ops", **extra}, "other": {"job": "lab-exporters", **extra}}


def generate(snapshot: Snapshot, start: float, end: float, step: float = DEFAULT_STEP, *, state: dict | None = None,
             instance: str | None = None) -> tuple[dict[str, list[str]], dict]:
    """Sample lines by metric family (``name{labels} value timestamp``) and the generator state at ``end``.

    ``instance`` is the exporters' host:port, so the history continues the live series.
    """
    targets = target_labels(instance)
    gen = Generator(snapshot, state or {"t": start})
    gen.t = start
    families: dict[str, list[str]] = {}
    t = start
    while t <= end + 1e-6:
        gen.advance(t)
        for name, items in gen.render(t).items():
            lines = families.setdefault(name, [])
            extra = targets["app" if name in APP_FAMILIES else "other"]
            for labels, value in items:
                lines.append(f"{name}{labels_text({**labels, **extra})} {_fmt(value)} {t:.3f}")
        t += step
    gen.advance(end)
    return families, gen.state()


def write_openmetrics(families: dict[str, list[str]], path: Path) -> int:
    """Write the families as OpenMetrics text (one family after another, ``# EOF`` last); return the sample count."""
    count = 0
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w") as fh:
        for _name, lines in families.items():
            for line in lines:
                fh.write(line + "\n")
            count += len(lines)
        fh.write("# EOF\n")
    os.replace(tmp, path)
    return count


def write_history(snapshot: Snapshot, hours: float, out: Path, *, end: float | None = None, step: float = DEFAULT_STEP,
                  instance: str | None = None) -> dict:
    """Generate ``hours`` of history ending at ``end`` (default now) into ``out``; return the end state."""
    end = time.time() if end is None else end
    families, state = generate(snapshot, end - hours * 3600.0, end, step, instance=instance)
    samples = write_openmetrics(families, out)
    state["history"] = {"start": end - hours * 3600.0, "end": end, "step": step, "samples": samples, "file": str(out)}
    return state


def preload(lab_dir: str | Path, hours: float, step: float = DEFAULT_STEP) -> dict:
    """Add ``hours`` of history before the live data of a running lab and restart Prometheus; return what was written."""
    from lab.exporters.cluster import api_client, read_snapshot  # noqa: PLC0415 - kubernetes only here
    from lab.servers.prometheus import PrometheusService, import_history  # noqa: PLC0415
    from lab.services import LabContext, LabError, read_endpoints  # noqa: PLC0415

    lab_dir = Path(lab_dir)
    endpoints = read_endpoints(lab_dir)
    prom = endpoints.get("prometheus")
    if not prom:
        raise LabError(f"no Prometheus runs in {lab_dir}")
    started = float(prom.get("started_at") or time.time())
    snapshot = read_snapshot(api_client(endpoints["apiserver"]["kubeconfig"]))
    out_dir = lab_dir / "data" / "history"
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / f"preload-{int(started)}.om"
    end = started - step
    exporters = endpoints.get("exporters") or {}
    instance = f"127.0.0.1:{exporters['port']}" if exporters.get("port") else None
    families, _ = generate(snapshot, end - hours * 3600.0, end, step, instance=instance)
    samples = write_openmetrics(families, out)
    ctx = LabContext(dir=lab_dir, endpoints=endpoints)
    service = PrometheusService()
    service.stop(ctx)
    import_history(out, Path(prom["tsdb"]), ctx.log_dir / "promtool.log")
    info = service.start(ctx, keep_started_at=started)
    endpoints["prometheus"] = info
    (lab_dir / "endpoints.json").write_text(json.dumps(endpoints, indent=2, sort_keys=True))
    return {"file": str(out), "samples": samples, "start": end - hours * 3600.0, "end": end}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dir", default=".lab")
    parser.add_argument("--hours", type=float, required=True)
    parser.add_argument("--step", type=float, default=DEFAULT_STEP, help="seconds between samples")


def run(args: argparse.Namespace) -> int:
    print(json.dumps(preload(args.dir, args.hours, step=args.step), indent=2))
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m lab.history --dir D --hours N``: preload history into the running lab in D."""
    parser = argparse.ArgumentParser(prog="python -m lab.history", description="preload metric history into a running lab")
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
