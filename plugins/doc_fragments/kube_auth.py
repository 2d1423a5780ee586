# -*- coding: utf-8 -*-
# Copyright: (c) 2026, machinenativeops platform team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):

    # Kubernetes authentication options; argument spec: module_utils/kube.py KUBE_AUTH_ARG_SPEC.
    DOCUMENTATION = r'''
options:
  kubeconfig:
    description:
      - Path to a kubeconfig file, or the kubeconfig content itself as a dictionary.
      - Several files can be given separated by C(:) (the C(KUBECONFIG) convention).
      - When neither O(kubeconfig), O(context) nor a complete set of O(host) and credentials is given, the in-cluster
        service account is used when the module runs inside a pod, otherwise C(KUBECONFIG) or C(~/.kube/config).
      - Can also be set with the E(K8S_AUTH_KUBECONFIG) environment variable.
      - Credentials found in an inline kubeconfig are never included in results or error messages.
    type: raw
  context:
    description:
      - The kubeconfig context to use instead of the current context.
      - Can also be set with the E(K8S_AUTH_CONTEXT) environment variable.
    type: str
  host:
    description:
      - URL of the Kubernetes API server, for example C(https://api.example.com:6443).
      - Overrides the server of the kubeconfig context.
      - Can also be set with the E(K8S_AUTH_HOST) environment variable.
    type: str
  api_key:
    description:
      - Bearer token used to authenticate to the API server.
      - Can also be set with the E(K8S_AUTH_API_KEY) environment variable.
    type: str
  username:
    description:
      - User name for HTTP basic authentication to the API server (used with O(password)).
      - Can also be set with the E(K8S_AUTH_USERNAME) environment variable.
    type: str
  password:
    description:
      - Password for HTTP basic authentication to the API server (used with O(username)).
      - Can also be set with the E(K8S_AUTH_PASSWORD) environment variable.
    type: str
  validate_certs:
    description:
      - Whether to verify the API server's TLS certificate.
      - Can also be set with the E(K8S_AUTH_VERIFY_SSL) or E(K8S_AUTH_VALIDATE_CERTS) environment variable
        (C(0), C(false) and C(no) mean false).
    type: bool
    aliases: [verify_ssl]
  ca_cert:
    description:
      - Path to a CA certificate bundle used to verify the API server's certificate.
      - Can also be set with the E(K8S_AUTH_SSL_CA_CERT) or E(K8S_AUTH_CA_CERT) environment variable.
    type: path
    aliases: [ssl_ca_cert]
  client_cert:
    description:
      - Path to a client certificate used to authenticate to the API server.
      - Can also be set with the E(K8S_AUTH_CERT_FILE) or E(K8S_AUTH_CLIENT_CERT) environment variable.
    type: path
    aliases: [cert_file]
  client_key:
    description:
      - Path to the key of O(client_cert).
      - Can also be set with the E(K8S_AUTH_KEY_FILE) or E(K8S_AUTH_CLIENT_KEY) environment variable.
    type: path
    aliases: [key_file]
  proxy:
    description:
      - URL of an HTTP proxy to reach the API server through.
      - Can also be set with the E(K8S_AUTH_PROXY) environment variable.
    type: str
  no_proxy:
    description:
      - Comma separated hosts, domains, IP addresses or CIDRs reached without the proxy.
      - Can also be set with the E(K8S_AUTH_NO_PROXY) environment variable.
    type: str
  proxy_headers:
    description:
      - Headers sent to the proxy.
    type: dict
    suboptions:
      proxy_basic_auth:
        description:
          - C(user:password) for basic authentication to the proxy.
        type: str
      basic_auth:
        description:
          - C(user:password) for basic authentication.
        type: str
      user_agent:
        description:
          - The User-Agent header value.
        type: str
  persist_config:
    description:
      - Whether refreshed credentials (for example renewed OIDC tokens) are written back to the kubeconfig file.
      - Can also be set with the E(K8S_AUTH_PERSIST_CONFIG) environment variable.
    type: bool
notes:
  - Precedence of the connection settings is the one of C(kubernetes.core), the module options first, then the
    E(K8S_AUTH_*) environment variables, then the kubeconfig (or the in-cluster service account).
requirements:
  - kubernetes >= 24.2.0 (Python library)
'''
