"""The ``apiserver`` lab service on a real Kubernetes control plane (``LAB_KUBE=real``).

Starts, from the binaries ``python -m lab build`` put in the cache: etcd, kube-apiserver (TLS, token
authentication, ``Node,RBAC`` authorization, the default admission plugins), kube-controller-manager,
kube-scheduler, and KWOK, which simulates the kubelets (Node heartbeats and Leases, pod status) since no
container runtime runs here. Then it applies the upstream CRDs, waits until they are Established and until
the controller-manager has created the ``default`` ServiceAccount, and registers the simulated nodes.

It is a drop-in for the emulator's service: same name, same ``endpoints.json`` keys (``kubeconfig``,
``https_url``, ``url``, ``token``, ``readonly_token``, ``ca_cert``) and the same kubeconfig contexts
(``lab``, ``lab-tls``, ``lab-readonly``) — except that every context is HTTPS with a token now, and
``lab-readonly`` is a user bound to the ``view`` ClusterRole by real RBAC.
"""

from __future__ import annotations

import os
import secrets
import shutil
import ssl
import time
import urllib.error
import urllib.request
from pathlib import Path

import yaml
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException

from lab.kube import build
from lab.pki import make_pki, make_signing_key
from lab.services import LabContext, LabError, Service, free_port

SERVICE_CIDR = "10.96.0.0/16"
NODE_ANNOTATION = {"kwok.x-k8s.io/node": "fake"}
# Node capacity like the emulator's nodes, so workloads' requests fit the same way.
NODE_CAPACITY = {"cpu": "8", "memory": "32Gi", "pods": "110", "ephemeral-storage": "100Gi"}
# The readonly identity's group; a ClusterRoleBinding gives it the built-in ``view`` ClusterRole.
VIEWER_GROUP = "lab:viewers"
# Faster reactions than a production cluster's defaults, so tests wait seconds, not minutes.
CONTROLLER_FLAGS = [
    "--node-monitor-period=2s", "--node-monitor-grace-period=20s",
    "--terminated-pod-gc-threshold=100", "--concurrent-deployment-syncs=10", "--concurrent-replicaset-syncs=10",
]
# Hand-written CRDs for what no Go module serves (see lab/README.md); upstream ones come from the build cache.
LOCAL_CRDS = Path(__file__).resolve().parent / "crds"


class _CrdLoader(yaml.SafeLoader):
    """SafeLoader that reads a plain ``=`` as the string "=" (PyYAML otherwise takes it for YAML 1.1's value tag;
    upstream CRDs list "=" among enum values)."""


_CrdLoader.add_constructor("tag:yaml.org,2002:value", lambda loader, node: loader.construct_scalar(node))


def _load_all(text: str):
    return [doc for doc in yaml.load_all(text, Loader=_CrdLoader) if doc]


class KubeService(Service):
    name = "apiserver"
    processes = ("kwok", "kube-scheduler", "kube-controller-manager", "kube-apiserver", "etcd")

    def __init__(self, nodes: int | None = None):
        self.nodes = nodes if nodes is not None else int(os.environ.get("LAB_NODES", "3"))

    # -- start -------------------------------------------------------------------------------------
    def start(self, ctx: LabContext) -> dict:
        manifest = build.installed()
        if manifest is None:
            raise LabError("the real control plane is not built: run `make setup` (or `python -m lab build`) first")
        bin_dir = Path(manifest["dir"]) / "bin"
        timings: dict = {}
        try:
            return self._start(ctx, manifest, bin_dir, timings)
        except BaseException:
            self.stop(ctx)  # never leave half a control plane running
            raise

    def _start(self, ctx: LabContext, manifest: dict, bin_dir: Path, timings: dict) -> dict:
        t0 = time.monotonic()
        data = ctx.data_dir("kube")
        pki = make_pki(data / "pki")
        sa_key = make_signing_key(data / "pki" / "sa.key")
        tokens = {name: secrets.token_hex(16) for name in ("admin", "readonly", "controller-manager", "scheduler", "kwok")}
        (data / "tokens.csv").write_text("\n".join([
            f'{tokens["admin"]},lab-admin,lab-admin,"system:masters"',
            f'{tokens["readonly"]},lab-viewer,lab-viewer,"{VIEWER_GROUP}"',
            f'{tokens["controller-manager"]},system:kube-controller-manager,system:kube-controller-manager',
            f'{tokens["scheduler"]},system:kube-scheduler,system:kube-scheduler',
            f'{tokens["kwok"]},lab-kwok,lab-kwok,"system:masters"',
        ]) + "\n")
        (data / "tokens.csv").chmod(0o600)

        # Every `up` is a new, empty cluster, as with the emulator: the certificates, tokens and service-account key
        # above are new, so objects kept from an earlier run (tokens, Stages, Nodes) would not fit them.
        shutil.rmtree(data / "etcd", ignore_errors=True)
        etcd_port, etcd_peer = free_port(), free_port()
        etcd = ctx.spawn("etcd", [
            str(bin_dir / "etcd"), "--name", "lab", "--data-dir", str(data / "etcd"),
            "--listen-client-urls", f"http://127.0.0.1:{etcd_port}", "--advertise-client-urls", f"http://127.0.0.1:{etcd_port}",
            "--listen-peer-urls", f"http://127.0.0.1:{etcd_peer}", "--initial-advertise-peer-urls", f"http://127.0.0.1:{etcd_peer}",
            "--initial-cluster", f"lab=http://127.0.0.1:{etcd_peer}", "--unsafe-no-fsync", "--log-level", "warn",
            "--quota-backend-bytes", str(2 * 1024**3), "--auto-compaction-retention", "5m",
        ])
        ctx.wait_http(f"http://127.0.0.1:{etcd_port}/health", "etcd", timeout=30, proc=etcd)
        timings["etcd"] = round(time.monotonic() - t0, 2)

        port = free_port()
        url = f"https://127.0.0.1:{port}"
        apiserver = ctx.spawn("kube-apiserver", [
            str(bin_dir / "kube-apiserver"), f"--etcd-servers=http://127.0.0.1:{etcd_port}",
            "--bind-address=127.0.0.1", "--advertise-address=127.0.0.1", f"--secure-port={port}",
            f"--cert-dir={data / 'pki'}", f"--tls-cert-file={pki['cert']}", f"--tls-private-key-file={pki['key']}",
            f"--client-ca-file={pki['ca_cert']}", f"--token-auth-file={data / 'tokens.csv'}",
            "--authorization-mode=Node,RBAC", f"--service-cluster-ip-range={SERVICE_CIDR}",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-account-key-file={sa_key}.pub", f"--service-account-signing-key-file={sa_key}",
            "--endpoint-reconciler-type=none", "--allow-privileged=true", "--profiling=false", "--event-ttl=1h",
        ])
        ssl_ctx = ssl.create_default_context(cafile=pki["ca_cert"])
        self._wait_ready(ctx, f"{url}/readyz", tokens["admin"], ssl_ctx, apiserver, name="kube-apiserver", timeout=60)
        timings["kube-apiserver"] = round(time.monotonic() - t0, 2)

        kubeconfig = ctx.dir / "kubeconfig"
        _write_kubeconfig(kubeconfig, url, pki["ca_cert"], {"lab": tokens["admin"], "lab-tls": tokens["admin"],
                                                             "lab-readonly": tokens["readonly"]}, current="lab")
        component_config = {}
        for name in ("controller-manager", "scheduler", "kwok"):
            component_config[name] = data / f"{name}.kubeconfig"
            _write_kubeconfig(component_config[name], url, pki["ca_cert"], {name: tokens[name]}, current=name)

        ctx.spawn("kube-controller-manager", [
            str(bin_dir / "kube-controller-manager"), f"--kubeconfig={component_config['controller-manager']}",
            f"--authentication-kubeconfig={component_config['controller-manager']}",
            f"--authorization-kubeconfig={component_config['controller-manager']}",
            "--bind-address=127.0.0.1", f"--secure-port={free_port()}", "--leader-elect=false",
            "--use-service-account-credentials=true", f"--service-account-private-key-file={sa_key}",
            f"--root-ca-file={pki['ca_cert']}", f"--service-cluster-ip-range={SERVICE_CIDR}", "--controllers=*",
            *CONTROLLER_FLAGS,
        ])
        ctx.spawn("kube-scheduler", [
            str(bin_dir / "kube-scheduler"), f"--kubeconfig={component_config['scheduler']}",
            f"--authentication-kubeconfig={component_config['scheduler']}",
            f"--authorization-kubeconfig={component_config['scheduler']}",
            "--bind-address=127.0.0.1", f"--secure-port={free_port()}", "--leader-elect=false",
        ])

        api = _api(kubeconfig)
        _apply_rbac(api)
        crds = _apply_crds(api, manifest)
        timings["crds"] = round(time.monotonic() - t0, 2)
        stages = self._start_kwok(ctx, api, manifest, bin_dir, component_config["kwok"])
        _create_nodes(api, self.nodes)
        _wait_default_service_accounts(ctx, api, timeout=60)
        timings["ready"] = round(time.monotonic() - t0, 2)
        return {
            "kind": "real",
            "version": manifest["k8s_version"],
            "url": url,
            "https_url": url,
            "token": tokens["admin"],
            "readonly_token": tokens["readonly"],
            "ca_cert": pki["ca_cert"],
            "kubeconfig": str(kubeconfig),
            "etcd_url": f"http://127.0.0.1:{etcd_port}",
            "nodes": [f"lab-node-{i}" for i in range(1, self.nodes + 1)],
            "crds": crds,
            "kwok_stages": stages,
            "timings": timings,
        }

    def _start_kwok(self, ctx: LabContext, api, manifest: dict, bin_dir: Path, kubeconfig: Path) -> list[str]:
        """KWOK with its Stage objects in the API server, so the lab can add stages (faults) while it runs."""
        kwok_dir = Path(manifest["dir"]) / "kwok"
        for file in sorted((kwok_dir / "crds").glob("*.yaml")):
            for doc in _load_all(file.read_text()):
                _create_or_replace_crd(api, doc)
        _wait_established(api, ["stages.kwok.x-k8s.io"], timeout=30)
        names = []
        custom = k8s.CustomObjectsApi(api)
        for file in sorted((kwok_dir / "stages").glob("*.yaml")):
            for doc in _load_all(file.read_text()):
                if doc.get("kind") == "Stage":
                    custom.create_cluster_custom_object("kwok.x-k8s.io", "v1alpha1", "stages", doc)
                    names.append(doc["metadata"]["name"])
        ctx.spawn("kwok", [
            str(bin_dir / "kwok"), f"--kubeconfig={kubeconfig}", "--manage-all-nodes=false",
            "--manage-nodes-with-annotation-selector=" + ",".join(f"{k}={v}" for k, v in NODE_ANNOTATION.items()),
            "--disregard-status-with-annotation-selector=kwok.x-k8s.io/status=custom",
            "--enable-crds=Stage", "--cidr=10.244.0.0/16", "--node-ip=10.0.0.1",
            f"--server-address=127.0.0.1:{free_port()}", "--node-lease-duration-seconds=20",
        ])
        return names

    @staticmethod
    def _wait_ready(ctx: LabContext, url: str, token: str, ssl_ctx, proc, *, name: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise LabError(f"{name} exited with code {proc.returncode} while starting:\n{ctx.log_tail(name, 40)}")
            request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
            try:
                with urllib.request.urlopen(request, timeout=2, context=ssl_ctx) as resp:
                    if resp.status == 200:
                        return
            except urllib.error.HTTPError as exc:
                last = f"HTTP {exc.code}: {exc.read()[:300]!r}"
            except OSError as exc:
                last = str(exc)
            time.sleep(0.1)
        raise LabError(f"{name} not ready at {url} within {timeout:.0f}s ({last}):\n{ctx.log_tail(name, 40)}")

    # -- stop / health ---------------------------------------------------------------------------
    def stop(self, ctx: LabContext) -> None:
        for name in self.processes:
            ctx.stop_pid(name)

    def healthy(self, ctx: LabContext) -> bool:
        return all(ctx.running(name) for name in self.processes)


# -- helpers over the kubernetes client ---------------------------------------------------------------
def _api(kubeconfig: Path) -> k8s.ApiClient:
    return k8s_config.new_client_from_config(config_file=str(kubeconfig), context="lab")


def _write_kubeconfig(path: Path, url: str, ca_cert: str, users: dict[str, str], current: str) -> None:
    config = {
        "apiVersion": "v1", "kind": "Config", "preferences": {}, "current-context": current,
        "clusters": [{"name": "lab", "cluster": {"server": url, "certificate-authority": ca_cert}}],
        "users": [{"name": name, "user": {"token": token}} for name, token in users.items()],
        "contexts": [{"name": name, "context": {"cluster": "lab", "user": name, "namespace": "default"}} for name in users],
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    path.chmod(0o600)


def _apply_rbac(api) -> None:
    rbac = k8s.RbacAuthorizationV1Api(api)
    body = {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
        "metadata": {"name": "lab-viewers", "labels": {"lab.machinenativeops.io/managed": "true"}},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": VIEWER_GROUP}],
    }
    deadline = time.monotonic() + 30
    while True:  # right after /readyz the RBAC bootstrap may still be writing the default roles
        try:
            rbac.create_cluster_role_binding(body)
            return
        except ApiException as exc:
            if exc.status == 409:
                return
            if time.monotonic() > deadline:
                raise LabError(f"creating ClusterRoleBinding lab-viewers failed: {exc.status} {exc.body}") from exc
            time.sleep(0.2)


def _create_or_replace_crd(api, doc: dict) -> None:
    ext = k8s.ApiextensionsV1Api(api)
    try:
        ext.create_custom_resource_definition(doc)
    except ApiException as exc:
        if exc.status != 409:
            raise LabError(f"creating CRD {doc['metadata']['name']} failed: {exc.status} {exc.body}") from exc


def crd_documents(manifest: dict) -> list[dict]:
    """Every CRD the lab serves: the upstream ones from the build cache, then the hand-written ones."""
    files = [Path(manifest["dir"]) / "crds" / name / file for name, info in sorted(manifest["crds"].items()) for file in info["files"]]
    files += sorted(LOCAL_CRDS.glob("*.yaml"))
    docs = []
    for file in files:
        for doc in _load_all(file.read_text()):
            if doc.get("kind") == "CustomResourceDefinition":
                docs.append(doc)
    return docs


def _apply_crds(api, manifest: dict) -> list[str]:
    names = []
    for doc in crd_documents(manifest):
        _create_or_replace_crd(api, doc)
        names.append(doc["metadata"]["name"])
    _wait_established(api, names, timeout=60)
    return sorted(names)


def _wait_established(api, names: list[str], timeout: float) -> None:
    ext = k8s.ApiextensionsV1Api(api)
    pending = set(names)
    deadline = time.monotonic() + timeout
    while pending:
        for crd in ext.list_custom_resource_definition().items:
            conditions = {c.type: c.status for c in (crd.status.conditions or [])} if crd.status else {}
            if conditions.get("Established") == "True":
                pending.discard(crd.metadata.name)
        if not pending:
            return
        if time.monotonic() > deadline:
            raise LabError(f"CRDs not Established within {timeout:.0f}s: {', '.join(sorted(pending))}")
        time.sleep(0.1)


def _create_nodes(api, count: int) -> None:
    core = k8s.CoreV1Api(api)
    for i in range(1, count + 1):
        name = f"lab-node-{i}"
        body = {
            "apiVersion": "v1", "kind": "Node",
            "metadata": {
                "name": name, "annotations": dict(NODE_ANNOTATION),
                "labels": {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64",
                           "type": "kwok", "topology.kubernetes.io/zone": f"lab-{(i - 1) % 3 + 1}"},
            },
            "status": {"capacity": dict(NODE_CAPACITY), "allocatable": dict(NODE_CAPACITY)},
        }
        try:
            core.create_node(body)
        except ApiException as exc:
            if exc.status != 409:
                raise LabError(f"creating Node {name} failed: {exc.status} {exc.body}") from exc


def _wait_default_service_accounts(ctx: LabContext, api, timeout: float) -> None:
    """Pods can be created only once the controller-manager gave their namespace its ``default`` ServiceAccount."""
    core = k8s.CoreV1Api(api)
    deadline = time.monotonic() + timeout
    missing: list[str] = []
    while time.monotonic() < deadline:
        namespaces = [ns.metadata.name for ns in core.list_namespace().items]
        have = {sa.metadata.namespace for sa in core.list_service_account_for_all_namespaces(field_selector="metadata.name=default").items}
        missing = [ns for ns in namespaces if ns not in have]
        if not missing:
            return
        if not ctx.running("kube-controller-manager"):
            raise LabError(f"kube-controller-manager exited:\n{ctx.log_tail('kube-controller-manager', 40)}")
        time.sleep(0.2)
    raise LabError(f"no default ServiceAccount in {', '.join(missing)} after {timeout:.0f}s:\n{ctx.log_tail('kube-controller-manager', 40)}")

