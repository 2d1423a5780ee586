# -*- coding: utf-8 -*-
# Copyright: (c) 2026, machinenativeops platform team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):

    # Prometheus HTTP API connection options; argument spec: module_utils/prometheus.py PROMETHEUS_ARG_SPEC.
    DOCUMENTATION = r'''
options:
  prometheus_url:
    description:
      - Base URL of the Prometheus server, for example C(http://prometheus.monitoring:9090).
      - Can also be set with the E(PROMETHEUS_URL) environment variable.
    type: str
  prometheus_token:
    description:
      - Bearer token sent in the C(Authorization) header.
      - Takes precedence over O(prometheus_username) and O(prometheus_password).
    type: str
  prometheus_username:
    description:
      - User name for HTTP basic authentication (used with O(prometheus_password)).
    type: str
  prometheus_password:
    description:
      - Password for HTTP basic authentication (used with O(prometheus_username)).
    type: str
  prometheus_headers:
    description:
      - Extra HTTP headers sent with every request, for example C(X-Scope-OrgID) for a multi-tenant proxy.
    type: dict
  prometheus_validate_certs:
    description:
      - Whether to verify the TLS certificate of an C(https) O(prometheus_url).
    type: bool
    default: true
  prometheus_ca_cert:
    description:
      - Path to a CA certificate bundle used to verify the server's certificate.
    type: path
  prometheus_timeout:
    description:
      - Seconds to wait for each HTTP request.
    type: float
    default: 10.0
  prometheus_retries:
    description:
      - How many times a request is retried, with exponential backoff, after a connection error, a timeout or a
        5xx answer. Client errors (4xx, for example a bad query) are never retried.
    type: int
    default: 3
'''
