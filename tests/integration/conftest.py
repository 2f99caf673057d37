"""Fixtures for the integration tests: real processes on 127.0.0.1, always stopped.

Processes
  origin            session: one origin process (tests/integration/origin.py); tests compare
                    its /stats counters before and after, never absolute values.
  gw                the default gateway (session process, restarted if a test crashed it; a
                    test during which it died fails with its stderr). Limits: head 16KiB,
                    100 fields, target 8KiB, body 2GiB; timeouts: header 10s, idle 60s,
                    connect 1s, response 15s.
  strict_gw         the same with body 1KiB, header 1s, idle 2s, response 1s.
  gateway_factory   function: ``gateway_factory(limits=..., timeouts=..., cluster_timeouts=...,
                    clusters=..., routes=...)`` starts a gateway with that config; stopped at
                    the end of the test.
Every process runs in its own session so that teardown can signal its whole group by id; it is
sent SIGTERM, then SIGKILL after a grace period. When a test fails, the log tail of every
process it used (session ones included) is appended to the failure report.
A gateway counts as started when the master has told systemd READY=1 (through a NOTIFY_SOCKET
the test listens on: every worker serves and has its first JWKS fetch behind it), not when its
port accepts (the master binds before any worker runs).

Waiting
  Tests wait on conditions with a deadline, never on a fixed sleep: ``wait_for(predicate,
  timeout, what)`` polls until the predicate is truthy and returns its value (AssertionError
  naming ``what`` otherwise); ``proc.wait_for_log(text)`` waits for a log line of a process;
  ``tcp_state(local, remote)`` reads a loopback connection's TCP state from /proc/net/tcp
  (e.g. whether the gateway has closed its end of a connection an origin closed);
  ``held_connections(gw.pid, origin.port)`` counts the sockets one gateway holds to an origin.

Clients
  raw               ``raw(port)`` opens a RawConn: a blocking socket with an h11 response
                    parser (an independent oracle for what the gateway sends).
  req               ``req(method, target, headers, body, version)`` -> request bytes.
  pattern, chunk_byte   the origin's body generators, to check bytes received.
  rss_sampler       ``with rss_sampler(pid) as rss:`` samples VmRSS of pid and its
                    descendants every 50 ms and reads VmHWM at the end; rss.baseline,
                    rss.peak, rss.growth in bytes (see RssSampler).
  Default routing: Host ``dead.test`` -> a cluster whose only endpoint has nothing listening;
  Host ``mixed.test`` -> [dead endpoint, origin]; anything else -> origin.

Name resolution
  ``start_gateway(..., hosts=path)`` runs the gateway with a resolver that reads ``path`` (lines
  ``ADDRESS NAME...``, as /etc/hosts) on every lookup, before the system's: a test rewrites the
  file to move a name to another address (DNS re-resolution) without touching the system.
"""

from __future__ import annotations

import http.client
import importlib.util
import json
import os
import selectors
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import h11
import pytest
import yaml

if TYPE_CHECKING:
    from typing import Self

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
PYTHON = sys.executable
HOST = "127.0.0.1"

_spec = importlib.util.spec_from_file_location("gw_integration_origin", HERE / "origin.py")
origin_mod = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(origin_mod)


def wait_for(predicate: Callable[[], object], timeout: float = 10.0, what: str = "condition",
             period: float = 0.02) -> object:
    """Poll ``predicate`` until it returns something truthy and return that; AssertionError
    naming ``what`` after ``timeout`` seconds. The deadline only bounds a wait for something
    that should happen: a loaded machine makes it come later, never makes a test pass."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(period)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (nothing listens on it)."""
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


# --------------------------------------------------------------------------- processes


class Proc:
    """A child process started in its own session, stderr (and stdout) to a log file."""

    def __init__(self, name: str, argv: list[str], log_path: Path,
                 env: dict[str, str] | None = None, **popen_kw) -> None:
        self.name = name
        self.log_path = log_path
        env = dict(os.environ, PYTHONUNBUFFERED="1", **(env or {}))
        with open(log_path, "wb") as log:
            self.popen = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stderr=log, start_new_session=True,
                cwd=REPO, env=env, **{"stdout": log, **popen_kw},
            )
        self.pid = self.popen.pid
        self.returncode: int | None = None
        self.stopped_at: float | None = None  # time.time() of stop(), for failure reports
        _WATCHED.append(self)

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log(self) -> str:
        """The whole log so far ("" before it exists)."""
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def wait_for_log(self, text: str, count: int = 1, timeout: float = 10.0) -> str:
        """Wait until ``text`` occurs ``count`` times in the log; returns the log. Fails at
        once if the process exited meanwhile."""
        def seen() -> str | None:
            log = self.log()
            if log.count(text) >= count:
                return log
            if not self.alive():
                raise AssertionError(f"{self.name} exited ({self.popen.returncode}) before "
                                     f"logging {text!r}:\n{self.log_tail()}")
            return None
        return wait_for(seen, timeout, f"{text!r} x{count} in the log of {self.name}")

    def log_tail(self, limit: int = 6000) -> str:
        try:
            data = self.log_path.read_bytes()
        except OSError:
            return ""
        return data[-limit:].decode("utf-8", "replace")

    def stop(self, grace: float = 5.0) -> int | None:
        """SIGTERM, wait ``grace`` seconds, then SIGKILL the process group. Returns exit code."""
        self.stopped_at = time.time()
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(grace)
            except subprocess.TimeoutExpired:
                pass
        self.returncode = self.popen.poll()
        try:  # workers or helpers the process left behind in its group
            os.killpg(self.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        if self.returncode is None:
            self.popen.wait(5)
            self.returncode = self.popen.returncode
        if self.popen.stdout:
            self.popen.stdout.close()
        return self.returncode


_WATCHED: list[Proc] = []


def wait_for_port(port: int, proc: Proc, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not proc.alive():
            raise RuntimeError(
                f"{proc.name} exited with {proc.popen.returncode} before listening on {port}:\n"
                f"{proc.log_tail()}"
            )
        try:
            with socket.create_connection((HOST, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{proc.name} not listening on {port} after {timeout}s:\n{proc.log_tail()}")


def tree_pids(pid: int) -> list[int]:
    """pid and all its descendants (through /proc/<pid>/task/*/children)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as f:
                    todo.extend(int(c) for c in f.read().split())
        except OSError:
            pass
    return out


TCP_STATES = {1: "ESTABLISHED", 2: "SYN_SENT", 3: "SYN_RECV", 4: "FIN_WAIT1", 5: "FIN_WAIT2",
              6: "TIME_WAIT", 7: "CLOSE", 8: "CLOSE_WAIT", 9: "LAST_ACK", 10: "LISTEN",
              11: "CLOSING"}


def tcp_state(local: tuple[str, int], remote: tuple[str, int]) -> str | None:
    """The state of the IPv4 TCP socket local -> remote as the kernel has it ("ESTABLISHED",
    "FIN_WAIT2", "TIME_WAIT"...; None when there is none). E.g. an origin's end of a
    connection it closed stays FIN_WAIT2 until the gateway closes its end too."""
    def hex_addr(addr: tuple[str, int]) -> str:
        return f"{socket.inet_aton(addr[0])[::-1].hex().upper()}:{addr[1]:04X}"
    want = (hex_addr(local), hex_addr(remote))
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            cols = line.split()
            if (cols[1], cols[2]) == want:
                return TCP_STATES.get(int(cols[3], 16), cols[3])
    return None


def held_connections(pid: int, port: int, host: str = HOST) -> int:
    """TCP sockets that the process tree of pid holds to host:port, in any state (an origin's
    count of open connections mixes every gateway of the session; this is one gateway's)."""
    inodes = set()
    for p in tree_pids(pid):
        try:
            for fd in os.listdir(f"/proc/{p}/fd"):
                link = os.readlink(f"/proc/{p}/fd/{fd}")
                if link.startswith("socket:["):
                    inodes.add(link[8:-1])
        except OSError:
            pass
    remote = f"{socket.inet_aton(host)[::-1].hex().upper()}:{port:04X}"
    with open("/proc/net/tcp") as f:
        next(f)
        return sum(1 for line in f if (cols := line.split())[2] == remote and cols[9] in inodes)


class Notify:
    """A NOTIFY_SOCKET (sd_notify(3)) in the abstract namespace: what a process started with
    ``env={"NOTIFY_SOCKET": notify.address}`` tells systemd arrives here, in order."""

    _seq = 0

    def __init__(self) -> None:
        Notify._seq += 1
        name = f"gwcore-test-{os.getpid()}-{Notify._seq}-{time.monotonic_ns()}"
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind("\0" + name)
        self.address = "@" + name
        self.messages: list[bytes] = []

    def poll(self) -> list[bytes]:
        """Every message received so far (without waiting)."""
        self.sock.setblocking(False)
        try:
            while True:
                self.messages.append(self.sock.recv(4096))
        except BlockingIOError:
            pass
        return self.messages

    def wait(self, message: bytes, proc: Proc, count: int = 1, timeout: float = 20.0) -> None:
        """Wait until ``message`` was received ``count`` times (in all); fails early if
        ``proc`` exits."""
        deadline = time.monotonic() + timeout
        while self.poll().count(message) < count:
            if not proc.alive():
                raise RuntimeError(f"{proc.name} exited with {proc.popen.returncode} before "
                                   f"{message!r}:\n{proc.log_tail()}")
            left = deadline - time.monotonic()
            if left <= 0:
                raise RuntimeError(f"{proc.name}: no {message!r} after {timeout}s (got "
                                   f"{self.messages}):\n{proc.log_tail()}")
            self.sock.settimeout(min(left, 0.2))
            try:
                self.messages.append(self.sock.recv(4096))
            except TimeoutError:
                pass

    def close(self) -> None:
        self.sock.close()


def mem_status(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) of one process in bytes; (0, 0) if it is gone."""
    rss = hwm = 0
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1]) * 1024
                elif line.startswith("VmHWM:"):
                    hwm = int(line.split()[1]) * 1024
    except OSError:
        pass
    return rss, hwm


def rss_bytes(pid: int) -> int:
    """Sum of VmRSS of pid and its descendants, in bytes."""
    return sum(mem_status(p)[0] for p in tree_pids(pid))


class RssSampler(threading.Thread):
    """Memory of a process tree during a transfer.

    ``baseline``: the tree's summed VmRSS at the start. ``peak``: an upper bound of the tree's
    RSS during the transfer: per process, its VmHWM at the end when that rose during the
    transfer (so spikes between samples count), else the largest VmRSS sampled every
    ``period`` seconds; summed over the processes (a sum of maxima, never an underestimate).
    """

    def __init__(self, pid: int, period: float = 0.05) -> None:
        super().__init__(daemon=True)
        self.pid, self.period = pid, period
        self._before = {p: mem_status(p) for p in tree_pids(pid)}
        self.baseline = sum(rss for rss, _ in self._before.values())
        self._max_rss = {p: rss for p, (rss, _) in self._before.items()}
        self.sampled_peak = self.baseline
        self.peak = self.baseline
        self.samples = 0
        self._halt = threading.Event()

    def _sample(self) -> None:
        total = 0
        for p in tree_pids(self.pid):
            rss = mem_status(p)[0]
            self._max_rss[p] = max(self._max_rss.get(p, 0), rss)
            total += rss
        self.sampled_peak = max(self.sampled_peak, total)
        self.samples += 1

    def run(self) -> None:
        while not self._halt.is_set():
            self._sample()
            self._halt.wait(self.period)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._halt.set()
        self.join()
        self._sample()
        bound = 0
        for p, max_rss in self._max_rss.items():
            hwm_after = mem_status(p)[1]
            hwm_before = self._before.get(p, (0, 0))[1]
            bound += hwm_after if hwm_after > hwm_before else max_rss
        self.peak = max(self.sampled_peak, bound)

    @property
    def growth(self) -> int:
        return self.peak - self.baseline

    def summary(self) -> str:
        mib = 1 << 20
        return (f"RSS {self.baseline / mib:.1f} MiB -> peak {self.peak / mib:.1f} MiB "
                f"(sampled {self.sampled_peak / mib:.1f} MiB, {self.samples} samples)")


@dataclass
class Origin:
    proc: Proc
    port: int
    host: str = HOST

    def _control(self, target: str) -> Resp:
        conn = RawConn(self.port, host=self.host)
        try:
            conn.send(f"GET {target} HTTP/1.1\r\nHost: origin\r\nConnection: close\r\n\r\n"
                      .encode())
            return conn.read_response()
        finally:
            conn.close()

    def stats(self, targets: bool = False) -> dict:
        """The origin's /stats, asked on a fresh direct connection (not counted by it)."""
        return json.loads(self._control(f"/stats{'?targets=1' if targets else ''}").body)

    def served(self, prefix: str) -> int:
        """How many of the last 2000 requests had a target starting with ``prefix``."""
        return sum(1 for t in self.stats(targets=True)["targets"] if t.startswith(prefix))

    def release(self, key: str) -> None:
        """Let the requests held by ``/hold?key=KEY`` (now or later) be answered."""
        self._control(f"/release?key={key}")


def start_origin(tmp_dir: Path, name: str = "origin", host: str = HOST, port: int = 0,
                 args: Sequence[str] = (), script: str = "origin.py") -> Origin:
    """An origin process on host:port (port 0: a free one), once it listens. ``args``: more
    of origin.py's options (``--tls-cert C --tls-key K``: it serves TLS). ``script``: another
    origin of this directory that takes ``--host``/``--port`` and prints ``READY <port>`` the
    same way (sse_origin.py, model_origin.py)."""
    proc = Proc(name, [PYTHON, str(HERE / script), "--host", host, "--port", str(port),
                       *args],
                tmp_dir / f"{name}.log", stdout=subprocess.PIPE)
    sel = selectors.DefaultSelector()
    sel.register(proc.popen.stdout, selectors.EVENT_READ)
    line = b""
    deadline = time.monotonic() + 15
    while not line.endswith(b"\n") and time.monotonic() < deadline:
        if sel.select(timeout=0.2):
            data = os.read(proc.popen.stdout.fileno(), 256)
            if not data:
                break
            line += data
    sel.close()
    if not line.startswith(b"READY "):
        proc.stop()
        raise RuntimeError(f"origin did not start (got {line!r}):\n{proc.log_tail()}")
    return Origin(proc, int(line.split()[1]), host)


@dataclass
class Gateway:
    proc: Proc
    port: int
    config: dict
    config_path: Path
    notify: Notify | None = None      # what the master told systemd (READY=1, RELOADING=1...)

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def rss(self) -> int:
        return rss_bytes(self.pid)


def gateway_config(
    port: int,
    origin_port: int,
    dead_port: int,
    *,
    limits: dict | None = None,
    timeouts: dict | None = None,
    cluster_timeouts: dict | None = None,
    pool: dict | None = None,
    clusters: list[dict] | None = None,
    routes: list[dict] | None = None,
) -> dict:
    """The gateway YAML (as a dict) of CONFIG.md, with the defaults of the default gateway."""
    ctimeouts = {"connect": "1s", "response": "15s", **(cluster_timeouts or {})}
    cpool = {"max_idle": 64, "idle_timeout": "60s", **(pool or {})}
    live, dead = f"{HOST}:{origin_port}", f"{HOST}:{dead_port}"
    if clusters is None:
        clusters = [
            {"name": "origin", "endpoints": [live]},
            {"name": "dead", "endpoints": [dead]},
            {"name": "mixed", "endpoints": [dead, live]},
        ]
    for c in clusters:
        c.setdefault("timeouts", ctimeouts)
        c.setdefault("pool", cpool)
    if routes is None:
        routes = [
            {"match": {"host": "dead.test", "path_prefix": "/"}, "cluster": "dead"},
            {"match": {"host": "mixed.test", "path_prefix": "/"}, "cluster": "mixed"},
            {"match": {"path_prefix": "/"}, "cluster": "origin"},
        ]
    return {
        "workers": 1,
        "listeners": [
            {
                "name": "public",
                "address": f"{HOST}:{port}",
                "limits": {
                    "max_head_bytes": "16KiB",
                    "max_headers": 100,
                    "max_target_bytes": "8KiB",
                    "max_body_bytes": "2GiB",
                    **(limits or {}),
                },
                "timeouts": {"header": "10s", "idle": "60s", **(timeouts or {})},
            }
        ],
        "clusters": clusters,
        "routes": routes,
    }


# Runs gwcore with getaddrinfo (the socket module's and the uvloop loop's) looking names up
# in the hosts file given first, then as usual. Workers are forked: they inherit the patch.
_RESOLVER_BOOT = """
import socket, sys, uvloop
hosts = sys.argv.pop(1)
def lookup(host):
    try:
        with open(hosts) as f:
            for line in f:
                parts = line.split("#")[0].split()
                if isinstance(host, str) and host in parts[1:]:
                    return parts[0]
    except OSError:
        pass
    return host
real, real_loop = socket.getaddrinfo, uvloop.Loop.getaddrinfo
socket.getaddrinfo = lambda host, *a, **kw: real(lookup(host), *a, **kw)
async def loop_getaddrinfo(self, host, *a, **kw):
    return await real_loop(self, lookup(host), *a, **kw)
uvloop.Loop.getaddrinfo = loop_getaddrinfo
from gwcore.cli import main
sys.exit(main())
"""


def start_gateway(config: dict, tmp_dir: Path, name: str = "gateway", *, ready: bool = True,
                  hosts: Path | None = None) -> Gateway:
    """Start ``gwcore serve`` with this config; return once the master has told systemd
    READY=1 (``ready=False``: once the port accepts, e.g. to test what happens before).
    ``hosts``: a hosts file consulted first by the gateway's name lookups (see the top)."""
    path = tmp_dir / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    port = int(config["listeners"][0]["address"].rsplit(":", 1)[1])
    boot = ["-m", "gwcore"] if hosts is None else ["-c", _RESOLVER_BOOT, str(hosts)]
    notify = Notify()
    proc = Proc(name, [PYTHON, *boot, "serve", "--config", str(path)],
                tmp_dir / f"{name}.log", env={"NOTIFY_SOCKET": notify.address})
    try:
        wait_for_port(port, proc)
        if ready:
            notify.wait(b"READY=1", proc)
    except BaseException:
        proc.stop()
        notify.close()
        raise
    return Gateway(proc, port, config, path, notify)


def start_gateway_on_free_port(make_config: Callable[[int], dict], tmp_dir: Path,
                               name: str) -> Gateway:
    """start_gateway(make_config(port)) on a free port; another port if that one was taken
    meanwhile (other test runs share this machine)."""
    for attempt in range(3):
        try:
            return start_gateway(make_config(free_port()), tmp_dir, name)
        except RuntimeError as exc:
            if "in use" not in str(exc) or attempt == 2:
                raise
    raise AssertionError("unreachable")


# --------------------------------------------------------------------------- raw client


@dataclass
class Resp:
    status: int
    reason: bytes
    http_version: bytes
    headers: list[tuple[bytes, bytes]]  # lower-cased names, in order
    body: bytes
    informational: list[int] = field(default_factory=list)

    def header(self, name: str) -> str | None:
        """The values of field ``name`` joined with ', ' (None if absent)."""
        values = [v.decode("latin-1") for k, v in self.headers if k == name.lower().encode()]
        return ", ".join(values) if values else None

    def json(self) -> dict:
        return json.loads(self.body)


class RawConn:
    """A blocking client socket. Requests are written as raw bytes; responses are parsed by h11.

    h11 needs to know a request was sent to parse its response, so read_response feeds it a
    stand-in request (same method and version) whose bytes are discarded.
    """

    def __init__(self, port: int, timeout: float = 10.0, host: str = HOST) -> None:
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.timeout = timeout
        self.parser = h11.Connection(h11.CLIENT)

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def recv(self, n: int = 65536, timeout: float | None = None) -> bytes:
        """One recv; b'' on EOF or reset."""
        self.sock.settimeout(self.timeout if timeout is None else timeout)
        try:
            return self.sock.recv(n)
        except ConnectionResetError:
            return b""

    def read_response(self, method: bytes = b"GET", timeout: float | None = None) -> Resp:
        p = self.parser
        if p.our_state is h11.DONE and p.their_state is h11.DONE:
            p.start_next_cycle()
        elif p.our_state is not h11.IDLE:
            # h11 ended the cycle in MUST_CLOSE (e.g. an HTTP/1.0 response): a fresh parser
            # serves requests sent one at a time after it.
            p = self.parser = h11.Connection(h11.CLIENT)
        p.send(h11.Request(method=method, target=b"/", headers=[(b"host", b"x")]))
        p.send(h11.EndOfMessage())
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        head, body, info = None, [], []
        while True:
            event = p.next_event()
            if event is h11.NEED_DATA:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"no complete response; so far {head!r}")
                try:
                    p.receive_data(self.recv(timeout=left))
                except TimeoutError as exc:
                    raise TimeoutError(f"no complete response; so far {head!r}") from exc
            elif type(event) is h11.InformationalResponse:
                info.append(event.status_code)
            elif type(event) is h11.Response:
                head = event
            elif type(event) is h11.Data:
                body.append(bytes(event.data))
            elif type(event) is h11.EndOfMessage:
                return Resp(head.status_code, head.reason, head.http_version,
                            list(head.headers), b"".join(body), info)
            elif type(event) is h11.ConnectionClosed:
                raise ConnectionError("connection closed before a response")

    def read_until_close(self, timeout: float = 5.0) -> tuple[bytes, bool]:
        """Everything until EOF. Returns (data, closed): closed is False on timeout."""
        deadline = time.monotonic() + timeout
        data = bytearray()
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return bytes(data), False
            try:
                chunk = self.recv(timeout=left)
            except TimeoutError:
                return bytes(data), False
            if not chunk:
                return bytes(data), True
            data += chunk

    def is_closed(self, timeout: float = 3.0) -> bool:
        """True when the peer closes within ``timeout`` with no further bytes."""
        data, closed = self.read_until_close(timeout)
        assert data == b"", f"unexpected bytes after the response: {data[:200]!r}"
        return closed

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def request_bytes(method: str, target: str, headers: dict[str, str] | None = None,
                  body: bytes = b"", version: str = "HTTP/1.1") -> bytes:
    """A well-formed request; adds Host and (with a body) Content-Length."""
    h = {"Host": "gw.test", **(headers or {})}
    if body and "Content-Length" not in h and "Transfer-Encoding" not in h:
        h["Content-Length"] = str(len(body))
    lines = "".join(f"{k}: {v}\r\n" for k, v in h.items())
    return f"{method} {target} {version}\r\n{lines}\r\n".encode() + body


def offer_load(ports: list[int], target: str, seconds: float, conns: int = 8
               ) -> tuple[Counter, float]:
    """``conns`` keep-alive clients per port sending ``GET target`` (Host gw.test) back to
    back for ``seconds``: (responses by status, seconds from the first request to the last)."""
    statuses: Counter[int] = Counter()
    stamps: list[float] = []
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    def client(port: int) -> None:
        conn = http.client.HTTPConnection(HOST, port, timeout=10)
        seen: Counter[int] = Counter()
        first = last = 0.0
        while (now := time.monotonic()) < stop:
            first = first or now
            conn.request("GET", target, headers={"Host": "gw.test"})
            resp = conn.getresponse()
            resp.read()
            seen[resp.status] += 1
            last = now
        conn.close()
        with lock:
            statuses.update(seen)
            stamps.extend((first, last))

    threads = [threading.Thread(target=client, args=(ports[i % len(ports)],))
               for i in range(conns * len(ports))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return statuses, max(stamps) - min(stamps)


def get_as(port: int, target: str, headers: dict | None = None) -> Resp:
    """``GET target`` with Host gw.test and these fields, on a new connection."""
    with RawConn(port) as c:
        extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
        c.send(f"GET {target} HTTP/1.1\r\nHost: gw.test\r\n{extra}\r\n".encode())
        return c.read_response()


# --------------------------------------------------------------------------- fixtures


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        for proc in _WATCHED:
            if proc.stopped_at is not None and proc.stopped_at < call.start:
                continue  # stopped before this phase began: not part of this failure
            state = "alive" if proc.alive() else f"exited {proc.popen.returncode}"
            report.sections.append((f"{proc.name} log ({state}, pid {proc.pid})",
                                    proc.log_tail()))


@pytest.fixture(scope="session")
def session_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("integration")


@pytest.fixture(scope="session")
def origin(session_dir: Path) -> Iterator[Origin]:
    o = start_origin(session_dir)
    yield o
    o.proc.stop()


@pytest.fixture(scope="session")
def dead_port() -> Iterator[int]:
    """A port where connects are refused for the whole session: bound, never listening, so
    no later free_port() can hand it to a real listener."""
    with socket.socket() as s:
        s.bind((HOST, 0))
        yield s.getsockname()[1]


@pytest.fixture(scope="session", autouse=True)
def _stop_everything_at_the_end() -> Iterator[None]:
    """Safety net: whatever a failed set-up left running is stopped when the session ends."""
    yield
    for proc in _WATCHED:
        if proc.alive():
            proc.stop()


class _SharedGateway:
    """A gateway shared by many tests; started on first use, restarted if it died."""

    def __init__(self, name: str, origin: Origin, dead_port: int, tmp_dir: Path,
                 **config_kw: object) -> None:
        self.name, self.origin, self.dead_port, self.tmp_dir = name, origin, dead_port, tmp_dir
        self.config_kw = config_kw
        self.gw: Gateway | None = None
        self.generation = 0

    def get(self) -> Gateway:
        if self.gw is None or not self.gw.proc.alive():
            if self.gw is not None:
                self.gw.proc.stop()
            self.generation += 1
            self.gw = start_gateway_on_free_port(
                lambda port: gateway_config(port, self.origin.port, self.dead_port,
                                            **self.config_kw),
                self.tmp_dir, f"{self.name}-{self.generation}")
        return self.gw

    def stop(self) -> None:
        if self.gw is not None:
            self.gw.proc.stop()


def _use_shared(holder: _SharedGateway) -> Iterator[Gateway]:
    g = holder.get()
    before = set(tree_pids(g.pid))
    yield g
    if not g.proc.alive():
        pytest.fail(f"the gateway died during the test (exit {g.proc.popen.returncode}):\n"
                    f"{g.proc.log_tail()}")
    # A worker that crashed and was respawned by the master is a failure too.
    vanished = before - set(tree_pids(g.pid))
    if vanished:
        pytest.fail(f"gateway process(es) {sorted(vanished)} exited during the test:\n"
                    f"{g.proc.log_tail()}")


@pytest.fixture(scope="session")
def _default_gateway(origin: Origin, dead_port: int, session_dir: Path) -> Iterator[
        _SharedGateway]:
    holder = _SharedGateway("gateway-default", origin, dead_port, session_dir)
    yield holder
    holder.stop()


@pytest.fixture(scope="session")
def _strict_gateway(origin: Origin, dead_port: int, session_dir: Path) -> Iterator[
        _SharedGateway]:
    holder = _SharedGateway(
        "gateway-strict", origin, dead_port, session_dir,
        limits={"max_body_bytes": "1KiB"},
        timeouts={"header": "1s", "idle": "2s"},
        cluster_timeouts={"response": "1s"},
    )
    yield holder
    holder.stop()


@pytest.fixture
def gw(_default_gateway: _SharedGateway) -> Iterator[Gateway]:
    """The default gateway; the test fails if the gateway process dies during it."""
    yield from _use_shared(_default_gateway)


@pytest.fixture
def strict_gw(_strict_gateway: _SharedGateway) -> Iterator[Gateway]:
    """A shared gateway with max_body_bytes 1KiB, header timeout 1s, idle timeout 2s and
    upstream response timeout 1s; the test fails if it dies during the test."""
    yield from _use_shared(_strict_gateway)


@pytest.fixture
def gateway_factory(origin: Origin, dead_port: int, tmp_path: Path) -> Iterator[
        Callable[..., Gateway]]:
    started: list[Gateway] = []

    def make(**kw: object) -> Gateway:
        g = start_gateway_on_free_port(
            lambda port: gateway_config(port, origin.port, dead_port, **kw),
            tmp_path, f"gateway-{len(started) + 1}")
        started.append(g)
        return g

    yield make
    dead = [g for g in started if g.proc.stopped_at is None and not g.proc.alive()]
    for g in started:
        g.proc.stop()
    if dead:
        pytest.fail(f"{dead[0].proc.name} died during the test (exit {dead[0].proc.returncode})"
                    f":\n{dead[0].proc.log_tail()}")


@pytest.fixture(scope="session")
def raw() -> Callable[..., RawConn]:
    return RawConn


@pytest.fixture(scope="session")
def req() -> Callable[..., bytes]:
    return request_bytes


@pytest.fixture(scope="session")
def pattern() -> Callable[[int, int], bytes]:
    return origin_mod.pattern


@pytest.fixture(scope="session")
def chunk_byte() -> Callable[[int], bytes]:
    return origin_mod.chunk_byte


@pytest.fixture(scope="session")
def rss_sampler() -> type[RssSampler]:
    return RssSampler
