"""``python -m bench``: run every bench/*.py module's ``main()`` (or only those named)."""

from __future__ import annotations

import importlib
import pkgutil
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    names = argv or sorted(m.name for m in pkgutil.iter_modules([str(Path(__file__).parent)]) if not m.name.startswith("_"))
    status = 0
    for name in names:
        print(f"== bench.{name}", flush=True)
        result = importlib.import_module(f"bench.{name}").main()
        status = status or int(result or 0)
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
