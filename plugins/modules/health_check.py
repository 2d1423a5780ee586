#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, machinenativeops platform team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: health_check
short_description: Read-only health check of a Kubernetes platform (workloads, pods, nodes, GitOps, backups, mesh, alerts)
version_added: 0.1.0
description:
  - Inspects a cluster and returns one list of findings, a status (C(healthy), C(degraded) or C(critical)) and counts per
    check and severity. Meant to run every minute, for example from an AWX schedule.
  - "Checks: C(workloads) (Deployments, StatefulSets, DaemonSets: ready vs desired, updated replicas, observedGeneration lag,
    ProgressDeadlineExceeded); C(pods) (CrashLoopBackOff, ImagePullBackOff, OOMKilled last state, restarts above a threshold,
    Pending longer than a threshold, not ready); C(nodes) (Ready, memory/disk/PID pressure, cordoned); C(storage) (PVCs Pending
    or Lost); C(jobs) (failed Jobs, CronJobs whose last successful run is too old); C(certificates) (cert-manager Certificates
    not Ready or expiring); C(gitops) (Flux Kustomization, HelmRelease, GitRepository Ready; Argo CD Application health and
    sync); C(backups) (per Velero Schedule the newest Completed backup younger than O(thresholds.max_backup_age), failed latest
    backups, BackupStorageLocations Available); C(mesh) (istiod ready, the injection label on the mesh namespaces); C(alerts)
    (firing alerts from Prometheus or Alertmanager); C(endpoints) (HTTP(S) probes)."
  - "The C(mesh) check is skipped when Istio is not in use: no istiod Deployment, no VirtualService and no O(mesh_namespaces)."
  - Each object yields at most one finding; its C(reason) is the most important problem and its C(message) lists all of them.
  - "API requests do not grow with the number of objects: one paginated list per kind and scope (cluster-wide, or one per
    namespace when O(namespaces) is given), label selectors evaluated by the API server, no request per object. Objects are
    evaluated page by page and not kept."
  - Checks whose CRDs or endpoints are absent are skipped and listed in RV(skipped_checks) with the reason.
  - An API or Prometheus error inside one check becomes a C(critical) finding with reason C(CheckError). An unreachable cluster
    or rejected credentials fail the module.
  - The module only reads; it never changes anything (C(changed=false)).
author:
  - machinenativeops platform team (@machinenativeops)
extends_documentation_fragment:
  - machinenativeops.platform.kube_auth
  - machinenativeops.platform.prometheus
  - machinenativeops.platform.attributes
  - machinenativeops.platform.attributes.INFO_MODULE
options:
  namespaces:
    description:
      - Namespaces to inspect. Namespaced kinds are then listed once per namespace.
      - When omitted, every namespace (one cluster-wide list per kind). Nodes and Velero objects are always listed cluster-wide.
    type: list
    elements: str
  label_selector:
    description:
      - Label selector (for example C(app.kubernetes.io/part-of=shop)) sent to the API server with the lists of workloads, pods,
        PVCs, Jobs, CronJobs, Certificates and GitOps objects. Nodes, Velero and mesh objects are not filtered.
    type: str
  checks:
    description:
      - The checks to run. Default is every check; a check that does not apply (CRDs absent, no O(prometheus_url) or
        O(alertmanager_url), no O(endpoints)) is listed in RV(skipped_checks) with the reason.
    type: list
    elements: str
    choices: [workloads, pods, nodes, storage, jobs, certificates, gitops, backups, mesh, alerts, endpoints]
  thresholds:
    description: Limits the evaluators use.
    type: dict
    default: {}
    suboptions:
      max_restarts:
        description: A container restarted more often than this is a C(warning) (C(RestartsAboveThreshold)).
        type: int
        default: 5
      max_pending_seconds:
        description: Pods and PVCs C(Pending) for longer than this many seconds are reported.
        type: int
        default: 300
      min_ready_ratio:
        description:
          - Minimum ratio of ready to desired replicas of a workload (0 to 1). Below it the workload is a C(warning), or C(critical)
            when no replica is ready.
        type: float
        default: 1.0
      cert_expiry_days:
        description: Certificates expiring within this many days are a C(warning); expired ones are C(critical).
        type: int
        default: 14
      max_backup_age:
        description:
          - Maximum age of the newest Completed backup of each Velero Schedule, in seconds or as a duration such as C(25h) or C(7d).
        type: str
        default: 25h
      max_cronjob_age:
        description:
          - Maximum age of the last successful run of a (not suspended) CronJob, in seconds or as a duration such as C(25h).
        type: str
        default: 25h
  fail_on:
    description:
      - When the module fails. C(critical) fails when the status is C(critical), C(warning) when it is not C(healthy), C(never)
        only on errors that stop the check (unreachable cluster, rejected credentials, invalid options).
      - The result (findings, summary) is returned in every case.
    type: str
    choices: [critical, warning, never]
    default: critical
  only_unhealthy:
    description:
      - Return only findings whose severity is not C(ok). When false, every evaluated object is returned as a finding, the
        healthy ones with severity C(ok) (large clusters produce large results).
      - RV(summary) counts every evaluated object either way.
    type: bool
    default: true
  alertmanager_url:
    description:
      - Base URL of Alertmanager. When given, the C(alerts) check reads active, unsilenced, uninhibited alerts from its
        C(/api/v2/alerts) (unless O(alert_source=prometheus)).
      - Can also be set with the E(ALERTMANAGER_URL) environment variable.
    type: str
  alert_source:
    description:
      - Where the C(alerts) check reads firing alerts. C(auto) uses Alertmanager when O(alertmanager_url) is set, else Prometheus.
    type: str
    choices: [auto, prometheus, alertmanager]
    default: auto
  alert_severities:
    description: Only alerts whose C(severity) label is one of these are reported; C(critical) ones as critical, others as warning.
    type: list
    elements: str
    default: [critical, warning]
  alert_labels:
    description: Only alerts whose labels have exactly these values are reported, for example C(team=platform) given as a dict.
    type: dict
  endpoints:
    description: HTTP(S) URLs probed by the C(endpoints) check.
    type: list
    elements: dict
    suboptions:
      url:
        description: The URL to request.
        type: str
        required: true
      name:
        description: Name of the finding (default the URL).
        type: str
      method:
        description: HTTP method.
        type: str
        default: GET
      status_code:
        description: Accepted status codes.
        type: list
        elements: int
        default: [200]
      body_contains:
        description: A substring the body must contain.
        type: str
      timeout:
        description: Seconds to wait for the answer.
        type: float
        default: 5
      validate_certs:
        description: Whether to verify the TLS certificate of an C(https) URL.
        type: bool
        default: true
      ca_cert:
        description: CA bundle to verify the certificate with.
        type: path
      headers:
        description: Extra request headers (not logged).
        type: dict
      severity:
        description: Severity of a failed probe.
        type: str
        choices: [warning, critical]
        default: critical
  mesh_namespaces:
    description:
      - Namespaces that must carry the Istio injection label (C(istio-injection=enabled) or C(istio.io/rev)).
      - Default is every namespace holding an Istio VirtualService (within O(namespaces) when given).
    type: list
    elements: str
  istio_namespace:
    description: Namespace of the istiod Deployment (label C(app=istiod)).
    type: str
    default: istio-system
  page_size:
    description: Objects per list request (the C(limit) of the paginated lists).
    type: int
    default: 500
  reference_time:
    description:
      - Evaluate ages (pending, backups, certificates, CronJobs) as of this RFC 3339 time instead of now, for example to
        replay a situation or to agree with a cluster whose clock differs.
    type: str
notes:
  - Needs only read access (get/list) to the inspected kinds; the ClusterRole C(machinenativeops-platform:health-reader)
    of the C(machinenativeops.platform.rbac) role grants exactly that.
  - A check the credentials may not make (the API answers 403) gives a finding of severity C(unknown) and reason C(Forbidden)
    that names the missing permission, also listed in RV(missing_permissions); it does not change RV(status), because it says
    nothing about the cluster. The built-in C(view) ClusterRole, for example, cannot list Nodes or Velero objects.
  - The severity of any other C(CheckError) finding is C(critical) because when a check cannot run, health cannot be asserted.
seealso:
  - module: kubernetes.core.k8s_info
'''

EXAMPLES = r'''
- name: Check the whole platform
  machinenativeops.platform.health_check:
    kubeconfig: ~/.kube/config
    prometheus_url: http://prometheus.monitoring:9090
  register: health

- name: Check two namespaces, fail on warnings too, looser thresholds
  machinenativeops.platform.health_check:
    namespaces: [shop, payments]
    label_selector: app.kubernetes.io/part-of=shop
    checks: [workloads, pods, storage, jobs]
    fail_on: warning
    thresholds:
      max_restarts: 10
      max_pending_seconds: 600
      min_ready_ratio: 0.5

- name: Backups and certificates only, never fail (report)
  machinenativeops.platform.health_check:
    checks: [backups, certificates]
    thresholds:
      max_backup_age: 26h
      cert_expiry_days: 21
    fail_on: never
  register: report

- name: Alerts from Alertmanager and HTTP probes
  machinenativeops.platform.health_check:
    checks: [alerts, endpoints]
    alertmanager_url: http://alertmanager.monitoring:9093
    alert_labels:
      team: platform
    endpoints:
      - url: https://shop.example.com/healthz
        body_contains: ok
        timeout: 3
'''

RETURN = r'''
changed:
  description: Always false, the module only reads.
  returned: always
  type: bool
  sample: false
status:
  description: C(healthy) (no finding), C(degraded) (warnings only) or C(critical) (at least one critical finding).
  returned: always
  type: str
  sample: degraded
summary:
  description: Counts of evaluated objects per check and severity, and totals.
  returned: always
  type: dict
  contains:
    checks:
      description: Check name to a dict of C(ok), C(warning), C(critical) and C(unknown) counts.
      type: dict
      sample: {pods: {ok: 41, warning: 1, critical: 2, unknown: 0}}
    totals:
      description: C(ok), C(warning), C(critical) and C(unknown) counts over all checks.
      type: dict
      sample: {ok: 120, warning: 1, critical: 2, unknown: 0}
findings:
  description: The problems found (and healthy objects with O(only_unhealthy=false)), most severe first.
  returned: always
  type: list
  elements: dict
  contains:
    check:
      description: The check that produced the finding.
      type: str
      sample: pods
    kind:
      description: Kind of the object (C(Pod), C(Deployment), C(Node), C(Schedule), C(Alert), C(Endpoint), ...).
      type: str
      sample: Pod
    namespace:
      description: Namespace of the object, null for cluster-scoped objects.
      type: str
      sample: shop
    name:
      description: Name of the object (alert name for alerts, name or URL for endpoints).
      type: str
      sample: web-7d4b9c8f6-x2x8k
    severity:
      description: C(critical), C(warning), C(ok), or C(unknown) for a check that RBAC did not allow (reason C(Forbidden)).
      type: str
      sample: critical
    permission:
      description: On C(Forbidden) findings only, the permission the check needed.
      type: dict
      sample: {verb: list, group: "", resource: nodes, namespace: null}
    reason:
      description: Machine-readable reason of the most important problem (for example C(CrashLoopBackOff), C(NodeNotReady),
        C(BackupTooOld), C(CheckError)).
      type: str
      sample: CrashLoopBackOff
    message:
      description: Human-readable description of every problem of the object.
      type: str
      sample: "container app in CrashLoopBackOff (7 restarts, last exit: Error); pod not ready (containers not ready: app)"
    since:
      description: RFC 3339 time the problem started, when known.
      type: str
      sample: "2026-03-01T11:58:00Z"
skipped_checks:
  description:
    - Checks that did not run and why.
    - Not named C(skipped) because Ansible reads a true C(skipped) key as "the task was skipped".
  returned: always
  type: list
  elements: dict
  sample: [{check: certificates, reason: cert-manager is not installed (the API does not serve cert-manager.io Certificate)}]
missing_permissions:
  description:
    - The RBAC permissions the checks needed and the credentials lack, once each; empty when every check could run.
    - C(group) is empty for the core API; C(namespace) is null for a cluster-wide request.
  returned: always
  type: list
  elements: dict
  sample: [{verb: list, group: "", resource: nodes, namespace: null}, {verb: list, group: velero.io, resource: backups, namespace: null}]
checks:
  description: The checks that were run or skipped, in order.
  returned: always
  type: list
  elements: str
  sample: [workloads, pods, nodes]
duration_seconds:
  description: Wall time of the checks.
  returned: always
  type: float
  sample: 0.42
api_calls:
  description: Number of API requests made (Kubernetes, including discovery, plus Prometheus and Alertmanager).
  returned: always
  type: int
  sample: 14
api_calls_by_target:
  description: RV(api_calls) split into C(kubernetes), C(prometheus) and C(alertmanager).
  returned: always
  type: dict
  sample: {kubernetes: 13, prometheus: 1, alertmanager: 0}
objects_evaluated:
  description: Number of Kubernetes objects evaluated.
  returned: always
  type: int
  sample: 163
reference_time:
  description: The time ages were computed against (RFC 3339).
  returned: always
  type: str
  sample: "2026-03-01T12:00:00Z"
'''

import os

from ansible.module_utils.basic import AnsibleModule, env_fallback, missing_required_lib
from ansible_collections.machinenativeops.platform.plugins.module_utils.health import (
    CHECKS,
    DEFAULT_THRESHOLDS,
    HealthError,
    HealthRunner,
    normalize_thresholds,
    parse_time,
    select_checks,
    should_fail,
)
from ansible_collections.machinenativeops.platform.plugins.module_utils.kube import (
    HAS_KUBERNETES,
    KUBE_AUTH_ARG_SPEC,
    KUBERNETES_IMPORT_ERROR,
    KubeError,
    get_kube_client,
    map_error,
    narrow_kubeconfig_no_log,
)
from ansible_collections.machinenativeops.platform.plugins.module_utils.prometheus import (
    PROMETHEUS_ARG_SPEC,
    PrometheusClient,
    PrometheusError,
)


def argument_spec():
    spec = dict(
        namespaces=dict(type='list', elements='str'),
        label_selector=dict(type='str'),
        checks=dict(type='list', elements='str', choices=list(CHECKS)),
        thresholds=dict(type='dict', default={}, options=dict(
            max_restarts=dict(type='int', default=DEFAULT_THRESHOLDS['max_restarts']),
            max_pending_seconds=dict(type='int', default=DEFAULT_THRESHOLDS['max_pending_seconds']),
            min_ready_ratio=dict(type='float', default=DEFAULT_THRESHOLDS['min_ready_ratio']),
            cert_expiry_days=dict(type='int', default=DEFAULT_THRESHOLDS['cert_expiry_days']),
            max_backup_age=dict(type='str', default=DEFAULT_THRESHOLDS['max_backup_age']),
            max_cronjob_age=dict(type='str', default=DEFAULT_THRESHOLDS['max_cronjob_age']),
        )),
        fail_on=dict(type='str', choices=['critical', 'warning', 'never'], default='critical'),
        only_unhealthy=dict(type='bool', default=True),
        alertmanager_url=dict(type='str', fallback=(env_fallback, ['ALERTMANAGER_URL'])),
        alert_source=dict(type='str', choices=['auto', 'prometheus', 'alertmanager'], default='auto'),
        alert_severities=dict(type='list', elements='str', default=['critical', 'warning']),
        alert_labels=dict(type='dict'),
        endpoints=dict(type='list', elements='dict', options=dict(
            url=dict(type='str', required=True),
            name=dict(type='str'),
            method=dict(type='str', default='GET'),
            status_code=dict(type='list', elements='int', default=[200]),
            body_contains=dict(type='str'),
            timeout=dict(type='float', default=5),
            validate_certs=dict(type='bool', default=True),
            ca_cert=dict(type='path'),
            headers=dict(type='dict', no_log=True),
            severity=dict(type='str', choices=['warning', 'critical'], default='critical'),
        )),
        mesh_namespaces=dict(type='list', elements='str'),
        istio_namespace=dict(type='str', default='istio-system'),
        page_size=dict(type='int', default=500),
        reference_time=dict(type='str'),
    )
    spec.update(KUBE_AUTH_ARG_SPEC)
    spec.update(PROMETHEUS_ARG_SPEC)
    return spec


def connect(params):
    """A KubeClient that has proven it can talk to the API server (GET /version); raises KubeError."""
    kube = get_kube_client(params)
    try:
        kube.dynamic.request('get', '/version', serialize=False)
    except Exception as exc:  # pylint: disable=broad-except
        raise map_error(exc, 'get', 'version', host=kube.host, secrets=getattr(kube, '_secrets', ())) from None
    return kube


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    narrow_kubeconfig_no_log(module)
    params = module.params
    if not HAS_KUBERNETES:
        module.fail_json(msg=missing_required_lib('kubernetes'), exception=KUBERNETES_IMPORT_ERROR)
    try:
        normalize_thresholds(params['thresholds'])
        checks = select_checks(params['checks'])
    except (ValueError, HealthError) as exc:
        module.fail_json(msg='invalid option: %s' % exc)
    if params['page_size'] < 1:
        module.fail_json(msg='invalid option: page_size must be at least 1')
    now = None
    if params['reference_time']:
        now = parse_time(params['reference_time'])
        if now is None:
            module.fail_json(msg='invalid option: reference_time %r is not an RFC 3339 time' % params['reference_time'])

    try:
        kube = connect(params)
    except KubeError as exc:
        module.fail_json(msg='cannot use the Kubernetes API: %s' % exc, error=exc.to_dict())

    prometheus = None
    if params.get('prometheus_url') or os.environ.get('PROMETHEUS_URL'):
        try:
            prometheus = PrometheusClient.from_params(params)
        except PrometheusError as exc:
            module.fail_json(msg='invalid Prometheus options: %s' % exc)

    runner = HealthRunner(kube, params, now=now, prometheus=prometheus, kube_error=KubeError, prometheus_error=PrometheusError)
    try:
        result = runner.run(checks)
    except HealthError as exc:
        module.fail_json(msg='cannot use the Kubernetes API: %s' % exc, api_calls=kube.api_calls)
    except KubeError as exc:
        module.fail_json(msg='cannot use the Kubernetes API: %s' % exc, error=exc.to_dict(), api_calls=kube.api_calls)

    result['changed'] = False
    if should_fail(result['status'], params['fail_on']):
        totals = result['summary']['totals']
        module.fail_json(msg='platform health is %s: %d critical and %d warning findings (fail_on=%s)' % (
            result['status'], totals['critical'], totals['warning'], params['fail_on']), **result)
    module.exit_json(**result)


if __name__ == '__main__':
    main()
