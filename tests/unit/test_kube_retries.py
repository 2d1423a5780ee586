"""KubeClient retries (issue 12 item 13) against the real test fixture server in tests/unit/kube_api_server.py."""


import pytest
from ansible_collections.machinenativeops.platform.plugins.module_utils.kube import KubeClient, KubeError, build_configuration, resolve_auth

from tests.unit.kube_api_server import KubeApiServer

TOKEN = "retry-token-0123456789"
PODS = "/api/v1/namespaces/shop/pods"


pytestmark = pytest.mark.usefixtures("clean_kube_env")


@pytest.fixture
def api():
    server = KubeApiServer(token=TOKEN)
    for i in range(5):
        server.add_pod("shop", f"web-{i}", labels={"app": "web"})
    yield server
    server.close()


@pytest.fixture
def sleeps():
    return []


@pytest.fixture
def make(api, tmp_path, sleeps):
    def factory(**kwargs):
        configuration = build_configuration(resolve_auth({"host": api.url, "api_key": TOKEN}))[0]
        return KubeClient(configuration, cache_file=str(tmp_path / "d.json"), sleep=sleeps.append, rng=lambda: 0.5, **kwargs)
    return factory


def fault(method, path, code, headers=None, query=None):
    return {"method": method, "path": path, "code": code, "headers": headers, "query": query}


def test_429_retry_after_honoured_then_200(api, make, sleeps):
    client = make()
    api.faults += [fault("GET", PODS + "/web-1", 429, {"Retry-After": "1"})] * 2
    assert client.get("v1", "Pod", "web-1", "shop")["metadata"]["name"] == "web-1"
    assert len(api.requests_to(PODS + "/web-1")) == 3
    assert sleeps == [1.0, 1.0]


def test_retry_after_is_capped(api, make, sleeps):
    client = make()
    api.faults.append(fault("GET", PODS + "/web-1", 429, {"Retry-After": "3600"}))
    assert client.get("v1", "Pod", "web-1", "shop")
    assert sleeps == [30.0]


def test_503_then_200_uses_jittered_backoff(api, make, sleeps):
    client = make()
    api.faults += [fault("GET", PODS + "/web-2", 503), fault("GET", PODS + "/web-2", 502)]
    assert client.get("v1", "Pod", "web-2", "shop")["metadata"]["name"] == "web-2"
    assert len(api.requests_to(PODS + "/web-2")) == 3
    assert sleeps == [0.25, 0.5]  # rng 0.5 * 0.5 * 2**n


def test_read_attempts_exhausted_message(api, make, sleeps):
    client = make(retries=4)
    api.faults += [fault("GET", PODS + "/web-1", 500)] * 10
    with pytest.raises(KubeError) as err:
        client.get("v1", "Pod", "web-1", "shop")
    assert err.value.status == 500
    assert "(after 4 attempts)" in str(err.value)
    assert len(api.requests_to(PODS + "/web-1")) == 4
    assert sleeps == [0.25, 0.5, 1.0]


def test_403_not_retried(api, make, sleeps):
    client = make()
    api.faults.append(fault("GET", PODS + "/web-1", 403))
    with pytest.raises(KubeError) as err:
        client.get("v1", "Pod", "web-1", "shop")
    assert err.value.status == 403
    assert "attempts" not in str(err.value)
    assert len(api.requests_to(PODS + "/web-1")) == 1
    assert sleeps == []


def test_post_500_not_retried(api, make, sleeps):
    client = make()
    api.faults.append(fault("POST", PODS, 500))
    body = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "new"}, "spec": {}}
    with pytest.raises(KubeError) as err:
        client.create("v1", "Pod", body, namespace="shop")
    assert err.value.status == 500
    assert len(api.requests_to(PODS, "POST")) == 1
    assert sleeps == []


def test_post_503_without_retry_after_not_retried(api, make, sleeps):
    client = make()
    api.faults.append(fault("POST", PODS, 503))
    with pytest.raises(KubeError):
        client.create("v1", "Pod", {"metadata": {"name": "new"}, "spec": {}}, namespace="shop")
    assert len(api.requests_to(PODS, "POST")) == 1


def test_post_429_and_503_with_retry_after_retried(api, make, sleeps):
    client = make()
    api.faults += [fault("POST", PODS, 429, {"Retry-After": "2"}), fault("POST", PODS, 503, {"Retry-After": "1"})]
    created = client.create("v1", "Pod", {"metadata": {"name": "new"}, "spec": {}}, namespace="shop")
    assert created["metadata"]["name"] == "new"
    assert len(api.requests_to(PODS, "POST")) == 3
    assert sleeps == [2.0, 1.0]


def test_list_restarts_on_410(api, make, sleeps):
    client = make()
    api.faults.append(fault("GET", PODS, 410, query="continue"))
    names = [p["metadata"]["name"] for p in client.list("v1", "Pod", "shop", page_size=2)]
    assert names == [f"web-{i}" for i in range(5)]  # no duplicates from the discarded partial list
    lists = api.requests_to(PODS)
    assert [r["query"].get("continue") for r in lists] == [None, "2", None, "2", "4"]
    assert sleeps == []


def test_list_410_gives_up_after_restarts(api, make, sleeps):
    client = make()
    api.faults += [fault("GET", PODS, 410, query="continue")] * 5
    with pytest.raises(KubeError) as err:
        list(client.list("v1", "Pod", "shop", page_size=2))
    assert err.value.status == 410
    assert len(api.requests_to(PODS)) == 6  # first try + 2 restarts, two pages each


def test_connection_refused_retried_for_reads(make, api, sleeps):
    client = make(retries=3)
    client.get("v1", "Pod", "web-1", "shop")  # discovery done
    api.close()
    with pytest.raises(KubeError) as err:
        client.get("v1", "Pod", "web-1", "shop")
    assert "cannot reach the API server" in str(err.value)
    assert "(after 3 attempts)" in str(err.value)
    assert sleeps == [0.25, 0.5]
