"""``gwcore demo``: the embedded default — a sample origin in a child process with the
gateway in front of it on 127.0.0.1:8080."""

from __future__ import annotations

import subprocess
import sys
import time

from gwcore.config import Config, parse

ORIGIN_PORT = 9001
GATEWAY_PORT = 8080

DEFAULT_CONFIG = f"""\
workers: 1
listeners:
  - name: public
    address: 127.0.0.1:{GATEWAY_PORT}
    limits: {{max_head_bytes: 16KiB, max_headers: 100, max_body_bytes: 10MiB}}
    timeouts: {{header: 10s, idle: 60s}}
clusters:
  - name: sample
    endpoints: ["127.0.0.1:{ORIGIN_PORT}"]
    timeouts: {{connect: 1s, response: 15s}}
routes:
  - match: {{path_prefix: /}}
    cluster: sample
"""


def default_config() -> Config:
    """The demo's embedded config (a listener on :8080 in front of the sample origin)."""
    return parse(DEFAULT_CONFIG, "<embedded demo config>")


def start_origin(port: int = ORIGIN_PORT) -> subprocess.Popen[bytes]:
    """Start the sample origin in a child process and wait until it listens (RuntimeError)."""
    proc = subprocess.Popen([sys.executable, "-m", "gwcore.demo.origin", "--port", str(port)],
                            stdout=subprocess.PIPE)
    line = proc.stdout.readline() if proc.stdout else b""
    if not line.startswith(b"READY"):
        proc.kill()
        raise RuntimeError(f"sample origin did not start on port {port}")
    return proc


def banner() -> str:
    base = f"http://127.0.0.1:{GATEWAY_PORT}"
    return (
        f"gwcore demo: gateway on {base} → sample origin on 127.0.0.1:{ORIGIN_PORT}\n"
        f"  {base}/               index (JSON)\n"
        f"  {base}/api/items      a JSON collection\n"
        f"  {base}/api/items/3    one item\n"
        f"  {base}/video/segment0.ts   a 10 MiB video segment\n"
        f"try:  curl -i {base}/api/items\n"
        f"      curl -s -o /dev/null -w '%{{size_download}} bytes\\n' {base}/video/segment0.ts\n"
        "Ctrl-C stops both."
    )


def run() -> int:
    """Run the demo until Ctrl-C; returns the exit status."""
    from gwcore.process.worker import serve

    origin = start_origin()
    try:
        print(banner(), flush=True)
        return serve(default_config())
    finally:
        origin.terminate()
        try:
            origin.wait(5)
        except subprocess.TimeoutExpired:
            origin.kill()
        time.sleep(0)
