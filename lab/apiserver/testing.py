"""Start an emulator inside the current process (for fast tests and benchmarks)."""

from __future__ import annotations

import contextlib
from pathlib import Path

from lab.apiserver import load_crds as _load_crds
from lab.apiserver.server import ApiServer
from lab.apiserver.store import Store


@contextlib.contextmanager
def running_apiserver(directory: Path | str, load_crds: bool = True, tls: bool = True, history: int = 50000):
    """Yield a started ApiServer whose kubeconfig is ``directory/kubeconfig``; stop it afterwards."""
    directory = Path(directory)
    api = ApiServer(tls_port=0 if tls else None, data_dir=directory, store=Store(history=history))
    api.start()
    try:
        api.kubeconfig = api.write_kubeconfig(directory / "kubeconfig")
        if load_crds:
            _load_crds(api.url)
        yield api
    finally:
        api.stop()
