# -*- coding: utf-8 -*-
# Copyright: (c) 2026, machinenativeops platform team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters over module_utils/labels.py: ``image_label_value`` (a valid ``version`` label from an image
reference, tag or digest) and ``label_value`` (any text made a valid label value)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.errors import AnsibleFilterError
from ansible_collections.machinenativeops.platform.plugins.module_utils.labels import image_label_value, shorten_label_value


def _image_label_value(image):
    try:
        return image_label_value(image)
    except ValueError as exc:
        raise AnsibleFilterError('image_label_value: %s' % exc) from None


class FilterModule:
    """machinenativeops.platform label filters."""

    def filters(self):
        return {'image_label_value': _image_label_value, 'label_value': shorten_label_value}
