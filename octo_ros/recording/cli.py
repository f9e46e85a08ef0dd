"""The recording subcommands of ``octo-ros``: review, export, repair.

``register(subparsers)`` adds them to an argparse subparsers object (``octo_ros/cli.py`` calls
it); ``python -m octo_ros.recording`` runs them on their own.
"""
from __future__ import annotations

import argparse
import json
import sys


def _cmd_repair(args) -> int:
    from octo_ros.recording.bag import is_complete, repair_bag

    rc = 0
    for bag in args.bags:
        if is_complete(bag) and not args.force:
            print(json.dumps({"bag": bag, "repaired": False, "reason": "complete already"}))
            continue
        report = repair_bag(bag, keep_original=args.keep_original)
        print(json.dumps({"bag": bag, "repaired": True, "messages": report.messages, "topics": report.topics,
                          "dropped_bytes": report.dropped_bytes}))
    return rc


def register(subparsers) -> None:
    from octo_ros.recording import export, review

    review.register(subparsers)
    export.register(subparsers)
    p = subparsers.add_parser("repair", help="make a bag whose recorder died readable again")
    p.add_argument("bags", nargs="+", metavar="BAG")
    p.add_argument("--keep-original", action="store_true", help="keep the torn .mcap as <name>.mcap.orig")
    p.add_argument("--force", action="store_true", help="rebuild even a complete bag")
    p.set_defaults(func=_cmd_repair)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="octo-ros", description="octo_ros recording tools")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
