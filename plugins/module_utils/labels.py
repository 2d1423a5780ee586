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
