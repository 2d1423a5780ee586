# -*- coding: utf-8 -*-
# Copyright: (c) 2026, machinenativeops platform team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The canary lease: one job at a time drives the canary of a VirtualService.

A job that passes ``lease.holder`` (an AWX job id, a pipeline run) takes a lease stored in the
``canary.machinenativeops.io/lease`` annotation of the VirtualService, in the same resourceVersion-guarded patch as the
weights, and renews it while it runs. Another holder is refused until the lease expires (a crashed or cancelled job
does not block the canary for ever). A call that ends the canary (promoted, rolled back, failed) releases it.
A rollback is never refused: stopping a bad canary must not wait for another job's lease.
Plain functions; canary_step reads and writes the annotation.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json

from ansible_collections.machinenativeops.platform.plugins.module_utils.canary import format_time, parse_time

LEASE_ANNOTATION = 'canary.machinenativeops.io/lease'
# the actions that move traffic and therefore need the lease (rollback is always allowed, status and analyze only read)
LEASED_ACTIONS = ('step', 'set_weight', 'promote', 'lease')


class LeaseError(ValueError):
    """Another job holds the lease (or the stored lease is unreadable)."""


def load(vs):
    """The stored lease ``{holder, acquired_at, renewed_at, expires_at}`` (times as unix seconds), or None."""
    meta = (vs or {}).get('metadata') or {}
    raw = (meta.get('annotations') or {}).get(LEASE_ANNOTATION)
    if not raw:
        return None
    try:
        lease = json.loads(raw)
        if not isinstance(lease, dict) or not lease.get('holder'):
            raise ValueError('no holder')
        return dict(lease, expires_at=parse_time(lease.get('expires_at')), renewed_at=parse_time(lease.get('renewed_at')),
                    acquired_at=parse_time(lease.get('acquired_at')))
    except (ValueError, TypeError) as exc:
        raise LeaseError('the %s annotation on VirtualService %s/%s is not a canary lease (%s); fix or remove it' % (
            LEASE_ANNOTATION, meta.get('namespace'), meta.get('name'), exc)) from None


def held_by_other(lease, holder, now):
    """True when ``lease`` is held by someone other than ``holder`` and has not expired at ``now``."""
    return bool(lease) and lease['holder'] != holder and (lease.get('expires_at') or 0) > now


def check(lease, holder, action, now, where):
    """Raise LeaseError when ``action`` by ``holder`` must be refused; return a note (or None) otherwise."""
    if action not in LEASED_ACTIONS or not lease or lease['holder'] == holder:
        return None
    if held_by_other(lease, holder, now):
        raise LeaseError('%s is being driven by %s (lease renewed %s, expires %s): two jobs must not run one canary at once; '
                         'wait until it finishes or its lease expires, or roll back (a rollback is always allowed)' % (
                             where, lease['holder'], format_time(lease.get('renewed_at')), format_time(lease['expires_at'])))
    takeover = '; %s takes it over' % holder if holder else ''
    return 'the lease of %s expired at %s%s' % (lease['holder'], format_time(lease['expires_at']), takeover)


def wanted(lease, holder, duration, now, finished):
    """The annotation value to write, None to write nothing, or ``''`` to remove the annotation (merge patch null).

    Held by ``holder`` and valid for at least half of ``duration`` more: nothing to write (no change each call).
    ``finished``: the call ends the canary, so the lease of ``holder`` is released.
    """
    mine = bool(lease) and lease['holder'] == holder
    if finished:
        return '' if mine else None
    if mine and (lease.get('expires_at') or 0) - now >= duration / 2.0:
        return None
    acquired = lease.get('acquired_at') if mine else now
    return {'holder': holder, 'acquired_at': acquired, 'renewed_at': now, 'expires_at': now + duration}


def serialize(value):
    if value == '':
        return None  # merge patch: remove the annotation
    return json.dumps({'holder': value['holder'], 'acquired_at': format_time(value['acquired_at']),
                       'renewed_at': format_time(value['renewed_at']), 'expires_at': format_time(value['expires_at'])},
                      sort_keys=True, separators=(',', ':'))
