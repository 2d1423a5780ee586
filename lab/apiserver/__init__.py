"""Kubernetes API emulator of the lab (see lab/README.md).

``ApiServer`` serves an in-memory store over real HTTP/HTTPS; ``load_crds`` installs the
lab's minimal CRDs (lab/crds/*.yaml) through the API like ``kubectl apply`` would.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path

import yaml

from lab.apiserver.server import ApiServer
from lab.apiserver.store import Store

CRD_DIR = Path(__file__).resolve().parent.parent / "crds"


def crd_documents(names=None) -> list[dict]:
    """The CRDs shipped in lab/crds, optionally only those whose file stem, CRD name,
    group or kind is in ``names``."""
    wanted = {n.lower() for n in names} if names else None
    docs = []
    for path in sorted(CRD_DIR.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if not doc:
                continue
            spec = doc.get("spec") or {}
            keys = {path.stem.lower(), doc["metadata"]["name"].lower(), str(spec.get("group", "")).lower(),
                    str((spec.get("names") or {}).get("kind", "")).lower()}
            if wanted is None or keys & wanted:
                docs.append(doc)
    return docs


def _server_of(kubeconfig_or_url: str) -> str:
    if kubeconfig_or_url.startswith(("http://", "https://")):
        return kubeconfig_or_url.rstrip("/")
    config = yaml.safe_load(Path(kubeconfig_or_url).read_text())
    current = config.get("current-context")
    context = next(c["context"] for c in config["contexts"] if c["name"] == current)
    return next(c["cluster"]["server"] for c in config["clusters"] if c["name"] == context["cluster"]).rstrip("/")


def load_crds(kubeconfig_or_url: str, names=None) -> list[str]:
    """Create (or update) the lab's CRDs in a running emulator; return their names.

    ``kubeconfig_or_url`` is the http URL of the emulator or a kubeconfig whose current
    context points at it (the lab's ``lab`` context, plain HTTP).
    """
    base = _server_of(kubeconfig_or_url)
    url = f"{base}/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
    loaded = []
    for doc in crd_documents(names):
        name = doc["metadata"]["name"]
        body = json.dumps(doc).encode()
        req = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": "application/json"})
        try:
            urllib.request.urlopen(req, timeout=10).close()
        except urllib.error.HTTPError as exc:
            if exc.code != 409:
                raise RuntimeError(f"creating CRD {name} failed: {exc.code} {exc.read().decode(errors='replace')}") from None
            req = urllib.request.Request(f"{url}/{name}", data=body, method="PUT", headers={"Content-Type": "application/json"})
            urllib.request.urlopen(req, timeout=10).close()
        loaded.append(name)
    return loaded


__all__ = ["CRD_DIR", "ApiServer", "Store", "crd_documents", "load_crds"]
