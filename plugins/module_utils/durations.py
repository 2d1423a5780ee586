# -*- coding: utf-8 -*-
# Copyright: (c) 2026, machinenativeops platform team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one duration grammar of the collection (every module option that takes a duration uses it).

Accepted:

* a number of seconds: ``90``, ``1.5`` (int/float, or the same as text: ``"90"``, ``"0.5"``);
* one or more ``<number><unit>`` parts, largest unit first or in any order, optionally separated by
  spaces: ``500ms``, ``30s``, ``5m``, ``1h30m``, ``1h 30m``, ``720h0m0s`` (Go's form), ``1.5h``, ``7d``, ``2w``, ``1y``.
  Units: ``ns``, ``us`` (or ``µs``), ``ms``, ``s``, ``m``, ``h``, ``d`` (24h), ``w`` (7d), ``y`` (365d);
* a leading ``+``.

Rejected, with a message that names the option and shows examples: empty text, booleans, unknown
units, a number without a unit that is followed by more text (``1 h``), negative durations, NaN and
infinity, and zero where the caller asks for a positive duration.

``go_duration`` and ``promql_duration`` write a number of seconds back in the syntax that Velero
(Go ``time.Duration``) and Prometheus accept, for values that are passed on to those systems.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import math
import re

UNITS = {'ns': 1e-9, 'us': 1e-6, '\u00b5s': 1e-6, 'ms': 1e-3, 's': 1.0, 'm': 60.0, 'h': 3600.0,
         'd': 86400.0, 'w': 604800.0, 'y': 31536000.0}
EXAMPLES = '500ms, 30s, 5m, 1h30m, 7d or a number of seconds'

_NUMBER = r'(?:\d+(?:\.\d*)?|\.\d+)'
_PART = re.compile(r'\s*(%s)(ns|us|\u00b5s|ms|s|m|h|d|w|y)' % _NUMBER)
_PLAIN = re.compile(r'^%s$' % _NUMBER)
# Go's time.ParseDuration: the units it knows, no spaces, at least one part ("0" alone is valid too).
_GO_DURATION = re.compile(r'^[+-]?(?:0|(?:(?:\d+(?:\.\d*)?|\.\d+)(?:ns|us|\u00b5s|ms|s|m|h))+)$')


class DurationError(ValueError):
    """A value that is not a duration; ``str()`` names the option and says what is accepted."""


def _fail(name, value, why):
    raise DurationError('%s: invalid duration %r: %s (examples: %s)' % (name, value, why, EXAMPLES))


def parse_duration(value, name='duration', positive=False, allow_none=False):
    """Seconds (float) from a duration in the collection's grammar (see the module docstring).

    ``name`` is the option the value came from (it starts every error message). ``positive`` rejects
    zero. ``allow_none`` returns None for None or empty text instead of failing.
    Raises ``DurationError`` (a ``ValueError``).
    """
    if value is None or (isinstance(value, str) and not value.strip()):
        if allow_none:
            return None
        _fail(name, value, 'a duration is required')
    if isinstance(value, bool):
        _fail(name, value, 'a boolean is not a duration')
    if isinstance(value, (int, float)):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip()
        if text.startswith('-'):
            _fail(name, value, 'durations must not be negative')
        if text.startswith('+'):
            text = text[1:]
        if _PLAIN.match(text):
            seconds = float(text)
        else:
            pos, seconds = 0, 0.0
            while pos < len(text):
                match = _PART.match(text, pos)
                if match is None:
                    rest = text[pos:].strip()
                    why = 'unknown unit or stray text at %r' % rest if rest else 'trailing text'
                    _fail(name, value, why)
                seconds += float(match.group(1)) * UNITS[match.group(2)]
                pos = match.end()
            if pos == 0:
                _fail(name, value, 'no duration found')
    else:
        _fail(name, value, 'a %s is not a duration' % type(value).__name__)
    if math.isnan(seconds) or math.isinf(seconds):
        _fail(name, value, 'not a finite number')
    if seconds < 0:
        _fail(name, value, 'durations must not be negative')
    if positive and seconds == 0:
        _fail(name, value, 'the duration must be greater than zero')
    return seconds


def is_go_duration(text):
    """Whether ``text`` is valid for Go's ``time.ParseDuration`` (what Velero and cron ``@every`` read)."""
    return isinstance(text, str) and bool(_GO_DURATION.match(text))


def go_duration(seconds):
    """Whole seconds in the canonical form Go (and Velero) write, ``720h0m0s``."""
    seconds = round(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return '%dh%dm%ds' % (hours, minutes, secs)


def promql_duration(seconds):
    """A Prometheus range/duration literal for ``seconds``: ``5m``, ``90s``, ``1h30m``, ``500ms``."""
    millis = round(seconds * 1000)
    if millis <= 0:
        raise DurationError('a Prometheus duration must be greater than zero, got %r seconds' % (seconds,))
    parts = []
    for unit, size in (('d', 86400000), ('h', 3600000), ('m', 60000), ('s', 1000), ('ms', 1)):
        count, millis = divmod(millis, size)
        if count:
            parts.append('%d%s' % (count, unit))
    return ''.join(parts)
