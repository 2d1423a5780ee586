"""API server benchmark, the Python emulator and the real kube-apiserver in the same run: creates, gets
and lists of 1,000 and 10,000 pods through raw HTTP(S) and the kubernetes client, and the server's resident
memory. ``raw_list_*`` include the client's json.loads; ``raw_list_10k_bytes_only_s`` is the server and the
transfer alone. The real server is measured over TLS with a bearer token, as clients use it.

Run: ``python -m bench apiserver`` (or ``python -m bench.apiserver``). Prints both columns and the ratio
real/emulator; the target is a list of 10,000 pods in under 1 s.
"""

from __future__ import annotations

import http.client
import json
import os
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import kubernetes

from lab.services import free_port

POD = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {"name": "", "labels": {"app": "bench", "version": "v1", "pod-template-hash": "5d8f7c9b6"}},
    "spec": {
        "nodeName": "bench-node",
        "tolerations": [{"operator": "Exists"}],
        "containers": [
            {
                "name": "app",
                "image": "registry.local/bench:1.0",
                "ports": [{"containerPort": 8080}],
                "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}},
            }
        ],
    },
}


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _create(conn: http.client.HTTPConnection, headers: dict, namespace: str, count: int) -> float:
    t = time.perf_counter()
    for i in range(count):
        body = dict(POD)
        body["metadata"] = dict(POD["metadata"], name=f"bench-{i:05d}")
        conn.request("POST", f"/api/v1/namespaces/{namespace}/pods", json.dumps(body), {"Content-Type": "application/json", **headers})
        resp = conn.getresponse()
        resp.read()
        if resp.status != 201:
            raise RuntimeError(f"create failed: {resp.status}")
    return count / (time.perf_counter() - t)


def _timed(fn, repeat: int) -> float:
    """Best wall time of ``repeat`` runs, in seconds."""
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def _measure(conn_factory, headers: dict, kube_client, rss) -> dict:
    """The figures for one API server: ``conn_factory()`` gives a raw HTTP(S) connection, ``rss()`` its memory."""
    conn = conn_factory()
    rss_empty = rss()
    for ns in ("bench-1k", "bench-10k"):
        conn.request("POST", "/api/v1/namespaces", json.dumps({"metadata": {"name": ns}}), {"Content-Type": "application/json", **headers})
        conn.getresponse().read()
    creates_per_s = _create(conn, headers, "bench-1k", 1000)
    _create(conn, headers, "bench-10k", 10000)
    rss_full = rss()

    def raw_get():
        conn.request("GET", "/api/v1/namespaces/bench-10k/pods/bench-04242", headers=headers)
        resp = conn.getresponse()
        json.loads(resp.read())

    n = 2000
    t = time.perf_counter()
    for _ in range(n):
        raw_get()
    raw_get_rps = n / (time.perf_counter() - t)

    core = kubernetes.client.CoreV1Api(kube_client)
    n = 500
    t = time.perf_counter()
    for _ in range(n):
        core.read_namespaced_pod("bench-04242", "bench-10k")
    client_get_rps = n / (time.perf_counter() - t)

    def raw_list(ns, expect):
        def run():
            conn.request("GET", f"/api/v1/namespaces/{ns}/pods", headers=headers)
            resp = conn.getresponse()
            items = json.loads(resp.read())["items"]
            assert len(items) == expect
        return run

    def raw_transfer(ns):
        def run():
            conn.request("GET", f"/api/v1/namespaces/{ns}/pods", headers=headers)
            resp = conn.getresponse()
            assert len(resp.read()) > 1000
        return run

    def client_list(ns, expect, preload):
        def run():
            if preload:
                assert len(core.list_namespaced_pod(ns).items) == expect
            else:
                resp = core.list_namespaced_pod(ns, _preload_content=False)
                assert len(json.loads(resp.data)["items"]) == expect
        return run

    figures = {
        "pods_created_per_s": round(creates_per_s),
        "raw_get_per_s": round(raw_get_rps),
        "client_get_per_s": round(client_get_rps),
        "raw_list_10k_bytes_only_s": _timed(raw_transfer("bench-10k"), 3),
        "raw_list_1k_s": _timed(raw_list("bench-1k", 1000), 5),
        "raw_list_10k_s": _timed(raw_list("bench-10k", 10000), 3),
        "client_list_1k_json_s": _timed(client_list("bench-1k", 1000, False), 3),
        "client_list_10k_json_s": _timed(client_list("bench-10k", 10000, False), 3),
        "client_list_1k_models_s": _timed(client_list("bench-1k", 1000, True), 2),
        "client_list_10k_models_s": _timed(client_list("bench-10k", 10000, True), 1),
        "rss_empty_mib": round(rss_empty, 1),
        "rss_11k_pods_mib": round(rss_full, 1),
    }
    conn.close()
    return figures


def _emulator(tmp: Path) -> dict:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "lab", "apiserver", "--port", str(port), "--tls-port", "-1", "--dir", str(tmp)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(url + "/healthz", timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("the emulator did not start") from None
                time.sleep(0.1)
        kube_client = kubernetes.client.ApiClient(kubernetes.client.Configuration(host=url))
        try:
            return _measure(lambda: http.client.HTTPConnection("127.0.0.1", port), {}, kube_client, lambda: _rss_mib(proc.pid))
        finally:
            kube_client.close()
    finally:
        proc.terminate()
        proc.wait(10)


def _real(tmp: Path) -> dict:
    """etcd + kube-apiserver + controller-manager + scheduler + KWOK, without nodes: the pods are bound to a Node
    that nothing manages (so KWOK and the scheduler leave them alone) and tolerate its taints (no eviction)."""
    from lab import orchestrator  # noqa: PLC0415 - only for this half of the bench

    saved = os.environ.get("LAB_NODES")
    os.environ["LAB_NODES"] = "0"  # no KWOK nodes
    try:
        endpoints = orchestrator.up(tmp, only={"apiserver"}, kube="real")
    finally:
        if saved is None:
            os.environ.pop("LAB_NODES")
        else:
            os.environ["LAB_NODES"] = saved
    try:
        api = endpoints["apiserver"]
        kube_client = kubernetes.config.new_client_from_config(config_file=api["kubeconfig"], context="lab")
        kubernetes.client.CoreV1Api(kube_client).create_node({"metadata": {"name": POD["spec"]["nodeName"]}})
        ssl_ctx = ssl.create_default_context(cafile=api["ca_cert"])
        host, port = api["https_url"].removeprefix("https://").split(":")
        pid = int((tmp / "pids" / "kube-apiserver.pid").read_text())
        try:
            return _measure(lambda: http.client.HTTPSConnection(host, int(port), context=ssl_ctx),
                            {"Authorization": f"Bearer {api['token']}"}, kube_client, lambda: _rss_mib(pid))
        finally:
            kube_client.close()
    finally:
        orchestrator.down(tmp)


def main() -> int:
    results = {}
    for name, run in (("emulator", _emulator), ("real", _real)):
        with tempfile.TemporaryDirectory(prefix=f"bench-apiserver-{name}-") as tmp:
            results[name] = run(Path(tmp))
    print(f"{'figure':28} {'emulator':>10} {'real':>10} {'real/emulator':>14}")
    for key in results["real"]:
        emu, real = results["emulator"][key], results["real"][key]
        ratio = real / emu if emu else float("nan")
        fmt = "{:10.3f}" if isinstance(real, float) else "{:10d}"
        print(f"{key:28} {fmt.format(emu)} {fmt.format(real)} {ratio:14.2f}")
    for name, figures in results.items():
        ok = figures["raw_list_10k_bytes_only_s"] < 1.0
        print(f"{name}: list of 10,000 pods < 1 s (server + transfer, raw HTTP): {'met' if ok else 'NOT met'} "
              f"({figures['raw_list_10k_bytes_only_s']:.3f} s; with the client's JSON parse {figures['raw_list_10k_s']:.3f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
