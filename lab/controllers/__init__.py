"""Simulated Kubernetes controllers of the lab.

They talk to the API emulator only over HTTP through the official ``kubernetes``
client, like real controllers: Deployments/ReplicaSets/Pods, StatefulSets,
DaemonSets, Nodes, Jobs, CronJobs, faults, and Velero backups/restores/schedules
that write Velero's real object layout to S3.

In-process use::

    from lab.controllers.core import Controllers
    from lab.controllers.clock import Clock
    ctl = Controllers(kubeconfig, Clock.manual("2026-01-01T00:00:00Z"))
    ctl.reconcile_once()
    ctl.advance(30)

Out of process (``python -m lab controllers``), the admin API is described in
``lab.controllers.admin`` and driven by ``lab.controllers.client.ControllersAdmin``.
"""
