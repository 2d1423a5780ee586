"""Label values (plugins/module_utils/labels.py) and the DeleteBackupRequest label Velero matches."""

import hashlib

import pytest
from ansible_collections.machinenativeops.platform.plugins.module_utils import labels as L
from ansible_collections.machinenativeops.platform.plugins.module_utils import velero as V

# 62 characters then '-' at position 63: the old name[:63] ended in '-', an invalid label value
LONG_DASH = "a" * 62 + "-" + "b" * 20
LONG = "daily-cluster-backup-production-and-monitoring-namespaces-20260127020000"


def test_short_names_are_kept():
    assert L.velero_label_value("daily-20260101020000") == "daily-20260101020000"
    assert L.velero_label_value("x" * 63) == "x" * 63


@pytest.mark.parametrize("name", [LONG, LONG_DASH, "b" * 253])
def test_long_names_follow_velero(name):
    value = L.velero_label_value(name)
    assert value == name[:57] + hashlib.sha256(name.encode()).hexdigest()[:6]
    assert len(value) == 63 and L.is_label_value(value)


def test_is_label_value():
    assert L.is_label_value("") and L.is_label_value("v1.2_3-rc")
    for bad in ("a" * 64, "-a", "a-", "a:b", "a@b", "a/b", None):
        assert not L.is_label_value(bad)


class RecordingClient:
    """Test double (labelled as such): records the label selector of a DeleteBackupRequest list and answers it
    from the objects it holds, filtering by label the way the API server does."""

    def __init__(self, objects):
        self.objects = objects
        self.selectors = []

    def list(self, api_version, kind, namespace=None, label_selector=None):
        self.selectors.append(label_selector)
        key, value = label_selector.split("=", 1)
        return [o for o in self.objects if o["metadata"]["labels"].get(key) == value]


@pytest.mark.parametrize("name", [LONG, LONG_DASH])
def test_second_delete_finds_the_request_of_the_first(name):
    body = V.delete_request_body(name, "velero")
    assert L.is_label_value(body["metadata"]["labels"]["velero.io/backup-name"])
    client = RecordingClient([body])
    assert V.pending_delete_requests(client, "velero", name) == [body]
    assert client.selectors == ["velero.io/backup-name=" + L.velero_label_value(name)]
