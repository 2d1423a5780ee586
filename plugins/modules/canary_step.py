#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, machinenativeops platform team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: canary_step
short_description: Analyse an Istio canary and advance, hold, promote or roll back its VirtualService weights
version_added: 0.1.0
description:
  - Runs one step of a progressive canary release from outside the cluster, with nothing installed in it. The traffic split
    is the weights of an Istio VirtualService route; the analysis is PromQL against Prometheus (Istio telemetry of the
    canary workload plus custom queries).
  - "O(action=step): when no canary runs yet, sends the first O(steps) weight to the canary. Afterwards each call analyses the
    last O(analysis.interval) and advances to the next step when every metric passes; the last step (100) is the promotion.
    A failed analysis is a failed check; O(max_failed_checks) of them roll back (O(rollback_on_failure))."
  - Empty or NaN results and less than O(analysis.min_requests) canary requests in the window make the analysis
    I(inconclusive); the canary is held, never failed, until O(max_inconclusive) inconclusive analyses fail it.
    Prometheus unreachable holds without counting anything. Nothing is promoted without a passing analysis.
  - An analysis only counts when its whole window lies after the last weight change and after the previous counted
    analysis, so calling O(action=step) twice within one window does not advance twice. Call it in a loop with a pause of
    at least O(analysis.interval) (for example C(until) with C(delay)).
  - The canary state (step, failed and inconclusive counts, the history of analyses with values and bounds, start time)
    is stored in the C(canary.machinenativeops.io/state) annotation of the VirtualService, and a plain-word summary in
    C(canary.machinenativeops.io/summary). Re-running after a crash resumes where the canary was. Weights and state are
    written in one merge patch guarded by the object's resourceVersion, so two concurrent runs cannot both advance.
  - Before any weight is sent to a subset, the module checks that a DestinationRule defines that subset for the host, and
    fails naming the missing subset without changing anything (Istio would reject or blackhole the traffic).
  - Weights of the route always sum to 100. Other destinations of the route must carry no weight.
author:
  - machinenativeops platform team (@machinenativeops)
extends_documentation_fragment:
  - machinenativeops.platform.kube_auth
  - machinenativeops.platform.prometheus
  - machinenativeops.platform.attributes
attributes:
  check_mode:
    support: full
    details: Runs the analysis and returns the decision, weights and patch it would apply without writing anything.
  diff_mode:
    support: full
    details: Shows the weights and canary state before and after.
options:
  action:
    description:
      - V(step) analyses, then advances one step, holds, promotes or rolls back.
      - V(set_weight) sets the canary weight to O(weight) without analysis; V(100) is a promotion and needs a passing analysis.
        After a promotion, V(set_weight) with V(0) moves the traffic back to the stable destination (once it runs the
        new version) and keeps the promoted state.
      - V(promote) analyses and, when the analysis passes, sends all traffic to the canary.
      - V(rollback) sends all traffic to the stable destination.
      - V(analyze) runs the analysis and changes nothing. V(status) returns the stored state and weights.
      - V(lease) only takes or renews the lease of O(lease.holder) (see O(lease)), for example before a job touches the
        canary Deployment, and fails when another job holds it.
    type: str
    choices: [step, set_weight, promote, rollback, analyze, status, lease]
    default: step
  namespace:
    description: Namespace of the VirtualService, the DestinationRule and the workloads.
    type: str
    required: true
  virtual_service:
    description: Name of the VirtualService whose weights are shifted.
    type: str
    required: true
  route:
    description:
      - Name of the VirtualService http route to shift when several routes send traffic to the stable destination.
      - By default the one route that routes to the stable or canary destination.
    type: str
  stable:
    description: The stable destination (Istio host and subset, or a host of its own).
    type: dict
    required: true
    suboptions:
      host:
        description: Destination host, for example C(reviews) or C(reviews.shop.svc.cluster.local).
        type: str
        required: true
      subset:
        description: Subset of the host, defined by a DestinationRule. Omit when stable and canary are two hosts.
        type: str
  canary:
    description: The canary destination (Istio host and subset, or a host of its own).
    type: dict
    required: true
    suboptions:
      host:
        description: Destination host.
        type: str
        required: true
      subset:
        description: Subset of the host, defined by a DestinationRule.
        type: str
  destination_rule:
    description:
      - Name of the DestinationRule that must define the stable and canary subsets.
      - By default any DestinationRule of O(namespace) for the destination host.
    type: str
  canary_workload:
    description:
      - Name of the canary workload (Deployment), the C(destination_workload) label of its Istio metrics.
      - Required by the actions that analyse (V(step), V(promote), V(analyze), V(set_weight) to 100).
    type: str
  stable_workload:
    description: Name of the stable workload, needed by O(analysis.compare) and available to custom queries as C($stable_workload).
    type: str
  revision:
    description:
      - Identifies the release, for example the canary image tag. A stored state of another revision is replaced by a new
        canary; a finished canary (promoted, rolled back or failed) of the same revision stays finished.
    type: str
  steps:
    description: Canary weights in percent, strictly increasing, ending with 100 (the promotion).
    type: list
    elements: int
    default: [10, 30, 50, 80, 100]
  weight:
    description: Canary weight for O(action=set_weight), 0 to 100.
    type: int
  analysis:
    description: What a passing canary looks like.
    type: dict
    default: {}
    suboptions:
      interval:
        description:
          - The analysis window (V(30s), V(1m), V(1m30s), V(90); the collection's duration grammar, see the README section
            Durations); the queries use it as their range (written in Prometheus syntax) and a new analysis counts only
            after a full window.
        type: str
        default: 1m
      min_requests:
        description: Canary requests needed in the window; with fewer the analysis is inconclusive.
        type: int
        default: 20
      request_count_query:
        description:
          - PromQL giving the number of canary requests in the window, compared with O(analysis.min_requests) to decide
            whether there was enough traffic. Default the Istio query C(sum(increase(istio_requests_total{<canary>}[$interval]))).
            Set it for non-Istio metrics; the same variables as in O(analysis.metrics) are replaced. It must return one series.
        type: str
      reporter:
        description: Istio C(reporter) label of the built-in queries.
        type: str
        choices: [destination, source]
        default: destination
      builtin_metrics:
        description:
          - The built-in checks to run on the canary's Istio telemetry. An empty list keeps only the traffic check
            (O(analysis.min_requests)), custom metrics and the comparison.
        type: list
        elements: str
        choices: [success_rate, error_rate, latency]
        default: [success_rate, error_rate, latency]
      success_rate_min:
        description: Minimum request success rate (non-5xx responses) in percent; 95 when omitted.
        type: float
      error_rate_max:
        description: Maximum request error rate (5xx responses) in percent; 1 when omitted.
        type: float
      latency_quantile:
        description: Quantile of C(istio_request_duration_milliseconds) checked against O(analysis.latency_max_ms) and compared; 0.95 when omitted.
        type: float
      latency_max_ms:
        description: Maximum request duration at O(analysis.latency_quantile) in milliseconds; 500 when omitted.
        type: float
      metrics:
        description:
          - Custom PromQL metrics. The query must return one series (aggregate it). C($namespace), C($canary_workload),
            C($stable_workload) and C($interval) are replaced (write C($$) for a literal dollar sign).
        type: list
        elements: dict
        suboptions:
          name:
            description: Name of the metric in results.
            type: str
            required: true
          query:
            description: The PromQL query.
            type: str
            required: true
          min:
            description: Lowest passing value.
            type: float
          max:
            description: Highest passing value.
            type: float
      compare:
        description:
          - Compare the canary with the stable workload over the same window.
          - The error ratio is judged with an exact one-sided binomial test against the stable ratio plus
            O(analysis.compare.error_ratio_tolerance), so 3 errors in 30 requests fail while 3 in 30000 pass.
          - The latency at O(analysis.latency_quantile) may be at most the stable one plus
            O(analysis.compare.latency_tolerance_pct) percent plus O(analysis.compare.latency_margin_ms).
        type: dict
        default: {}
        suboptions:
          enabled:
            description: Whether to compare.
            type: bool
            default: false
          error_ratio_tolerance:
            description: Percentage points the canary error ratio may exceed the stable one by.
            type: float
            default: 1.0
          alpha:
            description: Significance level of the binomial test.
            type: float
            default: 0.05
          latency_tolerance_pct:
            description: Percent the canary latency may exceed the stable one by.
            type: float
            default: 20.0
          latency_margin_ms:
            description: Milliseconds added to the latency threshold (absorbs histogram bucket interpolation at low latencies).
            type: float
            default: 0.0
  max_failed_checks:
    description: Failed analyses that fail the canary.
    type: int
    default: 2
  max_inconclusive:
    description: Inconclusive analyses (too little traffic, no data, NaN) that fail the canary.
    type: int
    default: 5
  count_mode:
    description:
      - V(consecutive) resets the failed and inconclusive counts on a passing analysis (a failed one resets the inconclusive
        count); V(total) counts over the whole canary.
    type: str
    choices: [consecutive, total]
    default: consecutive
  progress_deadline:
    description: The canary fails when its weight has not changed for this long (a duration such as V(1h) or V(90m)), even while Prometheus is down.
    type: str
    default: 1h
  rollback_on_failure:
    description: Send all traffic back to the stable destination when the canary fails.
    type: bool
    default: true
  istio_api_version:
    description: API version of the Istio networking objects, for example C(networking.istio.io/v1). Detected when omitted.
    type: str
  lease:
    description:
      - One job at a time per canary. With O(lease.holder) (for example the AWX job id), the actions that move traffic
        (V(step), V(set_weight), V(promote)) take a lease stored in the C(canary.machinenativeops.io/lease) annotation of the
        VirtualService, in the same resourceVersion-guarded patch as the weights, and renew it when less than half of
        O(lease.duration) is left. Such an action by another holder, or without a holder, fails naming the holder and the
        expiry while the lease is valid; an expired lease (a crashed or cancelled job) is taken over.
      - A call that ends the canary (promoted, rolled back, failed) releases the holder's lease. V(rollback) is never
        refused because of a lease.
    type: dict
    default: {}
    suboptions:
      holder:
        description: Who drives the canary; no lease is taken without it.
        type: str
      duration:
        description: How long a lease lasts without renewal (a duration such as V(15m)); longer than the pause between calls.
        type: str
        default: 15m
  capacity:
    description:
      - Canary replicas that follow the weight, so that one canary pod never takes most of the traffic.
      - With O(capacity.mode=proportional), before the weight is raised to W the canary Deployment is scaled to
        C(ceil(stable replicas * W / 100)) replicas (within O(capacity.min_replicas) and O(capacity.max_replicas)), and the
        weight moves only on a later call, once that many canary replicas run the current template and are ready; until
        then the decision is V(held) and RV(capacity) says why. When a HorizontalPodAutoscaler scales the canary
        Deployment, its C(minReplicas) is raised instead (it fails when its C(maxReplicas) is too low).
      - Replicas are never lowered here; scale the canary down after the promotion or rollback (C(deploy.yml) does).
        A canary that never becomes ready keeps its weight until O(progress_deadline) fails it.
      - Needs O(canary_workload) and O(stable_workload).
    type: dict
    default: {}
    suboptions:
      mode:
        description: V(none) leaves the replicas alone; V(proportional) scales them with the weight.
        type: str
        choices: [none, proportional]
        default: none
      min_replicas:
        description: Fewest canary replicas at any weight above 0.
        type: int
        default: 1
      max_replicas:
        description: Most canary replicas (default no cap).
        type: int
notes:
  - The analysis time is the clock of the host running the module; it should be roughly in sync with Prometheus.
seealso:
  - name: Istio traffic shifting
    description: How VirtualService weights split the traffic.
    link: https://istio.io/latest/docs/tasks/traffic-management/traffic-shifting/
'''

EXAMPLES = r'''
- name: Advance the canary of reviews one step when its analysis passes
  machinenativeops.platform.canary_step:
    kubeconfig: ~/.kube/config
    prometheus_url: http://prometheus.monitoring:9090
    namespace: shop
    virtual_service: reviews
    stable: {host: reviews, subset: stable}
    canary: {host: reviews, subset: canary}
    canary_workload: reviews-canary
    stable_workload: reviews
    revision: "1.4.0"
  register: canary

- name: Loop until the canary is promoted or rolled back, one analysis per minute
  machinenativeops.platform.canary_step:
    namespace: shop
    virtual_service: reviews
    stable: {host: reviews, subset: stable}
    canary: {host: reviews, subset: canary}
    canary_workload: reviews-canary
    stable_workload: reviews
    revision: "1.4.0"
    analysis:
      interval: 1m
      min_requests: 50
      metrics:
        - name: canary_cpu_cores
          query: sum(rate(container_cpu_usage_seconds_total{namespace="$namespace",pod=~"$canary_workload-.*"}[$interval]))
          max: 2
      compare:
        enabled: true
        error_ratio_tolerance: 0.5
  register: canary
  until: canary.decision in ['promoted', 'rolled_back', 'failed']
  retries: 60
  delay: 60

- name: Roll back by hand
  machinenativeops.platform.canary_step:
    action: rollback
    namespace: shop
    virtual_service: reviews
    stable: {host: reviews, subset: stable}
    canary: {host: reviews, subset: canary}
    revision: "1.4.0"
'''

RETURN = r'''
decision:
  description: What happened (or would happen in check mode).
  returned: always
  type: str
  sample: advanced
  choices: [advanced, held, promoted, rolled_back, inconclusive, failed]
verdict:
  description: Verdict of the analysis run by this call (passed, failed, inconclusive, unavailable), null when none ran.
  returned: always
  type: str
  sample: passed
reasons:
  description: The decision and the analysis in plain words.
  returned: always
  type: list
  elements: str
  sample: ["every metric is within its bounds (612 canary requests in the last 1m)", "analysis passed: canary weight 10% -> 30%"]
lease:
  description:
    - The canary lease after the call, null when none is held. C(action) is V(acquired), V(renewed), V(kept),
      V(released), or null when this call did not use the lease.
  returned: always
  type: dict
  sample: {holder: awx-job-4711, expires_at: "2026-03-01T12:15:00.000Z", action: acquired}
lease_conflict:
  description: True when the call failed because another holder's lease is valid; the caller must not touch the canary.
  returned: on failure, when another job holds the lease
  type: bool
  sample: true
capacity:
  description:
    - With O(capacity.mode=proportional) and a raised weight, the capacity plan; absent otherwise.
    - C(action) is V(ready) (the weight moved), V(scale) or V(raise_hpa) (replicas asked for, weight held) or V(wait)
      (replicas not ready yet, weight held).
  returned: when capacity.mode is proportional and the weight would rise
  type: dict
  sample: {action: scale, needed: 2, replicas: 1, ready: 1, stable_replicas: 4, hpa: null, weight: 30,
           patch: {spec: {replicas: 2}}, reason: "30% of the traffic needs 2 canary replica(s) (stable has 4): ..."}
weights_before:
  description: Route weights before the call.
  returned: always
  type: dict
  sample: {stable: 90, canary: 10}
weights_after:
  description: Route weights after the call.
  returned: always
  type: dict
  sample: {stable: 70, canary: 30}
step_index:
  description: Index in O(steps) of the canary weight after the call, -1 before the canary started.
  returned: always
  type: int
  sample: 1
steps:
  description: The step weights.
  returned: always
  type: list
  elements: int
  sample: [10, 30, 50, 80, 100]
phase:
  description: Canary phase after the call (progressing, promoted, rolled_back, failed).
  returned: always
  type: str
  sample: progressing
analysis:
  description: The analysis run by this call; null when none ran (window not complete, no analysis needed).
  returned: always
  type: dict
  contains:
    verdict:
      description: passed, failed, inconclusive or unavailable.
      type: str
    at:
      description: Evaluation time (RFC 3339).
      type: str
    window:
      description: The analysis window.
      type: str
    requests:
      description: Canary requests in the window.
      type: float
    metrics:
      description: Every metric with C(name), C(kind), C(query), C(value), C(min), C(max), C(verdict) and C(reason).
      type: list
      elements: dict
    comparisons:
      description: Canary versus stable comparisons with the ratios, threshold, C(p_value), verdict and the queries.
      type: list
      elements: dict
state:
  description: The canary state stored on the VirtualService after the call (history of decisions and analyses included).
  returned: always
  type: dict
patch:
  description: The JSON merge patch sent to the VirtualService (or that would be sent in check mode); null when nothing changes.
  returned: always
  type: dict
virtual_service:
  description: The VirtualService, its API version and the index of the shifted http route.
  returned: always
  type: dict
  sample: {namespace: shop, name: reviews, api_version: networking.istio.io/v1beta1, route_index: 0}
diff:
  description: Weights and canary state before and after (with C(--diff)).
  returned: when diff mode is on
  type: dict
'''

import copy
import time

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible_collections.machinenativeops.platform.plugins.module_utils import canary as cn
from ansible_collections.machinenativeops.platform.plugins.module_utils import canary_capacity as capacity
from ansible_collections.machinenativeops.platform.plugins.module_utils import canary_lease as lease
from ansible_collections.machinenativeops.platform.plugins.module_utils.kube import (
    HAS_KUBERNETES,
    KUBE_AUTH_ARG_SPEC,
    KUBERNETES_IMPORT_ERROR,
    KubeError,
    get_kube_client,
    narrow_kubeconfig_no_log,
)
from ansible_collections.machinenativeops.platform.plugins.module_utils.prometheus import (
    PROMETHEUS_ARG_SPEC,
    PrometheusClient,
    PrometheusError,
    is_query_error,
)

ISTIO_GROUP = 'networking.istio.io'


def _argument_spec():
    destination = dict(host=dict(type='str', required=True), subset=dict(type='str'))
    metric = dict(name=dict(type='str', required=True), query=dict(type='str', required=True), min=dict(type='float'), max=dict(type='float'))
    compare = dict(
        enabled=dict(type='bool', default=False),
        error_ratio_tolerance=dict(type='float', default=1.0),
        alpha=dict(type='float', default=0.05),
        latency_tolerance_pct=dict(type='float', default=20.0),
        latency_margin_ms=dict(type='float', default=0.0),
    )
    analysis = dict(
        interval=dict(type='str', default='1m'),
        min_requests=dict(type='int', default=20),
        request_count_query=dict(type='str'),
        reporter=dict(type='str', choices=['destination', 'source'], default='destination'),
        builtin_metrics=dict(type='list', elements='str', choices=list(cn.BUILTIN_METRICS), default=list(cn.BUILTIN_METRICS)),
        success_rate_min=dict(type='float'),
        error_rate_max=dict(type='float'),
        latency_quantile=dict(type='float'),
        latency_max_ms=dict(type='float'),
        metrics=dict(type='list', elements='dict', options=metric),
        compare=dict(type='dict', options=compare, default={}),
    )
    spec = dict(
        action=dict(type='str', choices=list(cn.ACTIONS), default='step'),
        namespace=dict(type='str', required=True),
        virtual_service=dict(type='str', required=True),
        route=dict(type='str'),
        stable=dict(type='dict', required=True, options=destination),
        canary=dict(type='dict', required=True, options=copy.deepcopy(destination)),
        destination_rule=dict(type='str'),
        canary_workload=dict(type='str'),
        stable_workload=dict(type='str'),
        revision=dict(type='str'),
        steps=dict(type='list', elements='int', default=list(cn.DEFAULT_STEPS)),
        weight=dict(type='int'),
        analysis=dict(type='dict', options=analysis, default={}),
        max_failed_checks=dict(type='int', default=2),
        max_inconclusive=dict(type='int', default=5),
        count_mode=dict(type='str', choices=['consecutive', 'total'], default='consecutive'),
        progress_deadline=dict(type='str', default='1h'),
        rollback_on_failure=dict(type='bool', default=True),
        istio_api_version=dict(type='str'),
        lease=dict(type='dict', default={}, options=dict(holder=dict(type='str'), duration=dict(type='str', default='15m'))),
        capacity=dict(type='dict', default={}, options=dict(
            mode=dict(type='str', choices=list(capacity.MODES), default='none'),
            min_replicas=dict(type='int', default=1),
            max_replicas=dict(type='int'),
        )),
    )
    spec.update(KUBE_AUTH_ARG_SPEC)
    spec.update(PROMETHEUS_ARG_SPEC)
    return spec


def _api_version(client, wanted):
    if wanted:
        if client.resource(wanted, 'VirtualService') is None:
            raise cn.CanaryError('the API server does not serve VirtualService in %s (is Istio installed?)' % wanted)
        return wanted
    for version in ('v1', 'v1beta1', 'v1alpha3'):
        api_version = '%s/%s' % (ISTIO_GROUP, version)
        if client.resource(api_version, 'VirtualService') is not None:
            return api_version
    raise cn.CanaryError('the API server serves no VirtualService (networking.istio.io); is Istio installed?')


def _view(weights, state):
    return {'weights': dict(weights), 'canary': {k: state.get(k) for k in ('revision', 'phase', 'step_index', 'weight', 'failed_checks',
                                                                           'inconclusive_checks', 'analyses')} if state else None}


def _capacity(client, module, opts, cap, weight):
    """capacity.plan() for ``weight``, and its scale or HPA patch applied (not in check mode)."""
    ns = opts['namespace']
    canary = client.get('apps/v1', 'Deployment', opts['canary_workload'], namespace=ns)
    stable = client.get('apps/v1', 'Deployment', opts['stable_workload'], namespace=ns)
    if canary is None and module.check_mode:
        # a check-mode run that would have created (and waited for) the canary earlier, as deploy.yml --check does:
        # plan as if it ran min_replicas ready replicas
        n = cap['min_replicas']
        canary = {'metadata': {'namespace': ns, 'name': opts['canary_workload'], 'generation': 1}, 'spec': {'replicas': n},
                  'status': {'observedGeneration': 1, 'readyReplicas': n, 'updatedReplicas': n}}
    hpas = []
    if client.resource('autoscaling/v2', 'HorizontalPodAutoscaler') is not None:
        hpas = list(client.list('autoscaling/v2', 'HorizontalPodAutoscaler', namespace=ns))
    hpa = capacity.hpa_for(hpas, opts['canary_workload'])
    plan = capacity.plan(canary, stable, hpa, weight, cap)
    if not module.check_mode:
        if plan['action'] == 'scale':
            client.patch('apps/v1', 'Deployment', opts['canary_workload'], plan['patch'], namespace=ns)
        elif plan['action'] == 'raise_hpa':
            client.patch('autoscaling/v2', 'HorizontalPodAutoscaler', hpa['metadata']['name'], plan['patch'], namespace=ns)
    return plan


def _lease_patch(result, held, holder, seconds, now, finished):  # noqa: PLR0917
    """The VirtualService patch that takes, renews or releases ``holder``'s lease (None: nothing to write); sets
    ``result['lease']``."""
    if not holder:
        return None
    value = lease.wanted(held, holder, seconds, now, finished)
    mine = bool(held) and held['holder'] == holder
    if value is None:
        if mine:
            result['lease']['action'] = 'kept'
        return None
    if value == '':
        result['lease'] = {'holder': holder, 'expires_at': None, 'action': 'released'}
    else:
        result['lease'] = {'holder': holder, 'expires_at': cn.format_time(value['expires_at']), 'action': 'renewed' if mine else 'acquired'}
    return {'metadata': {'annotations': {lease.LEASE_ANNOTATION: lease.serialize(value)}}}


def _write(module, client, api_version, name, ns, vs, patch):  # noqa: PLR0917
    """Merge-patch the VirtualService, guarded by the resourceVersion that was read (not in check mode); returns the patch."""
    patch.setdefault('metadata', {})['resourceVersion'] = (vs.get('metadata') or {}).get('resourceVersion')
    if not module.check_mode:
        client.patch(api_version, 'VirtualService', name, patch, namespace=ns)
    return patch


def run_module(module, now):
    p = module.params
    opts = cn.options_from_params(p)
    cap = capacity.options(p.get('capacity'))
    holder = (p.get('lease') or {}).get('holder') or None
    if opts['action'] == 'lease' and not holder:
        raise cn.CanaryError('action=lease needs lease.holder')
    lease_seconds = cn.parse_duration((p.get('lease') or {}).get('duration') or '15m', 'lease.duration')
    if cap['mode'] == 'proportional' and not (opts['canary_workload'] and opts['stable_workload']):
        raise capacity.CapacityError('capacity.mode=proportional needs canary_workload and stable_workload (the two Deployments)')
    client = get_kube_client(p)
    api_version = _api_version(client, p['istio_api_version'])
    ns, name = opts['namespace'], opts['virtual_service']
    vs = client.get(api_version, 'VirtualService', name, namespace=ns)
    if vs is None:
        raise cn.CanaryError('VirtualService %s/%s not found (%s)' % (ns, name, api_version))
    http = (vs.get('spec') or {}).get('http') or []
    idx = cn.find_route(vs, opts['route'], opts['stable'], opts['canary'], ns)
    where = 'http route %d%s of VirtualService %s/%s' % (idx, ' (%s)' % http[idx].get('name') if http[idx].get('name') else '', ns, name)
    weights = cn.read_weights(http[idx], opts['stable'], opts['canary'], ns, where=where)
    stored = cn.load_state(vs)
    held = lease.load(vs)
    state, notes = cn.reconcile_state(stored, weights, opts, now)
    note = lease.check(held, holder, opts['action'], now, 'the canary of VirtualService %s/%s' % (ns, name))
    if note:
        notes.append(note)
    analysis = None
    if cn.needs_analysis(opts['action'], state, opts, now):
        if not p.get('prometheus_url'):
            raise cn.CanaryError('action=%s analyses the canary: set prometheus_url (or PROMETHEUS_URL)' % opts['action'])
        prom = PrometheusClient.from_params(p)
        analysis = cn.run_analysis(
            cn.build_metrics(opts), lambda q: prom.query(q, time=now).scalar(), opts, now,
            unavailable_errors=(PrometheusError,), config_error=is_query_error,
        )
    out = cn.decide(state, opts, now, analysis)
    result = {
        'changed': False, 'decision': out['decision'], 'verdict': analysis['verdict'] if analysis else None,
        'reasons': notes + out['reasons'], 'weights_before': weights,
        'weights_after': {'stable': 100 - out['weight_after'], 'canary': out['weight_after']},
        'step_index': out['step_index'], 'steps': opts['steps'], 'phase': out['state']['phase'], 'analysis': analysis,
        'state': out['state'] if opts['action'] not in ('analyze',) else (stored or state),
        'patch': None, 'virtual_service': {'namespace': ns, 'name': name, 'api_version': api_version, 'route_index': idx},
        'lease': {'holder': held['holder'], 'expires_at': cn.format_time(held['expires_at']), 'action': None} if held else None,
    }
    if opts['action'] in ('analyze', 'status', 'lease'):
        result['weights_after'] = dict(weights)
        result['state'] = stored
        result['phase'] = (stored or {}).get('phase')
        result['step_index'] = (stored or {}).get('step_index', -1)
        if opts['action'] == 'lease':
            lease_patch = _lease_patch(result, held, holder, lease_seconds, now, finished=False)
            if lease_patch:
                result['patch'] = _write(module, client, api_version, name, ns, vs, lease_patch)
                result['changed'] = True
        return result
    patch = {}
    new_weight = out['weight_after']
    if cap['mode'] == 'proportional' and new_weight > weights['canary']:
        plan = _capacity(client, module, opts, cap, new_weight)
        result['capacity'] = plan
        if plan['action'] != 'ready':
            # Held for capacity: nothing of this call's decision is stored, the weight moves on a later call (the lease
            # is taken all the same, so no other job starts meanwhile).
            result.update(decision='held', reasons=[*notes, plan['reason']], weights_after=dict(weights), state=stored,
                          phase=(stored or {}).get('phase'), step_index=(stored or {}).get('step_index', -1),
                          changed=plan['action'] in ('scale', 'raise_hpa'))
            lease_patch = _lease_patch(result, held, holder, lease_seconds, now, finished=False)
            if lease_patch:
                result['changed'] = True
                _write(module, client, api_version, name, ns, vs, lease_patch)
            if module._diff:
                result['diff'] = {'before': {'canary_replicas': plan['replicas']}, 'after': {'canary_replicas': max(plan['replicas'], plan['needed'])}}
            return result
    if new_weight != weights['canary']:
        receiving = ([opts['canary']] if new_weight > 0 else []) + ([opts['stable']] if new_weight < 100 else [])
        rules = list(client.list(api_version, 'DestinationRule', namespace=ns))
        problems = cn.missing_subsets(rules, receiving, ns, opts['destination_rule'])
        if problems:
            raise cn.CanaryError('not shifting VirtualService %s/%s to canary %d%%: %s' % (ns, name, new_weight, '; '.join(problems)))
        new_http = copy.deepcopy(http)
        new_http[idx] = cn.set_weights(http[idx], opts['stable'], opts['canary'], new_weight, ns)
        patch['spec'] = {'http': new_http}
    if out['state'] != stored:
        patch['metadata'] = {'annotations': cn.state_annotations(out['state'])}
    if opts['action'] in lease.LEASED_ACTIONS or opts['action'] == 'rollback':
        lease_patch = _lease_patch(result, held, holder, lease_seconds, now, finished=out['state']['phase'] in cn.TERMINAL_PHASES)
        if lease_patch:
            patch.setdefault('metadata', {}).setdefault('annotations', {}).update(lease_patch['metadata']['annotations'])
    if patch:
        result['patch'] = _write(module, client, api_version, name, ns, vs, patch)
        result['changed'] = True
    if module._diff:
        result['diff'] = {'before': _view(weights, stored), 'after': _view(result['weights_after'], out['state'])}
    return result


def main():
    module = AnsibleModule(argument_spec=_argument_spec(), supports_check_mode=True)
    narrow_kubeconfig_no_log(module)
    if not HAS_KUBERNETES:
        module.fail_json(msg=missing_required_lib('kubernetes'), exception=KUBERNETES_IMPORT_ERROR)
    try:
        result = run_module(module, time.time())
    except lease.LeaseError as exc:
        # lease_conflict tells a caller's rescue that this job must not touch the canary (another job drives it)
        module.fail_json(msg=str(exc), lease_conflict=True)
    except (cn.CanaryError, capacity.CapacityError) as exc:
        module.fail_json(msg=str(exc))
    except KubeError as exc:
        hint = ''
        if exc.status == 409:
            hint = ' (another run changed the VirtualService at the same time; run again to resume from its state)'
        module.fail_json(msg=str(exc) + hint, api_status=exc.status)
    module.exit_json(**result)


if __name__ == '__main__':
    main()
