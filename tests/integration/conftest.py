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
"""

from __future__ import annotations

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
from collections.abc import Callable, Iterator
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


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (nothing listens on it)."""
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


# --------------------------------------------------------------------------- processes


class Proc:
    """A child process started in its own session, stderr (and stdout) to a log file."""

    def __init__(self, name: str, argv: list[str], log_path: Path, **popen_kw) -> None:
        self.name = name
        self.log_path = log_path
        env = dict(os.environ, PYTHONUNBUFFERED="1")
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

    def stats(self, targets: bool = False) -> dict:
        """The origin's /stats, asked on a fresh direct connection (not counted by it)."""
        conn = RawConn(self.port)
        try:
            conn.send(
                f"GET /stats{'?targets=1' if targets else ''} HTTP/1.1\r\nHost: origin\r\n"
                "Connection: close\r\n\r\n".encode()
            )
            return json.loads(conn.read_response().body)
        finally:
            conn.close()


def start_origin(tmp_dir: Path, name: str = "origin") -> Origin:
    proc = Proc(name, [PYTHON, str(HERE / "origin.py"), "--port", "0"],
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
    return Origin(proc, int(line.split()[1]))


@dataclass
class Gateway:
    proc: Proc
    port: int
    config: dict
    config_path: Path

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


def start_gateway(config: dict, tmp_dir: Path, name: str = "gateway") -> Gateway:
    path = tmp_dir / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    port = int(config["listeners"][0]["address"].rsplit(":", 1)[1])
    proc = Proc(name, [PYTHON, "-m", "gwcore", "serve", "--config", str(path)],
                tmp_dir / f"{name}.log")
    try:
        wait_for_port(port, proc)
    except BaseException:
        proc.stop()
        raise
    return Gateway(proc, port, config, path)


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

    def __init__(self, port: int, timeout: float = 10.0) -> None:
        self.sock = socket.create_connection((HOST, port), timeout=timeout)
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
