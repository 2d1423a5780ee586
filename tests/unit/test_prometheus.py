"""prometheus.py against a real Prometheus (conftest.prometheus_url) and a real misbehaving HTTP server."""

import base64
import json
import math
import shutil
import socket
import ssl
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from ansible_collections.machinenativeops.platform.plugins.module_utils.prometheus import (
    PROMETHEUS_ARG_SPEC,
    PrometheusClient,
    PrometheusError,
    QueryResult,
)

# --- a real Prometheus ------------------------------------------------------------------------------


def test_instant_query_vector(prometheus_url):
    result = PrometheusClient(prometheus_url).query('test_value{case="five"}')
    assert result.result_type == "vector"
    assert not result.is_empty
    assert result.scalar() == 5.0
    assert result.series[0].labels["case"] == "five"
    assert result.series[0].labels["job"] == "unit"


def test_empty_zero_and_nan_are_distinct(prometheus_url):
    client = PrometheusClient(prometheus_url)
    empty = client.query('test_value{case="absent"}')
    zero = client.query('test_value{case="zero"}')
    nan = client.query('test_value{case="nan"}')
    assert empty.is_empty and empty.scalar() is None
    assert not zero.is_empty and zero.scalar() == 0.0
    assert not nan.is_empty and math.isnan(nan.scalar())
    assert nan.series[0].is_nan and not zero.series[0].is_nan
    assert client.request_count == 3


def test_scalar_result_type(prometheus_url):
    result = PrometheusClient(prometheus_url).query("scalar(sum(test_value{case=~\"five|zero\"}))")
    assert result.result_type == "scalar"
    assert result.scalar() == 5.0


def test_scalar_refuses_several_series(prometheus_url):
    result = PrometheusClient(prometheus_url).query("test_value")
    assert len(result.series) == 3
    with pytest.raises(PrometheusError) as info:
        result.scalar()
    assert "expected one series, got 3" in str(info.value)
    assert "'test_value'" in str(info.value)


def test_range_query(prometheus_url):
    client = PrometheusClient(prometheus_url)
    end = time.time()
    result = client.query_range('test_value{case="five"}', end - 30, end, "1s")
    assert result.result_type == "matrix"
    (series,) = result.series
    assert len(series.values) >= 2
    assert all(value == 5.0 for _ts, value in series.values)
    assert series.values == sorted(series.values)
    assert series.value == 5.0


def test_range_query_with_datetimes_and_numeric_step(prometheus_url):
    import datetime  # noqa: PLC0415

    end = datetime.datetime.now(datetime.UTC)
    result = PrometheusClient(prometheus_url).query_range('test_value{case="nan"}', end - datetime.timedelta(seconds=20), end, 2)
    assert result.series and all(math.isnan(value) for _ts, value in result.series[0].values)


def test_bad_promql_is_not_retried_and_says_why(prometheus_url):
    client = PrometheusClient(prometheus_url, retries=3, backoff=0.01)
    with pytest.raises(PrometheusError) as info:
        client.query("sum(rate(test_value[5m]")
    error = info.value
    assert error.status == 400
    assert error.error_type == "bad_data"
    assert error.query == "sum(rate(test_value[5m]"
    assert "parse error" in error.reason
    assert str(error).startswith(f"Prometheus query 'sum(rate(test_value[5m]' to {prometheus_url}/api/v1/query failed: 400 bad_data:")
    assert client.request_count == 1


def test_alerts(prometheus_url):
    alerts = PrometheusClient(prometheus_url).alerts()
    firing = [a for a in alerts if a["labels"]["alertname"] == "UnitValueHigh"]
    assert firing and firing[0]["state"] == "firing"
    assert firing[0]["annotations"]["summary"] == "test value is high"


def test_rules(prometheus_url):
    groups = PrometheusClient(prometheus_url).rules()
    assert [g["name"] for g in groups] == ["unit"]
    kinds = {rule["name"]: rule["type"] for rule in groups[0]["rules"]}
    assert kinds == {"unit:test_value:sum": "recording", "UnitValueHigh": "alerting"}


def test_from_params_and_env(prometheus_url, monkeypatch):
    monkeypatch.setenv("PROMETHEUS_URL", prometheus_url)
    client = PrometheusClient.from_params({"prometheus_url": None, "prometheus_timeout": 5.0, "prometheus_retries": 0})
    assert client.url == prometheus_url and client.timeout == 5.0 and client.retries == 0
    assert client.query("vector(1)").scalar() == 1.0


def test_no_url_is_an_error(monkeypatch):
    monkeypatch.delenv("PROMETHEUS_URL", raising=False)
    with pytest.raises(PrometheusError) as info:
        PrometheusClient.from_params({})
    assert "prometheus_url" in str(info.value)


def test_arg_spec_defaults_and_secrets():
    assert PROMETHEUS_ARG_SPEC["prometheus_timeout"]["default"] == 10.0
    assert PROMETHEUS_ARG_SPEC["prometheus_retries"]["default"] == 3
    assert PROMETHEUS_ARG_SPEC["prometheus_validate_certs"]["default"] is True
    assert PROMETHEUS_ARG_SPEC["prometheus_token"]["no_log"] and PROMETHEUS_ARG_SPEC["prometheus_password"]["no_log"]


def test_query_result_parsing_keeps_infinities():
    data = {"resultType": "vector", "result": [{"metric": {"a": "1"}, "value": [1700000000.5, "+Inf"]}]}
    result = QueryResult.from_data("q", data)
    assert math.isinf(result.scalar()) and result.series[0].to_dict()["value"] is None
    assert result.series[0].to_dict()["value_str"] == "inf"


# --- a real misbehaving server -----------------------------------------------------------------------


class FaultServer:
    """/fail answers 500, /flaky answers 503 ``flaky_failures`` times then success, /hang sleeps,
    /unprocessable answers 422, /echo answers success; every request is recorded."""

    def __init__(self, tls_files=None):
        self.requests = []
        self.flaky_failures = 2
        self.release = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _reply(self, code, payload):
                data = json.dumps(payload).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _handle(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length).decode() if length else ""
                prefix = self.path.split("/")[1]
                server.requests.append({"path": self.path, "prefix": prefix, "headers": {k.lower(): v for k, v in self.headers.items()},
                                        "body": body})
                success = {"status": "success", "data": {"resultType": "vector", "result": []}}
                if prefix == "fail":
                    return self._reply(500, {"status": "error", "errorType": "internal", "error": "storage is on fire"})
                if prefix == "flaky":
                    if len([r for r in server.requests if r["prefix"] == "flaky"]) <= server.flaky_failures:
                        return self._reply(503, {"status": "error", "errorType": "unavailable", "error": "warming up"})
                    return self._reply(200, success)
                if prefix == "hang":
                    server.release.wait(5)
                    return self._reply(200, success)
                if prefix == "unprocessable":
                    return self._reply(422, {"status": "error", "errorType": "execution", "error": "query processing would load too many samples"})
                return self._reply(200, success)

            do_GET = do_POST = _handle

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        scheme = "http"
        if tls_files:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*tls_files)
            self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
            scheme = "https"
        self.url = f"{scheme}://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def count(self, prefix):
        return len([r for r in self.requests if r["prefix"] == prefix])

    def close(self):
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def faults():
    server = FaultServer()
    yield server
    server.close()


def test_5xx_is_retried_then_reported(faults):
    client = PrometheusClient(faults.url + "/fail", retries=2, backoff=0.01)
    with pytest.raises(PrometheusError) as info:
        client.query("up")
    assert faults.count("fail") == 3 and client.request_count == 3
    assert info.value.status == 500
    assert str(info.value) == f"Prometheus query 'up' to {faults.url}/fail/api/v1/query failed: 500 internal: storage is on fire (after 3 attempts)"


def test_5xx_then_success_recovers(faults):
    client = PrometheusClient(faults.url + "/flaky", retries=3, backoff=0.01)
    assert client.query("up").is_empty
    assert faults.count("flaky") == 3


def test_4xx_is_not_retried(faults):
    client = PrometheusClient(faults.url + "/unprocessable", retries=3, backoff=0.01)
    with pytest.raises(PrometheusError) as info:
        client.query("count(up[30d])")
    assert faults.count("unprocessable") == 1
    assert info.value.status == 422 and "too many samples" in str(info.value)


def test_timeout(faults):
    client = PrometheusClient(faults.url + "/hang", timeout=0.3, retries=1, backoff=0.01)
    with pytest.raises(PrometheusError) as info:
        client.query("up")
    assert "timed out after 0.3s" in str(info.value)
    assert client.request_count == 2


def test_connection_refused():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = PrometheusClient(f"http://127.0.0.1:{port}", retries=1, backoff=0.01)
    with pytest.raises(PrometheusError) as info:
        client.query('rate(http_requests_total{job="api"}[5m])')
    assert "cannot connect" in str(info.value) and "Connection refused" in str(info.value)
    assert "rate(http_requests_total" in str(info.value)
    assert client.request_count == 2


def test_bearer_token_and_custom_headers(faults):
    PrometheusClient(faults.url + "/echo", token="tok-123", headers={"X-Scope-OrgID": "tenant-a"}).query("up")
    headers = faults.requests[-1]["headers"]
    assert headers["authorization"] == "Bearer tok-123"
    assert headers["x-scope-orgid"] == "tenant-a"
    assert "query=up" in faults.requests[-1]["body"]


def test_basic_auth(faults):
    PrometheusClient(faults.url + "/echo", username="prom", password="pw:1").alerts()
    assert faults.requests[-1]["headers"]["authorization"] == "Basic " + base64.b64encode(b"prom:pw:1").decode()


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory):
    if not shutil.which("openssl"):
        pytest.skip("openssl is not installed")
    directory = tmp_path_factory.mktemp("tls")
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    return str(cert), str(key)


def test_tls_verification(tls_files):
    server = FaultServer(tls_files=tls_files)
    try:
        with pytest.raises(PrometheusError) as info:
            PrometheusClient(server.url + "/echo", retries=0).query("up")
        assert "CERTIFICATE_VERIFY_FAILED" in str(info.value)
        assert PrometheusClient(server.url + "/echo", validate_certs=False).query("up").is_empty
        assert PrometheusClient(server.url + "/echo", ca_cert=tls_files[0]).query("up").is_empty
    finally:
        server.close()


def test_url_credentials_never_in_errors():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(PrometheusError) as info:
        PrometheusClient(f"http://admin:hunter2@127.0.0.1:{port}", retries=0).query("up")
    assert "hunter2" not in str(info.value) and "admin" not in str(info.value)
    assert f"to http://127.0.0.1:{port}/api/v1/query failed: cannot connect" in str(info.value)


def test_url_credentials_become_basic_auth(faults):
    client = PrometheusClient(faults.url.replace("http://", "http://prom:s%40cret@") + "/echo")
    assert "s%40cret" not in client.url and "prom" not in client.url
    client.query("up")
    assert faults.requests[-1]["headers"]["authorization"] == "Basic " + base64.b64encode(b"prom:s@cret").decode()
