"""Evaluate the anomaly models: ``python -m ml.evaluate``.

Data: a held-out generator set (other seed) and a shifted set the models were not tuned on
(see ml/generator.py). Detector: recall of injected faults within 5 minutes of onset, false alarms
per pod-day, detection delay, against a rolling z-score and a plain IsolationForest whose thresholds
are calibrated on the same calibration data to the same false-alarm rate. Classifier: per-class
precision/recall/F1 at the detector's alarm (end to end) and at a fixed point after onset (oracle
onset), confusion matrix and PR curves as PNG. Writes ml/reports/ and the manifest's ``metrics``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from ansible_collections.machinenativeops.platform.plugins.module_utils import anomaly_detect as ad
from ansible_collections.machinenativeops.platform.plugins.module_utils import anomaly_features as af
from ansible_collections.machinenativeops.platform.plugins.module_utils import anomaly_models as am
from sklearn.metrics import average_precision_score, confusion_matrix, precision_recall_curve, precision_recall_fscore_support

from ml import evaluation as ev
from ml import generator as gen
from ml import train as tr

REPORTS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "reports")
EVAL_SEED = 777
SETS = {
    "quick": {"heldout": (5, 8, 12.0), "shifted": (4, 6, 12.0)},
    "full": {"heldout": (15, 24, 24.0), "shifted": (10, 16, 12.0)},
}


def make_sets(size):
    h_types, h_healthy, h_hours = SETS[size]["heldout"]
    s_types, s_healthy, s_hours = SETS[size]["shifted"]
    heldout = gen.generate_set(EVAL_SEED, h_types, h_healthy, hours=3.0, healthy_hours=h_hours)
    shifted = gen.generate_set(EVAL_SEED + 1, s_types, s_healthy, hours=3.0, healthy_hours=s_hours, steps=(30.0,), profile="shifted")
    return {"heldout": heldout, "shifted": shifted}


def classify_pods(scored_list, artifact, threshold, persistence):
    """End-to-end: classify at the detector's first alarm at/after onset (anomalous pods) and at false
    alarms (healthy pods). Returns (true, pred) lists; undetected anomalies are predicted 'missed'."""
    y_true, y_pred = [], []
    for s in scored_list:
        pod = s.pod
        k = ad.persistence_points(s.step, persistence)
        flags = ad.alarm_flags(s.full.score, k, threshold)
        eps = ad.episodes(flags, s.full.score, threshold)
        prep = s.full.prepared
        mapping = af.map_columns(prep.columns)
        chosen = None
        if pod.onset is not None:
            for ep in eps:
                if s.times[ep[2]] >= pod.onset and s.times[ep[1]] <= pod.end:
                    chosen = ep
                    break
            if chosen is None:
                y_true.append(pod.label)
                y_pred.append("missed")
                continue
        else:
            if not eps:
                continue
            chosen = eps[0]
        start, alarm_idx, end = chosen
        c_start, at = ad.classification_rows(s.step, start, alarm_idx, end)
        feats, mapped = ad.episode_features(prep, mapping, c_start, at)
        if mapped < ad.MIN_MAPPED:
            y_true.append(pod.label)
            y_pred.append("unmapped")
            continue
        label, _conf, _p = ad.classify(artifact["model"], feats)
        y_true.append(pod.label)
        y_pred.append(label)
    return y_true, y_pred


def oracle_set(pods, seed):
    """Features at onset + 1..5 minutes for every anomalous pod (and random points of healthy pods)."""
    rng = np.random.default_rng(seed)
    X, y = [], []
    for pod in pods:
        rows, labels = tr.feature_rows(pod, rng, 2)
        X.extend(rows)
        y.extend(labels)
    return np.asarray(X, dtype=float), np.asarray(y)


def per_class_report(y_true, y_pred, labels):

    p, r, f, n = precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=0)
    out = {}
    for i, label in enumerate(labels):
        out[label] = {"precision": round(float(p[i]), 3), "recall": round(float(r[i]), 3), "f1": round(float(f[i]), 3), "support": int(n[i])}
    present = [label for label in labels if out[label]["support"] > 0]
    out["macro_f1"] = round(float(np.mean([out[label]["f1"] for label in present])) if present else 0.0, 3)
    return out


def plot_confusion(y_true, y_pred, labels, path, title):


    pred_labels = labels + sorted(set(y_pred) - set(labels))
    cm = confusion_matrix(y_true, y_pred, labels=pred_labels)[: len(labels)]
    fig, ax = plt.subplots(figsize=(10, 8))
    ax.imshow(cm, cmap="Blues")
    ax.set_xticks(range(len(pred_labels)))
    ax.set_xticklabels(pred_labels, rotation=70, ha="right", fontsize=7)
    ax.set_yticks(range(len(labels)))
    ax.set_yticklabels(labels, fontsize=7)
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            if cm[i, j]:
                ax.text(j, i, str(cm[i, j]), ha="center", va="center", fontsize=6, color="black" if cm[i, j] < cm.max() / 2 else "white")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def plot_pr(clf, X, y, path, title):


    proba = clf.predict_proba(X)
    classes = [str(c) for c in clf.classes_]
    fig, ax = plt.subplots(figsize=(9, 7))
    ap = {}
    for j, c in enumerate(classes):
        yt = (y == c).astype(int)
        if yt.sum() == 0:
            continue
        prec, rec, _ = precision_recall_curve(yt, proba[:, j])
        ap[c] = round(float(average_precision_score(yt, proba[:, j])), 3)
        ax.plot(rec, prec, label=f"{c} (AP {ap[c]:.2f})", linewidth=1)
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=6, loc="lower left")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return ap


def plot_detection(results, path):


    names = list(results)
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, key, label in ((axes[0], "recall_5min", "recall within 5 min"), (axes[1], "false_alarms_per_pod_day", "false alarms per pod-day")):
        sets = sorted({s for n in names for s in results[n]})
        width = 0.8 / max(1, len(sets))
        for i, set_name in enumerate(sets):
            ax.bar(np.arange(len(names)) + i * width, [results[n][set_name][key] for n in names], width, label=set_name)
        ax.set_xticks(np.arange(len(names)) + width * (len(sets) - 1) / 2)
        ax.set_xticklabels(names, fontsize=8)
        ax.set_title(label, fontsize=9)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


class _Full(ev.Scored):
    pass


def score_full(pods, config):
    out = []
    for pod in pods:
        s = ad.score_raw(pod.to_raw(), config)
        item = _Full(pod, s.times, s.step, getattr(s, "score_start", s.ref_end), s.uni, s.mv)
        item.full = s
        out.append(item)
    return out


def evaluate(size="full", models_dir=tr.MODELS_DIR, version=None, reports_dir=REPORTS_DIR, log=print, write=True):  # noqa: PLR0917
    t0 = time.time()
    artifact = am.load(version=version, models_dir=models_dir)
    manifest = artifact["manifest"]
    det = manifest["detector"]
    config = dict((k, det[k]) for k in ad.DEFAULT_CONFIG if k in det)
    threshold = float(det["threshold"])
    persistence = float(det["persistence"])
    log("model {} (sha256 {}), detector threshold {:.3f}".format(artifact["version"], artifact["sha256"][:12], threshold))
    sets = make_sets(size)
    log("calibrating the baselines on the training calibration data")
    cal_pods = tr.calibration_pods(manifest["seed"], tr.SIZES[manifest["training_size"]])
    cal_bl = ev.score_baselines(cal_pods, config)
    bl_thr = {}
    for key in ("rolling_z", "plain_iforest"):
        arrays = ev.scores_of(cal_bl, key=key)
        bl_thr[key], _ = ev.calibrate(cal_bl, arrays, persistence, tr.CALIBRATION_FA)
    detection = {"detector": {}, "rolling_zscore": {}, "plain_iforest": {}}
    classification = {}
    labels = list(gen.CLASSES)
    os.makedirs(reports_dir, exist_ok=True)
    for set_name, pods in sets.items():
        log(f"scoring {set_name}: {len(pods)} pods")
        ts = time.time()
        scored = score_full(pods, config)
        score_seconds = time.time() - ts
        arrays = [s.full.score for s in scored]
        m, _ = ev.event_metrics(scored, arrays, threshold, persistence)
        m["score_seconds"] = round(score_seconds, 1)
        detection["detector"][set_name] = m
        bl = ev.score_baselines(pods, config)
        for key, name in (("rolling_z", "rolling_zscore"), ("plain_iforest", "plain_iforest")):
            bm, _ = ev.event_metrics(bl, ev.scores_of(bl, key=key), bl_thr[key], persistence)
            detection[name][set_name] = bm
        rz, pf = detection["rolling_zscore"][set_name], detection["plain_iforest"][set_name]
        log(f"  detector: recall@5min {m['recall_5min']:.3f}, FA/pod-day {m['false_alarms_per_pod_day']:.3f}, median delay {m['delay_median_s']}s"
            f" | rolling z: {rz['recall_5min']:.3f} / {rz['false_alarms_per_pod_day']:.3f}"
            f" | plain IF: {pf['recall_5min']:.3f} / {pf['false_alarms_per_pod_day']:.3f}")
        y_true, y_pred = classify_pods(scored, artifact, threshold, persistence)
        e2e = per_class_report(y_true, y_pred, labels)
        Xo, yo = oracle_set(pods, EVAL_SEED + 5)
        pred_o = artifact["model"]["classifier"].predict(Xo)
        oracle = per_class_report(list(yo), [str(p) for p in pred_o], labels)
        classification[set_name] = {"end_to_end": e2e, "oracle_onset": oracle,
                                    "end_to_end_accuracy": round(float(np.mean(np.asarray(y_true) == np.asarray(y_pred))), 3) if y_true else None,
                                    "oracle_accuracy": round(float(np.mean(yo == pred_o)), 3)}
        if write:
            plot_confusion(y_true, y_pred, labels, os.path.join(reports_dir, f"confusion_{set_name}.png"),
                           f"classifier at the detector's alarm, {set_name} set ('missed' = not detected)")
            ap = plot_pr(artifact["model"]["classifier"], Xo, yo, os.path.join(reports_dir, f"pr_{set_name}.png"),
                         f"precision-recall per class (one vs rest), {set_name} set, onset + 1..8 min")
            classification[set_name]["average_precision"] = ap
        log("  classifier macro F1: end to end {:.3f}, oracle onset {:.3f}".format(e2e["macro_f1"], oracle["macro_f1"]))
    result = {
        "model_version": artifact["version"], "sha256": artifact["sha256"], "size": size, "threshold": threshold, "persistence_seconds": persistence,
        "baseline_thresholds": dict((k, round(float(v), 4)) for k, v in bl_thr.items()),
        "target_false_alarms_per_pod_day": det.get("target_false_alarms_per_pod_day"),
        "detection": detection, "classification": classification, "seconds": round(time.time() - t0, 1),
    }
    if write:
        plot_detection(detection, os.path.join(reports_dir, "detection.png"))
        with open(os.path.join(reports_dir, "evaluation.json"), "w", encoding="utf-8") as handle:
            json.dump(result, handle, indent=2, sort_keys=True)
            handle.write("\n")
        with open(os.path.join(reports_dir, "REPORT.md"), "w", encoding="utf-8") as handle:
            handle.write(render_markdown(result))
        manifest["metrics"] = {
            "evaluated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "detector": dict((s, {k: detection["detector"][s][k] for k in ("recall_5min", "false_alarms_per_pod_day", "delay_median_s")})
                             for s in detection["detector"]),
            "classifier_macro_f1": dict((s, {"end_to_end": classification[s]["end_to_end"]["macro_f1"],
                                             "oracle_onset": classification[s]["oracle_onset"]["macro_f1"]}) for s in classification),
        }
        am.write_manifest(artifact["path"], manifest)
    log("evaluation done in %.1fs" % (time.time() - t0))
    return result


def render_markdown(r):
    lines = ["# Anomaly model evaluation", "",
             "Model {}, sha256 `{}`, evaluation size `{}`. Generated by `python -m ml.evaluate` (seeded).".format(r["model_version"], r["sha256"], r["size"]),
             "", f"Detector threshold {r['threshold']:.3f} (robust-z units), persistence {r['persistence_seconds']:.0f}s; baselines calibrated on the same "
             f"calibration data to the same false-alarm rate (thresholds {r['baseline_thresholds']}).", "",
             "## Detection (event level)", "",
             "| method | set | recall within 5 min | recall (any time) | false alarms / pod-day | median delay s | p90 delay s |",
             "|---|---|---|---|---|---|---|"]
    for method, per_set in r["detection"].items():
        for set_name, m in per_set.items():
            lines.append("| {} | {} | {} | {} | {} | {} | {} |".format(method, set_name, m["recall_5min"], m["recall_any"], m["false_alarms_per_pod_day"],
                                                                m["delay_median_s"], m["delay_p90_s"]))
    lines += ["", "### Detector recall within 5 minutes per anomaly type", "", "| type | " + " | ".join(r["detection"]["detector"]) + " |",
              "|---|" + "---|" * len(r["detection"]["detector"])]
    types = sorted({t for s in r["detection"]["detector"].values() for t in s["per_type"]})
    for t in types:
        lines.append("| {} | {} |".format(t, " | ".join(str(r["detection"]["detector"][s]["per_type"].get(t, {}).get("recall_5min", "-"))
                                                      for s in r["detection"]["detector"])))
    lines += ["", "## Classification", ""]
    for set_name, c in r["classification"].items():
        lines += [f"### {set_name} set", "",
                  "End to end (classified at the detector's alarm; undetected faults count as errors): accuracy {}, macro F1 {}. "
                  "Oracle onset (features 1-8 min after the true onset): accuracy {}, macro F1 {}.".format(
                      c["end_to_end_accuracy"], c["end_to_end"]["macro_f1"], c["oracle_accuracy"], c["oracle_onset"]["macro_f1"]), "",
                  "| class | P (e2e) | R (e2e) | F1 (e2e) | n | F1 (oracle) | n (oracle) |", "|---|---|---|---|---|---|---|"]
        for label in gen.CLASSES:
            e, o = c["end_to_end"][label], c["oracle_onset"][label]
            lines.append("| {} | {} | {} | {} | {} | {} | {} |".format(label, e["precision"], e["recall"], e["f1"], e["support"], o["f1"], o["support"]))
        lines += ["", f"![confusion](confusion_{set_name}.png) ![pr](pr_{set_name}.png)", ""]
    lines += ["![detection](detection.png)", ""]
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", choices=sorted(SETS), default="full")
    parser.add_argument("--version", default=None)
    parser.add_argument("--models-dir", default=tr.MODELS_DIR)
    parser.add_argument("--reports-dir", default=REPORTS_DIR)
    args = parser.parse_args(argv)
    evaluate(args.size, args.models_dir, args.version, args.reports_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
