"""Train the anomaly classifier and calibrate the detector threshold: ``python -m ml.train``.

Writes ml/models/<version>/model.joblib and manifest.json (sha256, feature names, classes,
library versions, training date, detector configuration and calibration). Seeded end to end.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import time

import joblib
import numpy as np
import sklearn
from ansible_collections.machinenativeops.platform.plugins.module_utils import anomaly_detect as ad
from ansible_collections.machinenativeops.platform.plugins.module_utils import anomaly_features as af
from ansible_collections.machinenativeops.platform.plugins.module_utils import anomaly_models as am
from sklearn.ensemble import HistGradientBoostingClassifier

from ml import evaluation as ev
from ml import generator as gen

VERSION = "1.1.0"
DETECTOR = {"scoring": 2}   # what new versions are calibrated and shipped with (1.0.0: scoring 1)
SEED = 20261122
MODELS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "models")
TARGET_FA_PER_POD_DAY = 1.0
CALIBRATION_FA = 0.5   # calibrate below the target to leave room for data the threshold was not fitted on
PERSISTENCE = ad.DEFAULT_CONFIG["persistence"]
HARD_NEGATIVE_MV_WEIGHT = 1.0  # the detector setting the classifier's hard negatives were mined with

SIZES = {
    "quick": {"clf_per_type": 25, "clf_healthy": 60, "cal_healthy": 16, "cal_per_type": 2, "points_per_pod": 3},
    "full": {"clf_per_type": 90, "clf_healthy": 220, "cal_healthy": 60, "cal_per_type": 5, "points_per_pod": 4},
}


def feature_rows(pod, rng, points, config=None, hard_negative_threshold=5.0):
    """(X rows, labels) sampled from one generated pod, with the module's feature code."""
    cfg = ad._cfg(config)
    raw = pod.to_raw()
    prep = af.prepare(raw, min_history=cfg["min_history"], rate_window=cfg["rate_window"], smooth=cfg["smooth"])
    mapping = af.map_columns(prep.columns)
    canon = af.canonical_matrix(prep, mapping)
    step = prep.step
    rows, labels = [], []
    n = prep.times.size

    def add(start, at, label):
        start = int(max(prep.ref_end, min(start, n - 1)))
        at = int(max(start, min(at, n - 1)))
        vec, _ = af.classifier_features(canon, prep.resets, prep.observed, step, start, at)
        rows.append(vec)
        labels.append(label)

    if pod.onset is not None:
        on = int(np.searchsorted(prep.times, pod.onset))
        last = int(np.searchsorted(prep.times, pod.end, side="right")) - 1
        for _ in range(points):
            start = on + int(rng.uniform(0, 90) / step)
            at = on + int(rng.uniform(60, 480) / step)
            add(start, min(at, last), pod.label)
        # pre-onset normal points of the same pod
        if on - prep.ref_end > 10:
            at = int(rng.integers(prep.ref_end + 5, on))
            add(at - int(rng.uniform(30, 120) / step), at, "healthy")
    else:
        for _ in range(points):
            at = int(rng.integers(min(prep.ref_end + 5, n - 1), n))
            add(at - int(rng.uniform(30, 120) / step), at, "healthy")
        # hard negatives: where the detector would alarm on a healthy pod at a low threshold
        scored = ad.score_prepared(prep, dict(cfg, mv_weight=HARD_NEGATIVE_MV_WEIGHT))
        _flags, eps, _k = ad.decide(scored, hard_negative_threshold, PERSISTENCE)
        for start, alarm_idx, end in eps[:3]:
            c_start, at = ad.classification_rows(step, start, alarm_idx, end)
            add(c_start, at, "healthy")
    return rows, labels


def build_classifier_set(seed, size, log=print):
    rng = np.random.default_rng(seed + 1)
    pods = gen.generate_set(seed, size["clf_per_type"], size["clf_healthy"], hours=3.0)
    X, y = [], []
    for i, pod in enumerate(pods):
        rows, labels = feature_rows(pod, rng, size["points_per_pod"])
        X.extend(rows)
        y.extend(labels)
        if (i + 1) % 500 == 0:
            log(f"  features: {i + 1}/{len(pods)} pods")
    return np.asarray(X, dtype=float), np.asarray(y)


def make_classifier(seed):

    return HistGradientBoostingClassifier(max_iter=150, learning_rate=0.1, max_leaf_nodes=15, l2_regularization=1.0,
                                          early_stopping=False, random_state=seed)


def calibration_pods(seed, size):
    """Healthy pods (24 h, 6 h and 1.5 h long: early history is where scores are least stable)
    plus a few anomalous pods, whose pre-onset time also counts as normal."""
    half = size["cal_healthy"] // 2
    return (gen.generate_set(seed + 7, size["cal_per_type"], half, hours=3.0, healthy_hours=24.0)
            + gen.generate_set(seed + 8, 0, size["cal_healthy"] - half, hours=6.0)
            + gen.generate_set(seed + 9, 0, size["cal_healthy"], hours=1.5))   # the first hour after the reference window


def calibrate_detector(seed, size, config=None, log=print):
    pods = calibration_pods(seed, size)
    scored = ev.score_pods(pods, config)
    cfg = ad._cfg(config)
    arrays = ev.scores_of(scored, "max", cfg["mv_weight"])
    thr, fa = ev.calibrate(scored, arrays, cfg["persistence"], CALIBRATION_FA, lo=2.0, hi=af.Z_CLIP, config=cfg)
    metrics, _ = ev.event_metrics(scored, arrays, thr, cfg["persistence"], config=cfg)
    log(f"  calibrated threshold {thr:.3f}: {fa:.3f} false alarms per pod-day on {metrics['normal_pod_days']:.1f} normal pod-days, "
        f"recall within 5 min {metrics['recall_5min']:.3f}")
    return round(thr, 3), metrics


def library_versions():

    return {"python": platform.python_version(), "numpy": np.__version__, "scikit-learn": sklearn.__version__, "joblib": joblib.__version__}


def train(version=VERSION, seed=SEED, size_name="full", models_dir=MODELS_DIR, log=print):

    size = SIZES[size_name]
    t0 = time.time()
    log(f"generating classifier training data ({size_name})")
    X, y = build_classifier_set(seed, size, log)
    log(f"  {X.shape[0]} rows x {X.shape[1]} features, {len(set(y.tolist()))} classes ({time.time() - t0:.1f}s)")
    t1 = time.time()
    clf = make_classifier(seed).fit(X, y)
    fit_seconds = time.time() - t1
    log(f"  classifier fitted in {fit_seconds:.1f}s")
    return _finish(version, seed, size_name, models_dir, log, clf, X, y, t0, fit_seconds)


def recalibrate(version=VERSION, models_dir=MODELS_DIR, log=print):
    """Recompute only the detector calibration of an existing artifact (the classifier is reused after its
    sha256 check); what ``train`` would write with the same seed, since the classifier does not depend on it."""
    artifact = am.load(version=version, models_dir=models_dir)
    manifest = artifact["manifest"]
    size = SIZES[manifest["training_size"]]
    t0 = time.time()
    threshold, cal_metrics = calibrate_detector(manifest["seed"], size, config=DETECTOR, log=log)
    detector = dict(ad.DEFAULT_CONFIG, **DETECTOR)
    detector.update({"threshold": threshold, "target_false_alarms_per_pod_day": TARGET_FA_PER_POD_DAY,
                     "calibration_false_alarms_per_pod_day": CALIBRATION_FA, "calibration": cal_metrics})
    manifest["detector"] = detector
    manifest["metrics"] = {}
    manifest.setdefault("timings_seconds", {})["calibration"] = round(time.time() - t0, 1)
    am.write_manifest(artifact["path"], manifest)
    log(f"recalibrated {artifact['path']}: threshold {threshold}")
    return artifact["path"], manifest


def _finish(version, seed, size_name, models_dir, log, clf, X, y, t0, fit_seconds):  # noqa: PLR0917
    size = SIZES[size_name]
    t2 = time.time()
    log("calibrating the detector threshold")
    threshold, cal_metrics = calibrate_detector(seed, size, config=DETECTOR, log=log)
    calib_seconds = time.time() - t2
    out_dir = os.path.join(models_dir, version)
    os.makedirs(out_dir, exist_ok=True)
    artifact = {"classifier": clf, "feature_names": list(af.CLASSIFIER_FEATURE_NAMES), "classes": [str(c) for c in clf.classes_], "version": version}
    model_path = os.path.join(out_dir, am.MODEL_FILE)
    joblib.dump(artifact, model_path, compress=3)
    detector = dict(ad.DEFAULT_CONFIG, **DETECTOR)
    detector.update({"threshold": threshold, "target_false_alarms_per_pod_day": TARGET_FA_PER_POD_DAY,
                     "calibration_false_alarms_per_pod_day": CALIBRATION_FA, "calibration": cal_metrics})
    manifest = {
        "name": "machinenativeops.platform anomaly models",
        "version": version,
        "file": am.MODEL_FILE,
        "sha256": am.sha256_file(model_path),
        "size_bytes": os.path.getsize(model_path),
        "created": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "seed": seed,
        "training_size": size_name,
        "training_rows": int(X.shape[0]),
        "class_counts": dict((str(c), int(n)) for c, n in zip(*np.unique(y, return_counts=True), strict=False)),
        "feature_names": list(af.CLASSIFIER_FEATURE_NAMES),
        "classes": [str(c) for c in clf.classes_],
        "classifier": type(clf).__name__,
        "library_versions": library_versions(),
        "timings_seconds": {"total": round(time.time() - t0, 1), "classifier_fit": round(fit_seconds, 1), "calibration": round(calib_seconds, 1)},
        "detector": detector,
        "canonical_aliases": af.CANONICAL_ALIASES,
        "metrics": {},
    }
    old = os.path.join(out_dir, am.MANIFEST_FILE)
    if os.path.isfile(old):  # keep the evaluation figures of an earlier run with the same artifact
        try:
            with open(old, encoding="utf-8") as handle:
                prev = json.load(handle)
            if prev.get("sha256") == manifest["sha256"]:
                manifest["metrics"] = prev.get("metrics", {})
        except ValueError:
            pass
    am.write_manifest(out_dir, manifest)
    log(f"wrote {out_dir} (sha256 {manifest['sha256']}, {manifest['size_bytes']} bytes) in {time.time() - t0:.1f}s")
    return out_dir, manifest


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--version", default=VERSION)
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--size", choices=sorted(SIZES), default="full")
    parser.add_argument("--models-dir", default=MODELS_DIR)
    parser.add_argument("--calibrate-only", action="store_true", help="recompute the detector calibration of an existing artifact")
    args = parser.parse_args(argv)
    if args.calibrate_only:
        recalibrate(args.version, args.models_dir)
    else:
        train(args.version, args.seed, args.size, args.models_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
