# -*- coding: utf-8 -*-
# Copyright: (c) 2026, machinenativeops platform team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):

    # The descriptions of the attributes every module documents. A module using this fragment adds
    # only the support level, e.g.
    #   attributes:
    #     check_mode:
    #       support: full
    #     diff_mode:
    #       support: full
    DOCUMENTATION = r'''
options: {}
attributes:
  check_mode:
    description: Can run in check mode and return the changed status it predicts, without modifying the target.
  diff_mode:
    description: Returns details about what has changed (or would change in check mode) when run with C(--diff).
  platform:
    description: The target systems the module can be run against.
    support: full
    platforms: posix
'''

    # For modules that only read: check mode fully supported, no diff.
    INFO_MODULE = r'''
options: {}
attributes:
  check_mode:
    support: full
    details: The module never changes anything, so check mode runs it unchanged.
  diff_mode:
    support: N/A
    details: The module never changes anything.
'''
