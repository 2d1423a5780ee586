"""Seeded generator of labelled pod metric time series.

Each pod belongs to a workload profile (web, api, worker, db, cache) with its own baselines; load
follows a diurnal curve, an AR(1) wander and benign traffic bursts; cAdvisor-like counters are
cumulative (and reset when the container restarts or the exporter restarts), gauges carry noise,
samples go missing (single points and multi-minute gaps). At most one anomaly is injected per pod
with a random onset, duration and intensity.

``profile="train"`` is what the models are fitted and calibrated on. ``profile="shifted"`` is a
family the models were not tuned on: other metric names and units (a CPU gauge in cores, memory in
MiB, an error-ratio column, response_time_ms), unknown extra columns, 30-second sampling, twice
the noise, a stronger diurnal swing, other workload parameters and anomaly shapes (gradual CPU
ramps, flapping error bursts, a leak with GC drops).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from ansible_collections.machinenativeops.platform.plugins.module_utils.anomaly_features import RawSeries

ANOMALY_TYPES = [
    "cpu_spike", "memory_leak", "oom_kill", "pod_crash", "disk_full", "disk_io_bottleneck", "network_latency",
    "dns_resolution_failure", "high_error_rate", "slow_response", "connection_pool_exhausted", "deadlock",
    "cache_thrashing", "resource_contention",
]
CLASSES = ["healthy", *ANOMALY_TYPES]

WORKLOADS = {
    # rps: requests/s, cpu0: idle cores, cpr: cores per request/s, mem/disk: bytes, io/net: bytes per request, err: error ratio, lat: ms
    "web": dict(
        rps=(40, 300), cpu0=(0.03, 0.1), cpr=(0.0008, 0.003), mem=(150e6, 500e6),
        disk=(0.5e9, 3e9), io=(1e3, 8e3), net=(4e3, 4e4), err=(0.001, 0.01), lat=(30, 150)),
    "api": dict(
        rps=(20, 200), cpu0=(0.05, 0.2), cpr=(0.002, 0.006), mem=(250e6, 900e6),
        disk=(0.5e9, 2e9), io=(2e3, 1e4), net=(2e3, 2e4), err=(0.002, 0.02), lat=(50, 300)),
    "worker": dict(
        rps=(2, 30), cpu0=(0.1, 0.5), cpr=(0.01, 0.05), mem=(300e6, 1.5e9),
        disk=(1e9, 8e9), io=(2e4, 2e5), net=(1e4, 1e5), err=(0.001, 0.02), lat=(200, 2000)),
    "db": dict(
        rps=(50, 500), cpu0=(0.2, 0.6), cpr=(0.001, 0.004), mem=(1e9, 4e9),
        disk=(10e9, 60e9), io=(1e4, 8e4), net=(2e3, 2e4), err=(0.0005, 0.005), lat=(5, 40)),
    "cache": dict(
        rps=(200, 2000), cpu0=(0.05, 0.2), cpr=(0.0002, 0.0008), mem=(0.5e9, 3e9),
        disk=(0.1e9, 0.5e9), io=(1e2, 2e3), net=(1e3, 1e4), err=(0.0001, 0.002), lat=(1, 8)),
}
SHIFTED_WORKLOADS = {
    "gateway": dict(
        rps=(100, 800), cpu0=(0.02, 0.08), cpr=(0.0005, 0.002), mem=(80e6, 300e6),
        disk=(0.2e9, 1e9), io=(5e2, 5e3), net=(1e4, 8e4), err=(0.002, 0.03), lat=(10, 80)),
    "ml-inference": dict(
        rps=(5, 50), cpu0=(0.5, 1.5), cpr=(0.02, 0.08), mem=(2e9, 6e9),
        disk=(2e9, 10e9), io=(1e4, 5e4), net=(5e4, 3e5), err=(0.001, 0.01), lat=(80, 600)),
}


@dataclass
class PodSeries:
    target: str
    times: np.ndarray                    # unix seconds (float), possibly with holes
    columns: dict[str, np.ndarray]       # name -> values (NaN = missing sample)
    label: str = "healthy"
    onset: float | None = None
    end: float | None = None
    intensity: float = 0.0
    step: float = 15.0
    meta: dict = field(default_factory=dict)

    def samples(self):
        """Inline-sample form: [{target, timestamp, metrics}]."""
        names = list(self.columns)
        out = []
        for i, ts in enumerate(self.times):
            metrics = {}
            for name in names:
                v = self.columns[name][i]
                if not math.isnan(v):
                    metrics[name] = float(v)
            out.append({"target": self.target, "timestamp": float(ts), "metrics": metrics})
        return out

    def to_raw(self):

        names = sorted(self.columns)
        mat = np.vstack([self.columns[c] for c in names]).T if names else np.zeros((len(self.times), 0))
        return RawSeries(self.target, np.asarray(self.times, dtype=float), names, mat)


def _u(rng, lo_hi):
    lo, hi = lo_hi
    return float(math.exp(rng.uniform(math.log(lo), math.log(hi)))) if lo > 0 else float(rng.uniform(lo, hi))


def _ar1(rng, n, phi, sigma):
    out = np.empty(n)
    x = 0.0
    eps = rng.normal(0.0, sigma, n)
    for i in range(n):
        x = phi * x + eps[i]
        out[i] = x
    return out


def generate_pod(rng, target, step=15.0, hours=3.0, label="healthy", profile="train", onset_range=(3600.0, None), start=None,  # noqa: PLR0917
                 duration_range=None, intensity=None):
    """One pod's series; ``label`` is "healthy" or one of ANOMALY_TYPES."""
    shifted = profile == "shifted"
    workloads = {**WORKLOADS, **SHIFTED_WORKLOADS} if shifted else WORKLOADS
    wname = list(workloads)[int(rng.integers(len(workloads)))]
    w = workloads[wname]
    n = int(hours * 3600 / step)
    if start is None:
        start = 1767225600.0 + float(rng.integers(0, 60 * 86400))  # some day in 2026 at a random time
        start -= start % step
    t = start + step * np.arange(n)
    noise_mult = 2.0 if shifted else 1.0

    # load: diurnal + AR(1) wander + benign bursts
    amp = rng.uniform(0.3, 0.7) if shifted else rng.uniform(0.1, 0.45)
    peak = rng.uniform(0, 86400)
    tod = t % 86400
    load = 1.0 + amp * np.sin(2 * math.pi * (tod - peak) / 86400.0)
    load *= np.exp(_ar1(rng, n, 0.98, 0.015 * noise_mult))
    n_bursts = rng.poisson(hours / 8.0 * 3)
    for _ in range(n_bursts):
        b0 = int(rng.integers(0, n))
        blen = max(1, int(rng.uniform(60, 300) / step))
        load[b0:b0 + blen] *= rng.uniform(1.15, 1.5)
    base_rps = _u(rng, w["rps"])
    rps = base_rps * load
    cpu_limit = None
    cpu = _u(rng, w["cpu0"]) + _u(rng, w["cpr"]) * rps
    cpu_limit = float(np.quantile(cpu, 0.99) * rng.uniform(1.6, 3.0))
    mem_base = _u(rng, w["mem"])
    mem_limit = mem_base * rng.uniform(1.5, 2.5)
    mem = mem_base * (1.0 + 0.04 * (load - 1.0))
    if rng.random() < 0.5:  # GC sawtooth
        period = rng.uniform(300, 1200)
        mem = mem * (1.0 + rng.uniform(0.02, 0.06) * ((t % period) / period))
    disk0 = _u(rng, w["disk"])
    disk_cap = disk0 * rng.uniform(2.0, 5.0)
    # writes and deletions: a noisy, slowly growing gauge
    disk = disk0 + np.cumsum(rng.normal(rng.uniform(0, 2e3) * step, 2e3 * step, n))
    disk = disk + rng.normal(0, disk0 * 1e-4, n)
    if rng.random() < 0.3:  # log rotation: growth so far is dropped once
        rot = int(rng.uniform(2, 6) * 3600 / step)
        if rot < n:
            disk[rot:] -= 0.9 * (disk[rot] - disk0)
    io = _u(rng, w["io"]) * rps
    net_rx = _u(rng, w["net"]) * rps
    net_tx = net_rx * rng.uniform(1.5, 6.0)
    err_ratio = _u(rng, w["err"]) * np.exp(rng.normal(0, 0.3, n))
    lat = _u(rng, w["lat"]) * (1.0 + 0.25 * (load - 1.0))
    throttle = np.zeros(n)
    restarts_inc = np.zeros(n)
    missing = np.zeros(n, dtype=bool)
    reset_at = []

    onset = end = None
    u = 0.0
    if label != "healthy":
        lo, hi = onset_range
        hi = hi if hi is not None else max(lo + step, hours * 3600 - 1800)
        onset = start + float(rng.uniform(lo, hi))
        onset -= onset % step
        dur_lo, dur_hi = duration_range or (300.0, 3600.0)
        duration = float(rng.uniform(dur_lo, dur_hi))
        end = min(onset + duration, t[-1])
        u = float(intensity if intensity is not None else rng.uniform(0.3, 1.0))
        sel = (t >= onset) & (t <= end)
        el = np.where(sel, t - onset, 0.0)  # seconds since onset inside the window
        ramp = np.clip(el / max(step, rng.uniform(30, 120)), 0, 1)
        if shifted and label == "cpu_spike":
            ramp = np.clip(el / 600.0, 0, 1)  # gradual ramp instead of a step
        cpu_mean = float(np.mean(cpu))
        if label == "cpu_spike":
            cpu = cpu + sel * ramp * cpu_mean * (0.8 + 2.5 * u)
            lat = lat * (1 + sel * ramp * 0.3 * u)
        elif label == "memory_leak":
            per_min = mem_base * (0.004 + 0.03 * u)
            leak = sel * el / 60.0 * per_min
            if shifted:  # a leak with partial GC drops
                leak = leak * (1.0 - 0.3 * ((el % 240) < 30))
            mem = mem + leak
        elif label == "oom_kill":
            kills = max(1, int(1 + 3 * u))
            period = max(120.0, (end - onset) / kills)
            phase = np.where(sel, (t - onset) % period, 0.0)
            climb = rng.uniform(40, 120)
            mem = np.where(sel, mem + np.clip(phase / climb, 0, 1) * (mem_limit - mem), mem)
            for kk in range(kills):
                kt = onset + kk * period + climb
                if kt <= end:
                    i = int(np.searchsorted(t, kt))
                    if i < n:
                        restarts_inc[i] += 1
                        reset_at.append(i)
                        gap_pts = max(1, int(rng.uniform(10, 40) / step))
                        missing[i:i + gap_pts] = True
        elif label == "pod_crash":
            i = int(np.searchsorted(t, onset))
            back = 10.0
            while i < n and t[i] <= end:
                restarts_inc[i] += 1
                reset_at.append(i)
                down = max(1, int(min(back, 300.0) / step))
                missing[i:i + down] = True
                rps[i:i + down] = 0
                back *= 2
                i += down + max(1, int(rng.uniform(20, 90) / step))
            err_ratio = err_ratio + sel * 0.05 * u
        elif label == "disk_full":
            fill = np.clip(el / max(60.0, (end - onset) * rng.uniform(0.3, 0.8)), 0, 1)
            disk = np.where(sel, disk + fill * (disk_cap - disk) * (0.5 + 0.5 * u), disk)
            full = sel & (fill >= 1)
            err_ratio = err_ratio + full * 0.2 * u
            io = io * (1 + sel * 2.0 * u)
        elif label == "disk_io_bottleneck":
            io = io * (1 + sel * ramp * (1.5 + 5 * u))
            lat = lat * (1 + sel * ramp * (0.5 + 2 * u))
            cpu = cpu * (1 - sel * ramp * 0.2 * u)
        elif label == "network_latency":
            lat = lat * (1 + sel * ramp * (1.0 + 5 * u))
            rps = rps * (1 - sel * 0.1 * u)
        elif label == "dns_resolution_failure":
            err_ratio = err_ratio + sel * ramp * (0.05 + 0.4 * u)
            lat = lat * (1 + sel * ramp * (0.5 + 1.5 * u))
            net_tx = net_tx * (1 - sel * 0.3 * u)
            net_rx = net_rx * (1 - sel * 0.3 * u)
        elif label == "high_error_rate":
            if shifted:  # flapping bursts: one minute on, one minute off
                on = sel & (((t - onset) // 60) % 2 == 0)
            else:
                on = sel
            err_ratio = err_ratio + on * ramp * (0.05 + 0.5 * u)
            lat = lat * (1 - on * 0.1 * u)
            cpu = cpu * (1 - on * 0.1 * u)
        elif label == "slow_response":
            lat = lat * (1 + sel * ramp * (0.5 + 3 * u))
            cpu = cpu * (1 + sel * ramp * (0.2 + 0.8 * u))
        elif label == "connection_pool_exhausted":
            lat = lat * (1 + sel * ramp * (2 + 8 * u))
            err_ratio = err_ratio + sel * ramp * (0.02 + 0.2 * u)
            rps = rps * (1 - sel * ramp * (0.2 + 0.4 * u))
            cpu = cpu * (1 - sel * ramp * 0.3 * u)
        elif label == "deadlock":
            rps = rps * (1 - sel * (0.7 + 0.3 * u))
            cpu = np.where(sel, cpu * (0.05 + 0.2 * (1 - u)), cpu)
            lat = lat * (1 + sel * (5 + 20 * u))
            net_rx = net_rx * (1 - sel * 0.8)
            net_tx = net_tx * (1 - sel * 0.8)
        elif label == "cache_thrashing":
            cpu = cpu * (1 + sel * ramp * (0.5 + 1.5 * u))
            mem = mem * (1 + sel * (0.05 + 0.15 * u) * np.sin(2 * math.pi * el / rng.uniform(60, 180)))
            io = io * (1 + sel * ramp * (2 + 6 * u))
            lat = lat * (1 + sel * ramp * (0.5 + 2 * u))
        elif label == "resource_contention":
            throttle = throttle + sel * ramp * cpu_limit * (0.2 + 0.6 * u)
            cpu = cpu * (1 - sel * ramp * (0.1 + 0.3 * u))
            lat = lat * (1 + sel * ramp * (0.5 + 2 * u))
        else:
            raise ValueError(f"unknown anomaly type {label!r}")

    # measurement noise
    cpu = np.maximum(cpu * np.exp(rng.normal(0, 0.04 * noise_mult, n)), 1e-4)
    mem = np.maximum(mem * (1 + rng.normal(0, 0.005 * noise_mult, n)), 1e6)
    lat = np.maximum(lat * np.exp(rng.normal(0, 0.08 * noise_mult, n)), 0.1)
    spikes = rng.random(n) < 0.003
    lat = np.where(spikes, lat * rng.uniform(2, 5, n), lat)
    disk = np.minimum(disk, disk_cap)
    err_ratio = np.clip(err_ratio, 0, 1)
    # benign exporter restart: counters reset without a container restart
    if rng.random() < 0.2:
        reset_at.append(int(rng.integers(n // 4, n)))

    def counter(rate, poisson=False):
        inc = rate * step
        if poisson:
            inc = rng.poisson(np.maximum(inc, 0)).astype(float)
        else:
            inc = np.maximum(inc * np.exp(rng.normal(0, 0.03 * noise_mult, n)), 0)
        out = np.cumsum(inc)
        base = 0.0
        for r in sorted(reset_at):
            out[r:] -= out[r - 1] if r > 0 else 0.0
        return out + base

    req_total = counter(rps, poisson=True)
    err_total = counter(rps * err_ratio, poisson=True)
    cols: dict[str, np.ndarray] = {}
    if shifted:
        cols["cpu_usage"] = cpu                      # gauge in cores
        cols["memory_mib"] = mem / 2**20
        cols["disk_usage"] = disk / disk_cap * 100   # percent
        cols["disk_io"] = io
        cols["network_bytes_sec"] = net_rx + net_tx
        cols["rps"] = rps * np.exp(rng.normal(0, 0.03, n))
        cols["error_rate"] = np.clip(err_ratio * np.exp(rng.normal(0, 0.1, n)), 0, 1)
        cols["response_time_ms"] = lat
        cols["restart_count"] = np.cumsum(restarts_inc)
        cols["cpu_throttled_seconds_total"] = counter(throttle + 1e-4)
        cols["queue_depth"] = np.maximum(0, 20 + np.cumsum(rng.normal(0, 0.5, n)))  # unknown column
        cols["replicas"] = np.full(n, 3.0)                                              # constant column
    else:
        cols["container_cpu_usage_seconds_total"] = counter(cpu)
        cols["container_memory_working_set_bytes"] = mem
        cols["container_fs_usage_bytes"] = disk
        cols["container_fs_writes_bytes_total"] = counter(io)
        cols["container_network_receive_bytes_total"] = counter(net_rx)
        cols["container_network_transmit_bytes_total"] = counter(net_tx)
        cols["requests_total"] = req_total
        cols["errors_total"] = err_total
        cols["latency_p99_ms"] = lat
        cols["kube_pod_container_status_restarts_total"] = np.cumsum(restarts_inc)
        cols["container_cpu_cfs_throttled_seconds_total"] = counter(throttle)
    # missing samples: scattered and one multi-minute gap sometimes
    missing |= rng.random(n) < rng.uniform(0.0, 0.03)
    if rng.random() < 0.2:
        g0 = int(rng.integers(0, n))
        missing[g0:g0 + int(rng.uniform(60, 300) / step)] = True
    keep_rows = ~missing
    keep_rows[0] = True
    # a few single missing values inside otherwise present rows
    for name, col in cols.items():
        v = col.astype(float)
        v[rng.random(n) < 0.005] = np.nan
        cols[name] = v[keep_rows]
    return PodSeries(target=target, times=t[keep_rows], columns=cols, label=label, onset=onset, end=end, intensity=u, step=step,
                     meta={"workload": wname, "profile": profile})


def generate_set(seed, n_per_type, n_healthy, hours=3.0, steps=(15.0, 60.0), profile="train", healthy_hours=None, types=None):  # noqa: PLR0917
    """A reproducible list of PodSeries: ``n_per_type`` pods per anomaly type plus ``n_healthy`` healthy pods."""
    rng = np.random.default_rng(seed)
    pods = []
    types = types or ANOMALY_TYPES
    idx = 0
    for label in types:
        for _ in range(n_per_type):
            step = float(steps[int(rng.integers(len(steps)))])
            pods.append(generate_pod(rng, f"{profile}/pod-{idx:05d}", step=step, hours=hours, label=label, profile=profile))
            idx += 1
    for _ in range(n_healthy):
        step = float(steps[int(rng.integers(len(steps)))])
        pods.append(generate_pod(rng, f"{profile}/pod-{idx:05d}", step=step, hours=healthy_hours or hours, label="healthy", profile=profile))
        idx += 1
    return pods
