# -*- coding: utf-8 -*-
# Copyright: (c) 2026, machinenativeops platform team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Health evaluation of a Kubernetes platform (used by the ``health_check`` module).

Evaluators are plain functions ``evaluate_<thing>(obj, thresholds, now) -> finding or None`` over the
plain dicts the API returns; a finding is a dict ``{check, kind, namespace, name, severity, reason,
message, since}`` with severity ``ok``, ``warning`` or ``critical``. Each object yields at most one
finding: the most important problem gives ``reason``, ``message`` lists all of them.

``HealthRunner`` lists every kind once per scope (cluster-wide, or once per namespace when namespaces are
given), with the label selector evaluated by the API server, and evaluates the objects page by page.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import json
import re
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request

from ansible_collections.machinenativeops.platform.plugins.module_utils.durations import parse_duration

CHECKS = ('workloads', 'pods', 'nodes', 'storage', 'jobs', 'certificates', 'gitops', 'backups', 'mesh', 'alerts', 'endpoints')
_RANK = {'ok': 0, 'warning': 1, 'critical': 2}
# A check the credentials may not make (403 from RBAC) is neither healthy nor a problem of the cluster: its findings
# have severity 'unknown', listed after the problems and before the healthy objects, and they do not change the status.
_ORDER = {'ok': 0, 'unknown': 0.5, 'warning': 1, 'critical': 2}


def _zero_counts():
    """Counts per severity: ok, warning, critical and unknown."""
    return dict(ok=0, warning=0, critical=0, unknown=0)


DEFAULT_THRESHOLDS = dict(
    max_restarts=5,
    max_pending_seconds=300,
    min_ready_ratio=1.0,
    cert_expiry_days=14,
    max_backup_age='25h',
    max_cronjob_age='25h',
)

# Candidate API versions, newest first: the first one the cluster serves is used.
FLUX_KINDS = (
    (('kustomize.toolkit.fluxcd.io/v1', 'kustomize.toolkit.fluxcd.io/v1beta2'), 'Kustomization'),
    (('helm.toolkit.fluxcd.io/v2', 'helm.toolkit.fluxcd.io/v2beta2', 'helm.toolkit.fluxcd.io/v2beta1'), 'HelmRelease'),
    (('source.toolkit.fluxcd.io/v1', 'source.toolkit.fluxcd.io/v1beta2'), 'GitRepository'),
)
ARGO_KIND = (('argoproj.io/v1alpha1',), 'Application')
CERT_KIND = (('cert-manager.io/v1',), 'Certificate')
VELERO = 'velero.io/v1'
ISTIO_PROBE_KINDS = ((('networking.istio.io/v1', 'networking.istio.io/v1beta1', 'networking.istio.io/v1alpha3'), 'VirtualService'),)

WAITING_CRITICAL = ('CrashLoopBackOff', 'ImagePullBackOff', 'ErrImagePull', 'InvalidImageName', 'CreateContainerConfigError',
                    'CreateContainerError', 'RunContainerError')
FAILED_BACKUP_PHASES = ('Failed', 'PartiallyFailed', 'FailedValidation')


class HealthError(Exception):
    """A problem that stops the whole health check (bad options, unreachable cluster, bad credentials)."""


# -- small helpers ----------------------------------------------------------------------------------
def parse_time(value):
    """An aware UTC datetime from an RFC 3339 timestamp (``Z`` or offset, optional fraction); None if absent."""
    if not value:
        return None
    if isinstance(value, datetime.datetime):
        return value if value.tzinfo else value.replace(tzinfo=datetime.timezone.utc)
    text = str(value).strip()
    if text.endswith('Z') or text.endswith('z'):
        text = text[:-1] + '+00:00'
    match = re.match(r'^(.*T\d\d:\d\d:\d\d)(\.\d+)?(.*)$', text)
    if match and match.group(2):
        text = match.group(1) + match.group(2)[:7].ljust(7, '0') + match.group(3)
    try:
        parsed = datetime.datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=datetime.timezone.utc)
    return parsed.astimezone(datetime.timezone.utc)


def format_time(value):
    if value is None:
        return None
    return value.astimezone(datetime.timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ')


def utcnow():
    return datetime.datetime.now(datetime.timezone.utc)


def human_duration(seconds):
    seconds = int(max(0, seconds))
    if seconds < 120:
        return '%ds' % seconds
    if seconds < 7200:
        return '%dm' % (seconds // 60)
    if seconds < 172800:
        return '%dh%02dm' % (seconds // 3600, (seconds % 3600) // 60)
    return '%dd%02dh' % (seconds // 86400, (seconds % 86400) // 3600)


def normalize_thresholds(thresholds):
    """Thresholds with defaults filled in and durations converted to seconds; raises ValueError."""
    merged = dict(DEFAULT_THRESHOLDS)
    for key, value in (thresholds or {}).items():
        if value is not None:
            if key not in DEFAULT_THRESHOLDS:
                raise ValueError('unknown threshold %r; known: %s' % (key, ', '.join(sorted(DEFAULT_THRESHOLDS))))
            merged[key] = value
    result = dict(merged)
    for key in ('max_backup_age', 'max_cronjob_age'):
        result[key] = parse_duration(merged[key], 'threshold %s' % key)
    for key in ('max_restarts', 'max_pending_seconds', 'cert_expiry_days'):
        try:
            result[key] = int(merged[key])
        except (TypeError, ValueError):
            raise ValueError('threshold %s must be an integer, got %r' % (key, merged[key])) from None
        if result[key] < 0:
            raise ValueError('threshold %s must not be negative' % key)
    try:
        result['min_ready_ratio'] = float(merged['min_ready_ratio'])
    except (TypeError, ValueError):
        raise ValueError('threshold min_ready_ratio must be a number, got %r' % (merged['min_ready_ratio'],)) from None
    if not 0.0 <= result['min_ready_ratio'] <= 1.0:
        raise ValueError('threshold min_ready_ratio must be between 0 and 1, got %s' % result['min_ready_ratio'])
    return result


def _meta(obj):
    return obj.get('metadata') or {}


def _status(obj):
    return obj.get('status') or {}


def _conditions(obj):
    return dict((c.get('type'), c) for c in (_status(obj).get('conditions') or []) if isinstance(c, dict))


def finding(check, obj, severity, reason, message, since=None, kind=None, namespace=None, name=None):  # noqa: PLR0917
    meta = _meta(obj) if obj else {}
    return dict(check=check, kind=kind or (obj or {}).get('kind'), namespace=namespace if namespace is not None else meta.get('namespace'),
                name=name if name is not None else meta.get('name'), severity=severity, reason=reason, message=message,
                since=format_time(since) if isinstance(since, datetime.datetime) else since)


def _combine(check, obj, problems, kind=None):
    """One finding from a list of (severity, reason, message, since) problems, or an ``ok`` finding."""
    if not problems:
        return finding(check, obj, 'ok', 'Healthy', '%s is healthy' % (kind or obj.get('kind')), kind=kind)
    # most severe first; among equals the order the evaluator listed them in (most specific first)
    ordered = sorted(enumerate(problems), key=lambda item: (-_RANK[item[1][0]], item[0]))
    severity, reason, _message, since = ordered[0][1]
    message = '; '.join(p[2] for _i, p in ordered)
    return finding(check, obj, severity, reason, message, since=since, kind=kind)


def _age(since, now):
    return (now - since).total_seconds() if since else None


# -- workloads ---------------------------------------------------------------------------------------
def _replica_problems(desired, ready, updated, thresholds, since):
    problems = []
    if desired > 0:
        ratio = float(ready) / desired
        if ratio < thresholds['min_ready_ratio']:
            severity = 'critical' if ready == 0 else 'warning'
            problems.append((severity, 'ReplicasNotReady', '%d/%d replicas ready (minimum ratio %g)' % (ready, desired, thresholds['min_ready_ratio']), since))
        if updated < desired:
            problems.append(('warning', 'RolloutIncomplete', '%d/%d replicas updated to the current revision' % (updated, desired), since))
    return problems


def _generation_problem(obj):
    generation = _meta(obj).get('generation')
    observed = _status(obj).get('observedGeneration')
    if generation is not None and (observed is None or observed < generation):
        return ('warning', 'ObservedGenerationLag', 'controller has observed generation %s of %s' % (observed if observed is not None else 'none', generation),
                None)
    return None


def evaluate_deployment(obj, thresholds, now):  # pylint: disable=unused-argument
    spec, status = obj.get('spec') or {}, _status(obj)
    desired = spec.get('replicas', 1) or 0
    conditions = _conditions(obj)
    progressing = conditions.get('Progressing') or {}
    available = conditions.get('Available') or {}
    since = parse_time(available.get('lastTransitionTime')) if available.get('status') == 'False' else None
    problems = []
    if progressing.get('status') == 'False' and progressing.get('reason') == 'ProgressDeadlineExceeded':
        problems.append(('critical', 'ProgressDeadlineExceeded', 'rollout stuck: %s' % (progressing.get('message') or 'progress deadline exceeded'),
                         parse_time(progressing.get('lastTransitionTime'))))
    if not spec.get('paused'):
        problems += _replica_problems(desired, status.get('readyReplicas') or 0, status.get('updatedReplicas') or 0, thresholds, since)
    lag = _generation_problem(obj)
    if lag:
        problems.append(lag)
    return _combine('workloads', obj, problems, kind='Deployment')


def evaluate_statefulset(obj, thresholds, now):  # pylint: disable=unused-argument
    spec, status = obj.get('spec') or {}, _status(obj)
    desired = spec.get('replicas', 1) or 0
    updated = status.get('updatedReplicas') or 0
    if status.get('updateRevision') and status.get('updateRevision') == status.get('currentRevision'):
        updated = max(updated, status.get('currentReplicas') or 0)
    problems = _replica_problems(desired, status.get('readyReplicas') or 0, updated, thresholds, None)
    lag = _generation_problem(obj)
    if lag:
        problems.append(lag)
    return _combine('workloads', obj, problems, kind='StatefulSet')


def evaluate_daemonset(obj, thresholds, now):  # pylint: disable=unused-argument
    status = _status(obj)
    desired = status.get('desiredNumberScheduled') or 0
    problems = _replica_problems(desired, status.get('numberReady') or 0, status.get('updatedNumberScheduled') or 0, thresholds, None)
    misscheduled = status.get('numberMisscheduled') or 0
    if misscheduled:
        problems.append(('warning', 'Misscheduled', '%d pods run on nodes they should not run on' % misscheduled, None))
    lag = _generation_problem(obj)
    if lag:
        problems.append(lag)
    return _combine('workloads', obj, problems, kind='DaemonSet')


# -- pods --------------------------------------------------------------------------------------------
def evaluate_pod(obj, thresholds, now):
    status = _status(obj)
    phase = status.get('phase') or 'Unknown'
    if phase == 'Succeeded':
        return _combine('pods', obj, [], kind='Pod')
    conditions = _conditions(obj)
    problems = []
    containers = list(status.get('initContainerStatuses') or []) + list(status.get('containerStatuses') or [])
    for cs in containers:
        cname = cs.get('name')
        state = cs.get('state') or {}
        waiting = state.get('waiting') or {}
        last = (cs.get('lastState') or {}).get('terminated') or {}
        restarts = cs.get('restartCount') or 0
        if waiting.get('reason') in ('ImagePullBackOff', 'ErrImagePull', 'InvalidImageName'):
            detail = ': ' + waiting['message'] if waiting.get('message') else ''
            problems.append(('critical', 'ImagePullBackOff', 'container %s: %s%s' % (cname, waiting['reason'], detail), None))
        if last.get('reason') == 'OOMKilled':
            severity = 'critical' if waiting.get('reason') == 'CrashLoopBackOff' else 'warning'
            problems.append((severity, 'OOMKilled', 'container %s was OOM-killed (exit code %s, %d restarts)' % (cname, last.get('exitCode', 137), restarts),
                             parse_time(last.get('finishedAt'))))
        if waiting.get('reason') == 'CrashLoopBackOff':
            problems.append(('critical', 'CrashLoopBackOff', 'container %s in CrashLoopBackOff (%d restarts, last exit: %s)' % (
                cname, restarts, last.get('reason') or last.get('exitCode') or 'unknown'), parse_time(last.get('finishedAt'))))
        elif waiting.get('reason') in WAITING_CRITICAL and waiting.get('reason') not in ('ImagePullBackOff', 'ErrImagePull', 'InvalidImageName'):
            detail = ': ' + waiting['message'] if waiting.get('message') else ''
            problems.append(('critical', waiting['reason'], 'container %s: %s%s' % (cname, waiting['reason'], detail), None))
        if restarts > thresholds['max_restarts']:
            problems.append(('warning', 'RestartsAboveThreshold',
                             'container %s restarted %d times (threshold %d)' % (cname, restarts, thresholds['max_restarts']),
                             parse_time(last.get('finishedAt'))))
    created = parse_time(_meta(obj).get('creationTimestamp'))
    if phase == 'Pending':
        scheduled = conditions.get('PodScheduled') or {}
        age = _age(created, now)
        if age is not None and age > thresholds['max_pending_seconds']:
            why = scheduled.get('reason') if scheduled.get('status') == 'False' else None
            detail = ': %s' % (scheduled.get('message') or why) if why else ''
            problems.append(('critical' if why == 'Unschedulable' else 'warning', 'Unschedulable' if why == 'Unschedulable' else 'PendingTooLong',
                             'pending for %s (threshold %ds)%s' % (human_duration(age), thresholds['max_pending_seconds'], detail), created))
    elif phase == 'Failed':
        problems.append(('warning', status.get('reason') or 'Failed', 'pod failed%s' % (': ' + status['message'] if status.get('message') else ''), None))
    elif phase == 'Unknown':
        problems.append(('critical', 'PodUnknown', 'pod phase Unknown (node unreachable?)', None))
    ready = conditions.get('Ready') or {}
    if phase == 'Running' and ready.get('status') != 'True':
        not_ready = [cs.get('name') for cs in status.get('containerStatuses') or [] if not cs.get('ready')]
        problems.append(('warning', 'NotReady', 'pod not ready%s' % (' (containers not ready: %s)' % ', '.join(not_ready) if not_ready else ''),
                         parse_time(ready.get('lastTransitionTime'))))
    return _combine('pods', obj, problems, kind='Pod')


# -- nodes -------------------------------------------------------------------------------------------
def evaluate_node(obj, thresholds, now):  # pylint: disable=unused-argument
    conditions = _conditions(obj)
    problems = []
    ready = conditions.get('Ready')
    if not ready or ready.get('status') != 'True':
        state = ready.get('status') if ready else 'missing'
        problems.append(('critical', 'NodeNotReady', 'Ready=%s%s' % (state, ': %s' % ready.get('message') if ready and ready.get('message') else ''),
                         parse_time((ready or {}).get('lastTransitionTime'))))
    for ctype in ('MemoryPressure', 'DiskPressure', 'PIDPressure'):
        cond = conditions.get(ctype)
        if cond and cond.get('status') == 'True':
            problems.append(('warning', ctype, '%s=True%s' % (ctype, ': %s' % cond['message'] if cond.get('message') else ''),
                             parse_time(cond.get('lastTransitionTime'))))
    network = conditions.get('NetworkUnavailable')
    if network and network.get('status') == 'True':
        problems.append(('critical', 'NetworkUnavailable', 'NetworkUnavailable=True', parse_time(network.get('lastTransitionTime'))))
    if (obj.get('spec') or {}).get('unschedulable'):
        problems.append(('warning', 'Unschedulable', 'node is cordoned (spec.unschedulable)', None))
    return _combine('nodes', obj, problems, kind='Node')


# -- storage -----------------------------------------------------------------------------------------
def evaluate_pvc(obj, thresholds, now):
    phase = _status(obj).get('phase')
    created = parse_time(_meta(obj).get('creationTimestamp'))
    problems = []
    if phase == 'Lost':
        problems.append(('critical', 'Lost', 'PersistentVolumeClaim lost its volume %s' % ((obj.get('spec') or {}).get('volumeName') or ''), None))
    elif phase == 'Pending':
        age = _age(created, now)
        if age is not None and age > thresholds['max_pending_seconds']:
            problems.append(('warning', 'Pending',
                             'PersistentVolumeClaim pending for %s (threshold %ds)' % (human_duration(age), thresholds['max_pending_seconds']), created))
    return _combine('storage', obj, problems, kind='PersistentVolumeClaim')


# -- jobs --------------------------------------------------------------------------------------------
def evaluate_job(obj, thresholds, now):  # pylint: disable=unused-argument
    failed = _conditions(obj).get('Failed')
    problems = []
    if failed and failed.get('status') == 'True':
        problems.append(('warning', failed.get('reason') or 'JobFailed', 'job failed: %s' % (failed.get('message') or failed.get('reason') or 'unknown reason'),
                         parse_time(failed.get('lastTransitionTime'))))
    return _combine('jobs', obj, problems, kind='Job')


def evaluate_cronjob(obj, thresholds, now):
    spec, status = obj.get('spec') or {}, _status(obj)
    problems = []
    if not spec.get('suspend'):
        limit = thresholds['max_cronjob_age']
        last_success = parse_time(status.get('lastSuccessfulTime'))
        created = parse_time(_meta(obj).get('creationTimestamp'))
        if last_success is not None:
            age = _age(last_success, now)
            if age > limit:
                problems.append(('warning', 'LastSuccessTooOld', 'last successful run %s ago (threshold %s)' % (human_duration(age), human_duration(limit)),
                                 last_success))
        else:
            age = _age(created, now)
            if age is not None and age > limit:
                text = 'no successful run in the %s since creation (threshold %s)' % (human_duration(age), human_duration(limit))
                problems.append(('warning', 'NoSuccessfulRun', text, created))
    return _combine('jobs', obj, problems, kind='CronJob')


# -- certificates ------------------------------------------------------------------------------------
def evaluate_certificate(obj, thresholds, now):
    ready = _conditions(obj).get('Ready')
    status = _status(obj)
    problems = []
    if not ready or ready.get('status') != 'True':
        problems.append(('critical', (ready or {}).get('reason') or 'NotReady',
                         'certificate not Ready%s' % (': %s' % ready.get('message') if ready and ready.get('message') else ''),
                         parse_time((ready or {}).get('lastTransitionTime'))))
    not_after = parse_time(status.get('notAfter'))
    if not_after is not None:
        left = (not_after - now).total_seconds()
        if left <= 0:
            problems.append(('critical', 'Expired', 'certificate expired at %s' % format_time(not_after), not_after))
        elif left < thresholds['cert_expiry_days'] * 86400:
            problems.append(('warning', 'ExpiringSoon', 'certificate expires in %s at %s (threshold %d days)' % (human_duration(left), format_time(not_after),
                                                                                                                 thresholds['cert_expiry_days']),
                             parse_time(status.get('renewalTime'))))
    return _combine('certificates', obj, problems, kind='Certificate')


# -- gitops ------------------------------------------------------------------------------------------
def evaluate_flux(obj, thresholds, now):  # pylint: disable=unused-argument
    kind = obj.get('kind') or 'FluxObject'
    ready = _conditions(obj).get('Ready')
    problems = []
    if (obj.get('spec') or {}).get('suspend'):
        problems.append(('warning', 'Suspended', 'reconciliation is suspended', None))
    if not ready:
        problems.append(('warning', 'NotReconciled', 'no Ready condition yet', None))
    elif ready.get('status') == 'False':
        problems.append(('critical', ready.get('reason') or 'NotReady', 'Ready=False: %s' % (ready.get('message') or ready.get('reason') or 'no message'),
                         parse_time(ready.get('lastTransitionTime'))))
    elif ready.get('status') != 'True':
        problems.append(('warning', ready.get('reason') or 'Progressing', 'Ready=%s: %s' % (ready.get('status'), ready.get('message') or 'reconciling'),
                         parse_time(ready.get('lastTransitionTime'))))
    return _combine('gitops', obj, problems, kind=kind)


def evaluate_argo_application(obj, thresholds, now):  # pylint: disable=unused-argument
    status = _status(obj)
    health = (status.get('health') or {}).get('status') or 'Unknown'
    sync = (status.get('sync') or {}).get('status') or 'Unknown'
    problems = []
    if health in ('Degraded', 'Missing'):
        message = (status.get('health') or {}).get('message')
        problems.append(('critical', 'Health%s' % health, 'health %s%s' % (health, ': %s' % message if message else ''), None))
    elif health != 'Healthy':
        problems.append(('warning', 'Health%s' % health, 'health %s' % health, None))
    if sync != 'Synced':
        problems.append(('warning', 'Sync%s' % sync, 'sync status %s' % sync, None))
    operation = (status.get('operationState') or {})
    if operation.get('phase') in ('Failed', 'Error'):
        problems.append(('critical', 'SyncFailed', 'last sync %s: %s' % (operation['phase'], operation.get('message') or ''),
                         parse_time(operation.get('finishedAt'))))
    return _combine('gitops', obj, problems, kind='Application')


# -- backups -----------------------------------------------------------------------------------------
def evaluate_backup_storage_location(obj, thresholds, now):  # pylint: disable=unused-argument
    status = _status(obj)
    phase = status.get('phase') or 'Unknown'
    problems = []
    if phase != 'Available':
        problems.append(('critical', 'Unavailable', 'BackupStorageLocation phase %s%s' % (phase, ': %s' % status['message'] if status.get('message') else ''),
                         parse_time(status.get('lastValidationTime'))))
    return _combine('backups', obj, problems, kind='BackupStorageLocation')


class BackupIndex:
    """What the schedules need from the Backups, kept small: per schedule the newest Completed backup and
    the newest backup of any phase; plus failed backups that belong to no schedule."""

    def __init__(self, thresholds, now):
        self.thresholds = thresholds
        self.now = now
        self.completed = {}   # (namespace, schedule) -> (time, name)
        self.latest = {}      # (namespace, schedule) -> (time, name, phase, failureReason)
        self.unscheduled_failures = []

    @staticmethod
    def _backup_time(obj):
        status = _status(obj)
        return parse_time(status.get('completionTimestamp')) or parse_time(status.get('startTimestamp')) or parse_time(_meta(obj).get('creationTimestamp'))

    def add(self, obj):
        meta = _meta(obj)
        status = _status(obj)
        phase = status.get('phase') or 'New'
        schedule = (meta.get('labels') or {}).get('velero.io/schedule-name')
        when = self._backup_time(obj)
        if schedule:
            key = (meta.get('namespace'), schedule)
            if phase == 'Completed' and when and (key not in self.completed or when > self.completed[key][0]):
                self.completed[key] = (when, meta.get('name'))
            created = parse_time(meta.get('creationTimestamp')) or when
            if created and (key not in self.latest or created > self.latest[key][0]):
                self.latest[key] = (created, meta.get('name'), phase, status.get('failureReason'))
        elif phase in FAILED_BACKUP_PHASES and when and _age(when, self.now) <= self.thresholds['max_backup_age']:
            self.unscheduled_failures.append(finding('backups', obj, 'warning', 'Backup%s' % phase,
                                                     'backup %s%s' % (phase, ': %s' % status['failureReason'] if status.get('failureReason') else ''),
                                                     since=when, kind='Backup'))

    def evaluate_schedule(self, obj):
        meta = _meta(obj)
        key = (meta.get('namespace'), meta.get('name'))
        limit = self.thresholds['max_backup_age']
        problems = []
        if (obj.get('spec') or {}).get('paused'):
            return _combine('backups', obj, [('warning', 'Paused', 'schedule is paused', None)], kind='Schedule')
        latest = self.latest.get(key)
        completed = self.completed.get(key)
        if completed is None:
            created = parse_time(meta.get('creationTimestamp'))
            age = _age(created, self.now)
            if age is None or age > limit:
                problems.append(('critical', 'NoCompletedBackup', 'no Completed backup of this schedule (threshold %s)' % human_duration(limit), created))
        else:
            age = _age(completed[0], self.now)
            if age > limit:
                text = 'newest Completed backup %s finished %s ago (threshold %s)' % (completed[1], human_duration(age), human_duration(limit))
                problems.append(('critical', 'BackupTooOld', text, completed[0]))
        if latest is not None and latest[2] in FAILED_BACKUP_PHASES:
            problems.append(('warning', 'LastBackup%s' % latest[2],
                             'latest backup %s is %s%s' % (latest[1], latest[2], ': %s' % latest[3] if latest[3] else ''), latest[0]))
        return _combine('backups', obj, problems, kind='Schedule')


# -- mesh --------------------------------------------------------------------------------------------
def evaluate_istiod(deployments, thresholds, now):
    """One finding for the control plane from the istiod Deployments (``[]`` when there is none)."""
    if not deployments:
        return finding('mesh', None, 'critical', 'IstiodMissing', 'no istiod Deployment found', kind='Deployment', namespace='istio-system', name='istiod')
    ready = sum((_status(d).get('readyReplicas') or 0) for d in deployments)
    names = ', '.join(sorted(_meta(d).get('name') for d in deployments))
    if ready < 1:
        return finding('mesh', deployments[0], 'critical', 'IstiodNotReady', 'no ready istiod replica (%s)' % names, kind='Deployment')
    desired = sum(((d.get('spec') or {}).get('replicas', 1) or 0) for d in deployments)
    if desired and float(ready) / desired < thresholds['min_ready_ratio']:
        return finding('mesh', deployments[0], 'warning', 'IstiodDegraded', '%d/%d istiod replicas ready' % (ready, desired), kind='Deployment')
    return finding('mesh', deployments[0], 'ok', 'Healthy', 'istiod ready (%d replicas)' % ready, kind='Deployment')


def evaluate_namespace_injection(obj, thresholds, now):  # pylint: disable=unused-argument
    labels = _meta(obj).get('labels') or {}
    value = labels.get('istio-injection')
    problems = []
    if value == 'disabled':
        problems.append(('warning', 'InjectionDisabled', 'namespace has istio-injection=disabled but should be in the mesh', None))
    elif value != 'enabled' and not labels.get('istio.io/rev'):
        problems.append(('warning', 'InjectionLabelMissing', 'namespace lacks the istio-injection=enabled (or istio.io/rev) label', None))
    return _combine('mesh', obj, problems, kind='Namespace')


# -- alerts ------------------------------------------------------------------------------------------
def alert_matches(labels, severities, label_filter):
    labels = labels or {}
    if severities and labels.get('severity') not in severities:
        return False
    for key, expected in (label_filter or {}).items():
        if labels.get(key) != str(expected):
            return False
    return True


def evaluate_alert(alert, severities, label_filter, source):
    """A finding for a firing alert that passes the filters, else None.

    Accepts the Prometheus (``/api/v1/alerts``: state, activeAt) and Alertmanager (``/api/v2/alerts``:
    status.state, startsAt) shapes.
    """
    labels = alert.get('labels') or {}
    state = alert.get('state') or (alert.get('status') or {}).get('state')
    if state not in ('firing', 'active'):
        return None
    if not alert_matches(labels, severities, label_filter):
        return None
    annotations = alert.get('annotations') or {}
    severity = 'critical' if labels.get('severity') == 'critical' else 'warning'
    text = annotations.get('summary') or annotations.get('description') or annotations.get('message') or 'alert firing'
    target = labels.get('pod') or labels.get('deployment') or labels.get('service') or labels.get('instance') or labels.get('job')
    name = labels.get('alertname') or 'unnamed'
    return dict(check='alerts', kind='Alert', namespace=labels.get('namespace'), name=name, severity=severity, reason=name,
                message='%s firing in %s (severity %s%s): %s' % (name, source, labels.get('severity') or 'none', ', %s' % target if target else '', text),
                since=format_time(parse_time(alert.get('activeAt') or alert.get('startsAt'))))


def fetch_alertmanager_alerts(url, timeout=10.0, validate_certs=True, headers=None):
    """Active, unsilenced, uninhibited alerts from Alertmanager's ``/api/v2/alerts``; raises CheckError."""
    endpoint = url.rstrip('/') + '/api/v2/alerts?' + urllib.parse.urlencode(dict(active='true', silenced='false', inhibited='false'))
    request = urllib.request.Request(endpoint, headers=dict({'Accept': 'application/json'}, **(headers or {})))
    context = ssl.create_default_context()
    if not validate_certs:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    opener = urllib.request.build_opener(urllib.request.HTTPSHandler(context=context))
    try:
        with opener.open(request, timeout=timeout) as response:
            return json.loads(response.read().decode('utf-8'))
    except urllib.error.HTTPError as exc:
        raise CheckError('Alertmanager request to %s failed: %s %s' % (url, exc.code, exc.reason)) from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise CheckError('Alertmanager request to %s failed: cannot connect: %s' % (url, getattr(exc, 'reason', exc))) from None


class CheckError(Exception):
    """An error inside one check; it becomes a finding."""


# -- endpoints ---------------------------------------------------------------------------------------
def evaluate_endpoint_response(spec, status, body, error):
    """A finding for one HTTP probe: ``status``/``body`` of the answer, or ``error`` (text) when none came."""
    name = spec.get('name') or spec['url']
    expected = spec.get('status_code') or [200]
    severity = spec.get('severity') or 'critical'
    base = dict(check='endpoints', kind='Endpoint', namespace=None, name=name, since=None)
    if error is not None:
        return dict(base, severity=severity, reason='Unreachable', message='%s %s: %s' % (spec.get('method') or 'GET', spec['url'], error))
    if status not in expected:
        text = '%s answered %s, expected %s' % (spec['url'], status, ' or '.join(str(s) for s in expected))
        return dict(base, severity=severity, reason='UnexpectedStatus', message=text)
    needle = spec.get('body_contains')
    if needle and needle not in (body or ''):
        return dict(base, severity=severity, reason='BodyMismatch', message='%s answered %s but the body does not contain %r' % (spec['url'], status, needle))
    return dict(base, severity='ok', reason='Healthy', message='%s answered %s' % (spec['url'], status))


def probe_endpoint(spec):
    """Request ``spec['url']`` and return its finding (no redirects followed beyond urllib's default)."""
    timeout = float(spec.get('timeout') or 5)
    context = ssl.create_default_context(cafile=spec.get('ca_cert')) if spec.get('ca_cert') else ssl.create_default_context()
    if spec.get('validate_certs') is False:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    opener = urllib.request.build_opener(urllib.request.HTTPSHandler(context=context))
    request = urllib.request.Request(spec['url'], method=spec.get('method') or 'GET', headers=spec.get('headers') or {})
    try:
        with opener.open(request, timeout=timeout) as response:
            return evaluate_endpoint_response(spec, response.status, response.read(1048576).decode('utf-8', 'replace'), None)
    except urllib.error.HTTPError as exc:
        body = exc.read(1048576).decode('utf-8', 'replace') if hasattr(exc, 'read') else ''
        return evaluate_endpoint_response(spec, exc.code, body, None)
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, 'reason', None) or exc
        text = 'timed out after %gs' % timeout if 'timed out' in str(reason) else 'cannot connect: %s' % reason
        return evaluate_endpoint_response(spec, None, None, text)


# -- aggregation -------------------------------------------------------------------------------------
def overall_status(findings):
    worst = max((_RANK.get(f['severity'], 0) for f in findings), default=0)
    return ('healthy', 'degraded', 'critical')[worst]


def describe_permission(permission):
    """``list pods in namespace shop``, ``list nodes (cluster-wide)``, ``get schedules.velero.io in namespace velero``."""
    resource = permission['resource'] + ('.%s' % permission['group'] if permission.get('group') else '')
    where = 'in namespace %s' % permission['namespace'] if permission.get('namespace') else '(cluster-wide)'
    return '%s %s %s' % (permission['verb'], resource, where)


def unique_permissions(permissions):
    """The permissions once each, sorted by group, resource, verb and namespace."""
    seen = {}
    for perm in permissions:
        seen[(perm.get('group') or '', perm['resource'], perm['verb'], perm.get('namespace') or '')] = perm
    return [seen[key] for key in sorted(seen)]


def should_fail(status, fail_on):
    if fail_on == 'never':
        return False
    if fail_on == 'warning':
        return status != 'healthy'
    return status == 'critical'


class Summary:
    def __init__(self):
        self.counts = {}

    def add(self, check, severity):
        per = self.counts.setdefault(check, _zero_counts())
        per[severity] += 1

    def as_dict(self):
        return dict((check, dict(counts)) for check, counts in sorted(self.counts.items()))


# -- the runner --------------------------------------------------------------------------------------
WORKLOAD_KINDS = (('apps/v1', 'Deployment', evaluate_deployment), ('apps/v1', 'StatefulSet', evaluate_statefulset),
                  ('apps/v1', 'DaemonSet', evaluate_daemonset))


def _is_fatal(exc):
    """True for Kubernetes errors that mean the whole cluster is unusable (unreachable, bad credentials)."""
    status = getattr(exc, 'status', None)
    if status == 401:
        return True
    if status is None and 'cannot reach the API server' in str(getattr(exc, 'reason', '') or ''):
        return True
    return False


class HealthRunner:
    """Runs the checks with one ``KubeClient`` (module_utils.kube) and an optional PrometheusClient.

    ``kube_error`` is the exception class of the kube client (KubeError) and ``prometheus_error`` that of
    the Prometheus client; both are passed in so this module stays importable without them.
    """

    def __init__(self, kube, options, now=None, prometheus=None, kube_error=Exception, prometheus_error=Exception):  # noqa: PLR0917
        self.kube = kube
        self.prometheus = prometheus
        self.options = options
        self.now = now or utcnow()
        self.thresholds = normalize_thresholds(options.get('thresholds'))
        self.namespaces = list(options.get('namespaces') or [])
        self.label_selector = options.get('label_selector') or None
        self.page_size = int(options.get('page_size') or 500)
        self.only_unhealthy = options.get('only_unhealthy', True)
        self.kube_error = kube_error
        self.prometheus_error = prometheus_error
        self.findings = []
        self.skipped = []
        self.summary = Summary()
        self.alertmanager_requests = 0
        self.evaluated = 0
        self.missing_permissions = []

    # scopes: None = all namespaces
    def _scopes(self):
        return self.namespaces or [None]

    def _record(self, item):
        if item is None:
            return
        self.summary.add(item['check'], item['severity'])
        if item['severity'] != 'ok' or not self.only_unhealthy:
            self.findings.append(item)

    def _error_finding(self, check, exc, kind=None, namespace=None):
        if _is_fatal(exc):
            raise HealthError(str(exc))
        if namespace is None:
            namespace = getattr(exc, 'namespace', None)
        permission = getattr(exc, 'permission', None)
        if permission:
            self._forbidden(check, exc, kind, namespace, permission)
            return
        self._record(dict(check=check, kind=kind or getattr(exc, 'kind', None), namespace=namespace, name=None, severity='critical',
                          reason='CheckError', message='%s check could not run: %s' % (check, exc), since=None))

    def _forbidden(self, check, exc, kind, namespace, permission):
        """RBAC denied a request of the check: an ``unknown`` finding naming the permission to grant."""
        self.missing_permissions.append(permission)
        self._record(dict(check=check, kind=kind or getattr(exc, 'kind', None), namespace=namespace, name=None, severity='unknown',
                          reason='Forbidden', permission=permission, since=None,
                          message='%s check could not run: the credentials may not %s (RBAC answered 403: %s)' % (
                              check, describe_permission(permission), getattr(exc, 'api_message', None) or exc)))

    def served(self, candidates, kind):
        for api_version in candidates:
            if self.kube.resource(api_version, kind) is not None:
                return api_version
        return None

    def _each(self, api_version, kind, namespace, selector=True):
        return self.kube.list(api_version, kind, namespace=namespace, label_selector=self.label_selector if selector else None, page_size=self.page_size)

    def _run_list(self, check, api_version, kind, evaluator, selector=True, namespaced=True):  # noqa: PLR0917
        scopes = self._scopes() if namespaced else [None]
        for namespace in scopes:
            try:
                for obj in self._each(api_version, kind, namespace, selector):
                    obj.setdefault('kind', kind)
                    self.evaluated += 1
                    self._record(evaluator(obj, self.thresholds, self.now))
            except self.kube_error as exc:
                self._error_finding(check, exc, kind, namespace)

    def _skip(self, check, reason):
        self.skipped.append(dict(check=check, reason=reason))
        self.summary.counts.pop(check, None)

    # each check -------------------------------------------------------------------------------------
    def check_workloads(self):
        for api_version, kind, evaluator in WORKLOAD_KINDS:
            self._run_list('workloads', api_version, kind, evaluator)

    def check_pods(self):
        self._run_list('pods', 'v1', 'Pod', evaluate_pod)

    def check_nodes(self):
        self._run_list('nodes', 'v1', 'Node', evaluate_node, selector=False, namespaced=False)

    def check_storage(self):
        self._run_list('storage', 'v1', 'PersistentVolumeClaim', evaluate_pvc)

    def check_jobs(self):
        self._run_list('jobs', 'batch/v1', 'Job', evaluate_job)
        self._run_list('jobs', 'batch/v1', 'CronJob', evaluate_cronjob)

    def check_certificates(self):
        api_version = self.served(*CERT_KIND)
        if api_version is None:
            return self._skip('certificates', 'cert-manager is not installed (the API does not serve cert-manager.io Certificate)')
        self._run_list('certificates', api_version, 'Certificate', evaluate_certificate)
        return None

    def check_gitops(self):
        found = []
        for candidates, kind in FLUX_KINDS:
            api_version = self.served(candidates, kind)
            if api_version:
                found.append((api_version, kind, evaluate_flux))
        argo = self.served(*ARGO_KIND)
        if argo:
            found.append((argo, 'Application', evaluate_argo_application))
        if not found:
            return self._skip('gitops', 'neither Flux (toolkit.fluxcd.io) nor Argo CD (argoproj.io Application) is installed')
        for api_version, kind, evaluator in found:
            self._run_list('gitops', api_version, kind, evaluator)
        return None

    def check_backups(self):
        if self.kube.resource(VELERO, 'Schedule') is None or self.kube.resource(VELERO, 'Backup') is None:
            return self._skip('backups', 'Velero is not installed (the API does not serve velero.io/v1 Schedule and Backup)')
        index = BackupIndex(self.thresholds, self.now)
        # Velero objects live in Velero's own namespace: listed cluster-wide, the label selector does not apply.
        try:
            for obj in self._each(VELERO, 'Backup', None, selector=False):
                index.add(obj)
            for obj in self._each(VELERO, 'Schedule', None, selector=False):
                obj.setdefault('kind', 'Schedule')
                self._record(index.evaluate_schedule(obj))
        except self.kube_error as exc:
            self._error_finding('backups', exc)
        for item in index.unscheduled_failures:
            self._record(item)
        if self.kube.resource(VELERO, 'BackupStorageLocation') is not None:
            self._run_list('backups', VELERO, 'BackupStorageLocation', evaluate_backup_storage_location, selector=False, namespaced=False)
        return None

    def check_mesh(self):
        istio_api = self.served(*ISTIO_PROBE_KINDS[0])
        namespace = self.options.get('istio_namespace') or 'istio-system'
        explicit = self.options.get('mesh_namespaces')
        try:
            istiod = list(self.kube.list('apps/v1', 'Deployment', namespace=namespace, label_selector='app=istiod', page_size=self.page_size))
        except self.kube_error as exc:
            return self._error_finding('mesh', exc, 'Deployment', namespace)
        wanted = set(explicit or [])
        if explicit is None and istio_api is not None:
            # the namespaces that route traffic through the mesh are those holding VirtualServices
            try:
                for scope in self._scopes():
                    for vs in self.kube.list(istio_api, 'VirtualService', namespace=scope, page_size=self.page_size):
                        wanted.add(_meta(vs).get('namespace'))
            except self.kube_error as exc:
                return self._error_finding('mesh', exc, 'VirtualService')
        wanted.discard(None)
        if not istiod and not wanted:
            return self._skip('mesh', 'Istio is not in use (no istiod Deployment in %s, no VirtualService, no mesh_namespaces given)' % namespace)
        self._record(evaluate_istiod(istiod, self.thresholds, self.now))
        if not wanted:
            return None
        try:
            seen = set()
            for ns in self.kube.list('v1', 'Namespace', page_size=self.page_size):
                name = _meta(ns).get('name')
                if name in wanted:
                    seen.add(name)
                    self._record(evaluate_namespace_injection(ns, self.thresholds, self.now))
            for name in sorted(wanted - seen):
                self._record(finding('mesh', None, 'warning', 'NamespaceMissing', 'namespace %s should be in the mesh but does not exist' % name,
                                     kind='Namespace', namespace=None, name=name))
        except self.kube_error as exc:
            return self._error_finding('mesh', exc, 'Namespace')
        return None

    def check_alerts(self):
        severities = self.options.get('alert_severities') or ['critical', 'warning']
        label_filter = self.options.get('alert_labels') or {}
        source = self.options.get('alert_source') or 'auto'
        am_url = self.options.get('alertmanager_url')
        if source == 'auto':
            source = 'alertmanager' if am_url else ('prometheus' if self.prometheus is not None else None)
        if source is None:
            return self._skip('alerts', 'no prometheus_url or alertmanager_url given')
        if source == 'alertmanager' and not am_url:
            return self._skip('alerts', 'alert_source is alertmanager but no alertmanager_url given')
        if source == 'prometheus' and self.prometheus is None:
            return self._skip('alerts', 'alert_source is prometheus but no prometheus_url given')
        try:
            if source == 'alertmanager':
                self.alertmanager_requests += 1
                alerts = fetch_alertmanager_alerts(am_url, timeout=float(self.options.get('prometheus_timeout') or 10.0),
                                                   validate_certs=self.options.get('prometheus_validate_certs', True))
            else:
                alerts = self.prometheus.alerts()
        except (CheckError, self.prometheus_error) as exc:
            self._record(dict(check='alerts', kind='Alertmanager' if source == 'alertmanager' else 'Prometheus', namespace=None,
                              name=am_url if source == 'alertmanager' else getattr(self.prometheus, 'url', None), severity='critical',
                              reason='CheckError', message='alerts check could not run: %s' % exc, since=None))
            return None
        for alert in alerts:
            item = evaluate_alert(alert, severities, label_filter, source)
            if item is not None:
                if self.namespaces and item['namespace'] and item['namespace'] not in self.namespaces:
                    continue
                self._record(item)
        return None

    def check_endpoints(self):
        specs = self.options.get('endpoints') or []
        if not specs:
            return self._skip('endpoints', 'no endpoints given')
        for spec in specs:
            self._record(probe_endpoint(spec))
        return None

    def run(self, checks):
        started = time.monotonic()
        for check in checks:
            self.summary.counts.setdefault(check, _zero_counts())
            getattr(self, 'check_%s' % check)()
        findings = sorted(self.findings, key=lambda f: (-_ORDER[f['severity']], f['check'], f['kind'] or '', f['namespace'] or '', f['name'] or ''))
        status = overall_status(self.findings)
        totals = _zero_counts()
        for counts in self.summary.counts.values():
            for key in totals:
                totals[key] += counts[key]
        kube_calls = self.kube.api_calls if self.kube is not None else 0
        prom_calls = getattr(self.prometheus, 'request_count', 0) if self.prometheus is not None else 0
        return dict(
            status=status,
            summary=dict(checks=self.summary.as_dict(), totals=totals),
            findings=findings,
            skipped_checks=self.skipped,
            missing_permissions=unique_permissions(self.missing_permissions),
            checks=list(checks),
            duration_seconds=round(time.monotonic() - started, 3),
            api_calls=kube_calls + prom_calls + self.alertmanager_requests,
            api_calls_by_target=dict(kubernetes=kube_calls, prometheus=prom_calls, alertmanager=self.alertmanager_requests),
            objects_evaluated=self.evaluated,
            reference_time=format_time(self.now),
        )


def select_checks(requested):
    """The checks to run in their canonical order: the requested ones, or all of them (a check that does
    not apply, e.g. alerts without a Prometheus URL, skips itself and says why)."""
    if requested:
        unknown = [c for c in requested if c not in CHECKS]
        if unknown:
            raise HealthError('unknown checks %s; choose from %s' % (', '.join(unknown), ', '.join(CHECKS)))
        return [c for c in CHECKS if c in requested]
    return list(CHECKS)
