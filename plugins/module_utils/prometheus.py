# -*- coding: utf-8 -*-
# Copyright: (c) 2026, machinenativeops platform team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A small client for the Prometheus HTTP API (standard library only).

``PROMETHEUS_ARG_SPEC`` holds the connection options (documented by the ``prometheus`` doc fragment);
``PrometheusClient.from_params(module.params)`` builds a client from them.  Query results keep the
difference between "no data" (``QueryResult.is_empty``, ``scalar() is None``), 0 and NaN.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import datetime
import json
import math
import os
import socket
import ssl
import time as _time
import urllib.error
import urllib.parse
import urllib.request

try:
    from ansible.module_utils.common.parameters import env_fallback
except ImportError:  # used outside Ansible
    def env_fallback(*args, **kwargs):
        for name in args:
            if name in os.environ:
                return os.environ[name]
        raise ValueError('none of %s is set' % ', '.join(args))

PROMETHEUS_ARG_SPEC = dict(
    prometheus_url=dict(type='str', fallback=(env_fallback, ['PROMETHEUS_URL'])),
    prometheus_token=dict(type='str', no_log=True),
    prometheus_username=dict(type='str'),
    prometheus_password=dict(type='str', no_log=True),
    prometheus_headers=dict(type='dict'),
    prometheus_validate_certs=dict(type='bool', default=True),
    prometheus_ca_cert=dict(type='path'),
    prometheus_timeout=dict(type='float', default=10.0),
    prometheus_retries=dict(type='int', default=3),
)

_USER_AGENT = 'machinenativeops.platform-prometheus-client'


class PrometheusError(Exception):
    """A failed Prometheus API call; ``str()`` says which query failed and why."""

    def __init__(self, query, url, reason, status=None, error_type=None):
        self.query = query
        self.url = url
        self.reason = reason
        self.status = status
        self.error_type = error_type
        super(PrometheusError, self).__init__(self.message)

    @property
    def message(self):
        what = 'Prometheus query %r' % self.query if self.query is not None else 'Prometheus request'
        where = ' to %s' % self.url if self.url else ''
        status = '%s ' % self.status if self.status else ''
        kind = '%s: ' % self.error_type if self.error_type else ''
        return '%s%s failed: %s%s%s' % (what, where, status, kind, self.reason)

    def __str__(self):
        return self.message


def _to_float(value):
    """Prometheus sample values are strings ("1.5", "NaN", "+Inf"); keep NaN and infinities."""
    if value is None:
        return None
    return float(value)


class PrometheusResultError(PrometheusError):
    """A query Prometheus answered, but with a result of the wrong shape (several series where one is expected):
    the query's fault, not Prometheus'. ``labels`` holds the label sets of the series."""

    def __init__(self, query, reason, labels=()):
        self.labels = [dict(item) for item in labels]
        super(PrometheusResultError, self).__init__(query, None, reason)


def is_query_error(exc):
    """Whether a PrometheusError is the query's fault (rejected as bad, or a result of the wrong shape), not an outage."""
    return isinstance(exc, PrometheusResultError) or getattr(exc, 'status', None) in (400, 422)


class Series:
    """One time series of a result: ``labels``; ``value`` (instant value, or the last value of a range);
    ``values`` (list of ``(timestamp, value)`` for range queries, one pair for instant queries)."""

    def __init__(self, labels, values):
        self.labels = dict(labels or {})
        self.values = list(values)

    @property
    def value(self):
        return self.values[-1][1] if self.values else None

    @property
    def is_nan(self):
        value = self.value
        return value is not None and math.isnan(value)

    def to_dict(self):
        value = self.value
        return dict(labels=self.labels, value=None if value is None or math.isnan(value) or math.isinf(value) else value,
                    value_str=None if value is None else repr(value), samples=len(self.values))

    def __repr__(self):
        return 'Series(labels=%r, values=%r)' % (self.labels, self.values)


class QueryResult:
    """The ``data`` of a query: ``result_type`` (vector, matrix, scalar, string) and ``series``."""

    def __init__(self, query, result_type, series, string_value=None, warnings=None):
        self.query = query
        self.result_type = result_type
        self.series = series
        self.string_value = string_value
        self.warnings = list(warnings or [])

    @classmethod
    def from_data(cls, query, data, warnings=None):
        result_type = data.get('resultType')
        result = data.get('result')
        if result_type == 'scalar':
            return cls(query, result_type, [Series({}, [(float(result[0]), _to_float(result[1]))])], warnings=warnings)
        if result_type == 'string':
            return cls(query, result_type, [], string_value=result[1], warnings=warnings)
        series = []
        for item in result or []:
            if 'values' in item:
                samples = [(float(ts), _to_float(v)) for ts, v in item['values']]
            elif 'value' in item:
                samples = [(float(item['value'][0]), _to_float(item['value'][1]))]
            else:
                samples = []
            series.append(Series(item.get('metric'), samples))
        return cls(query, result_type, series, warnings=warnings)

    @property
    def is_empty(self):
        """True when Prometheus returned no series at all ("no data")."""
        if self.result_type == 'string':
            return self.string_value is None
        return not self.series

    def scalar(self):
        """The single value of the result: None when empty, NaN when Prometheus returned NaN.

        Raises ``PrometheusError`` when the result holds more than one series.
        """
        if self.is_empty:
            return None
        if len(self.series) > 1:
            labels = [series.labels for series in self.series]
            shown = ', '.join('{%s}' % ','.join('%s=%r' % kv for kv in sorted(item.items())) for item in labels[:5])
            raise PrometheusResultError(self.query, 'expected one series, got %d: %s%s (aggregate the query, e.g. with sum())'
                                        % (len(self.series), shown, ', ...' if len(labels) > 5 else ''), labels)
        return self.series[0].value

    def __repr__(self):
        return 'QueryResult(result_type=%r, series=%r)' % (self.result_type, self.series)


def _timestamp(value):
    """Unix seconds from a datetime (naive means UTC), a number, or a string Prometheus understands."""
    if isinstance(value, datetime.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=datetime.timezone.utc)
        return '%.3f' % value.timestamp()
    if isinstance(value, (int, float)):
        return '%.3f' % value
    return str(value)


def _duration(value):
    if isinstance(value, datetime.timedelta):
        value = value.total_seconds()
    if isinstance(value, (int, float)):
        return '%g' % value
    return str(value)


class PrometheusClient:
    """Prometheus HTTP API client with timeout, retries (exponential backoff) and auth options."""

    def __init__(self, url, token=None, username=None, password=None, headers=None, validate_certs=True,  # noqa: PLR0917
                 ca_cert=None, timeout=10.0, retries=3, backoff=0.5):
        if not url:
            raise PrometheusError(None, None, 'no Prometheus URL given (prometheus_url or PROMETHEUS_URL)')
        parts = urllib.parse.urlsplit(url)
        if '@' in parts.netloc:
            # credentials in the URL become basic auth (unless given explicitly) and leave the URL
            userinfo, host = parts.netloc.rsplit('@', 1)
            user, _sep, secret = userinfo.partition(':')
            if username is None and password is None:
                username, password = urllib.parse.unquote(user), urllib.parse.unquote(secret)
            url = urllib.parse.urlunsplit(parts._replace(netloc=host))
        self.url = url.rstrip('/')
        self.timeout = float(timeout)
        self.retries = max(0, int(retries))
        self.backoff = float(backoff)
        self.request_count = 0
        self.last_warnings = []
        self._headers = {'Accept': 'application/json', 'User-Agent': _USER_AGENT}
        if token:
            self._headers['Authorization'] = 'Bearer %s' % token
        elif username is not None and password is not None:
            credentials = base64.b64encode(('%s:%s' % (username, password)).encode('utf-8')).decode('ascii')
            self._headers['Authorization'] = 'Basic %s' % credentials
        for key, value in (headers or {}).items():
            self._headers[str(key)] = str(value)
        handlers = []
        if self.url.startswith('https://'):
            context = ssl.create_default_context(cafile=ca_cert) if ca_cert else ssl.create_default_context()
            if not validate_certs:
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
            handlers.append(urllib.request.HTTPSHandler(context=context))
        self._opener = urllib.request.build_opener(*handlers)

    @classmethod
    def from_params(cls, params, **kwargs):
        """A client from module params (the ``PROMETHEUS_ARG_SPEC`` options)."""
        def param(name, default=None):
            value = params.get(name)
            return default if value is None else value

        return cls(
            param('prometheus_url', os.environ.get('PROMETHEUS_URL')),
            token=param('prometheus_token'),
            username=param('prometheus_username'),
            password=param('prometheus_password'),
            headers=param('prometheus_headers'),
            validate_certs=param('prometheus_validate_certs', True),
            ca_cert=param('prometheus_ca_cert'),
            timeout=param('prometheus_timeout', 10.0),
            retries=param('prometheus_retries', 3),
            **kwargs
        )

    def _open(self, url, data):
        request = urllib.request.Request(url, data=data, headers=self._headers, method='POST' if data is not None else 'GET')
        if data is not None:
            request.add_header('Content-Type', 'application/x-www-form-urlencoded')
        self.request_count += 1
        with self._opener.open(request, timeout=self.timeout) as response:
            return response.status, response.read()

    @staticmethod
    def _api_error(body):
        """(errorType, error) from a Prometheus JSON error body, else (None, short text)."""
        try:
            payload = json.loads(body.decode('utf-8', 'replace'))
        except ValueError:
            text = body.decode('utf-8', 'replace').strip()
            return None, text[:300] or None
        if isinstance(payload, dict):
            return payload.get('errorType'), payload.get('error')
        return None, None

    def _call(self, path, params=None, query=None, post=False):
        """GET (or POST a form to) ``path`` and return the ``data`` member of the JSON answer."""
        encoded = urllib.parse.urlencode(params or {})
        url = self.url + path
        if post:
            data = encoded.encode('ascii')
        else:
            data = None
            if encoded:
                url = '%s?%s' % (url, encoded)
        endpoint = self.url + path
        attempt = 0
        while True:
            retryable = None
            try:
                _status, body = self._open(url, data)
            except urllib.error.HTTPError as exc:
                body = exc.read() if hasattr(exc, 'read') else b''
                error_type, message = self._api_error(body or b'')
                reason = message or exc.reason or 'HTTP error'
                error = PrometheusError(query, endpoint, reason, status=exc.code, error_type=error_type)
                if exc.code < 500:
                    raise error from None
                retryable = error
            except (urllib.error.URLError, socket.timeout, TimeoutError, ConnectionError, OSError) as exc:
                reason = getattr(exc, 'reason', None) or exc
                if isinstance(reason, (socket.timeout, TimeoutError)) or 'timed out' in str(reason):
                    text = 'timed out after %gs' % self.timeout
                else:
                    text = 'cannot connect: %s' % reason
                retryable = PrometheusError(query, endpoint, text)
            if retryable is not None:
                if attempt >= self.retries:
                    if attempt:
                        retryable.reason = '%s (after %d attempts)' % (retryable.reason, attempt + 1)
                    raise retryable
                _time.sleep(self.backoff * (2 ** attempt))
                attempt += 1
                continue
            try:
                payload = json.loads(body.decode('utf-8'))
            except ValueError:
                raise PrometheusError(query, endpoint, 'the answer is not JSON: %r' % body[:200]) from None
            if payload.get('status') != 'success':
                raise PrometheusError(query, endpoint, payload.get('error') or 'status %r' % payload.get('status'),
                                      error_type=payload.get('errorType'))
            self.last_warnings = payload.get('warnings') or []
            return payload.get('data')

    def query(self, promql, time=None):
        """Instant query (``/api/v1/query``) evaluated now or at ``time`` (datetime or unix seconds)."""
        params = {'query': promql}
        if time is not None:
            params['time'] = _timestamp(time)
        data = self._call('/api/v1/query', params, query=promql, post=True)
        return QueryResult.from_data(promql, data or {}, warnings=self.last_warnings)

    def query_range(self, promql, start, end, step):
        """Range query (``/api/v1/query_range``); ``step`` in seconds or a duration string such as "15s"."""
        params = {'query': promql, 'start': _timestamp(start), 'end': _timestamp(end), 'step': _duration(step)}
        data = self._call('/api/v1/query_range', params, query=promql, post=True)
        return QueryResult.from_data(promql, data or {}, warnings=self.last_warnings)

    def alerts(self):
        """Active alerts (``/api/v1/alerts``) as dicts with labels, annotations, state, activeAt, value."""
        data = self._call('/api/v1/alerts')
        return list((data or {}).get('alerts') or [])

    def rules(self):
        """Rule groups (``/api/v1/rules``): dicts with name, file, rules (alerting and recording)."""
        data = self._call('/api/v1/rules')
        return list((data or {}).get('groups') or [])
