# -*- coding: utf-8 -*-
# Copyright: (c) 2026, machinenativeops platform team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Verification of Velero backups where they really are: in the object store.

``verify_backup`` reads ``<prefix>/backups/<name>/`` with boto3 and checks the metadata document,
the tarball (present, above a size floor, a readable gzip tar, holding the expected resources of the
expected namespaces and as many items as Velero says it backed up) and the resource list.
``run_restore_test`` restores a backup into scratch namespaces (namespaceMapping), compares the
restored objects with the tarball, and removes the scratch namespaces again.

Every check is a dict ``{"name", "passed", "reason"}``; a report passes when all its checks pass.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import gzip
import io
import json
import re
import tarfile
import time
import traceback

try:
    import boto3
    import botocore.exceptions
    from botocore.config import Config
except ImportError:
    HAS_BOTO3 = False
    BOTO3_IMPORT_ERROR = traceback.format_exc()
else:
    HAS_BOTO3 = True
    BOTO3_IMPORT_ERROR = None

from ansible_collections.machinenativeops.platform.plugins.module_utils import restore_isolation as isolation
from ansible_collections.machinenativeops.platform.plugins.module_utils import velero as V

S3_ARG_SPEC = dict(
    s3_endpoint_url=dict(type='str'),
    s3_region=dict(type='str'),
    s3_access_key=dict(type='str', no_log=True),
    s3_secret_key=dict(type='str', no_log=True),
    s3_session_token=dict(type='str', no_log=True),
    s3_bucket=dict(type='str'),
    s3_prefix=dict(type='str'),
    s3_validate_certs=dict(type='bool', default=True),
    s3_ca_bundle=dict(type='path'),
    s3_timeout=dict(type='float', default=10.0),
)

# What Velero never restores (pkg/restore: nonRestorableResources) plus what the server recreates.
NON_RESTORABLE = frozenset((
    'nodes', 'events', 'events.events.k8s.io', 'backups.velero.io', 'restores.velero.io', 'resticrepositories.velero.io',
    'backuprepositories.velero.io', 'csinodes.storage.k8s.io', 'volumeattachments.storage.k8s.io',
    'deletebackuprequests.velero.io', 'downloadrequests.velero.io', 'podvolumebackups.velero.io',
    'podvolumerestores.velero.io', 'serverstatusrequests.velero.io',
))
_SECRET_IN_URL = re.compile(r'(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)[^/@\s]+@')


class S3Error(Exception):
    """An object store request failed; the message names the endpoint, bucket and key, never credentials."""


def check(name, passed, reason):
    return {'name': name, 'passed': bool(passed), 'reason': reason}


def key_for(prefix, *parts):
    prefix = (prefix or '').strip('/')
    return '/'.join(([prefix] if prefix else []) + list(parts))


def _clean(text, secrets=()):
    text = _SECRET_IN_URL.sub(r'\g<scheme>', str(text))
    for secret in secrets:
        if secret:
            text = text.replace(secret, '********')
    return text


class S3Store:
    """A bucket (+ prefix) reached through boto3, with errors turned into S3Error."""

    def __init__(self, bucket, prefix='', endpoint_url=None, region=None, access_key=None, secret_key=None, session_token=None,  # noqa: PLR0917
                 validate_certs=True, ca_bundle=None, timeout=10.0, retries=2):
        if not HAS_BOTO3:
            raise S3Error('boto3 is required to read the backup storage location')
        if not bucket:
            raise S3Error('no bucket given and none found in the BackupStorageLocation')
        self.bucket = bucket
        self.prefix = (prefix or '').strip('/')
        self.endpoint_url = endpoint_url
        self._secrets = (secret_key, session_token, access_key)
        verify = (ca_bundle or True) if validate_certs else False
        session = boto3.session.Session(aws_access_key_id=access_key or None, aws_secret_access_key=secret_key or None,
                                        aws_session_token=session_token or None, region_name=region or 'us-east-1')
        self.client = session.client(
            's3', endpoint_url=endpoint_url or None, verify=verify,
            config=Config(connect_timeout=timeout, read_timeout=max(timeout, 30.0),
                          retries={'max_attempts': retries, 'mode': 'standard'}, s3={'addressing_style': 'path'}))
        self.requests = 0

    @classmethod
    def from_params(cls, params, location=None):
        """From the module's ``s3_*`` options; missing values come from a BackupStorageLocation (``location``)."""
        spec = (location or {}).get('spec') or {}
        storage = spec.get('objectStorage') or {}
        config = spec.get('config') or {}
        prefix = params.get('s3_prefix')
        if prefix is None:
            prefix = storage.get('prefix') or ''
        return cls(bucket=params.get('s3_bucket') or storage.get('bucket'), prefix=prefix,
                   endpoint_url=params.get('s3_endpoint_url') or config.get('s3Url') or None,
                   region=params.get('s3_region') or config.get('region'),
                   access_key=params.get('s3_access_key'), secret_key=params.get('s3_secret_key'),
                   session_token=params.get('s3_session_token'),
                   validate_certs=params.get('s3_validate_certs', True) if config.get('insecureSkipTLSVerify') != 'true' else False,
                   ca_bundle=params.get('s3_ca_bundle'), timeout=params.get('s3_timeout') or 10.0)

    @property
    def where(self):
        return 's3://%s/%s%s' % (self.bucket, self.prefix + '/' if self.prefix else '', ' at %s' % self.endpoint_url if self.endpoint_url else '')

    def _error(self, exc, verb, key=None):
        target = 's3://%s/%s' % (self.bucket, key) if key else 's3://%s' % self.bucket
        at = ' at %s' % self.endpoint_url if self.endpoint_url else ''
        if HAS_BOTO3 and isinstance(exc, botocore.exceptions.ClientError):
            err = exc.response.get('Error') or {}
            code = err.get('Code') or exc.response.get('ResponseMetadata', {}).get('HTTPStatusCode')
            detail = '%s: %s' % (code, err.get('Message') or 'no message')
        elif HAS_BOTO3 and isinstance(exc, (botocore.exceptions.EndpointConnectionError, botocore.exceptions.ConnectTimeoutError,
                                            botocore.exceptions.ReadTimeoutError)):
            detail = 'the S3 endpoint is unreachable (%s)' % exc
        elif HAS_BOTO3 and isinstance(exc, botocore.exceptions.NoCredentialsError):
            detail = 'no S3 credentials: give s3_access_key/s3_secret_key or set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY'
        elif HAS_BOTO3 and isinstance(exc, botocore.exceptions.SSLError):
            detail = 'TLS verification failed (%s); give s3_ca_bundle or s3_validate_certs=false' % exc
        else:
            detail = '%s: %s' % (type(exc).__name__, exc)
        return S3Error(_clean('%s %s%s failed: %s' % (verb, target, at, detail), self._secrets))

    @staticmethod
    def _is_missing(exc):
        if HAS_BOTO3 and isinstance(exc, botocore.exceptions.ClientError):
            code = str((exc.response.get('Error') or {}).get('Code'))
            return code in ('404', 'NoSuchKey', 'NotFound')
        return False

    def head_bucket(self):
        self.requests += 1
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except Exception as exc:  # pylint: disable=broad-except
            raise self._error(exc, 'HEAD') from None

    def head(self, key):
        """Object metadata (size, metadata) or None when the key does not exist."""
        self.requests += 1
        try:
            answer = self.client.head_object(Bucket=self.bucket, Key=key)
        except Exception as exc:  # pylint: disable=broad-except
            if self._is_missing(exc):
                return None
            raise self._error(exc, 'HEAD', key) from None
        return {'size': answer.get('ContentLength'), 'metadata': answer.get('Metadata') or {},
                'last_modified': answer['LastModified'].isoformat() if answer.get('LastModified') else None}

    def get(self, key):
        """The object's bytes, or None when the key does not exist."""
        self.requests += 1
        try:
            return self.client.get_object(Bucket=self.bucket, Key=key)['Body'].read()
        except Exception as exc:  # pylint: disable=broad-except
            if self._is_missing(exc):
                return None
            raise self._error(exc, 'GET', key) from None

    def put(self, key, data, metadata=None, content_type='application/octet-stream'):
        self.requests += 1
        try:
            self.client.put_object(Bucket=self.bucket, Key=key, Body=data, Metadata=metadata or {}, ContentType=content_type)
        except Exception as exc:  # pylint: disable=broad-except
            raise self._error(exc, 'PUT', key) from None

    def upload_file(self, path, key, metadata=None):
        self.requests += 1
        try:
            self.client.upload_file(path, self.bucket, key, ExtraArgs={'Metadata': metadata or {}})
        except Exception as exc:  # pylint: disable=broad-except
            raise self._error(exc, 'upload', key) from None

    def download_file(self, key, path):
        self.requests += 1
        try:
            self.client.download_file(self.bucket, key, path)
        except Exception as exc:  # pylint: disable=broad-except
            raise self._error(exc, 'download', key) from None

    def delete(self, key):
        self.requests += 1
        try:
            self.client.delete_object(Bucket=self.bucket, Key=key)
        except Exception as exc:  # pylint: disable=broad-except
            raise self._error(exc, 'DELETE', key) from None

    def list(self, prefix):
        """Every object under ``prefix``: dicts with key, size, last_modified (datetime)."""
        out = []
        token = None
        while True:
            kwargs = {'Bucket': self.bucket, 'Prefix': prefix}
            if token:
                kwargs['ContinuationToken'] = token
            self.requests += 1
            try:
                page = self.client.list_objects_v2(**kwargs)
            except Exception as exc:  # pylint: disable=broad-except
                raise self._error(exc, 'LIST', prefix) from None
            for obj in page.get('Contents') or []:
                out.append({'key': obj['Key'], 'size': obj.get('Size'), 'last_modified': obj.get('LastModified')})
            if not page.get('IsTruncated'):
                return out
            token = page.get('NextContinuationToken')

    def backup_key(self, name, filename):
        return key_for(self.prefix, 'backups', name, filename)


# -- reading Velero's files -------------------------------------------------------------------------
def read_tarball(data):
    """The content of a Velero backup tarball.

    Returns ``{"version", "files", "items": [{"resource", "namespace", "name", "api_version", "kind", "owned"}]}``;
    raises ValueError (with the reason) when the data is not a readable gzip tar.
    """
    items = []
    version = None
    files = 0
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode='r:gz') as tar:
            for member in tar:
                if not member.isfile():
                    continue
                files += 1
                parts = member.name.split('/')
                if member.name == 'metadata/version':
                    version = tar.extractfile(member).read().decode('utf-8', 'replace').strip()
                    continue
                if len(parts) < 4 or parts[0] != 'resources' or parts[2].endswith('-preferredversion'):
                    continue
                if parts[2] == 'namespaces' and len(parts) == 5:
                    namespace, fname = parts[3], parts[4]
                elif parts[2] == 'cluster' and len(parts) == 4:
                    namespace, fname = '', parts[3]
                else:
                    continue
                raw = tar.extractfile(member).read()
                try:
                    obj = json.loads(raw)
                except ValueError as exc:
                    raise ValueError('%s is not JSON: %s' % (member.name, exc)) from None
                meta = obj.get('metadata') or {}
                owned = any(ref.get('controller') for ref in meta.get('ownerReferences') or [])
                item = {'resource': parts[1], 'namespace': namespace, 'name': fname[:-5] if fname.endswith('.json') else fname,
                        'api_version': obj.get('apiVersion'), 'kind': obj.get('kind'), 'owned': owned}
                if parts[1] == 'services':
                    item['service'] = isolation.service_details(obj)
                items.append(item)
    except (tarfile.TarError, OSError, EOFError, gzip.BadGzipFile, UnicodeDecodeError) as exc:
        raise ValueError('not a readable gzip tar: %s: %s' % (type(exc).__name__, exc)) from None
    return {'version': version, 'files': files, 'items': items}


def count_by(items, field):
    out = {}
    for item in items:
        out[item[field]] = out.get(item[field], 0) + 1
    return out


def _gunzip_json(data):
    return json.loads(gzip.decompress(data).decode('utf-8'))


def results_errors(data, limit=5):
    """The first messages of a ``<name>-results.gz`` file (``{"errors": {...}, "warnings": {...}}``)."""
    doc = _gunzip_json(data)
    found = {'errors': [], 'warnings': []}
    for level in ('errors', 'warnings'):
        section = doc.get(level) or {}
        for msg in section.get('velero') or []:
            found[level].append('velero: %s' % msg)
        for msg in section.get('cluster') or []:
            found[level].append('cluster: %s' % msg)
        for ns in sorted(section.get('namespaces') or {}):
            for msg in section['namespaces'][ns]:
                found[level].append('namespace %s: %s' % (ns, msg))
        found[level] = found[level][:limit]
    return found


def log_errors(data, limit=5):
    """The first ``level=error`` lines of a ``<name>-logs.gz`` file."""
    lines = gzip.decompress(data).decode('utf-8', 'replace').splitlines()
    return [line for line in lines if 'level=error' in line or 'level=fatal' in line][:limit]


def failure_details(store, name, kind='Backup', limit=5):
    """First errors/warnings of a Backup or Restore from the bucket; ``{"errors", "warnings", "log_errors", "unavailable"}``."""
    folder = 'backups' if kind == 'Backup' else 'restores'
    base = name if kind == 'Backup' else 'restore-%s' % name
    out = {'errors': [], 'warnings': [], 'log_errors': [], 'unavailable': []}
    for suffix, reader in (('results', 'results'), ('logs', 'logs')):
        key = key_for(store.prefix, folder, name, '%s-%s.gz' % (base, suffix))
        try:
            data = store.get(key)
        except S3Error as exc:
            out['unavailable'].append(str(exc))
            continue
        if data is None:
            out['unavailable'].append('s3://%s/%s does not exist' % (store.bucket, key))
            continue
        try:
            if reader == 'results':
                found = results_errors(data, limit)
                out['errors'], out['warnings'] = found['errors'], found['warnings']
            else:
                out['log_errors'] = log_errors(data, limit)
        except (ValueError, OSError, EOFError) as exc:
            out['unavailable'].append('s3://%s/%s is not readable: %s' % (store.bucket, key, exc))
    return out


# -- the S3 verification ---------------------------------------------------------------------------
def _resource_matches(wanted, resource):
    """``deployments`` matches ``deployments.apps``; ``deployments.apps`` matches itself."""
    wanted = wanted.lower()
    return resource == wanted or resource.split('.', 1)[0] == wanted


def verify_backup(store, name, expected_namespaces=None, expected_resources=None, min_size=1, cluster_phase=None,  # noqa: PLR0917
                  keep_contents=False):
    """Check a backup in the bucket; returns the report (``passed``, ``checks``, counts, sizes, seconds).

    Raises S3Error only when the store itself cannot be reached (the report could not be made).
    """
    t0 = time.monotonic()
    checks = []
    report = {'name': name, 'location': store.where, 'checks': checks, 'tarball_size': None, 'items': None,
              'resources': {}, 'namespaces': {}, 'format_version': None}
    store.head_bucket()
    if cluster_phase is not None:
        report['cluster_phase'] = cluster_phase
    meta_key = store.backup_key(name, 'velero-backup.json')
    raw = store.get(meta_key)
    doc = None
    if raw is None:
        checks.append(check('metadata_present', False, 's3://%s/%s does not exist' % (store.bucket, meta_key)))
    else:
        try:
            doc = json.loads(raw)
            checks.append(check('metadata_present', True, 'velero-backup.json is present (%d bytes)' % len(raw)))
        except ValueError as exc:
            checks.append(check('metadata_present', False, 'velero-backup.json is not JSON: %s' % exc))
    status = (doc or {}).get('status') or {}
    if doc is not None:
        phase = status.get('phase')
        report['bucket_phase'] = phase
        checks.append(check('metadata_completed', phase == 'Completed',
                            'velero-backup.json says phase %s' % phase if phase == 'Completed' else
                            'velero-backup.json says phase %s, not Completed (errors %s, warnings %s)'
                            % (phase, status.get('errors', 0), status.get('warnings', 0))))
    tar_key = store.backup_key(name, '%s.tar.gz' % name)
    head = store.head(tar_key)
    if head is None:
        checks.append(check('tarball_present', False, 's3://%s/%s does not exist%s' % (
            store.bucket, tar_key, ' although the Backup object says %s' % cluster_phase if cluster_phase else '')))
    else:
        report['tarball_size'] = head['size']
        checks.append(check('tarball_present', True, '%s.tar.gz is present' % name))
        checks.append(check('tarball_size', head['size'] >= min_size, '%d bytes %s the floor of %d bytes'
                            % (head['size'], '>=' if head['size'] >= min_size else '<', min_size)))
        data = store.get(tar_key)
        contents = None
        if data is None:
            checks.append(check('tarball_readable', False, '%s.tar.gz disappeared while being read' % name))
        else:
            try:
                contents = read_tarball(data)
            except ValueError as exc:
                checks.append(check('tarball_readable', False, '%s.tar.gz is %s' % (name, exc)))
        if contents is not None:
            items = contents['items']
            report.update({'items': len(items), 'format_version': contents['version'],
                           'resources': count_by(items, 'resource'),
                           'namespaces': count_by([i for i in items if i['namespace']], 'namespace')})
            if keep_contents:
                report['contents'] = contents
            checks.append(check('tarball_readable', contents['version'] is not None,
                                'readable gzip tar with %d files, format version %s' % (contents['files'], contents['version'])
                                if contents['version'] else 'readable gzip tar but metadata/version is missing: not a Velero backup'))
            backed_up = (status.get('progress') or {}).get('itemsBackedUp')
            if backed_up is not None:
                checks.append(check('item_count', backed_up == len(items), 'the tarball holds %d items, Velero reports %d backed up'
                                    % (len(items), backed_up)))
            if expected_namespaces:
                missing = [ns for ns in expected_namespaces if not report['namespaces'].get(ns)]
                checks.append(check('expected_namespaces', not missing,
                                    'missing namespaces: %s' % ', '.join(missing) if missing else
                                    'all %d expected namespaces hold resources' % len(expected_namespaces)))
            if expected_resources:
                missing = []
                for wanted in expected_resources:
                    scope = [i for i in items if not expected_namespaces or not i['namespace'] or i['namespace'] in expected_namespaces]
                    if not any(_resource_matches(wanted, i['resource']) for i in scope):
                        missing.append(wanted)
                checks.append(check('expected_resources', not missing,
                                    'missing resources: %s' % ', '.join(missing) if missing else
                                    'all %d expected resources are present' % len(expected_resources)))
            listed = store.get(store.backup_key(name, '%s-resource-list.json.gz' % name))
            if listed is not None:
                try:
                    listed_count = sum(len(v) for v in _gunzip_json(listed).values())
                    checks.append(check('resource_list', listed_count == len(items), 'resource list names %d items, the tarball holds %d'
                                        % (listed_count, len(items))))
                except (ValueError, OSError, EOFError, AttributeError) as exc:
                    checks.append(check('resource_list', False, 'resource list is not readable: %s' % exc))
    report['passed'] = all(c['passed'] for c in checks)
    report['failed_checks'] = [c['name'] for c in checks if not c['passed']]
    report['s3_requests'] = store.requests
    report['seconds'] = round(time.monotonic() - t0, 3)
    return report


# -- the restore test -----------------------------------------------------------------------------------
def scratch_mapping(namespaces, tag):
    """Source namespace -> scratch namespace ``<ns>-<tag>`` (cut to 63 characters)."""
    out = {}
    for ns in namespaces:
        suffix = '-%s' % tag
        out[ns] = (ns[:63 - len(suffix)] + suffix).strip('-')
    return out


def restore_expectations(items, mapping, excluded=()):
    """What a restore of ``items`` with ``mapping`` must produce: {(api_version, kind, resource, target ns): set(names)};
    controller-owned objects (recreated by their controllers), non-restorable resources and the ``excluded`` resources
    (the restore test's isolation) are left out and counted."""
    expected = {}
    skipped = {'owned': 0, 'non_restorable': 0, 'excluded': 0}
    for item in items:
        if item['namespace'] not in mapping and not (item['resource'] == 'namespaces' and item['name'] in mapping):
            continue
        if item['resource'] in NON_RESTORABLE:
            skipped['non_restorable'] += 1
            continue
        if item['resource'] in excluded:
            skipped['excluded'] += 1
            continue
        if item['owned']:
            skipped['owned'] += 1
            continue
        if item['resource'] == 'namespaces':
            key = (item['api_version'] or 'v1', item['kind'] or 'Namespace', 'namespaces', '')
            expected.setdefault(key, set()).add(mapping[item['name']])
            continue
        key = (item['api_version'], item['kind'], item['resource'], mapping[item['namespace']])
        expected.setdefault(key, set()).add(item['name'])
    return expected, skipped


def compare_restore(expected, actual):
    """Checks that every expected object exists in ``actual`` ({key: set(names)}), per resource and namespace."""
    checks = []
    by_resource = {}
    for key, names in expected.items():
        resource = key[2]
        found = actual.get(key) or set()
        missing = sorted(names - found)
        entry = by_resource.setdefault(resource, {'expected': 0, 'restored': 0, 'missing': []})
        entry['expected'] += len(names)
        entry['restored'] += len(names & found)
        entry['missing'].extend('%s/%s' % (key[3], n) if key[3] else n for n in missing)
    for resource in sorted(by_resource):
        entry = by_resource[resource]
        ok = not entry['missing']
        checks.append(check('restored_%s' % resource, ok, '%d of %d %s restored%s' % (
            entry['restored'], entry['expected'], resource,
            '; missing: %s' % ', '.join(entry['missing'][:10]) if not ok else '')))
    return checks, by_resource


def run_restore_test(client, backup_name, velero_namespace, namespaces, items, tag, timeout=600, poll_interval=1.0,  # noqa: PLR0917
                     cleanup=True, in_progress_deadline=None, isolate=True):
    """Restore ``backup_name``'s ``namespaces`` into scratch namespaces and compare with ``items`` (the tarball's).

    With ``isolate`` (the default) nothing restored runs or binds anything outside (module_utils/restore_isolation.py):
    excluded resources, resource modifiers in a ConfigMap of ``velero_namespace``, ``restorePVs: false``; the report's
    ``isolation`` says what was excluded and changed. Returns the restore-test report, with ``created`` and ``removed``
    (the objects the test made and deleted again); the scratch namespaces and the ConfigMap are deleted afterwards when
    ``cleanup``. Refuses (a failed check) when a scratch namespace already exists.
    """
    t0 = time.monotonic()
    mapping = scratch_mapping(namespaces, tag)
    report = {'restore': None, 'namespace_mapping': mapping, 'checks': [], 'cleanup': None, 'created': [], 'removed': []}
    taken = [target for target in mapping.values() if client.get('v1', 'Namespace', target) is not None]
    if taken:
        report['checks'].append(check('scratch_namespaces_free', False, 'scratch namespaces already exist: %s' % ', '.join(taken)))
        report['passed'] = False
        report['seconds'] = round(time.monotonic() - t0, 3)
        return report
    restore_name = ('%s-verify-%s' % (backup_name, tag))[-63:].lstrip('-.')
    labels = {'machinenativeops.io/restore-test': 'true'}
    params = {'included_namespaces': list(namespaces), 'namespace_mapping': mapping}
    safety = isolation.plan(items, namespaces) if isolate else None
    modifiers_name = '%s-modifiers' % restore_name
    if safety:
        params.update(excluded_resources=safety['excluded_resources'], restore_pvs=False)
        report['isolation'] = dict(safety['report'], excluded_resources=safety['excluded_resources'], restore_pvs=False,
                                   resource_modifier='ConfigMap %s/%s' % (velero_namespace, modifiers_name))
    spec = V.restore_spec(params, backup_name=backup_name)
    if safety:
        spec['resourceModifier'] = {'kind': 'ConfigMap', 'name': modifiers_name}
    body = V.velero_object('Restore', restore_name, velero_namespace, spec, labels=labels)
    try:
        if safety:
            client.create('v1', 'ConfigMap', isolation.configmap(modifiers_name, velero_namespace, safety['modifiers'], labels),
                          namespace=velero_namespace)
            report['created'].append('ConfigMap %s/%s' % (velero_namespace, modifiers_name))
        client.create(V.API_VERSION, 'Restore', body, namespace=velero_namespace)
        report['created'].append('Restore %s/%s' % (velero_namespace, restore_name))
        report['created'].extend('Namespace %s' % target for target in mapping.values())
        _obj, summary = V.wait_for_phase(client, 'Restore', restore_name, velero_namespace, timeout, poll_interval,
                                         in_progress_deadline=in_progress_deadline)
        report['restore'] = summary
        report['checks'].append(check('restore_phase', summary['phase'] == 'Completed', 'Restore %s is %s%s' % (
            restore_name, summary['phase'], '' if summary['phase'] == 'Completed' else ': %s' % V.diagnose(summary))))
        expected, skipped = restore_expectations(items, mapping, excluded=safety['excluded_resources'] if safety else ())
        actual = {}
        for key in expected:
            api_version, kind, resource, target = key
            if resource == 'namespaces':
                actual[key] = set(t for t in mapping.values() if client.get('v1', 'Namespace', t) is not None)
                continue
            if client.resource(api_version, kind) is None:
                actual[key] = set()
                continue
            actual[key] = set((o.get('metadata') or {}).get('name') for o in client.list(api_version, kind, namespace=target))
        checks, by_resource = compare_restore(expected, actual)
        report['checks'].extend(checks)
        report['compared'] = by_resource
        report['source_objects'] = sum(len(v) for v in expected.values())
        report['restored_objects'] = sum(len(v & actual.get(k, set())) for k, v in expected.items())
        report['not_compared'] = skipped
        if not expected:
            report['checks'].append(check('restored_objects', False, 'the backup holds no restorable objects of %s' % ', '.join(namespaces)))
    except V.VeleroError as exc:
        report['checks'].append(check('restore_phase', False, str(exc)))
    finally:
        if cleanup:
            report['cleanup'] = cleanup_namespaces(client, list(mapping.values()), timeout=min(timeout, 120), poll_interval=poll_interval)
            report['removed'].extend('Namespace %s' % n for n in report['cleanup']['deleted'])
            if safety and client.delete('v1', 'ConfigMap', modifiers_name, namespace=velero_namespace) is not None:
                report['removed'].append('ConfigMap %s/%s' % (velero_namespace, modifiers_name))
    report['passed'] = all(c['passed'] for c in report['checks'])
    report['seconds'] = round(time.monotonic() - t0, 3)
    return report


def cleanup_namespaces(client, names, timeout=120, poll_interval=1.0):
    """Delete the scratch namespaces and wait until they are gone; ``{"deleted": [...], "remaining": [...]}``."""
    deleted = []
    for name in names:
        if client.delete('v1', 'Namespace', name) is not None:
            deleted.append(name)
    deadline = time.monotonic() + timeout
    remaining = list(names)
    while remaining and time.monotonic() < deadline:
        remaining = [n for n in remaining if client.get('v1', 'Namespace', n) is not None]
        if remaining:
            time.sleep(poll_interval)
    return {'deleted': deleted, 'remaining': remaining}
