"""Data generation, training and evaluation of the anomaly models (see ml/MODEL_CARD.md).

The feature code lives in plugins/module_utils (the collection imports it as
``ansible_collections.machinenativeops.platform``); when ml/ runs from a checkout the staged
collection path (build/collections, created by ``make stage``) is put on sys.path.
"""

import os
import sys

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
try:  # pragma: no cover - depends on how Python was started
    import ansible_collections.machinenativeops.platform  # noqa: F401
except ImportError:  # pragma: no cover
    _staged = os.path.join(_ROOT, "build", "collections")
    if os.path.isdir(os.path.join(_staged, "ansible_collections", "machinenativeops", "platform")) and _staged not in sys.path:
        sys.path.insert(0, _staged)
