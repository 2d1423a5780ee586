# -*- coding: utf-8 -*-
# Copyright: (c) 2026, machinenativeops.platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Feature engineering for pod metric time series (written once, used by the module and ml/).

Everything here is causal: the value at grid point ``t`` is computed from samples at or
before ``t`` only, and per-column decisions (counter or gauge, quantisation floors) are
taken from the reference window (the first ``min_history`` seconds of the series), so a
prefix of a series gives exactly the same values as the full series up to that prefix.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import csv
import datetime
import io
import json
import math
import re
import time
import warnings

try:
    import numpy as np

    HAS_NUMPY = True
    NUMPY_IMPORT_ERROR = None
except ImportError as exc:  # pragma: no cover - exercised through the module's missing_required_lib path
    np = None
    HAS_NUMPY = False
    NUMPY_IMPORT_ERROR = str(exc)


class FeatureError(ValueError):
    """Input that cannot be turned into a series; the message names the target/column/line."""


# Canonical metrics the classifier knows. Values: exact column names (normalised: lower case,
# non-alphanumerics -> "_") that map to the canonical metric. Users can override per canonical name.
CANONICAL_ALIASES = {
    "cpu": ["container_cpu_usage_seconds_total", "cpu_usage_seconds_total", "cpu_seconds_total", "process_cpu_seconds_total",
            "cpu_usage", "cpu", "cpu_cores", "cpu_utilization", "cpu_usage_cores", "cpu_rate", "pod_cpu_usage"],
    "memory": ["container_memory_working_set_bytes", "memory_working_set_bytes", "container_memory_usage_bytes", "memory_usage_bytes",
               "container_memory_rss", "process_resident_memory_bytes", "memory_usage", "memory", "mem", "memory_bytes", "mem_usage",
               "memory_mb", "memory_mib", "pod_memory_usage"],
    "disk": ["container_fs_usage_bytes", "fs_usage_bytes", "kubelet_volume_stats_used_bytes", "disk_usage", "disk_usage_bytes", "disk",
             "disk_used_bytes", "fs_usage", "disk_used"],
    "disk_io": ["container_fs_io_time_seconds_total", "container_fs_writes_bytes_total", "container_fs_reads_bytes_total", "disk_io_bytes_total",
                "fs_io_bytes_total", "disk_io", "disk_io_rate", "disk_io_time", "io_wait", "iowait"],
    "network": ["network_bytes_sec", "network_bytes_total", "network_bytes", "network", "net_bytes", "network_io"],
    "net_rx": ["container_network_receive_bytes_total", "network_receive_bytes_total", "net_rx", "rx_bytes", "network_rx_bytes", "net_rx_bytes"],
    "net_tx": ["container_network_transmit_bytes_total", "network_transmit_bytes_total", "net_tx", "tx_bytes", "network_tx_bytes", "net_tx_bytes"],
    "requests": ["istio_requests_total", "http_requests_total", "requests_total", "requests", "rps", "request_rate", "requests_per_second",
                 "throughput", "qps"],
    "errors": ["istio_requests_5xx_total", "http_errors_total", "errors_total", "error_count", "errors", "http_5xx_total"],
    "error_ratio": ["error_rate", "error_ratio", "errors_ratio", "error_percent", "error_pct"],
    "latency": ["latency_ms", "latency", "latency_p99_ms", "latency_p99", "p99_latency", "p99_latency_ms", "response_time_ms", "response_time",
                "request_duration_seconds", "latency_seconds", "latency_p95_ms", "duration_ms"],
    "restarts": ["kube_pod_container_status_restarts_total", "restart_count", "restarts", "restarts_total", "container_restarts", "restart_total"],
    "throttle": ["container_cpu_cfs_throttled_seconds_total", "container_cpu_cfs_throttled_periods_total", "cpu_throttled_seconds_total",
                 "cpu_throttling", "cpu_throttled", "throttled_seconds", "throttle"],
}

# What the classifier sees per canonical metric (all relative to the pod's own baseline, so units do not matter).
CANONICAL_FEATURES = ["cpu", "memory", "disk", "disk_io", "network", "requests", "error_ratio", "latency", "restarts", "throttle"]
PER_METRIC_FEATURES = ["z", "rel", "slope", "vol"]
GLOBAL_FEATURES = ["missing_recent", "resets_recent", "n_mapped"]
CLASSIFIER_FEATURE_NAMES = ["%s_%s" % (c, f) for c in CANONICAL_FEATURES for f in PER_METRIC_FEATURES] + GLOBAL_FEATURES

COUNTER_SUFFIXES = ("_total", "_count", "_sum", "_seconds_total", "_bytes_total")
Z_CLIP = 30.0


def normalise_name(name):
    return re.sub(r"[^a-z0-9]+", "_", str(name).strip().lower()).strip("_")


def require_numpy():
    if not HAS_NUMPY:
        raise FeatureError("numpy is required: %s" % NUMPY_IMPORT_ERROR)


# --------------------------------------------------------------------------- parsing

def parse_timestamp(value):
    """Unix seconds (int/float/str), unix milliseconds (> 1e11) or RFC3339/ISO 8601 -> float seconds."""
    if isinstance(value, bool) or value is None:
        raise FeatureError("timestamp %r is not a time" % (value,))
    if isinstance(value, (int, float)):
        ts = float(value)
    elif isinstance(value, datetime.datetime):
        dt = value if value.tzinfo else value.replace(tzinfo=datetime.timezone.utc)
        return dt.timestamp()
    else:
        text = str(value).strip()
        try:
            ts = float(text)
        except ValueError:
            iso = text.replace("Z", "+00:00").replace("z", "+00:00")
            if " " in iso and "T" not in iso:
                iso = iso.replace(" ", "T", 1)
            try:
                dt = datetime.datetime.fromisoformat(iso)
            except ValueError:
                raise FeatureError("timestamp %r is neither unix seconds nor ISO 8601" % (value,)) from None
            if dt.tzinfo is None:
                dt = dt.replace(tzinfo=datetime.timezone.utc)
            return dt.timestamp()
    if not math.isfinite(ts):
        raise FeatureError("timestamp %r is not finite" % (value,))
    if ts > 1e11:  # milliseconds
        ts = ts / 1000.0
    return ts


def to_float(value):
    """Numeric value or NaN (booleans count as 0/1, non-numeric strings and +-inf become NaN)."""
    if value is None:
        return float("nan")
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, (int, float)):
        out = float(value)
    else:
        text = str(value).strip()
        if text == "":
            return float("nan")
        try:
            out = float(text)
        except ValueError:
            return float("nan")
    if not math.isfinite(out) or abs(out) > 1e300:
        return float("nan")
    return out


def iso(ts):
    if ts is None:
        return None
    return datetime.datetime.fromtimestamp(float(ts), tz=datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class RawSeries:
    """Samples of one target: sorted unique timestamps and a (n, m) float matrix with NaN for missing."""

    def __init__(self, target, timestamps, columns, values):
        self.target = target
        self.timestamps = timestamps
        self.columns = list(columns)
        self.values = values

    def __len__(self):
        return len(self.timestamps)

    def truncate(self, end_ts):
        keep = self.timestamps <= end_ts
        return RawSeries(self.target, self.timestamps[keep], self.columns, self.values[keep])


FUTURE_TOLERANCE = 300.0   # seconds a sample may lie ahead of the controller's clock (clock skew) before it is refused


def samples_to_series(samples, target_key="target", timestamp_key="timestamp", metrics_key="metrics", warnings_out=None, now=None):  # noqa: PLR0917
    """List of {target, timestamp, metrics: {name: value}} -> {target: RawSeries}.

    Rows are taken in the order given. A value for a (target, metric) whose timestamp is earlier
    than one already seen is out of order, one at a timestamp already seen is a duplicate, and a
    sample more than ``FUTURE_TOLERANCE`` seconds after ``now`` (default: the clock) is in the future:
    all three are ignored and counted in ``warnings_out`` (a list that receives one message per
    kind and target). Rows at the same time with other metrics are merged (long format); columns
    that never carry a finite number are dropped.
    """
    require_numpy()
    now = time.time() if now is None else float(now)
    rows = {}
    last_seen = {}
    problems = {}

    def note(kind, target, ts, idx):
        slot = problems.setdefault((kind, target), [0, idx, ts])
        slot[0] += 1

    for idx, sample in enumerate(samples or []):
        if not isinstance(sample, dict):
            raise FeatureError("sample #%d is not a mapping" % idx)
        target = sample.get(target_key)
        if target is None or str(target) == "":
            raise FeatureError("sample #%d has no %s" % (idx, target_key))
        if timestamp_key not in sample:
            raise FeatureError("sample #%d (target %s) has no %s" % (idx, target, timestamp_key))
        ts = parse_timestamp(sample[timestamp_key])
        metrics = sample.get(metrics_key)
        if metrics is None:
            metrics = dict((k, v) for k, v in sample.items() if k not in (target_key, timestamp_key))
        if not isinstance(metrics, dict):
            raise FeatureError("sample #%d (target %s): %s is not a mapping" % (idx, target, metrics_key))
        target = str(target)
        if ts > now + FUTURE_TOLERANCE:
            note("future", target, ts, idx)
            continue
        per_target = rows.setdefault(target, {})
        slot = per_target.get(ts)
        kinds = set()
        accepted = {}
        for name, value in metrics.items():
            name = str(name)  # noqa: PLW2901
            key = (target, name)
            prev = last_seen.get(key)
            if prev is not None and ts < prev:
                kinds.add("out_of_order")
                continue
            if prev is not None and ts == prev and slot is not None and name in slot:
                kinds.add("duplicate")
                continue
            accepted[name] = to_float(value)
        for kind in kinds:
            note(kind, target, ts, idx)
        if not accepted:
            continue
        slot = per_target.setdefault(ts, {})
        for name, value in accepted.items():
            slot[name] = value
            last_seen[(target, name)] = ts
    if warnings_out is not None:
        what = {"future": "ignored %d sample(s) more than %ds in the future (first: sample #%d at %s)",
                "out_of_order": "ignored %d out-of-order sample(s) (earlier than a sample already given; first: sample #%d at %s)",
                "duplicate": "ignored %d duplicate sample(s) (a timestamp already given for the same metric; first: sample #%d at %s)"}
        for (kind, target), (count, idx, ts) in sorted(problems.items(), key=lambda kv: (kv[0][1], kv[0][0])):
            if kind == "future":
                msg = what[kind] % (count, int(FUTURE_TOLERANCE), idx, iso(ts))
            else:
                msg = what[kind] % (count, idx, iso(ts))
            warnings_out.append({"target": target, "kind": kind, "count": count, "message": "target %s: %s" % (target, msg)})
    out = {}
    for target, by_ts in rows.items():
        times = sorted(by_ts)
        cols = []
        seen = set()
        for ts in times:
            for name, value in by_ts[ts].items():
                if name not in seen and not math.isnan(value):
                    seen.add(name)
                    cols.append(name)
        cols.sort()
        mat = np.full((len(times), len(cols)), np.nan)
        index = dict((c, j) for j, c in enumerate(cols))
        for i, ts in enumerate(times):
            for name, value in by_ts[ts].items():
                j = index.get(name)
                if j is not None:
                    mat[i, j] = value
        out[target] = RawSeries(target, np.asarray(times, dtype=float), cols, mat)
    return out


def read_metrics_file(path, target_column="target", timestamp_column="timestamp", default_target=None):
    """CSV (header with timestamp, target and any metric columns) or JSON lines -> list of samples."""
    try:
        with open(path, "r", encoding="utf-8") as handle:
            text = handle.read()
    except (IOError, OSError) as exc:
        raise FeatureError("cannot read metrics file %s: %s" % (path, exc)) from None
    stripped = text.lstrip()
    samples = []
    if stripped.startswith("{") or stripped.startswith("["):
        if stripped.startswith("["):
            try:
                records = json.loads(text)
            except ValueError as exc:
                raise FeatureError("metrics file %s: invalid JSON: %s" % (path, exc)) from None
        else:
            records = []
            for lineno, line in enumerate(text.splitlines(), 1):
                if not line.strip():
                    continue
                try:
                    records.append(json.loads(line))
                except ValueError as exc:
                    raise FeatureError("metrics file %s line %d: invalid JSON: %s" % (path, lineno, exc)) from None
        for lineno, rec in enumerate(records, 1):
            if not isinstance(rec, dict):
                raise FeatureError("metrics file %s record %d is not an object" % (path, lineno))
            samples.append(_record_to_sample(rec, target_column, timestamp_column, default_target, path, lineno))
        return samples
    reader = csv.DictReader(io.StringIO(text))
    if not reader.fieldnames:
        raise FeatureError("metrics file %s has no header" % path)
    if timestamp_column not in reader.fieldnames:
        raise FeatureError("metrics file %s has no %r column (columns: %s)" % (path, timestamp_column, ", ".join(reader.fieldnames)))
    for lineno, rec in enumerate(reader, 2):
        samples.append(_record_to_sample(rec, target_column, timestamp_column, default_target, path, lineno))
    return samples


def _record_to_sample(rec, target_column, timestamp_column, default_target, path, lineno):  # noqa: PLR0917
    if timestamp_column not in rec:
        raise FeatureError("metrics file %s record %d has no %r" % (path, lineno, timestamp_column))
    target = rec.get(target_column)
    if target in (None, ""):
        target = default_target
    if target in (None, ""):
        raise FeatureError("metrics file %s record %d has no %r (set target_column or default_target)" % (path, lineno, target_column))
    metrics = rec.get("metrics")
    if not isinstance(metrics, dict):
        metrics = dict((k, v) for k, v in rec.items() if k not in (target_column, timestamp_column) and k is not None)
    try:
        ts = parse_timestamp(rec[timestamp_column])
    except FeatureError as exc:
        raise FeatureError("metrics file %s record %d: %s" % (path, lineno, exc)) from None
    return {"target": str(target), "timestamp": ts, "metrics": metrics}


# --------------------------------------------------------------------------- preprocessing

class Prepared:
    """A target's series on a regular grid, counters converted to rates.

    Attributes: ``times`` (grid, seconds), ``step``, ``columns``, ``kinds`` (gauge|counter|constant),
    ``values`` (n, m) with NaN where no sample, ``floors`` per column (minimum robust scale),
    ``ref_end`` (index of the first grid point after the reference window), ``resets`` (n,) number of
    counter resets observed at each point, ``observed`` (n,) bool.
    """

    def __init__(self, **kw):
        self.__dict__.update(kw)


def _regular_grid(ts, ref_seconds):
    diffs = np.diff(ts)
    ref_mask = ts[1:] <= ts[0] + ref_seconds
    base = diffs[ref_mask] if ref_mask.any() else diffs
    base = base[base > 0]
    if base.size == 0:
        step = 60.0
    else:
        step = float(np.median(base))
    step = max(1.0, round(step))
    return step


def prepare(raw, min_history=1800.0, step=None, rate_window=120.0, smooth=60.0, max_points=None):  # noqa: PLR0917
    """Put a RawSeries on a grid anchored at its first sample, turn counters into rates and smooth.

    - grid step: ``step`` or the median sampling interval inside the reference window;
      a sample observed at time s lands on the nearest grid point (within step / 2: jitter neither
      delays nor drops samples); of two samples in one bucket the latest wins (``merged`` counts
      them); grid points without a sample are gaps (``observed`` False, ``gaps`` counts them);
    - counters (monotonic in the reference window, or named like *_total) become rates over
      ``rate_window`` seconds; a drop is a reset and counts the new value as the increase;
    - gauges are smoothed with a trailing mean over ``smooth`` seconds (NaN-aware).
    """
    require_numpy()
    ts = raw.timestamps
    if len(ts) == 0:
        raise FeatureError("target %s has no samples" % raw.target)
    if step is None:
        step = _regular_grid(ts, min_history) if len(ts) > 1 else 60.0
    step = float(step)
    t0 = ts[0]
    # bucket by interval: a sample belongs to the nearest grid point (tolerance step / 2), so a sample
    # a second early or late is neither delayed by a step nor overwrites its neighbour; two samples in
    # one bucket keep the latest; buckets without a sample are gaps (observed=False)
    idx = np.floor((ts - t0) / step + 0.5).astype(int)
    n = int(idx[-1]) + 1
    if max_points and n > max_points:
        raise FeatureError("target %s spans %d grid points (more than %d); increase the step or shorten the window" % (raw.target, n, max_points))
    m = len(raw.columns)
    grid = np.full((n, m), np.nan)
    # later samples in the same slot win (values are already sorted by time)
    for j in range(m):
        col = raw.values[:, j]
        ok = ~np.isnan(col)
        grid[idx[ok], j] = col[ok]
    observed = np.zeros(n, dtype=bool)
    observed[idx] = True
    merged = int(idx.size - np.unique(idx).size)
    times = t0 + step * np.arange(n)
    ref_end = int(min(n, max(1, math.floor(min_history / step) + 1)))

    rate_pts = max(1, round(rate_window / step))
    smooth_pts = max(1, round(smooth / step))
    kinds, floors = [], []
    out = np.full((n, m), np.nan)
    resets_total = np.zeros(n)
    for j, name in enumerate(raw.columns):
        col = grid[:, j]
        ref = col[:ref_end]
        kind = column_kind(name, ref)
        if kind == "counter":
            rate, resets, floor = counter_to_rate(col, step, rate_pts, ref_end)
            if "restart" in normalise_name(name):
                floor = 1e-6   # a single container restart is significant: it maps to the maximum z
            else:
                resets_total += resets
            series = rate
        else:
            series = col
            floor = gauge_floor(ref)
        out[:, j] = series if kind == "counter" else trailing_nanmedian(series, smooth_pts)
        kinds.append(kind)
        floors.append(floor)
    return Prepared(target=raw.target, times=times, step=step, columns=list(raw.columns), kinds=kinds, values=out,
                    floors=np.asarray(floors, dtype=float), ref_end=ref_end, resets=resets_total, observed=observed,
                    merged=merged, gaps=int(n - np.count_nonzero(observed)))


def column_kind(name, ref):
    vals = ref[~np.isnan(ref)]
    if vals.size < 3:
        return "gauge"
    norm = normalise_name(name)
    named_counter = norm.endswith(COUNTER_SUFFIXES) and not norm.endswith("_ratio_total")
    if np.all(vals == vals[0]):
        return "counter" if named_counter else "constant"
    if (vals < 0).any():
        return "gauge"
    d = np.diff(vals)
    nz = d[d != 0]
    if named_counter:
        return "counter"
    # monotonic non-decreasing apart from rare resets, with several real increases
    if nz.size >= 3 and float(np.mean(nz > 0)) >= 0.97 and np.sum(nz < 0) <= 1 and float(np.mean(d > 0)) >= 0.5:
        return "counter"
    return "gauge"


def counter_to_rate(col, step, rate_pts, ref_end=None):
    """Reset-aware per-second rate over ``rate_pts`` grid steps; returns (rate, resets, floor).

    The floor (minimum robust scale) is one counter granule per rate window, the granule being the
    smallest increase seen in the reference window (rows < ``ref_end``; 1 when there was none).
    """
    n = col.size
    inc = np.zeros(n)
    resets = np.zeros(n)
    last = np.nan
    have = np.zeros(n, dtype=bool)
    for i in range(n):
        v = col[i]
        if math.isnan(v):
            continue
        have[i] = True
        if not math.isnan(last):
            d = v - last
            if d < 0:
                d = v
                resets[i] = 1.0
            inc[i] = d
        last = v
    cum = np.cumsum(inc)
    rate = np.full(n, np.nan)
    if n > 1:
        lag = np.arange(n) - rate_pts
        lag[lag < 0] = 0
        span = (np.arange(n) - lag) * step
        ok = have & (span > 0)
        rate[ok] = (cum[ok] - cum[lag[ok]]) / span[ok]
    # a restart at i is visible for the whole rate window; keep it
    ref_inc = inc[:ref_end] if ref_end is not None else inc
    pos = ref_inc[ref_inc > 0]
    granule = float(np.min(pos)) if pos.size else 1.0
    floor = granule / (rate_pts * step)
    return rate, np.convolve(resets, np.ones(rate_pts))[:n], floor


def gauge_floor(ref):
    vals = ref[~np.isnan(ref)]
    if vals.size == 0:
        return 1e-9
    med = float(np.median(np.abs(vals)))
    d = np.abs(np.diff(vals))
    d = d[d > 0]
    resolution = float(np.min(d)) if d.size else 0.0
    return max(1e-3 * med, resolution, 1e-9)


def trailing_nanmedian(x, w):
    """Trailing median over max(3, w) points (odd), NaN-aware; a single outlier cannot move it."""
    w = max(3, int(w) | 1)
    if x.size == 0:
        return x.copy()
    pad = np.concatenate([np.full(w - 1, np.nan), x])
    win = np.lib.stride_tricks.sliding_window_view(pad, w)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        out = np.nanmedian(win, axis=1)
    out[np.isnan(x)] = np.nan
    return out


def trailing_nanmean(x, w):
    if w <= 1:
        return x.copy()
    ok = ~np.isnan(x)
    v = np.where(ok, x, 0.0)
    cs = np.concatenate([[0.0], np.cumsum(v)])
    cc = np.concatenate([[0], np.cumsum(ok)])
    idx = np.arange(x.size)
    lo = np.maximum(0, idx - w + 1)
    s = cs[idx + 1] - cs[lo]
    c = cc[idx + 1] - cc[lo]
    out = np.full(x.size, np.nan)
    good = (c > 0) & ok
    out[good] = s[good] / c[good]
    return out


# --------------------------------------------------------------------------- robust baselines

def rolling_baseline(values, window_pts, gap_pts, min_pts, stride=1):
    """Trailing median and MAD over [t - gap - window, t - gap) for every row (NaN-aware).

    Returned arrays have the shape of ``values``; rows with fewer than ``min_pts`` finite
    samples in their window are NaN. Stats are recomputed every ``stride`` rows (and held),
    which stays causal because the window ends ``gap_pts`` >= stride rows in the past.
    """
    n, m = values.shape
    med = np.full((n, m), np.nan)
    mad = np.full((n, m), np.nan)
    if n == 0 or m == 0:
        return med, mad
    pad = np.full((window_pts, m), np.nan)
    padded = np.vstack([pad, values])
    # the window of row i is values[i - gap - window : i - gap] == padded[i - gap : i - gap + window]
    stride = max(1, int(stride))
    first = gap_pts
    if first >= n:
        return med, mad
    rows = np.arange(first, n, stride)
    starts = rows - gap_pts
    win = np.lib.stride_tricks.sliding_window_view(padded, window_pts, axis=0)  # (n + 1, m, window)
    sel = win[starts]
    cnt = np.sum(~np.isnan(sel), axis=2)
    md = nanmedian_last(sel, cnt)
    md_abs = nanmedian_last(np.abs(sel - md[:, :, None]), cnt)
    md[cnt < min_pts] = np.nan
    md_abs[cnt < min_pts] = np.nan
    # row i uses the stats computed at the last computed row <= i (its window ended gap rows before that)
    owner = (np.arange(first, n) - first) // stride
    med[first:] = md[owner]
    mad[first:] = md_abs[owner]
    return med, mad


def nanmedian_last(arr, cnt=None):
    """NaN-ignoring median over the last axis (sort puts NaN last); NaN where no finite value."""
    if cnt is None:
        cnt = np.sum(~np.isnan(arr), axis=-1)
    srt = np.sort(arr, axis=-1)
    lo = np.clip((cnt - 1) // 2, 0, None)
    hi = np.clip(cnt // 2, 0, arr.shape[-1] - 1)
    a = np.take_along_axis(srt, lo[..., None], axis=-1)[..., 0]
    b = np.take_along_axis(srt, hi[..., None], axis=-1)[..., 0]
    out = (a + b) / 2.0
    return np.where(cnt > 0, out, np.nan)


def robust_scale(mad, floors, ref_mad=None):
    scale = 1.4826 * mad
    if ref_mad is not None:
        scale = np.fmax(scale, 0.5 * 1.4826 * ref_mad)
    return np.fmax(scale, floors[None, :] if scale.ndim == 2 else floors)


def robust_z(values, med, scale):
    with np.errstate(all="ignore"):
        z = (values - med) / scale
    return np.clip(z, -Z_CLIP, Z_CLIP)


# --------------------------------------------------------------------------- canonical mapping

def map_columns(columns, overrides=None):
    """{canonical: [column, ...]} for the columns whose names are known (overrides: {canonical: column|[columns]})."""
    mapping = {}
    used = set()
    overrides = overrides or {}
    for canon, wanted in overrides.items():
        if canon not in CANONICAL_ALIASES:
            raise FeatureError("unknown canonical metric %r in metric map (known: %s)" % (canon, ", ".join(sorted(CANONICAL_ALIASES))))
        wanted_list = [wanted] if isinstance(wanted, str) else list(wanted or [])
        present = [c for c in wanted_list if c in columns]
        if present:
            mapping[canon] = present
            used.update(present)
    norm = dict((c, normalise_name(c)) for c in columns)
    for canon, aliases in CANONICAL_ALIASES.items():
        if canon in mapping:
            continue
        hits = [c for c in columns if c not in used and norm[c] in aliases]
        if hits:
            mapping[canon] = hits
            used.update(hits)
    return mapping


def canonical_matrix(prepared, mapping):
    """(n, len(CANONICAL_FEATURES)) matrix of canonical metrics (NaN where unmapped).

    network = rx + tx (or the network column); error_ratio = errors / requests when both
    are counters, else the error ratio column.
    """
    n = prepared.values.shape[0]
    col_index = dict((c, j) for j, c in enumerate(prepared.columns))
    out = np.full((n, len(CANONICAL_FEATURES)), np.nan)

    def get(canon):
        cols = mapping.get(canon) or []
        if not cols:
            return None
        stack = np.vstack([prepared.values[:, col_index[c]] for c in cols])
        with np.errstate(all="ignore"):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                return np.nansum(stack, axis=0) if len(cols) > 1 else stack[0]

    for k, canon in enumerate(CANONICAL_FEATURES):
        if canon == "network":
            parts = [get(c) for c in ("network", "net_rx", "net_tx")]
            parts = [p for p in parts if p is not None]
            if parts:
                out[:, k] = parts[0] if len(parts) == 1 else np.sum(np.vstack(parts), axis=0)
        elif canon == "error_ratio":
            ratio = get("error_ratio")
            if ratio is None:
                errs, reqs = get("errors"), get("requests")
                if errs is not None and reqs is not None:
                    with np.errstate(all="ignore"):
                        ratio = np.where(reqs > 0, errs / np.where(reqs > 0, reqs, 1.0), np.where(errs > 0, 1.0, 0.0))
                elif errs is not None:
                    ratio = errs
            if ratio is not None:
                out[:, k] = ratio
        else:
            v = get(canon)
            if v is not None:
                out[:, k] = v
    return out


def classifier_features(canon, resets, observed, step, alarm_start, at, baseline_seconds=1800.0, recent_seconds=120.0, slope_seconds=300.0):  # noqa: PLR0917
    """Feature vector (CLASSIFIER_FEATURE_NAMES order) describing how the pod changed.

    ``alarm_start``: grid index where the anomaly started being visible (baseline ends 60 s before),
    ``at``: grid index the classification is made at (only rows <= at are used).
    """
    n_feat = len(CLASSIFIER_FEATURE_NAMES)
    vec = np.full(n_feat, np.nan)
    gap = max(1, round(60.0 / step))
    b_hi = max(0, alarm_start - gap)
    b_lo = max(0, b_hi - max(4, round(baseline_seconds / step)))
    r_pts = max(2, round(recent_seconds / step))
    s_pts = max(3, round(slope_seconds / step))
    at = min(at, canon.shape[0] - 1)
    recent = canon[max(0, at - r_pts + 1): at + 1]
    slope_win = canon[max(0, at - s_pts + 1): at + 1]
    base = canon[b_lo:b_hi] if b_hi > b_lo else canon[:1]
    mapped = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        for k, canon_name in enumerate(CANONICAL_FEATURES):
            b = base[:, k]
            b = b[~np.isnan(b)]
            r = recent[:, k]
            r = r[~np.isnan(r)]
            if b.size < 2 or r.size == 0:
                continue
            mapped += 1
            med = float(np.median(b))
            mad = float(np.median(np.abs(b - med))) * 1.4826
            scale = max(mad, 1e-3 * abs(med), 1e-9)
            if canon_name == "restarts":
                scale = max(scale, 1.0 / 3600.0)
            cur = float(np.mean(r))
            z = float(np.clip((cur - med) / scale, -Z_CLIP, Z_CLIP))
            rel = float(np.clip((cur - med) / (abs(med) + scale), -10.0, 10.0))
            sw = slope_win[:, k]
            okw = ~np.isnan(sw)
            if okw.sum() >= 3:
                x = np.arange(sw.size)[okw] * step / 60.0
                slope = float(np.polyfit(x, sw[okw], 1)[0]) / scale
                slope = float(np.clip(slope, -Z_CLIP, Z_CLIP))
            else:
                slope = 0.0
            rs = float(np.std(r)) if r.size > 1 else 0.0
            vol = float(np.clip(np.log10((rs + 1e-12) / (scale + 1e-12) + 1e-3), -3.0, 3.0))
            base_idx = k * len(PER_METRIC_FEATURES)
            vec[base_idx:base_idx + 4] = (z, rel, slope, vol)
    g = len(CANONICAL_FEATURES) * len(PER_METRIC_FEATURES)
    obs = observed[max(0, at - s_pts + 1): at + 1]
    vec[g] = 1.0 - float(np.mean(obs)) if obs.size else 0.0
    vec[g + 1] = float(np.sum(resets[max(0, at - s_pts + 1): at + 1] > 0)) / max(1, s_pts) if resets is not None else 0.0
    vec[g + 2] = float(mapped)
    return vec, mapped


# --------------------------------------------------------------------------- what a metric means

# The smallest change of a metric that is worth a look, per kind, as floors of the robust scale
# (the detector's z is change / scale, and an alarm needs z above a threshold of several units):
# an absolute floor in the metric's base unit and a relative floor (a fraction of the baseline
# median). They come from what the metrics physically are, not from any data set:
# - cpu (cores): 25 millicores or 6 % of the usage: a fraction of a core is scheduler noise;
# - memory (bytes): 8 MiB or 2 %: allocator arenas and GC cycles move working sets by that much;
# - latency (seconds): 5 ms or 12.5 %: a percentile from a Prometheus histogram is interpolated
#   inside buckets that are typically 2-2.5x wide, so it jumps by a sizeable fraction of itself
#   when the traffic mix moves; a few milliseconds are within one scrape's noise;
# - error ratio (0-1): half a percentage point or 10 %; errors and requests (per second): a
#   few per minute or 10 % (traffic is bursty by nature);
# - network (bytes per second): 10 KiB/s or 10 %; disk (bytes): 16 MiB or 1 %; disk io: 10 %;
# - throttling (seconds per second): 10 ms/s or 10 %;
# - columns the detector does not know: 1 % of the median (their scale is learnt from the data).
# Units are read from the column name (_ms, _mib, _percent ...); without a unit suffix the base
# unit is assumed, except that a latency whose baseline median exceeds 20 is taken as milliseconds.
KIND_FLOORS = {
    "cpu": (0.025, 0.0625),
    "memory": (8 * 1024.0 ** 2, 0.02),
    "latency": (0.005, 0.125),
    "error_ratio": (0.005, 0.1),
    "errors": (0.05, 0.1),
    "requests": (0.05, 0.1),
    "network": (10 * 1024.0, 0.1),
    "disk": (16 * 1024.0 ** 2, 0.01),
    "disk_io": (0.0, 0.1),
    "throttle": (0.01, 0.1),
    "restarts": (0.0, 0.0),
    "other": (0.0, 0.01),
}
# independent evidence groups (several columns of one kind are one piece of evidence)
EVIDENCE_GROUP = {"net_rx": "network", "net_tx": "network", "network": "network", "errors": "errors", "error_ratio": "errors"}


def _unit_factor(norm, canon, median):
    """Multiplier from the base unit of ``canon`` to the column's unit, read from its name."""
    tokens = set(norm.split("_"))
    percentish = bool(tokens & {"percent", "pct", "percentage"}) or norm.endswith("_pct")
    if canon == "latency":
        if tokens & {"ms", "milliseconds", "millis", "msec"}:
            return 1000.0
        if tokens & {"us", "microseconds", "micros", "usec"}:
            return 1e6
        if tokens & {"seconds", "s", "sec"}:
            return 1.0
        return 1000.0 if median is not None and median > 20.0 else 1.0
    if canon in ("memory", "disk"):
        for unit, factor in (("kb", 1024.0), ("kib", 1024.0), ("mb", 1024.0 ** 2), ("mib", 1024.0 ** 2), ("gb", 1024.0 ** 3), ("gib", 1024.0 ** 3)):
            if unit in tokens:
                return 1.0 / factor
        return 1.0
    if canon == "cpu":
        if tokens & {"millicores", "mcores", "m"}:
            return 1000.0
        if percentish or (("utilization" in tokens or "util" in tokens) and median is not None and median > 1.5):
            return 100.0
        return 1.0
    if canon == "error_ratio":
        return 100.0 if percentish or (median is not None and median > 1.0) else 1.0
    if canon in ("network", "net_rx", "net_tx"):
        if tokens & {"kb", "kib", "kbps"}:
            return 1.0 / 1024.0
        if tokens & {"mb", "mib", "mbps"}:
            return 1.0 / 1024.0 ** 2
        return 1.0
    return 1.0


def column_semantics(columns, ref_values, overrides=None):
    """Per column: (group, absolute floor in the column's unit, relative floor, weight).

    ``ref_values``: (n_ref, m) reference-window values (to read medians for unit guesses). Known
    metrics have weight 1; a column the detector does not know counts two thirds, since it cannot
    judge what a change of it means.
    """
    mapping = map_columns(columns, overrides)
    canon_of = {}
    for canon, cols in mapping.items():
        for c in cols:
            canon_of[c] = canon
    out = []
    for j, col in enumerate(columns):
        canon = canon_of.get(col)
        vals = ref_values[:, j] if ref_values is not None and ref_values.size else np.array([])
        vals = vals[~np.isnan(vals)] if vals.size else vals
        median = float(np.median(np.abs(vals))) if vals.size else None
        if canon is None:
            a, r = KIND_FLOORS["other"]
            out.append(("other", a, r, 2.0 / 3.0, None))
            continue
        kind = EVIDENCE_GROUP.get(canon, canon)
        floor_kind = "network" if canon in ("net_rx", "net_tx") else canon
        a, r = KIND_FLOORS.get(floor_kind, KIND_FLOORS["other"])
        norm = normalise_name(col)
        tokens = set(norm.split("_"))
        if canon in ("memory", "disk") and tokens & {"percent", "pct", "percentage", "ratio", "utilization", "util"}:
            # a share of the limit or of the volume: half a percentage point
            a = 0.5 if (tokens & {"percent", "pct", "percentage"} or (median is not None and median > 1.5)) else 0.005
        else:
            a = a * _unit_factor(norm, canon, median)
        out.append((kind, a, r, 1.0, canon))
    return out


def quantisation_step(vals):
    """The typical step between the distinct values of a quantised series (0 when it is not).

    A series is quantised when it takes few distinct values (at most a fifth of its samples):
    histogram-derived percentiles of a pod with little traffic, integer gauges. The step is the
    median gap between consecutive distinct values.
    """
    vals = vals[~np.isnan(vals)]
    if vals.size < 10:
        return 0.0
    distinct = np.unique(vals)
    if distinct.size < 2 or distinct.size > max(3, vals.size // 5):
        return 0.0
    return float(np.median(np.diff(distinct)))


# --------------------------------------------------------------------------- Prometheus input

# Column name -> PromQL with the placeholders {selector} (label matchers, without braces) and
# {rate_window}. Column names are chosen so map_columns() maps them to the canonical metrics.
DEFAULT_PROMETHEUS_METRIC_MAP = {
    # cAdvisor
    "cpu_usage": 'sum by (namespace, pod) (rate(container_cpu_usage_seconds_total{container!="",container!="POD",{selector}}[{rate_window}]))',
    "memory_working_set_bytes": 'sum by (namespace, pod) (container_memory_working_set_bytes{container!="",container!="POD",{selector}})',
    "fs_usage_bytes": 'sum by (namespace, pod) (container_fs_usage_bytes{container!="",container!="POD",{selector}})',
    "net_rx_bytes": 'sum by (namespace, pod) (rate(container_network_receive_bytes_total{{selector}}[{rate_window}]))',
    "net_tx_bytes": 'sum by (namespace, pod) (rate(container_network_transmit_bytes_total{{selector}}[{rate_window}]))',
    "cpu_throttled": 'sum by (namespace, pod) (rate(container_cpu_cfs_throttled_seconds_total{container!="",{selector}}[{rate_window}]))',
    # kube-state-metrics (a raw counter: the detector turns it into a reset-aware rate)
    "restarts_total": 'sum by (namespace, pod) (kube_pod_container_status_restarts_total{{selector}})',
    # the application's own HTTP metrics (Prometheus client conventions)
    "requests_per_second": 'sum by (namespace, pod) (rate(http_requests_total{{selector}}[{rate_window}]))',
    "errors_per_second": 'sum by (namespace, pod) (rate(http_requests_total{status=~"5..",{selector}}[{rate_window}]))',
    "latency_p99_ms": '1000 * histogram_quantile(0.99, sum by (namespace, pod, le) (rate(http_request_duration_seconds_bucket{{selector}}[{rate_window}])))',
    # Istio sidecar metrics (need a pod label, i.e. a kubernetes-pods scrape job that adds it)
    "istio_requests_per_second": 'sum by (namespace, pod) (rate(istio_requests_total{reporter="destination",{selector}}[{rate_window}]))',
    "istio_errors_per_second": 'sum by (namespace, pod) (rate(istio_requests_total{reporter="destination",response_code=~"5..",{selector}}[{rate_window}]))',
    "istio_latency_p99_ms": 'histogram_quantile(0.99, sum by (namespace, pod, le) '
                            '(rate(istio_request_duration_milliseconds_bucket{reporter="destination",{selector}}[{rate_window}])))',
}
# the default map's columns, for map_columns()
CANONICAL_ALIASES["cpu"].append("cpu_usage")
CANONICAL_ALIASES["net_rx"].append("net_rx_bytes")
CANONICAL_ALIASES["net_tx"].append("net_tx_bytes")
CANONICAL_ALIASES["requests"] += ["requests_per_second", "istio_requests_per_second"]
CANONICAL_ALIASES["errors"] += ["errors_per_second", "istio_errors_per_second"]
CANONICAL_ALIASES["latency"] += ["istio_latency_p99_ms"]

_LABEL_VALUE = re.compile(r'^[A-Za-z0-9_.:/\-]*$')


def parse_duration(value, name="duration"):
    """Seconds from 90, "90", "90s", "15m", "2h", "1d" (also "1h30m")."""
    if isinstance(value, bool) or value is None:
        raise FeatureError("%s %r is not a duration" % (name, value))
    if isinstance(value, (int, float)):
        secs = float(value)
    else:
        text = str(value).strip()
        try:
            secs = float(text)
        except ValueError:
            parts = re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)", text)
            if not parts or "".join(a + b for a, b in parts) != text.replace(" ", ""):
                raise FeatureError("%s %r is not a duration (examples: 90s, 15m, 2h)" % (name, value)) from None
            unit = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
            secs = sum(float(a) * unit[b] for a, b in parts)
    if not math.isfinite(secs) or secs < 0:
        raise FeatureError("%s %r must be a positive duration" % (name, value))
    return secs


def promql_duration(seconds):
    seconds = round(seconds)
    return "%dm" % (seconds // 60) if seconds % 60 == 0 and seconds else "%ds" % max(1, seconds)


def build_selector(namespaces=None, pod_regex=None, label_matchers=None):
    """Label matchers (without braces) for the namespaces / pod regex, plus raw extra matchers."""
    parts = []
    for ns in namespaces or []:
        if not _LABEL_VALUE.match(str(ns)):
            raise FeatureError("namespace %r contains characters that are not allowed in a label value" % (ns,))
    if namespaces:
        parts.append('namespace=~"%s"' % "|".join(str(n) for n in namespaces))
    if pod_regex:
        if '"' in pod_regex:
            raise FeatureError("pod_regex must not contain double quotes")
        parts.append('pod=~"%s"' % pod_regex)
    else:
        parts.append('pod!=""')
    if label_matchers:
        parts.append(str(label_matchers).strip().strip(","))
    return ",".join(parts)


def render_query(template, selector, rate_window):
    return template.replace("{selector}", selector).replace("{rate_window}", rate_window)


def prometheus_series(client, metric_map, selector, start, end, step, rate_window, target_labels=("namespace", "pod")):  # noqa: PLR0917
    """Range-query every metric of ``metric_map`` -> ({target: RawSeries}, queries, warnings).

    A query that returns no data only leaves its column out; series without the target labels are
    skipped. Targets are named "namespace/pod".
    """
    require_numpy()
    per_target = {}
    queries = []
    empty = []
    for column, template in sorted(metric_map.items()):
        if not template:
            continue
        promql = render_query(template, selector, rate_window)
        queries.append({"column": column, "query": promql})
        result = client.query_range(promql, start, end, step)
        if result.is_empty:
            empty.append(column)
            continue
        for series in result.series:
            labels = series.labels or {}
            if not all(labels.get(k) for k in target_labels):
                continue
            target = "/".join(str(labels[k]) for k in target_labels)
            slot = per_target.setdefault(target, {})
            col = slot.setdefault(column, {})
            for ts, value in series.values:
                col[float(ts)] = to_float(value)
    out = {}
    for target, cols in per_target.items():
        times = sorted(set(ts for col in cols.values() for ts in col))
        names = sorted(cols)
        mat = np.full((len(times), len(names)), np.nan)
        index = dict((t, i) for i, t in enumerate(times))
        for j, name in enumerate(names):
            for ts, value in cols[name].items():
                mat[index[ts], j] = value
        out[target] = RawSeries(target, np.asarray(times, dtype=float), names, mat)
    return out, queries, empty
