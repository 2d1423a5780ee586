# -*- coding: utf-8 -*-
# Copyright: (c) 2026, machinenativeops platform team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Canary releases on Istio VirtualService weights, decided from outside the cluster.

Everything here is a plain function over plain data so it can be tested without a cluster:

* ``options_from_params``: validate and normalise the module's options.
* ``find_route`` / ``read_weights`` / ``set_weights``: the VirtualService route and its weights.
* ``missing_subsets``: the DestinationRule subsets that must exist before weight goes to them.
* ``build_metrics`` / ``run_analysis``: the PromQL of every metric, its value, bounds and verdict.
* ``load_state`` / ``state_annotations``: the canary's state, kept in annotations on the VirtualService.
* ``analysis_due`` and ``decide``: the state machine (step, set_weight, promote, rollback).

The rules the state machine keeps:

* Nothing is promoted (canary weight 100) without a passing analysis.
* Empty, NaN or too little traffic is *inconclusive* (hold), never a failure; only
  ``max_inconclusive`` inconclusive analyses in a row (or in total) fail the canary.
* Prometheus unreachable holds without counting anything; the progress deadline still applies.
* An analysis only counts when its whole window lies after the last weight change and after
  the previous counted analysis, so running ``step`` twice on one window never advances twice.
* Weights always sum to 100.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy
import datetime
import itertools
import json
import math
import re
import string

from ansible_collections.machinenativeops.platform.plugins.module_utils import durations
from ansible_collections.machinenativeops.platform.plugins.module_utils.canary_stats import compare_error_ratio, compare_latency

STATE_ANNOTATION = 'canary.machinenativeops.io/state'
SUMMARY_ANNOTATION = 'canary.machinenativeops.io/summary'
STATE_VERSION = 1
HISTORY_LIMIT = 30

ACTIONS = ('step', 'set_weight', 'promote', 'rollback', 'analyze', 'status', 'lease')
DECISIONS = ('advanced', 'held', 'promoted', 'rolled_back', 'inconclusive', 'failed')
TERMINAL_PHASES = ('promoted', 'rolled_back', 'failed')
DEFAULT_STEPS = [10, 30, 50, 80, 100]
BUILTIN_METRICS = ('success_rate', 'error_rate', 'latency')

# Kubernetes object names and label values that may be pasted into PromQL label matchers.
_NAME_RE = re.compile(r'^[A-Za-z0-9]([-A-Za-z0-9_.]{0,251}[A-Za-z0-9])?$')
_LABEL_NAME_RE = re.compile(r'^[a-zA-Z_][a-zA-Z0-9_]*$')


class CanaryError(ValueError):
    """Bad options or an object that cannot be handled; the message says what and where."""


# -- small helpers ---------------------------------------------------------------------------------
def parse_duration(value, name='duration'):
    """A positive duration (the collection's grammar, module_utils/durations.py) in seconds; CanaryError otherwise."""
    try:
        return durations.parse_duration(value, name, positive=True)
    except durations.DurationError as exc:
        raise CanaryError(str(exc)) from None


def format_time(ts):
    """Unix seconds -> RFC 3339 UTC with milliseconds."""
    if ts is None:
        return None
    dt = datetime.datetime.fromtimestamp(float(ts), tz=datetime.timezone.utc)
    return dt.strftime('%Y-%m-%dT%H:%M:%S.') + '%03dZ' % (dt.microsecond // 1000)


def parse_time(text):
    """RFC 3339 -> unix seconds; None for None/empty."""
    if text in (None, ''):
        return None
    if isinstance(text, (int, float)):
        return float(text)
    value = str(text).strip().replace('Z', '+00:00')
    try:
        return datetime.datetime.fromisoformat(value).timestamp()
    except ValueError:
        raise CanaryError('invalid time %r in the canary state' % (text,)) from None


def _is_nan(value):
    return isinstance(value, float) and math.isnan(value)


def _num(value):
    """JSON-safe number: NaN/inf become None-like strings so the state stays valid JSON."""
    if value is None:
        return None
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return str(value)
    return round(float(value), 6)


# -- options ---------------------------------------------------------------------------------------
def _destination(raw, which):
    if not isinstance(raw, dict) or not raw.get('host'):
        raise CanaryError('%s needs a host (and a subset when both versions share one host)' % which)
    host = str(raw['host']).strip()
    subset = raw.get('subset')
    subset = str(subset).strip() if subset not in (None, '') else None
    return {'host': host, 'subset': subset}


def normalize_steps(steps):
    if steps is None:
        steps = list(DEFAULT_STEPS)
    try:
        values = [int(s) for s in steps]
    except (TypeError, ValueError):
        raise CanaryError('steps must be a list of integer weights, got %r' % (steps,)) from None
    if len(values) < 2:
        raise CanaryError('steps needs at least two weights (a canary weight and 100), got %r' % (values,))
    if any(v <= 0 or v > 100 for v in values):
        raise CanaryError('every step must be a weight between 1 and 100, got %r' % (values,))
    if any(b <= a for a, b in itertools.pairwise(values)):
        raise CanaryError('steps must be strictly increasing, got %r' % (values,))
    if values[-1] != 100:
        raise CanaryError('the last step must be 100 (promotion), got %r' % (values,))
    return values


def _bound(raw, name):
    if raw is None:
        return None
    try:
        value = float(raw)
    except (TypeError, ValueError):
        raise CanaryError('%s must be a number, got %r' % (name, raw)) from None
    if math.isnan(value):
        raise CanaryError('%s must be a number, got NaN' % name)
    return value


def _builtin(analysis, enabled, key, option, default):
    """The bound of a built-in metric, None when the metric is not in analysis.builtin_metrics."""
    if key not in enabled:
        return None
    value = analysis.get(option)
    return default if value is None else _bound(value, 'analysis.' + option)


def options_from_params(params):
    """Validate the module parameters; return the normalised options dict used by everything else."""
    analysis = dict(params.get('analysis') or {})
    compare = dict(analysis.get('compare') or {})
    namespace = params.get('namespace')
    if not namespace or not _NAME_RE.match(str(namespace)):
        raise CanaryError('namespace must be a Kubernetes name, got %r' % (namespace,))
    for key in ('canary_workload', 'stable_workload'):
        value = params.get(key)
        if value is not None and not _NAME_RE.match(str(value)):
            raise CanaryError('%s must be a Kubernetes name, got %r' % (key, value))
    stable = _destination(params.get('stable'), 'stable')
    canary = _destination(params.get('canary'), 'canary')
    if stable == canary:
        raise CanaryError('stable and canary name the same destination %s' % describe_destination(stable))
    interval = analysis.get('interval') or '1m'
    interval_seconds = parse_duration(interval, 'analysis.interval')
    reporter = analysis.get('reporter') or 'destination'
    if reporter not in ('destination', 'source'):
        raise CanaryError('analysis.reporter must be destination or source, got %r' % (reporter,))
    quantile = _bound(analysis.get('latency_quantile') if analysis.get('latency_quantile') is not None else 0.95, 'analysis.latency_quantile')
    if quantile is None or not 0 < quantile < 1:
        raise CanaryError('analysis.latency_quantile must be between 0 and 1 (exclusive), got %r' % (quantile,))
    custom = []
    seen = set()
    for idx, item in enumerate(analysis.get('metrics') or []):
        if not isinstance(item, dict) or not item.get('name') or not item.get('query'):
            raise CanaryError('analysis.metrics[%d] needs a name and a query' % idx)
        name = str(item['name'])
        if name in seen or name in ('request_count', 'request_success_rate', 'request_error_rate', 'request_duration'):
            raise CanaryError('analysis.metrics[%d]: the metric name %r is used twice' % (idx, name))
        seen.add(name)
        low, high = _bound(item.get('min'), 'analysis.metrics[%d].min' % idx), _bound(item.get('max'), 'analysis.metrics[%d].max' % idx)
        if low is None and high is None:
            raise CanaryError('analysis.metrics[%d] (%s) needs min, max or both' % (idx, name))
        if low is not None and high is not None and low > high:
            raise CanaryError('analysis.metrics[%d] (%s): min %g is above max %g' % (idx, name, low, high))
        custom.append({'name': name, 'query': str(item['query']), 'min': low, 'max': high})
    builtins = analysis.get('builtin_metrics')
    builtins = list(BUILTIN_METRICS) if builtins is None else list(builtins)
    unknown = [b for b in builtins if b not in BUILTIN_METRICS]
    if unknown:
        raise CanaryError('analysis.builtin_metrics: unknown %s (known: %s)' % (', '.join(unknown), ', '.join(BUILTIN_METRICS)))
    min_requests = int(analysis.get('min_requests', 20) if analysis.get('min_requests') is not None else 20)
    if min_requests < 0:
        raise CanaryError('analysis.min_requests must be >= 0')
    opts = {
        'namespace': str(namespace),
        'virtual_service': params.get('virtual_service'),
        'route': params.get('route'),
        'destination_rule': params.get('destination_rule'),
        'stable': stable,
        'canary': canary,
        'canary_workload': params.get('canary_workload'),
        'stable_workload': params.get('stable_workload'),
        'revision': params.get('revision'),
        'steps': normalize_steps(params.get('steps')),
        'weight': params.get('weight'),
        'max_failed_checks': int(params.get('max_failed_checks') or 2),
        'max_inconclusive': int(params.get('max_inconclusive') or 5),
        'count_mode': params.get('count_mode') or 'consecutive',
        'progress_deadline': parse_duration(params.get('progress_deadline') or '1h', 'progress_deadline'),
        'rollback_on_failure': params.get('rollback_on_failure', True) is not False,
        'analysis': {
            # the window written into PromQL: Prometheus' own syntax, whatever spelling the option used
            'interval': durations.promql_duration(interval_seconds),
            'interval_seconds': interval_seconds,
            'min_requests': min_requests,
            'request_count_query': str(analysis['request_count_query']) if analysis.get('request_count_query') else None,
            'reporter': reporter,
            'success_rate_min': _builtin(analysis, builtins, 'success_rate', 'success_rate_min', 95.0),
            'error_rate_max': _builtin(analysis, builtins, 'error_rate', 'error_rate_max', 1.0),
            'latency_quantile': quantile,
            'latency_max_ms': _builtin(analysis, builtins, 'latency', 'latency_max_ms', 500.0),
            'metrics': custom,
            'compare': {
                'enabled': bool(compare.get('enabled', False)),
                'error_ratio_tolerance': _bound(compare.get('error_ratio_tolerance', 1.0), 'analysis.compare.error_ratio_tolerance'),
                'alpha': _bound(compare.get('alpha', 0.05), 'analysis.compare.alpha'),
                'latency_tolerance_pct': _bound(compare.get('latency_tolerance_pct', 20.0), 'analysis.compare.latency_tolerance_pct'),
                'latency_margin_ms': _bound(compare.get('latency_margin_ms', 0.0), 'analysis.compare.latency_margin_ms'),
            },
        },
    }
    if opts['count_mode'] not in ('consecutive', 'total'):
        raise CanaryError('count_mode must be consecutive or total, got %r' % (opts['count_mode'],))
    if opts['max_failed_checks'] < 1 or opts['max_inconclusive'] < 1:
        raise CanaryError('max_failed_checks and max_inconclusive must be at least 1')
    alpha = opts['analysis']['compare']['alpha']
    if not 0 < alpha < 1:
        raise CanaryError('analysis.compare.alpha must be between 0 and 1, got %r' % (alpha,))
    if opts['analysis']['compare']['enabled'] and not opts['stable_workload']:
        raise CanaryError('analysis.compare needs stable_workload (the stable Deployment) to query its metrics')
    action = params.get('action') or 'step'
    if action not in ACTIONS:
        raise CanaryError('action must be one of %s, got %r' % (', '.join(ACTIONS), action))
    opts['action'] = action
    if action == 'set_weight':
        weight = params.get('weight')
        if weight is None or not 0 <= int(weight) <= 100:
            raise CanaryError('action=set_weight needs weight between 0 and 100, got %r' % (weight,))
        opts['weight'] = int(weight)
    if action in ('step', 'promote', 'analyze') or (action == 'set_weight' and opts['weight'] == 100):
        if not opts['canary_workload']:
            raise CanaryError('action=%s analyses the canary and needs canary_workload (the canary Deployment)' % action)
    return opts


def describe_destination(dest):
    return dest['host'] + ('/' + dest['subset'] if dest.get('subset') else '')


# -- the VirtualService ----------------------------------------------------------------------------
def _same_host(a, b, namespace):
    """Istio host names: ``reviews`` == ``reviews.<ns>`` == ``reviews.<ns>.svc.cluster.local``."""
    def full(host):
        parts = str(host).split('.')
        if len(parts) == 1:
            return '%s.%s.svc.cluster.local' % (parts[0], namespace)
        if len(parts) == 2:
            return '%s.%s.svc.cluster.local' % (parts[0], parts[1])
        if len(parts) == 3 and parts[2] == 'svc':
            return '%s.cluster.local' % host
        return str(host)
    return full(a) == full(b)


def _matches(route_dest, dest, namespace):
    d = route_dest.get('destination') or {}
    return _same_host(d.get('host') or '', dest['host'], namespace) and (d.get('subset') or None) == dest.get('subset')


def find_route(vs, route_name, stable, canary, namespace):
    """Index of the http route that carries the stable destination (or the one named ``route_name``)."""
    name = '%s/%s' % (namespace, (vs.get('metadata') or {}).get('name'))
    routes = (vs.get('spec') or {}).get('http') or []
    if not routes:
        raise CanaryError('VirtualService %s has no http routes' % name)
    if route_name:
        for idx, route in enumerate(routes):
            if route.get('name') == route_name:
                return idx
        raise CanaryError('VirtualService %s has no http route named %r (routes: %s)'
                          % (name, route_name, ', '.join(repr(r.get('name')) for r in routes)))
    candidates = [idx for idx, route in enumerate(routes)
                  if any(_matches(d, stable, namespace) or _matches(d, canary, namespace) for d in route.get('route') or [])]
    if len(candidates) == 1:
        return candidates[0]
    if not candidates:
        if len(routes) == 1:
            raise CanaryError('the http route of VirtualService %s sends no traffic to the stable destination %s'
                              % (name, describe_destination(stable)))
        raise CanaryError('no http route of VirtualService %s routes to %s; give route' % (name, describe_destination(stable)))
    raise CanaryError('VirtualService %s has %d http routes to %s; name the one to shift with the route option'
                      % (name, len(candidates), describe_destination(stable)))


def read_weights(route, stable, canary, namespace, where='the route'):
    """{'stable': int, 'canary': int} of ``route``; other destinations must carry no weight."""
    dests = route.get('route') or []
    explicit = [d for d in dests if d.get('weight') is not None]
    stable_w = canary_w = 0
    found_stable = False
    for dest in dests:
        weight = dest.get('weight')
        if weight is None:
            weight = 100 if len(dests) == 1 else 0
        weight = int(weight)
        if _matches(dest, stable, namespace):
            stable_w += weight
            found_stable = True
        elif _matches(dest, canary, namespace):
            canary_w += weight
        elif weight:
            d = dest.get('destination') or {}
            raise CanaryError('%s also sends %d%% to %s, which is neither stable nor canary; remove it first'
                              % (where, weight, describe_destination({'host': d.get('host'), 'subset': d.get('subset')})))
    if not found_stable and canary_w == 0:
        raise CanaryError('%s has no stable destination %s' % (where, describe_destination(stable)))
    if explicit and stable_w + canary_w != 100:
        raise CanaryError('%s weights sum to %d, not 100' % (where, stable_w + canary_w))
    return {'stable': stable_w, 'canary': canary_w}


def set_weights(route, stable, canary, canary_weight, namespace):
    """A copy of ``route`` with stable = 100 - canary_weight and canary = canary_weight."""
    if not 0 <= int(canary_weight) <= 100:
        raise CanaryError('canary weight must be between 0 and 100, got %r' % (canary_weight,))
    new = copy.deepcopy(route)
    dests = new.get('route') or []
    kept = []
    have_stable = have_canary = False
    for dest in dests:
        if _matches(dest, stable, namespace):
            if have_stable:
                continue
            dest['weight'] = 100 - int(canary_weight)
            have_stable = True
        elif _matches(dest, canary, namespace):
            if have_canary:
                continue
            dest['weight'] = int(canary_weight)
            have_canary = True
        else:
            dest['weight'] = 0
        kept.append(dest)
    if not have_stable:
        kept.insert(0, {'destination': _dest_body(stable), 'weight': 100 - int(canary_weight)})
    if not have_canary:
        kept.append({'destination': _dest_body(canary), 'weight': int(canary_weight)})
    new['route'] = kept
    return new


def _dest_body(dest):
    body = {'host': dest['host']}
    if dest.get('subset'):
        body['subset'] = dest['subset']
    return body


def missing_subsets(destination_rules, destinations, namespace, rule_name=None):
    """Plain-word problems for each destination whose subset is not defined by a DestinationRule.

    ``destination_rules``: DestinationRule objects of the namespace (or the one named ``rule_name``).
    """
    problems = []
    for dest in destinations:
        subset = dest.get('subset')
        if not subset:
            continue
        rules = [r for r in destination_rules
                 if (not rule_name or (r.get('metadata') or {}).get('name') == rule_name)
                 and _same_host((r.get('spec') or {}).get('host') or '', dest['host'], namespace)]
        if not rules:
            if rule_name:
                problems.append('DestinationRule %s/%s does not exist or is not for host %s, so subset %r is undefined'
                                % (namespace, rule_name, dest['host'], subset))
            else:
                problems.append('no DestinationRule in %s defines host %s, so subset %r is undefined' % (namespace, dest['host'], subset))
            continue
        names = [s.get('name') for r in rules for s in (r.get('spec') or {}).get('subsets') or []]
        if subset not in names:
            problems.append('DestinationRule %s has no subset %r for host %s (subsets: %s)'
                            % (', '.join('%s/%s' % (namespace, (r.get('metadata') or {}).get('name')) for r in rules), subset, dest['host'],
                               ', '.join(repr(n) for n in names) or 'none'))
    return problems


# -- state -----------------------------------------------------------------------------------------
def new_state(revision, now):
    return {
        'version': STATE_VERSION, 'revision': revision, 'phase': 'progressing', 'step_index': -1, 'weight': 0,
        'failed_checks': 0, 'inconclusive_checks': 0, 'analyses': 0,
        'started_at': format_time(now), 'last_change_at': None, 'last_analysis_at': None,
        'last_decision': None, 'history': [],
    }


def load_state(vs):
    """The state stored on the VirtualService, or None when there is none."""
    annotations = ((vs or {}).get('metadata') or {}).get('annotations') or {}
    raw = annotations.get(STATE_ANNOTATION)
    if not raw:
        return None
    name = '%s/%s' % ((vs.get('metadata') or {}).get('namespace'), (vs.get('metadata') or {}).get('name'))
    try:
        state = json.loads(raw)
    except ValueError as exc:
        raise CanaryError('the %s annotation on VirtualService %s is not valid JSON (%s); fix or remove it' % (STATE_ANNOTATION, name, exc)) from None
    if not isinstance(state, dict) or state.get('version') != STATE_VERSION or state.get('phase') not in ('progressing', *TERMINAL_PHASES):
        raise CanaryError('the %s annotation on VirtualService %s is not a version %d canary state; fix or remove it'
                          % (STATE_ANNOTATION, name, STATE_VERSION))
    for key, default in (('failed_checks', 0), ('inconclusive_checks', 0), ('analyses', 0), ('step_index', -1), ('weight', 0)):
        value = state.get(key)
        state[key] = int(default if value is None else value)
    state.setdefault('history', [])
    return state


def summary(state):
    last = state.get('last_decision') or {}
    return ('%s, canary weight %d%% (step index %d), failed checks %d, inconclusive %d; last: %s at %s'
            % (state.get('phase'), state.get('weight', 0), state.get('step_index', -1), state.get('failed_checks', 0),
               state.get('inconclusive_checks', 0), last.get('decision', 'none'), last.get('at', '-')))


def state_annotations(state):
    return {STATE_ANNOTATION: json.dumps(state, sort_keys=True, separators=(',', ':')), SUMMARY_ANNOTATION: summary(state)}


def reconcile_state(state, weights, opts, now):
    """The state to decide from: a new one for a new revision, the stored one adopted to drifted weights.

    Returns (state, notes) where notes are plain-word remarks.
    """
    notes = []
    revision = opts.get('revision')
    if state is None:
        state = new_state(revision, now)
        if weights['canary']:
            _adopt(state, weights['canary'], opts['steps'], now)
            notes.append('no canary state on the VirtualService; adopted the current canary weight %d%%' % weights['canary'])
        return state, notes
    state = copy.deepcopy(state)
    if state.get('revision') != revision and opts['action'] in ('step', 'set_weight', 'promote'):
        notes.append('new revision %r (was %r): a new canary starts' % (revision, state.get('revision')))
        return new_state(revision, now), notes
    if state['phase'] == 'progressing' and weights['canary'] != state['weight']:
        notes.append('the canary weight is %d%% but the state says %d%%: it was changed outside canary_step; '
                     'continuing from %d%% with a new analysis window' % (weights['canary'], state['weight'], weights['canary']))
        _adopt(state, weights['canary'], opts['steps'], now)
    return state, notes


def _adopt(state, weight, steps, now):
    state['weight'] = int(weight)
    state['step_index'] = max([i for i, s in enumerate(steps) if s <= weight] or [-1])
    state['last_change_at'] = format_time(now)


# -- metrics and analysis --------------------------------------------------------------------------
def _selector(opts, workload):
    a = opts['analysis']
    return 'reporter="%s",destination_workload_namespace="%s",destination_workload="%s"' % (a['reporter'], opts['namespace'], workload)


def template_query(query, opts):
    """Substitute ``$namespace``, ``$canary_workload``, ``$stable_workload``, ``$interval`` in a custom query."""
    values = {
        'namespace': opts['namespace'],
        'canary_workload': opts.get('canary_workload') or '',
        'stable_workload': opts.get('stable_workload') or '',
        'interval': opts['analysis']['interval'],
    }
    try:
        return string.Template(query).substitute(values)
    except KeyError as exc:
        raise CanaryError('custom query %r uses the unknown variable $%s (known: %s)'
                          % (query, exc.args[0], ', '.join('$' + k for k in sorted(values)))) from None
    except ValueError as exc:
        raise CanaryError('custom query %r: %s (write $$ for a literal $)' % (query, exc)) from None


def build_metrics(opts):
    """Every metric of an analysis: dicts with name, kind, query, min, max (and role for helper queries)."""
    a = opts['analysis']
    interval = a['interval']
    canary = _selector(opts, opts['canary_workload'])
    total = 'sum(rate(istio_requests_total{%s}[%s]))' % (canary, interval)
    errors = 'sum(rate(istio_requests_total{%s,response_code=~"5.."}[%s]))' % (canary, interval)
    oks = 'sum(rate(istio_requests_total{%s,response_code!~"5.."}[%s]))' % (canary, interval)
    count_query = template_query(a['request_count_query'], opts) if a.get('request_count_query') else \
        'sum(increase(istio_requests_total{%s}[%s]))' % (canary, interval)
    metrics = [{'name': 'request_count', 'kind': 'traffic', 'min': float(a['min_requests']), 'max': None, 'query': count_query}]
    if a['success_rate_min'] is not None:
        metrics.append({'name': 'request_success_rate', 'kind': 'builtin', 'min': a['success_rate_min'], 'max': None, 'unit': '%',
                        'query': '100 * (%s or on() vector(0)) / %s' % (oks, total)})
    if a['error_rate_max'] is not None:
        metrics.append({'name': 'request_error_rate', 'kind': 'builtin', 'min': None, 'max': a['error_rate_max'], 'unit': '%',
                        'query': '100 * (%s or on() vector(0)) / %s' % (errors, total)})
    if a['latency_max_ms'] is not None:
        metrics.append({'name': 'request_duration', 'kind': 'builtin', 'min': None, 'max': a['latency_max_ms'], 'unit': 'ms',
                        'quantile': a['latency_quantile'],
                        'query': 'histogram_quantile(%g, sum by (le) (rate(istio_request_duration_milliseconds_bucket{%s}[%s])))'
                                 % (a['latency_quantile'], canary, interval)})
    for item in a['metrics']:
        metrics.append({'name': item['name'], 'kind': 'custom', 'min': item['min'], 'max': item['max'],
                        'query': template_query(item['query'], opts)})
    if a['compare']['enabled']:
        stable = _selector(opts, opts['stable_workload'])
        for role, sel in (('canary', canary), ('stable', stable)):
            metrics.append({'name': '%s_requests' % role, 'kind': 'compare', 'min': None, 'max': None,
                            'query': 'sum(increase(istio_requests_total{%s}[%s]))' % (sel, interval)})
            metrics.append({'name': '%s_errors' % role, 'kind': 'compare', 'min': None, 'max': None,
                            'query': 'sum(increase(istio_requests_total{%s,response_code=~"5.."}[%s])) or on() vector(0)' % (sel, interval)})
            metrics.append({'name': '%s_request_duration' % role, 'kind': 'compare', 'min': None, 'max': None,
                            'query': 'histogram_quantile(%g, sum by (le) (rate(istio_request_duration_milliseconds_bucket{%s}[%s])))'
                                     % (a['latency_quantile'], sel, interval)})
    return metrics


def judge(metric, value):
    """passed | failed | inconclusive for one value against the metric's bounds, with a reason."""
    name = metric['name']
    unit = metric.get('unit', '')
    if value is None:
        return 'inconclusive', '%s: no data (the query returned no series)' % name
    if _is_nan(value):
        return 'inconclusive', '%s: NaN (no requests in the window to compute it from)' % name
    low, high = metric.get('min'), metric.get('max')
    if low is not None and value < low:
        return 'failed', '%s %.4g%s is below the minimum %.4g%s' % (name, value, unit, low, unit)
    if high is not None and value > high:
        return 'failed', '%s %.4g%s is above the maximum %.4g%s' % (name, value, unit, high, unit)
    bounds = ' and '.join(p for p in ('>= %.4g%s' % (low, unit) if low is not None else '', '<= %.4g%s' % (high, unit) if high is not None else '') if p)
    return 'passed', '%s %.4g%s is within %s' % (name, value, unit, bounds)


def run_analysis(metrics, query, opts, now, unavailable_errors=(), config_error=None):  # noqa: PLR0917
    """Query every metric and judge the canary.

    ``query(promql)`` returns a float, NaN or None (no data) and may raise one of
    ``unavailable_errors`` (Prometheus unreachable -> verdict ``unavailable``). ``config_error(exc)``
    says whether such an error is the query's fault (a bad custom query), which is raised as CanaryError.
    Returns {verdict, at, window, requests, metrics: [...], comparisons: [...], reasons: [...]}.
    """
    results = []
    values = {}
    for metric in metrics:
        try:
            value = query(metric['query'])
        except unavailable_errors as exc:
            if config_error is not None and config_error(exc):
                raise CanaryError('metric %s: configuration error in its query (not a Prometheus outage): %s'
                                  % (metric['name'], exc)) from None
            return {'verdict': 'unavailable', 'at': format_time(now), 'window': opts['analysis']['interval'], 'requests': None,
                    'metrics': results, 'comparisons': [],
                    'reasons': ['Prometheus is unreachable, so the canary is held without counting a check: %s' % exc]}
        values[metric['name']] = value
        if metric['kind'] == 'compare':
            continue
        verdict, reason = judge(metric, value)
        results.append({'name': metric['name'], 'kind': metric['kind'], 'query': metric['query'], 'value': _num(value),
                        'min': metric.get('min'), 'max': metric.get('max'), 'verdict': verdict, 'reason': reason})
    comparisons = []
    cmp_opts = opts['analysis']['compare']
    if cmp_opts['enabled']:
        err = compare_error_ratio(values.get('canary_errors'), values.get('canary_requests'), values.get('stable_errors'),
                                  values.get('stable_requests'), cmp_opts['error_ratio_tolerance'] / 100.0, cmp_opts['alpha'])
        comparisons.append(dict(err, name='error_ratio_vs_stable', p_value=_num(err['p_value']),
                                queries=[m['query'] for m in metrics if m['name'] in ('canary_errors', 'canary_requests', 'stable_errors', 'stable_requests')]))
        lat = compare_latency(_float_or_none(values.get('canary_request_duration')), _float_or_none(values.get('stable_request_duration')),
                              cmp_opts['latency_tolerance_pct'], cmp_opts['latency_margin_ms'])
        comparisons.append(dict(lat, name='latency_vs_stable', canary_ms=_num(lat['canary_ms']), stable_ms=_num(lat['stable_ms']),
                                queries=[m['query'] for m in metrics if m['name'] in ('canary_request_duration', 'stable_request_duration')]))
    requests = values.get('request_count')
    verdicts = [r['verdict'] for r in results if r['name'] != 'request_count'] + [c['verdict'] for c in comparisons]
    reasons = []
    min_requests = opts['analysis']['min_requests']
    if requests is None or _is_nan(requests) or requests < min_requests:
        count = 'no' if requests is None or _is_nan(requests) else '%d' % round(requests)
        reasons.append('not enough traffic: %s canary requests in the last %s, %d needed; metrics are not judged on so little data'
                       % (count, opts['analysis']['interval'], min_requests))
        verdict = 'inconclusive'
    elif 'failed' in verdicts:
        verdict = 'failed'
        reasons += [r['reason'] for r in results if r['verdict'] == 'failed'] + [c['reason'] for c in comparisons if c['verdict'] == 'failed']
    elif 'inconclusive' in verdicts:
        verdict = 'inconclusive'
        reasons += [r['reason'] for r in results if r['verdict'] == 'inconclusive'] + [c['reason'] for c in comparisons if c['verdict'] == 'inconclusive']
    else:
        verdict = 'passed'
        reasons.append('every metric is within its bounds (%d canary requests in the last %s)' % (round(requests), opts['analysis']['interval']))
    return {'verdict': verdict, 'at': format_time(now), 'window': opts['analysis']['interval'],
            'requests': _num(requests), 'metrics': results, 'comparisons': comparisons, 'reasons': reasons}


def _float_or_none(value):
    return None if value is None else float(value)


# -- the state machine -----------------------------------------------------------------------------
def analysis_due(state, opts, now):
    """(due, reason): an analysis counts only when its window starts after the last change and the last analysis."""
    marks = [parse_time(state.get('last_change_at')), parse_time(state.get('last_analysis_at'))]
    marks = [m for m in marks if m is not None]
    if not marks:
        return True, None
    since = max(marks)
    ready = since + opts['analysis']['interval_seconds']
    if now + 1e-6 >= ready:
        return True, None
    return False, ('the last weight change or analysis was at %s; the next analysis window (%s) completes at %s, so this run changes nothing'
                   % (format_time(since), opts['analysis']['interval'], format_time(ready)))


def _record(state, decision, analysis, now, reasons, weight_before):  # noqa: PLR0917
    entry = {'at': format_time(now), 'decision': decision, 'weight_before': weight_before, 'weight': state['weight'],
             'step_index': state['step_index'], 'reasons': list(reasons)}
    if analysis is not None:
        entry['verdict'] = analysis['verdict']
        entry['requests'] = analysis.get('requests')
        entry['metrics'] = [{'name': m['name'], 'value': m['value'], 'min': m.get('min'), 'max': m.get('max'), 'verdict': m['verdict']}
                            for m in analysis['metrics']]
        if analysis.get('comparisons'):
            entry['comparisons'] = [{'name': c['name'], 'verdict': c['verdict'], 'p_value': c.get('p_value')} for c in analysis['comparisons']]
    state['history'] = (state.get('history') or []) + [entry]
    state['history'] = state['history'][-HISTORY_LIMIT:]
    state['last_decision'] = {'decision': decision, 'at': format_time(now), 'reasons': list(reasons)}


def _fail(state, opts, now, reasons):
    if opts['rollback_on_failure']:
        state['phase'] = 'rolled_back'
        state['weight'] = 0
        state['last_change_at'] = format_time(now)
        reasons.append('rolled back: all traffic goes to the stable version')
        return 'rolled_back'
    state['phase'] = 'failed'
    reasons.append('the canary failed; rollback_on_failure is false, so the weights stay as they are')
    return 'failed'


def _count(state, verdict, opts):
    """Update the check counters for a conclusive/inconclusive verdict (counting mode aware)."""
    consecutive = opts['count_mode'] == 'consecutive'
    state['analyses'] = state.get('analyses', 0) + 1
    if verdict == 'passed':
        if consecutive:
            state['failed_checks'] = 0
            state['inconclusive_checks'] = 0
    elif verdict == 'failed':
        state['failed_checks'] += 1
        if consecutive:
            state['inconclusive_checks'] = 0
    elif verdict == 'inconclusive':
        state['inconclusive_checks'] += 1


def needs_analysis(action, state, opts, now):
    """Whether ``decide`` will want an analysis for this action and state (so the module queries Prometheus)."""
    if action == 'analyze':
        return True
    if state['phase'] in TERMINAL_PHASES:
        return False
    if action == 'step':
        if state['step_index'] < 0 and state['weight'] == 0:
            return False
        if _deadline_exceeded(state, opts, now):
            return False
        return analysis_due(state, opts, now)[0]
    if action == 'promote' or (action == 'set_weight' and opts['weight'] == 100):
        return analysis_due(state, opts, now)[0] and not _deadline_exceeded(state, opts, now)
    return False


def _deadline_exceeded(state, opts, now):
    since = parse_time(state.get('last_change_at')) or parse_time(state.get('started_at'))
    return since is not None and now - since > opts['progress_deadline']


def decide(state, opts, now, analysis=None):
    """Apply ``opts['action']`` to ``state`` (already reconciled with the VirtualService).

    Returns a dict: decision, state (the new state), weight_before, weight_after, reasons, counted (bool).
    ``analysis`` is the run_analysis() result when needs_analysis() said so, else None.
    """
    action = opts['action']
    steps = opts['steps']
    state = copy.deepcopy(state)
    before = state['weight']
    reasons = []

    def result(decision, record=True):
        if record:
            _record(state, decision, analysis, now, reasons, before)
        return {'decision': decision, 'state': state, 'weight_before': before, 'weight_after': state['weight'], 'reasons': reasons,
                'step_index': state['step_index']}

    if action == 'rollback':
        if state['phase'] == 'rolled_back' and state['weight'] == 0:
            reasons.append('already rolled back; all traffic is on the stable version')
            return result('rolled_back', record=False)
        state['phase'] = 'rolled_back'
        state['weight'] = 0
        state['last_change_at'] = format_time(now)
        reasons.append('rollback requested: all traffic goes to the stable version')
        return result('rolled_back')

    if action in ('status', 'lease'):
        reasons.append(summary(state))
        last = (state.get('last_decision') or {}).get('decision')
        return result(last if last in DECISIONS else 'held', record=False)

    if action == 'analyze':
        reasons.extend(analysis['reasons'] if analysis else [])
        mapping = {'passed': 'held', 'failed': 'failed', 'inconclusive': 'inconclusive', 'unavailable': 'held'}
        return result(mapping[analysis['verdict']] if analysis else 'held', record=False)

    if state['phase'] in TERMINAL_PHASES and not (action == 'set_weight' and state['phase'] == 'promoted' and opts['weight'] < 100):
        if action == 'set_weight' and opts['weight'] > 0:
            raise CanaryError('the canary of revision %r was %s; weight cannot go back to it: start a new revision'
                              % (state.get('revision'), state['phase'].replace('_', ' ')))
        if action == 'set_weight':
            if state['weight'] != 0:
                state['weight'] = 0
                state['last_change_at'] = format_time(now)
                reasons.append('canary finished (%s); weight set to 0 as asked' % state['phase'])
                return result('held')
        reasons.append('the canary of revision %r is already %s (%s); give a new revision to start another'
                       % (state.get('revision'), state['phase'].replace('_', ' '), (state.get('last_decision') or {}).get('at')))
        return result(state['phase'], record=False)

    if action == 'set_weight' and state['phase'] == 'promoted':
        if state['weight'] == opts['weight']:
            reasons.append('canary promoted; the weight is already %d%%' % opts['weight'])
            return result('promoted', record=False)
        state['weight'] = opts['weight']
        state['last_change_at'] = format_time(now)
        reasons.append('canary promoted earlier; weight set to %d%% as asked (stable %d%%)' % (opts['weight'], 100 - opts['weight']))
        return result('promoted')

    if action == 'set_weight' and opts['weight'] < 100:
        target = opts['weight']
        if target == state['weight']:
            reasons.append('the canary weight is already %d%%' % target)
            return result('held', record=False)
        state['weight'] = target
        state['step_index'] = max([i for i, s in enumerate(steps) if s <= target] or [-1])
        state['last_change_at'] = format_time(now)
        if opts['count_mode'] == 'consecutive':
            state['failed_checks'] = state['inconclusive_checks'] = 0
        reasons.append('canary weight set to %d%% as asked (was %d%%); the next analysis window starts now' % (target, before))
        return result('advanced')

    # step, promote, set_weight 100: the analysed paths.
    promote = action in {'promote', 'set_weight'}
    if action == 'step' and state['step_index'] < 0 and state['weight'] == 0:
        state['step_index'] = 0
        state['weight'] = steps[0]
        state['last_change_at'] = format_time(now)
        reasons.append('canary started: %d%% of the traffic to the canary, %d%% to stable' % (steps[0], 100 - steps[0]))
        return result('advanced')
    if _deadline_exceeded(state, opts, now):
        since = parse_time(state.get('last_change_at')) or parse_time(state.get('started_at'))
        reasons.append('progress deadline exceeded: no progress since %s (deadline %ds)' % (format_time(since), int(opts['progress_deadline'])))
        return result(_fail(state, opts, now, reasons))
    if analysis is None:
        _due, why = analysis_due(state, opts, now)
        reasons.append(why or 'no analysis was run')
        return result('held', record=False)
    verdict = analysis['verdict']
    reasons.extend(analysis['reasons'])
    if verdict == 'unavailable':
        return result('held', record=False)
    state['last_analysis_at'] = format_time(now)
    _count(state, verdict, opts)
    if verdict == 'passed':
        if promote:
            state['step_index'] = len(steps) - 1
        else:
            state['step_index'] = min(state['step_index'] + 1, len(steps) - 1)
        state['weight'] = steps[state['step_index']]
        state['last_change_at'] = format_time(now)
        if state['weight'] >= 100:
            state['phase'] = 'promoted'
            reasons.append('analysis passed: canary promoted, 100% of the traffic to the canary')
            return result('promoted')
        reasons.append('analysis passed: canary weight %d%% -> %d%%' % (before, state['weight']))
        return result('advanced')
    if verdict == 'failed':
        reasons.append('failed checks: %d of %d allowed (%s)' % (state['failed_checks'], opts['max_failed_checks'], opts['count_mode']))
        if state['failed_checks'] >= opts['max_failed_checks']:
            return result(_fail(state, opts, now, reasons))
        reasons.append('held at %d%% until the next analysis' % state['weight'])
        return result('held')
    reasons.append('inconclusive analyses: %d of %d allowed (%s)' % (state['inconclusive_checks'], opts['max_inconclusive'], opts['count_mode']))
    if state['inconclusive_checks'] >= opts['max_inconclusive']:
        reasons.append('too many inconclusive analyses: the canary cannot be judged')
        return result(_fail(state, opts, now, reasons))
    reasons.append('held at %d%% until the next analysis' % state['weight'])
    return result('inconclusive')
