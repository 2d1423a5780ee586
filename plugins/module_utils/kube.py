# -*- coding: utf-8 -*-
# Copyright: (c) 2026, machinenativeops platform team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Kubernetes access shared by the collection's modules.

* ``KUBE_AUTH_ARG_SPEC``: the authentication options (documented by the ``kube_auth`` doc fragment).
* ``get_kube_client(params)``: resolves the options with the precedence kubernetes.core uses and
  returns a ``KubeClient`` (kubernetes ``ApiClient`` + ``DynamicClient`` with a discovery cache).
* ``KubeError``: the one error type, naming the verb, the object and the API server's own message.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import hashlib
import json
import os
import random
import re
import tempfile
import time
import traceback

from ansible.module_utils.basic import missing_required_lib

try:
    import urllib3
    from kubernetes import client as k8s_client
    from kubernetes import config as k8s_config
    from kubernetes.client.rest import ApiException
    from kubernetes.dynamic import DynamicClient
    from kubernetes.dynamic.exceptions import ResourceNotFoundError, ResourceNotUniqueError
except ImportError:
    HAS_KUBERNETES = False
    KUBERNETES_IMPORT_ERROR = traceback.format_exc()
else:
    HAS_KUBERNETES = True
    KUBERNETES_IMPORT_ERROR = None

FIELD_MANAGER = 'machinenativeops.platform'
DISCOVERY_CACHE_TTL = 600  # seconds a discovery cache file is trusted

KUBE_PROXY_HEADERS_SPEC = dict(
    proxy_basic_auth=dict(type='str', no_log=True),
    basic_auth=dict(type='str', no_log=True),
    user_agent=dict(type='str'),
)

KUBE_AUTH_ARG_SPEC = dict(
    kubeconfig=dict(type='raw', no_log=True),
    context=dict(type='str'),
    host=dict(type='str'),
    api_key=dict(type='str', no_log=True),
    username=dict(type='str'),
    password=dict(type='str', no_log=True),
    validate_certs=dict(type='bool', aliases=['verify_ssl']),
    ca_cert=dict(type='path', aliases=['ssl_ca_cert']),
    client_cert=dict(type='path', aliases=['cert_file']),
    client_key=dict(type='path', aliases=['key_file']),
    proxy=dict(type='str'),
    no_proxy=dict(type='str'),
    proxy_headers=dict(type='dict', options=KUBE_PROXY_HEADERS_SPEC),
    persist_config=dict(type='bool'),
)

# option name -> (kubernetes Configuration attribute / kubernetes.core "true name", value type)
_AUTH_OPTIONS = (
    ('kubeconfig', 'kubeconfig', 'raw'),
    ('context', 'context', 'str'),
    ('host', 'host', 'str'),
    ('api_key', 'api_key', 'str'),
    ('username', 'username', 'str'),
    ('password', 'password', 'str'),
    ('validate_certs', 'verify_ssl', 'bool'),
    ('ca_cert', 'ssl_ca_cert', 'path'),
    ('client_cert', 'cert_file', 'path'),
    ('client_key', 'key_file', 'path'),
    ('proxy', 'proxy', 'str'),
    ('no_proxy', 'no_proxy', 'str'),
    ('proxy_headers', 'proxy_headers', 'dict'),
    ('persist_config', 'persist_config', 'bool'),
)

_PATCH_CONTENT_TYPES = {
    'merge': 'application/merge-patch+json',
    'json': 'application/json-patch+json',
    'strategic': 'application/strategic-merge-patch+json',
    'apply': 'application/apply-patch+yaml',
}

# keys of a kubeconfig ``users[].user`` entry whose values are credentials
_KUBECONFIG_SECRET_KEYS = frozenset((
    'token', 'password', 'client-key-data', 'id-token', 'refresh-token', 'access-token', 'client-secret',
    'idp-certificate-authority-data',
))

_REDACTED = '********'
_URL_USERINFO = re.compile(r'(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)[^/@\s]+@')


class KubeError(Exception):
    """A failed Kubernetes operation.

    ``str()`` is a complete message, e.g.
    ``patch VirtualService demo/reviews failed: 409 Conflict: <the API's Status message>``.
    """

    def __init__(self, verb, kind=None, namespace=None, name=None, status=None, reason=None, api_message=None):  # noqa: PLR0917
        self.verb = verb
        self.kind = kind
        self.namespace = namespace
        self.name = name
        self.status = status
        self.reason = reason
        self.api_message = api_message
        # the API resource (plural) and group of the request, when known: they name the permission a 403 lacked
        self.resource = None
        self.group = None
        super(KubeError, self).__init__(self.message)

    @property
    def target(self):
        """The object the operation was about: ``Kind ns/name``, ``Kind name``, ``Kind in ns``..."""
        if not self.kind:
            return ''
        if self.name:
            return '%s %s' % (self.kind, '%s/%s' % (self.namespace, self.name) if self.namespace else self.name)
        if self.namespace:
            return '%s in namespace %s' % (self.kind, self.namespace)
        return self.kind

    @property
    def message(self):
        head = ' '.join(part for part in (self.verb, self.target) if part)
        detail = []
        if self.status is not None:
            detail.append(('%s %s' % (self.status, self.reason or '')).strip())
        elif self.reason:
            detail.append(self.reason)
        if self.api_message and self.api_message != self.reason:
            detail.append(self.api_message)
        return '%s failed: %s' % (head, ': '.join(detail) or 'unknown error')

    def __str__(self):
        return self.message

    @property
    def permission(self):
        """For a 403: the RBAC permission the request needed, ``{verb, group, resource, namespace}`` (``group`` is
        ``''`` for the core API, ``namespace`` None for a cluster-wide request); None otherwise or when unknown."""
        if self.status != 403 or not self.resource:
            return None
        return dict(verb=self.verb, group=self.group or '', resource=self.resource, namespace=self.namespace)

    def to_dict(self):
        """The error as plain data (for a module's failure result)."""
        return dict(verb=self.verb, kind=self.kind, namespace=self.namespace, name=self.name,
                    status=self.status, reason=self.reason, api_message=self.api_message, permission=self.permission)


def redact(text, secrets):
    """Return ``text`` with every secret value and every URL user-info replaced."""
    if text is None:
        return None
    text = str(text)
    for secret in sorted((s for s in secrets if s), key=len, reverse=True):
        text = text.replace(secret, _REDACTED)
    return _URL_USERINFO.sub(lambda m: m.group('scheme') + _REDACTED + '@', text)


def _status_from_body(body):
    """(reason, message) from a Kubernetes ``Status`` JSON body, or (None, raw text)."""
    if body is None:
        return None, None
    if isinstance(body, bytes):
        body = body.decode('utf-8', 'replace')
    try:
        data = json.loads(body)
    except ValueError:
        text = body.strip()
        return None, (text[:500] if text else None)
    if isinstance(data, dict):
        return data.get('reason'), data.get('message')
    return None, None


def _connection_reason(exc):
    """A short reason for a urllib3 / socket level failure."""
    inner = getattr(exc, 'reason', None) or exc
    text = str(inner)
    # urllib3 wraps e.g. "<urllib3.connection.HTTPConnection object at 0x..>: Failed to establish a new
    # connection: [Errno 111] Connection refused"; keep the part after the object repr.
    text = re.sub(r'<[^>]+ object at 0x[0-9a-f]+>:\s*', '', text)
    return text


def map_error(exc, verb, kind=None, namespace=None, name=None, host=None, secrets=()):  # noqa: PLR0917
    """Turn any exception raised while talking to the API into a ``KubeError``."""
    if isinstance(exc, KubeError):
        return exc
    if HAS_KUBERNETES and isinstance(exc, ApiException):
        status = exc.status or None
        status_reason, api_message = _status_from_body(exc.body)
        reason = exc.reason or status_reason
        if not status:
            # ApiException(status=0) is raised by the kubernetes client for transport problems
            reason = 'cannot reach the API server %s' % (host or '')
            api_message = api_message or (exc.reason and str(exc.reason))
        return KubeError(verb, kind, namespace, name, status=status, reason=redact(reason, secrets),
                         api_message=redact(api_message, secrets))
    if HAS_KUBERNETES and isinstance(exc, urllib3.exceptions.HTTPError):
        return KubeError(verb, kind, namespace, name, reason='cannot reach the API server %s' % (host or '').rstrip(),
                         api_message=redact(_connection_reason(exc), secrets))
    if HAS_KUBERNETES and isinstance(exc, k8s_config.ConfigException):
        return KubeError(verb, kind, namespace, name, reason='invalid Kubernetes configuration',
                         api_message=redact(str(exc), secrets))
    return KubeError(verb, kind, namespace, name, reason=type(exc).__name__, api_message=redact(str(exc), secrets))


def _env_value(option, true_name, kind):
    for env_name in ('K8S_AUTH_%s' % option.upper(), 'K8S_AUTH_%s' % true_name.upper()):
        value = os.environ.get(env_name)
        if value is not None:
            if kind == 'bool':
                return value.lower() not in ('0', 'false', 'no', 'off')
            if kind == 'path':
                return os.path.expanduser(value)
            return value
    return None


def resolve_auth(params):
    """Explicit options first, then ``K8S_AUTH_<OPTION>`` (or ``K8S_AUTH_<CLIENT_NAME>``) variables.

    Returns a dict keyed by option name holding only the options that are set.
    """
    params = params or {}
    auth = {}
    for option, true_name, kind in _AUTH_OPTIONS:
        value = params.get(option)
        if value is None and option == 'proxy_headers':
            continue
        if value is None:
            value = _env_value(option, true_name, kind)
        if value is None:
            continue
        if kind == 'path' and isinstance(value, str):
            value = os.path.expanduser(value)
        if option == 'kubeconfig' and isinstance(value, str):
            value = os.path.expanduser(value)
        auth[option] = value
    if auth.get('host'):
        auth['host'] = auth['host'].rstrip('/')
    return auth


def _kubeconfig_secrets(config):
    found = set()

    def walk(value, key=None):
        if isinstance(value, dict):
            for sub_key, sub_value in value.items():
                walk(sub_value, sub_key)
        elif isinstance(value, list):
            for item in value:
                walk(item, key)
        elif isinstance(value, str) and key in _KUBECONFIG_SECRET_KEYS:
            found.add(value)

    if isinstance(config, dict):
        for user in config.get('users') or []:
            if isinstance(user, dict):
                walk(user.get('user'))
    return found


def auth_secrets(auth):
    """Every credential value in the resolved auth options (used to scrub messages)."""
    secrets = set()
    for option in ('api_key', 'password'):
        if auth.get(option):
            secrets.add(str(auth[option]))
    for value in (auth.get('proxy_headers') or {}).values():
        if value:
            secrets.add(str(value))
    secrets |= _kubeconfig_secrets(auth.get('kubeconfig'))
    return secrets


def _leaf_strings(value):
    """The strings Ansible masks for a ``no_log`` value: every leaf, dict values (not keys), numbers as text."""
    if isinstance(value, dict):
        return set().union(*(_leaf_strings(v) for v in value.values())) if value else set()
    if isinstance(value, (list, tuple, set)):
        return set().union(*(_leaf_strings(v) for v in value)) if value else set()
    if isinstance(value, bool) or value is None:
        return set()
    text = str(value)
    return {text} if text else set()


def _no_log_leaves(argument_spec, params, skip=()):
    """Leaf strings of every ``no_log`` option in ``params`` (suboptions included), except the names in ``skip``."""
    found = set()
    for name, spec in (argument_spec or {}).items():
        value = (params or {}).get(name)
        if name in skip or value is None:
            continue
        if spec.get('no_log'):
            found |= _leaf_strings(value)
        elif spec.get('options'):
            for item in value if isinstance(value, list) else [value]:
                if isinstance(item, dict):
                    found |= _no_log_leaves(spec['options'], item)
    return found


def kubeconfig_mask_noise(argument_spec, params):
    """The values ``no_log`` on ``kubeconfig`` would mask that are not secrets.

    ``kubeconfig`` is ``no_log`` so that the invocation logged to syslog never holds an inline kubeconfig's
    tokens; but Ansible then masks every string of it in every output: its path, and for an inline
    kubeconfig the names of clusters, users, contexts and namespaces ("Deployment ********/web"). The
    secrets (tokens, passwords, client key data, auth-provider tokens) are not part of the result, nor is
    any value of another ``no_log`` option, so nothing secret is unmasked.
    """
    kubeconfig = (params or {}).get('kubeconfig')
    if kubeconfig is None:
        return set()
    keep = _kubeconfig_secrets(kubeconfig) | _no_log_leaves(argument_spec, params, skip=('kubeconfig',))
    return _leaf_strings(kubeconfig) - keep


def narrow_kubeconfig_no_log(module):
    """Mask only the kubeconfig's secrets in this module's output (see ``kubeconfig_mask_noise``)."""
    module.no_log_values.difference_update(kubeconfig_mask_noise(module.argument_spec, module.params))


def _load_kubeconfig(auth, configuration):
    kubeconfig = auth.get('kubeconfig')
    options = dict(context=auth.get('context'), client_configuration=configuration,
                   persist_config=bool(auth.get('persist_config')))
    if isinstance(kubeconfig, dict):
        options['persist_config'] = False  # there is no file to write refreshed credentials to
        k8s_config.load_kube_config_from_dict(config_dict=kubeconfig, **options)
        return 'inline kubeconfig'
    if kubeconfig is not None and not isinstance(kubeconfig, str):
        raise KubeError('load', reason='invalid Kubernetes configuration',
                        api_message='kubeconfig must be a path or a dict, got %s' % type(kubeconfig).__name__)
    path = kubeconfig or os.environ.get('KUBECONFIG') or os.path.expanduser('~/.kube/config')
    missing = [p for p in path.split(os.pathsep) if p and not os.path.exists(os.path.expanduser(p))]
    if missing and len(missing) == len([p for p in path.split(os.pathsep) if p]):
        raise KubeError('load', reason='invalid Kubernetes configuration', api_message='kubeconfig %s does not exist' % path)
    k8s_config.load_kube_config(config_file=path, **options)
    return 'kubeconfig %s' % path


def _apply_options(configuration, auth):
    """Override a loaded configuration with the options given explicitly (or through K8S_AUTH_*)."""
    if auth.get('host'):
        configuration.host = auth['host']
    if auth.get('api_key'):
        configuration.api_key = {'authorization': 'Bearer %s' % auth['api_key']}
        configuration.api_key_prefix = {}
    elif auth.get('username') and auth.get('password'):
        token = base64.b64encode(('%s:%s' % (auth['username'], auth['password'])).encode('utf-8')).decode('ascii')
        configuration.api_key = {'authorization': 'Basic %s' % token}
        configuration.api_key_prefix = {}
        configuration.username = auth['username']
        configuration.password = auth['password']
    if auth.get('validate_certs') is not None:
        configuration.verify_ssl = auth['validate_certs']
    for option, attribute in (('ca_cert', 'ssl_ca_cert'), ('client_cert', 'cert_file'), ('client_key', 'key_file'),
                              ('proxy', 'proxy'), ('no_proxy', 'no_proxy')):
        if auth.get(option):
            setattr(configuration, attribute, auth[option])
    headers = dict((k, v) for k, v in (auth.get('proxy_headers') or {}).items() if v)
    if headers:
        configuration.proxy_headers = urllib3.util.make_headers(**headers)


def build_configuration(auth):
    """A ``kubernetes.client.Configuration`` from resolved auth options.

    Same decision as kubernetes.core: host with credentials (token, username/password or client
    certificate) is complete on its own; a kubeconfig or context loads the kubeconfig; otherwise the
    in-cluster service account is tried first and the default kubeconfig second.
    Explicit options then override whatever the loaded configuration holds.
    Returns ``(configuration, source)`` where source says where the base configuration came from.
    """
    secrets = auth_secrets(auth)

    def given(*names):
        return all(auth.get(n) for n in names)

    configuration = k8s_client.Configuration()
    try:
        if given('host', 'api_key') or given('host', 'username', 'password') or given('host', 'client_cert', 'client_key'):
            source = 'options'
        elif given('kubeconfig') or given('context'):
            source = _load_kubeconfig(auth, configuration)
        else:
            try:
                k8s_config.load_incluster_config(client_configuration=configuration)
                source = 'in-cluster service account'
            except k8s_config.ConfigException as incluster_error:
                try:
                    source = _load_kubeconfig(auth, configuration)
                except KubeError as kube_error:
                    raise KubeError('load', reason='no Kubernetes configuration found',
                                    api_message='not running in a cluster (%s) and %s' % (incluster_error, kube_error.api_message)) from None
    except KubeError as exc:
        exc.api_message = redact(exc.api_message, secrets)
        raise
    except Exception as exc:  # pylint: disable=broad-except
        raise map_error(exc, 'load', secrets=secrets) from None

    _apply_options(configuration, auth)
    hook = getattr(configuration, 'refresh_api_key_hook', None)
    if hook is not None:
        # the kubeconfig loader installs a hook that reloads the kubeconfig before each request
        # (host and token included) and re-installs itself; options given explicitly must still win afterwards
        def refresh(config, _hook=hook, _auth=auth):
            _hook(config)
            _apply_options(config, _auth)
            config.refresh_api_key_hook = refresh
        configuration.refresh_api_key_hook = refresh
    if not configuration.host:
        raise KubeError('load', reason='invalid Kubernetes configuration', api_message='no API server host configured')
    return configuration, source


def _discovery_cache_file(host):
    """A per-user private discovery cache file for ``host`` under the temp dir."""
    uid = os.getuid() if hasattr(os, 'getuid') else 'user'
    directory = os.path.join(tempfile.gettempdir(), 'machinenativeops-platform-%s' % uid)
    try:
        os.makedirs(directory, mode=0o700)
    except OSError:
        pass
    digest = hashlib.sha256(host.encode('utf-8')).hexdigest()[:24]
    path = os.path.join(directory, 'discovery-%s.json' % digest)
    try:
        if time.time() - os.stat(path).st_mtime > DISCOVERY_CACHE_TTL:
            os.unlink(path)  # like kubectl, rediscover after a while (CRDs come and go)
    except OSError:
        pass
    return path


if HAS_KUBERNETES:
    class CountingApiClient(k8s_client.ApiClient):
        """An ``ApiClient`` that counts the HTTP requests it sends and applies a default timeout."""

        def __init__(self, configuration=None, request_timeout=None):
            super(CountingApiClient, self).__init__(configuration=configuration)
            self.request_count = 0
            self.request_timeout = request_timeout

        def call_api(self, method, url, header_params=None, body=None, post_params=None, _request_timeout=None):
            self.request_count += 1
            if _request_timeout is None:
                _request_timeout = self.request_timeout
            return super(CountingApiClient, self).call_api(method, url, header_params=header_params, body=body,
                                                           post_params=post_params, _request_timeout=_request_timeout)
else:
    CountingApiClient = None


RETRY_ATTEMPTS = 5  # attempts in total (first try included)
RETRY_BASE = 0.5  # seconds
RETRY_MAX_DELAY = 8.0  # seconds, cap of the exponential backoff
RETRY_AFTER_CAP = 30.0  # seconds, cap of a server's Retry-After
LIST_RESTARTS = 2  # times a paginated list starts again after 410 Gone (expired continue token)
_READ_VERBS = frozenset(('get', 'list', 'discover'))


def _retry_after(exc):
    headers = getattr(exc, 'headers', None) or {}
    try:
        value = headers.get('Retry-After')
    except AttributeError:
        return None
    try:
        return min(max(float(value), 0.0), RETRY_AFTER_CAP)
    except (TypeError, ValueError):
        return None


def _not_sent(exc):
    """True for a connection error that happened before the request was sent."""
    if not HAS_KUBERNETES:
        return False
    inner = getattr(exc, 'reason', None) if isinstance(exc, urllib3.exceptions.MaxRetryError) else exc
    return isinstance(inner, (urllib3.exceptions.NewConnectionError, urllib3.exceptions.ConnectTimeoutError))


def retryable(exc, verb):
    """(retry?, server's Retry-After or None) for an exception raised by ``verb``.

    Reads (get, list, discovery) retry 429, 500, 502, 503, 504 and every connection error. Writes
    (create, replace, patch, delete) retry only what the server certainly did not apply: 429, 503 with a
    Retry-After header, and connection errors before the request was sent (refused connection, connect
    timeout). Other 4xx are never retried.
    """
    read = verb in _READ_VERBS
    if HAS_KUBERNETES and isinstance(exc, ApiException):
        status = exc.status or 0
        after = _retry_after(exc)
        if status == 429:
            return True, after
        if status == 503 and (read or after is not None):
            return True, after
        if status in (500, 502, 503, 504):
            return read, after
        if status == 0:
            return read, None
        return False, None
    if HAS_KUBERNETES and isinstance(exc, urllib3.exceptions.HTTPError):
        return (read or _not_sent(exc)), None
    return False, None


class KubeClient:
    """Kubernetes access through the dynamic client; every method returns plain dicts.

    Retries: see ``retryable``. ``retries`` is the number of attempts in total (default 5); between them
    the client sleeps the server's Retry-After (capped at 30 s) or a full-jitter exponential backoff
    (``rng() * min(8, 0.5 * 2 ** n)`` seconds). A paginated ``list`` whose continue token expired (410)
    starts again from the first page, at most twice, discarding the items read so far. When the attempts
    are exhausted the error says ``(after N attempts)``. ``sleep`` and ``rng`` are injectable.
    """

    def __init__(self, configuration, secrets=(), cache_file=None, request_timeout=60,  # noqa: PLR0917
                 retries=RETRY_ATTEMPTS, sleep=time.sleep, rng=random.random):
        self.configuration = configuration
        self.retries = max(1, int(retries))
        self._sleep = sleep
        self._rng = rng
        if HAS_KUBERNETES and getattr(configuration, 'retries', None) is None:
            # urllib3's default (3 retries of connection errors, read errors of idempotent methods only, e.g. a pooled
            # connection the server closed), without its own sleeping on a 429/503 Retry-After: those are ours
            configuration.retries = urllib3.util.Retry(3, respect_retry_after_header=False)
        self.host = configuration.host
        self._secrets = set(secrets)
        self.api_client = CountingApiClient(configuration, request_timeout=request_timeout)
        self._resources = {}
        try:
            self.dynamic = DynamicClient(self.api_client, cache_file=cache_file or _discovery_cache_file(self.host))
        except Exception as exc:  # pylint: disable=broad-except
            raise self._error(exc, 'discover', 'API groups') from None

    @property
    def api_calls(self):
        """Number of HTTP requests sent so far (discovery included)."""
        return self.api_client.request_count

    def resource(self, api_version, kind):
        """The dynamic ``Resource`` for ``api_version``/``kind``, or None when the API does not serve it."""
        key = (api_version, kind)
        if key in self._resources:
            return self._resources[key]
        try:
            found = self.dynamic.resources.get(api_version=api_version, kind=kind)
        except ResourceNotFoundError:
            return None
        except ResourceNotUniqueError as exc:
            raise KubeError('discover', kind, reason='ambiguous kind', api_message='%s %s: %s' % (api_version, kind, exc)) from None
        except Exception as exc:  # pylint: disable=broad-except
            raise self._error(exc, 'discover', kind) from None
        self._resources[key] = found
        return found

    def _require(self, verb, api_version, kind, namespace=None, name=None):
        found = self.resource(api_version, kind)
        if found is None:
            raise KubeError(verb, kind, namespace, name, status=404, reason='Not Found',
                            api_message='the API server does not serve %s %s' % (api_version, kind))
        if not found.namespaced:
            namespace = None
        elif name and not namespace:
            raise KubeError(verb, kind, namespace, name, reason='namespace required',
                            api_message='%s %s is namespaced; give a namespace' % (api_version, kind))
        return found, namespace

    @staticmethod
    def _decode(response):
        data = response.data if hasattr(response, 'data') else response
        if isinstance(data, bytes):
            data = data.decode('utf-8')
        if not data:
            return None
        return json.loads(data)

    def _retrying(self, verb, func):
        """``func()`` retried per ``retryable``; the last exception is re-raised with ``attempts`` set on it."""
        attempt = 0
        while True:
            attempt += 1
            try:
                return func()
            except Exception as exc:  # pylint: disable=broad-except
                retry, after = retryable(exc, verb)
                if not retry or attempt >= self.retries:
                    exc.kube_attempts = attempt
                    raise
                delay = after if after is not None else self._rng() * min(RETRY_MAX_DELAY, RETRY_BASE * 2 ** (attempt - 1))
                self._sleep(delay)

    def _error(self, exc, verb, kind=None, namespace=None, name=None, resource=None):  # noqa: PLR0917
        """``exc`` as a KubeError; ``resource`` (the dynamic Resource of the request) names the permission of a 403."""
        error = map_error(exc, verb, kind, namespace, name, host=self.host, secrets=self._secrets)
        attempts = getattr(exc, 'kube_attempts', 1)
        if attempts > 1 and error is not exc:
            error.api_message = '%s (after %d attempts)' % (error.api_message or '', attempts)
            error.args = (error.message,)
        if resource is not None and error.resource is None:
            error.resource = getattr(resource, 'name', None)
            error.group = getattr(resource, 'group', None) or ''
        return error

    def _call(self, where, resource, method, *args, **kwargs):
        """``method(*args, **kwargs)`` decoded to a dict; errors name ``where`` = (verb, kind, namespace, name) and
        ``resource``."""
        kwargs['serialize'] = False
        try:
            return self._decode(self._retrying(where[0], lambda: method(*args, **kwargs)))
        except Exception as exc:  # pylint: disable=broad-except
            raise self._error(exc, *where, resource=resource) from None

    def list(self, api_version, kind, namespace=None, label_selector=None, field_selector=None, page_size=500):  # noqa: PLR0917
        """Iterate over the objects (plain dicts), one page of ``page_size`` per request.

        ``namespace=None`` lists all namespaces; selectors are evaluated by the API server.
        """
        resource, namespace = self._require('list', api_version, kind, namespace)
        restarts = 0
        while True:
            try:
                items = self._list_pages(resource, kind, namespace, label_selector, field_selector, page_size)
            except KubeError as exc:
                if exc.status == 410 and restarts < LIST_RESTARTS:
                    restarts += 1
                    continue
                raise
            for item in items:
                item.setdefault('apiVersion', api_version)
                item.setdefault('kind', kind)
                yield item
            return

    def _list_pages(self, resource, kind, namespace, label_selector, field_selector, page_size):  # noqa: PLR0917
        """Every item of every page (a 410 on a later page restarts the whole list, so nothing is yielded early)."""
        items = []
        token = None
        while True:
            page = self._call(('list', kind, namespace, None), resource, self.dynamic.get, resource, namespace=namespace,
                              label_selector=label_selector or None, field_selector=field_selector or None,
                              limit=page_size or None, _continue=token)
            items.extend((page or {}).get('items') or [])
            token = ((page or {}).get('metadata') or {}).get('continue')
            if not token:
                return items

    def get(self, api_version, kind, name, namespace=None):
        """The object as a dict, or None when it does not exist (404)."""
        resource, namespace = self._require('get', api_version, kind, namespace, name)
        try:
            return self._decode(self._retrying('get', lambda: self.dynamic.get(
                resource, name=name, namespace=namespace, serialize=False)))
        except Exception as exc:  # pylint: disable=broad-except
            if HAS_KUBERNETES and isinstance(exc, ApiException) and exc.status == 404:
                return None
            raise self._error(exc, 'get', kind, namespace, name, resource=resource) from None

    @staticmethod
    def _dry_run(dry_run):
        return 'All' if dry_run else None

    def create(self, api_version, kind, body, namespace=None, dry_run=False):
        name = (body.get('metadata') or {}).get('name')
        namespace = namespace or (body.get('metadata') or {}).get('namespace')
        resource, namespace = self._require('create', api_version, kind, namespace, name)
        return self._call(('create', kind, namespace, name), resource, self.dynamic.create, resource, body=body, namespace=namespace,
                          dry_run=self._dry_run(dry_run), field_manager=FIELD_MANAGER)

    def replace(self, api_version, kind, body, namespace=None, dry_run=False):
        name = (body.get('metadata') or {}).get('name')
        namespace = namespace or (body.get('metadata') or {}).get('namespace')
        resource, namespace = self._require('replace', api_version, kind, namespace, name)
        return self._call(('replace', kind, namespace, name), resource, self.dynamic.replace, resource, body=body, name=name,
                          namespace=namespace, dry_run=self._dry_run(dry_run), field_manager=FIELD_MANAGER)

    def patch(self, api_version, kind, name, body, namespace=None, patch_type='merge', dry_run=False,  # noqa: PLR0917
              field_manager=FIELD_MANAGER, force=False):
        if patch_type not in _PATCH_CONTENT_TYPES:
            raise KubeError('patch', kind, namespace, name, reason='invalid patch type',
                            api_message='patch_type must be one of %s' % ', '.join(sorted(_PATCH_CONTENT_TYPES)))
        resource, namespace = self._require('patch', api_version, kind, namespace, name)
        extra = {}
        if patch_type == 'apply':
            extra['force_conflicts'] = bool(force)
        path = resource.path(name=name, namespace=namespace)
        return self._call(('patch', kind, namespace, name), resource, self.dynamic.request, 'patch', path, body=body,
                          content_type=_PATCH_CONTENT_TYPES[patch_type], dry_run=self._dry_run(dry_run),
                          field_manager=field_manager, **extra)

    def delete(self, api_version, kind, name, namespace=None, dry_run=False, propagation_policy=None):  # noqa: PLR0917
        """Delete the object; returns the API's answer (the object or a Status), None when it did not exist."""
        resource, namespace = self._require('delete', api_version, kind, namespace, name)
        try:
            return self._decode(self._retrying('delete', lambda: self.dynamic.delete(
                resource, name=name, namespace=namespace, dry_run=self._dry_run(dry_run),
                propagation_policy=propagation_policy, serialize=False)))
        except Exception as exc:  # pylint: disable=broad-except
            if HAS_KUBERNETES and isinstance(exc, ApiException) and exc.status == 404:
                return None
            raise self._error(exc, 'delete', kind, namespace, name, resource=resource) from None


def fail_if_missing_kubernetes(module):
    """``module.fail_json`` with ``missing_required_lib('kubernetes')`` when the library cannot be imported."""
    if not HAS_KUBERNETES:
        module.fail_json(msg=missing_required_lib('kubernetes'), exception=KUBERNETES_IMPORT_ERROR)


def get_kube_client(params, request_timeout=60, cache_file=None):
    """A ``KubeClient`` for the auth options in ``params`` (``module.params`` or any dict).

    Raises ``KubeError`` for an unusable configuration or an unreachable API server; messages never
    contain credentials.
    """
    if not HAS_KUBERNETES:
        raise KubeError('load', reason='missing Python library', api_message='the kubernetes Python library is not installed')
    auth = resolve_auth(params)
    configuration, _source = build_configuration(auth)
    return KubeClient(configuration, secrets=auth_secrets(auth), cache_file=cache_file, request_timeout=request_timeout)
