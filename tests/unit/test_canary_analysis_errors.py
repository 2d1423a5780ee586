"""Canary analysis: several series from a query is a configuration error; the traffic query is configurable."""

import pytest
from ansible_collections.machinenativeops.platform.plugins.module_utils import canary as c
from ansible_collections.machinenativeops.platform.plugins.module_utils.prometheus import (
    PrometheusError,
    QueryResult,
    is_query_error,
)

NOW = 1767225600.0


def opts(**analysis):
    return c.options_from_params({"namespace": "shop", "stable": {"host": "r", "subset": "stable"},
                                  "canary": {"host": "r", "subset": "canary"}, "canary_workload": "r-canary",
                                  "stable_workload": "r", "analysis": analysis})


def vector(*label_sets):
    """A Prometheus instant-vector answer (the JSON ``data`` Prometheus returns), parsed by the real QueryResult."""
    return QueryResult.from_data("q", {"resultType": "vector",
                                       "result": [{"metric": labels, "value": [NOW, "1"]} for labels in label_sets]})


def test_several_series_is_a_configuration_error_naming_query_and_labels():
    o = opts(metrics=[{"name": "cpu", "query": 'rate(cpu{pod=~"$canary_workload.*"}[$interval])', "max": 2}])
    answers = {m["query"]: vector({}) for m in c.build_metrics(o)}
    custom = next(m for m in c.build_metrics(o) if m["name"] == "cpu")
    answers[custom["query"]] = vector({"pod": "r-canary-1"}, {"pod": "r-canary-2"})

    def query(promql):
        result = answers[promql]
        result.query = promql
        return result.scalar()

    with pytest.raises(c.CanaryError) as info:
        c.run_analysis(c.build_metrics(o), query, o, NOW, unavailable_errors=(PrometheusError,), config_error=is_query_error)
    message = str(info.value)
    assert "metric cpu: configuration error" in message
    assert 'rate(cpu{pod=~"r-canary.*"}[1m])' in message
    assert "pod='r-canary-1'" in message and "pod='r-canary-2'" in message
    assert "unreachable" not in message


def test_an_outage_is_still_unavailable():
    o = opts()

    def query(promql):
        raise PrometheusError(promql, "http://prom", "connection refused")

    out = c.run_analysis(c.build_metrics(o), query, o, NOW, unavailable_errors=(PrometheusError,), config_error=is_query_error)
    assert out["verdict"] == "unavailable"


def test_request_count_query_is_configurable():
    o = opts(request_count_query='sum(increase(http_requests_total{deployment="$canary_workload"}[$interval]))',
             builtin_metrics=[])
    metrics = c.build_metrics(o)
    assert metrics[0]["name"] == "request_count"
    assert metrics[0]["query"] == 'sum(increase(http_requests_total{deployment="r-canary"}[1m]))'
    out = c.run_analysis(metrics, lambda q: 5.0, o, NOW)
    assert out["verdict"] == "inconclusive" and "not enough traffic: 5 canary requests" in out["reasons"][0]
    assert c.run_analysis(metrics, lambda q: 500.0, o, NOW)["verdict"] == "passed"
