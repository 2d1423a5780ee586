"""Model artifacts (sha256 verification before unpickling, pinning) and the classifier on generated faults."""

from __future__ import annotations

import json
import os
import pickle
import shutil

import numpy as np
import pytest
from ansible_collections.machinenativeops.platform.plugins.module_utils import anomaly_detect as ad
from ansible_collections.machinenativeops.platform.plugins.module_utils import anomaly_features as af
from ansible_collections.machinenativeops.platform.plugins.module_utils import anomaly_models as am

from ml import generator as gen

MODELS_DIR = os.path.join(os.path.dirname(__file__), "..", "..", "ml", "models")


@pytest.fixture(scope="module")
def artifact():
    return am.load(models_dir=MODELS_DIR)


@pytest.fixture
def copy_dir(tmp_path, artifact):
    dst = tmp_path / "models" / "9.9.9"
    shutil.copytree(artifact["path"], dst)
    return dst


def test_committed_artifact_matches_its_manifest(artifact):
    manifest = artifact["manifest"]
    assert artifact["sha256"] == am.sha256_file(os.path.join(artifact["path"], "model.joblib")) == manifest["sha256"]
    assert manifest["feature_names"] == af.CLASSIFIER_FEATURE_NAMES
    assert sorted(manifest["classes"]) == sorted(gen.CLASSES)
    assert {"numpy", "scikit-learn", "joblib", "python"} <= set(manifest["library_versions"])
    assert manifest["created"].endswith("Z")
    assert 2.0 <= manifest["detector"]["threshold"] <= af.Z_CLIP
    assert list(artifact["model"]["classifier"].classes_) == manifest["classes"]


def test_tampered_model_is_refused(copy_dir):
    with open(copy_dir / "model.joblib", "ab") as handle:
        handle.write(b"\0")
    with pytest.raises(am.ModelError, match="does not match its manifest"):
        am.load(model_path=str(copy_dir))


def test_malicious_pickle_is_never_unpickled(copy_dir, tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    (copy_dir / "model.joblib").write_bytes(pickle.dumps(Evil()))
    with pytest.raises(am.ModelError, match="refusing to load"):
        am.load(model_path=str(copy_dir))
    assert not marker.exists()


def test_pinned_sha256(copy_dir, artifact):
    ok = am.load(model_path=str(copy_dir / "model.joblib"), expected_sha256=artifact["sha256"].upper())
    assert ok["sha256"] == artifact["sha256"]
    with pytest.raises(am.ModelError, match="pinned"):
        am.load(model_path=str(copy_dir), expected_sha256="0" * 64)


def test_manifest_problems(copy_dir, tmp_path):
    manifest = json.loads((copy_dir / "manifest.json").read_text())
    manifest["sha256"] = "not-a-digest"
    (copy_dir / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(am.ModelError, match="no valid sha256"):
        am.load(model_path=str(copy_dir))
    (copy_dir / "manifest.json").write_text("{broken")
    with pytest.raises(am.ModelError, match="cannot read"):
        am.load(model_path=str(copy_dir))
    with pytest.raises(am.ModelError, match=r"no manifest\.json"):
        am.load(model_path=str(tmp_path))
    with pytest.raises(am.ModelError, match="not found"):
        am.load(version="0.0.0", models_dir=str(copy_dir.parent))
    with pytest.raises(am.ModelError, match="no model versions"):
        am.load(models_dir=str(tmp_path / "empty"))


def test_newest_version_is_the_default(copy_dir, artifact):
    shutil.copytree(copy_dir, copy_dir.parent / "10.0.0")
    shutil.copytree(copy_dir, copy_dir.parent / "2.0.0")
    assert am.list_versions(str(copy_dir.parent)) == ["2.0.0", "9.9.9", "10.0.0"]
    assert am.load(models_dir=str(copy_dir.parent), load_classifier=False)["path"].endswith("10.0.0")


# ---------------------------------------------------------------- classifier

def _classify_generated(artifact, label, seed):
    rng = np.random.default_rng(seed)
    pod = gen.generate_pod(rng, "t/p", step=15.0, hours=3.0, label=label, intensity=1.0, onset_range=(5400.0, 6000.0),
                           duration_range=(2400.0, 2400.0))
    det = artifact["manifest"]["detector"]
    return ad.analyze_target(pod.to_raw(), det, det["threshold"], det["persistence"], classifier=artifact["model"])


@pytest.mark.parametrize("label", ["deadlock", "memory_leak", "pod_crash", "high_error_rate", "cpu_spike"])
def test_classifier_names_strong_generated_faults(artifact, label):
    r = _classify_generated(artifact, label, seed=101)
    assert r["anomalous"] is True
    assert r["classifier_applied"] is True
    assert r["anomaly_type"] == label
    assert 0.0 <= r["confidence"] <= 1.0
    assert sum(r["type_probabilities"].values()) == pytest.approx(1.0, abs=1e-3)


def test_classifier_not_applied_without_known_metrics(artifact):
    rng = np.random.default_rng(3)
    n = 480
    cols = {"foo": rng.normal(10, 1, n), "bar": rng.normal(5, 0.2, n)}
    cols["foo"][300:] += 30
    raw = af.RawSeries("x", 1_700_000_000.0 + 15 * np.arange(n), sorted(cols), np.vstack([cols[c] for c in sorted(cols)]).T)
    r = ad.analyze_target(raw, {"threshold": 8.0}, classifier=artifact["model"])
    assert r["anomalous"] is True
    assert r["classifier_applied"] is False and r["anomaly_type"] is None
    assert "classifier not applied" in r["message"]


def test_classifier_handles_all_missing_features(artifact):
    vec = np.full(len(af.CLASSIFIER_FEATURE_NAMES), np.nan)
    label, conf, probs = ad.classify(artifact["model"], vec)
    assert label in gen.CLASSES and 0.0 <= conf <= 1.0 and len(probs) == len(gen.CLASSES)


def test_default_file_pins_the_default_version(copy_dir, artifact):
    shutil.copytree(copy_dir, copy_dir.parent / "10.0.0")
    (copy_dir.parent / "DEFAULT").write_text("9.9.9\n")
    assert am.load(models_dir=str(copy_dir.parent), load_classifier=False)["path"].endswith("9.9.9")
    assert am.load(models_dir=str(copy_dir.parent), version="10.0.0", load_classifier=False)["path"].endswith("10.0.0")
    (copy_dir.parent / "DEFAULT").write_text("8.0.0\n")
    with pytest.raises(am.ModelError, match=r"8\.0\.0"):
        am.load(models_dir=str(copy_dir.parent), load_classifier=False)


def test_committed_versions_both_load_and_the_default_is_pinned():
    assert {"1.0.0", "1.1.0"} <= set(am.list_versions(MODELS_DIR))
    assert am.default_version(MODELS_DIR) == "1.0.0"
    new = am.load(models_dir=MODELS_DIR, version="1.1.0", load_classifier=False)
    assert new["manifest"]["detector"]["scoring"] == 2
    assert "scoring" not in am.load(models_dir=MODELS_DIR, version="1.0.0", load_classifier=False)["manifest"]["detector"]


def test_classifier_abstains_when_the_evidence_of_its_type_is_missing(artifact):
    # CPU, memory, network, latency and request columns only (no disk, restart or error columns, as on the real data)
    rng = np.random.default_rng(31)
    pod = gen.generate_pod(rng, "t/p", step=60.0, hours=3.0, label="cpu_spike", intensity=1.0, onset_range=(5400.0, 6000.0),
                           duration_range=(2400.0, 2400.0))
    keep = ["container_cpu_usage_seconds_total", "container_memory_working_set_bytes", "container_network_receive_bytes_total",
            "latency_p99_ms", "requests_total"]
    cols = dict((c, pod.columns[c]) for c in keep)
    raw = af.RawSeries("t/p", pod.times, sorted(cols), np.vstack([cols[c] for c in sorted(cols)]).T)
    det = dict(am.load(models_dir=MODELS_DIR, version="1.1.0", load_classifier=False)["manifest"]["detector"])
    r = ad.analyze_target(raw, det, det["threshold"], det["persistence"], classifier=artifact["model"])
    assert r["anomalous"] is True and r["classifier_applied"] is True
    for item in r["episode_details"]:
        assert item["anomaly_type"] not in ("disk_full", "disk_io_bottleneck", "oom_kill", "pod_crash", "high_error_rate")
        if item["anomaly_type"] == "unknown":
            assert item["confidence"] <= 0.5 and item["abstained"]


def test_abstain_reason():
    assert ad.abstain_reason("disk_full", {"cpu": ["c"], "memory": ["m"]}, set()) is not None
    assert ad.abstain_reason("disk_full", {"disk": ["d"]}, {"disk"}) is None
    assert "moved" in ad.abstain_reason("memory_leak", {"memory": ["m"], "cpu": ["c"]}, {"cpu"})
    assert ad.abstain_reason("cpu_spike", {"cpu": ["c"]}, {"cpu"}) is None
    assert ad.abstain_reason("healthy", {}, set()) is None
