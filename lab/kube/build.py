"""``python -m lab build``: build the real control plane from its Go modules, and fetch the upstream CRDs.

Everything comes from the Go module proxy through the ``go`` command, at the versions pinned in
``lab/kube/go/*/go.mod`` (with their go.sum) and in ``CRD_SOURCES`` below; nothing upstream is committed.

The result is a cache keyed by the Kubernetes version::

    ~/.cache/machinenativeops-lab/<k8s-version>/
        bin/{etcd,kube-apiserver,kube-controller-manager,kube-scheduler,kubectl,kwok}
        crds/<source>/*.yaml       upstream CRDs, copied out of the downloaded modules
        kwok/stages/*.yaml, kwok/crds/*.yaml
        manifest.json              what was built from what (the stamp a second build compares)

A second run with unchanged pins only compares the stamp (well under a second).
``MNO_LAB_CACHE`` moves the cache.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
GO_DIR = HERE / "go"

K8S_VERSION = "v1.34.4"

# Go module dir -> the commands it builds, and the version variables set by -ldflags -X.
BUILDS = {
    "controlplane": {
        "packages": {
            "kube-apiserver": "k8s.io/kubernetes/cmd/kube-apiserver",
            "kube-controller-manager": "k8s.io/kubernetes/cmd/kube-controller-manager",
            "kube-scheduler": "k8s.io/kubernetes/cmd/kube-scheduler",
            "kubectl": "k8s.io/kubernetes/cmd/kubectl",
        },
        # Without these /version answers v0.0.0-master, which clients that parse versions mishandle.
        "version_vars": ["k8s.io/component-base/version", "k8s.io/client-go/pkg/version"],
        "version": K8S_VERSION,
    },
    "etcd": {"packages": {"etcd": "go.etcd.io/etcd/server/v3"}},
    "kwok": {"packages": {"kwok": "sigs.k8s.io/kwok/cmd/kwok"}},
}

# Upstream CRDs: (name, Go module@version, directory or file inside the module, needs a newer Go to download).
# Flux's helm-controller is not served by the module proxy: its CRD is the one written here (lab/kube/crds/).
CRD_SOURCES = [
    ("istio", "istio.io/api@v1.32.0", "kubernetes/customresourcedefinitions.gen.yaml", False),
    ("velero", "github.com/vmware-tanzu/velero@v1.18.3", "config/crd/v1/bases", False),
    ("prometheus-operator", "github.com/prometheus-operator/prometheus-operator@v0.85.0", "example/prometheus-operator-crd", False),
    ("cert-manager", "github.com/cert-manager/cert-manager@v1.21.2", "deploy/crds", False),
    ("flux-source", "github.com/fluxcd/source-controller@v1.10.1", "config/crd/bases", True),
    ("flux-kustomize", "github.com/fluxcd/kustomize-controller@v1.10.1", "config/crd/bases", True),
    ("argocd", "github.com/argoproj/argo-cd/v3@v3.6.2", "manifests/crds", True),
]
# These modules' go.mod asks for Go 1.27; the go command fetches that toolchain (itself a module) to read them.
NEWER_GO = "go1.27.3"

# KWOK's own Stage CRD and the stages the lab uses, from the kwok module.
KWOK_FILES = {
    "crds": ["kustomize/crd/bases/kwok.x-k8s.io_stages.yaml"],
    "stages": [
        "kustomize/stage/node/fast/node-initialize.yaml",
        "kustomize/stage/node/heartbeat-with-lease/node-heartbeat-with-lease.yaml",
        "kustomize/stage/node/chaos/node-not-ready.yaml",
        "kustomize/stage/pod/fast/pod-ready.yaml",
        "kustomize/stage/pod/fast/pod-complete.yaml",
        "kustomize/stage/pod/fast/pod-delete.yaml",
    ],
}


class BuildError(RuntimeError):
    """The go command failed; the message has its command and output."""


def cache_root() -> Path:
    return Path(os.environ.get("MNO_LAB_CACHE") or Path.home() / ".cache" / "machinenativeops-lab")


def cache_dir(version: str = K8S_VERSION) -> Path:
    return cache_root() / version


def _go_env(toolchain: str = "local") -> dict:
    env = dict(os.environ)
    env.update({"GOTOOLCHAIN": toolchain, "GOFLAGS": "-mod=readonly -buildvcs=false", "CGO_ENABLED": "0"})
    return env


def _go(args: list[str], cwd: Path, toolchain: str = "local") -> str:
    go = shutil.which("go") or "/usr/local/go/bin/go"
    if not Path(go).exists():
        raise BuildError("the go command is not installed (Go 1.24 or newer is needed to build the lab's control plane)")
    proc = subprocess.run([go, *args], cwd=cwd, env=_go_env(toolchain), capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise BuildError(f"`go {' '.join(args)}` in {cwd} failed ({proc.returncode}):\n{proc.stderr.strip()[-4000:]}")
    return proc.stdout


def _ldflags(spec: dict) -> str:
    flags = ["-s", "-w"]
    version = spec.get("version")
    if version:
        major, minor = version.lstrip("v").split(".")[:2]
        for pkg in spec.get("version_vars", []):
            flags += [f"-X {pkg}.gitVersion={version}", f"-X {pkg}.gitMajor={major}", f"-X {pkg}.gitMinor={minor}",
                      f"-X {pkg}.gitTreeState=clean", f"-X {pkg}.buildDate=1970-01-01T00:00:00Z"]
    return " ".join(flags)


def _stamp(name: str, spec: dict) -> str:
    digest = hashlib.sha256()
    for file in ("go.mod", "go.sum", "tools.go"):
        digest.update((GO_DIR / name / file).read_bytes())
    digest.update(json.dumps(spec, sort_keys=True).encode())
    digest.update(_go(["env", "GOVERSION"], GO_DIR / name).strip().encode())
    return digest.hexdigest()


def _module_dir(module: str, cwd: Path, toolchain: str = "local") -> Path:
    info = json.loads(_go(["mod", "download", "-json", module], cwd, toolchain))
    if info.get("Error"):
        raise BuildError(f"go mod download {module}: {info['Error']}")
    return Path(info["Dir"])


def _copy_yaml(src: Path, dest: Path) -> list[str]:
    dest.mkdir(parents=True, exist_ok=True)
    files = sorted(src.glob("*.yaml")) if src.is_dir() else [src]
    copied = []
    for file in files:
        if file.name == "kustomization.yaml":
            continue
        shutil.copyfile(file, dest / file.name)
        copied.append(file.name)
    if not copied:
        raise BuildError(f"no CRD files in {src}")
    return copied


def build(force: bool = False, log=print) -> dict:
    """Build what is missing or stale; return the manifest (also written to the cache)."""
    out = cache_dir()
    bin_dir = out / "bin"
    manifest_path = out / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() and not force else {}
    manifest.setdefault("builds", {})
    bin_dir.mkdir(parents=True, exist_ok=True)
    for name, spec in BUILDS.items():
        stamp = _stamp(name, spec)
        have = manifest["builds"].get(name, {})
        binaries = [bin_dir / binary for binary in spec["packages"]]
        if have.get("stamp") == stamp and all(b.exists() for b in binaries):
            continue
        t0 = time.monotonic()
        log(f"lab build: {name}: go build {' '.join(spec['packages'])} (a cold build takes minutes)")
        tmp = out / f"bin.{name}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        for binary, package in spec["packages"].items():  # one at a time: the compiled packages are shared through GOCACHE
            _go(["build", "-trimpath", "-ldflags", _ldflags(spec), "-o", str(tmp / binary), package], GO_DIR / name)
        for binary in spec["packages"]:
            (tmp / binary).replace(bin_dir / binary)
        tmp.rmdir()
        manifest["builds"][name] = {"stamp": stamp, "seconds": round(time.monotonic() - t0, 1), "binaries": sorted(spec["packages"])}
        _write(manifest_path, manifest)

    crd_stamp = hashlib.sha256(json.dumps([CRD_SOURCES, KWOK_FILES, (GO_DIR / "kwok" / "go.mod").read_text()]).encode()).hexdigest()
    if manifest.get("crds_stamp") != crd_stamp or not (out / "crds").is_dir():
        t0 = time.monotonic()
        log("lab build: upstream CRDs and KWOK stages from their Go modules")
        shutil.rmtree(out / "crds", ignore_errors=True)
        crds = {}
        for name, module, path, newer in CRD_SOURCES:
            src = _module_dir(module, GO_DIR / "etcd", NEWER_GO if newer else "local") / path
            crds[name] = {"module": module, "files": _copy_yaml(src, out / "crds" / name)}
        kwok_dir = Path(json.loads(_go(["list", "-m", "-json", "sigs.k8s.io/kwok"], GO_DIR / "kwok"))["Dir"])
        shutil.rmtree(out / "kwok", ignore_errors=True)
        for kind, files in KWOK_FILES.items():
            for rel in files:
                _copy_yaml(kwok_dir / rel, out / "kwok" / kind)
        manifest.update(crds=crds, crds_stamp=crd_stamp, crds_seconds=round(time.monotonic() - t0, 1))
        _write(manifest_path, manifest)
    manifest["dir"] = str(out)
    manifest["k8s_version"] = K8S_VERSION
    return manifest


def _write(path: Path, data: dict) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True))
    tmp.replace(path)


def installed(version: str = K8S_VERSION) -> dict | None:
    """The manifest of a finished build, or None when ``python -m lab build`` has not run."""
    path = cache_dir(version) / "manifest.json"
    if not path.exists():
        return None
    manifest = json.loads(path.read_text())
    for name, spec in BUILDS.items():
        if name not in manifest.get("builds", {}) or not all((cache_dir(version) / "bin" / b).exists() for b in spec["packages"]):
            return None
    if "crds" not in manifest:
        return None
    manifest["dir"] = str(cache_dir(version))
    manifest["k8s_version"] = version
    return manifest


def add_arguments(parser) -> None:
    parser.add_argument("--force", action="store_true", help="rebuild even when the cache is up to date")


def run(args) -> int:
    t0 = time.monotonic()
    try:
        manifest = build(force=args.force)
    except BuildError as exc:
        print(f"lab build: {exc}", file=sys.stderr)
        return 1
    print(f"lab build: control plane {K8S_VERSION} ready in {manifest['dir']} ({time.monotonic() - t0:.1f}s)")
    return 0
