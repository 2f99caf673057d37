"""``gwcore demo``: the embedded default — a sample origin in a child process with the
gateway in front of it on 127.0.0.1:8080.

The origin child is a fork of this process (multiprocessing's ``fork`` start method), not a
new interpreter, so it runs the very gwcore modules already imported here whatever the working
directory is. (A ``python -m gwcore.demo.origin`` child puts its working directory first on
``sys.path``: started from a clone's root, it imported the uncompiled source tree instead of
the installed package.)
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
import threading
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess

from gwcore.config import Config, parse

HOST = "127.0.0.1"
ORIGIN_PORT = 9001
GATEWAY_PORT = 8080
ORIGIN_START_TIMEOUT = 10.0     # seconds

CONFIG_TEMPLATE = """\
workers: 1
listeners:
  - name: public
    address: 127.0.0.1:{port}
    limits: {{max_head_bytes: 16KiB, max_headers: 100, max_body_bytes: 10MiB}}
    timeouts: {{header: 10s, idle: 60s}}
clusters:
  - name: sample
    endpoints: ["127.0.0.1:{origin_port}"]
    timeouts: {{connect: 1s, response: 15s}}
routes:
  - match: {{path_prefix: /}}
    cluster: sample
"""
DEFAULT_CONFIG = CONFIG_TEMPLATE.format(port=GATEWAY_PORT, origin_port=ORIGIN_PORT)


def default_config(port: int = GATEWAY_PORT, origin_port: int = ORIGIN_PORT) -> Config:
    """The demo's embedded config: a listener on 127.0.0.1:port in front of the sample origin
    on 127.0.0.1:origin_port."""
    return parse(CONFIG_TEMPLATE.format(port=port, origin_port=origin_port),
                 "<embedded demo config>")


def _origin_main(port: int, ready: Connection) -> None:
    """The origin child: serve until SIGTERM, or until the demo process is gone."""
    # Ctrl-C reaches the whole foreground process group; the parent stops this child itself
    # once the gateway has drained, so that no request in flight loses its origin.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    from gwcore.demo.origin import make_server

    try:
        server = make_server(port, HOST)
    except OSError as e:
        ready.send(f"sample origin: cannot listen on {HOST}:{port}: {e.strerror}")
        return
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    parent = multiprocessing.parent_process()
    if parent is not None:          # the parent killed outright: do not outlive it
        threading.Thread(target=lambda: (parent.join(), os.kill(os.getpid(), signal.SIGTERM)),
                         daemon=True).start()
    ready.send("READY")
    ready.close()
    try:
        server.serve_forever()
    finally:
        server.server_close()


def start_origin(port: int = ORIGIN_PORT) -> BaseProcess:
    """Fork the sample origin and wait until it listens (RuntimeError saying why not)."""
    ctx = multiprocessing.get_context("fork")
    ready_r, ready_w = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_origin_main, args=(port, ready_w), name="gwcore-demo-origin",
                       daemon=True)
    proc.start()
    ready_w.close()
    try:
        if ready_r.poll(ORIGIN_START_TIMEOUT):
            msg = ready_r.recv()
        else:
            msg = f"sample origin: not listening on port {port} after {ORIGIN_START_TIMEOUT}s"
    except EOFError:
        msg = f"sample origin: exited before listening on port {port}"
    finally:
        ready_r.close()
    if msg != "READY":
        stop_origin(proc)
        raise RuntimeError(msg)
    return proc


def stop_origin(proc: BaseProcess, timeout: float = 5.0) -> None:
    """SIGTERM the origin child, SIGKILL it if it is still there after timeout seconds."""
    if proc.is_alive():
        proc.terminate()
        proc.join(timeout)
    if proc.is_alive():
        proc.kill()
    proc.join()


def banner(port: int = GATEWAY_PORT, origin_port: int = ORIGIN_PORT) -> str:
    base = f"http://{HOST}:{port}"
    return (
        f"gwcore demo: gateway on {base} → sample origin on {HOST}:{origin_port}\n"
        f"  {base}/               index (JSON)\n"
        f"  {base}/api/items      a JSON collection\n"
        f"  {base}/api/items/3    one item\n"
        f"  {base}/video/segment0.ts   a 10 MiB video segment\n"
        f"try:  curl -i {base}/api/items\n"
        f"      curl -s -o /dev/null -w '%{{size_download}} bytes\\n' {base}/video/segment0.ts\n"
        "Ctrl-C stops both."
    )


def run(port: int = GATEWAY_PORT, origin_port: int = ORIGIN_PORT) -> int:
    """Run the demo until Ctrl-C (or SIGTERM); returns the exit status (1: a port is taken)."""
    from gwcore.process import worker

    cfg = default_config(port, origin_port)
    listener = cfg.listeners[0]
    try:
        origin = start_origin(origin_port)
    except RuntimeError as e:
        print(f"gwcore demo: {e}", file=sys.stderr)
        return 1
    try:
        try:        # bound after the fork, so that the origin child never holds this socket
            sock = worker.bind(listener)
        except OSError as e:
            print(f"gwcore demo: gateway: cannot listen on {listener.address}: {e.strerror}",
                  file=sys.stderr)
            return 1
        print(banner(port, origin_port), flush=True)
        return worker.serve(cfg, [[sock]])
    finally:
        stop_origin(origin)
