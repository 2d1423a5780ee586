# -*- coding: utf-8 -*-
# Copyright: (c) 2026, machinenativeops platform team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Statistics for comparing a canary with its stable version (standard library only).

The error comparison is an exact one-sided binomial test: under the hypothesis "the canary's
error ratio is at most the stable's plus a tolerance", how likely is it to see at least the
canary's error count among its requests?  Unlike a plain ratio check it weighs the evidence:
3 errors in 30 requests is a significant regression, 3 errors in 30,000 is not, and 1 error in
5 requests is not enough evidence either way.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import math


def _log_pmf(k, n, p):
    """log P(X = k) for X ~ Binomial(n, p), 0 < p < 1."""
    return (math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)
            + k * math.log(p) + (n - k) * math.log1p(-p))


def binomial_sf(k, n, p):
    """P(X >= k) for X ~ Binomial(n, p), exact (summed in log space, stable for n in the millions)."""
    k, n = int(k), int(n)
    if n < 0 or k < 0:
        raise ValueError('counts must be non-negative (k=%r, n=%r)' % (k, n))
    if k <= 0:
        return 1.0
    if k > n:
        return 0.0
    if p <= 0.0:
        return 0.0
    if p >= 1.0:
        return 1.0
    mean = n * p
    if k <= mean:
        # The tail is large: 1 - P(X < k), summing the short lower part.
        lower = 0.0
        for i in range(0, k):
            lower += math.exp(_log_pmf(i, n, p))
        return max(0.0, min(1.0, 1.0 - lower))
    total = 0.0
    for i in range(k, n + 1):
        term = math.exp(_log_pmf(i, n, p))
        total += term
        if term < total * 1e-17:
            break  # the terms decrease geometrically past the mode
    return max(0.0, min(1.0, total))


def compare_error_ratio(canary_errors, canary_requests, stable_errors, stable_requests, tolerance, alpha):  # noqa: PLR0917
    """Is the canary's error ratio significantly above the stable's plus ``tolerance`` (a fraction)?

    Returns a dict: ``verdict`` (passed | failed | inconclusive), ``canary_ratio``, ``stable_ratio``,
    ``threshold`` (the ratio tested against), ``p_value`` and ``reason`` in plain words.
    Counts are rounded to whole requests (Prometheus' increase() extrapolates).
    """
    out = {'canary_ratio': None, 'stable_ratio': None, 'threshold': None, 'p_value': None}
    values = (canary_errors, canary_requests, stable_errors, stable_requests)
    if any(v is None or (isinstance(v, float) and math.isnan(v)) for v in values):
        out.update(verdict='inconclusive', reason='no data for the canary or the stable version')
        return out
    n_c, k_c = round(canary_requests), round(canary_errors)
    n_s, k_s = round(stable_requests), round(stable_errors)
    k_c, k_s = min(max(k_c, 0), max(n_c, 0)), min(max(k_s, 0), max(n_s, 0))
    if n_c <= 0 or n_s <= 0:
        out.update(verdict='inconclusive', reason='no requests to the %s in the window' % ('canary' if n_c <= 0 else 'stable version'))
        return out
    stable_ratio = float(k_s) / n_s
    threshold = min(1.0, stable_ratio + float(tolerance))
    p_value = binomial_sf(k_c, n_c, threshold)
    out.update(canary_ratio=float(k_c) / n_c, stable_ratio=stable_ratio, threshold=threshold, p_value=p_value)
    if p_value < alpha:
        out.update(verdict='failed', reason='%d errors in %d canary requests (%.2f%%) is significantly above the stable %.2f%% + tolerance '
                                            '(threshold %.2f%%, p=%.2g < %.2g)'
                                            % (k_c, n_c, 100.0 * k_c / n_c, 100.0 * stable_ratio, 100.0 * threshold, p_value, alpha))
    else:
        out.update(verdict='passed', reason='%d errors in %d canary requests (%.2f%%) is not significantly above the stable %.2f%% + tolerance '
                                            '(threshold %.2f%%, p=%.2g >= %.2g)'
                                            % (k_c, n_c, 100.0 * k_c / n_c, 100.0 * stable_ratio, 100.0 * threshold, p_value, alpha))
    return out


def compare_latency(canary_ms, stable_ms, tolerance_pct, margin_ms):
    """Canary latency must be at most stable x (1 + tolerance_pct/100) + margin_ms."""
    out = {'canary_ms': canary_ms, 'stable_ms': stable_ms, 'threshold': None}
    if canary_ms is None or stable_ms is None or math.isnan(canary_ms) or math.isnan(stable_ms):
        out.update(verdict='inconclusive', reason='no latency data for the canary or the stable version')
        return out
    threshold = stable_ms * (1.0 + float(tolerance_pct) / 100.0) + float(margin_ms)
    out['threshold'] = threshold
    if canary_ms > threshold:
        out.update(verdict='failed', reason='canary latency %.1f ms is above the stable %.1f ms + %g%% + %g ms (%.1f ms)'
                                            % (canary_ms, stable_ms, tolerance_pct, margin_ms, threshold))
    else:
        out.update(verdict='passed', reason='canary latency %.1f ms is within the stable %.1f ms + %g%% + %g ms (%.1f ms)'
                                            % (canary_ms, stable_ms, tolerance_pct, margin_ms, threshold))
    return out
