# -*- coding: utf-8 -*-
# Copyright: (c) 2026, machinenativeops.platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unsupervised streaming anomaly detector for a pod's multivariate metric series.

Per target:
1. ``anomaly_features.prepare``: regular grid, counters -> reset-aware rates, gauges smoothed;
2. per-series robust baselines: median / MAD over a trailing window that ends ``baseline_gap``
   seconds in the past (so a fresh change is compared with the time before it), scale floored by
   the reference window's MAD and the column's quantisation -> robust z per metric;
3. a multivariate model over window features (current z and 5-minute mean z of every metric)
   learnt from the pod's own reference window (the first ``min_history`` seconds): an
   IsolationForest, its score turned into robust-z units with the reference window's scores;
4. score = max(univariate max |z|, multivariate score); an alarm needs ``persistence`` seconds of
   consecutive points above the threshold (missing points neither count nor break the run).
The score at grid time t only uses samples at or before t + step / 2 (the grid's bucket tolerance).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import math
import warnings

from ansible_collections.machinenativeops.platform.plugins.module_utils import anomaly_features as af

try:
    import numpy as np
except ImportError:  # pragma: no cover
    np = None


DEFAULT_CONFIG = {
    "min_history": 1800.0,       # seconds of a pod's own history learnt as its normal (reference window)
    "baseline_window": 3600.0,   # trailing window of the per-series median / MAD
    "baseline_gap": 120.0,       # the baseline window ends this long before t
    "rate_window": 120.0,        # counters -> rate over this window
    "smooth": 60.0,              # gauges -> trailing mean over this window
    "persistence": 60.0,         # seconds of consecutive anomalous points before an alarm (>= 2 points)
    "mv_window": 300.0,          # window of the multivariate features
    "iforest_trees": 64,
    "iforest_max_samples": 128,
    "mv_weight": 0.5,            # multivariate score weight in the combination (1.0 gave 5-10 false alarms per pod-day early in a series)
    "use_multivariate": True,
    "seed": 0,
    "threshold": 8.0,            # in robust-z units; replaced by the calibrated value from the model manifest
    "max_points": 200000,
    # scoring 2 (model 1.1.0, which says so in its manifest): floors per metric kind, quantisation, low-traffic
    # awareness, agreement of evidence groups, hysteresis and episode merging; scoring 1 is the 1.0.0 detector
    # (max |z| over columns), the default for a configuration that does not name one
    "scoring": 1,
    "agree_ratio": 0.6,          # two independent groups each at this fraction of the threshold count as one full signal
    "release_ratio": 0.5,        # an alarm stays raised until the score falls below this fraction of the threshold
    "merge_gap": 600.0,          # alarms closer than this to the previous one's end are the same episode
    "min_requests": 30.0,        # fewer requests than this per rate window: no latency or error verdict
    "min_score_history": 600.0,  # scoring 2: seconds of a pod's own history before its first score (the minimum history)
}

SENSITIVITY = {"low": 1.25, "medium": 1.0, "high": 0.8}


def persistence_points(step, persistence):
    return max(2, math.ceil(float(persistence) / float(step) - 1e-9))


def alarm_flags(score, k, threshold, release=None):
    """Boolean alarm state per point: raised after k consecutive (ignoring NaN) points > threshold,
    and (hysteresis) kept while the score stays above ``release`` (default: the threshold itself)."""
    n = score.size
    flags = np.zeros(n, dtype=bool)
    release = threshold if release is None else min(float(release), threshold)
    run = 0
    on = False
    for i in range(n):
        s = score[i]
        if math.isnan(s):  # NaN: neither counts nor breaks
            flags[i] = on
            continue
        if on:
            if s > release:
                flags[i] = True
                continue
            on = False
            run = 0
        if s > threshold:
            run += 1
            if run >= k:
                on = True
                flags[i] = True
        else:
            run = 0
    return flags


def episodes(flags, score, threshold, merge_pts=0):
    """[(run_start, alarm_index, end_index)] for each alarm episode (run_start: first point of the run above
    threshold); an alarm starting at most ``merge_pts`` points after the previous episode's end joins it."""
    out = []
    n = flags.size
    i = 0
    while i < n:
        if flags[i]:
            j = i
            while j + 1 < n and flags[j + 1]:
                j += 1
            if out and merge_pts and i - out[-1][2] <= merge_pts:
                out[-1] = (out[-1][0], out[-1][1], j)
                i = j + 1
                continue
            start = i
            while start - 1 >= 0 and (score[start - 1] > threshold or score[start - 1] != score[start - 1]) and not flags[start - 1]:
                start -= 1
            while start < i and score[start] != score[start]:
                start += 1
            out.append((start, i, j))
            i = j + 1
        else:
            i += 1
    return out


def count_alarm_episodes(score, k, threshold, release=None, merge_pts=0):
    """Number of alarm episodes (what ``episodes(alarm_flags(...))`` counts)."""
    if release is None and not merge_pts:
        s = score[~np.isnan(score)]
        if s.size < k:
            return 0
        win = np.lib.stride_tricks.sliding_window_view(s, k)
        mins = win.min(axis=1)
        above = mins > threshold
        return int(above[0]) + int(np.sum(above[1:] & ~above[:-1]))
    flags = alarm_flags(score, k, threshold, release)
    rises = np.where(flags & ~np.concatenate([[False], flags[:-1]]))[0]
    if rises.size == 0:
        return 0
    if not merge_pts:
        return int(rises.size)
    falls = np.where(flags & ~np.concatenate([flags[1:], [False]]))[0]
    count = 1
    for r, prev_end in zip(rises[1:], falls[:-1]):  # noqa: B905
        if r - prev_end > merge_pts:
            count += 1
    return count


def decision_params(step, threshold, config=None):
    """(release level, merge points) of the alarm rule for a config (scoring 1: neither)."""
    cfg = _cfg(config)
    if int(cfg.get("scoring", 1)) < 2:
        return None, 0
    return float(threshold) * float(cfg["release_ratio"]), round(float(cfg["merge_gap"]) / float(step))


class ScoredTarget:
    def __init__(self, **kw):
        self.__dict__.update(kw)


def _cfg(config):
    cfg = dict(DEFAULT_CONFIG)
    for key, value in (config or {}).items():
        if value is not None:
            cfg[key] = value
    return cfg


def score_raw(raw, config=None, step=None):
    cfg = _cfg(config)
    prep = af.prepare(raw, min_history=cfg["min_history"], step=step, rate_window=cfg["rate_window"], smooth=cfg["smooth"],
                      max_points=cfg["max_points"])
    return score_prepared(prep, cfg)


def score_prepared(prep, config=None):
    """Scores for every grid point of a prepared series (NaN during the reference window)."""
    cfg = _cfg(config)
    step = prep.step
    values = prep.values
    n, _m = values.shape
    ref_end = prep.ref_end
    ref = values[:ref_end]
    v2 = int(cfg.get("scoring", 1)) >= 2
    # scoring 2 scores from min_score_history on (against a trailing baseline of at least that much clean history), so a
    # fault that starts inside the reference window is compared with the minutes before it instead of being learnt
    warm_end = int(min(ref_end, max(1, math.ceil(float(cfg["min_score_history"]) / step)))) if v2 else ref_end
    usable = np.sum(~np.isnan(ref), axis=0) >= 3
    ignored = [c for c, ok in zip(prep.columns, usable) if not ok]  # noqa: B905
    cols = [c for c, ok in zip(prep.columns, usable) if ok]  # noqa: B905
    vals = values[:, usable]
    floors = prep.floors[usable]
    z = np.full((n, len(cols)), np.nan)
    uni = np.full(n, np.nan)
    mv = np.full(n, np.nan)
    if cols and n > 0:
        w_pts = max(4, round(cfg["baseline_window"] / step))
        gap = max(1, round(cfg["baseline_gap"] / step))
        stride = max(1, min(gap, round(60.0 / step)))
        min_pts = max(3, min(w_pts // 4, round(600.0 / step)))
        med, mad = af.rolling_baseline(vals, w_pts, gap, min_pts, stride=stride)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            # scoring 2: the reference spread comes from the warm-up's first minutes only, so a fault that starts
            # later inside the reference window does not widen the scale it is judged with
            r_end = warm_end if v2 else ref_end
            ref_med = np.nanmedian(vals[:r_end], axis=0)
            ref_mad = np.nanmedian(np.abs(vals[:r_end] - ref_med[None, :]), axis=0)
        if int(cfg.get("scoring", 1)) >= 2:
            sem = af.column_semantics(cols, vals[:ref_end], cfg.get("canonical_map"))
            quant = np.array([af.quantisation_step(vals[:ref_end, j]) for j in range(len(cols))])
            floors = np.fmax(floors, 0.5 * quant)
            scale = af.robust_scale(mad, floors, ref_mad[None, :])
            abs_f = np.array([x[1] for x in sem], dtype=float)
            rel_f = np.array([x[2] for x in sem], dtype=float)
            with np.errstate(all="ignore"):
                kind_floor = np.fmax(abs_f[None, :], rel_f[None, :] * np.abs(med))
            scale = np.fmax(scale, kind_floor)
            z = af.robust_z(vals, med, scale)
            low_traffic = _low_traffic(vals, sem, cfg)
            if low_traffic is not None:
                for j, item in enumerate(sem):
                    if item[0] in ("latency", "errors"):
                        z[low_traffic, j] = np.nan
            uni = _evidence(np.abs(z), sem, float(cfg["agree_ratio"]))
        else:
            scale = af.robust_scale(mad, floors, ref_mad[None, :])
            z = af.robust_z(vals, med, scale)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                uni = np.nanmax(np.abs(z), axis=1)
        if cfg["use_multivariate"]:
            mv = _multivariate(z, step, ref_end, cfg)
    score = uni.copy()
    if cfg["use_multivariate"]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            score = np.fmax(uni, cfg["mv_weight"] * mv)
    score_start = min(n, warm_end + max(1, round(cfg["baseline_gap"] / step))) if v2 else ref_end
    score[:score_start] = np.nan
    return ScoredTarget(target=prep.target, times=prep.times, step=step, columns=cols, ignored=ignored, z=z, uni=uni, mv=mv,
                        score=score, ref_end=ref_end, prepared=prep, usable=usable, score_start=score_start)


def _low_traffic(vals, sem, cfg):
    """Rows where the request columns say fewer than ``min_requests`` requests per rate window (None: no request column)."""
    req = [j for j, item in enumerate(sem) if item[4] == "requests"]
    if not req:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        rate = np.nansum(vals[:, req], axis=1)
        known = np.any(~np.isnan(vals[:, req]), axis=1)
    return known & (rate * float(cfg["rate_window"]) < float(cfg["min_requests"]))


def _evidence(absz, sem, agree_ratio):
    """Score per row from independent evidence groups: the strongest group, or the second strongest
    divided by ``agree_ratio`` (two groups that agree at that fraction of the threshold make an alarm)."""
    n = absz.shape[0]
    groups = sorted(set(item[0] for item in sem))
    weight = np.array([item[3] for item in sem], dtype=float)
    g = np.full((n, len(groups)), -1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        for gi, name in enumerate(groups):
            idx = [j for j, item in enumerate(sem) if item[0] == name]
            block = absz[:, idx] * weight[idx][None, :]
            g[:, gi] = np.nan_to_num(np.nanmax(block, axis=1), nan=-1.0)
    have = np.any(g >= 0, axis=1)
    srt = -np.sort(-g, axis=1)
    best = srt[:, 0]
    if srt.shape[1] > 1:
        best = np.fmax(best, np.where(srt[:, 1] >= 0, srt[:, 1] / agree_ratio, -1.0))
    out = np.clip(best, 0.0, af.Z_CLIP)
    out[~have] = np.nan
    return out


def _mv_features(z, step, cfg):
    zf = np.nan_to_num(z, nan=0.0)
    w = max(2, round(cfg["mv_window"] / step))
    mean_w = np.vstack([af.trailing_nanmean(zf[:, j], w) for j in range(zf.shape[1])]).T if zf.shape[1] else zf
    return np.hstack([np.clip(zf, -af.Z_CLIP, af.Z_CLIP), np.nan_to_num(mean_w, nan=0.0)])


def _multivariate(z, step, ref_end, cfg):
    n = z.shape[0]
    out = np.full(n, np.nan)
    feats = _mv_features(z, step, cfg)
    has_base = ~np.all(np.isnan(z), axis=1)
    train_idx = np.where(has_base[:ref_end])[0]
    if train_idx.size < 16:
        return out
    from sklearn.ensemble import IsolationForest  # noqa: PLC0415 - lazy: the module reports missing_required_lib

    model = IsolationForest(n_estimators=int(cfg["iforest_trees"]), max_samples=min(int(cfg["iforest_max_samples"]), int(train_idx.size)),
                            random_state=int(cfg["seed"]))
    model.fit(feats[train_idx])
    score_rows = np.where(has_base)[0]
    raw = -model.score_samples(feats[score_rows])
    train_raw = -model.score_samples(feats[train_idx])
    # IsolationForest scores live in (0, 1]; express them in units of the reference window's spread
    # between its median and its 99th percentile (3 units there), so a pod whose reference scores are
    # tightly packed does not turn tiny score changes into alarms
    med = float(np.median(train_raw))
    spread = max(float(np.percentile(train_raw, 99)) - med, 1.4826 * float(np.median(np.abs(train_raw - med))), 0.02)
    out[score_rows] = np.clip(3.0 * (raw - med) / spread, -af.Z_CLIP, af.Z_CLIP)
    return out


def contributing(scored, start, end, top=5, min_abs_z=3.0):
    """Columns with the largest mean |z| over rows [start, end] (robust z, signed mean)."""
    if not scored.columns:
        return []
    seg = scored.z[start:end + 1]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        mean_z = np.nanmean(seg, axis=0)
    order = np.argsort(-np.nan_to_num(np.abs(mean_z), nan=-1.0))
    out = []
    for j in order[:top]:
        v = mean_z[j]
        if math.isnan(v) or abs(v) < min_abs_z:
            continue
        out.append({"metric": scored.columns[j], "z": round(float(v), 2), "direction": "up" if v > 0 else "down",
                    "kind": scored.prepared.kinds[list(scored.prepared.columns).index(scored.columns[j])]})
    return out


def decide(scored, threshold, persistence, config=None):
    k = persistence_points(scored.step, persistence)
    release, merge_pts = decision_params(scored.step, threshold, config)
    flags = alarm_flags(scored.score, k, threshold, release)
    eps = episodes(flags, scored.score, threshold, merge_pts)
    return flags, eps, k


def calibrate_threshold(scores, pod_days, k_of, target_fa_per_pod_day, lo=2.0, hi=af.Z_CLIP, normal_masks=None):  # noqa: PLR0917
    """Smallest threshold whose false alarms per pod-day on normal data is <= target.

    ``scores``: list of score arrays; ``k_of``: list of persistence point counts; ``normal_masks``:
    optional list of boolean arrays (True where the point is normal; other points set to NaN... are
    excluded by splitting the series at them).
    """
    def fa_rate(thr):
        total = 0
        for i, arr in enumerate(scores):
            if normal_masks is not None:
                arr = np.where(normal_masks[i], arr, -np.inf)  # noqa: PLW2901
            total += count_alarm_episodes(arr, k_of[i], thr)
        return total / max(pod_days, 1e-9)

    grid = np.round(np.arange(lo, hi + 1e-9, 0.05), 3)
    low, high = 0, grid.size - 1
    if fa_rate(grid[high]) > target_fa_per_pod_day:
        return float(grid[high]), fa_rate(grid[high])
    while low < high:
        mid = (low + high) // 2
        if fa_rate(grid[mid]) <= target_fa_per_pod_day:
            high = mid
        else:
            low = mid + 1
    return float(grid[low]), fa_rate(grid[low])


CLASSIFY_AFTER = 180.0   # seconds after the alarm the type is decided (or the end of the episode / data)
MIN_MAPPED = 3           # canonical metrics needed before the classifier is applied


# The canonical metrics an anomaly type is read from: the classifier's answer stands only when at least one
# of them is mapped in the input (and, when known metrics moved, one of them moved). Otherwise it abstains
# (anomaly_type "unknown"): a type the input cannot show is a guess from the training distribution.
TYPE_EVIDENCE = {
    "cpu_spike": ("cpu", "throttle"),
    "resource_contention": ("cpu", "throttle"),
    "memory_leak": ("memory",),
    "oom_kill": ("restarts",),
    "pod_crash": ("restarts",),
    "disk_full": ("disk",),
    "disk_io_bottleneck": ("disk_io",),
    "network_latency": ("latency", "network", "net_rx", "net_tx"),
    "dns_resolution_failure": ("errors", "error_ratio", "latency"),
    "high_error_rate": ("errors", "error_ratio"),
    "slow_response": ("latency",),
    "connection_pool_exhausted": ("latency", "errors", "error_ratio"),
    "deadlock": ("cpu", "requests", "latency"),
    "cache_thrashing": ("memory", "latency", "cpu"),
}


def abstain_reason(label, mapping, moved_canon):
    """Why the classifier's ``label`` is not supported by the input (None when it is)."""
    need = TYPE_EVIDENCE.get(label)
    if not need:
        return None
    if not any(c in mapping for c in need):
        return "%s needs one of %s, none of which is in the input" % (label, ", ".join(need))
    if moved_canon and not any(c in moved_canon for c in need):
        return "%s is read from %s, but the metrics that moved are %s" % (label, ", ".join(need), ", ".join(sorted(moved_canon)))
    return None


def classification_rows(step, start, alarm_idx, end):
    at = min(end, alarm_idx + round(CLASSIFY_AFTER / step))
    return start, at


def episode_features(prep, mapping, start, at):
    canon = af.canonical_matrix(prep, mapping)
    return af.classifier_features(canon, prep.resets, prep.observed, prep.step, start, at)


def classify(artifact_model, features):
    """(anomaly_type, confidence, probabilities) from a loaded artifact's classifier."""
    clf = artifact_model["classifier"]
    x = np.asarray(features, dtype=float).reshape(1, -1)
    proba = clf.predict_proba(x)[0]
    classes = [str(c) for c in clf.classes_]
    best = int(np.argmax(proba))
    probs = dict((c, round(float(p), 4)) for c, p in zip(classes, proba))  # noqa: B905
    return classes[best], float(proba[best]), probs


def analyze_target(raw, config=None, threshold=None, persistence=None, classifier=None, metric_map=None, timeline=False, step=None):  # noqa: PLR0917
    """Everything the module reports for one target (streaming: each decision uses samples <= its time)."""
    cfg = _cfg(config)
    if metric_map:
        cfg["canonical_map"] = metric_map
    thr = float(threshold if threshold is not None else cfg["threshold"])
    pers = float(persistence if persistence is not None else cfg["persistence"])
    result = {"target": raw.target, "samples": len(raw), "anomalous": False, "active": False, "score": None, "max_score": None,
              "threshold": round(thr, 3), "first_anomalous_at": None, "anomaly_start": None, "anomaly_type": None, "confidence": None,
              "type_probabilities": None, "classifier_applied": False, "contributing_metrics": [], "metrics_used": [], "metrics_ignored": [],
              "counters": [], "episodes": 0, "status": "ok", "message": None}
    if len(raw) == 0 or not raw.columns:
        result.update(status="insufficient_data", message="no numeric samples")
        return result
    span = float(raw.timestamps[-1] - raw.timestamps[0])
    if span < cfg["min_history"]:
        result.update(status="insufficient_history",
                      message="%d s of history, %d s needed before scoring (min_history)" % (int(span), int(cfg["min_history"])))
        result["metrics_ignored"] = list(raw.columns)
        return result
    scored = score_raw(raw, cfg, step=step)
    prep = scored.prepared
    result["metrics_used"] = list(scored.columns)
    result["metrics_ignored"] = list(scored.ignored)
    result["counters"] = [c for c, k in zip(prep.columns, prep.kinds) if k == "counter"]  # noqa: B905
    result["gaps"] = int(getattr(prep, "gaps", 0))
    result["merged_samples"] = int(getattr(prep, "merged", 0))
    if not scored.columns:
        result.update(status="insufficient_data", message="no metric has 3 samples in the reference window")
        return result
    s = scored.score
    finite = np.isfinite(s)
    if not finite.any():
        result.update(status="insufficient_history", message="no scorable point after the reference window")
        return result
    last = int(np.where(finite)[0][-1])
    result["score"] = round(float(s[last]), 3)
    result["max_score"] = round(float(np.nanmax(s)), 3)
    flags, eps, k = decide(scored, thr, pers, cfg)
    result["persistence_points"] = k
    result["step_seconds"] = prep.step
    result["episodes"] = len(eps)
    result["active"] = bool(flags[-1]) if flags.size else False
    if eps:
        result["anomalous"] = True
        mapping = af.map_columns(prep.columns, metric_map)
        result["mapped_metrics"] = dict((c, v) for c, v in mapping.items())
        details = []
        chosen = None
        for start, alarm_idx, end in eps:
            item = {"anomaly_start": af.iso(scored.times[start]), "alarm_at": af.iso(scored.times[alarm_idx]), "end": af.iso(scored.times[end]),
                    "max_score": round(float(np.nanmax(s[start:end + 1])), 3), "anomaly_type": None, "confidence": None,
                    "contributing_metrics": contributing(scored, start, alarm_idx)}
            if classifier is not None:
                c_start, at = classification_rows(prep.step, start, alarm_idx, end)
                feats, mapped = episode_features(prep, mapping, c_start, at)
                if mapped >= MIN_MAPPED and ("cpu" in mapping or "memory" in mapping):
                    label, conf, probs = classify(classifier, feats)
                    item.update(anomaly_type=label, confidence=round(conf, 4), type_probabilities=probs, classified_at=af.iso(scored.times[at]))
                    if int(cfg.get("scoring", 1)) >= 2:
                        canon_of = dict((col, canon) for canon, cols in mapping.items() for col in cols)
                        moved = set(canon_of[m["metric"]] for m in item["contributing_metrics"] if m["metric"] in canon_of)
                        reason = abstain_reason(label, mapping, moved)
                        item["moved_metric_kinds"] = sorted(moved)
                        if reason:
                            item.update(anomaly_type="unknown", confidence=round(min(conf, 1.0 - conf), 4), classifier_type=label,
                                        abstained=reason)
                else:
                    result["message"] = "classifier not applied: %d known metrics mapped (need %d incl. cpu or memory)" % (mapped, MIN_MAPPED)
            details.append(item)
            # report the first episode the classifier does not call benign (or the first one)
            if chosen is None and item["anomaly_type"] not in (None, "healthy"):
                chosen = item
        chosen = chosen or details[0]
        result["first_anomalous_at"] = chosen["alarm_at"]
        result["anomaly_start"] = chosen["anomaly_start"]
        result["contributing_metrics"] = chosen["contributing_metrics"]
        if chosen.get("abstained"):
            result["classifier_abstained"] = chosen["abstained"]
        if chosen["anomaly_type"] is not None:
            result.update(anomaly_type=chosen["anomaly_type"], confidence=chosen["confidence"], type_probabilities=chosen["type_probabilities"],
                          classifier_applied=True, classified_at=chosen["classified_at"])
        result["episode_details"] = [dict((k, v) for k, v in d.items() if k != "type_probabilities") for d in details[:20]]
    if timeline:
        result["timeline"] = [{"timestamp": af.iso(t), "score": (None if math.isnan(v) else round(float(v), 3)), "alarm": bool(f)}
                              for t, v, f in zip(scored.times, s, flags)]  # noqa: B905
    return result
