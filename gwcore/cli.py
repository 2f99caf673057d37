"""Command line: ``gwcore serve | reload | stop | check | demo | version``.

Only ``serve`` and ``demo`` import the worker (uvloop, the compiled proxy); ``version`` and
``check`` stay light (tests/integration/test_cli.py checks the modules they load).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Callable

from gwcore import __version__, demo, runtime
from gwcore.config import ConfigError
from gwcore.config import load as load_config


def _setup_logging(args: argparse.Namespace) -> None:
    """Log as the master and workers do: to stderr or ``--log-file``."""
    from gwcore.process.worker import setup_logging  # it keeps the path for SIGUSR1

    setup_logging(getattr(args, "log_file", None))


def _serve(args: argparse.Namespace) -> int:
    from gwcore.process import master

    _setup_logging(args)
    if args.config is None:
        return demo.run()
    return master.run(args.config, args.workers, args.pid_file)


def _signal(sig: signal.Signals) -> Callable[[argparse.Namespace], int]:
    def send(args: argparse.Namespace) -> int:
        try:
            with open(args.pid_file) as f:
                pid = int(f.read().strip())
            os.kill(pid, sig)
        except (OSError, ValueError) as e:
            print(f"gwcore: cannot signal the master in {args.pid_file}: {e}", file=sys.stderr)
            return 1
        return 0
    return send


def _port(text: str) -> int:
    """argparse type: a TCP port number, 1-65535."""
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise argparse.ArgumentTypeError(f"expected a port number 1-65535, got {text!r}")
    return int(text)


def _workers(text: str) -> int:
    """argparse type: a worker count, 1-1024 (as the config's ``workers``)."""
    if not text.isdigit() or not 1 <= int(text) <= 1024:
        raise argparse.ArgumentTypeError(f"expected a number 1-1024, got {text!r}")
    return int(text)


def _check(args: argparse.Namespace) -> int:
    try:
        runtime.load(args.file)         # parsed, and the files it names read (JWT keys)
    except ConfigError as e:
        print(e, file=sys.stderr)
        return 1
    print(f"{args.file}: ok")
    return 0


def _demo(args: argparse.Namespace) -> int:
    _setup_logging(args)
    return demo.run(args.port, args.origin_port)


def _purge(args: argparse.Namespace) -> int:
    """``gwcore purge URL [--prefix] --config F``: POST /cache/purge to the config's admin
    listener (with its token); prints the answer; exit 0 on 200, else 1."""
    import urllib.error
    import urllib.parse
    import urllib.request

    try:
        cfg = load_config(args.config)
    except ConfigError as e:
        print(e, file=sys.stderr)
        return 1
    if cfg.admin is None:
        print(f"gwcore: {args.config}: admin: no admin listener to purge through",
              file=sys.stderr)
        return 1
    host = cfg.admin.host
    host = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    query = urllib.parse.urlencode({"prefix" if args.prefix else "url": args.url})
    req = urllib.request.Request(
        f"http://{'[' + host + ']' if ':' in host else host}:{cfg.admin.port}/cache/purge?{query}",
        method="POST",
        headers={"Authorization": f"Bearer {cfg.admin.token}"} if cfg.admin.token else {})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            print(resp.read().decode().strip())
            return 0
    except urllib.error.HTTPError as e:
        print(f"gwcore: purge: {e.code} {e.read().decode().strip()}", file=sys.stderr)
    except OSError as e:
        print(f"gwcore: purge: {e}", file=sys.stderr)
    return 1


def _version(args: argparse.Namespace) -> int:
    print(f"gwcore {__version__}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``gwcore`` console script; returns the exit status."""
    ap = argparse.ArgumentParser(prog="gwcore", description="gwcore edge gateway")
    sub = ap.add_subparsers(dest="command", required=True)
    p = sub.add_parser("serve", help="serve a config (no config: the embedded demo)")
    p.add_argument("--config", "-c", help="YAML config file")
    p.add_argument("--workers", type=_workers, help="worker processes (overrides the config)")
    p.add_argument("--pid-file", help="write the master's pid here")
    p.add_argument("--log-file", help="log here instead of stderr (reopened on SIGUSR1)")
    p.set_defaults(func=_serve)
    for name, sig, what in (("reload", signal.SIGHUP, "reload the config (SIGHUP)"),
                            ("stop", signal.SIGTERM, "drain and stop (SIGTERM)")):
        p = sub.add_parser(name, help=f"{what} of the master in --pid-file")
        p.add_argument("--pid-file", required=True)
        p.set_defaults(func=_signal(sig))
    p = sub.add_parser("check", help="validate a config file and exit 0 (ok) or 1")
    p.add_argument("file")
    p.set_defaults(func=_check)
    p = sub.add_parser("demo", help="sample origin + gateway on 127.0.0.1:8080")
    p.add_argument("--port", type=_port, default=demo.GATEWAY_PORT,
                   help=f"gateway port on 127.0.0.1 (default {demo.GATEWAY_PORT})")
    p.add_argument("--origin-port", type=_port, default=demo.ORIGIN_PORT,
                   help=f"sample origin port on 127.0.0.1 (default {demo.ORIGIN_PORT})")
    p.set_defaults(func=_demo)
    p = sub.add_parser("purge", help="remove cached responses of a URL from every worker")
    p.add_argument("url", help="absolute URL (http://host/path?query), or a prefix of them")
    p.add_argument("--prefix", action="store_true", help="every URL starting with it")
    p.add_argument("--config", "-c", required=True, help="the running config (its admin:)")
    p.set_defaults(func=_purge)
    sub.add_parser("version", help="print the version").set_defaults(func=_version)
    args = ap.parse_args(argv)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        return 0
