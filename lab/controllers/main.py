"""``python -m lab controllers``: run the simulated controllers in the foreground."""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
from pathlib import Path

from lab.controllers.admin import make_server, serve_in_thread
from lab.controllers.clock import Clock
from lab.controllers.core import CONTROLLERS, Controllers, enabled_from_env


def add_arguments(parser) -> None:
    parser.add_argument("--kubeconfig", required=True, help="kubeconfig of the API emulator")
    parser.add_argument("--context", help="kubeconfig context (default: current)")
    parser.add_argument("--s3", help="JSON file or JSON string with the s3 endpoints (endpoint_url, access_key, secret_key, region, bucket)")
    parser.add_argument("--admin-host", default="127.0.0.1")
    parser.add_argument("--admin-port", type=int, default=0, help="admin API port (0: any free port)")
    parser.add_argument("--admin-file", help="write {\"admin_url\": ...} here once serving")
    parser.add_argument("--enable", help=f"comma-separated controllers (default: all of {','.join(CONTROLLERS)}; env LAB_CONTROLLERS)")
    parser.add_argument("--disable", help="comma-separated controllers to switch off (env LAB_CONTROLLERS_DISABLE)")
    parser.add_argument("--clock", choices=["real", "manual"], default=os.environ.get("LAB_CLOCK", "real"))
    parser.add_argument("--now", help="start time of a manual clock (RFC3339)")
    parser.add_argument("--ready-delay", type=float, default=float(os.environ.get("LAB_READY_DELAY", "1.0")),
                        help="clock seconds until a started container is ready (default 1)")
    parser.add_argument("--nodes", type=int, default=int(os.environ.get("LAB_NODES", "3")), help="Nodes to create at start")
    parser.add_argument("--no-watch", action="store_true", help="poll by listing instead of watching")
    parser.add_argument("--default-bsl", action="store_true", help="create BackupStorageLocation velero/default for the s3 bucket")
    parser.add_argument("--verbose", action="store_true")


def _load_s3(value: str | None) -> dict:
    if not value:
        return {}
    if value.lstrip().startswith("{"):
        return json.loads(value)
    return json.loads(Path(value).read_text())


def run(args) -> int:
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    enabled = [n.strip() for n in args.enable.split(",") if n.strip()] if args.enable else enabled_from_env()
    if args.disable:
        enabled = [n for n in enabled if n not in {d.strip() for d in args.disable.split(",")}]
    clock = Clock.manual(args.now) if args.clock == "manual" else Clock()
    ctl = Controllers(args.kubeconfig, clock, enabled, s3=_load_s3(args.s3), ready_delay=args.ready_delay, node_count=args.nodes,
                      context=args.context, watch=not args.no_watch, default_bsl=args.default_bsl)
    ctl.start()
    server = make_server(ctl, args.admin_host, args.admin_port)
    serve_in_thread(server)
    url = f"http://{args.admin_host}:{server.server_address[1]}"
    if args.admin_file:
        tmp = Path(args.admin_file).with_suffix(".tmp")
        tmp.write_text(json.dumps({"admin_url": url}))
        tmp.replace(args.admin_file)
    print(f"lab controllers: {', '.join(sorted(ctl.enabled))}; admin API {url}", flush=True)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    done.wait()
    server.shutdown()
    ctl.stop()
    return 0
