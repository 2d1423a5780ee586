# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Let ``ansible-test sanity`` create its per-test virtual environments without downloading get-pip.

ansible-test creates each sanity virtual environment with ``python -m venv --without-pip`` and then
bootstraps pip by running a ``get-pip.py`` script that it downloads from a host on the internet unless
a copy is already cached at ``~/.ansible/test/cache/get_pip_<version>.py``.  This machine (and CI)
can only reach package registries, so this tool writes a small replacement script to that cache
path.  The replacement installs the pip bundled with the interpreter (``ensurepip``), then upgrades it
to the exact version ansible-test asked for through the ordinary package index configured for pip.
All later requirement installs (pylint, voluptuous, ...) are plain ``pip install`` calls made by
ansible-test itself.

Usage: ``python tools/ansible_test_offline_bootstrap.py [--cache-dir DIR]``
(run it with the interpreter of the virtualenv that has ansible-core installed).
"""

import argparse
import importlib
import os
import sys

BOOTSTRAP = '''\
# Written by machinenativeops.platform tools/ansible_test_offline_bootstrap.py: a local stand-in for get-pip.py.
# Called as: python get_pip.py [pip options] pip==X [--no-setuptools] [--no-wheel]
import subprocess
import sys

args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
subprocess.run([sys.executable, "-m", "ensurepip", "--default-pip"], check=True, stdout=subprocess.DEVNULL)
subprocess.run([sys.executable, "-m", "pip", "install", "--upgrade", *args], check=True)
'''


def pip_versions():
    """Return the pip versions the installed ansible-test bootstraps (one per supported Python)."""
    reqs = importlib.import_module('ansible_test._internal.python_requirements')
    config = importlib.import_module('ansible_test._internal.host_configs')
    versions = set()
    for version in ('3.8', '3.9', '3.10', '3.11', '3.12', '3.13', '3.14'):
        python = config.NativePythonConfig(version=version, path=sys.executable)
        versions.add(reqs.get_venv_packages(python)['pip'])
    return sorted(versions)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--cache-dir', default=os.path.expanduser('~/.ansible/test/cache'))
    opts = parser.parse_args()
    os.makedirs(opts.cache_dir, exist_ok=True)
    for version in pip_versions():
        path = os.path.join(opts.cache_dir, f"get_pip_{version.replace('.', '_')}.py")
        with open(path, 'w', encoding='utf-8') as handle:
            handle.write(BOOTSTRAP)
        print(f'wrote {path}')


if __name__ == '__main__':
    main()
