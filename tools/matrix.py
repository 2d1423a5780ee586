# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The ansible-core compatibility matrix: every ansible-core minor that meta/runtime.yml claims, each tested.

One leg per ansible-core minor.  Each leg has a virtualenv of its own (``build/matrix/<leg>/venv``) with a
Python that ansible-core supports, the ``ansible`` community package of the matching major (it bundles
kubernetes.core), ansible-core, pytest and the collection's runtime requirements, all pinned by
``tests/matrix/constraints-<leg>.txt``.  Per leg it runs:

* ``sanity``: ``ansible-test sanity`` of that ansible-core on a staged copy of the collection (offline pip
  bootstrap as ``make sanity`` does; ansible-test reads ``tests/sanity/ignore-<leg>.txt``);
* ``unit``: the unit tests (``tests/unit``) with the leg's Python and ansible-core;
* ``smoke`` (oldest and newest leg only, unless ``--smoke-legs`` says otherwise): ``tests/matrix/test_smoke.py``
  run by the project's virtualenv, which starts a lab and runs health.yml, one canary step and one Velero verify
  through the leg's ``ansible-playbook`` (so the modules run with the leg's ansible-core and Python).

A virtualenv is reused while its key (the constraints file, requirements.txt, the interpreter's version) is
unchanged.  A summary table with per-leg results and times is printed at the end; the exit status is non-zero
if any step of any leg failed.

Usage::

    python tools/matrix.py [--legs "2.16 2.21"] [--steps sanity,unit,smoke] [--smoke-legs "2.16 2.21"]
    python tools/matrix.py --lock --legs 2.18     # re-resolve and rewrite tests/matrix/constraints-2.18.txt
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
import tomllib
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BUILD = Path(os.environ.get("MATRIX_BUILD_DIR") or ROOT / "build" / "matrix")   # virtualenvs, staged copies, logs
PINS = ROOT / "tests" / "matrix"
PROJECT_PYTHON = ROOT / ".venv" / "bin" / "python"
COLLECTIONS = ROOT / "build" / "collections"


@dataclass(frozen=True)
class Leg:
    core: str                   # ansible-core minor, e.g. "2.16"
    python: str                 # controller Python the leg runs on (one that this ansible-core supports)
    ansible: str                # major of the ansible community package that bundles this ansible-core
    kubernetes_core: str        # the newest kubernetes.core that supports this ansible-core
    kubernetes_core_from: str   # the requirement (an `ansible` release) whose wheel carries that kubernetes.core

    @property
    def home(self) -> Path:
        return BUILD / self.core

    @property
    def collections(self) -> Path:
        return self.home / "collections"


def load_legs() -> dict[str, Leg]:
    """The legs of tests/matrix/legs.toml (what each leg runs on and which kubernetes.core it takes)."""
    with (PINS / "legs.toml").open("rb") as handle:
        legs = tomllib.load(handle)["legs"]
    return {core: Leg(core=core, **spec) for core, spec in sorted(legs.items(), key=lambda kv: tuple(map(int, kv[0].split("."))))}


LEGS = load_legs()
STEPS = ("sanity", "unit", "smoke")


@dataclass
class Result:
    leg: Leg
    python_path: str = ""
    versions: dict = field(default_factory=dict)
    venv: str = ""
    steps: dict = field(default_factory=dict)   # step -> (status, seconds)
    message: str = ""

    @property
    def failed(self) -> bool:
        return any(status == "FAIL" for status, _ in self.steps.values()) or self.venv.startswith("FAIL")


def log(msg: str) -> None:
    print(f"[matrix {time.strftime('%H:%M:%S')}] {msg}", flush=True)


# -- interpreters -------------------------------------------------------------------------------------
def probe(candidate: str, version: str) -> str | None:
    """The real executable behind ``candidate`` (a pyenv shim resolves to its version) if it is Python ``version``."""
    try:
        # the interpreter a virtualenv was made from, not the virtualenv (make puts .venv/bin first on PATH)
        script = ("import os, sys; v = '%d.%d' % sys.version_info[:2]; print(v); "
                  "print(sys.executable if sys.prefix == sys.base_prefix else os.path.join(sys.base_prefix, 'bin', 'python' + v))")
        out = subprocess.run([candidate, "-c", script],
                             capture_output=True, text=True, timeout=60, check=False)
    except OSError:
        return None
    lines = out.stdout.split()
    if out.returncode == 0 and len(lines) == 2 and lines[0] == version:
        return lines[1]
    return None


def find_python(version: str) -> str:
    """Python ``version`` from PATH (``python3.12``) or from pyenv (``$PYENV_ROOT/versions/3.12.*``)."""
    candidates = []
    on_path = shutil.which(f"python{version}")
    if on_path:
        candidates.append(on_path)
    pyenv_root = os.environ.get("PYENV_ROOT") or os.path.expanduser("~/.pyenv")
    found = glob.glob(os.path.join(pyenv_root, "versions", f"{version}.*", "bin", f"python{version}"))
    candidates.extend(sorted(found, key=lambda p: [int(x) for x in Path(p).parents[1].name.split(".") if x.isdigit()], reverse=True))
    for candidate in candidates:
        real = probe(candidate, version)
        if real:
            return real
    raise LookupError(f"Python {version} not found (looked for python{version} on PATH and under {pyenv_root}/versions/{version}.*): "
                      f"install Python {version} (for example `pyenv install {version}`) or put python{version} on PATH")


# -- virtualenvs --------------------------------------------------------------------------------------
def constraints_file(leg: Leg) -> Path:
    return PINS / f"constraints-{leg.core}.txt"


def test_requirements() -> list[str]:
    """What the unit tests need besides the runtime requirements (pytest, moto's server), as requirements-dev.txt says."""
    lines = (ROOT / "requirements-dev.txt").read_text().splitlines()
    return [line.strip() for line in lines if line.strip().lower().startswith(("pytest", "moto"))]


def requirements(leg: Leg) -> list[str]:
    """What a leg installs; the constraints file pins every one of them and their dependencies."""
    return [f"ansible-core=={leg.core}.*", f"ansible=={leg.ansible}.*", *test_requirements(), "-r", str(ROOT / "requirements.txt")]


def venv_key(leg: Leg, python: str) -> str:
    version = subprocess.run([python, "-c", "import sys; print(sys.version)"], capture_output=True, text=True, check=True).stdout
    digest = hashlib.sha256()
    parts = (version, " ".join(requirements(leg)), constraints_file(leg).read_text(), (ROOT / "requirements.txt").read_text(),
             leg.kubernetes_core, leg.kubernetes_core_from)
    for part in parts:
        digest.update(part.encode())
        digest.update(b"\0")
    return digest.hexdigest()


def run_logged(cmd: list[str], logfile: Path, *, env: dict | None = None, cwd: Path = ROOT, timeout: float = 3600) -> int:
    with logfile.open("a", encoding="utf-8") as out:
        out.write(f"$ {' '.join(cmd)}\n")
        out.flush()
        try:
            return subprocess.run(cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, timeout=timeout, check=False).returncode
        except subprocess.TimeoutExpired:
            out.write(f"timed out after {timeout}s\n")
            return 124


def tail(logfile: Path, lines: int = 15) -> str:
    """The error lines of a log (ansible-test's ERROR, pytest's FAILED/ERROR summary), then its last lines."""
    text = logfile.read_text(encoding="utf-8", errors="replace").splitlines()
    errors = [line for line in text[:-lines] if line.startswith(("ERROR", "FAILED", "FATAL", "E   "))][-40:]
    return "\n".join("    " + line for line in [*errors, *(["    ..."] if errors else []), *text[-lines:]])


def build_venv(leg: Leg, python: str, *, lock: bool = False) -> tuple[str, Path]:
    """Create (or reuse) the leg's virtualenv; returns ("cached"|"built"|"locked", venv)."""
    home = leg.home
    venv = home / "venv"
    key_file = venv / ".matrix-key"
    pins = constraints_file(leg)
    if not lock and not pins.exists():
        raise FileNotFoundError(f"{pins.relative_to(ROOT)} is missing: create it with `python tools/matrix.py --lock --legs {leg.core}`")
    key = None if lock else venv_key(leg, python)
    if key and key_file.exists() and key_file.read_text() == key and (venv / "bin" / "python").exists() and overlay_version(leg):
        return "cached", venv
    home.mkdir(parents=True, exist_ok=True)
    logfile = home / "venv.log"
    logfile.write_text("")
    shutil.rmtree(venv, ignore_errors=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "--disable-pip-version-check", "install", "-q"]
    if run_logged([python, "-m", "venv", str(venv)], logfile) != 0:
        raise RuntimeError(f"creating {venv} failed:\n{tail(logfile)}")
    pinned = [] if lock else ["-c", str(pins)]
    if run_logged([*pip, *pinned, *requirements(leg)], logfile) != 0:
        shutil.rmtree(venv, ignore_errors=True)
        raise RuntimeError(f"installing the leg's packages failed (log {logfile}):\n{tail(logfile)}")
    install_kubernetes_core(leg, venv, logfile)
    if lock:
        freeze = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "freeze", "--disable-pip-version-check"],
                                capture_output=True, text=True, check=True).stdout
        versions = leg_versions(leg, venv)
        header = (f"# ansible-core {leg.core} leg of the compatibility matrix (tools/matrix.py): Python {leg.python}, "
                  f"ansible {versions['ansible']}, ansible-core {versions['ansible-core']}, kubernetes.core {versions['kubernetes.core']} "
                  f"(bundled: {versions['bundled kubernetes.core']}).\n"
                  f"# Exact versions of everything the leg installs; regenerate with `python tools/matrix.py --lock --legs {leg.core}`.\n")
        pins.write_text(header + "".join(line + "\n" for line in sorted(freeze.split("\n"), key=str.lower) if line.strip()))
        key = venv_key(leg, python)
    key_file.write_text(key)
    return ("locked" if lock else "built"), venv


def overlay_version(leg: Leg) -> str | None:
    manifest = leg.collections / "ansible_collections" / "kubernetes" / "core" / "MANIFEST.json"
    if not manifest.exists():
        return None
    return json.loads(manifest.read_text())["collection_info"]["version"]


def install_kubernetes_core(leg: Leg, venv: Path, logfile: Path) -> None:
    """kubernetes.core ``leg.kubernetes_core`` from the wheel of ``leg.kubernetes_core_from`` into the leg's collections."""
    wheels = BUILD / "wheels"
    name, _, version = leg.kubernetes_core_from.partition("==")
    wheel = wheels / f"{name}-{version}-py3-none-any.whl"
    if not wheel.exists():
        cmd = [str(venv / "bin" / "python"), "-m", "pip", "--disable-pip-version-check", "download", "-q", "--no-deps",
               "--only-binary=:all:", "--ignore-requires-python", leg.kubernetes_core_from, "-d", str(wheels)]
        if run_logged(cmd, logfile) != 0 or not wheel.exists():
            raise RuntimeError(f"downloading {leg.kubernetes_core_from} (for its kubernetes.core) failed (log {logfile}):\n{tail(logfile)}")
    shutil.rmtree(leg.collections, ignore_errors=True)
    prefix = "ansible_collections/kubernetes/core/"
    with zipfile.ZipFile(wheel) as archive:
        for member in archive.namelist():
            if member.startswith(prefix) and not member.endswith("/"):
                archive.extract(member, leg.collections)
    found = overlay_version(leg)
    if found != leg.kubernetes_core:
        raise RuntimeError(f"{leg.kubernetes_core_from} carries kubernetes.core {found}, not {leg.kubernetes_core} (tests/matrix/legs.toml)")


def leg_versions(leg: Leg, venv: Path) -> dict:
    script = (
        "import json, importlib.metadata as m, ansible_collections, os\n"
        "found = [os.path.join(p, 'kubernetes', 'core', 'MANIFEST.json') for p in ansible_collections.__path__]\n"
        "manifest = json.load(open(next(f for f in found if os.path.exists(f))))\n"
        "print(json.dumps({'ansible': m.version('ansible'), 'ansible-core': m.version('ansible-core'),"
        " 'kubernetes.core': manifest['collection_info']['version'], 'python': '%d.%d.%d' % __import__('sys').version_info[:3]}))\n"
    )
    out = subprocess.run([str(venv / "bin" / "python"), "-c", script], capture_output=True, text=True, check=True, cwd="/")
    versions = json.loads(out.stdout)
    versions["bundled kubernetes.core"] = versions.pop("kubernetes.core")
    versions["kubernetes.core"] = overlay_version(leg) or "-"
    return versions


# -- steps ---------------------------------------------------------------------------------------------
def collections_path(leg: Leg) -> str:
    """This collection (staged), then the leg's kubernetes.core, then (scanned from sys.path) what the venv bundles."""
    return os.pathsep.join([str(COLLECTIONS), str(leg.collections)])


def leg_env(leg: Leg, venv: Path) -> dict:
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(venv / "bin"), env.get("PATH", "")])
    env["VIRTUAL_ENV"] = str(venv)
    env["ANSIBLE_COLLECTIONS_PATH"] = collections_path(leg)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env.pop("PYTHONPATH", None)
    return env


def step_sanity(leg: Leg, venv: Path, logfile: Path) -> int:
    """ansible-test sanity of the leg's ansible-core on a copy of the tree that is a git repository of its own."""
    env = leg_env(leg, venv)
    root = BUILD / leg.core / "sanity" / "ansible_collections" / "machinenativeops" / "platform"
    root.mkdir(parents=True, exist_ok=True)
    steps = [
        ([str(venv / "bin" / "python"), str(ROOT / "tools" / "ansible_test_offline_bootstrap.py")], ROOT),
        # /.git and /.venv: in a git worktree .git is a file naming the checkout's repository, and .venv may be a symlink
        (["rsync", "-a", "--delete", "--exclude=/.git", "--exclude=/.venv", f"--exclude-from={ROOT / '.sanity-exclude'}", f"{ROOT}/", f"{root}/"],
         ROOT),
    ]
    for stale in (root / ".git", root / ".venv"):
        if stale.is_symlink() or stale.is_file():
            stale.unlink()
    for cmd, cwd in steps:
        rc = run_logged(cmd, logfile, env=env, cwd=cwd)
        if rc:
            return rc
    if not (root / ".git").is_dir() and run_logged(["git", "init", "-q"], logfile, env=env, cwd=root):
        return 1
    return run_logged([str(venv / "bin" / "ansible-test"), "sanity", "--python", leg.python, "--color", "no"], logfile, env=env, cwd=root)


def step_unit(leg: Leg, venv: Path, logfile: Path) -> int:
    return run_logged([str(venv / "bin" / "python"), "-m", "pytest", "-p", "no:cacheprovider", "-q", "tests/unit"], logfile, env=leg_env(leg, venv))


def step_smoke(leg: Leg, venv: Path, logfile: Path) -> int:
    """The lab and pytest come from the project's virtualenv; every playbook runs through the leg's ansible-playbook."""
    if not PROJECT_PYTHON.exists():
        with logfile.open("a") as out:
            out.write(f"{PROJECT_PYTHON} is missing: run `make venv` first (the lab runs from the project's virtualenv)\n")
        return 1
    env = dict(os.environ)
    env.update({"MATRIX_ANSIBLE_BIN": str(venv / "bin"), "MATRIX_ANSIBLE_CORE": leg.core, "MATRIX_COLLECTIONS_PATH": collections_path(leg),
                "MATRIX_KUBERNETES_CORE": leg.kubernetes_core})
    if not os.environ.get("MATRIX_LAB_DIR"):
        env.pop("LAB_DIR", None)   # a lab of its own, started and stopped by the session fixture
    else:
        env["LAB_DIR"] = os.environ["MATRIX_LAB_DIR"]
    return run_logged([str(PROJECT_PYTHON), "-m", "pytest", "-p", "no:cacheprovider", "-q", "tests/matrix"], logfile, env=env)


STEP_FUNCS = {"sanity": step_sanity, "unit": step_unit, "smoke": step_smoke}


def run_leg(leg: Leg, steps: list[str], *, lock: bool) -> Result:
    result = Result(leg)
    start = time.monotonic()
    try:
        result.python_path = find_python(leg.python)
        log(f"{leg.core}: Python {leg.python} is {result.python_path}")
        state, venv = build_venv(leg, result.python_path, lock=lock)
        result.venv = f"{state} {time.monotonic() - start:.0f}s"
        result.versions = leg_versions(leg, venv)
        log(f"{leg.core}: virtualenv {state} in {time.monotonic() - start:.0f}s: {result.versions}")
    except (LookupError, FileNotFoundError, RuntimeError, subprocess.CalledProcessError) as exc:
        result.venv = "FAIL"
        result.message = str(exc)
        log(f"{leg.core}: FAILED before any step: {exc}")
        return result
    for step in steps:
        logfile = BUILD / leg.core / f"{step}.log"
        logfile.write_text("")
        log(f"{leg.core}: {step} ... (log {logfile})")
        t0 = time.monotonic()
        rc = STEP_FUNCS[step](leg, venv, logfile)
        seconds = time.monotonic() - t0
        result.steps[step] = ("ok" if rc == 0 else "FAIL", seconds)
        log(f"{leg.core}: {step} {'ok' if rc == 0 else f'FAILED (exit {rc})'} in {seconds:.0f}s")
        if rc:
            print(tail(logfile), flush=True)
    return result


def table(results: list[Result], steps: list[str], wall: float) -> str:
    head = ["leg", "python", "ansible", "ansible-core", "kubernetes.core", "venv", *steps, "total"]
    rows = []
    for r in results:
        cells = [r.leg.core, r.versions.get("python", r.leg.python), r.versions.get("ansible", f"{r.leg.ansible}.x"),
                 r.versions.get("ansible-core", "-"), r.versions.get("kubernetes.core", r.leg.kubernetes_core), r.venv]
        total = 0.0
        for step in steps:
            if step in r.steps:
                status, seconds = r.steps[step]
                total += seconds
                cells.append(f"{status} {seconds:.0f}s")
            else:
                cells.append("-")
        cells.append(f"{total:.0f}s" + ("  FAILED" if r.failed else ""))
        rows.append(cells)
    widths = [max(len(str(row[i])) for row in [head, *rows]) for i in range(len(head))]
    lines = [" | ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)) for row in [head, *rows]]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    lines.append(f"wall time {wall:.0f}s; logs under {BUILD}/<leg>/")
    for r in results:
        if r.message:
            lines.append(f"{r.leg.core}: {r.message}")
    return "\n".join(lines)


def parse_legs(text: str) -> list[str]:
    legs = text.replace(",", " ").split()
    unknown = [leg for leg in legs if leg not in LEGS]
    if unknown:
        raise SystemExit(f"unknown leg(s) {', '.join(unknown)}: choose from {' '.join(LEGS)}")
    return legs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--legs", default=" ".join(LEGS), help="ansible-core minors to run (default: all)")
    parser.add_argument("--steps", default=",".join(STEPS), help="comma-separated subset of sanity,unit,smoke")
    parser.add_argument("--smoke-legs", default=f"{min(LEGS, key=lambda v: tuple(map(int, v.split('.'))))} "
                                                f"{max(LEGS, key=lambda v: tuple(map(int, v.split('.'))))}",
                        help="legs that run the lab smoke (default: the oldest and the newest)")
    parser.add_argument("--lock", action="store_true", help="resolve without constraints and rewrite tests/matrix/constraints-<leg>.txt")
    opts = parser.parse_args(argv)
    legs = parse_legs(opts.legs)
    smoke_legs = set(parse_legs(opts.smoke_legs))
    steps = [s for s in opts.steps.replace(" ", "").split(",") if s]
    bad = [s for s in steps if s not in STEPS]
    if bad:
        raise SystemExit(f"unknown step(s) {', '.join(bad)}: choose from {','.join(STEPS)}")
    if opts.lock:
        steps = []
    BUILD.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    results = []
    for core in legs:
        leg_steps = [s for s in steps if s != "smoke" or core in smoke_legs]
        results.append(run_leg(LEGS[core], leg_steps, lock=opts.lock))
    shown = [s for s in STEPS if any(s in r.steps for r in results)]
    print("\n" + table(results, shown, time.monotonic() - start), flush=True)
    return 1 if any(r.failed for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
