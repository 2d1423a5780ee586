"""The collection as users receive it: ``ansible-galaxy collection build`` ships collection content only, and
the installed tarball documents every module with ``ansible-doc``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
MODULES = sorted(p.stem for p in (ROOT / "plugins" / "modules").glob("*.py") if not p.name.startswith("_"))

# Top-level entries that are development tooling, never collection content.
DEV_ONLY = {".venv", ".lab", ".ci", ".git", ".ansible", "build", "bench", "lab", "tools", "Makefile", "pyproject.toml",
            "requirements-dev.txt", "constraints.txt", "ansible.cfg", ".gitignore", ".yamllint", ".ansible-lint", ".sanity-exclude"}


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple[Path, list[str]]:
    out = tmp_path_factory.mktemp("dist")
    proc = subprocess.run([str(BIN / "ansible-galaxy"), "collection", "build", "--force", "--output-path", str(out), str(ROOT)],
                          capture_output=True, text=True, check=False, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    galaxy = yaml.safe_load((ROOT / "galaxy.yml").read_text())
    tarball = out / f"{galaxy['namespace']}-{galaxy['name']}-{galaxy['version']}.tar.gz"
    assert tarball.exists(), sorted(p.name for p in out.iterdir())
    with tarfile.open(tarball) as tar:
        names = tar.getnames()
    return tarball, names


def test_tarball_has_no_development_files(built):
    _tarball, names = built
    top = {n.split("/", 1)[0] for n in names}
    assert not top & DEV_ONLY, sorted(top & DEV_ONLY)
    assert not [n for n in names if n.startswith(("tests/lab/", "tests/output/", "ml/data/", "ml/reports/")) or "__pycache__" in n]
    assert not [n for n in names if n.startswith("ml/") and n.endswith(".py")], "training code is not collection content"
    for module in MODULES:
        assert f"plugins/modules/{module}.py" in names
    assert "meta/runtime.yml" in names
    assert "MANIFEST.json" in names and "FILES.json" in names
    # The anomaly model artifact ships with its manifest so the module can check its sha256.
    assert any(n.startswith("ml/models/") and n.endswith("manifest.json") for n in names)


def test_installed_tarball_documents_every_module(built, tmp_path):
    tarball, _names = built
    dest = tmp_path / "installed"
    # A configuration of its own: the checkout's ansible.cfg points at the staged tree, which would both make
    # the install a no-op ("already installed") and let ansible-doc read the checkout instead of the tarball.
    (tmp_path / "ansible.cfg").write_text("[defaults]\n")
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(dest), ANSIBLE_CONFIG=str(tmp_path / "ansible.cfg"))
    proc = subprocess.run([str(BIN / "ansible-galaxy"), "collection", "install", "--no-deps", "-p", str(dest), str(tarball)],
                          capture_output=True, text=True, check=False, timeout=300, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (dest / "ansible_collections" / "machinenativeops" / "platform" / "MANIFEST.json").exists(), proc.stdout
    proc = subprocess.run([str(BIN / "ansible-doc"), "--json", *[f"machinenativeops.platform.{m}" for m in MODULES]],
                          capture_output=True, text=True, check=False, timeout=300, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    docs = json.loads(proc.stdout)
    assert sorted(docs) == sorted(f"machinenativeops.platform.{m}" for m in MODULES), proc.stderr
    for name, doc in docs.items():
        assert doc["doc"]["short_description"], name
        assert doc["doc"]["collection"] == "machinenativeops.platform", name
        assert str(dest) in doc["doc"]["filename"], (name, doc["doc"]["filename"])
        assert doc["examples"] and doc["return"], name
