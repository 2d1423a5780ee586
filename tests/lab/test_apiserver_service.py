"""The ``apiserver`` lab service: `lab up --only apiserver`, endpoints, kubeconfig, CRDs, `lab down`."""

from __future__ import annotations

import json
import os

import kubernetes
import pytest
import yaml
from kubernetes.client import CoreV1Api

from lab import orchestrator
from lab.apiserver import crd_documents, load_crds
from lab.apiserver.testing import running_apiserver


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    lab_dir = tmp_path_factory.mktemp("lab-apiserver")
    endpoints = orchestrator.up(lab_dir, only={"apiserver"})
    yield lab_dir, endpoints
    orchestrator.down(lab_dir)


def test_endpoints_follow_the_contract(lab):
    lab_dir, endpoints = lab
    ep = endpoints["apiserver"]
    assert ep["url"].startswith("http://127.0.0.1:") and ep["https_url"].startswith("https://127.0.0.1:")
    assert ep["token"] and ep["readonly_token"] and ep["token"] != ep["readonly_token"]
    assert os.path.exists(ep["ca_cert"]) and ep["kubeconfig"] == str(lab_dir / "kubeconfig")
    assert json.loads((lab_dir / "endpoints.json").read_text())["apiserver"] == ep


def test_kubeconfig_contexts(lab):
    _, endpoints = lab
    ep = endpoints["apiserver"]
    config = yaml.safe_load(open(ep["kubeconfig"]).read())
    assert config["current-context"] == "lab"
    assert {c["name"] for c in config["contexts"]} >= {"lab", "lab-tls"}
    for context in ("lab", "lab-tls"):
        c = kubernetes.config.new_client_from_config(config_file=ep["kubeconfig"], context=context)
        assert "kube-system" in {n.metadata.name for n in CoreV1Api(c).list_namespace().items}
        c.close()


def test_all_crds_are_loaded(lab):
    _, endpoints = lab
    c = kubernetes.config.new_client_from_config(config_file=endpoints["apiserver"]["kubeconfig"])
    names = {i.metadata.name for i in kubernetes.client.ApiextensionsV1Api(c).list_custom_resource_definition().items}
    c.close()
    assert names == {d["metadata"]["name"] for d in crd_documents()}
    assert len(names) == 22


def test_down_stops_the_server(tmp_path):
    orchestrator.up(tmp_path, only={"apiserver"})
    pid = int((tmp_path / "pids" / "apiserver.pid").read_text())
    orchestrator.down(tmp_path)
    assert not os.path.exists(f"/proc/{pid}") or open(f"/proc/{pid}/stat").read().split()[2] == "Z"


def test_load_crds_by_name_into_a_running_emulator(tmp_path):
    with running_apiserver(tmp_path, load_crds=False, tls=False) as api:
        loaded = load_crds(api.kubeconfig, names=["velero", "Certificate"])
        assert sorted(loaded) == sorted([
            "backups.velero.io", "restores.velero.io", "schedules.velero.io", "backupstoragelocations.velero.io",
            "deletebackuprequests.velero.io", "volumesnapshotlocations.velero.io", "certificates.cert-manager.io"])
        # loading again updates in place
        assert load_crds(api.url, names=["backups.velero.io"]) == ["backups.velero.io"]
        c = kubernetes.config.new_client_from_config(config_file=api.kubeconfig)
        names = {i.metadata.name for i in kubernetes.client.ApiextensionsV1Api(c).list_custom_resource_definition().items}
        c.close()
        assert names == set(loaded)
