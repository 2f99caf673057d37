"""Command line: ``gwcore serve | check | demo | version``."""

from __future__ import annotations

import argparse
import logging
import sys

from gwcore import __version__
from gwcore.config import ConfigError, load


def _serve(args: argparse.Namespace) -> int:
    from gwcore import demo
    from gwcore.process.worker import serve

    if args.config is None:
        return demo.run()
    try:
        cfg = load(args.config)
    except ConfigError as e:
        print(f"gwcore: {e}", file=sys.stderr)
        return 1
    return serve(cfg)


def _check(args: argparse.Namespace) -> int:
    try:
        load(args.file)
    except ConfigError as e:
        print(e, file=sys.stderr)
        return 1
    print(f"{args.file}: ok")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from gwcore import demo

    return demo.run()


def _version(args: argparse.Namespace) -> int:
    print(f"gwcore {__version__}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``gwcore`` console script; returns the exit status."""
    ap = argparse.ArgumentParser(prog="gwcore", description="gwcore edge gateway")
    sub = ap.add_subparsers(dest="command", required=True)
    p = sub.add_parser("serve", help="serve a config (no config: the embedded demo)")
    p.add_argument("--config", "-c", help="YAML config file")
    p.set_defaults(func=_serve)
    p = sub.add_parser("check", help="validate a config file and exit 0 (ok) or 1")
    p.add_argument("file")
    p.set_defaults(func=_check)
    sub.add_parser("demo", help="sample origin + gateway on 127.0.0.1:8080").set_defaults(
        func=_demo)
    sub.add_parser("version", help="print the version").set_defaults(func=_version)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s gwcore[%(process)d] %(levelname)s %(message)s")
    try:
        return args.func(args)
    except KeyboardInterrupt:
        return 0
