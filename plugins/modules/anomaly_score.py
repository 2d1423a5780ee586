#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, machinenativeops.platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: anomaly_score
short_description: Score pod metric time series for anomalies and classify the anomaly type
version_added: 0.1.0
description:
  - Reads per-pod metric samples from inline O(samples), a O(metrics_file) (CSV or JSON lines) or Prometheus range queries,
    and runs an unsupervised streaming detector on each target's multivariate series.
  - "The detector needs no labels: each target's first O(min_history) of data is learnt as its normal. Counters (monotonic
    series, or names ending in C(_total)) are turned into reset-aware rates; every numeric column is scored with a robust
    z-score against a trailing median/MAD baseline, and an IsolationForest over window features adds a multivariate score.
    An alarm needs O(persistence) of consecutive points above the threshold. The score at time t only uses samples at or
    before t."
  - When the detector flags a target and enough known metrics can be mapped (CPU or memory plus two others), a scikit-learn
    classifier trained on generated data predicts the anomaly type and a probability (O(mode=full)).
  - The model artifact (C(model.joblib)) is only unpickled after its sha256 matched its C(manifest.json) and O(model_sha256)
    when given. The calibrated threshold comes from the manifest.
  - The module only reads; it never changes anything (C(changed=false)).
author:
  - machinenativeops platform team (@machinenativeops)
extends_documentation_fragment:
  - machinenativeops.platform.prometheus
  - machinenativeops.platform.attributes
  - machinenativeops.platform.attributes.INFO_MODULE
options:
  samples:
    description:
      - Inline samples, each a dict with C(target), C(timestamp) (unix seconds or RFC 3339) and C(metrics) (a dict of metric name
        to number). Metric names are free; unknown and non-numeric values are ignored.
      - Mutually exclusive with O(metrics_file). Inline samples and a metrics file take precedence over O(prometheus_url).
    type: list
    elements: dict
  metrics_file:
    description:
      - Path to a CSV file (header with O(timestamp_column), O(target_column) and any numeric metric columns) or a JSON lines
        file (one object per line with the same keys, or a C(metrics) dict). Read on the host the module runs on.
    type: path
  target_column:
    description: Column / key naming the target (pod) in O(metrics_file) rows.
    type: str
    default: target
  timestamp_column:
    description: Column / key holding the sample time in O(metrics_file) rows.
    type: str
    default: timestamp
  default_target:
    description: Target name for O(metrics_file) rows without a target column (a single-pod file).
    type: str
  namespaces:
    description:
      - With Prometheus, the namespaces whose pods are scored (all namespaces when omitted).
    type: list
    elements: str
  pod_regex:
    description: With Prometheus, a regular expression the C(pod) label must match.
    type: str
  label_matchers:
    description:
      - With Prometheus, extra raw PromQL label matchers added to every query, for example C(cluster="prod").
    type: str
  metric_map:
    description:
      - With Prometheus, column name to PromQL template; merged over the default map (a null value removes a default column).
        Templates use C({selector}) (the label matchers, without braces) and C({rate_window}).
      - "Default columns: C(cpu_usage) (rate of C(container_cpu_usage_seconds_total)), C(memory_working_set_bytes),
        C(fs_usage_bytes), C(net_rx_bytes), C(net_tx_bytes), C(cpu_throttled) (cAdvisor), C(restarts_total)
        (C(kube_pod_container_status_restarts_total), kube-state-metrics), C(requests_per_second), C(errors_per_second),
        C(latency_p99_ms) (the application's C(http_requests_total) / C(http_request_duration_seconds)),
        C(istio_requests_per_second), C(istio_errors_per_second), C(istio_latency_p99_ms) (C(istio_requests_total),
        C(istio_request_duration_milliseconds) with reporter=destination; these need a C(pod) label on the Istio series)."
      - Every query must return series with C(namespace) and C(pod) labels; targets are named C(namespace/pod).
    type: dict
  replace_metric_map:
    description: Use O(metric_map) instead of merging it over the default map.
    type: bool
    default: false
  canonical_map:
    description:
      - Which of your columns are which known metric, for the classifier (the detector uses every numeric column regardless).
        Keys are canonical names (C(cpu), C(memory), C(disk), C(disk_io), C(network), C(net_rx), C(net_tx), C(requests),
        C(errors), C(error_ratio), C(latency), C(restarts), C(throttle)); values a column name or a list of them.
      - Columns with well-known names (cAdvisor, kube-state-metrics, Istio and common short names) are mapped automatically.
    type: dict
  lookback:
    description: With Prometheus, how far back from O(end) to query, as seconds or a duration such as C(2h).
    type: str
    default: 2h
  end:
    description: With Prometheus, the end of the window (unix seconds or RFC 3339); now when omitted.
    type: str
  step:
    description:
      - Sampling step of the scoring grid and of Prometheus range queries (seconds or a duration such as C(15s)).
      - Default for Prometheus 15s; for samples and files the median interval of each target's reference window.
    type: str
  rate_window:
    description: Window of C(rate()) in the default PromQL map and of the detector's own counter-to-rate conversion.
    type: str
    default: 2m
  mode:
    description:
      - V(detect) runs the detector only (needs numpy and scikit-learn); V(full) also classifies flagged targets (needs joblib
        and the model artifact).
    type: str
    choices: [detect, full]
    default: full
  sensitivity:
    description:
      - Scales the calibrated threshold; V(low) (x1.25, fewer alarms), V(medium) (x1) or V(high) (x0.8, more alarms).
      - Ignored when O(threshold) is set.
    type: str
    choices: [low, medium, high]
    default: medium
  threshold:
    description: Alarm threshold in robust-z units, overriding the calibrated one from the model manifest.
    type: float
  persistence:
    description: Seconds of consecutive anomalous points needed before an alarm (at least two points).
    type: str
  min_history:
    description:
      - History learnt as each target's normal before scoring starts (seconds or duration). Targets with less are reported
        with C(status=insufficient_history).
    type: str
    default: 30m
  model_path:
    description: A model version directory (holding C(manifest.json) and C(model.joblib)) or its C(model.joblib).
    type: path
  model_version:
    description:
      - Version directory to use under O(models_dir). Default the version named in C(DEFAULT) of that directory, else the newest.
      - The collection ships C(1.0.0) (the default) and C(1.1.0). C(1.1.0) keeps the 1.0.0 classifier and changes the detector
        (scoring 2) - a floor on the meaningful change per metric kind (cores of CPU, bytes of memory, seconds of latency,
        error ratios; units read from the column names), quantisation-aware scale for histogram-derived percentiles, no
        latency or error verdict on fewer than 30 requests per rate window, an alarm from one strong signal or from two
        independent metric groups that agree, hysteresis (an alarm stays raised until the score falls below half the
        threshold) and alarms within 10 minutes of each other counted as one episode. On the generated hard set it raises
        about a quarter of 1.0.0's false alarms, at some cost in recall on the old held-out set, which is why it is not the
        default yet (see C(ml/MODEL_CARD.md)).
    type: str
  models_dir:
    description:
      - Directory of model versions. Default the environment variable E(MNO_ANOMALY_MODELS_DIR), else C(ml/models) of this
        collection found through E(ANSIBLE_COLLECTIONS_PATH) or the default collection paths.
    type: path
  model_sha256:
    description: Pin the expected sha256 of C(model.joblib); the module fails instead of loading any other file.
    type: str
  timeline:
    description: Return each target's score timeline (timestamp, score, alarm).
    type: bool
    default: false
  max_targets:
    description: Fail when more targets than this are found (protects the controller's memory).
    type: int
    default: 5000
notes:
  - Read-only; check mode runs the same scoring and returns the same result.
  - Streaming semantics apply within one run; the module keeps no state between runs, so each run learns every target's normal
    from the start of the data it was given. Data with an anomaly inside the first O(min_history) learns that anomaly as normal.
  - The classifier was trained on generated data (see C(ml/MODEL_CARD.md)); treat C(anomaly_type) as a hint.
requirements:
  - numpy
  - scikit-learn
  - joblib (O(mode=full))
seealso:
  - module: machinenativeops.platform.health_check
'''

EXAMPLES = r'''
- name: Score the pods of two namespaces over the last two hours of Prometheus data
  machinenativeops.platform.anomaly_score:
    prometheus_url: http://prometheus.monitoring:9090
    namespaces: [shop, payments]
    lookback: 2h
  register: scores

- name: Fail when a pod is anomalous right now
  ansible.builtin.assert:
    that: scores.summary.active == 0
    fail_msg: "anomalous pods: {{ scores.summary.anomalous_targets }}"

- name: Score a CSV export (columns timestamp, target and any metrics), detector only, more sensitive
  machinenativeops.platform.anomaly_score:
    metrics_file: /var/tmp/pod-metrics.csv
    mode: detect
    sensitivity: high
    timeline: true

- name: Inline samples, a pinned model version and Istio metrics under other column names
  machinenativeops.platform.anomaly_score:
    samples: "{{ my_samples }}"
    model_version: 1.0.0
    model_sha256: "{{ anomaly_model_sha256 }}"
    canonical_map:
      latency: p95_ms
      requests: reqs

- name: Replace the Prometheus metric map (columns are free; the detector scores whatever is there)
  machinenativeops.platform.anomaly_score:
    prometheus_url: "{{ prom_url }}"
    namespaces: [shop]
    replace_metric_map: true
    metric_map:
      cpu_usage: sum by (namespace, pod) (rate(container_cpu_usage_seconds_total{container!="",{selector}}[{rate_window}]))
      memory_working_set_bytes: sum by (namespace, pod) (container_memory_working_set_bytes{container!="",{selector}})
      queue_depth: sum by (namespace, pod) (my_queue_depth{{selector}})
'''

RETURN = r'''
changed:
  description: Always false; the module only reads.
  returned: always
  type: bool
targets:
  description: One entry per target, sorted by target name.
  returned: always
  type: list
  elements: dict
  contains:
    target:
      description: The target (C(namespace/pod) for Prometheus).
      type: str
    status:
      description: C(ok), C(insufficient_history) or C(insufficient_data).
      type: str
    anomalous:
      description: Whether an alarm was raised anywhere in the scored window.
      type: bool
    active:
      description: Whether the alarm is still raised at the last sample.
      type: bool
    score:
      description: The combined score at the last scored point (robust-z units); null when nothing could be scored.
      type: float
    max_score:
      description: The highest score in the window.
      type: float
    threshold:
      description: The threshold the scores were compared with.
      type: float
    first_anomalous_at:
      description:
        - When the reported alarm was raised (the point completing the persistent run), RFC 3339 UTC.
        - The reported alarm is the first episode the classifier does not call C(healthy), else the first episode.
      type: str
    anomaly_start:
      description: The first point of that run above the threshold, RFC 3339 UTC.
      type: str
    episode_details:
      description: Every alarm episode (at most 20) with its start, alarm time, end, maximum score, type and contributing metrics.
      type: list
      elements: dict
    anomaly_type:
      description: Predicted anomaly type when the classifier applied (C(healthy) means the classifier considers the alarm benign).
      type: str
    confidence:
      description: Probability of RV(targets[].anomaly_type).
      type: float
    type_probabilities:
      description: Probability per class.
      type: dict
    classifier_applied:
      description: Whether the classifier ran for this target.
      type: bool
    classifier_abstained:
      description:
        - With model 1.1.0, why RV(targets[].anomaly_type) is C(unknown) - the classifier's type needs metrics the input does not
          have (for example C(disk_full) without a disk column, C(oom_kill) without a restart counter), or the metrics that moved
          are not the ones that type is read from. The episode details name the classifier's own guess (C(classifier_type))
          and the metric kinds that moved (C(moved_metric_kinds)). Confidence is then at most 0.5.
      type: str
    contributing_metrics:
      description: Columns with the largest mean robust z-score over the first alarm's run (|z| >= 3, at most 5).
      type: list
      elements: dict
      sample: [{"metric": "container_cpu_usage_seconds_total", "z": 14.2, "direction": "up", "kind": "counter"}]
    metrics_used:
      description: Columns the detector scored.
      type: list
      elements: str
    metrics_ignored:
      description: Columns without enough samples in the reference window.
      type: list
      elements: str
    counters:
      description: Columns treated as counters (converted to rates).
      type: list
      elements: str
    episodes:
      description: Number of alarm episodes in the window.
      type: int
    input_warnings:
      description:
        - Problems of this target's input that were ignored, one message per kind (samples out of order, duplicate timestamps
          of the same metric, timestamps more than 5 minutes after the controller's clock). They are also emitted as warnings.
      type: list
      elements: str
    gaps:
      description: Grid points of the scored series without a sample (missing scrapes).
      type: int
    merged_samples:
      description: Samples that fell into a grid bucket already holding a sample (sampled faster than the step); the latest is kept.
      type: int
    timeline:
      description: Score per grid point (with O(timeline=true)).
      type: list
      elements: dict
summary:
  description: Counts over all targets.
  returned: always
  type: dict
  sample: {"targets": 12, "scored": 12, "anomalous": 1, "active": 1, "anomalous_targets": ["shop/cart-7d9f-x2v4q"],
           "by_type": {"memory_leak": 1}, "insufficient_history": 0}
model:
  description: The model used (version, sha256 of model.joblib, path, threshold and persistence applied).
  returned: always
  type: dict
input_warnings:
  description: Every ignored input problem (target, kind C(out_of_order), C(duplicate) or C(future), count).
  returned: always
  type: list
  elements: dict
queries:
  description: The PromQL queries sent (Prometheus input only).
  returned: when Prometheus was queried
  type: list
  elements: dict
'''

import os
import time
import traceback

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible_collections.machinenativeops.platform.plugins.module_utils import anomaly_detect as ad
from ansible_collections.machinenativeops.platform.plugins.module_utils import anomaly_features as af
from ansible_collections.machinenativeops.platform.plugins.module_utils import anomaly_models as am
from ansible_collections.machinenativeops.platform.plugins.module_utils.prometheus import PROMETHEUS_ARG_SPEC, PrometheusClient, PrometheusError

COLLECTION_MODELS = os.path.join("ansible_collections", "machinenativeops", "platform", "ml", "models")


def default_models_dir():
    env = os.environ.get("MNO_ANOMALY_MODELS_DIR")
    if env:
        return env
    candidates = []
    for var in ("ANSIBLE_COLLECTIONS_PATH", "ANSIBLE_COLLECTIONS_PATHS"):
        candidates += [p for p in os.environ.get(var, "").split(os.pathsep) if p]
    candidates += [os.path.join(os.environ.get("HOME", "/root"), ".ansible", "collections"), "/usr/share/ansible/collections"]
    for base in candidates:
        path = os.path.join(base, COLLECTION_MODELS)
        if os.path.isdir(path):
            return path
    return None


def main():
    argument_spec = dict(
        samples=dict(type='list', elements='dict'),
        metrics_file=dict(type='path'),
        target_column=dict(type='str', default='target'),
        timestamp_column=dict(type='str', default='timestamp'),
        default_target=dict(type='str'),
        namespaces=dict(type='list', elements='str'),
        pod_regex=dict(type='str'),
        label_matchers=dict(type='str'),
        metric_map=dict(type='dict'),
        replace_metric_map=dict(type='bool', default=False),
        canonical_map=dict(type='dict'),
        lookback=dict(type='str', default='2h'),
        end=dict(type='str'),
        step=dict(type='str'),
        rate_window=dict(type='str', default='2m'),
        mode=dict(type='str', default='full', choices=['detect', 'full']),
        sensitivity=dict(type='str', default='medium', choices=['low', 'medium', 'high']),
        threshold=dict(type='float'),
        persistence=dict(type='str'),
        min_history=dict(type='str', default='30m'),
        model_path=dict(type='path'),
        model_version=dict(type='str'),
        models_dir=dict(type='path'),
        model_sha256=dict(type='str'),
        timeline=dict(type='bool', default=False),
        max_targets=dict(type='int', default=5000),
    )
    argument_spec.update(PROMETHEUS_ARG_SPEC)
    module = AnsibleModule(
        argument_spec=argument_spec,
        mutually_exclusive=[('samples', 'metrics_file')],
        supports_check_mode=True,
    )
    p = module.params
    if p['samples'] is None and not p['metrics_file'] and not p['prometheus_url']:
        module.fail_json(msg="one of samples, metrics_file or prometheus_url (or PROMETHEUS_URL) is required")

    try:
        import numpy  # noqa: F401, PLC0415  pylint: disable=unused-import
    except ImportError:
        module.fail_json(msg=missing_required_lib('numpy'), exception=traceback.format_exc())
    try:
        import sklearn  # noqa: F401, PLC0415  pylint: disable=unused-import
    except ImportError:
        module.fail_json(msg=missing_required_lib('scikit-learn'), exception=traceback.format_exc())
    if p['mode'] == 'full':
        try:
            import joblib  # noqa: F401, PLC0415  pylint: disable=unused-import
        except ImportError:
            module.fail_json(msg=missing_required_lib('joblib'), exception=traceback.format_exc())

    # model artifact: manifest always (threshold calibration), classifier in full mode
    try:
        models_dir = p['models_dir'] or default_models_dir()
        if not p['model_path'] and not models_dir:
            module.fail_json(msg="no model directory found: set model_path, models_dir or MNO_ANOMALY_MODELS_DIR")
        artifact = am.load(model_path=p['model_path'], version=p['model_version'], models_dir=models_dir,
                           expected_sha256=p['model_sha256'], load_classifier=(p['mode'] == 'full'))
    except am.ModelError as exc:
        module.fail_json(msg=str(exc))

    detector = artifact['manifest'].get('detector') or {}
    config = dict((k, detector[k]) for k in ad.DEFAULT_CONFIG if k in detector)
    # a manifest from before the per-kind floors (1.0.0) keeps the scoring its threshold was calibrated for
    config.setdefault('scoring', 1)
    try:
        config['min_history'] = af.parse_duration(p['min_history'], 'min_history')
        config['rate_window'] = af.parse_duration(p['rate_window'], 'rate_window')
        if p['persistence'] is not None:
            config['persistence'] = af.parse_duration(p['persistence'], 'persistence')
        step = af.parse_duration(p['step'], 'step') if p['step'] else None
        if step is not None and step <= 0:
            raise af.FeatureError("step must be positive")
        if p['threshold'] is not None:
            threshold = float(p['threshold'])
        else:
            threshold = float(config.get('threshold', ad.DEFAULT_CONFIG['threshold'])) * ad.SENSITIVITY[p['sensitivity']]
        persistence = float(config.get('persistence', ad.DEFAULT_CONFIG['persistence']))

        queries = None
        input_warnings = []
        if p['samples'] is not None:
            series = af.samples_to_series(p['samples'], warnings_out=input_warnings)
        elif p['metrics_file']:
            samples = af.read_metrics_file(p['metrics_file'], p['target_column'], p['timestamp_column'], p['default_target'])
            series = af.samples_to_series(samples, warnings_out=input_warnings)
        else:
            client = PrometheusClient.from_params(p)
            step = step or 15.0
            lookback = af.parse_duration(p['lookback'], 'lookback')
            end = af.parse_timestamp(p['end']) if p['end'] else time.time()
            start = end - lookback
            if lookback / step > 11000:
                raise af.FeatureError("lookback %s / step %ss gives more than 11000 points per series (Prometheus' limit); raise step"
                                      % (p['lookback'], step))
            metric_map = {} if p['replace_metric_map'] else dict(af.DEFAULT_PROMETHEUS_METRIC_MAP)
            for column, template in (p['metric_map'] or {}).items():
                if template in (None, ''):
                    metric_map.pop(column, None)
                else:
                    metric_map[column] = str(template)
            if not metric_map:
                raise af.FeatureError("the metric map is empty")
            selector = af.build_selector(p['namespaces'], p['pod_regex'], p['label_matchers'])
            series, queries, _empty = af.prometheus_series(client, metric_map, selector, start, end, step,
                                                           af.promql_duration(config['rate_window']))
    except (af.FeatureError, PrometheusError) as exc:
        module.fail_json(msg=str(exc))

    if len(series) > p['max_targets']:
        module.fail_json(msg="%d targets found, more than max_targets=%d" % (len(series), p['max_targets']))

    classifier = artifact['model'] if p['mode'] == 'full' else None
    results = []
    try:
        for target in sorted(series):
            results.append(ad.analyze_target(series[target], config, threshold, persistence, classifier=classifier,
                                             metric_map=p['canonical_map'], timeline=p['timeline'], step=step))
    except af.FeatureError as exc:
        module.fail_json(msg=str(exc))

    per_target_warnings = {}
    for item in input_warnings:
        per_target_warnings.setdefault(item['target'], []).append(item['message'])
        module.warn(item['message'])
    for r in results:
        r['input_warnings'] = per_target_warnings.get(r['target'], [])
    by_type = {}
    for r in results:
        if r['anomalous'] and r['anomaly_type']:
            by_type[r['anomaly_type']] = by_type.get(r['anomaly_type'], 0) + 1
    summary = {
        'targets': len(results),
        'scored': sum(1 for r in results if r['status'] == 'ok'),
        'anomalous': sum(1 for r in results if r['anomalous']),
        'active': sum(1 for r in results if r['active']),
        'anomalous_targets': [r['target'] for r in results if r['anomalous']],
        'by_type': by_type,
        'insufficient_history': sum(1 for r in results if r['status'] == 'insufficient_history'),
        'insufficient_data': sum(1 for r in results if r['status'] == 'insufficient_data'),
    }
    model = {'version': artifact['version'], 'sha256': artifact['sha256'], 'path': artifact['path'], 'threshold': round(threshold, 3),
             'persistence_seconds': persistence, 'min_history_seconds': config['min_history'], 'mode': p['mode']}
    out = dict(changed=False, targets=results, summary=summary, model=model)
    if queries is not None:
        out['queries'] = queries
    out['input_warnings'] = [dict((k, v) for k, v in w.items() if k != 'message') for w in input_warnings]
    module.exit_json(**out)


if __name__ == '__main__':
    main()
