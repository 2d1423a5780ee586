"""The one duration grammar (plugins/module_utils/durations.py) and the modules that use it."""

import pytest
from ansible_collections.machinenativeops.platform.plugins.module_utils import canary as C
from ansible_collections.machinenativeops.platform.plugins.module_utils import durations as D
from ansible_collections.machinenativeops.platform.plugins.module_utils import health as H
from ansible_collections.machinenativeops.platform.plugins.module_utils import velero as V

# every spelling that one of the four former parsers accepted, and the ones none of them did
ACCEPTED = [
    (90, 90.0), (1.5, 1.5), (0, 0.0), ("90", 90.0), ("0.5", 0.5), ("0", 0.0), ("+5m", 300.0),
    ("500ms", 0.5), ("30s", 30.0), ("5m", 300.0), ("1h30m", 5400.0), ("1h 30m", 5400.0), ("720h0m0s", 2592000.0),
    ("1.5h", 5400.0), ("7d", 604800.0), ("2w", 1209600.0), ("1y", 31536000.0), ("1d12h", 129600.0),
    ("250us", 0.00025), ("250\u00b5s", 0.00025), ("100ns", 1e-7), (" 45s ", 45.0), (".5s", 0.5),
]
REJECTED = ["", "   ", "abc", "5x", "1 h", "h", "10 minutes", "5mo", "1h-30m", "-3", "-1h", -1, True, None, float("nan"),
            float("inf"), [], "1h30", "5m5"]


@pytest.mark.parametrize(("value", "seconds"), ACCEPTED)
def test_accepts_the_superset(value, seconds):
    assert D.parse_duration(value) == pytest.approx(seconds)


@pytest.mark.parametrize("value", REJECTED)
def test_rejects_with_the_option_name_and_examples(value):
    with pytest.raises(D.DurationError) as info:
        D.parse_duration(value, "analysis.interval")
    message = str(info.value)
    assert message.startswith("analysis.interval: invalid duration ")
    assert "examples: 500ms, 30s, 5m, 1h30m, 7d" in message


def test_positive_and_none():
    with pytest.raises(D.DurationError, match="greater than zero"):
        D.parse_duration("0s", "progress_deadline", positive=True)
    assert D.parse_duration(None, allow_none=True) is None
    assert D.parse_duration("", allow_none=True) is None


@pytest.mark.parametrize(("text", "valid"), [("720h0m0s", True), ("1h30m", True), ("0", True), ("1.5h", True), ("7d", False),
                                             ("90", False), ("1h 30m", False), ("", False)])
def test_is_go_duration(text, valid):
    assert D.is_go_duration(text) is valid


def test_formatters():
    assert D.go_duration(2592000) == "720h0m0s"
    assert D.go_duration(5430) == "1h30m30s"
    assert D.promql_duration(60) == "1m"
    assert D.promql_duration(5400) == "1h30m"
    assert D.promql_duration(0.5) == "500ms"
    assert D.promql_duration(604800) == "7d"
    with pytest.raises(D.DurationError):
        D.promql_duration(0)


# -- the same grammar in every module that takes a duration -------------------------------------------------
@pytest.mark.parametrize("text", ["7d", "500ms", "1h30m", "90"])
def test_every_module_accepts_the_same_spellings(text):
    seconds = D.parse_duration(text)
    assert H.normalize_thresholds({"max_backup_age": text})["max_backup_age"] == seconds
    assert C.parse_duration(text) == seconds
    ttl = V.backup_spec({"ttl": text})["ttl"]
    assert ttl == D.go_duration(seconds) and D.is_go_duration(ttl)


def test_every_module_rejects_the_same_way():
    with pytest.raises(ValueError, match="threshold max_backup_age: invalid duration '5x'"):
        H.normalize_thresholds({"max_backup_age": "5x"})
    with pytest.raises(C.CanaryError, match="progress_deadline: invalid duration '5x'"):
        C.parse_duration("5x", "progress_deadline")
    with pytest.raises(ValueError, match="ttl: invalid duration '5x'"):
        V.backup_spec({"ttl": "5x"})


def test_velero_every_descriptor_is_sent_in_go_form():
    assert V.validate_cron("@every 1h") == "@every 1h"
    assert V.validate_cron("@every 1d") == "@every 24h0m0s"
    with pytest.raises(ValueError, match="schedule @every: invalid duration"):
        V.validate_cron("@every soon")


def test_canary_writes_the_window_in_prometheus_syntax():
    opts = C.options_from_params({"namespace": "shop", "stable": {"host": "r", "subset": "stable"},
                                  "canary": {"host": "r", "subset": "canary"}, "canary_workload": "r-canary",
                                  "analysis": {"interval": 90}})
    assert opts["analysis"]["interval"] == "1m30s"
    assert opts["analysis"]["interval_seconds"] == 90.0
