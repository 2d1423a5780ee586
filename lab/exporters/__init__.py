"""Metrics exporters of the lab: Istio traffic, cAdvisor and kube-state-metrics series from the emulated cluster.

``lab.exporters.model`` generates the series, ``lab.exporters.cluster`` reads the cluster
with the official kubernetes client, ``lab.exporters.main`` serves them over HTTP and
``lab.exporters.service`` is the ``exporters`` lab service.
"""
