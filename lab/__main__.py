"""Command line of the lab: ``python -m lab {up,down,status,fault,traffic,apiserver,...}``."""

from __future__ import annotations

import argparse
import importlib
import json
import sys

from lab import orchestrator
from lab.services import LabError

# Subcommands owned by other parts of the lab: "name": ("module", "help").
# Each module defines add_arguments(parser) and run(args) -> int.
EXTERNAL = {
    "build": ("lab.kube.build", "build the real control plane from its Go modules (cached)"),
    "fault": ("lab.faults", "inject, clear and list faults"),
    "traffic": ("lab.traffic", "set per-version Istio traffic behaviour"),
    "apiserver": ("lab.apiserver.main", "run the API emulator in the foreground"),
    "controllers": ("lab.controllers.main", "run the simulated controllers in the foreground"),
    "exporters": ("lab.exporters.main", "run the metrics exporters in the foreground"),
    "history": ("lab.history", "preload metric history into a running lab"),
}


def _names(value: str | None) -> set[str] | None:
    return {v.strip() for v in value.split(",") if v.strip()} if value else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lab", description="The machinenativeops.platform local lab.")
    sub = parser.add_subparsers(dest="command", required=True)
    p_up = sub.add_parser("up", help="start the lab in the background")
    p_up.add_argument("--dir", default=".lab")
    p_up.add_argument("--only", help="comma-separated service names to start (default: all)")
    p_up.add_argument("--without", help="comma-separated service names not to start")
    p_down = sub.add_parser("down", help="stop everything the lab started")
    p_down.add_argument("--dir", default=".lab")
    p_status = sub.add_parser("status", help="which lab services run")
    p_status.add_argument("--dir", default=".lab")
    external = {}
    for name, (module_name, help_text) in EXTERNAL.items():
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name and module_name.startswith(exc.name):
                continue
            raise
        module.add_arguments(sub.add_parser(name, help=help_text))
        external[name] = module
    args = parser.parse_args(argv)
    try:
        if args.command == "up":
            endpoints = orchestrator.up(args.dir, _names(args.only), _names(args.without))
            print(json.dumps(endpoints, indent=2, sort_keys=True))
            return 0
        if args.command == "down":
            stopped = orchestrator.down(args.dir)
            print("stopped: " + (", ".join(stopped) if stopped else "nothing was running"))
            return 0
        if args.command == "status":
            for name, state in orchestrator.status(args.dir).items():
                print(f"{name:14} {state}")
            return 0
        return int(external[args.command].run(args) or 0)
    except LabError as exc:
        print(f"lab: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
