"""The ``controllers`` lab service: ``python -m lab controllers`` as a background process."""

from __future__ import annotations

import json
import time

from lab.services import LabContext, LabError, Service

# The simulated controllers that still run next to a real control plane: Velero's server (no data mover here).
REAL_CLUSTER_SIMULATORS = ("velero",)


class ControllersService(Service):
    name = "controllers"

    def start(self, ctx: LabContext) -> dict:
        api = ctx.endpoints.get("apiserver")
        if not api:
            raise LabError("controllers need the apiserver service (start it too, or drop controllers with --without controllers)")
        data = ctx.data_dir("controllers")
        admin_file = data / "admin.json"
        admin_file.unlink(missing_ok=True)
        argv = [ctx.python, "-m", "lab", "controllers", "--kubeconfig", api["kubeconfig"], "--admin-file", str(admin_file)]
        if api.get("kind") == "real":
            # On the real control plane, kube-controller-manager runs the workload controllers and KWOK the kubelets:
            # only what cannot run here stays simulated.
            argv += ["--enable", ",".join(REAL_CLUSTER_SIMULATORS)]
        s3 = ctx.endpoints.get("s3")
        if s3:
            s3_file = data / "s3.json"
            s3_file.write_text(json.dumps(s3))
            s3_file.chmod(0o600)
            argv += ["--s3", str(s3_file), "--default-bsl"]
        proc = ctx.spawn(self.name, argv)
        try:
            return self._wait(ctx, proc, admin_file)
        except BaseException:
            ctx.stop_pid(self.name)  # never leave a half-started process behind
            raise

    def _wait(self, ctx: LabContext, proc, admin_file) -> dict:
        deadline = time.monotonic() + 60
        while not admin_file.exists():
            if proc.poll() is not None:
                raise LabError(f"controllers exited with code {proc.returncode} while starting:\n{ctx.log_tail(self.name)}")
            if time.monotonic() > deadline:
                raise LabError(f"controllers did not start within 60s:\n{ctx.log_tail(self.name)}")
            time.sleep(0.05)
        info = json.loads(admin_file.read_text())
        ctx.wait_http(info["admin_url"] + "/status", self.name, timeout=30, proc=proc)
        return info
