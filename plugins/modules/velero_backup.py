#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, machinenativeops platform team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: velero_backup
short_description: Velero backups, restores and schedules, with verification in the object store and restore tests
version_added: 0.1.0
description:
  - Creates Velero C(Backup) and C(Restore) objects and waits for their terminal phase, ensures C(Schedule) objects
    idempotently, deletes backups through a C(DeleteBackupRequest) (as C(velero backup delete) does), reports status and
    lists backups, and verifies backups where they really are, in the bucket.
  - Terminal phases follow Velero, C(Completed), C(PartiallyFailed), C(Failed) and C(FailedValidation). A C(PartiallyFailed)
    backup or restore is reported with its error and warning counts and, when the bucket can be read, the first errors of its
    results and logs files. C(Failed) reports the C(failureReason), C(FailedValidation) the C(validationErrors).
  - A backup or restore that stays in a running phase (C(New), C(InProgress), ...) longer than O(in_progress_deadline) since it
    started is reported as stuck (Velero never resumes a backup that was running when its server restarted).
  - O(action=verify) reads C(<prefix>/backups/<name>/) with boto3 and checks that C(velero-backup.json) exists and says
    C(Completed), that C(<name>.tar.gz) exists, is above O(min_size), is a readable gzip tar with Velero's C(metadata/version),
    holds as many items as Velero reports, the O(expected_resources) and resources of each of O(expected_namespaces), and
    agrees with the resource list file. With O(restore_test=true) the backup is also restored into scratch namespaces
    (C(namespaceMapping)), the restored objects are compared with the tarball per resource, and the scratch namespaces and
    the test C(Restore) are removed again.
  - The bucket, prefix, endpoint and region default to the C(BackupStorageLocation) of the backup; the credentials come from
    the C(s3_*) options or the usual AWS environment variables.
author:
  - machinenativeops platform team (@machinenativeops)
extends_documentation_fragment:
  - machinenativeops.platform.s3
  - machinenativeops.platform.kube_auth
  - machinenativeops.platform.attributes
attributes:
  check_mode:
    support: full
    details:
      - Creations are sent to the API server as dry runs, so check mode also validates them. Check mode does not wait and does
        not run restore tests (it reports them as skipped).
  diff_mode:
    support: full
    details: Schedules, exactly the fields the module changes (before and after). Other actions return no diff.
options:
  action:
    description:
      - C(backup) creates the Backup O(name) unless it exists, then waits when O(wait).
      - C(restore) creates the Restore O(name) from O(backup_name), or from the newest C(Completed) backup of O(schedule_name).
      - C(schedule) ensures the Schedule O(name) (O(state=present)) or removes it (O(state=absent)). An existing Schedule is
        updated with a merge patch of only the fields set in the task that differ; fields it does not manage (for example
        C(csiSnapshotTimeout), C(resourcePolicy), C(template.metadata)) and C(status) (C(lastBackup)) are kept.
      - C(delete) deletes the backup O(name) (or O(backup_name)) with a C(DeleteBackupRequest), data in the bucket included.
      - C(verify) verifies the backup O(name), O(backup_name) or the newest finished backup of O(schedule_name).
      - C(status) reports the backup (or with O(kind=Restore) the restore) O(name), or the Schedule O(schedule_name) with its
        newest backup.
      - C(list) lists the backups (of O(schedule_name) when given), newest first, and the schedules.
    type: str
    required: true
    choices: [backup, restore, schedule, delete, verify, status, list]
  name:
    description:
      - Name of the Backup, Restore or Schedule the action is about.
    type: str
  namespace:
    description:
      - Namespace of the Velero server and its objects.
    type: str
    default: velero
  state:
    description:
      - For O(action=schedule), whether the Schedule should exist.
    type: str
    choices: [present, absent]
    default: present
  kind:
    description:
      - For O(action=status), whether O(name) is a Backup or a Restore.
    type: str
    choices: [Backup, Restore]
    default: Backup
  labels:
    description:
      - Labels of the created Backup, Restore or Schedule.
    type: dict
  included_namespaces:
    description:
      - Namespaces to include (C(includedNamespaces)); all when omitted.
    type: list
    elements: str
  excluded_namespaces:
    description:
      - Namespaces to exclude (C(excludedNamespaces)).
    type: list
    elements: str
  included_resources:
    description:
      - Resources to include (C(includedResources)), for example C(deployments.apps); all when omitted.
    type: list
    elements: str
  excluded_resources:
    description:
      - Resources to exclude (C(excludedResources)), for example C(events).
    type: list
    elements: str
  include_cluster_resources:
    description:
      - Whether cluster-scoped resources are included (C(includeClusterResources)); Velero decides when omitted.
    type: bool
  label_selector:
    description:
      - Only objects with these labels. Either plain labels (C(app=web)) or a full selector with C(matchLabels) and
        C(matchExpressions).
    type: dict
  ttl:
    description:
      - How long Velero keeps the backup, for example C(720h) or C(30d) (30 days), C(168h) or C(7d) (7 days), in the collection's
        duration grammar (see the README, section Durations); it is sent to Velero in Go's form (C(720h0m0s)).
    type: str
  storage_location:
    description:
      - The BackupStorageLocation to write to; Velero's default location when omitted.
    type: str
  volume_snapshot_locations:
    description:
      - VolumeSnapshotLocations to use (C(volumeSnapshotLocations)).
    type: list
    elements: str
  snapshot_volumes:
    description:
      - Whether persistent volumes are snapshotted (C(snapshotVolumes)).
    type: bool
  default_volumes_to_fs_backup:
    description:
      - Whether all pod volumes are backed up with the file-system backup (C(defaultVolumesToFsBackup)).
    type: bool
  hooks:
    description:
      - Backup or restore hooks, as in Velero's C(spec.hooks) (C(resources) with C(pre)/C(post) or C(postHooks)).
    type: dict
  backup_name:
    description:
      - For O(action=restore), the backup to restore from. For O(action=verify) and O(action=delete), the backup (instead of O(name)).
    type: str
  schedule_name:
    description:
      - For O(action=restore), restore the newest C(Completed) backup of this Schedule (when O(backup_name) is not given).
      - For O(action=verify), verify the newest finished backup of this Schedule.
      - For O(action=status), report this Schedule; for O(action=list), only its backups.
    type: str
  namespace_mapping:
    description:
      - For O(action=restore), source namespace to target namespace (C(namespaceMapping)).
    type: dict
  existing_resource_policy:
    description:
      - For O(action=restore), what Velero does with objects that already exist, C(none) (keep them) or C(update).
    type: str
    choices: [none, update]
  restore_pvs:
    description:
      - For O(action=restore), whether persistent volumes are restored from snapshots (C(restorePVs)).
    type: bool
  schedule:
    description:
      - For O(action=schedule), the cron expression, for example C(0 2 * * *), or a descriptor such as C(@every 1h).
    type: str
  paused:
    description:
      - For O(action=schedule), whether the Schedule is paused.
    type: bool
    default: false
  use_owner_references_in_backup:
    description:
      - For O(action=schedule), whether the backups get an owner reference to the Schedule (C(useOwnerReferencesInBackup)).
    type: bool
  wait:
    description:
      - Whether O(action=backup), O(action=restore) and O(action=delete) wait until the object is finished (or gone).
    type: bool
    default: true
  wait_timeout:
    description:
      - Seconds to wait.
    type: int
    default: 600
  poll_interval:
    description:
      - Seconds between two reads while waiting.
    type: float
    default: 2
  in_progress_deadline:
    description:
      - Seconds after its start after which a backup or restore that is still running is reported as stuck and the module fails.
    type: int
    default: 3600
  allow_partially_failed:
    description:
      - Whether a C(PartiallyFailed) backup or restore is accepted. When false, the module fails (with the report).
    type: bool
    default: false
  expected_namespaces:
    description:
      - For O(action=verify), namespaces that must have resources in the tarball.
    type: list
    elements: str
  expected_resources:
    description:
      - For O(action=verify), resources that must be in the tarball (C(deployments) or C(deployments.apps)), within
        O(expected_namespaces) when given.
    type: list
    elements: str
  min_size:
    description:
      - For O(action=verify), the smallest acceptable tarball size in bytes.
    type: int
    default: 512
  restore_test:
    description:
      - For O(action=verify), also restore the backup into scratch namespaces and compare the objects.
    type: bool
    default: false
  restore_test_namespaces:
    description:
      - The namespaces restored by the restore test; default O(expected_namespaces), else every namespace in the tarball.
    type: list
    elements: str
  restore_test_suffix:
    description:
      - Suffix of the scratch namespaces (C(<namespace>-<suffix>)); default C(vt) and a time stamp.
    type: str
  restore_test_cleanup:
    description:
      - Whether the scratch namespaces, the test Restore and its resource-modifier ConfigMap are deleted after the restore test.
    type: bool
    default: true
  restore_test_isolation:
    description:
      - The restore test runs in the cluster it protects; with V(true) nothing it restores runs, serves or schedules.
      - The Restore excludes Jobs, Ingresses, Istio and Gateway API routing objects (Gateways, VirtualServices,
        DestinationRules, ServiceEntries, EnvoyFilters, routes), PersistentVolumes and PersistentVolumeClaims, HPAs and
        KEDA ScaledObjects, cert-manager Certificates and ACME orders, Flux Kustomizations and HelmReleases, Argo CD
        Applications, PrometheusRules and AlertmanagerConfigs; sets C(restorePVs=false); and carries Velero resource
        modifiers (a ConfigMap in Velero's namespace, removed afterwards) that restore Deployments, StatefulSets, ReplicaSets
        and ReplicationControllers with 0 replicas, CronJobs suspended, DaemonSets with a node selector no node has, and
        Services of type LoadBalancer or NodePort as ClusterIP without node ports.
      - C(restore_test.isolation) in RV(verification) lists every object excluded or changed; excluded objects are left out of
        the comparison (counted in C(not_compared.excluded)).
      - V(false) restores everything as it was (the objects run until the scratch namespaces are deleted); only for a
        cluster where that is harmless.
      - Needs Velero 1.12 or later (resource modifiers).
    type: bool
    default: true
  fail_on_error:
    description:
      - For O(action=verify), whether a failed check fails the module. When false the report is returned with RV(verification.passed=false).
    type: bool
    default: true
  s3_endpoint_url:
    description:
      - URL of the S3 endpoint; default the C(s3Url) of the BackupStorageLocation, else AWS.
    type: str
  s3_region:
    description:
      - Region of the bucket; default the BackupStorageLocation's, else C(us-east-1).
    type: str
  s3_bucket:
    description:
      - The bucket; default the BackupStorageLocation's C(objectStorage.bucket).
    type: str
  s3_prefix:
    description:
      - The prefix inside the bucket; default the BackupStorageLocation's C(objectStorage.prefix).
    type: str
requirements:
  - kubernetes >= 24.2.0 (Python library)
  - boto3 (Python library), for O(action=verify) and the first errors of failed backups
notes:
  - Backups and Restores are never updated; an existing object of the same name is reported as it is (C(changed=false)).
  - O(action=verify) changes nothing that stays (C(changed=false)); its restore test creates a Restore and scratch namespaces
    and removes them again (when they cannot be removed the module reports C(changed=true) and warns).
seealso:
  - name: Velero documentation
    description: Backup, Restore and Schedule API types.
    link: https://velero.io/docs/
'''

EXAMPLES = r'''
- name: Daily backup of production, istio-system and monitoring kept 30 days
  machinenativeops.platform.velero_backup:
    action: schedule
    name: daily-cluster-backup
    schedule: "0 2 * * *"
    included_namespaces: [production, istio-system, monitoring]
    ttl: 720h

- name: Hourly backup of production kept 7 days
  machinenativeops.platform.velero_backup:
    action: schedule
    name: hourly-incremental-backup
    schedule: "0 * * * *"
    included_namespaces: [production]
    ttl: 168h

- name: Back up production now and wait for the result
  machinenativeops.platform.velero_backup:
    action: backup
    name: test-backup
    included_namespaces: [production]
    wait_timeout: 900

- name: Verify the newest daily backup in the bucket and by a restore test
  machinenativeops.platform.velero_backup:
    action: verify
    schedule_name: daily-cluster-backup
    expected_namespaces: [production, istio-system, monitoring]
    expected_resources: [deployments.apps, services, configmaps]
    restore_test: true
    s3_access_key: "{{ vault_s3_access_key }}"
    s3_secret_key: "{{ vault_s3_secret_key }}"
  register: verification

- name: Restore production from the newest daily backup
  machinenativeops.platform.velero_backup:
    action: restore
    name: prod-namespace-restore
    schedule_name: daily-cluster-backup
    included_namespaces: [production]

- name: Delete a backup and its data
  machinenativeops.platform.velero_backup:
    action: delete
    name: test-backup
'''

RETURN = r'''
backup:
  description: The Backup (created, found, verified or reported) with its phase interpreted.
  returned: when the action is about a backup
  type: dict
  contains:
    name: {description: Name., type: str, sample: daily-cluster-backup-20260127020000}
    namespace: {description: Namespace., type: str, sample: velero}
    phase: {description: Velero phase., type: str, sample: PartiallyFailed}
    meaning: {description: What the phase means., type: str, sample: "finished, but some items could not be processed (see errors)"}
    terminal: {description: Whether the phase is final., type: bool}
    succeeded: {description: Whether the phase is C(Completed)., type: bool}
    stuck: {description: Whether it runs longer than O(in_progress_deadline)., type: bool}
    errors: {description: Velero's error count., type: int, sample: 2}
    warnings: {description: Velero's warning count., type: int, sample: 0}
    started: {description: startTimestamp., type: str}
    completed: {description: completionTimestamp., type: str}
    duration_seconds: {description: Seconds from start to completion., type: float}
    items_backed_up: {description: Items backed up., type: int}
    total_items: {description: Items selected., type: int}
    failure_reason: {description: failureReason of a Failed backup., type: str}
    validation_errors: {description: validationErrors of a FailedValidation backup., type: list, elements: str}
    schedule: {description: The Schedule that created it., type: str}
    expiration: {description: When Velero deletes it., type: str}
restore:
  description: The Restore with its phase interpreted (same keys as RV(backup), plus C(backup_name) and C(items_restored)).
  returned: when O(action=restore) or O(action=status) with O(kind=Restore)
  type: dict
schedule:
  description: The Schedule after the action (C(name), C(phase), C(last_backup), C(paused), C(spec)), and with O(action=status) its newest backup.
  returned: when O(action=schedule) or O(action=status) with O(schedule_name)
  type: dict
details:
  description: First errors and warnings of a backup or restore that did not complete, read from its results and logs files in the bucket.
  returned: when a backup or restore is not Completed
  type: dict
  contains:
    errors: {description: First error messages of the results file., type: list, elements: str}
    warnings: {description: First warning messages of the results file., type: list, elements: str}
    log_errors: {description: First C(level=error) lines of the log file., type: list, elements: str}
    unavailable: {description: Why a file could not be read., type: list, elements: str}
diagnosis:
  description: One sentence on what is wrong, or null when the object is fine.
  returned: when a backup or restore is reported
  type: str
  sample: Backup velero/nightly is stuck in InProgress for 7300s (deadline 3600s, ...)
delete_request:
  description: The DeleteBackupRequest (C(name), C(phase), C(errors)).
  returned: when O(action=delete) created or found one
  type: dict
verification:
  description: The verification report.
  returned: when O(action=verify)
  type: dict
  contains:
    passed: {description: Whether every check passed., type: bool}
    checks: {description: "Every check: C(name), C(passed), C(reason) (S3 checks, then the restore test's).", type: list, elements: dict}
    failed_checks: {description: Names of the failed checks., type: list, elements: str}
    s3:
      description:
        - The S3 report, C(location), C(tarball_size), C(items), C(resources), C(namespaces), C(format_version), C(checks), C(seconds).
      type: dict
    restore_test:
      description:
        - The restore test, C(restore), C(namespace_mapping), C(compared), C(source_objects), C(restored_objects), C(not_compared),
          C(cleanup), C(checks), C(seconds).
        - C(created) and C(removed) list the objects the test made and deleted again (a restore test is a change).
        - C(isolation) (with O(restore_test_isolation)) lists what was kept inert, C(excluded) (by resource),
          C(scaled_to_zero), C(suspended_cronjobs), C(unscheduled_daemonsets), C(services_to_cluster_ip), and the
          C(excluded_resources), C(restore_pvs) and C(resource_modifier) the Restore was given.
      type: dict
backups:
  description: Backups, newest first (summaries as in RV(backup)).
  returned: when O(action=list)
  type: list
  elements: dict
schedules:
  description: Schedules (C(name), C(phase), C(schedule), C(paused), C(last_backup)).
  returned: when O(action=list)
  type: list
  elements: dict
timings:
  description: Seconds spent per step (C(create), C(wait), C(s3), C(restore_test), ...).
  returned: always
  type: dict
diff:
  description: Before and after spec of a Schedule.
  returned: when O(action=schedule) and run with C(--diff)
  type: dict
'''

import time

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible_collections.machinenativeops.platform.plugins.module_utils import velero as V
from ansible_collections.machinenativeops.platform.plugins.module_utils.backup_verify import (
    BOTO3_IMPORT_ERROR,
    HAS_BOTO3,
    S3_ARG_SPEC,
    S3Error,
    S3Store,
    failure_details,
    run_restore_test,
    verify_backup,
)
from ansible_collections.machinenativeops.platform.plugins.module_utils.durations import DurationError, parse_duration
from ansible_collections.machinenativeops.platform.plugins.module_utils.kube import (
    HAS_KUBERNETES,
    KUBE_AUTH_ARG_SPEC,
    KUBERNETES_IMPORT_ERROR,
    KubeError,
    get_kube_client,
    narrow_kubeconfig_no_log,
)


def argument_spec():
    spec = dict(
        action=dict(type='str', required=True, choices=['backup', 'restore', 'schedule', 'delete', 'verify', 'status', 'list']),
        name=dict(type='str'),
        namespace=dict(type='str', default='velero'),
        state=dict(type='str', choices=['present', 'absent'], default='present'),
        kind=dict(type='str', choices=['Backup', 'Restore'], default='Backup'),
        labels=dict(type='dict'),
        included_namespaces=dict(type='list', elements='str'),
        excluded_namespaces=dict(type='list', elements='str'),
        included_resources=dict(type='list', elements='str'),
        excluded_resources=dict(type='list', elements='str'),
        include_cluster_resources=dict(type='bool'),
        label_selector=dict(type='dict'),
        ttl=dict(type='str'),
        storage_location=dict(type='str'),
        volume_snapshot_locations=dict(type='list', elements='str'),
        snapshot_volumes=dict(type='bool'),
        default_volumes_to_fs_backup=dict(type='bool'),
        hooks=dict(type='dict'),
        backup_name=dict(type='str'),
        schedule_name=dict(type='str'),
        namespace_mapping=dict(type='dict'),
        existing_resource_policy=dict(type='str', choices=['none', 'update']),
        restore_pvs=dict(type='bool'),
        schedule=dict(type='str'),
        paused=dict(type='bool', default=False),
        use_owner_references_in_backup=dict(type='bool'),
        wait=dict(type='bool', default=True),
        wait_timeout=dict(type='int', default=600),
        poll_interval=dict(type='float', default=2),
        in_progress_deadline=dict(type='int', default=3600),
        allow_partially_failed=dict(type='bool', default=False),
        expected_namespaces=dict(type='list', elements='str'),
        expected_resources=dict(type='list', elements='str'),
        min_size=dict(type='int', default=512),
        restore_test=dict(type='bool', default=False),
        restore_test_namespaces=dict(type='list', elements='str'),
        restore_test_suffix=dict(type='str'),
        restore_test_cleanup=dict(type='bool', default=True),
        restore_test_isolation=dict(type='bool', default=True),
        fail_on_error=dict(type='bool', default=True),
    )
    spec.update(S3_ARG_SPEC)
    spec.update(KUBE_AUTH_ARG_SPEC)
    return spec


class Runner:
    def __init__(self, module, client):
        self.module = module
        self.p = module.params
        self.client = client
        self.ns = self.p['namespace']
        self.result = {'changed': False, 'timings': {}}
        self.failed = None

    # -- helpers --------------------------------------------------------------------------------
    def timed(self, step, func, *args, **kwargs):
        t0 = time.monotonic()
        try:
            return func(*args, **kwargs)
        finally:
            self.result['timings'][step] = round(self.result['timings'].get(step, 0) + time.monotonic() - t0, 3)

    def need(self, *names):
        missing = [n for n in names if not self.p.get(n)]
        if missing:
            self.module.fail_json(msg='action=%s needs %s' % (self.p['action'], ', '.join(missing)))

    def store(self, storage_location=None):
        """The S3 store of the BackupStorageLocation (options override), or raise S3Error."""
        if not HAS_BOTO3:
            raise S3Error(missing_required_lib('boto3'))
        bsl = None
        if self.client is not None:
            if storage_location:
                bsl = self.client.get(V.API_VERSION, 'BackupStorageLocation', storage_location, self.ns)
            else:
                for candidate in self.client.list(V.API_VERSION, 'BackupStorageLocation', namespace=self.ns):
                    if (candidate.get('spec') or {}).get('default'):
                        bsl = candidate
                        break
                if bsl is None:
                    bsl = self.client.get(V.API_VERSION, 'BackupStorageLocation', 'default', self.ns)
        return S3Store.from_params(self.p, bsl)

    def details(self, kind, obj):
        """First errors of a not-Completed backup/restore from the bucket (never fails)."""
        location = (obj.get('spec') or {}).get('storageLocation') if kind == 'Backup' else None
        try:
            store = self.store(location)
        except (S3Error, KubeError) as exc:
            return {'errors': [], 'warnings': [], 'log_errors': [], 'unavailable': [str(exc)]}
        return failure_details(store, obj['metadata']['name'], kind)

    def report(self, kind, obj, key):
        summary = V.summarize(obj, kind, in_progress_deadline=self.p['in_progress_deadline'])
        self.result[key] = summary
        self.result['diagnosis'] = V.diagnose(summary, self.p['in_progress_deadline'])
        if summary['phase'] in ('PartiallyFailed', 'Failed') and not self.module.check_mode:
            self.result['details'] = self.timed('details', self.details, kind, obj)
        return summary

    def judge(self, summary):
        """Fail unless the terminal phase is acceptable."""
        if summary['stuck']:
            self.failed = self.result['diagnosis']
        elif summary['terminal'] and summary['phase'] != 'Completed':
            if summary['phase'] == 'PartiallyFailed' and self.p['allow_partially_failed']:
                return
            first = (self.result.get('details') or {}).get('errors') or (self.result.get('details') or {}).get('log_errors') or []
            self.failed = self.result['diagnosis'] + ('; first errors: %s' % ' | '.join(first[:3]) if first else '')

    def create_and_wait(self, kind, body, key):
        name = body['metadata']['name']
        existing = self.client.get(V.API_VERSION, kind, name, self.ns)
        if existing is None:
            self.result['changed'] = True
            created = self.timed('create', self.client.create, V.API_VERSION, kind, body, namespace=self.ns,
                                 dry_run=self.module.check_mode)
            if self.module.check_mode:
                self.result[key] = V.summarize(created or body, kind)
                self.result[key]['phase'] = 'New'
                return
            existing = created
        if self.p['wait'] and not self.module.check_mode:
            try:
                existing, _summary = self.timed('wait', V.wait_for_phase, self.client, kind, name, self.ns, self.p['wait_timeout'],
                                                self.p['poll_interval'], self.p['in_progress_deadline'])
            except V.VeleroError as exc:
                obj = self.client.get(V.API_VERSION, kind, name, self.ns) or existing
                self.report(kind, obj, key)
                self.failed = str(exc)
                return
        summary = self.report(kind, existing, key)
        self.judge(summary)

    # -- actions --------------------------------------------------------------------------------------
    def backup(self):
        self.need('name')
        spec = V.backup_spec(self.p)
        self.create_and_wait('Backup', V.velero_object('Backup', self.p['name'], self.ns, spec, self.p['labels']), 'backup')

    def restore(self):
        self.need('name')
        if not self.p['backup_name'] and not self.p['schedule_name']:
            self.module.fail_json(msg='action=restore needs backup_name or schedule_name')
        backup_name = self.p['backup_name']
        existing = self.client.get(V.API_VERSION, 'Restore', self.p['name'], self.ns)
        if existing is None and not backup_name:
            newest = V.latest_backup(V.list_backups(self.client, self.ns, self.p['schedule_name']), self.p['schedule_name'])
            if newest is None:
                self.module.fail_json(msg='Schedule %s/%s has no Completed backup to restore from' % (self.ns, self.p['schedule_name']))
            backup_name = newest['metadata']['name']
        if existing is None:
            backup = self.client.get(V.API_VERSION, 'Backup', backup_name, self.ns)
            if backup is None:
                self.module.fail_json(msg='Backup %s/%s does not exist' % (self.ns, backup_name))
            phase = (backup.get('status') or {}).get('phase')
            if phase not in ('Completed', 'PartiallyFailed'):
                self.module.fail_json(msg='Backup %s/%s is %s; only Completed or PartiallyFailed backups can be restored' % (self.ns, backup_name, phase))
        spec = V.restore_spec(self.p, backup_name=backup_name)
        self.create_and_wait('Restore', V.velero_object('Restore', self.p['name'], self.ns, spec, self.p['labels']), 'restore')

    def schedule(self):
        self.need('name')
        name = self.p['name']
        existing = self.client.get(V.API_VERSION, 'Schedule', name, self.ns)
        if self.p['state'] == 'absent':
            if existing is not None:
                self.result['changed'] = True
                self.client.delete(V.API_VERSION, 'Schedule', name, self.ns, dry_run=self.module.check_mode)
            if self.module._diff:
                self.result['diff'] = {'before': V.normalize_spec((existing or {}).get('spec') or {}), 'after': {}}
            self.result['schedule'] = {'name': name, 'namespace': self.ns, 'state': 'absent'}
            return
        self.need('schedule')
        try:
            desired = V.schedule_spec(self.p['schedule'], V.backup_spec(self.p), self.p['paused'], self.p['use_owner_references_in_backup'])
        except ValueError as exc:
            self.module.fail_json(msg='Schedule %s/%s: %s' % (self.ns, name, exc))
        plan = V.schedule_plan(existing, desired, self.p['labels'])
        after = existing
        if plan['action'] == 'create':
            after = self.client.create(V.API_VERSION, 'Schedule', V.schedule_body(name, self.ns, desired, self.p['labels']),
                                       namespace=self.ns, dry_run=self.module.check_mode)
        elif plan['action'] == 'update':
            # a merge patch of the changed fields only: the rest of the spec and the status stay as they are
            after = self.client.patch(V.API_VERSION, 'Schedule', name, plan['patch'], namespace=self.ns, patch_type='merge',
                                      dry_run=self.module.check_mode)
        self.result['changed'] = plan['action'] != 'none'
        self.result['changes'] = plan['changes']
        if self.module._diff:
            self.result['diff'] = {'before': plan['before'], 'after': plan['after']}
        self.result['schedule'] = schedule_summary(after or {'metadata': {'name': name}, 'spec': desired})

    def delete(self):
        name = self.p['backup_name'] or self.p['name']
        if not name:
            self.module.fail_json(msg='action=delete needs name or backup_name')
        backup = self.client.get(V.API_VERSION, 'Backup', name, self.ns)
        self.result['backup'] = {'name': name, 'namespace': self.ns, 'exists': backup is not None}
        if backup is None:
            return
        pending = V.pending_delete_requests(self.client, self.ns, name)
        if pending:
            dbr = pending[0]
        else:
            self.result['changed'] = True
            dbr = self.timed('create', self.client.create, V.API_VERSION, 'DeleteBackupRequest', V.delete_request_body(name, self.ns),
                             namespace=self.ns, dry_run=self.module.check_mode)
        self.result['delete_request'] = {'name': (dbr.get('metadata') or {}).get('name'), 'phase': (dbr.get('status') or {}).get('phase')}
        if self.module.check_mode or not self.p['wait']:
            return
        gone = self.timed('wait', V.wait_until_gone, self.client, 'Backup', name, self.ns, self.p['wait_timeout'], self.p['poll_interval'])
        dbr_name = self.result['delete_request']['name']
        current = self.client.get(V.API_VERSION, 'DeleteBackupRequest', dbr_name, self.ns) if dbr_name else None
        if current is not None:
            self.result['delete_request'].update({'phase': (current.get('status') or {}).get('phase'),
                                                  'errors': (current.get('status') or {}).get('errors') or []})
        self.result['backup']['exists'] = not gone
        if not gone:
            errors = self.result['delete_request'].get('errors') or []
            self.failed = 'Backup %s/%s still exists %ss after DeleteBackupRequest %s%s' % (
                self.ns, name, self.p['wait_timeout'], dbr_name, ': %s' % '; '.join(errors) if errors else '')

    def pick_backup(self):
        name = self.p['backup_name'] or self.p['name']
        if name:
            return name, self.client.get(V.API_VERSION, 'Backup', name, self.ns) if self.client else None
        if not self.p['schedule_name']:
            self.module.fail_json(msg='action=verify needs name, backup_name or schedule_name')
        newest = V.latest_backup(V.list_backups(self.client, self.ns, self.p['schedule_name']), self.p['schedule_name'],
                                 phases=V.BACKUP_TERMINAL_PHASES)
        if newest is None:
            self.module.fail_json(msg='Schedule %s/%s has no finished backup to verify' % (self.ns, self.p['schedule_name']))
        return newest['metadata']['name'], newest

    def verify(self):
        name, obj = self.pick_backup()
        if obj is not None:
            self.report('Backup', obj, 'backup')
        cluster_phase = (obj.get('status') or {}).get('phase') if obj else None
        location = (obj.get('spec') or {}).get('storageLocation') if obj else self.p['storage_location']
        try:
            store = self.store(location)
            s3 = self.timed('s3', verify_backup, store, name, expected_namespaces=self.p['expected_namespaces'],
                            expected_resources=self.p['expected_resources'], min_size=self.p['min_size'],
                            cluster_phase=cluster_phase, keep_contents=self.p['restore_test'])
        except S3Error as exc:
            self.result['verification'] = {'passed': False, 'checks': [{'name': 's3_reachable', 'passed': False, 'reason': str(exc)}],
                                           'failed_checks': ['s3_reachable']}
            self.failed = 'verification of backup %s/%s failed: %s' % (self.ns, name, exc)
            return
        contents = s3.pop('contents', None)
        verification = {'backup': name, 's3': s3, 'checks': list(s3['checks'])}
        if self.p['restore_test']:
            verification['restore_test'] = self.restore_test(name, obj, contents)
            verification['checks'].extend(verification['restore_test'].get('checks') or [])
        verification['passed'] = all(c['passed'] for c in verification['checks'])
        verification['failed_checks'] = [c['name'] for c in verification['checks'] if not c['passed']]
        self.result['verification'] = verification
        if not verification['passed'] and self.p['fail_on_error']:
            reasons = ['%s: %s' % (c['name'], c['reason']) for c in verification['checks'] if not c['passed']]
            self.failed = 'backup %s/%s failed verification: %s' % (self.ns, name, '; '.join(reasons))

    def restore_test(self, name, obj, contents):
        if self.module.check_mode:
            return {'skipped': True, 'checks': [],
                    'reason': 'restore tests are not run in check mode; a real run would create a Restore%s into scratch '
                              'namespaces <namespace>-<suffix>, compare the objects and delete them again%s' % (
                                  ' with its resource-modifier ConfigMap' if self.p['restore_test_isolation'] else '',
                                  '' if self.p['restore_test_isolation'] else ' (restore_test_isolation=false: the restored '
                                  'objects run while they exist)')}
        if obj is None:
            return {'checks': [{'name': 'restore_test', 'passed': False, 'reason': 'Backup %s/%s does not exist in the cluster; '
                                'Velero can only restore backups it knows (wait for the BackupStorageLocation sync)' % (self.ns, name)}]}
        if contents is None:
            return {'checks': [{'name': 'restore_test', 'passed': False, 'reason': 'the tarball could not be read, nothing to restore'}]}
        namespaces = self.p['restore_test_namespaces'] or self.p['expected_namespaces'] or \
            sorted(set(i['namespace'] for i in contents['items'] if i['namespace']))
        if not namespaces:
            return {'checks': [{'name': 'restore_test', 'passed': False, 'reason': 'the backup holds no namespaced objects to restore'}]}
        tag = self.p['restore_test_suffix'] or 'vt%s' % time.strftime('%m%d%H%M%S', time.gmtime())
        report = self.timed('restore_test', run_restore_test, self.client, name, self.ns, namespaces, contents['items'], tag,
                            timeout=self.p['wait_timeout'], poll_interval=self.p['poll_interval'], cleanup=self.p['restore_test_cleanup'],
                            in_progress_deadline=self.p['in_progress_deadline'], isolate=self.p['restore_test_isolation'])
        restore = report.get('restore') or {}
        if self.p['restore_test_cleanup'] and restore.get('name'):
            if self.client.delete(V.API_VERSION, 'Restore', restore['name'], self.ns) is not None:
                report['removed'].append('Restore %s/%s' % (self.ns, restore['name']))
        # the test created objects in the cluster (and, with cleanup, removed them again): that is a change
        self.result['changed'] = self.result['changed'] or bool(report.get('created'))
        remaining = (report.get('cleanup') or {}).get('remaining') or []
        if remaining:
            self.module.warn('scratch namespaces of the restore test are still there: %s' % ', '.join(remaining))
        if not self.p['restore_test_isolation']:
            self.module.warn('restore_test_isolation=false: the restored workloads, CronJobs, Jobs, Services and routes run in '
                             'the scratch namespaces %s until they are deleted' % ', '.join(sorted(report['namespace_mapping'].values())))
        return report

    def status(self):
        if self.p['schedule_name'] and not self.p['name']:
            sched = self.client.get(V.API_VERSION, 'Schedule', self.p['schedule_name'], self.ns)
            if sched is None:
                self.module.fail_json(msg='Schedule %s/%s does not exist' % (self.ns, self.p['schedule_name']))
            self.result['schedule'] = schedule_summary(sched)
            backups = V.list_backups(self.client, self.ns, self.p['schedule_name'])
            newest = V.latest_backup(backups, self.p['schedule_name'], phases=None)
            if newest is not None:
                self.report('Backup', newest, 'backup')
            completed = V.latest_backup(backups, self.p['schedule_name'])
            self.result['schedule']['last_completed_backup'] = completed['metadata']['name'] if completed else None
            return
        self.need('name')
        kind = self.p['kind']
        obj = self.client.get(V.API_VERSION, kind, self.p['name'], self.ns)
        if obj is None:
            self.module.fail_json(msg='%s %s/%s does not exist' % (kind, self.ns, self.p['name']))
        self.report(kind, obj, 'backup' if kind == 'Backup' else 'restore')

    def list(self):
        backups = V.list_backups(self.client, self.ns, self.p['schedule_name'])
        summaries = [V.summarize(b, 'Backup', in_progress_deadline=self.p['in_progress_deadline']) for b in backups]
        summaries.sort(key=lambda s: (s['started'] or s['created'] or '', s['name']), reverse=True)
        self.result['backups'] = summaries
        self.result['schedules'] = [schedule_summary(s) for s in self.client.list(V.API_VERSION, 'Schedule', namespace=self.ns)]


def schedule_summary(obj):
    spec = obj.get('spec') or {}
    status = obj.get('status') or {}
    meta = obj.get('metadata') or {}
    return {'name': meta.get('name'), 'namespace': meta.get('namespace'), 'phase': status.get('phase'),
            'schedule': spec.get('schedule'), 'paused': bool(spec.get('paused')), 'last_backup': status.get('lastBackup'),
            'validation_errors': status.get('validationErrors') or [], 'spec': V.normalize_spec(spec)}


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    narrow_kubeconfig_no_log(module)
    if not HAS_KUBERNETES:
        module.fail_json(msg=missing_required_lib('kubernetes'), exception=KUBERNETES_IMPORT_ERROR)
    if module.params['action'] == 'verify' and not HAS_BOTO3:
        module.fail_json(msg=missing_required_lib('boto3'), exception=BOTO3_IMPORT_ERROR)
    if module.params['ttl']:
        try:
            parse_duration(module.params['ttl'], 'ttl')
        except DurationError as exc:
            module.fail_json(msg=str(exc))
    try:
        client = get_kube_client(module.params)
        runner = Runner(module, client)
        getattr(runner, module.params['action'])()
    except KubeError as exc:
        module.fail_json(msg=str(exc), error=exc.to_dict())
    except S3Error as exc:
        module.fail_json(msg=str(exc))
    result = runner.result
    if runner.failed:
        module.fail_json(msg=runner.failed, **result)
    module.exit_json(**result)


if __name__ == '__main__':
    main()
