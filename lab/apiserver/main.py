"""``python -m lab apiserver``: run the API emulator in the foreground."""

from __future__ import annotations

import json
import signal
import sys
import threading
from pathlib import Path

from lab.apiserver import ApiServer, load_crds


def add_arguments(parser) -> None:
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080, help="plain HTTP port, no auth (0: any free port)")
    parser.add_argument("--tls-port", type=int, default=8443, help="HTTPS port with bearer tokens (-1: no HTTPS)")
    parser.add_argument("--dir", default=".lab/apiserver", help="where the CA, kubeconfig and apiserver.json are written")
    parser.add_argument("--token", help="admin bearer token for the HTTPS port (default: random)")
    parser.add_argument("--readonly-token", help="bearer token allowed only to read (default: random)")
    parser.add_argument("--kubeconfig", help="kubeconfig path to write (default: DIR/kubeconfig)")
    parser.add_argument("--load-crds", nargs="?", const="all", default=None,
                        help="load the lab's CRDs at start: 'all' or comma-separated names/groups/kinds")
    parser.add_argument("--verbose", action="store_true", help="log every request")


def run(args) -> int:
    directory = Path(args.dir).resolve()
    directory.mkdir(parents=True, exist_ok=True)
    api = ApiServer(host=args.host, port=args.port, tls_port=None if args.tls_port < 0 else args.tls_port, data_dir=directory,
                    token=args.token, readonly_token=args.readonly_token, verbose=args.verbose)
    api.start()
    kubeconfig = api.write_kubeconfig(args.kubeconfig or directory / "kubeconfig")
    if args.load_crds:
        names = None if args.load_crds == "all" else [n.strip() for n in args.load_crds.split(",") if n.strip()]
        loaded = load_crds(api.url, names)
        print(f"lab apiserver: loaded {len(loaded)} CRDs", flush=True)
    info = api.endpoints(kubeconfig)
    # written whole, then renamed: the service waits for the file and must never read it half-written
    tmp = directory / "apiserver.json.tmp"
    tmp.write_text(json.dumps(info, indent=2))
    tmp.replace(directory / "apiserver.json")
    print(f"lab apiserver: serving {api.url} and {api.https_url}; kubeconfig {kubeconfig}", flush=True)
    done = threading.Event()

    def _stop(signum, frame):
        done.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    done.wait()
    api.stop()
    return 0


if __name__ == "__main__":
    import argparse

    p = argparse.ArgumentParser()
    add_arguments(p)
    sys.exit(run(p.parse_args()))
