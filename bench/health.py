"""health_check benchmark: wall time and API requests of machinenativeops.platform.health_check against the
same inspection done the way the seeds' runbooks do it today (kubernetes.core.k8s_info in a loop over
namespaces and kinds, evaluated with Jinja), measured in the same run against the same emulator.

Sizes: 100, 1,000 and 5,000 pods spread over 10 and 50 namespaces (one Deployment per 10 pods, 1% of the
pods crash-looping). The emulator runs as its own process without controllers; a counting HTTP proxy in
front of it counts every request both approaches send. Both run through ansible-playbook.

Run: ``python -m bench health`` (``BENCH_HEALTH_SIZES=100x10,1000x10`` to pick sizes). Prints figures and
ratios; target: API requests independent of the object count (one paginated list per kind and scope) and at
5,000 pods at least 5x faster than the k8s_info loop.
"""

from __future__ import annotations

import http.client
import http.server
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from lab.services import free_port

ROOT = Path(__file__).resolve().parents[1]
SIZES = [(100, 10), (1000, 10), (5000, 10), (100, 50), (1000, 50), (5000, 50)]
KINDS = [("apps/v1", "Deployment"), ("apps/v1", "StatefulSet"), ("apps/v1", "DaemonSet"), ("v1", "Pod")]
NOW = "2026-03-01T12:00:00Z"

HEALTH_PLAYBOOK = """
- hosts: localhost
  gather_facts: false
  tasks:
    - machinenativeops.platform.health_check:
        kubeconfig: "{{ kubeconfig }}"
        checks: [workloads, pods, nodes]
        namespaces: "{{ scope_namespaces | default(omit) }}"
        reference_time: "__NOW__"
        fail_on: never
      register: health
    - ansible.builtin.copy:
        content: "{{ {'findings': health.findings | length, 'api_calls': health.api_calls, 'status': health.status} | to_json }}"
        dest: "{{ out }}"
        mode: "0600"
""".replace("__NOW__", NOW)

# What people write today: one k8s_info per namespace and kind, then filters over the registered lists.
K8S_INFO_PLAYBOOK = """
- hosts: localhost
  gather_facts: false
  tasks:
    - kubernetes.core.k8s_info:
        kubeconfig: "{{ kubeconfig }}"
        kind: Node
      register: nodes
    - kubernetes.core.k8s_info:
        kubeconfig: "{{ kubeconfig }}"
        api_version: "{{ item.1.0 }}"
        kind: "{{ item.1.1 }}"
        namespace: "{{ item.0 }}"
      loop: "{{ namespaces | product(kinds) | list }}"
      register: listed
    - ansible.builtin.set_fact:
        objects: "{{ listed.results | map(attribute='resources') | flatten }}"
    - ansible.builtin.set_fact:
        problems: >-
          {%- set found = namespace(n=0) -%}
          {%- for o in objects -%}
            {%- if o.kind == 'Pod' -%}
              {%- set bad = namespace(v=o.status.phase not in ['Running', 'Succeeded']) -%}
              {%- for c in o.status.containerStatuses | default([]) -%}
                {%- if not c.ready or (c.state.waiting.reason | default('')) in ['CrashLoopBackOff', 'ImagePullBackOff'] -%}
                  {%- set bad.v = true -%}
                {%- endif -%}
              {%- endfor -%}
              {%- if bad.v -%}{%- set found.n = found.n + 1 -%}{%- endif -%}
            {%- elif o.kind in ['Deployment', 'StatefulSet'] -%}
              {%- if (o.status.readyReplicas | default(0)) < (o.spec.replicas | default(1)) -%}{%- set found.n = found.n + 1 -%}{%- endif -%}
            {%- elif o.kind == 'DaemonSet' -%}
              {%- if (o.status.numberReady | default(0)) < (o.status.desiredNumberScheduled | default(0)) -%}{%- set found.n = found.n + 1 -%}{%- endif -%}
            {%- endif -%}
          {%- endfor -%}
          {%- for n in nodes.resources -%}
            {%- set ready = n.status.conditions | default([]) | selectattr('type', 'equalto', 'Ready') | selectattr('status', 'equalto', 'True') | list -%}
            {%- if not ready -%}
              {%- set found.n = found.n + 1 -%}
            {%- endif -%}
          {%- endfor -%}
          {{ found.n }}
    - ansible.builtin.copy:
        content: "{{ {'findings': problems | int} | to_json }}"
        dest: "{{ out }}"
        mode: "0600"
"""


class CountingProxy:
    """A threaded HTTP reverse proxy that counts the requests it forwards to ``upstream``."""

    def __init__(self, upstream_port: int):
        self.count = 0
        self.lock = threading.Lock()
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _forward(self):
                with proxy.lock:
                    proxy.count += 1
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                conn = http.client.HTTPConnection("127.0.0.1", upstream_port, timeout=300)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
                conn.request(self.command, self.path, body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                self.send_response(resp.status)
                for k, v in resp.getheaders():
                    if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                conn.close()

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _forward

            def log_message(self, *args):
                return

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


def _post(conn, path, body):
    conn.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
    resp = conn.getresponse()
    data = resp.read()
    if resp.status not in (200, 201):
        raise RuntimeError(f"POST {path} failed: {resp.status} {data[:200]!r}")
    return json.loads(data)


def _put_status(conn, path, body):
    conn.request("PUT", path + "/status", json.dumps(body), {"Content-Type": "application/json"})
    resp = conn.getresponse()
    data = resp.read()
    if resp.status != 200:
        raise RuntimeError(f"PUT {path}/status failed: {resp.status} {data[:200]!r}")


def populate(port: int, pods: int, namespaces: int) -> int:
    """Nodes, namespaces, Deployments (one per 10 pods) and pods with kubelet-like statuses; returns the pods
    expected to be reported (1% crash-looping)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    for n in range(3):
        node = _post(conn, "/api/v1/nodes", {"apiVersion": "v1", "kind": "Node", "metadata": {"name": f"bench-node-{n}"}})
        node["status"] = {"conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": NOW}]}
        _put_status(conn, f"/api/v1/nodes/bench-node-{n}", node)
    bad = 0
    per_ns = pods // namespaces
    for i in range(namespaces):
        ns = f"bench-{i:02d}"
        _post(conn, "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
        for d in range(max(1, per_ns // 10)):
            name = f"app-{d:03d}"
            dep = _post(conn, f"/apis/apps/v1/namespaces/{ns}/deployments", {
                "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
                "spec": {"replicas": 10, "selector": {"matchLabels": {"app": name}},
                         "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [{"name": "app", "image": "bench:1"}]}}}})
            dep["status"] = {"observedGeneration": dep["metadata"].get("generation", 1), "replicas": 10, "readyReplicas": 10,
                             "updatedReplicas": 10, "availableReplicas": 10,
                             "conditions": [{"type": "Available", "status": "True", "lastTransitionTime": NOW}]}
            _put_status(conn, f"/apis/apps/v1/namespaces/{ns}/deployments/{name}", dep)
        for p in range(per_ns):
            crash = (i * per_ns + p) % 100 == 42
            bad += crash
            pod = _post(conn, f"/api/v1/namespaces/{ns}/pods", {
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": f"app-{p // 10:03d}-{p:05d}", "labels": {"app": f"app-{p // 10:03d}"}},
                "spec": {"nodeName": f"bench-node-{p % 3}", "containers": [{"name": "app", "image": "bench:1",
                                                                            "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}}}]}})
            state = {"waiting": {"reason": "CrashLoopBackOff"}} if crash else {"running": {"startedAt": NOW}}
            pod["status"] = {"phase": "Running", "startTime": NOW,
                             "conditions": [{"type": "Ready", "status": "False" if crash else "True", "lastTransitionTime": NOW}],
                             "containerStatuses": [{"name": "app", "ready": not crash, "restartCount": 3 if crash else 0, "state": state,
                                                    "lastState": {"terminated": {"reason": "Error", "exitCode": 1}} if crash else {}}]}
            _put_status(conn, f"/api/v1/namespaces/{ns}/pods/{pod['metadata']['name']}", pod)
    conn.close()
    return bad


def run_playbook(work: Path, text: str, extra: dict) -> tuple[float, dict]:
    playbook = work / f"pb-{time.monotonic_ns()}.yml"
    playbook.write_text(text)
    out = work / f"out-{time.monotonic_ns()}.json"
    extra = dict(extra, out=str(out), ansible_python_interpreter=sys.executable)
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(ROOT / "build" / "collections"), ANSIBLE_NOCOLOR="1")
    cmd = [str(Path(sys.executable).parent / "ansible-playbook"), "-i", "localhost,", "-c", "local", str(playbook), "-e", json.dumps(extra)]
    t = time.perf_counter()
    proc = subprocess.run(cmd, cwd=str(ROOT), env=env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - t
    if proc.returncode != 0:
        raise RuntimeError(f"ansible-playbook failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-2000:]}")
    return elapsed, json.loads(out.read_text())


def kubeconfig_for(work: Path, port: int) -> str:
    path = work / f"kubeconfig-{port}"
    path.write_text(json.dumps({"apiVersion": "v1", "kind": "Config", "current-context": "bench",
                                "clusters": [{"name": "bench", "cluster": {"server": f"http://127.0.0.1:{port}"}}],
                                "users": [{"name": "bench", "user": {}}],
                                "contexts": [{"name": "bench", "context": {"cluster": "bench", "user": "bench"}}]}))
    return str(path)


def measure(work: Path, pods: int, namespaces: int) -> dict:
    port = free_port()
    data = work / f"api-{pods}-{namespaces}"
    data.mkdir()
    server = subprocess.Popen([sys.executable, "-m", "lab", "apiserver", "--port", str(port), "--tls-port", "-1", "--dir", str(data),
                               "--kubeconfig", str(data / "kubeconfig")], cwd=str(ROOT), stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                conn.request("GET", "/healthz")
                conn.getresponse().read()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        expected = populate(port, pods, namespaces)
        ns_list = [f"bench-{i:02d}" for i in range(namespaces)]
        with CountingProxy(port) as proxy:
            kubeconfig = kubeconfig_for(work, proxy.port)
            row = {"pods": pods, "namespaces": namespaces, "expected": expected}
            for label, extra in (("health_ns", {"scope_namespaces": ns_list}), ("health_all", {})):
                run_playbook(work, HEALTH_PLAYBOOK, dict(extra, kubeconfig=kubeconfig))   # warm the discovery cache
                proxy.count = 0
                elapsed, result = run_playbook(work, HEALTH_PLAYBOOK, dict(extra, kubeconfig=kubeconfig))
                row[label] = {"seconds": elapsed, "requests": proxy.count, "api_calls": result["api_calls"], "findings": result["findings"]}
            proxy.count = 0
            elapsed, result = run_playbook(work, K8S_INFO_PLAYBOOK, {"kubeconfig": kubeconfig, "namespaces": ns_list, "kinds": [list(k) for k in KINDS]})
            row["k8s_info"] = {"seconds": elapsed, "requests": proxy.count, "findings": result["findings"]}
        return row
    finally:
        server.terminate()
        server.wait(timeout=30)


def main() -> int:
    sizes = SIZES
    if os.environ.get("BENCH_HEALTH_SIZES"):
        sizes = [tuple(int(x) for x in item.split("x")) for item in os.environ["BENCH_HEALTH_SIZES"].split(",")]
    print("health_check (one task; namespaces given = one list per kind and namespace, all = one cluster-wide list per kind)")
    print("vs kubernetes.core.k8s_info in a loop over namespaces x kinds; both via ansible-playbook, same emulator, same run.")
    print("checks: Deployment/StatefulSet/DaemonSet/Pod per namespace + Node; requests counted by an HTTP proxy (incl. discovery)")
    header = (f"{'pods':>5} {'ns':>3} | {'health ns s':>11} {'req':>4} | {'health all s':>12} {'req':>4} | "
              f"{'k8s_info s':>10} {'req':>5} | {'speedup':>7} {'req ratio':>9} | findings h/k (expected)")
    print(header)
    print("-" * len(header))
    status = 0
    with tempfile.TemporaryDirectory(prefix="bench-health-") as tmp:
        for pods, namespaces in sizes:
            row = measure(Path(tmp), pods, namespaces)
            h, a, k = row["health_ns"], row["health_all"], row["k8s_info"]
            print(f"{pods:>5} {namespaces:>3} | {h['seconds']:>11.2f} {h['requests']:>4} | {a['seconds']:>12.2f} {a['requests']:>4} | "
                  f"{k['seconds']:>10.2f} {k['requests']:>5} | {k['seconds'] / h['seconds']:>6.1f}x {k['requests'] / max(1, h['requests']):>8.1f}x | "
                  f"{h['findings']}/{a['findings']}/{k['findings']} ({row['expected']})", flush=True)
            if not h["findings"] == a["findings"] == k["findings"] == row["expected"]:
                print(f"   !! findings differ from the {row['expected']} crash-looping pods")
                status = 1
    print("req = HTTP requests seen by the proxy for that run (the module's own api_calls agree); speedup = k8s_info s / health ns s")
    return status


if __name__ == "__main__":
    sys.exit(main())
