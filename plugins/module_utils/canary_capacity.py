# -*- coding: utf-8 -*-
# Copyright: (c) 2026, machinenativeops platform team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Canary capacity: how many canary replicas a weight needs, and whether the weight may move yet.

With ``capacity.mode=proportional`` the canary Deployment gets ``ceil(stable replicas x weight / 100)`` replicas (at
least ``min_replicas``, at most ``max_replicas``) before its weight is raised, and the weight moves only once that many
canary replicas are ready. When a HorizontalPodAutoscaler scales the canary, its ``minReplicas`` is raised instead of
the Deployment's replicas (the HPA owns them). Plain functions over API objects (dicts); canary_step does the I/O.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

MODES = ('none', 'proportional')


class CapacityError(ValueError):
    """Invalid capacity options or workloads that cannot be scaled as asked."""


def options(raw):
    """Normalised capacity options from the module's ``capacity`` dict."""
    raw = dict(raw or {})
    mode = raw.get('mode') or 'none'
    if mode not in MODES:
        raise CapacityError('capacity.mode must be one of %s, got %r' % (', '.join(MODES), mode))
    minimum = raw.get('min_replicas')
    minimum = 1 if minimum is None else int(minimum)
    maximum = raw.get('max_replicas')
    maximum = None if maximum is None else int(maximum)
    if minimum < 1:
        raise CapacityError('capacity.min_replicas must be at least 1, got %d' % minimum)
    if maximum is not None and maximum < minimum:
        raise CapacityError('capacity.max_replicas (%d) is below capacity.min_replicas (%d)' % (maximum, minimum))
    return {'mode': mode, 'min_replicas': minimum, 'max_replicas': maximum}


def needed_replicas(stable_replicas, weight, minimum=1, maximum=None):
    """``ceil(stable_replicas * weight / 100)``, at least ``minimum``, at most ``maximum``; 0 for weight 0."""
    if weight <= 0:
        return 0
    stable_replicas = max(0, int(stable_replicas or 0))
    needed = -(-stable_replicas * int(weight) // 100)  # integer ceiling, no float rounding
    needed = max(needed, minimum)
    if maximum is not None:
        needed = min(needed, maximum)
    return needed


def _spec(obj):
    return (obj or {}).get('spec') or {}


def _status(obj):
    return (obj or {}).get('status') or {}


def _replicas(obj):
    value = _spec(obj).get('replicas')
    return 1 if value is None else int(value)  # the API's default for a Deployment


def _name(obj):
    meta = (obj or {}).get('metadata') or {}
    return '%s/%s' % (meta.get('namespace'), meta.get('name'))


def hpa_for(hpas, name, kind='Deployment'):
    """The HorizontalPodAutoscaler (dict) whose scaleTargetRef is ``kind``/``name``, or None."""
    for hpa in hpas or []:
        ref = _spec(hpa).get('scaleTargetRef') or {}
        if ref.get('kind') == kind and ref.get('name') == name:
            return hpa
    return None


def ready_replicas(deployment):
    """Replicas of the Deployment that run its current template and are ready (0 while a rollout is not observed)."""
    meta = (deployment or {}).get('metadata') or {}
    status = _status(deployment)
    if status.get('observedGeneration', 0) < meta.get('generation', 0):
        return 0
    return min(int(status.get('readyReplicas') or 0), int(status.get('updatedReplicas') or 0))


def plan(canary, stable, hpa, weight, opts):
    """What must happen before the canary weight becomes ``weight``.

    Returns a dict: ``action`` (``ready``: move the weight; ``scale``: patch the canary Deployment's replicas;
    ``raise_hpa``: patch the HPA's minReplicas; ``wait``: replicas are asked for, not ready yet), ``needed``,
    ``replicas`` (the canary's desired replicas now), ``ready``, ``stable_replicas``, ``hpa`` (name or None),
    ``patch`` (the body for scale/raise_hpa) and ``reason``.
    """
    if canary is None:
        raise CapacityError('capacity.mode=proportional: the canary Deployment does not exist')
    if stable is None:
        raise CapacityError('capacity.mode=proportional: the stable Deployment does not exist')
    stable_replicas = _replicas(stable)
    needed = needed_replicas(stable_replicas, weight, opts['min_replicas'], opts['max_replicas'])
    replicas = _replicas(canary)
    ready = ready_replicas(canary)
    out = {'needed': needed, 'replicas': replicas, 'ready': ready, 'stable_replicas': stable_replicas,
           'hpa': _name(hpa) if hpa else None, 'patch': None, 'weight': weight}
    what = '%d%% of the traffic needs %d canary replica(s) (stable has %d)' % (weight, needed, stable_replicas)
    if hpa is not None:
        hpa_min = int(_spec(hpa).get('minReplicas') or 1)
        hpa_max = int(_spec(hpa).get('maxReplicas') or hpa_min)
        if needed > hpa_max:
            raise CapacityError('%s, but HorizontalPodAutoscaler %s allows at most %d: raise its maxReplicas or cap '
                                'capacity.max_replicas' % (what, _name(hpa), hpa_max))
        if hpa_min < needed:
            out.update(action='raise_hpa', patch={'spec': {'minReplicas': needed}},
                       reason='%s: raising minReplicas of HorizontalPodAutoscaler %s from %d to %d; the weight moves once '
                              'they are ready' % (what, _name(hpa), hpa_min, needed))
            return out
    elif replicas < needed:
        out.update(action='scale', patch={'spec': {'replicas': needed}},
                   reason='%s: scaling Deployment %s from %d to %d replicas; the weight moves once they are ready' % (
                       what, _name(canary), replicas, needed))
        return out
    if ready < needed:
        out.update(action='wait', reason='%s: %d of them ready; the weight stays until they are' % (what, ready))
        return out
    out.update(action='ready', reason='%s: %d ready' % (what, ready))
    return out
