"""Detector evaluation on a harder generated set and on the old held-out set: ``python -m ml.hard_eval``.

The hard set (seeded, generated, a simulation: not real cluster data) adds to ``ml.generator`` pods what
real clusters showed (issue 16): latency percentiles quantised to Prometheus histogram bucket bounds,
pods with near-zero traffic, node-level bursts that touch every pod of a node (normal time: a noisy
neighbour, not an injected fault), +-1 s timestamp jitter, faults that start inside the warm-up window
and unrelated extra metric columns (a random walk, a step-wise build number, a sawtooth).

Reported per model version: recall within 5 min (any alarm raised at/after onset), new-alarm recall
(only alarm episodes that start at/after the onset, within 5 min) and false alarm episodes per normal
pod-day (an episode counted once; for 1.1.0 alarms within its merge gap are one episode).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np
from ansible_collections.machinenativeops.platform.plugins.module_utils import anomaly_detect as ad
from ansible_collections.machinenativeops.platform.plugins.module_utils import anomaly_models as am

from ml import evaluate as evm
from ml import evaluation as ev
from ml import generator as gen
from ml import train as tr

HARD_SEED = 1616
BUCKETS_MS = np.array([1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000], dtype=float)
REPORT_JSON = os.path.join(evm.REPORTS_DIR, "hard_evaluation.json")


def _scale_counter(c, factor, sel=None):
    """Multiply a cumulative counter's increments (all, or those in ``sel``) by ``factor``; NaN holes kept."""
    ok = ~np.isnan(c)
    vals = c[ok]
    inc = np.diff(vals, prepend=vals[0] if vals.size else 0.0)
    inc[inc < 0] = 0.0
    f = np.full(inc.size, 1.0)
    if sel is None:
        f[:] = factor
    else:
        f[sel[ok]] = factor
    out = c.copy()
    out[ok] = np.round(np.cumsum(inc * f))
    return out


def harden(pods, rng):
    """Apply the hard-set transformations in place; returns the pods."""
    nodes = [pods[i:i + 4] for i in range(0, len(pods), 4)]
    for node in nodes:      # a node-level burst: every pod of the node, same minutes
        t_ref = node[0].times
        for _ in range(int(rng.integers(1, 3))):
            t_b = float(rng.uniform(t_ref[0] + 2400, t_ref[-1] - 600))
            dur = float(rng.uniform(180, 600))
            mult = float(rng.uniform(1.3, 1.8))
            for pod in node:
                rel = pod.times - pod.times[0] + t_ref[0]
                sel = (rel >= t_b) & (rel <= t_b + dur)
                for name in list(pod.columns):
                    if name in {"container_cpu_usage_seconds_total", "container_cpu_cfs_throttled_seconds_total"}:
                        pod.columns[name] = _scale_counter(pod.columns[name], mult, sel)
                    elif name in ("cpu_usage",):
                        pod.columns[name] = np.where(sel, pod.columns[name] * mult, pod.columns[name])
                    elif name in ("latency_p99_ms", "response_time_ms"):
                        pod.columns[name] = np.where(sel, pod.columns[name] * (1 + (mult - 1) / 2), pod.columns[name])
    for i, pod in enumerate(pods):
        n = pod.times.size
        if i % 5 == 0:      # near-zero traffic: a few requests per minute, p99 of a handful of requests
            for name in ("requests_total", "errors_total"):
                if name in pod.columns:
                    pod.columns[name] = _scale_counter(pod.columns[name], 0.01)
            for name in ("latency_p99_ms", "response_time_ms"):
                if name in pod.columns:
                    pod.columns[name] = pod.columns[name] * np.exp(rng.normal(0, 0.6, n))
            pod.meta["low_traffic"] = True
        for name in ("latency_p99_ms", "response_time_ms"):   # histogram-quantised percentiles
            if name in pod.columns:
                v = pod.columns[name]
                idx = np.searchsorted(BUCKETS_MS, np.nan_to_num(v, nan=1.0))
                q = BUCKETS_MS[np.clip(idx, 0, BUCKETS_MS.size - 1)]
                pod.columns[name] = np.where(np.isnan(v), np.nan, q)
        pod.columns["unrelated_random_walk"] = 100 + np.cumsum(rng.normal(0, 0.5, n))
        pod.columns["build_number"] = 1000 + np.floor(np.arange(n) * pod.step / float(rng.uniform(1800, 7200)))
        pod.columns["sawtooth_queue"] = (np.arange(n) * pod.step / 60.0) % float(rng.uniform(10, 40))
        pod.times = pod.times + rng.uniform(-1.0, 1.0, n)      # +-1 s jitter
    return pods


def hard_set(size="quick"):
    rng = np.random.default_rng(HARD_SEED)
    per_type, healthy, hours = (3, 12, 12.0) if size == "quick" else (6, 24, 24.0)
    pods = gen.generate_set(HARD_SEED, per_type, healthy, hours=3.0, healthy_hours=hours, steps=(60.0, 15.0))
    # faults that start inside the warm-up window (the first 30 minutes)
    for k, label in enumerate(gen.ANOMALY_TYPES):
        pods.append(gen.generate_pod(rng, f"warmup/pod-{k:03d}", step=60.0, hours=3.0, label=label, onset_range=(600.0, 1500.0)))
    return harden(pods, rng)


def detector_metrics(pods, version, models_dir=tr.MODELS_DIR):
    artifact = am.load(version=version, models_dir=models_dir, load_classifier=False)
    det = artifact["manifest"]["detector"]
    config = dict((k, det[k]) for k in ad.DEFAULT_CONFIG if k in det)
    config.setdefault("scoring", 1)
    thr, pers = float(det["threshold"]), float(det["persistence"])
    t0 = time.time()
    scored = ev.score_pods(pods, config)
    arrays = ev.scores_of(scored, "max", float(config.get("mv_weight", 0.5)))
    m, _ = ev.event_metrics(scored, arrays, thr, pers, config=config)
    m["score_seconds"] = round(time.time() - t0, 1)
    warm = [s for s in scored if s.pod.target.startswith("warmup/")]
    if warm:
        wm, _ = ev.event_metrics(warm, ev.scores_of(warm, "max", float(config.get("mv_weight", 0.5))), thr, pers, config=config)
        m["warmup_faults"] = {k: wm[k] for k in ("anomalous_pods", "recall_5min", "new_alarm_recall_5min")}
    m.pop("per_type", None)
    return m


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--versions", default="1.0.0,1.1.0")
    parser.add_argument("--size", choices=["quick", "full"], default="quick")
    args = parser.parse_args(argv)
    sets = {"heldout": evm.make_sets("quick")["heldout"], "hard": hard_set(args.size)}
    out = {"size": args.size, "seed": HARD_SEED, "results": {}}
    for version in args.versions.split(","):
        for name, pods in sets.items():
            m = detector_metrics(pods, version)
            out["results"].setdefault(version, {})[name] = m
            print(f"{version} {name}: recall@5min {m['recall_5min']} new-alarm recall {m['new_alarm_recall_5min']} "
                  f"FA/pod-day {m['false_alarms_per_pod_day']} ({m['false_alarms']} on {m['normal_pod_days']} pod-days) "
                  f"warm-up {m.get('warmup_faults')} [{m['score_seconds']}s]", flush=True)
    with open(REPORT_JSON, "w", encoding="utf-8") as handle:
        json.dump(out, handle, indent=2, sort_keys=True)
        handle.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
