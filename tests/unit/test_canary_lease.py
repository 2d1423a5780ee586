"""The canary lease (issue 12 item 6): one holder at a time, expiry, takeover, release, rollback always allowed."""

import json

import pytest
from ansible_collections.machinenativeops.platform.plugins.module_utils import canary as cn
from ansible_collections.machinenativeops.platform.plugins.module_utils import canary_lease as L

NOW = 1_780_000_000.0
WHERE = "the canary of VirtualService shop/reviews"


def vs_with(lease):
    annotations = {} if lease is None else {L.LEASE_ANNOTATION: lease if isinstance(lease, str) else json.dumps(lease)}
    return {"metadata": {"namespace": "shop", "name": "reviews", "annotations": annotations}}


def stored(holder, expires_in, renewed_ago=60.0):
    return L.load(vs_with({"holder": holder, "acquired_at": cn.format_time(NOW - 600), "renewed_at": cn.format_time(NOW - renewed_ago),
                           "expires_at": cn.format_time(NOW + expires_in)}))


def test_load_round_trip_and_errors():
    assert L.load(vs_with(None)) is None
    lease = stored("job-1", 300)
    assert lease["holder"] == "job-1" and lease["expires_at"] == pytest.approx(NOW + 300, abs=0.001)
    with pytest.raises(L.LeaseError, match="is not a canary lease"):
        L.load(vs_with("{not json"))
    with pytest.raises(L.LeaseError, match="no holder"):
        L.load(vs_with({"expires_at": "2026-01-01T00:00:00Z"}))


@pytest.mark.parametrize("action", ["step", "set_weight", "promote"])
def test_another_holder_is_refused_while_the_lease_is_valid(action):
    with pytest.raises(L.LeaseError, match=r"is being driven by job-1 .* two jobs must not run one canary at once"):
        L.check(stored("job-1", 300), "job-2", action, NOW, WHERE)
    with pytest.raises(L.LeaseError, match="job-1"):
        L.check(stored("job-1", 300), None, action, NOW, WHERE)   # no holder: refused too


@pytest.mark.parametrize("action", ["rollback", "status", "analyze"])
def test_rollback_and_reads_are_never_refused(action):
    assert L.check(stored("job-1", 300), "job-2", action, NOW, WHERE) is None


def test_expired_lease_is_taken_over_and_own_lease_passes():
    note = L.check(stored("job-1", -1), "job-2", "step", NOW, WHERE)
    assert note.startswith("the lease of job-1 expired at ") and note.endswith("; job-2 takes it over")
    assert L.check(stored("job-2", 300), "job-2", "step", NOW, WHERE) is None


def test_wanted_acquires_keeps_renews_and_releases():
    acquired = L.wanted(None, "job-2", 900, NOW, finished=False)
    assert acquired == {"holder": "job-2", "acquired_at": NOW, "renewed_at": NOW, "expires_at": NOW + 900}
    assert L.wanted(stored("job-2", 800), "job-2", 900, NOW, finished=False) is None          # plenty left: no write
    renewed = L.wanted(stored("job-2", 100), "job-2", 900, NOW, finished=False)
    assert renewed["expires_at"] == NOW + 900 and renewed["acquired_at"] == pytest.approx(NOW - 600, abs=0.001)
    taken = L.wanted(stored("job-1", -5), "job-2", 900, NOW, finished=False)
    assert taken["holder"] == "job-2" and taken["acquired_at"] == NOW
    assert L.wanted(stored("job-2", 800), "job-2", 900, NOW, finished=True) == ""            # released
    assert L.wanted(stored("job-1", 800), "job-2", 900, NOW, finished=True) is None          # not ours: untouched
    assert L.serialize("") is None
    assert json.loads(L.serialize(acquired))["expires_at"] == cn.format_time(NOW + 900)
