# -*- coding: utf-8 -*-
# Copyright: (c) 2026, machinenativeops platform team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Kubernetes label values: the limits the API server enforces and the shortening rules others use."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import re

LABEL_VALUE_MAX = 63
_LABEL_VALUE = re.compile(r'^(?:[A-Za-z0-9](?:[-A-Za-z0-9_.]*[A-Za-z0-9])?)?$')


def is_label_value(value):
    """Whether the API server accepts ``value`` as a label value (at most 63 characters, alphanumeric ends)."""
    return isinstance(value, str) and len(value) <= LABEL_VALUE_MAX and bool(_LABEL_VALUE.match(value))


def velero_label_value(name):
    """The label value Velero itself derives from an object name (``velero.io/backup-name`` and friends).

    Names of at most 63 characters are kept; longer ones become their first 57 characters followed by the
    first 6 hex characters of the SHA-256 of the whole name (Velero's ``label.GetValidName`` rule), so
    selectors built here find the objects Velero labelled, and the value always ends alphanumeric.
    """
    if len(name) <= LABEL_VALUE_MAX:
        return name
    digest = hashlib.sha256(name.encode('utf-8')).hexdigest()
    return name[:LABEL_VALUE_MAX - 6] + digest[:6]


def shorten_label_value(value):
    """``value`` made a valid label value: characters outside ``[A-Za-z0-9_.-]`` become ``-``, the ends are
    trimmed to alphanumerics, and over 63 characters it keeps 57 and appends 6 hex of its SHA-256."""
    text = re.sub(r'[^A-Za-z0-9_.-]', '-', value or '')
    text = re.sub(r'^[^A-Za-z0-9]+|[^A-Za-z0-9]+$', '', text)
    if len(text) > LABEL_VALUE_MAX:
        text = text[:LABEL_VALUE_MAX - 6] + hashlib.sha256(text.encode('utf-8')).hexdigest()[:6]
    return text


def image_label_value(image):
    """A label value naming the version of an image reference (for a ``version`` label).

    ``repo:1.2.3`` -> ``1.2.3``; ``repo@sha256:<hex>`` -> ``sha256-<first 12 hex>``;
    ``repo:1.2.3@sha256:<hex>`` -> ``1.2.3-<first 12 hex>``; no tag and no digest -> ``latest``
    (a registry port, ``host:5000/repo``, is not a tag). The result is always a valid label value
    (see ``shorten_label_value``); keep the full reference elsewhere (an annotation).
    """
    ref = str(image or '').strip()
    if not ref:
        raise ValueError('image reference is empty')
    name, _sep, digest = ref.partition('@')
    last = name.rsplit('/', 1)[-1]
    tag = last.rsplit(':', 1)[1] if ':' in last else ''
    short_digest = ''
    if digest:
        algorithm, _colon, hexpart = digest.partition(':')
        short_digest = hexpart[:12] if hexpart else algorithm[:12]
        if not tag:
            tag = '%s-%s' % (algorithm if hexpart else 'digest', short_digest)
            short_digest = ''
    value = '-'.join(part for part in (tag or 'latest', short_digest) if part)
    value = shorten_label_value(value)
    return value or 'latest'
