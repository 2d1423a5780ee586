"""Detector scoring, event-level metrics, threshold calibration and the two baselines.

Event metrics (per pod):
- a *detection* is the first alarm at or after the injected onset and before the anomaly ends;
  ``recall_5min`` counts detections within 300 s of onset, ``delay`` is alarm time - onset;
- a *false alarm* is an alarm episode that starts on a normal point: before the onset, or on a
  healthy pod (points from the onset until 30 minutes after the end are not counted as normal time);
- false alarms per pod-day = false alarms / normal scored time in days.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
from ansible_collections.machinenativeops.platform.plugins.module_utils import anomaly_detect as ad
from ansible_collections.machinenativeops.platform.plugins.module_utils import anomaly_features as af
from sklearn.ensemble import IsolationForest

GRACE_AFTER_END = 1800.0
RECALL_WINDOW = 300.0


class Scored:
    """What metrics need from a scored pod (kept small so thousands fit in memory)."""

    def __init__(self, pod, times, step, ref_end, uni, mv, extra=None):  # noqa: PLR0917
        self.pod = pod
        self.times = times
        self.step = step
        self.ref_end = ref_end
        self.uni = uni
        self.mv = mv
        self.extra = extra or {}

    def normal_mask(self):
        mask = np.ones(self.times.size, dtype=bool)
        mask[: self.ref_end] = False
        if self.pod.onset is not None:
            mask &= ~((self.times >= self.pod.onset) & (self.times <= self.pod.end + GRACE_AFTER_END))
        return mask

    def normal_days(self):
        return float(np.sum(self.normal_mask())) * self.step / 86400.0


def combine(uni, mv, mode="max", weight=1.0):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        if mode == "uni":
            return uni.copy()
        if mode == "mv":
            return weight * mv
        return np.fmax(uni, weight * mv)


def score_pods(pods, config=None):
    out = []
    for pod in pods:
        s = ad.score_raw(pod.to_raw(), config)
        out.append(Scored(pod, s.times, s.step, getattr(s, "score_start", s.ref_end), s.uni, s.mv))
    return out


def scores_of(scored, mode="max", weight=1.0, key=None):
    res = []
    for s in scored:
        arr = s.extra[key] if key else combine(s.uni, s.mv, mode, weight)
        arr = arr.copy()
        arr[: s.ref_end] = np.nan
        res.append(arr)
    return res


def calibrate(scored, arrays, persistence, target_fa, lo=0.0, hi=None, config=None):  # noqa: PLR0917
    k_of = [ad.persistence_points(s.step, persistence) for s in scored]
    steps = [s.step for s in scored]
    masks = [s.normal_mask() for s in scored]
    days = sum(s.normal_days() for s in scored)
    if hi is None:
        finite = np.concatenate([a[np.isfinite(a)] for a in arrays]) if arrays else np.array([1.0])
        hi = float(np.max(finite)) + 0.1 if finite.size else 1.0
    thr, fa = _calibrate(arrays, days, k_of, target_fa, lo, hi, masks, steps, config)
    return thr, fa


def _calibrate(arrays, days, k_of, target, lo, hi, masks, steps=None, config=None):  # noqa: PLR0917
    def fa_rate(thr):
        total = 0
        for i, a in enumerate(arrays):
            release, merge = ad.decision_params(steps[i], thr, config) if steps is not None and config is not None else (None, 0)
            total += ad.count_alarm_episodes(np.where(masks[i], a, -np.inf), k_of[i], thr, release, merge)
        return total / max(days, 1e-9)

    low, high = lo, hi
    if fa_rate(high) > target:
        return high, fa_rate(high)
    for _ in range(40):
        mid = (low + high) / 2.0
        if fa_rate(mid) <= target:
            high = mid
        else:
            low = mid
    return high, fa_rate(high)


def event_metrics(scored, arrays, threshold, persistence, config=None):
    """Recall within 5 min (any alarm raised at/after onset), new-alarm recall (only alarm episodes that START at
    or after the onset, within 5 min: an alarm already raised before the onset is no detection) and false
    alarm episodes per normal pod-day (an episode is counted once, episodes closer than the merge gap are one)."""
    fa = 0
    new5 = 0
    days = 0.0
    detected5 = 0
    detected_any = 0
    delays = []
    per_type = {}
    n_anom = 0
    alarm_times = {}
    for s, a in zip(scored, arrays, strict=False):
        k = ad.persistence_points(s.step, persistence)
        release, merge = ad.decision_params(s.step, threshold, config) if config is not None else (None, 0)
        flags = ad.alarm_flags(a, k, threshold, release)
        eps = ad.episodes(flags, a, threshold, merge)
        normal = s.normal_mask()
        days += s.normal_days()
        for _start, alarm_idx, _end in eps:
            if normal[alarm_idx]:
                fa += 1
        if s.pod.onset is None:
            continue
        n_anom += 1
        rec = per_type.setdefault(s.pod.label, {"n": 0, "detected_5min": 0, "detected": 0, "delays": []})
        rec["n"] += 1
        for _start, alarm_idx, _end in eps:
            t_alarm = s.times[alarm_idx]
            if s.pod.onset <= t_alarm <= min(s.pod.onset + RECALL_WINDOW, s.pod.end) and (alarm_idx == 0 or not flags[alarm_idx - 1]):
                new5 += 1
                break
        idx = np.where(flags & (s.times >= s.pod.onset) & (s.times <= s.pod.end))[0]
        if idx.size:
            delay = float(s.times[idx[0]] - s.pod.onset)
            detected_any += 1
            rec["detected"] += 1
            delays.append(delay)
            rec["delays"].append(delay)
            alarm_times[s.pod.target] = int(idx[0])
            if delay <= RECALL_WINDOW:
                detected5 += 1
                rec["detected_5min"] += 1
    out = {
        "threshold": round(float(threshold), 3),
        "false_alarms": fa,
        "normal_pod_days": round(days, 2),
        "false_alarms_per_pod_day": round(fa / max(days, 1e-9), 3),
        "anomalous_pods": n_anom,
        "recall_5min": round(detected5 / max(n_anom, 1), 3),
        "recall_any": round(detected_any / max(n_anom, 1), 3),
        "new_alarm_recall_5min": round(new5 / max(n_anom, 1), 3),
        "delay_median_s": round(float(np.median(delays)), 1) if delays else None,
        "delay_p90_s": round(float(np.percentile(delays, 90)), 1) if delays else None,
        "per_type": {},
    }
    for label, rec in sorted(per_type.items()):
        out["per_type"][label] = {
            "n": rec["n"],
            "recall_5min": round(rec["detected_5min"] / max(rec["n"], 1), 3),
            "recall_any": round(rec["detected"] / max(rec["n"], 1), 3),
            "delay_median_s": round(float(np.median(rec["delays"])), 1) if rec["delays"] else None,
        }
    return out, alarm_times


# ----------------------------------------------------------------------------- baselines

def rolling_zscore_scores(pod, config=None, window=1800.0):
    """Baseline 1: mean/std z-score over a trailing window (same rate conversion), max |z| over metrics."""
    cfg = ad._cfg(config)
    prep = af.prepare(pod.to_raw(), min_history=cfg["min_history"], rate_window=cfg["rate_window"], smooth=0.0)
    v = prep.values
    n = v.shape[0]
    w = max(4, round(window / prep.step))
    pad = np.vstack([np.full((w, v.shape[1]), np.nan), v])
    win = np.lib.stride_tricks.sliding_window_view(pad, w, axis=0)[:n]  # window ending just before row i
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        mu = np.nanmean(win, axis=2)
        sd = np.nanstd(win, axis=2)
        z = np.abs(v - mu) / np.where(sd > 0, sd, np.nan)
        score = np.nanmax(np.clip(z, 0, 1e6), axis=1)
    return prep, score


def plain_iforest_scores(pod, config=None):
    """Baseline 2: IsolationForest on the metric values (same rate conversion), standardised with the
    pod's reference window, fitted on that window, score = -score_samples."""

    cfg = ad._cfg(config)
    prep = af.prepare(pod.to_raw(), min_history=cfg["min_history"], rate_window=cfg["rate_window"], smooth=0.0)
    v = prep.values
    ref = v[: prep.ref_end]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        mu = np.nanmean(ref, axis=0)
        sd = np.nanstd(ref, axis=0)
    sd = np.where((sd > 0) & np.isfinite(sd), sd, 1.0)
    mu = np.where(np.isfinite(mu), mu, 0.0)
    x = np.nan_to_num((v - mu) / sd, nan=0.0)
    score = np.full(v.shape[0], np.nan)
    train = x[: prep.ref_end]
    if train.shape[0] >= 16:
        model = IsolationForest(n_estimators=100, random_state=0).fit(train)
        score = -model.score_samples(x)
    return prep, score


def score_baselines(pods, config=None):
    out = []
    for pod in pods:
        prep, rz = rolling_zscore_scores(pod, config)
        _, pif = plain_iforest_scores(pod, config)
        out.append(Scored(pod, prep.times, prep.step, prep.ref_end, rz, pif, extra={"rolling_z": rz, "plain_iforest": pif}))
    return out


def fmt(x):
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    return f"{x:.3g}"
