# -*- coding: utf-8 -*-
# Copyright: (c) 2026, machinenativeops platform team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Velero objects: building Backup / Restore / Schedule / DeleteBackupRequest bodies, reading their
phases the way Velero defines them, comparing Schedules, and waiting for terminal phases.

Plain functions; the ones that talk to the cluster take a ``KubeClient`` (module_utils/kube.py).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy
import datetime
import re
import time

from ansible_collections.machinenativeops.platform.plugins.module_utils.durations import (
    go_duration,
    is_go_duration,
    parse_duration,
)
from ansible_collections.machinenativeops.platform.plugins.module_utils.labels import velero_label_value

API_VERSION = 'velero.io/v1'

# Velero's phases (pkg/apis/velero/v1/backup_types.go, restore_types.go).
BACKUP_TERMINAL_PHASES = ('Completed', 'PartiallyFailed', 'Failed', 'FailedValidation')
RESTORE_TERMINAL_PHASES = ('Completed', 'PartiallyFailed', 'Failed', 'FailedValidation')
RUNNING_PHASES = ('New', 'InProgress', 'WaitingForPluginOperations', 'WaitingForPluginOperationsPartiallyFailed',
                  'Finalizing', 'FinalizingPartiallyFailed')
PHASE_MEANING = {
    'New': 'accepted, not yet processed by the Velero server',
    'InProgress': 'being processed by the Velero server',
    'WaitingForPluginOperations': 'items backed up, waiting for asynchronous plugin operations',
    'WaitingForPluginOperationsPartiallyFailed': 'waiting for asynchronous plugin operations; errors were already seen',
    'Finalizing': 'finalizing after asynchronous plugin operations',
    'FinalizingPartiallyFailed': 'finalizing; errors were already seen',
    'Completed': 'finished without errors',
    'PartiallyFailed': 'finished, but some items could not be processed (see errors)',
    'Failed': 'the operation failed as a whole',
    'FailedValidation': 'the spec was rejected by the Velero server before anything ran',
    'Deleting': 'being deleted',
}

_CRON_FIELD = re.compile(r'^[\d*/,\-A-Za-z?]+$')


class VeleroError(Exception):
    """A Velero operation did not reach the wanted result; ``str()`` says which object and why."""

    def __init__(self, message, info=None):
        super(VeleroError, self).__init__(message)
        self.info = info or {}


# -- small parsers ----------------------------------------------------------------------------------
def parse_time(value):
    """RFC 3339 text (``2026-01-02T03:04:05Z``) to an aware datetime (UTC); None for empty/invalid."""
    if not value:
        return None
    text = str(value).strip().replace('Z', '+00:00')
    try:
        parsed = datetime.datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=datetime.timezone.utc)
    return parsed.astimezone(datetime.timezone.utc)


def utcnow():
    return datetime.datetime.now(datetime.timezone.utc)


def validate_cron(expr):
    """A five-field cron expression or an ``@every``/``@daily``-style descriptor; raises ValueError otherwise."""
    text = (expr or '').strip()
    if not text:
        raise ValueError('schedule is empty: give a cron expression such as "0 2 * * *"')
    if text.startswith('@'):
        if text in ('@yearly', '@annually', '@monthly', '@weekly', '@daily', '@midnight', '@hourly'):
            return text
        if text.startswith('@every '):
            every = text[len('@every '):].strip()
            seconds = parse_duration(every, 'schedule @every', positive=True)
            # Velero reads @every with Go's time.ParseDuration: write 7d and the like in Go's form
            return text if is_go_duration(every) else '@every %s' % go_duration(seconds)
        raise ValueError('unknown cron descriptor %r' % text)
    fields = text.split()
    if len(fields) != 5:
        raise ValueError('cron expression %r has %d fields; Velero expects 5 (minute hour day-of-month month day-of-week)' % (text, len(fields)))
    for field in fields:
        if not _CRON_FIELD.match(field):
            raise ValueError('cron expression %r: invalid field %r' % (text, field))
    return text


# -- building bodies -------------------------------------------------------------------------------
def _put(spec, key, value):
    if value is not None:
        spec[key] = value


def label_selector(value):
    """A label selector from a dict: either already ``{matchLabels, matchExpressions}`` or plain labels."""
    if not value:
        return None
    if 'matchLabels' in value or 'matchExpressions' in value:
        return copy.deepcopy(value)
    return {'matchLabels': dict((str(k), str(v)) for k, v in value.items())}


def _selection(spec, params):
    """The namespace/resource/label selection that Backups and Restores share."""
    _put(spec, 'includedNamespaces', params.get('included_namespaces'))
    _put(spec, 'excludedNamespaces', params.get('excluded_namespaces'))
    _put(spec, 'includedResources', params.get('included_resources'))
    _put(spec, 'excludedResources', params.get('excluded_resources'))
    _put(spec, 'includeClusterResources', params.get('include_cluster_resources'))
    _put(spec, 'labelSelector', label_selector(params.get('label_selector')))
    return spec


def backup_spec(params):
    """The Backup ``spec`` (also a Schedule's ``template``) from module-style snake_case options."""
    spec = _selection({}, params)
    ttl = params.get('ttl')
    if ttl:
        spec['ttl'] = go_duration(parse_duration(ttl, 'ttl'))
    _put(spec, 'storageLocation', params.get('storage_location'))
    _put(spec, 'volumeSnapshotLocations', params.get('volume_snapshot_locations'))
    _put(spec, 'snapshotVolumes', params.get('snapshot_volumes'))
    _put(spec, 'defaultVolumesToFsBackup', params.get('default_volumes_to_fs_backup'))
    if params.get('hooks'):
        spec['hooks'] = copy.deepcopy(params['hooks'])
    return spec


def velero_object(kind, name, namespace, spec, labels=None):
    """A Velero object (Backup, Restore, ...) ready to create."""
    body = {'apiVersion': API_VERSION, 'kind': kind,
            'metadata': {'name': name, 'namespace': namespace}, 'spec': spec}
    if labels:
        body['metadata']['labels'] = dict(labels)
    return body


def restore_spec(params, backup_name=None):
    """The Restore ``spec``. ``backup_name`` wins over ``schedule_name`` (resolved by the caller)."""
    spec = {}
    if backup_name or params.get('backup_name'):
        spec['backupName'] = backup_name or params['backup_name']
    elif params.get('schedule_name'):
        spec['scheduleName'] = params['schedule_name']
    _selection(spec, params)
    if params.get('namespace_mapping'):
        spec['namespaceMapping'] = dict((str(k), str(v)) for k, v in params['namespace_mapping'].items())
    _put(spec, 'existingResourcePolicy', params.get('existing_resource_policy'))
    _put(spec, 'restorePVs', params.get('restore_pvs'))
    if params.get('hooks'):
        spec['hooks'] = copy.deepcopy(params['hooks'])
    return spec


def schedule_spec(cron, template, paused=False, use_owner_references=None, skip_immediately=None):
    # paused is always sent (false unpauses a paused Schedule); the other flags only when the user set them
    spec = {'schedule': validate_cron(cron), 'template': template, 'paused': bool(paused)}
    _put(spec, 'useOwnerReferencesInBackup', use_owner_references)
    _put(spec, 'skipImmediately', skip_immediately)
    return spec


def schedule_body(name, namespace, spec, labels=None):
    body = {'apiVersion': API_VERSION, 'kind': 'Schedule',
            'metadata': {'name': name, 'namespace': namespace}, 'spec': spec}
    if labels:
        body['metadata']['labels'] = dict(labels)
    return body


def delete_request_body(backup_name, namespace):
    """A DeleteBackupRequest as ``velero backup delete`` creates it (generateName ``<backup>-``)."""
    return {'apiVersion': API_VERSION, 'kind': 'DeleteBackupRequest',
            'metadata': {'generateName': '%s-' % backup_name[:55], 'namespace': namespace,
                         'labels': {'velero.io/backup-name': velero_label_value(backup_name)}},
            'spec': {'backupName': backup_name}}


# -- comparing Schedules ----------------------------------------------------------------------------
_DEFAULT_FALSE = ('paused', 'useOwnerReferencesInBackup', 'skipImmediately')


def normalize_spec(spec):
    """A spec with the server's equivalent spellings folded: empty values dropped, durations canonical,
    false booleans that mean the default dropped, lists of names sorted."""
    if isinstance(spec, dict):
        out = {}
        for key, raw in spec.items():
            value = normalize_spec(raw)
            if value is None or value in ({}, []):
                continue
            if key in _DEFAULT_FALSE and value is False:
                continue
            if key in ('ttl', 'csiSnapshotTimeout', 'itemOperationTimeout') and isinstance(value, str):
                try:
                    value = go_duration(parse_duration(value, key))
                except ValueError:
                    pass
            if key in ('includedNamespaces', 'excludedNamespaces', 'includedResources', 'excludedResources') and \
                    isinstance(value, list) and all(isinstance(v, str) for v in value):
                value = sorted(set(value))
            out[key] = value
        return out
    if isinstance(spec, list):
        return [normalize_spec(v) for v in spec]
    return spec


def schedule_changes(existing_spec, desired_spec):
    """The top-level spec keys (and template keys as ``template.<key>``) whose values differ."""
    before = normalize_spec(existing_spec or {})
    after = normalize_spec(desired_spec or {})
    changed = []
    for key in sorted(set(before) | set(after)):
        if key == 'template':
            tb, ta = before.get('template') or {}, after.get('template') or {}
            changed.extend('template.%s' % k for k in sorted(set(tb) | set(ta)) if tb.get(k) != ta.get(k))
        elif before.get(key) != after.get(key):
            changed.append(key)
    return changed


def _same(key, a, b):
    return normalize_spec({key: a}) == normalize_spec({key: b})


def schedule_plan(existing, desired_spec, desired_labels=None):
    """What ``ensure schedule`` does: ``{'action': create|update|none, 'changes', 'patch', 'before', 'after'}``.

    Only the fields in ``desired_spec`` (the ones the user set) and ``desired_labels`` are compared and patched:
    fields the module does not manage (``csiSnapshotTimeout``, ``resourcePolicy``, ``template.metadata``...) and
    ``status`` (``lastBackup``, from which Velero computes the next run) are left as they are. ``patch`` is a JSON
    merge patch of exactly the changed fields; ``before`` / ``after`` (the diff) hold exactly those fields.
    """
    if existing is None:
        return {'action': 'create', 'changes': ['spec'], 'patch': None, 'before': {}, 'after': normalize_spec(desired_spec)}
    current = existing.get('spec') or {}
    changes, patch, before, after = [], {}, {}, {}
    for key in sorted(desired_spec):
        value = desired_spec[key]
        if key == 'template' and isinstance(value, dict):
            current_template = current.get('template') or {}
            for sub in sorted(value):
                if not _same(sub, current_template.get(sub), value[sub]):
                    changes.append('template.%s' % sub)
                    patch.setdefault('spec', {}).setdefault('template', {})[sub] = copy.deepcopy(value[sub])
                    before.setdefault('spec', {}).setdefault('template', {})[sub] = copy.deepcopy(current_template.get(sub))
                    after.setdefault('spec', {}).setdefault('template', {})[sub] = copy.deepcopy(value[sub])
        elif not _same(key, current.get(key), value):
            changes.append(key)
            patch.setdefault('spec', {})[key] = copy.deepcopy(value)
            before.setdefault('spec', {})[key] = copy.deepcopy(current.get(key))
            after.setdefault('spec', {})[key] = copy.deepcopy(value)
    current_labels = (existing.get('metadata') or {}).get('labels') or {}
    for key in sorted(desired_labels or {}):
        value = desired_labels[key]
        if current_labels.get(key) != value:
            changes.append('metadata.labels.%s' % key)
            patch.setdefault('metadata', {}).setdefault('labels', {})[key] = value
            before.setdefault('metadata', {}).setdefault('labels', {})[key] = current_labels.get(key)
            after.setdefault('metadata', {}).setdefault('labels', {})[key] = value
    return {'action': 'update' if changes else 'none', 'changes': changes, 'patch': patch or None,
            'before': before, 'after': after}


# -- reading phases ---------------------------------------------------------------------------------
def summarize(obj, kind=None, now=None, in_progress_deadline=None):
    """The facts of a Backup or Restore a report needs, phase interpreted the Velero way."""
    obj = obj or {}
    meta = obj.get('metadata') or {}
    status = obj.get('status') or {}
    spec = obj.get('spec') or {}
    kind = kind or obj.get('kind') or 'Backup'
    terminal = BACKUP_TERMINAL_PHASES if kind == 'Backup' else RESTORE_TERMINAL_PHASES
    phase = status.get('phase') or 'New'
    started = parse_time(status.get('startTimestamp'))
    completed = parse_time(status.get('completionTimestamp'))
    progress = status.get('progress') or {}
    out = {
        'kind': kind,
        'name': meta.get('name'),
        'namespace': meta.get('namespace'),
        'phase': phase,
        'meaning': PHASE_MEANING.get(phase, 'unknown phase'),
        'terminal': phase in terminal,
        'succeeded': phase == 'Completed',
        'warnings': int(status.get('warnings') or 0),
        'errors': int(status.get('errors') or 0),
        'started': status.get('startTimestamp'),
        'completed': status.get('completionTimestamp'),
        'duration_seconds': (completed - started).total_seconds() if started and completed else None,
        'failure_reason': status.get('failureReason'),
        'validation_errors': list(status.get('validationErrors') or []),
        'created': meta.get('creationTimestamp'),
        'labels': dict(meta.get('labels') or {}),
    }
    if kind == 'Backup':
        out.update({'expiration': status.get('expiration'), 'storage_location': spec.get('storageLocation'),
                    'schedule': (meta.get('labels') or {}).get('velero.io/schedule-name'),
                    'items_backed_up': progress.get('itemsBackedUp'), 'total_items': progress.get('totalItems')})
    else:
        out.update({'backup_name': spec.get('backupName'), 'schedule_name': spec.get('scheduleName'),
                    'items_restored': progress.get('itemsRestored'), 'total_items': progress.get('totalItems')})
    out['stuck'] = False
    if phase in RUNNING_PHASES and in_progress_deadline is not None:
        since = started or parse_time(meta.get('creationTimestamp'))
        now = now or utcnow()
        if since is not None:
            age = (now - since).total_seconds()
            out['in_progress_seconds'] = age
            if age > in_progress_deadline:
                out['stuck'] = True
    return out


def diagnose(summary, in_progress_deadline=None):
    """One sentence on what a summarized Backup/Restore means for its user, or None for a success."""
    kind, name, phase = summary['kind'], '%s/%s' % (summary['namespace'], summary['name']), summary['phase']
    if phase == 'Completed':
        return None
    if phase == 'PartiallyFailed':
        return '%s %s is PartiallyFailed with %d error(s) and %d warning(s)' % (kind, name, summary['errors'], summary['warnings'])
    if phase == 'Failed':
        return '%s %s Failed: %s' % (kind, name, summary.get('failure_reason') or 'no failureReason recorded')
    if phase == 'FailedValidation':
        return '%s %s FailedValidation: %s' % (kind, name, '; '.join(summary['validation_errors']) or 'no validationErrors recorded')
    if summary.get('stuck'):
        return ('%s %s is stuck in %s for %ds (deadline %ds, started %s): the Velero server is not progressing it; '
                'a backup that was InProgress when the Velero server restarted is never resumed: check the velero '
                'deployment and its logs, then delete this %s and create a new one'
                % (kind, name, phase, int(summary.get('in_progress_seconds') or 0), int(in_progress_deadline or 0),
                   summary.get('started') or summary.get('created'), kind.lower()))
    return '%s %s is %s (%s)' % (kind, name, phase, summary['meaning'])


def is_newer(a, b):
    """Whether Backup ``a`` started (or was created) after ``b``."""
    def key(obj):
        status = obj.get('status') or {}
        meta = obj.get('metadata') or {}
        return (parse_time(status.get('startTimestamp')) or parse_time(meta.get('creationTimestamp'))
                or datetime.datetime.min.replace(tzinfo=datetime.timezone.utc), meta.get('name') or '')
    return key(a) > key(b)


def latest_backup(backups, schedule=None, phases=('Completed',)):
    """The newest Backup (of ``schedule`` when given) whose phase is in ``phases``; None when there is none."""
    best = None
    for backup in backups:
        labels = (backup.get('metadata') or {}).get('labels') or {}
        if schedule and labels.get('velero.io/schedule-name') != schedule:
            continue
        if phases and (backup.get('status') or {}).get('phase') not in phases:
            continue
        if best is None or is_newer(backup, best):
            best = backup
    return best


# -- talking to the cluster ----------------------------------------------------------------------------
def wait_for_phase(client, kind, name, namespace, timeout, poll_interval=1.0, in_progress_deadline=None, clock=time.monotonic,  # noqa: PLR0917
                   sleep=time.sleep):
    """Poll a Backup/Restore until a terminal phase, the ``timeout`` or the ``in_progress_deadline``.

    Returns ``(object, summary)``; raises VeleroError naming the object when it disappears, when it is
    stuck past the deadline, or when ``timeout`` seconds pass (with the phase it was last seen in).
    """
    deadline = clock() + timeout
    while True:
        obj = client.get(API_VERSION, kind, name, namespace)
        if obj is None:
            raise VeleroError('%s %s/%s disappeared while waiting for it to finish' % (kind, namespace, name))
        summary = summarize(obj, kind, in_progress_deadline=in_progress_deadline)
        if summary['terminal']:
            return obj, summary
        if summary['stuck']:
            raise VeleroError(diagnose(summary, in_progress_deadline), summary)
        if clock() >= deadline:
            raise VeleroError('%s %s/%s did not reach a terminal phase within %ss: last seen %s (%s)%s'
                              % (kind, namespace, name, timeout, summary['phase'], summary['meaning'],
                                 '; started %s' % summary['started'] if summary['started'] else ''), summary)
        sleep(poll_interval)


def wait_until_gone(client, kind, name, namespace, timeout, poll_interval=1.0, clock=time.monotonic, sleep=time.sleep):  # noqa: PLR0917
    deadline = clock() + timeout
    while client.get(API_VERSION, kind, name, namespace) is not None:
        if clock() >= deadline:
            return False
        sleep(poll_interval)
    return True


def list_backups(client, namespace, schedule=None):
    selector = 'velero.io/schedule-name=%s' % schedule if schedule else None
    return list(client.list(API_VERSION, 'Backup', namespace=namespace, label_selector=selector))


def pending_delete_requests(client, namespace, backup_name):
    found = []
    for dbr in client.list(API_VERSION, 'DeleteBackupRequest', namespace=namespace,
                           label_selector='velero.io/backup-name=%s' % velero_label_value(backup_name)):
        if (dbr.get('spec') or {}).get('backupName') == backup_name and (dbr.get('status') or {}).get('phase') != 'Processed':
            found.append(dbr)
    return found
