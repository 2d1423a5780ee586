"""Metric generation: cluster objects + traffic settings + faults -> Prometheus series.

Pure and deterministic: ``Generator.advance(now)`` integrates every counter from the
previous step to ``now`` (rate x dt, with noise seeded by the series and the second, so
the same inputs give the same numbers), and ``render()`` returns the series. The live
exporter calls it on every scrape; ``lab.history`` calls it every ``step`` seconds over
the past hours. Metric names and labels are the ones real clusters expose: Istio
(``istio_requests_total``, ``istio_request_duration_milliseconds``), cAdvisor
(``container_*``), kube-state-metrics (``kube_*``) and the platform application's own
``http_requests_total`` / ``http_request_duration_seconds``.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from datetime import datetime

from lab.controllers.logic import read_faults  # one reader of the faults annotation for controllers and exporters

TRAFFIC_NAMESPACE = "lab-system"
TRAFFIC_CONFIGMAP = "lab-traffic"
TRAFFIC_KEY = "traffic.json"

# Istio's default buckets for istio_request_duration_milliseconds.
ISTIO_BUCKETS_MS = (0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000, 600000, 1800000, 3600000)
# The Prometheus client libraries' default buckets (seconds).
APP_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)

DEFAULT_VERSION = {"error_ratio": 0.0, "p50_ms": 20.0, "p95_ms": 80.0}
SYSTEM_NAMESPACES = frozenset({"kube-system", "kube-public", "kube-node-lease", "lab-system", "istio-system"})
NOISE = 0.05  # +-5 % per second on rates
MAX_STEP = 5.0  # seconds integrated at once
POD_PHASES = ("Pending", "Running", "Succeeded", "Failed", "Unknown")
METRIC_FAULTS = ("cpu_spike", "memory_leak", "oom_kill", "crash_loop", "latency_rise", "error_burst", "network_saturation", "disk_fill")
MIB = 1024 * 1024
GIB = 1024 * MIB


# -- helpers ---------------------------------------------------------------------------------------
def unit_noise(key: str, step: int) -> float:
    """A deterministic number in [-1, 1) for ``key`` at integer ``step``."""
    digest = hashlib.blake2b(f"{key}|{step}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**63 - 1.0


def diurnal(t: float) -> float:
    """Daily load shape: 1.0 on average, 0.6 at 04:00 UTC, 1.4 at 16:00 UTC."""
    return 1.0 + 0.4 * math.sin(2 * math.pi * ((t % 86400) / 86400 - 0.416))


def parse_quantity(value, default: float | None = None) -> float | None:
    """Kubernetes quantity (``500m``, ``1``, ``128Mi``, ``1G``) -> float."""
    if value is None or value == "":
        return default
    text = str(value).strip()
    suffixes = {
        "Ki": 1024, "Mi": MIB, "Gi": GIB, "Ti": 1024 * GIB, "Pi": 1024**5, "Ei": 1024**6,
        "n": 1e-9, "u": 1e-6, "m": 1e-3, "k": 1e3, "K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15, "E": 1e18,
    }
    for suffix in sorted(suffixes, key=len, reverse=True):
        if text.endswith(suffix):
            try:
                return float(text[: -len(suffix)]) * suffixes[suffix]
            except ValueError:
                return default
    try:
        return float(text)
    except ValueError:
        return default


def parse_time(value) -> float | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def param(fault: dict, name: str, default: float) -> float:
    try:
        return float((fault.get("params") or {}).get(name, default))
    except (TypeError, ValueError):
        return default


def lognormal_params(p50: float, p95: float) -> tuple[float, float]:
    p50 = max(float(p50), 1e-6)
    p95 = max(float(p95), p50 * 1.0001)
    return math.log(p50), (math.log(p95) - math.log(p50)) / 1.6448536269514722


def lognormal_cdf(x: float, mu: float, sigma: float) -> float:
    if x <= 0:
        return 0.0
    return 0.5 * (1.0 + math.erf((math.log(x) - mu) / (sigma * math.sqrt(2.0))))


def lognormal_mean(mu: float, sigma: float) -> float:
    return math.exp(mu + sigma * sigma / 2.0)


def histogram_quantile(q: float, bounds: tuple, cdf: list[float]) -> float:
    """What Prometheus' histogram_quantile() returns for cumulative fractions ``cdf`` at ``bounds``."""
    rank = q
    prev_bound, prev_cum = 0.0, 0.0
    for bound, cum in zip(bounds, cdf, strict=True):
        if cum >= rank:
            if cum == prev_cum:
                return bound
            return prev_bound + (bound - prev_bound) * (rank - prev_cum) / (cum - prev_cum)
        prev_bound, prev_cum = bound, cum
    return bounds[-1]


_LABELS_CACHE: dict[tuple, str] = {}


def labels_text(labels: dict) -> str:
    """``{k="v",...}`` in the exposition format (memoised: the same label sets come back every scrape)."""
    if not labels:
        return ""
    key = tuple(labels.items())
    text = _LABELS_CACHE.get(key)
    if text is None:
        if len(_LABELS_CACHE) > 500_000:
            _LABELS_CACHE.clear()
        text = _LABELS_CACHE[key] = _labels_text(labels)
    return text


def _labels_text(labels: dict) -> str:
    parts = []
    for key, value in labels.items():
        text = value if isinstance(value, str) else str(value)
        if "\\" in text or "\n" in text or '"' in text:
            text = text.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')
        parts.append(f'{key}="{text}"')
    return "{" + ",".join(parts) + "}"


def _meta(obj: dict) -> dict:
    return obj.get("metadata") or {}


def _labels(obj: dict) -> dict:
    return _meta(obj).get("labels") or {}


def _matches(selector: dict, labels: dict) -> bool:
    return all(labels.get(k) == v for k, v in (selector or {}).items())


# -- inputs ----------------------------------------------------------------------------------------
@dataclass
class Snapshot:
    """The cluster objects the exporters read (plain JSON dicts as the API returns them)."""

    pods: list = field(default_factory=list)
    nodes: list = field(default_factory=list)
    deployments: list = field(default_factory=list)
    services: list = field(default_factory=list)
    virtualservices: list = field(default_factory=list)
    destinationrules: list = field(default_factory=list)
    traffic: dict = field(default_factory=dict)


@dataclass
class Flow:
    """Requests from one source to one destination workload version, per second."""

    key: str
    rps: float
    error_ratio: float
    p50_ms: float
    p95_ms: float
    labels: dict  # destination/source labels shared by every series of this flow
    reachable: bool  # False: no available endpoint, the source sees 503 UH
    diurnal: bool = False  # rps follows the daily load shape (mean = rps)


def traffic_services(traffic: dict) -> dict:
    return (traffic or {}).get("services") or {}


def _host_parts(host: str, default_ns: str) -> tuple[str, str]:
    parts = host.split(".")
    if len(parts) >= 2 and (len(parts) == 2 or parts[2] == "svc"):
        return parts[0], parts[1]
    return parts[0], default_ns


def _version_settings(cfg: dict, candidates: list[str]) -> dict:
    versions = cfg.get("versions") or {}
    merged = dict(DEFAULT_VERSION)
    merged.update({k: v for k, v in (cfg.get("default") or {}).items() if v is not None})
    for name in candidates:
        if name and name in versions:
            merged.update({k: v for k, v in (versions[name] or {}).items() if v is not None})
            break
    return merged


class Cluster:
    """Indexes over a Snapshot: workloads behind services, faults per pod."""

    def __init__(self, snap: Snapshot):
        self.snap = snap
        self.deployments = {(d["metadata"].get("namespace"), d["metadata"]["name"]): d for d in snap.deployments if _meta(d).get("name")}
        self.services = {(s["metadata"].get("namespace"), s["metadata"]["name"]): s for s in snap.services if _meta(s).get("name")}
        self.nodes = {n["metadata"]["name"]: n for n in snap.nodes if _meta(n).get("name")}
        self.pod_deployment: dict[tuple[str, str], str] = {}
        self.by_deployment: dict[tuple[str, str], list[dict]] = {}
        for pod in snap.pods:
            ns, name = _meta(pod).get("namespace"), _meta(pod).get("name")
            dep = self._owner_deployment(pod)
            if dep:
                self.pod_deployment[(ns, name)] = dep
                self.by_deployment.setdefault((ns, dep), []).append(pod)
        self._flows: list[Flow] | None = None
        self._running: dict[tuple[str, str], int] = {}

    def _owner_deployment(self, pod: dict) -> str | None:
        ns = _meta(pod).get("namespace")
        for ref in _meta(pod).get("ownerReferences") or []:
            if ref.get("kind") == "ReplicaSet":
                base = ref.get("name", "").rsplit("-", 1)[0]
                if (ns, base) in self.deployments:
                    return base
        labels = _labels(pod)
        for (dns, dname), dep in self.deployments.items():
            sel = ((dep.get("spec") or {}).get("selector") or {}).get("matchLabels")
            if dns == ns and sel and _matches(sel, labels):
                return dname
        return None

    def pod_faults(self, pod: dict) -> dict[str, dict]:
        """Faults on the pod, its Deployment and its Node (the pod's own win)."""
        ns = _meta(pod).get("namespace")
        merged: dict[str, dict] = {}
        node = self.nodes.get((pod.get("spec") or {}).get("nodeName") or "")
        if node:
            merged.update(read_faults(node))
        dep = self.pod_deployment.get((ns, _meta(pod).get("name")))
        if dep:
            merged.update(read_faults(self.deployments[(ns, dep)]))
        merged.update(read_faults(pod))
        return merged

    def workload_pods(self, namespace: str, deployment: str) -> list[dict]:
        return self.by_deployment.get((namespace, deployment), [])

    def running_count(self, namespace: str, deployment: str) -> int:
        key = (namespace, deployment)
        if key not in self._running:
            self._running[key] = sum(1 for p in self.workload_pods(namespace, deployment) if (p.get("status") or {}).get("phase") == "Running")
        return self._running[key]

    def deployments_for(self, namespace: str, service: str, subset_labels: dict) -> list[dict]:
        svc = self.services.get((namespace, service))
        selector = dict(((svc or {}).get("spec") or {}).get("selector") or {}) if svc else {"app": service}
        selector.update(subset_labels or {})
        found = []
        for (dns, _), dep in self.deployments.items():
            tmpl = (((dep.get("spec") or {}).get("template") or {}).get("metadata") or {}).get("labels") or {}
            if dns == namespace and selector and _matches(selector, tmpl):
                found.append(dep)
        return found

    def subset_labels(self, namespace: str, service: str, subset: str | None) -> dict:
        if not subset:
            return {}
        for dr in self.snap.destinationrules:
            dns = _meta(dr).get("namespace")
            host = (dr.get("spec") or {}).get("host") or ""
            if _host_parts(host, dns) != (service, namespace):
                continue
            for item in (dr.get("spec") or {}).get("subsets") or []:
                if item.get("name") == subset:
                    return dict(item.get("labels") or {})
        return {"version": subset}

    def fault_fraction(self, namespace: str, deployment: str, kind: str) -> tuple[float, dict | None]:
        pods = self.workload_pods(namespace, deployment)
        dep_fault = read_faults(self.deployments.get((namespace, deployment))).get(kind)
        if dep_fault:
            return 1.0, dep_fault
        if not pods:
            return 0.0, None
        hits = [f for p in pods if (f := read_faults(p).get(kind))]
        return len(hits) / len(pods), (hits[0] if hits else None)

    def flows(self) -> list[Flow]:
        """Every (source -> destination version) flow of the configured traffic."""
        if self._flows is None:
            self._flows = self._compute_flows()
        return self._flows

    def _compute_flows(self) -> list[Flow]:
        result: list[Flow] = []
        configured = traffic_services(self.snap.traffic)
        vs_by_key: dict[str, dict] = {}
        for vs in self.snap.virtualservices:
            ns = _meta(vs).get("namespace")
            keys = [f"{ns}/{_meta(vs).get('name')}"]
            keys += [f"{ns}/{_host_parts(h, ns)[0]}" for h in (vs.get("spec") or {}).get("hosts") or []]
            for key in keys:
                vs_by_key.setdefault(key, vs)
        for key, raw_cfg in sorted(configured.items()):
            cfg = raw_cfg or {}
            ns, _, name = key.partition("/")
            total = float(cfg.get("rps") or 0.0)
            vs = vs_by_key.get(key)
            for dest_service, dest_ns, subset, weight in self._destinations(vs, ns, name):
                labels_sel = self.subset_labels(dest_ns, dest_service, subset)
                deps = self.deployments_for(dest_ns, dest_service, labels_sel)
                dep = deps[0] if deps else None
                tmpl = ((((dep or {}).get("spec") or {}).get("template") or {}).get("metadata") or {}).get("labels") or {}
                version = tmpl.get("version") or labels_sel.get("version") or "unknown"
                settings = _version_settings(cfg, [subset or "", version, dest_service])
                rps = float(settings["rps"]) if settings.get("rps") is not None else total * weight
                workload = _meta(dep).get("name") if dep else "unknown"
                available = int(((dep or {}).get("status") or {}).get("availableReplicas") or 0)
                error_ratio = float(settings.get("error_ratio") or 0.0)
                p50, p95 = float(settings["p50_ms"]), float(settings["p95_ms"])
                if dep:
                    frac, fault = self.fault_fraction(dest_ns, workload, "error_burst")
                    if frac:
                        error_ratio += (param(fault, "ratio", 0.5) - error_ratio) * frac
                    frac, fault = self.fault_fraction(dest_ns, workload, "latency_rise")
                    if frac:
                        factor = 1.0 + (param(fault, "factor", 5.0) - 1.0) * frac
                        p50, p95 = p50 * factor, p95 * factor
                labels = {
                    "source_workload": cfg.get("source_workload", "istio-ingressgateway"),
                    "source_workload_namespace": cfg.get("source_namespace", "istio-system"),
                    "source_app": cfg.get("source_workload", "istio-ingressgateway"),
                    "destination_workload": workload,
                    "destination_workload_namespace": dest_ns,
                    "destination_service": f"{dest_service}.{dest_ns}.svc.cluster.local",
                    "destination_service_name": dest_service,
                    "destination_service_namespace": dest_ns,
                    "destination_version": version,
                    "destination_app": tmpl.get("app") or labels_sel.get("app") or dest_service,
                    "destination_canonical_service": tmpl.get("app") or dest_service,
                    "request_protocol": "http",
                }
                result.append(Flow(
                    key=f"{dest_ns}/{dest_service}/{subset or '-'}/{workload}", rps=max(rps, 0.0),
                    error_ratio=min(max(error_ratio, 0.0), 1.0), p50_ms=p50, p95_ms=p95, labels=labels,
                    reachable=dep is not None and available > 0, diurnal=bool(cfg.get("diurnal")),
                ))
        return result

    def _destinations(self, vs: dict | None, ns: str, name: str) -> list[tuple[str, str, str | None, float]]:
        """(service, namespace, subset, weight fraction) of the route that takes the traffic."""
        if vs is None:
            # No VirtualService: kube-proxy spreads requests over the ready pods of every version.
            deps = self.deployments_for(ns, name, {})
            ready = [(d, int((d.get("status") or {}).get("availableReplicas") or 0)) for d in deps]
            total = sum(r for _, r in ready)
            if not total:
                return [(name, ns, None, 1.0)]
            out = []
            for dep, count in ready:
                version = ((((dep.get("spec") or {}).get("template") or {}).get("metadata") or {}).get("labels") or {}).get("version")
                out.append((name, ns, version, count / total))
            return out
        vs_ns = _meta(vs).get("namespace")
        routes = (vs.get("spec") or {}).get("http") or []
        chosen = next((r for r in routes if not r.get("match")), routes[0] if routes else None)
        if not chosen:
            return []
        dests = chosen.get("route") or []
        weights = [float(d.get("weight", 100 if len(dests) == 1 else 0) or 0) for d in dests]
        total = sum(weights)
        out = []
        for dest, weight in zip(dests, weights, strict=True):
            if total <= 0 or weight <= 0:
                continue
            host = (dest.get("destination") or {}).get("host") or name
            svc, svc_ns = _host_parts(host, vs_ns)
            out.append((svc, svc_ns, (dest.get("destination") or {}).get("subset"), weight / total))
        return out


# -- the generator ---------------------------------------------------------------------------------
class Generator:
    """Counters integrated over time from a Snapshot; ``render`` lists (name, labels, value)."""

    def __init__(self, snapshot: Snapshot | None = None, state: dict | None = None):
        self.snapshot = snapshot or Snapshot()
        self.cluster = Cluster(self.snapshot)
        state = state or {}
        self.t: float | None = state.get("t")
        self.counters: dict[str, float] = dict(state.get("counters") or {})
        self.first_seen: dict[str, float] = dict(state.get("first_seen") or {})
        self.restarts_floor: dict[str, float] = dict(state.get("restarts_floor") or {})

    def state(self) -> dict:
        return {"t": self.t, "counters": self.counters, "first_seen": self.first_seen, "restarts_floor": self.restarts_floor}

    def set_snapshot(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot
        self.cluster = Cluster(snapshot)

    # ---- time
    def fault_start(self, uid: str, fault: dict, now: float) -> float:
        key = f"{uid}|{fault['kind']}|{fault.get('since')}"
        since = parse_time(fault.get("since"))
        if since is not None and now - 7 * 86400 <= since <= now:
            return since
        return self.first_seen.setdefault(key, now)

    def _add(self, key: str, amount: float) -> None:
        if amount > 0:
            self.counters[key] = self.counters.get(key, 0.0) + amount

    def advance(self, now: float) -> None:
        """Integrate every counter from the last step to ``now``."""
        if self.t is None:
            self.t = now
            return
        while self.t < now:
            dt = min(MAX_STEP, now - self.t)
            mid = self.t + dt / 2
            self._integrate(mid, dt)
            self.t += dt

    def _integrate(self, t: float, dt: float) -> None:
        second = int(t)
        for flow in self.cluster.flows():
            if flow.rps <= 0:
                continue
            load = diurnal(t) if flow.diurnal else 1.0
            requests = flow.rps * load * dt * (1.0 + NOISE * unit_noise(flow.key, second))
            errors = requests * flow.error_ratio
            codes = {"200": requests - errors, "503": errors * 0.7, "500": errors * 0.3} if flow.reachable else {"503": requests}
            mu, sigma = lognormal_params(flow.p50_ms, flow.p95_ms)
            mean = lognormal_mean(mu, sigma)
            fractions = [lognormal_cdf(b, mu, sigma) for b in ISTIO_BUCKETS_MS]
            reporters = ("source", "destination") if flow.reachable else ("source",)
            for code, count in codes.items():
                if count <= 0:
                    continue
                for reporter in reporters:
                    base = f"istio|{flow.key}|{reporter}|{code}"
                    self._add(base + "|count", count)
                    self._add(base + "|sum", count * (mean if flow.reachable else 1.0))
                    for i, frac in enumerate(fractions):
                        self._add(f"{base}|b{i}", count * (frac if flow.reachable else 1.0))
        for pod in self.snapshot.pods:
            self._integrate_pod(pod, t, dt, second)

    def _pod_app_traffic(self, pod: dict) -> tuple[float, float, float, float]:
        """(rps, error_ratio, p50_ms, p95_ms) one pod serves."""
        ns, name = _meta(pod).get("namespace"), _meta(pod).get("name")
        dep = self.cluster.pod_deployment.get((ns, name))
        ready_pods = max(1, self.cluster.running_count(ns, dep)) if dep else 1
        rps, err, p50, p95 = 0.0, 0.0, DEFAULT_VERSION["p50_ms"], DEFAULT_VERSION["p95_ms"]
        matched = False
        for flow in self.cluster.flows():
            if dep and flow.labels["destination_workload"] == dep and flow.labels["destination_workload_namespace"] == ns and flow.reachable:
                matched = True
                rps += flow.rps / ready_pods
                err, p50, p95 = flow.error_ratio, flow.p50_ms, flow.p95_ms
        if not matched:
            rps = 1.0
        faults = self.cluster.pod_faults(pod)
        if "error_burst" in faults and not matched:
            err = param(faults["error_burst"], "ratio", 0.5)
        if "latency_rise" in faults and not matched:
            factor = param(faults["latency_rise"], "factor", 5.0)
            p50, p95 = p50 * factor, p95 * factor
        return rps, err, p50, p95

    def _integrate_pod(self, pod: dict, t: float, dt: float, second: int) -> None:
        meta = _meta(pod)
        ns, uid = meta.get("namespace"), meta.get("uid") or f"{meta.get('namespace')}/{meta.get('name')}"
        faults = self.cluster.pod_faults(pod)
        for fault in faults.values():
            self.fault_start(uid, fault, t - dt / 2)  # remember when a fault without "since" was first seen
        if (pod.get("status") or {}).get("phase") != "Running":
            return
        load = diurnal(t)
        app_rps = 0.0
        if _labels(pod).get("app") and ns not in SYSTEM_NAMESPACES:
            app_rps, err, p50, p95 = self._pod_app_traffic(pod)
            requests = app_rps * load * dt * (1.0 + NOISE * unit_noise(f"app|{uid}", second))
            errors = requests * err
            mu, sigma = lognormal_params(p50 / 1000.0, p95 / 1000.0)
            fractions = [lognormal_cdf(b, mu, sigma) for b in APP_BUCKETS_S]
            for status, count in (("200", requests - errors), ("500", errors)):
                if count <= 0:
                    continue
                self._add(f"app|{uid}|{status}|count", count)
            self._add(f"app|{uid}|lat|count", requests)
            self._add(f"app|{uid}|lat|sum", requests * lognormal_mean(mu, sigma))
            for i, frac in enumerate(fractions):
                self._add(f"app|{uid}|lat|b{i}", requests * frac)
        for container in (pod.get("spec") or {}).get("containers") or []:
            cname = container.get("name", "main")
            res = container.get("resources") or {}
            cpu_req = parse_quantity((res.get("requests") or {}).get("cpu"), 0.1)
            cpu_lim = parse_quantity((res.get("limits") or {}).get("cpu"))
            key = f"ctr|{uid}|{cname}"
            usage = cpu_req * 0.4 * load * (1.0 + 0.15 * unit_noise(key + "|cpu", second))
            if "cpu_spike" in faults:
                spike = faults["cpu_spike"]
                if "factor" in (spike.get("params") or {}):  # usage times factor
                    usage *= param(spike, "factor", 10.0)
                else:  # default: the container runs at 97 % of its limit (or 4x its request, at least 1 core)
                    usage = (cpu_lim or max(cpu_req * 4, 1.0)) * param(spike, "ratio", 0.97)
            self._add(key + "|cpu", usage * dt)
            rx = (20_000 + app_rps * 1_500) * load * (1.0 + 0.2 * unit_noise(key + "|rx", second))
            tx = (10_000 + app_rps * 4_000) * load * (1.0 + 0.2 * unit_noise(key + "|tx", second))
            if "network_saturation" in faults:
                rate = param(faults["network_saturation"], "bytes_per_second", 125_000_000.0)
                rx, tx = rate, rate
            self._add(key + "|rx", rx * dt)
            self._add(key + "|tx", tx * dt)

    # ---- gauges and exposition
    def _memory(self, pod: dict, container: dict, faults: dict, now: float, uid: str) -> tuple[float, float | None, int]:
        """(working set bytes, limit, restarts caused by the memory faults)."""
        res = container.get("resources") or {}
        req = parse_quantity((res.get("requests") or {}).get("memory"), 64 * MIB)
        lim = parse_quantity((res.get("limits") or {}).get("memory"))
        cname = container.get("name", "main")
        slow = unit_noise(f"mem|{uid}|{cname}", int(now // 60))
        base = req * 0.6 * (1.0 + 0.05 * slow + 0.1 * (diurnal(now) - 1.0))
        ceiling = lim or req * 2
        extra_restarts = 0
        if "memory_leak" in faults:
            start = self.fault_start(uid, faults["memory_leak"], now)
            # "rate" (lab.faults' name) or "bytes_per_minute": bytes per minute; default 10 % of the limit per minute
            per_min = param(faults["memory_leak"], "bytes_per_minute", param(faults["memory_leak"], "rate", ceiling * 0.1))
            base = min(base + per_min * (now - start) / 60.0, ceiling * 0.99)
        if "oom_kill" in faults:
            start = self.fault_start(uid, faults["oom_kill"], now)
            period = max(param(faults["oom_kill"], "period_seconds", 60.0), 1.0)
            elapsed = now - start
            extra_restarts = int(elapsed // period)
            phase = (elapsed % period) / period
            base = base + (ceiling * 0.99 - base) * phase
        return base, lim, extra_restarts

    def render(self, now: float | None = None) -> dict[str, list[tuple[dict, float]]]:
        """Series by family: ``{"name": [(labels, value), ...]}`` at ``now`` (default: the last step)."""
        now = self.t if now is None else now
        out: dict[str, list[tuple[dict, float]]] = {}

        def put(name: str, labels: dict, value: float) -> None:
            out.setdefault(name, []).append((labels, value))

        self._render_istio(put)
        self._render_pods(put, now or 0.0)
        self._render_state(put)
        return out

    def _render_istio(self, put) -> None:
        for flow in self.cluster.flows():
            for code in ("200", "500", "503"):
                for reporter in ("source", "destination"):
                    base = f"istio|{flow.key}|{reporter}|{code}"
                    count = _counter(self.counters.get(base + "|count", 0.0))
                    if count <= 0:
                        continue  # like Envoy: a series exists once requests with this code flow
                    labels = {"reporter": reporter, **flow.labels, "response_code": code,
                              "response_flags": "-" if flow.reachable or code != "503" else "UH",
                              "connection_security_policy": "mutual_tls" if reporter == "destination" else "unknown"}
                    if not flow.reachable and reporter == "source":
                        labels["destination_workload"] = "unknown"
                    put("istio_requests_total", labels, count)
                    for i, bound in enumerate(ISTIO_BUCKETS_MS):
                        put("istio_request_duration_milliseconds_bucket", {**labels, "le": _fmt_le(bound)},
                            min(count, _counter(self.counters.get(f"{base}|b{i}", 0.0))))
                    put("istio_request_duration_milliseconds_bucket", {**labels, "le": "+Inf"}, count)
                    put("istio_request_duration_milliseconds_sum", labels, round(self.counters.get(base + "|sum", 0.0), 3))
                    put("istio_request_duration_milliseconds_count", labels, count)

    def _render_pods(self, put, now: float) -> None:
        for pod in self.snapshot.pods:
            meta = _meta(pod)
            ns, name = meta.get("namespace"), meta.get("name")
            uid = meta.get("uid") or f"{ns}/{name}"
            spec, status = pod.get("spec") or {}, pod.get("status") or {}
            node = spec.get("nodeName") or ""
            phase = status.get("phase") or "Pending"
            faults = self.cluster.pod_faults(pod)
            dep = self.cluster.pod_deployment.get((ns, name))
            put("kube_pod_info", {"namespace": ns, "pod": name, "uid": uid, "node": node, "pod_ip": status.get("podIP") or "",
                                  "host_ip": status.get("hostIP") or "", "created_by_kind": "ReplicaSet" if dep else "<none>",
                                  "created_by_name": dep or "<none>"}, 1)
            for candidate in POD_PHASES:
                put("kube_pod_status_phase", {"namespace": ns, "pod": name, "uid": uid, "phase": candidate}, 1 if candidate == phase else 0)
            ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])
            for cond in ("true", "false"):
                put("kube_pod_status_ready", {"namespace": ns, "pod": name, "uid": uid, "condition": cond}, 1 if (cond == "true") == ready else 0)
            statuses = {c.get("name"): c for c in status.get("containerStatuses") or []}
            running = phase == "Running"
            if running and _labels(pod).get("app") and ns not in SYSTEM_NAMESPACES:
                self._render_app(put, pod, uid)
            for container in spec.get("containers") or []:
                cname = container.get("name", "main")
                cs = statuses.get(cname) or {}
                key = f"ctr|{uid}|{cname}"
                clabels = {"namespace": ns, "pod": name, "container": cname}
                res = container.get("resources") or {}
                for kind, values in (("requests", res.get("requests") or {}), ("limits", res.get("limits") or {})):
                    for resource in ("cpu", "memory"):
                        value = parse_quantity(values.get(resource))
                        if value is not None:
                            put(f"kube_pod_container_resource_{kind}", {**clabels, "node": node, "resource": resource,
                                                                        "unit": "core" if resource == "cpu" else "byte"}, value)
                working_set, _, oom_restarts = self._memory(pod, container, faults, now, uid)
                restarts = float(cs.get("restartCount") or 0)
                if "crash_loop" in faults:
                    start = self.fault_start(uid, faults["crash_loop"], now)
                    restarts = max(restarts, float(int((now - start) // max(param(faults["crash_loop"], "interval_seconds", 30.0), 1.0)) + 1))
                restarts = max(restarts, float(oom_restarts))
                floor_key = f"{uid}|{cname}"
                restarts = max(restarts, self.restarts_floor.get(floor_key, 0.0))
                self.restarts_floor[floor_key] = restarts
                put("kube_pod_container_status_restarts_total", clabels, restarts)
                waiting = ((cs.get("state") or {}).get("waiting") or {}).get("reason")
                if "crash_loop" in faults and not waiting:
                    waiting = "CrashLoopBackOff"
                if waiting:
                    put("kube_pod_container_status_waiting_reason", {**clabels, "reason": waiting}, 1)
                terminated = ((cs.get("lastState") or {}).get("terminated") or {}).get("reason")
                if "oom_kill" in faults and oom_restarts:
                    terminated = "OOMKilled"
                if terminated:
                    put("kube_pod_container_status_last_terminated_reason", {**clabels, "reason": terminated}, 1)
                if not running:
                    continue
                image = container.get("image", "")
                alabels = {"namespace": ns, "pod": name, "container": cname, "node": node, "image": image,
                           "id": f"/kubepods/pod{uid}/{cname}", "name": f"k8s_{cname}_{name}_{ns}_{uid}_0"}
                put("container_cpu_usage_seconds_total", alabels, round(self.counters.get(key + "|cpu", 0.0), 6))
                put("container_memory_working_set_bytes", alabels, float(int(working_set)))
                put("container_memory_usage_bytes", alabels, float(int(working_set * 1.12)))
                put("container_network_receive_bytes_total", {**alabels, "interface": "eth0"}, math.floor(self.counters.get(key + "|rx", 0.0)))
                put("container_network_transmit_bytes_total", {**alabels, "interface": "eth0"}, math.floor(self.counters.get(key + "|tx", 0.0)))
                fs_limit = parse_quantity((res.get("limits") or {}).get("ephemeral-storage"), 10 * GIB)
                fs = 40 * MIB + 5 * MIB * (1.0 + unit_noise(key + "|fs", int(now // 300)))
                if "disk_fill" in faults:
                    start = self.fault_start(uid, faults["disk_fill"], now)
                    target = param(faults["disk_fill"], "ratio", 0.97) * fs_limit
                    duration = max(param(faults["disk_fill"], "duration_seconds", 60.0), 1.0)
                    fs = fs + (target - fs) * min(1.0, (now - start) / duration)
                put("container_fs_usage_bytes", {**alabels, "device": "/dev/vda1"}, float(int(fs)))
                put("container_fs_limit_bytes", {**alabels, "device": "/dev/vda1"}, float(int(fs_limit)))

    def _render_app(self, put, pod: dict, uid: str) -> None:
        meta = _meta(pod)
        labels = {"namespace": meta.get("namespace"), "pod": meta.get("name"), "app": _labels(pod).get("app", ""),
                  "version": _labels(pod).get("version", ""), "method": "GET", "handler": "/api"}
        for status in ("200", "500"):
            count = _counter(self.counters.get(f"app|{uid}|{status}|count", 0.0))
            if count > 0:
                put("http_requests_total", {**labels, "status": status}, count)
        total = _counter(self.counters.get(f"app|{uid}|lat|count", 0.0))
        if total <= 0:
            return
        for i, bound in enumerate(APP_BUCKETS_S):
            put("http_request_duration_seconds_bucket", {**labels, "le": _fmt_le(bound)},
                min(total, _counter(self.counters.get(f"app|{uid}|lat|b{i}", 0.0))))
        put("http_request_duration_seconds_bucket", {**labels, "le": "+Inf"}, total)
        put("http_request_duration_seconds_sum", labels, round(self.counters.get(f"app|{uid}|lat|sum", 0.0), 6))
        put("http_request_duration_seconds_count", labels, total)

    def _render_state(self, put) -> None:
        for (ns, name), dep in sorted(self.cluster.deployments.items()):
            spec, status = dep.get("spec") or {}, dep.get("status") or {}
            labels = {"namespace": ns, "deployment": name}
            put("kube_deployment_spec_replicas", labels, int(spec.get("replicas", 1) or 0))
            put("kube_deployment_status_replicas", labels, int(status.get("replicas") or 0))
            put("kube_deployment_status_replicas_available", labels, int(status.get("availableReplicas") or 0))
            put("kube_deployment_status_replicas_unavailable", labels, int(status.get("unavailableReplicas") or 0))
            put("kube_deployment_status_replicas_updated", labels, int(status.get("updatedReplicas") or 0))
        for name, node in sorted(self.cluster.nodes.items()):
            conditions = {c.get("type"): c.get("status") for c in (node.get("status") or {}).get("conditions") or []}
            for ctype, cstatus in sorted(conditions.items()):
                for value in ("true", "false", "unknown"):
                    put("kube_node_status_condition", {"node": name, "condition": ctype, "status": value},
                        1 if (cstatus or "Unknown").lower() == value else 0)
            alloc = (node.get("status") or {}).get("allocatable") or {}
            for resource, unit in (("cpu", "core"), ("memory", "byte"), ("pods", "integer")):
                value = parse_quantity(alloc.get(resource))
                if value is not None:
                    put("kube_node_status_allocatable", {"node": name, "resource": resource, "unit": unit}, value)
            unschedulable = bool((node.get("spec") or {}).get("unschedulable"))
            put("kube_node_spec_unschedulable", {"node": name}, 1 if unschedulable else 0)


APP_FAMILIES = ("http_requests_total", "http_request_duration_seconds_bucket", "http_request_duration_seconds_sum", "http_request_duration_seconds_count")


def _counter(value: float) -> float:
    """Counters are exposed with 3 decimals: request counts are integers in real life, but
    rounding down would make short-window ratios and quantiles lumpy; rounding is monotonic."""
    return round(value, 3)


def _fmt_le(bound: float) -> str:
    return repr(float(bound)) if not float(bound).is_integer() else f"{float(bound):.1f}"


def _fmt_value(value: float) -> str:
    if isinstance(value, int) or float(value).is_integer():
        return str(int(value))
    return repr(float(value))


def exposition(series: dict[str, list[tuple[dict, float]]], app: bool) -> str:
    """Prometheus text format for the app families (``app``) or every other family."""
    lines = []
    for name, items in series.items():
        if (name in APP_FAMILIES) != app:
            continue
        for labels, value in items:
            lines.append(f"{name}{labels_text(labels)} {_fmt_value(value)}")
    return "\n".join(lines) + "\n"
