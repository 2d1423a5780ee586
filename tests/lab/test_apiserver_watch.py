"""watch=true: event streams, resume from a resourceVersion, 410 Gone, selectors, timeouts."""

from __future__ import annotations

import json
import threading
import urllib.request

import apiserver_support as sup
import pytest
from kubernetes import watch
from kubernetes.client import ApiException, CoreV1Api

from lab.apiserver.testing import running_apiserver

api = sup.api
client = sup.client
ns = sup.ns


def _events(url: str) -> list[dict]:
    with urllib.request.urlopen(url, timeout=30) as resp:
        assert resp.headers.get("Transfer-Encoding") == "chunked"
        return [json.loads(line) for line in resp.read().decode().splitlines() if line.strip()]


def test_watch_streams_added_modified_deleted(client, ns):
    core = CoreV1Api(client)
    rv = core.list_namespaced_config_map(ns).metadata.resource_version
    seen: list[tuple[str, str]] = []
    ready = threading.Event()

    def run():
        w = watch.Watch()
        ready.set()
        for ev in w.stream(core.list_namespaced_config_map, ns, resource_version=rv, timeout_seconds=20):
            seen.append((ev["type"], ev["object"].metadata.name))
            if ev["type"] == "DELETED":
                w.stop()

    t = threading.Thread(target=run)
    t.start()
    ready.wait()
    core.create_namespaced_config_map(ns, {"metadata": {"name": "w"}, "data": {"a": "1"}})
    core.patch_namespaced_config_map("w", ns, {"data": {"a": "2"}})
    core.delete_namespaced_config_map("w", ns)
    t.join(30)
    assert seen == [("ADDED", "w"), ("MODIFIED", "w"), ("DELETED", "w")]


def test_watch_replays_history_and_ends_at_timeout(api, client, ns):
    core = CoreV1Api(client)
    rv = core.list_namespaced_config_map(ns).metadata.resource_version
    core.create_namespaced_config_map(ns, {"metadata": {"name": "old"}})
    core.patch_namespaced_config_map("old", ns, {"data": {"x": "y"}})
    events = _events(f"{api.url}/api/v1/namespaces/{ns}/configmaps?watch=true&resourceVersion={rv}&timeoutSeconds=1")
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [("ADDED", "old"), ("MODIFIED", "old")]
    assert events[1]["object"]["data"] == {"x": "y"}


def test_watch_without_resource_version_lists_current_state_first(api, client, ns):
    core = CoreV1Api(client)
    core.create_namespaced_config_map(ns, {"metadata": {"name": "a"}})
    core.create_namespaced_config_map(ns, {"metadata": {"name": "b"}})
    events = _events(f"{api.url}/api/v1/namespaces/{ns}/configmaps?watch=1&timeoutSeconds=1")
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [("ADDED", "a"), ("ADDED", "b")]


def test_watch_field_selector_on_name(api, client, ns):
    core = CoreV1Api(client)
    rv = core.list_namespaced_config_map(ns).metadata.resource_version
    core.create_namespaced_config_map(ns, {"metadata": {"name": "other"}})
    core.create_namespaced_config_map(ns, {"metadata": {"name": "target"}})
    events = _events(f"{api.url}/api/v1/namespaces/{ns}/configmaps?watch=true&resourceVersion={rv}&timeoutSeconds=1"
                     "&fieldSelector=metadata.name%3Dtarget")
    assert [e["object"]["metadata"]["name"] for e in events] == ["target"]
    # the legacy /watch/ path and a named watch behave the same
    events = _events(f"{api.url}/api/v1/watch/namespaces/{ns}/configmaps/target?resourceVersion={rv}&timeoutSeconds=1")
    assert [e["object"]["metadata"]["name"] for e in events] == ["target"]


def test_watch_label_selector_transitions(api, client, ns):
    core = CoreV1Api(client)
    rv = core.list_namespaced_config_map(ns).metadata.resource_version
    core.create_namespaced_config_map(ns, {"metadata": {"name": "l", "labels": {"sel": "yes"}}})
    core.patch_namespaced_config_map("l", ns, {"metadata": {"labels": {"sel": "no"}}})
    core.patch_namespaced_config_map("l", ns, {"metadata": {"labels": {"sel": "yes"}}})
    events = _events(f"{api.url}/api/v1/namespaces/{ns}/configmaps?watch=true&resourceVersion={rv}&timeoutSeconds=1&labelSelector=sel%3Dyes")
    assert [e["type"] for e in events] == ["ADDED", "DELETED", "ADDED"]


def test_watch_all_namespaces(api, client, ns):
    core = CoreV1Api(client)
    rv = core.list_config_map_for_all_namespaces().metadata.resource_version
    core.create_namespaced_config_map(ns, {"metadata": {"name": "everywhere"}})
    events = _events(f"{api.url}/api/v1/configmaps?watch=true&resourceVersion={rv}&timeoutSeconds=1")
    assert ("ADDED", ns, "everywhere") in [(e["type"], e["object"]["metadata"]["namespace"], e["object"]["metadata"]["name"]) for e in events]


def test_watch_too_old_resource_version_is_410(tmp_path):
    with running_apiserver(tmp_path, load_crds=False, tls=False, history=5) as small:
        c = sup.api_client(small.kubeconfig)
        core = CoreV1Api(c)
        for i in range(12):
            core.create_namespaced_config_map("default", {"metadata": {"name": f"c{i}"}})
        events = _events(f"{small.url}/api/v1/namespaces/default/configmaps?watch=true&resourceVersion=1&timeoutSeconds=1")
        assert len(events) == 1 and events[0]["type"] == "ERROR"
        assert events[0]["object"]["code"] == 410 and events[0]["object"]["reason"] == "Expired"
        with pytest.raises(ApiException) as err:
            for _ in watch.Watch().stream(core.list_namespaced_config_map, "default", resource_version="1", timeout_seconds=1):
                pass
        assert err.value.status == 410
        c.close()


def test_watch_bookmarks_when_allowed(api, client, ns):
    api.bookmark_interval = 0.2
    try:
        rv = CoreV1Api(client).list_namespaced_config_map(ns).metadata.resource_version
        events = _events(f"{api.url}/api/v1/namespaces/{ns}/configmaps?watch=true&resourceVersion={rv}&timeoutSeconds=1"
                         "&allowWatchBookmarks=true")
        assert events and {e["type"] for e in events} == {"BOOKMARK"}
        assert events[0]["object"]["kind"] == "ConfigMap" and int(events[0]["object"]["metadata"]["resourceVersion"]) >= int(rv)
        plain = _events(f"{api.url}/api/v1/namespaces/{ns}/configmaps?watch=true&resourceVersion={rv}&timeoutSeconds=1")
        assert plain == []
    finally:
        api.bookmark_interval = 5.0


def test_continue_token_expires_with_the_history(tmp_path):
    with running_apiserver(tmp_path, load_crds=False, tls=False, history=5) as small:
        c = sup.api_client(small.kubeconfig)
        core = CoreV1Api(c)
        for i in range(3):
            core.create_namespaced_config_map("default", {"metadata": {"name": f"p{i}"}})
        token = core.list_namespaced_config_map("default", limit=1).metadata._continue
        assert [i.metadata.name for i in core.list_namespaced_config_map("default", limit=1, _continue=token).items] == ["p1"]
        for i in range(3, 12):
            core.create_namespaced_config_map("default", {"metadata": {"name": f"p{i}"}})
        with pytest.raises(ApiException) as err:
            core.list_namespaced_config_map("default", limit=1, _continue=token)
        assert err.value.status == 410 and json.loads(err.value.body)["reason"] == "Expired"
        c.close()


def test_concurrent_optimistic_updates_and_ordered_watch(api, client, ns):
    core = CoreV1Api(client)
    start = core.create_namespaced_config_map(ns, {"metadata": {"name": "counter"}, "data": {"n": "0"}})
    conflicts = []

    def bump(times: int):
        c = sup.api_client(api.kubeconfig)
        mine = CoreV1Api(c)
        done = 0
        while done < times:
            cur = mine.read_namespaced_config_map("counter", ns)
            cur.data["n"] = str(int(cur.data["n"]) + 1)
            try:
                mine.replace_namespaced_config_map("counter", ns, cur)
                done += 1
            except ApiException as exc:
                assert exc.status == 409
                conflicts.append(1)
        c.close()

    threads = [threading.Thread(target=bump, args=(25,)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert core.read_namespaced_config_map("counter", ns).data["n"] == "100"
    events = _events(f"{api.url}/api/v1/namespaces/{ns}/configmaps?watch=true&timeoutSeconds=1"
                     f"&resourceVersion={start.metadata.resource_version}")
    values = [int(e["object"]["data"]["n"]) for e in events]
    rvs = [int(e["object"]["metadata"]["resourceVersion"]) for e in events]
    assert values == list(range(1, 101)) and rvs == sorted(rvs) and len(set(rvs)) == 100
