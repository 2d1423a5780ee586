"""The ``apiserver`` lab service: the emulator as a background process."""

from __future__ import annotations

import json
import secrets
import time

from lab.services import LabContext, LabError, Service, free_port


class ApiServerService(Service):
    name = "apiserver"
    load_crds = "all"

    def start(self, ctx: LabContext) -> dict:
        data = ctx.data_dir("apiserver")
        info_file = data / "apiserver.json"
        info_file.unlink(missing_ok=True)
        port, tls_port = free_port(), free_port()
        kubeconfig = ctx.dir / "kubeconfig"
        argv = [ctx.python, "-m", "lab", "apiserver", "--port", str(port), "--tls-port", str(tls_port), "--dir", str(data),
                "--kubeconfig", str(kubeconfig), "--token", secrets.token_hex(16), "--readonly-token", "ro-" + secrets.token_hex(16)]
        if self.load_crds:
            argv += ["--load-crds", self.load_crds]
        proc = ctx.spawn(self.name, argv)
        ctx.wait_http(f"http://127.0.0.1:{port}/healthz", self.name, timeout=30, proc=proc)
        deadline = time.monotonic() + 30
        while not info_file.exists():
            if proc.poll() is not None:
                raise LabError(f"apiserver exited with code {proc.returncode}:\n{ctx.log_tail(self.name)}")
            if time.monotonic() > deadline:
                raise LabError(f"apiserver did not write {info_file}:\n{ctx.log_tail(self.name)}")
            time.sleep(0.05)
        return json.loads(info_file.read_text())

    def healthy(self, ctx: LabContext) -> bool:
        return ctx.running(self.name)
