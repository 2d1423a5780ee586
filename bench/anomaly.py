"""Anomaly benchmarks: ``python -m bench anomaly`` (or ``python -m bench.anomaly [--quick]``).

1. scoring throughput (samples/s) of the detector + classifier library path, and the module's
   end-to-end latency through ansible-playbook, for 100 and 1,000 pods x 60 minutes (15 s samples);
2. training time (the quick training size, measured here; the full size from the manifest);
3. detection quality of the detector against a rolling z-score and a plain IsolationForest, all three
   calibrated in this run on the same calibration pods to the same false-alarm rate and scored on the
   same test pods (recall within 5 minutes, false alarms per pod-day, median delay).
Figures are printed and written to ml/reports/bench_anomaly.json.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from ml import evaluation as ev
from ml import generator as gen
from ml import train as tr

# the collection's module_utils, as ml/ imports them (ml puts the staged collection on sys.path)
ad = tr.ad
am = tr.am

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "ml" / "reports" / "bench_anomaly.json"
SEED = 4711


def fleet(n_pods, minutes=60, step=15.0, seed=SEED):
    """n pods x minutes of samples, 10 % of them with an anomaly in the second half hour."""
    rng = np.random.default_rng(seed)
    pods = []
    for i in range(n_pods):
        label = gen.ANOMALY_TYPES[i % len(gen.ANOMALY_TYPES)] if i % 10 == 0 else "healthy"
        pods.append(gen.generate_pod(rng, f"bench/pod-{i:05d}", step=step, hours=minutes / 60.0, label=label,
                                     onset_range=(2100.0, 2700.0), duration_range=(600.0, 900.0)))
    return pods


def library_throughput(pods, artifact):
    det = artifact["manifest"]["detector"]
    raws = [p.to_raw() for p in pods]
    samples = sum(len(r) for r in raws)
    t0 = time.perf_counter()
    flagged = 0
    for raw in raws:
        r = ad.analyze_target(raw, det, det["threshold"], det["persistence"], classifier=artifact["model"])
        flagged += int(r["anomalous"])
    dt = time.perf_counter() - t0
    return {"pods": len(pods), "samples": samples, "seconds": round(dt, 2), "samples_per_second": round(samples / dt, 1),
            "ms_per_pod": round(1000 * dt / len(pods), 2), "flagged": flagged}


def write_csv(pods, path):
    names = sorted(pods[0].columns)
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["timestamp", "target", *names])
        for p in pods:
            for i, t in enumerate(p.times):
                w.writerow([f"{t:.0f}", p.target, *("" if np.isnan(p.columns[c][i]) else repr(float(p.columns[c][i])) for c in names)])


def module_latency(pods, workdir):
    data = Path(workdir) / f"fleet-{len(pods)}.csv"
    write_csv(pods, data)
    playbook = Path(workdir) / "score.yml"
    playbook.write_text(
        "- hosts: localhost\n  gather_facts: false\n  tasks:\n"
        f"    - machinenativeops.platform.anomaly_score:\n        metrics_file: {data}\n      register: r\n")
    inventory = Path(workdir) / "inventory.ini"
    inventory.write_text(f"localhost ansible_connection=local ansible_python_interpreter={sys.executable}\n")
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(ROOT / "build" / "collections"), ANSIBLE_STDOUT_CALLBACK="json",
               ANSIBLE_LOCALHOST_WARNING="false")
    t0 = time.perf_counter()
    proc = subprocess.run([str(Path(sys.executable).parent / "ansible-playbook"), "-i", str(inventory), str(playbook)],
                          env=env, capture_output=True, text=True, check=False)
    dt = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"ansible-playbook failed: {proc.stdout[-2000:]} {proc.stderr[-2000:]}")
    result = json.loads(proc.stdout)["plays"][0]["tasks"][0]["hosts"]["localhost"]
    return {"pods": len(pods), "csv_mb": round(data.stat().st_size / 2**20, 1), "seconds": round(dt, 2),
            "anomalous": result["summary"]["anomalous"]}


def quality(quick):
    n_types, n_healthy = (2, 16) if quick else (6, 40)
    cal = gen.generate_set(SEED + 1, n_types, n_healthy // 2, hours=3.0, healthy_hours=24.0) + gen.generate_set(SEED + 2, 0, n_healthy // 2, hours=6.0)
    test = gen.generate_set(SEED + 3, n_types * 2, n_healthy // 2, hours=3.0, healthy_hours=12.0)
    persistence = ad.DEFAULT_CONFIG["persistence"]
    out = {}
    timings = {}
    t0 = time.perf_counter()
    cal_d, test_d = ev.score_pods(cal), ev.score_pods(test)
    timings["detector"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    cal_b, test_b = ev.score_baselines(cal), ev.score_baselines(test)
    timings["baselines"] = time.perf_counter() - t0
    methods = {
        "detector": (cal_d, test_d, None),
        "detector_univariate_only": (cal_d, test_d, "uni"),
        "rolling_zscore": (cal_b, test_b, "rolling_z"),
        "plain_iforest": (cal_b, test_b, "plain_iforest"),
    }
    for name, (c, t, key) in methods.items():
        if key is None:
            ca, ta = ev.scores_of(c, "max"), ev.scores_of(t, "max")
        elif key == "uni":
            ca, ta = ev.scores_of(c, "uni"), ev.scores_of(t, "uni")
        else:
            ca, ta = ev.scores_of(c, key=key), ev.scores_of(t, key=key)
        thr, _ = ev.calibrate(c, ca, persistence, tr.CALIBRATION_FA)
        m, _ = ev.event_metrics(t, ta, thr, persistence)
        out[name] = {k: m[k] for k in ("threshold", "recall_5min", "recall_any", "false_alarms_per_pod_day", "delay_median_s", "anomalous_pods",
                                       "normal_pod_days")}
    out["_timings_seconds"] = {k: round(v, 1) for k, v in timings.items()}
    return out


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    quick = "--quick" in argv
    artifact = am.load()
    report = {"model_version": artifact["version"], "sha256": artifact["sha256"], "quick": quick}
    sizes = (100,) if quick else (100, 1000)
    report["throughput"] = []
    report["module_latency"] = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in sizes:
            pods = fleet(n)
            lib = library_throughput(pods, artifact)
            report["throughput"].append(lib)
            print(f"library scoring, {n} pods x 60 min: {lib['samples_per_second']} samples/s, {lib['ms_per_pod']} ms/pod, "
                  f"{lib['seconds']} s total, {lib['flagged']} flagged", flush=True)
            mod = module_latency(pods, tmp)
            report["module_latency"].append(mod)
            print(f"module through ansible-playbook, {n} pods x 60 min ({mod['csv_mb']} MB CSV): {mod['seconds']} s", flush=True)
        t0 = time.perf_counter()
        tr.train(size_name="quick", models_dir=os.path.join(tmp, "models"), log=lambda *_: None)
        report["training_quick_seconds"] = round(time.perf_counter() - t0, 1)
    report["training_full_seconds_from_manifest"] = artifact["manifest"].get("timings_seconds")
    print(f"training (quick size): {report['training_quick_seconds']} s; full size (manifest): {report['training_full_seconds_from_manifest']}", flush=True)
    report["quality"] = quality(quick)
    for name, m in report["quality"].items():
        if not name.startswith("_"):
            print(f"{name:26s} recall@5min {m['recall_5min']:.3f}  recall {m['recall_any']:.3f}  FA/pod-day {m['false_alarms_per_pod_day']:.3f}  "
                  f"median delay {m['delay_median_s']} s  (threshold {m['threshold']})", flush=True)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
