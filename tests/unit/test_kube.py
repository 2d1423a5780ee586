"""kube.py against a real HTTP server (tests/unit/kube_api_server.py) through the unmodified kubernetes client."""

import json
import os
import socket
import subprocess
import sys

import pytest
import yaml
from ansible_collections.machinenativeops.platform.plugins.module_utils import kube
from ansible_collections.machinenativeops.platform.plugins.module_utils.kube import (
    KUBE_AUTH_ARG_SPEC,
    KubeError,
    build_configuration,
    get_kube_client,
    resolve_auth,
)

from tests.unit.kube_api_server import KubeApiServer

TOKEN = "s3cr3t-token-value-0123456789"


pytestmark = pytest.mark.usefixtures("clean_kube_env")


@pytest.fixture
def api():
    server = KubeApiServer(token=TOKEN)
    for i in range(7):
        server.add_pod("shop", f"web-{i}", labels={"app": "web", "version": "v1" if i < 5 else "v2"})
    server.add_pod("shop", "db-0", labels={"app": "db"})
    server.add_pod("other", "web-x", labels={"app": "web", "version": "v1"})
    yield server
    server.close()


def kubeconfig_dict(server_url, token, extra_contexts=()):
    clusters = [{"name": "lab", "cluster": {"server": server_url}}]
    contexts = [{"name": "lab", "context": {"cluster": "lab", "user": "lab"}}]
    for name, url in extra_contexts:
        clusters.append({"name": name, "cluster": {"server": url}})
        contexts.append({"name": name, "context": {"cluster": name, "user": "lab"}})
    return {
        "apiVersion": "v1", "kind": "Config", "current-context": "lab",
        "clusters": clusters, "contexts": contexts,
        "users": [{"name": "lab", "user": {"token": token}}],
    }


def dead_url():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return f"http://127.0.0.1:{port}"


def client(params, tmp_path):
    return get_kube_client(params, cache_file=str(tmp_path / "discovery.json"))


# --- argument spec ---------------------------------------------------------------------------------

def test_arg_spec_mirrors_kubernetes_core_options():
    assert set(KUBE_AUTH_ARG_SPEC) >= {"kubeconfig", "context", "host", "api_key", "username", "password", "validate_certs",
                                       "ca_cert", "client_cert", "client_key", "proxy", "no_proxy", "proxy_headers"}
    for secret in ("api_key", "password", "kubeconfig"):
        assert KUBE_AUTH_ARG_SPEC[secret].get("no_log") is True
    assert KUBE_AUTH_ARG_SPEC["validate_certs"]["aliases"] == ["verify_ssl"]
    assert KUBE_AUTH_ARG_SPEC["ca_cert"]["aliases"] == ["ssl_ca_cert"]


# --- auth resolution ---------------------------------------------------------------------------------

def test_env_fallback_fills_missing_options(monkeypatch):
    monkeypatch.setenv("K8S_AUTH_HOST", "https://env.example:6443/")
    monkeypatch.setenv("K8S_AUTH_API_KEY", "env-token")
    monkeypatch.setenv("K8S_AUTH_VERIFY_SSL", "no")
    monkeypatch.setenv("K8S_AUTH_SSL_CA_CERT", "~/ca.crt")
    auth = resolve_auth({"host": None, "api_key": None, "validate_certs": None})
    assert auth["host"] == "https://env.example:6443"
    assert auth["api_key"] == "env-token"
    assert auth["validate_certs"] is False
    assert auth["ca_cert"] == os.path.join(os.environ["HOME"], "ca.crt")


def test_explicit_options_win_over_env(monkeypatch):
    monkeypatch.setenv("K8S_AUTH_HOST", "https://env.example:6443")
    monkeypatch.setenv("K8S_AUTH_VALIDATE_CERTS", "false")
    monkeypatch.setenv("K8S_AUTH_CONTEXT", "env-context")
    auth = resolve_auth({"host": "https://explicit:6443", "validate_certs": True, "context": "explicit-context"})
    assert auth == {"host": "https://explicit:6443", "validate_certs": True, "context": "explicit-context"}


def test_env_only_credentials_reach_the_server(api, monkeypatch, tmp_path):
    monkeypatch.setenv("K8S_AUTH_HOST", api.url)
    monkeypatch.setenv("K8S_AUTH_API_KEY", TOKEN)
    kc = client({}, tmp_path)
    assert kc.get("v1", "Pod", "db-0", "shop")["metadata"]["name"] == "db-0"
    assert all(r["headers"].get("authorization") == "Bearer " + TOKEN for r in api.requests)


def test_host_and_token_need_no_kubeconfig(api, tmp_path):
    # HOME is empty: a kubeconfig load would fail, host + api_key is complete on its own
    kc = client({"host": api.url, "api_key": TOKEN}, tmp_path)
    assert [p["metadata"]["name"] for p in kc.list("v1", "Pod", "shop", label_selector="app=db")] == ["db-0"]


def test_inline_kubeconfig_dict(api, tmp_path):
    kc = client({"kubeconfig": kubeconfig_dict(api.url, TOKEN)}, tmp_path)
    assert kc.get("v1", "Pod", "web-0", "shop")["metadata"]["labels"]["app"] == "web"


def test_kubeconfig_file_and_context(api, tmp_path):
    path = tmp_path / "kubeconfig"
    # current-context points at a dead server; the explicit context points at the real one
    config = kubeconfig_dict(dead_url(), TOKEN, extra_contexts=[("good", api.url)])
    path.write_text(yaml.safe_dump(config))
    kc = client({"kubeconfig": str(path), "context": "good"}, tmp_path)
    assert kc.host == api.url
    assert kc.get("v1", "Pod", "db-0", "shop") is not None


def test_default_kubeconfig_from_kubeconfig_env(api, monkeypatch, tmp_path):
    path = tmp_path / "kc.yaml"
    path.write_text(yaml.safe_dump(kubeconfig_dict(api.url, TOKEN)))
    monkeypatch.setenv("KUBECONFIG", str(path))
    kc = client({}, tmp_path)
    assert kc.host == api.url


def test_explicit_host_overrides_kubeconfig_server(api, tmp_path):
    config = kubeconfig_dict(dead_url(), TOKEN)
    kc = client({"kubeconfig": config, "host": api.url + "/"}, tmp_path)
    assert kc.host == api.url
    assert kc.get("v1", "Pod", "db-0", "shop") is not None


def test_explicit_token_overrides_kubeconfig_token_on_every_request(api, tmp_path):
    kc = client({"kubeconfig": kubeconfig_dict(api.url, "stale-token-in-kubeconfig"), "api_key": TOKEN}, tmp_path)
    for attempt in range(3):
        assert kc.get("v1", "Pod", "db-0", "shop") is not None, attempt
    assert {r["headers"]["authorization"] for r in api.requests} == {"Bearer " + TOKEN}


def test_namespaced_kind_without_namespace_is_refused(api, tmp_path):
    kc = client({"host": api.url, "api_key": TOKEN}, tmp_path)
    with pytest.raises(KubeError) as info:
        kc.get("v1", "Pod", "db-0")
    assert str(info.value) == "get Pod db-0 failed: namespace required: v1 Pod is namespaced; give a namespace"


def test_username_password_basic_auth(tmp_path):
    configuration, source = build_configuration(resolve_auth({"host": "http://127.0.0.1:1", "username": "admin", "password": "pw"}))
    assert source == "options"
    assert configuration.api_key["authorization"] == "Basic YWRtaW46cHc="


def test_no_configuration_anywhere(tmp_path):
    with pytest.raises(KubeError) as info:
        client({}, tmp_path)
    assert "no Kubernetes configuration found" in str(info.value)
    assert "does not exist" in str(info.value)


def test_missing_kubeconfig_file(tmp_path):
    with pytest.raises(KubeError) as info:
        client({"kubeconfig": str(tmp_path / "nope")}, tmp_path)
    assert str(tmp_path / "nope") in str(info.value)


def test_unknown_context_is_a_config_error_without_secrets(api, tmp_path):
    with pytest.raises(KubeError) as info:
        client({"kubeconfig": kubeconfig_dict(api.url, TOKEN), "context": "missing"}, tmp_path)
    assert info.value.reason == "invalid Kubernetes configuration"
    assert "missing" in str(info.value)
    assert TOKEN not in str(info.value)


# --- requests, pagination, selectors ---------------------------------------------------------------

def test_list_paginates_with_limit_and_continue(api, tmp_path):
    kc = client({"host": api.url, "api_key": TOKEN}, tmp_path)
    kc.resource("v1", "Pod")  # discovery of the core group happens here, not during the pages
    before = kc.api_calls
    names = [p["metadata"]["name"] for p in kc.list("v1", "Pod", "shop", page_size=3)]
    assert names == ["db-0"] + [f"web-{i}" for i in range(7)]
    pages = api.requests_to("/api/v1/namespaces/shop/pods")
    assert [r["query"].get("continue") for r in pages] == [None, "3", "6"]
    assert {r["query"]["limit"] for r in pages} == {"3"}
    assert kc.api_calls - before == 3


def test_selectors_are_sent_to_the_server(api, tmp_path):
    kc = client({"host": api.url, "api_key": TOKEN}, tmp_path)
    pods = list(kc.list("v1", "Pod", label_selector="app=web,version=v2", field_selector="status.phase=Running"))
    assert sorted(p["metadata"]["name"] for p in pods) == ["web-5", "web-6"]
    assert all(p["kind"] == "Pod" and p["apiVersion"] == "v1" for p in pods)
    request = api.requests_to("/api/v1/pods")[-1]
    assert request["query"]["labelSelector"] == "app=web,version=v2"
    assert request["query"]["fieldSelector"] == "status.phase=Running"


def test_all_namespaces_when_namespace_is_none(api, tmp_path):
    kc = client({"host": api.url, "api_key": TOKEN}, tmp_path)
    assert {p["metadata"]["namespace"] for p in kc.list("v1", "Pod", label_selector="app=web")} == {"shop", "other"}


def test_api_calls_counts_every_http_request(api, tmp_path):
    kc = client({"host": api.url, "api_key": TOKEN}, tmp_path)
    assert kc.api_calls == len(api.requests) > 0
    kc.get("v1", "Pod", "db-0", "shop")
    kc.get("v1", "Pod", "missing", "shop")
    assert kc.api_calls == len(api.requests)


def test_discovery_cache_is_reused(api, tmp_path):
    client({"host": api.url, "api_key": TOKEN}, tmp_path).get("v1", "Pod", "db-0", "shop")
    assert os.path.exists(tmp_path / "discovery.json")
    discovery_before = len([r for r in api.requests if r["path"] in ("/api", "/apis", "/api/v1", "/version")])
    kc = client({"host": api.url, "api_key": TOKEN}, tmp_path)
    kc.get("v1", "Pod", "db-0", "shop")
    discovery_after = len([r for r in api.requests if r["path"] in ("/api", "/apis", "/api/v1", "/version")])
    assert discovery_after == discovery_before
    assert kc.api_calls == 1


def test_resource_absent_kind_is_none(api, tmp_path):
    kc = client({"host": api.url, "api_key": TOKEN}, tmp_path)
    assert kc.resource("networking.istio.io/v1beta1", "VirtualService") is None
    assert kc.resource("apps/v1", "Deployment").namespaced is True
    with pytest.raises(KubeError) as info:
        list(kc.list("velero.io/v1", "Backup", "velero"))
    assert info.value.status == 404
    assert "does not serve velero.io/v1 Backup" in str(info.value)


def test_get_create_patch_delete(api, tmp_path):
    kc = client({"host": api.url, "api_key": TOKEN}, tmp_path)
    assert kc.get("v1", "Pod", "new", "shop") is None
    body = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "new", "labels": {"app": "new"}}, "spec": {}}
    kc.create("v1", "Pod", body, namespace="shop", dry_run=True)
    assert api.requests[-1]["query"]["dryRun"] == "All"
    assert kc.get("v1", "Pod", "new", "shop") is None
    created = kc.create("v1", "Pod", body, namespace="shop")
    assert created["metadata"]["namespace"] == "shop"
    patched = kc.patch("v1", "Pod", "new", {"metadata": {"labels": {"tier": "x"}}}, namespace="shop")
    assert patched["metadata"]["labels"] == {"app": "new", "tier": "x"}
    assert api.requests[-1]["headers"]["content-type"] == "application/merge-patch+json"
    assert api.requests[-1]["query"]["fieldManager"] == "machinenativeops.platform"
    assert kc.delete("v1", "Pod", "new", "shop")["metadata"]["name"] == "new"
    assert kc.delete("v1", "Pod", "new", "shop") is None


# --- errors ---------------------------------------------------------------------------------------

def test_conflict_names_verb_object_and_api_message(api, tmp_path):
    api.conflict_names.add("web-1")
    kc = client({"host": api.url, "api_key": TOKEN}, tmp_path)
    with pytest.raises(KubeError) as info:
        kc.patch("v1", "Pod", "web-1", {"metadata": {"labels": {"a": "b"}}}, namespace="shop")
    error = info.value
    assert (error.verb, error.kind, error.namespace, error.name, error.status) == ("patch", "Pod", "shop", "web-1", 409)
    assert error.api_message.startswith('Operation cannot be fulfilled on pods "web-1"')
    assert str(error).startswith('patch Pod shop/web-1 failed: 409 Conflict: Operation cannot be fulfilled')


def test_create_existing_is_a_409_with_the_status_message(api, tmp_path):
    kc = client({"host": api.url, "api_key": TOKEN}, tmp_path)
    with pytest.raises(KubeError) as info:
        kc.create("v1", "Pod", {"metadata": {"name": "db-0", "namespace": "shop"}})
    assert str(info.value) == 'create Pod shop/db-0 failed: 409 Conflict: pods "db-0" already exists'


def test_bad_selector_error_names_the_list(api, tmp_path):
    kc = client({"host": api.url, "api_key": TOKEN}, tmp_path)
    with pytest.raises(KubeError) as info:
        list(kc.list("v1", "Pod", "shop", label_selector="bad selector!"))
    assert str(info.value) == 'list Pod in namespace shop failed: 400 Bad Request: unable to parse requirement: invalid label key "bad selector!"'


def test_wrong_token_is_401_and_never_leaks(api, tmp_path):
    wrong = "wrong-token-abcdefghijklmnop"
    with pytest.raises(KubeError) as info:
        client({"kubeconfig": kubeconfig_dict(api.url, wrong)}, tmp_path)
    assert info.value.status == 401
    text = json.dumps(info.value.to_dict()) + str(info.value)
    assert wrong not in text and TOKEN not in text


def test_unreachable_server(tmp_path):
    url = dead_url()
    with pytest.raises(KubeError) as info:
        client({"host": url, "api_key": TOKEN}, tmp_path)
    assert info.value.verb == "discover"
    assert f"cannot reach the API server {url}" in str(info.value)
    assert "Connection refused" in str(info.value)
    assert TOKEN not in str(info.value)


def test_redact_hides_secrets_and_url_credentials():
    text = kube.redact("token abc123 at http://user:pw@proxy:3128/x", {"abc123"})
    assert text == "token ******** at http://********@proxy:3128/x"


def test_default_discovery_cache_is_private_and_expires(tmp_path):
    host = f"http://unit-test-{os.getpid()}.invalid:1"
    path = kube._discovery_cache_file(host)
    assert os.stat(os.path.dirname(path)).st_mode & 0o077 == 0
    with open(path, "w") as handle:
        handle.write("{}")
    assert kube._discovery_cache_file(host) == path and os.path.exists(path)
    old = os.stat(path).st_mtime - kube.DISCOVERY_CACHE_TTL - 1
    os.utime(path, (old, old))
    kube._discovery_cache_file(host)
    assert not os.path.exists(path)


def test_missing_kubernetes_library_reports_missing_required_lib():
    # a separate interpreter in which "import kubernetes" fails, as on a host without the library
    code = (
        "import sys; sys.modules['kubernetes'] = None\n"
        "from ansible_collections.machinenativeops.platform.plugins.module_utils import kube\n"
        "class Module:\n"
        "    def fail_json(self, **kw):\n"
        "        print(kw['msg']); print('TRACE' if 'Traceback' in kw['exception'] and 'kubernetes' in kw['exception'] else 'NOTRACE'); raise SystemExit(3)\n"
        "assert kube.HAS_KUBERNETES is False\n"
        "try:\n"
        "    kube.get_kube_client({})\n"
        "except kube.KubeError as exc:\n"
        "    print(exc)\n"
        "kube.fail_if_missing_kubernetes(Module())\n"
    )
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([root, os.path.join(root, "build", "collections")]))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=False)
    assert proc.returncode == 3, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == "load failed: missing Python library: the kubernetes Python library is not installed"
    assert "Failed to import the required Python library (kubernetes)" in lines[1]
    assert lines[2] == "TRACE"


# -- no_log of an inline kubeconfig: only its secrets stay masked ------------------------------------------------

INLINE_KUBECONFIG = {
    'apiVersion': 'v1', 'kind': 'Config', 'current-context': 'prod',
    'clusters': [{'name': 'prod-cluster', 'cluster': {'server': 'https://10.0.0.1:6443', 'certificate-authority-data': 'Q0E='}}],
    'users': [
        {'name': 'ops', 'user': {'token': 'tok-123456', 'client-key-data': 'S0VZ'}},
        {'name': 'oidc', 'user': {'auth-provider': {'name': 'oidc', 'config': {'id-token': 'idt-9', 'client-id': 'web'}}}},
    ],
    'contexts': [{'name': 'prod', 'context': {'cluster': 'prod-cluster', 'user': 'ops', 'namespace': 'shop'}}],
}


def test_kubeconfig_mask_noise_unmasks_names_but_never_secrets():
    noise = kube.kubeconfig_mask_noise(kube.KUBE_AUTH_ARG_SPEC, {'kubeconfig': INLINE_KUBECONFIG})
    assert {'shop', 'prod', 'prod-cluster', 'ops', 'https://10.0.0.1:6443', 'web', 'oidc'} <= noise
    assert not {'tok-123456', 'S0VZ', 'idt-9'} & noise


def test_kubeconfig_mask_noise_keeps_values_of_other_no_log_options():
    spec = dict(kube.KUBE_AUTH_ARG_SPEC, endpoints=dict(type='list', elements='dict', options=dict(
        url=dict(type='str'), headers=dict(type='dict', no_log=True))))
    params = {'kubeconfig': INLINE_KUBECONFIG, 'api_key': 'shop', 'endpoints': [{'url': 'u', 'headers': {'X': 'ops'}}]}
    noise = kube.kubeconfig_mask_noise(spec, params)
    assert 'shop' not in noise and 'ops' not in noise  # secrets of other options, even if a kubeconfig name too
    assert 'prod-cluster' in noise


def test_kubeconfig_mask_noise_for_a_path_and_without_kubeconfig():
    assert kube.kubeconfig_mask_noise(kube.KUBE_AUTH_ARG_SPEC, {'kubeconfig': '/etc/kube/prod.conf'}) == {'/etc/kube/prod.conf'}
    assert kube.kubeconfig_mask_noise(kube.KUBE_AUTH_ARG_SPEC, {'kubeconfig': None, 'api_key': 'x'}) == set()
