# -*- coding: utf-8 -*-
# Copyright: (c) 2026, machinenativeops.platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Versioned anomaly model artifacts: <models_dir>/<version>/{model.joblib, manifest.json}.

Loading a joblib file runs code, so the file's sha256 is checked against its manifest (and,
when the caller pins one, against the pinned digest) BEFORE it is unpickled.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import json
import os
import re

MODEL_FILE = "model.joblib"
MANIFEST_FILE = "manifest.json"
DEFAULT_FILE = "DEFAULT"
DEFAULT_MODELS_DIR = os.path.normpath(os.path.join(os.path.dirname(__file__), "..", "..", "ml", "models"))


class ModelError(Exception):
    """The artifact is missing, unreadable or fails its integrity check."""


def sha256_file(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _version_key(name):
    return [int(p) if p.isdigit() else p for p in re.split(r"[.\-_]|(?<=\D)(?=\d)", name) if p != ""]


def list_versions(models_dir=None):
    models_dir = models_dir or DEFAULT_MODELS_DIR
    if not os.path.isdir(models_dir):
        return []
    out = [d for d in os.listdir(models_dir) if os.path.isfile(os.path.join(models_dir, d, MANIFEST_FILE))]
    return sorted(out, key=_version_key)


def resolve(model_path=None, version=None, models_dir=None):
    """Directory of the artifact: ``model_path`` (a version directory or its model.joblib), else
    ``models_dir/version``, else the version named in ``models_dir/DEFAULT``, else the newest version."""
    if model_path:
        path = model_path[:-len(MODEL_FILE)] if model_path.endswith(MODEL_FILE) else model_path
        path = path.rstrip("/") or "/"
        if not os.path.isfile(os.path.join(path, MANIFEST_FILE)):
            raise ModelError("model path %s has no %s" % (path, MANIFEST_FILE))
        return path
    models_dir = models_dir or DEFAULT_MODELS_DIR
    if version:
        path = os.path.join(models_dir, version)
        if not os.path.isfile(os.path.join(path, MANIFEST_FILE)):
            raise ModelError("model version %s not found in %s (available: %s)" % (version, models_dir, ", ".join(list_versions(models_dir)) or "none"))
        return path
    versions = list_versions(models_dir)
    if not versions:
        raise ModelError("no model versions in %s; run `make train`" % models_dir)
    pinned = default_version(models_dir)
    if pinned:
        if pinned not in versions:
            raise ModelError("%s names version %s as the default, which is not in %s (available: %s)"
                             % (DEFAULT_FILE, pinned, models_dir, ", ".join(versions)))
        return os.path.join(models_dir, pinned)
    return os.path.join(models_dir, versions[-1])


def default_version(models_dir=None):
    """The version named in <models_dir>/DEFAULT (a newer version is not the default until it earns it), or None."""
    path = os.path.join(models_dir or DEFAULT_MODELS_DIR, DEFAULT_FILE)
    if not os.path.isfile(path):
        return None
    with open(path, "r", encoding="utf-8") as handle:
        text = handle.read().strip()
    return text or None


def read_manifest(path):
    manifest_path = os.path.join(path, MANIFEST_FILE)
    try:
        with open(manifest_path, "r", encoding="utf-8") as handle:
            manifest = json.load(handle)
    except (IOError, OSError, ValueError) as exc:
        raise ModelError("cannot read %s: %s" % (manifest_path, exc)) from None
    if not isinstance(manifest, dict) or not re.match(r"^[0-9a-f]{64}$", str(manifest.get("sha256", ""))):
        raise ModelError("%s has no valid sha256" % manifest_path)
    return manifest


def verify(path, expected_sha256=None):
    """Return (manifest, sha256) after checking model.joblib against the manifest and the pin."""
    manifest = read_manifest(path)
    model_file = os.path.join(path, manifest.get("file", MODEL_FILE))
    if not os.path.isfile(model_file):
        raise ModelError("model file %s is missing" % model_file)
    actual = sha256_file(model_file)
    if actual != manifest["sha256"]:
        raise ModelError("refusing to load %s: sha256 %s does not match its manifest (%s)" % (model_file, actual, manifest["sha256"]))
    if expected_sha256 and actual != str(expected_sha256).strip().lower():
        raise ModelError("refusing to load %s: sha256 %s does not match the pinned %s" % (model_file, actual, expected_sha256))
    return manifest, actual


def load(model_path=None, version=None, models_dir=None, expected_sha256=None, load_classifier=True):
    """Verified artifact: {"path", "version", "sha256", "manifest", "model"} (model None unless load_classifier)."""
    path = resolve(model_path, version, models_dir)
    manifest, digest = verify(path, expected_sha256)
    model = None
    if load_classifier:
        import joblib  # noqa: PLC0415 - lazy: the module reports missing_required_lib

        try:
            model = joblib.load(os.path.join(path, manifest.get("file", MODEL_FILE)))
        except Exception as exc:  # unpickling errors come in many types
            raise ModelError("cannot load %s: %s" % (path, exc)) from None
        if not isinstance(model, dict) or "classifier" not in model:
            raise ModelError("%s does not hold a classifier artifact" % path)
    return {"path": path, "version": manifest.get("version", os.path.basename(path)), "sha256": digest, "manifest": manifest, "model": model}


def write_manifest(path, manifest):
    with open(os.path.join(path, MANIFEST_FILE), "w", encoding="utf-8") as handle:
        json.dump(manifest, handle, indent=2, sort_keys=True)
        handle.write("\n")
