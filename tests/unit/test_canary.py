"""Unit tests of the canary state machine, weights, subsets and analysis (plugins/module_utils/canary.py)."""

from __future__ import annotations

import json
import math

import pytest
from ansible_collections.machinenativeops.platform.plugins.module_utils import canary as c
from ansible_collections.machinenativeops.platform.plugins.module_utils.canary_stats import binomial_sf, compare_error_ratio, compare_latency

T0 = 1_800_000_000.0


def params(**over):
    base = {
        'action': 'step', 'namespace': 'shop', 'virtual_service': 'reviews',
        'stable': {'host': 'reviews', 'subset': 'stable'}, 'canary': {'host': 'reviews', 'subset': 'canary'},
        'canary_workload': 'reviews-canary', 'stable_workload': 'reviews', 'revision': 'v2',
        'analysis': {'interval': '30s', 'min_requests': 20},
    }
    base.update(over)
    return base


def opts(**over):
    return c.options_from_params(params(**over))


def vs(weights=None, annotations=None, extra_routes=()):
    route = {'name': 'primary', 'route': [{'destination': {'host': 'reviews', 'subset': 'stable'}, 'weight': 100}]}
    if weights is not None:
        route['route'] = [{'destination': {'host': 'reviews', 'subset': 'stable'}, 'weight': 100 - weights},
                          {'destination': {'host': 'reviews.shop.svc.cluster.local', 'subset': 'canary'}, 'weight': weights}]
    return {'metadata': {'name': 'reviews', 'namespace': 'shop', 'annotations': annotations or {}},
            'spec': {'hosts': ['reviews'], 'http': [*extra_routes, route]}}


def passed():
    return {'verdict': 'passed', 'reasons': ['ok'], 'metrics': [{'name': 'request_success_rate', 'value': 100.0, 'min': 95.0, 'max': None,
                                                                 'verdict': 'passed'}], 'requests': 100}


def verdict(v):
    return {'verdict': v, 'reasons': [v], 'metrics': [], 'requests': 5}


def run(state, o, now, analysis=None):
    """One module invocation's decision path: needs_analysis -> decide."""
    if c.needs_analysis(o['action'], state, o, now):
        assert analysis is not None, 'an analysis was wanted'
        return c.decide(state, o, now, analysis)
    return c.decide(state, o, now, None)


# -- options ----------------------------------------------------------------------------------------
def test_defaults_and_duration():
    o = opts()
    assert o['steps'] == [10, 30, 50, 80, 100]
    assert o['analysis']['interval_seconds'] == 30.0
    assert o['max_failed_checks'] == 2 and o['count_mode'] == 'consecutive' and o['rollback_on_failure'] is True
    assert c.parse_duration('1m30s') == 90.0 and c.parse_duration('500ms') == 0.5


@pytest.mark.parametrize('steps, message', [
    ([10, 10, 100], 'strictly increasing'), ([10, 50], 'last step must be 100'), ([100], 'at least two'),
    ([0, 100], 'between 1 and 100'), (['x', 100], 'integer'),
])
def test_bad_steps(steps, message):
    with pytest.raises(c.CanaryError, match=message):
        opts(steps=steps)


@pytest.mark.parametrize('over, message', [
    ({'namespace': 'bad"ns'}, 'namespace'),
    ({'canary_workload': 'x"} or vector(1) #'}, 'canary_workload'),
    ({'canary': {'host': 'reviews', 'subset': 'stable'}}, 'same destination'),
    ({'analysis': {'interval': '5 minutes'}}, 'invalid duration'),
    ({'analysis': {'metrics': [{'name': 'm', 'query': 'up'}]}}, 'needs min, max'),
    ({'analysis': {'metrics': [{'name': 'm', 'query': 'up', 'min': 2, 'max': 1}]}}, 'above max'),
    ({'action': 'set_weight'}, 'needs weight'),
    ({'canary_workload': None}, 'needs canary_workload'),
    ({'analysis': {'compare': {'enabled': True}}, 'stable_workload': None}, 'needs stable_workload'),
    ({'count_mode': 'sometimes'}, 'count_mode'),
])
def test_option_errors(over, message):
    with pytest.raises(c.CanaryError, match=message):
        opts(**over)


# -- weights ---------------------------------------------------------------------------------------
def test_find_route_by_destination_and_name():
    other = {'name': 'admin', 'match': [{'uri': {'prefix': '/admin'}}], 'route': [{'destination': {'host': 'admin'}}]}
    obj = vs(10, extra_routes=[other])
    o = opts()
    assert c.find_route(obj, None, o['stable'], o['canary'], 'shop') == 1
    assert c.find_route(obj, 'primary', o['stable'], o['canary'], 'shop') == 1
    with pytest.raises(c.CanaryError, match="no http route named 'nope'"):
        c.find_route(obj, 'nope', o['stable'], o['canary'], 'shop')


def test_find_route_ambiguous():
    obj = vs(10)
    obj['spec']['http'].append(json.loads(json.dumps(obj['spec']['http'][0])))
    o = opts()
    with pytest.raises(c.CanaryError, match='2 http routes'):
        c.find_route(obj, None, o['stable'], o['canary'], 'shop')


def test_read_and_set_weights_sum_to_100():
    o = opts()
    route = vs()['spec']['http'][0]
    assert c.read_weights(route, o['stable'], o['canary'], 'shop') == {'stable': 100, 'canary': 0}
    for w in (0, 10, 33, 100):
        new = c.set_weights(route, o['stable'], o['canary'], w, 'shop')
        got = c.read_weights(new, o['stable'], o['canary'], 'shop')
        assert got == {'stable': 100 - w, 'canary': w}
        assert sum(d['weight'] for d in new['route']) == 100
    assert route['route'][0]['weight'] == 100  # the input is not modified


def test_single_destination_without_weight_is_100():
    o = opts()
    route = {'route': [{'destination': {'host': 'reviews.shop', 'subset': 'stable'}}]}
    assert c.read_weights(route, o['stable'], o['canary'], 'shop') == {'stable': 100, 'canary': 0}


def test_third_destination_with_weight_is_refused():
    o = opts()
    route = {'route': [{'destination': {'host': 'reviews', 'subset': 'stable'}, 'weight': 80},
                       {'destination': {'host': 'reviews', 'subset': 'old'}, 'weight': 20}]}
    with pytest.raises(c.CanaryError, match="20% to reviews/old"):
        c.read_weights(route, o['stable'], o['canary'], 'shop')


def test_two_hosts_mode():
    o = opts(stable={'host': 'reviews-stable'}, canary={'host': 'reviews-canary'})
    route = {'route': [{'destination': {'host': 'reviews-stable'}}]}
    new = c.set_weights(route, o['stable'], o['canary'], 30, 'shop')
    assert new['route'] == [{'destination': {'host': 'reviews-stable'}, 'weight': 70}, {'destination': {'host': 'reviews-canary'}, 'weight': 30}]
    assert c.missing_subsets([], [o['stable'], o['canary']], 'shop') == []


def test_missing_subsets():
    dr = {'metadata': {'name': 'reviews', 'namespace': 'shop'},
          'spec': {'host': 'reviews.shop.svc.cluster.local', 'subsets': [{'name': 'stable', 'labels': {'track': 'stable'}}]}}
    o = opts()
    problems = c.missing_subsets([dr], [o['stable'], o['canary']], 'shop')
    assert len(problems) == 1 and "no subset 'canary'" in problems[0] and "'stable'" in problems[0]
    dr['spec']['subsets'].append({'name': 'canary'})
    assert c.missing_subsets([dr], [o['stable'], o['canary']], 'shop') == []
    assert 'does not exist' in c.missing_subsets([dr], [o['canary']], 'shop', rule_name='other')[0]
    assert 'no DestinationRule' in c.missing_subsets([], [o['canary']], 'shop')[0]


# -- state ------------------------------------------------------------------------------------------
def test_state_round_trip_and_bad_annotation():
    s = c.new_state('v2', T0)
    ann = c.state_annotations(s)
    assert c.load_state(vs(annotations=ann)) == s
    assert 'progressing' in ann[c.SUMMARY_ANNOTATION]
    s.update(step_index=0, weight=10, failed_checks=0)
    assert c.load_state(vs(annotations=c.state_annotations(s)))['step_index'] == 0
    with pytest.raises(c.CanaryError, match='not valid JSON'):
        c.load_state(vs(annotations={c.STATE_ANNOTATION: '{'}))
    with pytest.raises(c.CanaryError, match='version 1'):
        c.load_state(vs(annotations={c.STATE_ANNOTATION: '{"version": 9}'}))
    assert c.load_state(vs()) is None


def test_reconcile_new_revision_and_drift():
    o = opts()
    s = c.new_state('v1', T0)
    s['phase'] = 'promoted'
    fresh, notes = c.reconcile_state(s, {'stable': 100, 'canary': 0}, o, T0 + 5)
    assert fresh['revision'] == 'v2' and fresh['step_index'] == -1 and 'new revision' in notes[0]
    s = c.new_state('v2', T0)
    s.update(step_index=1, weight=30)
    adopted, notes = c.reconcile_state(s, {'stable': 50, 'canary': 50}, o, T0 + 5)
    assert adopted['weight'] == 50 and adopted['step_index'] == 2 and 'outside canary_step' in notes[0]
    assert adopted['last_change_at'] == c.format_time(T0 + 5)


# -- the state machine ------------------------------------------------------------------------------
def test_healthy_canary_walks_every_step_and_promotes():
    o = opts()
    state, _events = c.reconcile_state(None, {'stable': 100, 'canary': 0}, o, T0)
    now = T0
    out = run(state, o, now)
    assert out['decision'] == 'advanced' and out['weight_after'] == 10
    seen = [10]
    for expected in (30, 50, 80):
        now += 30
        out = run(out['state'], o, now, passed())
        assert out['decision'] == 'advanced' and out['weight_after'] == expected
        seen.append(out['weight_after'])
    now += 30
    out = run(out['state'], o, now, passed())
    assert out['decision'] == 'promoted' and out['weight_after'] == 100 and out['state']['phase'] == 'promoted'
    assert seen == [10, 30, 50, 80]
    assert [h['decision'] for h in out['state']['history']] == ['advanced'] * 4 + ['promoted']
    # a further step changes nothing
    again = run(out['state'], o, now + 60)
    assert again['decision'] == 'promoted' and again['state'] == out['state']


def test_same_window_does_not_advance_twice():
    o = opts()
    state, _events = c.reconcile_state(None, {'stable': 100, 'canary': 0}, o, T0)
    out = run(state, o, T0)
    out = run(out['state'], o, T0 + 30, passed())
    assert out['weight_after'] == 30
    for delay in (0, 1, 29):
        assert not c.needs_analysis('step', out['state'], o, T0 + 30 + delay)
        again = c.decide(out['state'], o, T0 + 30 + delay, None)
        assert again['decision'] == 'held' and again['weight_after'] == 30 and again['state'] == out['state']
        assert 'next analysis window' in again['reasons'][0]
    assert c.needs_analysis('step', out['state'], o, T0 + 60)


def test_error_burst_rolls_back_after_max_failed_checks():
    o = opts(max_failed_checks=2)
    state, _events = c.reconcile_state(None, {'stable': 100, 'canary': 0}, o, T0)
    out = run(state, o, T0)
    out = run(out['state'], o, T0 + 30, passed())
    out = run(out['state'], o, T0 + 60, verdict('failed'))
    assert out['decision'] == 'held' and out['weight_after'] == 30 and out['state']['failed_checks'] == 1
    out = run(out['state'], o, T0 + 90, verdict('failed'))
    assert out['decision'] == 'rolled_back' and out['weight_after'] == 0 and out['state']['phase'] == 'rolled_back'
    assert any('rolled back' in r for r in out['reasons'])


def test_failure_without_rollback():
    o = opts(max_failed_checks=1, rollback_on_failure=False)
    state = c.new_state('v2', T0)
    state.update(step_index=1, weight=30, last_change_at=c.format_time(T0))
    out = run(state, o, T0 + 30, verdict('failed'))
    assert out['decision'] == 'failed' and out['weight_after'] == 30 and out['state']['phase'] == 'failed'


def test_consecutive_vs_total_counting():
    def walk(mode):
        o = opts(max_failed_checks=2, count_mode=mode)
        state = c.new_state('v2', T0)
        state.update(step_index=0, weight=10, last_change_at=c.format_time(T0))
        now = T0
        out = None
        # failed, passed (advance), failed
        for v in ('failed', 'passed', 'failed'):
            now += 30
            out = run(state, o, now, passed() if v == 'passed' else verdict(v))
            state = out['state']
        return out
    assert walk('consecutive')['decision'] == 'held'
    total = walk('total')
    assert total['decision'] == 'rolled_back' and total['state']['failed_checks'] == 2


def test_zero_traffic_is_inconclusive_then_fails_without_promoting():
    o = opts(max_inconclusive=3)
    state = c.new_state('v2', T0)
    state.update(step_index=0, weight=10, last_change_at=c.format_time(T0))
    decisions = []
    now = T0
    for _i in range(3):
        now += 30
        out = run(state, o, now, verdict('inconclusive'))
        state = out['state']
        decisions.append(out['decision'])
        assert out['weight_after'] in (10, 0)
    assert decisions == ['inconclusive', 'inconclusive', 'rolled_back']
    assert all(h['weight'] != 100 for h in state['history'])


def test_prometheus_unavailable_holds_without_counting():
    o = opts()
    state = c.new_state('v2', T0)
    state.update(step_index=1, weight=30, last_change_at=c.format_time(T0))
    unavailable = {'verdict': 'unavailable', 'reasons': ['Prometheus is unreachable: refused'], 'metrics': []}
    out = run(state, o, T0 + 30, unavailable)
    assert out['decision'] == 'held' and out['state'] == state and 'unreachable' in out['reasons'][0]


def test_progress_deadline_fails_even_when_prometheus_is_down():
    o = opts(progress_deadline='5m')
    state = c.new_state('v2', T0)
    state.update(step_index=1, weight=30, last_change_at=c.format_time(T0))
    assert not c.needs_analysis('step', state, o, T0 + 301)
    out = run(state, o, T0 + 301)
    assert out['decision'] == 'rolled_back' and 'progress deadline' in out['reasons'][0]


def test_promote_needs_a_passing_analysis():
    o = opts(action='promote')
    state = c.new_state('v2', T0)
    state.update(step_index=1, weight=30, last_change_at=c.format_time(T0))
    # window not complete: held, not promoted
    early = run(state, o, T0 + 10)
    assert early['decision'] == 'held' and early['weight_after'] == 30
    failed = run(state, o, T0 + 30, verdict('inconclusive'))
    assert failed['decision'] == 'inconclusive' and failed['weight_after'] == 30
    out = run(state, o, T0 + 30, passed())
    assert out['decision'] == 'promoted' and out['weight_after'] == 100


def test_set_weight_100_is_a_promotion_and_lower_weights_are_manual():
    o = opts(action='set_weight', weight=100)
    state = c.new_state('v2', T0)
    state.update(step_index=0, weight=10, last_change_at=c.format_time(T0))
    assert c.needs_analysis('set_weight', state, o, T0 + 30)
    assert run(state, o, T0 + 30, verdict('failed'))['weight_after'] == 10
    o = opts(action='set_weight', weight=50)
    out = run(state, o, T0 + 1)
    assert out['decision'] == 'advanced' and out['weight_after'] == 50 and out['state']['step_index'] == 2
    assert run(out['state'], o, T0 + 2)['decision'] == 'held'


def test_rollback_action_is_idempotent():
    o = opts(action='rollback', canary_workload=None)
    state = c.new_state('v2', T0)
    state.update(step_index=2, weight=50)
    out = run(state, o, T0)
    assert out['decision'] == 'rolled_back' and out['weight_after'] == 0
    again = run(out['state'], o, T0 + 1)
    assert again['decision'] == 'rolled_back' and again['state'] == out['state']
    with pytest.raises(c.CanaryError, match='start a new revision'):
        run(out['state'], opts(action='set_weight', weight=30), T0 + 2)


def test_reset_weights_after_promotion_keeps_promoted():
    state = c.new_state('v2', T0)
    state.update(step_index=4, weight=100, phase='promoted')
    out = run(state, opts(action='set_weight', weight=0), T0)
    assert out['decision'] == 'promoted' and out['weight_after'] == 0 and out['state']['phase'] == 'promoted'
    assert run(out['state'], opts(), T0 + 100)['decision'] == 'promoted'


def test_history_is_bounded():
    o = opts(max_inconclusive=1000)
    state = c.new_state('v2', T0)
    state.update(step_index=0, weight=10, last_change_at=c.format_time(T0))
    now = T0
    for _i in range(c.HISTORY_LIMIT + 5):
        now += 30
        state = run(state, o, now, verdict('inconclusive'))['state']
    assert len(state['history']) == c.HISTORY_LIMIT and state['inconclusive_checks'] == c.HISTORY_LIMIT + 5


# -- metrics and analysis ---------------------------------------------------------------------------
def answers(values):
    def query(promql):
        for key, value in values.items():
            if key in promql:
                return value
        raise AssertionError('unexpected query ' + promql)
    return query


def builtin_values(count=100.0, success=99.5, error=0.5, latency=120.0):
    return {'increase(istio_requests_total': count, 'response_code!~': success, 'response_code=~': error, 'histogram_quantile': latency}


def test_metric_queries_name_the_canary_workload_and_window():
    metrics = c.build_metrics(opts())
    names = [m['name'] for m in metrics]
    assert names == ['request_count', 'request_success_rate', 'request_error_rate', 'request_duration']
    for m in metrics:
        assert 'destination_workload="reviews-canary"' in m['query'] and '[30s]' in m['query']
        assert 'destination_workload_namespace="shop"' in m['query'] and 'reporter="destination"' in m['query']
    assert 'histogram_quantile(0.95,' in metrics[-1]['query']


def test_custom_query_template():
    o = opts(analysis={'interval': '1m', 'metrics': [
        {'name': 'cpu', 'query': 'sum(rate(container_cpu_usage_seconds_total{namespace="$namespace",pod=~"${canary_workload}-.*"}[$interval]))',
         'max': 2}]})
    custom = next(m for m in c.build_metrics(o) if m['kind'] == 'custom')
    assert custom['query'] == 'sum(rate(container_cpu_usage_seconds_total{namespace="shop",pod=~"reviews-canary-.*"}[1m]))'
    with pytest.raises(c.CanaryError, match=r'unknown variable \$pod'):
        c.template_query('up{pod="$pod"}', o)


@pytest.mark.parametrize('values, expected, words', [
    (builtin_values(), 'passed', 'every metric'),
    (builtin_values(success=90.0, error=10.0), 'failed', 'below the minimum'),
    (builtin_values(latency=900.0), 'failed', 'above the maximum 500'),
    (builtin_values(count=5.0, success=0.0, error=100.0), 'inconclusive', 'not enough traffic: 5'),
    (builtin_values(count=None, success=None, error=None, latency=None), 'inconclusive', 'not enough traffic: no'),
    (builtin_values(count=0.0, success=math.nan, error=math.nan, latency=math.nan), 'inconclusive', 'not enough traffic: 0'),
    (builtin_values(latency=math.nan), 'inconclusive', 'NaN'),
    (builtin_values(latency=math.nan, error=50.0), 'failed', 'above the maximum'),
])
def test_analysis_verdicts(values, expected, words):
    o = opts()
    out = c.run_analysis(c.build_metrics(o), answers(values), o, T0)
    assert out['verdict'] == expected
    assert any(words in r for r in out['reasons']), out['reasons']
    assert {m['name'] for m in out['metrics']} == {'request_count', 'request_success_rate', 'request_error_rate', 'request_duration'}
    json.dumps(out)  # NaN values are stored JSON-safe


class Down(Exception):
    def __init__(self, status=None):
        super().__init__('connection refused' if status is None else 'bad_data: parse error')
        self.status = status


def test_analysis_unavailable_and_bad_query():
    o = opts()

    def refused(promql):
        raise Down()
    out = c.run_analysis(c.build_metrics(o), refused, o, T0, unavailable_errors=(Down,), config_error=lambda e: e.status == 400)
    assert out['verdict'] == 'unavailable' and 'Prometheus is unreachable' in out['reasons'][0]

    def bad(promql):
        raise Down(400)
    with pytest.raises(c.CanaryError, match='configuration error in its query'):
        c.run_analysis(c.build_metrics(o), bad, o, T0, unavailable_errors=(Down,), config_error=lambda e: e.status == 400)


def test_comparison_with_stable():
    o = opts(analysis={'interval': '30s', 'min_requests': 20, 'builtin_metrics': ['latency'],
                       'compare': {'enabled': True, 'error_ratio_tolerance': 1.0}})

    def query_for(canary_errors, canary_requests, canary_ms=100.0, stable_ms=100.0):
        def query(promql):
            is_canary = 'reviews-canary' in promql
            if 'histogram_quantile' in promql:
                return canary_ms if is_canary else stable_ms
            if 'response_code=~' in promql:
                return canary_errors if is_canary else 0.0
            if 'increase' in promql:
                return canary_requests if is_canary else 30000.0
            raise AssertionError(promql)
        return query
    low = c.run_analysis(c.build_metrics(o), query_for(3.0, 30.0), o, T0)
    high = c.run_analysis(c.build_metrics(o), query_for(3.0, 30000.0), o, T0)
    assert low['verdict'] == 'failed' and high['verdict'] == 'passed'
    assert low['comparisons'][0]['p_value'] < 0.05 < high['comparisons'][0]['p_value']
    slow = c.run_analysis(c.build_metrics(o), query_for(0.0, 1000.0, canary_ms=200.0), o, T0)
    assert slow['verdict'] == 'failed' and any('latency' in r for r in slow['reasons'])


# -- statistics -------------------------------------------------------------------------------------
def test_binomial_sf_matches_closed_forms():
    assert binomial_sf(0, 10, 0.3) == 1.0
    assert binomial_sf(11, 10, 0.3) == 0.0
    assert math.isclose(binomial_sf(10, 10, 0.5), 0.5 ** 10)
    assert math.isclose(binomial_sf(1, 30, 0.01), 1 - 0.99 ** 30)
    exact = 1 - (0.99 ** 30 + 30 * 0.01 * 0.99 ** 29 + 435 * 0.0001 * 0.99 ** 28)
    assert math.isclose(binomial_sf(3, 30, 0.01), exact, rel_tol=1e-9)
    # upper and lower summation paths agree around the mean
    n, p = 2000, 0.05
    assert math.isclose(binomial_sf(100, n, p) - binomial_sf(101, n, p), math.exp(c_log_pmf(100, n, p)), rel_tol=1e-6)
    assert 0.0 < binomial_sf(500, 1_000_000, 0.0001) < 1e-100 or binomial_sf(500, 1_000_000, 0.0001) == 0.0


def c_log_pmf(k, n, p):
    return math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1) + k * math.log(p) + (n - k) * math.log1p(-p)


def test_error_ratio_comparison_weighs_the_evidence():
    assert compare_error_ratio(3, 30, 0, 30000, 0.01, 0.05)['verdict'] == 'failed'
    assert compare_error_ratio(3, 30000, 0, 30000, 0.01, 0.05)['verdict'] == 'passed'
    assert compare_error_ratio(1, 5, 0, 1000, 0.05, 0.05)['verdict'] == 'passed'  # one error in five is no evidence
    assert compare_error_ratio(None, 30, 0, 100, 0.01, 0.05)['verdict'] == 'inconclusive'
    assert compare_error_ratio(0, 0, 0, 100, 0.01, 0.05)['verdict'] == 'inconclusive'
    worse_stable = compare_error_ratio(30, 1000, 25, 1000, 0.01, 0.05)
    assert worse_stable['verdict'] == 'passed' and math.isclose(worse_stable['threshold'], 0.035)


def test_latency_comparison():
    assert compare_latency(119.0, 100.0, 20, 0)['verdict'] == 'passed'
    assert compare_latency(121.0, 100.0, 20, 0)['verdict'] == 'failed'
    assert compare_latency(121.0, 100.0, 20, 5)['verdict'] == 'passed'
    assert compare_latency(math.nan, 100.0, 20, 0)['verdict'] == 'inconclusive'


def test_weight_below_the_first_step_is_analysed_before_advancing():
    o = opts()
    state, notes = c.reconcile_state(None, {'stable': 95, 'canary': 5}, o, T0)
    assert state['step_index'] == -1 and state['weight'] == 5 and 'adopted' in notes[0]
    assert c.needs_analysis('step', state, o, T0 + 30)
    out = run(state, o, T0 + 30, passed())
    assert out['decision'] == 'advanced' and out['weight_after'] == 10 and out['step_index'] == 0


def test_builtin_metrics_selection():
    o = opts(analysis={'interval': '30s', 'builtin_metrics': ['error_rate'], 'error_rate_max': 2.5})
    assert [m['name'] for m in c.build_metrics(o)] == ['request_count', 'request_error_rate']
    assert c.build_metrics(o)[1]['max'] == 2.5
    assert [m['name'] for m in c.build_metrics(opts(analysis={'builtin_metrics': []}))] == ['request_count']
    with pytest.raises(c.CanaryError, match='unknown cpu'):
        opts(analysis={'builtin_metrics': ['cpu']})
