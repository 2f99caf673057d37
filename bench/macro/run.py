#!/usr/bin/env python3
"""gwcore macro benchmark: wrk through gwcore, NGINX and HAProxy in front of one NGINX origin.

One worker (default): the origin (NGINX, 1 worker) and wrk share CPU 0; the proxy under test
runs alone on CPU 1. N workers (`--workers N`, issue 3 item 9): nothing is pinned with taskset;
each proxy runs once with 1 worker and once with N workers (gwcore `workers:`, NGINX
`worker_processes`, HAProxy `nbthread`) under the same load, which gives each proxy's
N-worker/1-worker scaling ratio from the same run. Configurations are measured in alternating
rounds (A B C ... A B C ...), each run preceded by a short warm-up; the tables report the median
over rounds of req/s, p50 and p99 (milliseconds), the failed requests wrk saw (socket errors,
non-2xx/3xx responses), and gwcore's req/s ratio to each peer.

    .venv/bin/python bench/macro/run.py                      # 3 rounds of 10 s
    .venv/bin/python bench/macro/run.py --duration 3s --rounds 1
    .venv/bin/python bench/macro/run.py --workers 2          # 2 workers vs 1, unpinned
    .venv/bin/python bench/macro/run.py --write-results      # update bench/RESULTS.md

Every process the script starts is stopped on exit (also on Ctrl-C and SIGTERM) and its
temporary directory removed. See bench/macro/README.md.
"""

from __future__ import annotations

import argparse
import datetime
import http.client
import os
import platform
import re
import resource
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
RESULTS_FILE = REPO / "bench" / "RESULTS.md"

# Body sizes served by the origin, by URL path; both bodies are checked byte for byte through
# every proxy before it is measured.
BODIES: dict[str, bytes] = {
    "1k": (b"0123456789abcdef" * 64),
    "64k": (b"0123456789abcdef" * 4096),
}
SIZE_TITLES = {"1k": "1 KiB body (`return 200`)", "64k": "64 KiB body (static file)"}
# gwcore-nopin (gwcore with `pin_cpus: false`) is measured only when asked for by --proxies:
# it shows what gwcore's own CPU pinning does in the unpinned multi-worker layout.
PEER_NAMES = {"gwcore": "gwcore", "gwcore-nopin": "gwcore (pin_cpus: false)", "nginx": "NGINX",
              "haproxy": "HAProxy"}
DEFAULT_PROXIES = "gwcore,nginx,haproxy"

START_TIMEOUT_S = 15.0
STOP_TIMEOUT_S = 10.0


class BenchError(Exception):
    """A fatal setup problem (missing tool, origin not starting); the message says what to do."""


# --------------------------------------------------------------------------------------------
# CPU layout


@dataclass(frozen=True)
class Layout:
    """Which CPUs each party is pinned to (`taskset -c` lists); None means not pinned."""

    workers: int                # worker count under test; 1 or N > 1 (then 1 is run too)
    origin_workers: int
    origin_cpus: str | None
    proxy_cpus: str | None
    wrk_cpus: str | None

    @property
    def worker_counts(self) -> list[int]:
        """Worker counts each proxy is measured with: N > 1 needs the 1-worker baseline
        measured in the same run and under the same conditions for its scaling ratio."""
        return [1] if self.workers == 1 else [1, self.workers]

    def describe(self) -> str:
        if self.workers == 1:
            def where(cpus: str | None) -> str:
                return f"CPU {cpus}" if cpus is not None else "unpinned"

            return (
                f"origin (NGINX, {self.origin_workers} worker) on {where(self.origin_cpus)}, "
                f"wrk on {where(self.wrk_cpus)}, "
                f"proxy under test (1 worker) on {where(self.proxy_cpus)}"
            )
        return (
            f"nothing pinned with taskset: origin (NGINX, {self.origin_workers} workers), wrk "
            f"and the proxy under test (1 or {self.workers} workers) share all "
            f"{os.cpu_count()} CPUs as the scheduler places them; gwcore pins its worker i "
            f"to CPU i itself (its default, `pin_cpus: true`; so gwcore with 1 worker runs "
            f"on CPU 0 only), NGINX and HAProxy do not pin (their defaults)"
        )


def layout_for(workers: int, origin_workers: int | None = None) -> Layout:
    """The CPU layout for a worker count.

    One worker: the proxy gets a CPU of its own, wrk and the origin share the other, so the
    proxy's own cost per request is what is measured. N workers on a machine with few CPUs
    (2 here) cannot give each party its own CPUs: pinning wrk or the origin to a CPU would put
    them on one proxy worker's CPU and starve that worker alone, which measures the pinning,
    not the proxy. So nobody is pinned by the script and every configuration (1 and N
    workers, each proxy) runs under the same conditions; the origin gets N workers (default)
    so that it is not a one-CPU bottleneck for the N-worker proxies, and it is the same
    origin for every configuration."""
    if workers < 1:
        raise BenchError(f"--workers {workers}: must be at least 1")
    if workers == 1:
        return Layout(workers=1, origin_workers=origin_workers or 1,
                      origin_cpus="0", proxy_cpus="1", wrk_cpus="0")
    return Layout(workers=workers, origin_workers=origin_workers or workers,
                  origin_cpus=None, proxy_cpus=None, wrk_cpus=None)


def pinned(cpus: str | None, argv: list[str]) -> list[str]:
    return ["taskset", "-c", cpus, *argv] if cpus is not None else argv


# --------------------------------------------------------------------------------------------
# Tools


def which(name: str) -> str | None:
    """`shutil.which`, also looking in the sbin directories a non-root PATH may lack."""
    found = shutil.which(name)
    if found:
        return found
    for d in ("/usr/sbin", "/sbin", "/usr/local/sbin"):
        path = Path(d) / name
        if path.is_file() and os.access(path, os.X_OK):
            return str(path)
    return None


def apt_install(packages: list[str]) -> None:
    """Install Debian packages; refreshes the package lists once if a package is unknown."""
    if os.geteuid() != 0:
        raise BenchError(f"missing {', '.join(packages)}: run `sudo apt-get install -y "
                         f"{' '.join(packages)}` or run this script as root")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    cmd = ["apt-get", "install", "-y", "--no-install-recommends", *packages]
    print(f"installing {' '.join(packages)} with apt-get", flush=True)
    if subprocess.run(cmd, check=False, env=env, stdout=subprocess.DEVNULL).returncode != 0:
        subprocess.run(["apt-get", "update"], env=env, stdout=subprocess.DEVNULL, check=True)
        subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, check=True)


def ensure_tools(want_haproxy: bool, install: bool) -> dict[str, str | None]:
    """Paths of taskset, wrk, nginx and (if wanted) haproxy; installs what is missing."""
    required = {"wrk": "wrk", "nginx": "nginx"}
    missing = [pkg for tool, pkg in required.items() if which(tool) is None]
    if which("taskset") is None:
        missing.append("util-linux")
    if missing:
        if not install:
            raise BenchError(f"missing {', '.join(missing)} (and --no-install was given)")
        apt_install(missing)
    if want_haproxy and which("haproxy") is None and install:
        try:
            apt_install(["haproxy"])
        except (BenchError, subprocess.CalledProcessError) as exc:
            print(f"note: HAProxy not installed ({exc}); it is skipped", flush=True)
    tools: dict[str, str | None] = {t: which(t) for t in ("taskset", "wrk", "nginx", "haproxy")}
    for t in ("taskset", "wrk", "nginx"):
        if tools[t] is None:
            raise BenchError(f"{t} still not found after installing")
    return tools


def gwcore_import_problem() -> str | None:
    """None if `python -c 'import gwcore'` works with this interpreter, else how to fix it."""
    proc = subprocess.run([sys.executable, "-c", "import gwcore"],
                          check=False, capture_output=True, text=True)
    if proc.returncode == 0:
        return None
    last = (proc.stderr.strip().splitlines() or ["?"])[-1]
    return (f"`{sys.executable} -c 'import gwcore'` failed ({last}). Install it with "
            f"`{sys.executable} -m pip install .` in {REPO} (or build in place with "
            f"`python setup.py build_ext --inplace` and run this script from the repository root)")


def command_output(argv: list[str]) -> str:
    """stdout+stderr of a short command (version banners go to either), '' if it fails."""
    try:
        proc = subprocess.run(argv, check=False, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return (proc.stdout + proc.stderr).strip()


def machine_description(tools: dict[str, str | None]) -> dict[str, str]:
    lscpu = command_output(["lscpu"])

    def lscpu_field(name: str) -> str:
        m = re.search(rf"^{re.escape(name)}:\s*(.+)$", lscpu, re.MULTILINE)
        return m.group(1).strip() if m else "?"

    os_name = "?"
    with_os = Path("/etc/os-release")
    if with_os.exists():
        m = re.search(r'^PRETTY_NAME="?([^"\n]*)"?', with_os.read_text(), re.MULTILINE)
        os_name = m.group(1) if m else "?"
    hypervisor = lscpu_field("Hypervisor vendor")
    cpus = f"{os.cpu_count()} CPUs"
    if hypervisor != "?":
        cpus += f" ({hypervisor} guest)"
    nginx_v = re.search(r"nginx/(\S+)", command_output([str(tools["nginx"]), "-v"]))
    wrk_v = re.search(r"^wrk (\S+)", command_output([str(tools["wrk"]), "-v"]), re.MULTILINE)
    haproxy_v = (re.search(r"HAProxy version (\S+)",
                           command_output([str(tools["haproxy"]), "-v"]))
                 if tools["haproxy"] else None)
    commit = command_output(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"]) or "?"
    if command_output(["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"]):
        commit += " (with uncommitted changes)"
    return {
        "cpu": f"{lscpu_field('Model name')}, {cpus}",
        "kernel": f"Linux {platform.release()}, {os_name}",
        "nginx": nginx_v.group(1) if nginx_v else "?",
        "wrk": wrk_v.group(1) if wrk_v else "?",
        "haproxy": haproxy_v.group(1) if haproxy_v else "not installed",
        "python": platform.python_version(),
        "gwcore": commit,
    }


# --------------------------------------------------------------------------------------------
# Processes


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def render(template: str, dest: Path, values: dict[str, str]) -> Path:
    """Write HERE/template to dest with every @NAME@ replaced; all placeholders must be known."""
    text = (HERE / template).read_text()
    for key, value in values.items():
        text = text.replace(f"@{key}@", value)
    leftover = re.search(r"@[A-Z0-9_]+@", text)
    if leftover:
        raise BenchError(f"{template}: no value for {leftover.group(0)}")
    dest.write_text(text)
    return dest


@dataclass
class Server:
    """A process this script started, in its own session (so its whole group can be killed)."""

    name: str
    port: int
    proc: subprocess.Popen[bytes]
    log: Path
    dead: str | None = None
    # fields every client request must carry (e.g. a bearer token): the readiness check and
    # wrk send them
    headers: tuple[tuple[str, str], ...] = ()
    # a wrk Lua script (`wrk -s`) shaping the measured requests (method, path, body); None:
    # GET /<size> (bench/macro/inference.py's POSTs)
    wrk_script: Path | None = None

    def exited(self) -> str | None:
        rc = self.proc.poll()
        return None if rc is None else f"{self.name} exited with status {rc}"

    def log_tail(self) -> str:
        return tail_file(self.log) or "    | (empty log)"


@dataclass(frozen=True)
class Spawn:
    """How a server process is run besides its argv: working directory, extra environment,
    the fields every client request must carry and the wrk script shaping them."""

    cwd: Path | None = None
    env: tuple[tuple[str, str], ...] = ()
    headers: tuple[tuple[str, str], ...] = ()
    wrk_script: Path | None = None


def spawn(name: str, argv: list[str], cpus: str | None, log: Path, port: int,
          how: Spawn = Spawn()) -> Server:
    env = dict(os.environ, **dict(how.env)) if how.env else None
    with log.open("wb") as out:
        proc = subprocess.Popen(pinned(cpus, argv), stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True,
                                cwd=how.cwd, env=env)
    return Server(name=name, port=port, proc=proc, log=log, headers=how.headers,
                  wrk_script=how.wrk_script)


def stop(server: Server) -> None:
    """SIGTERM, wait, then SIGKILL the process group if anything of it is still there."""
    proc = server.proc
    if proc.poll() is None:
        try:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            print(f"{server.name}: no exit {STOP_TIMEOUT_S:.0f} s after SIGTERM, killing",
                  flush=True)
    # The group id is the leader's pid (start_new_session); children that outlived the
    # leader (workers of a pre-fork server) are still in it.
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait()


def http_get(port: int, path: str, headers: tuple[tuple[str, str], ...] = ()
             ) -> tuple[int, bytes] | str:
    """(status, body) of GET path on port with these fields, or what went wrong."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", path, headers=dict(headers))
        resp = conn.getresponse()
        return resp.status, resp.read()
    except (OSError, http.client.HTTPException) as exc:
        return f"GET {path}: {type(exc).__name__}: {exc}"
    finally:
        conn.close()


def http_check(port: int, path: str, body: bytes,
               headers: tuple[tuple[str, str], ...] = ()) -> str | None:
    """None if GET path on port answers 200 with exactly body, else what was wrong."""
    answer = http_get(port, path, headers)
    if isinstance(answer, str):
        return answer
    status, got = answer
    if status != 200:
        return f"GET {path}: status {status}"
    if got != body:
        return f"GET {path}: body of {len(got)} bytes differs from the origin's {len(body)}"
    return None


def wait_ready(server: Server) -> str | None:
    """None once the port accepts TCP and serves both bodies intact, else the problem."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        problem = server.exited()
        if problem:
            return problem
        try:
            socket.create_connection(("127.0.0.1", server.port), timeout=0.5).close()
            break
        except OSError:
            if time.monotonic() > deadline:
                return f"port {server.port} not accepting after {START_TIMEOUT_S:.0f} s"
            time.sleep(0.05)
    for path, body in BODIES.items():
        problem = http_check(server.port, "/" + path, body, server.headers)
        if problem:
            return problem
    return None


# A builder writes a proxy's config into its directory and returns the command that runs it.
Builder = Callable[[Path, int, int, int], list[str]]


@dataclass(frozen=True)
class Variant:
    """One configuration under test: a proxy with a worker count."""

    proxy: str
    workers: int

    @property
    def key(self) -> str:
        """Name in the output and of its temporary directory."""
        return f"{self.proxy}-w{self.workers}"


def nginx_argv(nginx: str, prefix: Path) -> list[str]:
    (prefix / "tmp").mkdir(parents=True, exist_ok=True)
    return [nginx, "-p", f"{prefix}/", "-c", str(prefix / "nginx.conf"),
            "-e", str(prefix / "error.log")]


def nginx_listen_opts(workers: int) -> str:
    return " reuseport" if workers > 1 else ""


def build_nginx(tools: dict[str, str | None]) -> Builder:
    def build(d: Path, port: int, origin_port: int, workers: int) -> list[str]:
        render("nginx_proxy.conf.tmpl", d / "nginx.conf",
               {"PORT": str(port), "ORIGIN_PORT": str(origin_port), "WORKERS": str(workers),
                "LISTEN_OPTS": nginx_listen_opts(workers)})
        return nginx_argv(str(tools["nginx"]), d)
    return build


def build_haproxy(tools: dict[str, str | None]) -> Builder:
    def build(d: Path, port: int, origin_port: int, workers: int) -> list[str]:
        cfg = render("haproxy.cfg.tmpl", d / "haproxy.cfg",
                     {"PORT": str(port), "ORIGIN_PORT": str(origin_port), "WORKERS": str(workers)})
        return [str(tools["haproxy"]), "-db", "-f", str(cfg)]
    return build


def build_gwcore(pin_cpus: bool, python: str = sys.executable, route_opts: str = "",
                 top_opts: str = "", template: str = "gwcore.yaml.tmpl",
                 values: dict[str, str] | None = None) -> Builder:
    """gwcore run by `python -m gwcore serve`; route_opts are YAML lines added to its one route
    (indented by 4), top_opts top-level YAML sections (bench/macro/routes.py's variants);
    template and values: another config template and its own placeholders
    (bench/macro/inference.py)."""
    def build(d: Path, port: int, origin_port: int, workers: int) -> list[str]:
        cfg = render(template, d / "gwcore.yaml",
                     {"PORT": str(port), "ORIGIN_PORT": str(origin_port),
                      "WORKERS": str(workers), "PIN_CPUS": "true" if pin_cpus else "false",
                      "ROUTE_OPTS": route_opts, "TOP_OPTS": top_opts, **(values or {})})
        return [python, "-m", "gwcore", "serve", "--config", str(cfg)]
    return build


def build_origin(tools: dict[str, str | None], server_opts: str = "", http_opts: str = ""
                 ) -> Builder:
    """The origin NGINX; server_opts are directives added to its server block (indented by 8;
    bench/macro/cache.py's Cache-Control and access log), http_opts to its http block
    (indented by 4; bench/macro/inference.py's second server block), none for run.py."""
    def build(d: Path, port: int, _origin_port: int, workers: int) -> list[str]:
        render("nginx_origin.conf.tmpl", d / "nginx.conf",
               {"PORT": str(port), "WORKERS": str(workers), "BODY_1K": BODIES["1k"].decode(),
                "LISTEN_OPTS": nginx_listen_opts(workers), "SERVER_OPTS": server_opts,
                "HTTP_OPTS": http_opts})
        return nginx_argv(str(tools["nginx"]), d)
    return build


def port_was_taken(d: Path) -> bool:
    """Whether a server failed because its port, free a moment before, was taken since."""
    logs = [d / "stdout.log", d / "error.log"]
    return any("in use" in p.read_text(errors="replace") for p in logs if p.exists())


def launch(name: str, build: Builder, d: Path, origin_port: int, workers: int,
           cpus: str | None, how: Spawn = Spawn()) -> tuple[Server | None, str]:
    """Start a server from its config directory d on a free port and check that it serves both
    bodies. Returns (server, "") or (None, what went wrong with its log). A start that fails
    because the port was taken in between is retried on another port."""
    for attempt in range(3):
        port = free_port()
        argv = build(d, port, origin_port, workers)
        for log in ("stdout.log", "error.log"):
            (d / log).unlink(missing_ok=True)
        server = spawn(name, argv, cpus, d / "stdout.log", port, how)
        problem = wait_ready(server)
        if problem is None:
            return server, ""
        stop(server)
        if not (port_was_taken(d) and attempt < 2):
            break
    return None, (f"{problem}\n    command: {' '.join(argv)}\n"
                  f"{tail_file(d / 'stdout.log')}\n{tail_file(d / 'error.log')}").rstrip()


def start_origin(tmp: Path, tools: dict[str, str | None], layout: Layout,
                 server_opts: str = "", http_opts: str = "") -> Server:
    d = tmp / "origin"
    (d / "www").mkdir(parents=True)
    (d / "www" / "64k").write_bytes(BODIES["64k"])
    # NGINX workers started by root run as `nobody`: they must be able to read the files.
    for p in (tmp, d, d / "www"):
        p.chmod(0o755)
    (d / "www" / "64k").chmod(0o644)
    origin, why = launch("origin", build_origin(tools, server_opts, http_opts), d, 0,
                         layout.origin_workers, layout.origin_cpus)
    if origin is None:
        raise BenchError(f"the origin NGINX did not start: {why}")
    return origin


def start_proxy(variant: Variant, build: Builder, tmp: Path, origin_port: int,
                layout: Layout, how: Spawn = Spawn()) -> Server | None:
    """Start a proxy in front of the origin; None (after saying why) if it does not work.
    Its directory tmp/variant.key may exist already (files the config refers to)."""
    d = tmp / variant.key
    d.mkdir(exist_ok=True)
    server, why = launch(variant.key, build, d, origin_port, variant.workers, layout.proxy_cpus,
                         how)
    if server is None:
        print(f"SKIP {variant.key}: did not start: {why}", flush=True)
    else:
        print(f"{variant.key}: ready on 127.0.0.1:{server.port} (pid {server.proc.pid})",
              flush=True)
    return server


def tail_file(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(errors="replace").rstrip().splitlines()
    except OSError:
        return ""
    return "\n".join("    | " + line for line in text[-lines:])


# --------------------------------------------------------------------------------------------
# CPU accounting: where the machine's CPU time went during a run. On a machine where wrk, the
# origin and the proxy share the CPUs (and other work may run), req/s alone cannot say whether
# a proxy was short of CPU; these shares can.

CPU_PARTIES = ("proxy", "origin", "wrk", "rest")


@dataclass
class CpuSample:
    wall: float                  # time.monotonic()
    machine_busy: float          # CPU seconds of all CPUs, not idle, iowait or steal
    groups: dict[int, float]     # process group id → CPU seconds of its live processes
    children: float              # CPU seconds of this script's reaped children (wrk)


def cpu_sample(pgids: list[int]) -> CpuSample:
    hz = os.sysconf("SC_CLK_TCK")
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    # user nice system idle iowait irq softirq steal ...
    busy = (fields[0] + fields[1] + fields[2] + fields[5] + fields[6]) / hz
    groups = dict.fromkeys(pgids, 0.0)
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as f:
                stat = f.read()
        except OSError:
            continue            # exited meanwhile
        # after "pid (comm) ": state ppid pgrp ... utime (14th field) stime (15th)
        rest = stat[stat.rindex(")") + 2:].split()
        pgrp = int(rest[2])
        if pgrp in groups:
            groups[pgrp] += (int(rest[11]) + int(rest[12])) / hz
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return CpuSample(time.monotonic(), busy, groups, usage.ru_utime + usage.ru_stime)


def cpu_shares(before: CpuSample, after: CpuSample, proxy: int, origin: int) -> dict[str, float]:
    """Cores used between two samples by the proxy's and the origin's process groups, wrk
    (the only child reaped in between) and the rest of the machine."""
    wall = after.wall - before.wall
    if wall <= 0:
        return {}
    shares = {
        "proxy": (after.groups[proxy] - before.groups[proxy]) / wall,
        "origin": (after.groups[origin] - before.groups[origin]) / wall,
        "wrk": (after.children - before.children) / wall,
    }
    machine = (after.machine_busy - before.machine_busy) / wall
    shares["rest"] = max(0.0, machine - sum(shares.values()))
    return shares


# --------------------------------------------------------------------------------------------
# wrk

TIME_UNITS_MS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}
BINARY_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4, "P": 1024**5}


@dataclass
class WrkResult:
    rps: float | None = None
    p50_ms: float | None = None
    p99_ms: float | None = None
    requests: int = 0
    read_bytes: float = 0.0
    socket_errors: dict[str, int] = field(default_factory=dict)
    non_2xx_3xx: int = 0
    problems: list[str] = field(default_factory=list)
    # CPU used during the run, in cores (CPU seconds per second), by party: "proxy",
    # "origin", "wrk" and "rest" (everything else on the machine, kernel softirq included).
    cpu: dict[str, float] = field(default_factory=dict)

    @property
    def errors(self) -> int:
        return sum(self.socket_errors.values()) + self.non_2xx_3xx

    @property
    def proxy_us_per_request(self) -> float | None:
        """The proxy's CPU time per request in microseconds: its cost, whatever share of the
        machine it got."""
        if not self.rps or "proxy" not in self.cpu:
            return None
        return self.cpu["proxy"] * 1e6 / self.rps

    @property
    def flagged(self) -> bool:
        return self.errors > 0 or bool(self.problems) or self.rps is None


def parse_duration_s(text: str) -> float:
    m = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|m|h)?", text.strip())
    if not m:
        raise argparse.ArgumentTypeError(f"bad duration {text!r} (e.g. 10s, 500ms, 1m)")
    return float(m.group(1)) * {"ms": 1e-3, "s": 1, "m": 60, "h": 3600}[m.group(2) or "s"]


def wrk_duration(text: str) -> str:
    """Validate a duration and return it in whole seconds, the unit wrk understands."""
    seconds = parse_duration_s(text)
    if seconds < 1:
        raise argparse.ArgumentTypeError(f"duration {text!r}: wrk needs at least 1s")
    return f"{round(seconds)}s"


def latency_ms(text: str) -> float | None:
    m = re.fullmatch(r"(\d+(?:\.\d+)?)(us|ms|s|m|h)", text)
    return float(m.group(1)) * TIME_UNITS_MS[m.group(2)] if m else None


def parse_wrk(output: str, body_size: int) -> WrkResult:
    res = WrkResult()
    m = re.search(r"^Requests/sec:\s+([\d.]+)", output, re.MULTILINE)
    res.rps = float(m.group(1)) if m else None
    for pct, attr in (("50", "p50_ms"), ("99", "p99_ms")):
        m = re.search(rf"^\s+{pct}%\s+(\S+)", output, re.MULTILINE)
        setattr(res, attr, latency_ms(m.group(1)) if m else None)
    m = re.search(r"^\s+(\d+) requests in \S+, ([\d.]+)([KMGTP]?)B read", output, re.MULTILINE)
    if m:
        res.requests = int(m.group(1))
        res.read_bytes = float(m.group(2)) * BINARY_UNITS[m.group(3)]
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    if m:
        res.socket_errors = {k: int(v) for k, v in
                             zip(("connect", "read", "write", "timeout"), m.groups()) if int(v)}
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    res.non_2xx_3xx = int(m.group(1)) if m else 0
    if res.rps is None or res.p50_ms is None or res.p99_ms is None:
        res.problems.append("could not parse wrk's output")
    elif res.requests == 0:
        res.problems.append("no request completed")
    # Every response carries at least the body; fewer bytes read per response than that
    # means short or error responses wrk did not count as errors (1 % slack: wrk rounds).
    elif res.read_bytes / res.requests < body_size * 0.99:
        res.problems.append(f"only {res.read_bytes / res.requests:.0f} bytes read per response "
                            f"for a {body_size}-byte body")
    return res


def run_wrk(wrk: str, port: int, size: str, duration: str, args: argparse.Namespace,
            layout: Layout, headers: tuple[tuple[str, str], ...] = (),
            script: Path | None = None) -> tuple[WrkResult, str]:
    """One wrk run of GET /<size> on port (or what script, a wrk Lua file, makes of it)."""
    url = f"http://127.0.0.1:{port}/{size}"
    fields = [arg for name, value in headers for arg in ("-H", f"{name}: {value}")]
    if script is not None:
        fields += ["-s", str(script)]
    argv = pinned(layout.wrk_cpus, [wrk, f"-t{args.threads}", f"-c{args.connections}",
                                    f"-d{duration}", "--latency", *fields, url])
    timeout = parse_duration_s(duration) + 30
    try:
        proc = subprocess.run(argv, check=False, capture_output=True, text=True,
                              timeout=timeout)
    except subprocess.TimeoutExpired:
        return WrkResult(problems=[f"wrk did not finish within {timeout:.0f} s"]), ""
    out = proc.stdout + proc.stderr
    res = parse_wrk(out, len(BODIES[size]))
    if proc.returncode != 0:
        res.problems.append(f"wrk exit status {proc.returncode}")
    return res, out


# --------------------------------------------------------------------------------------------
# Report


@dataclass
class Summary:
    variant: Variant
    runs: list[WrkResult]

    def median(self, attr: str) -> float | None:
        values = [getattr(r, attr) for r in self.runs if getattr(r, attr) is not None]
        return statistics.median(values) if values else None

    @property
    def requests(self) -> int:
        return sum(r.requests for r in self.runs)

    def cost_us(self, party: str) -> float | None:
        """Median CPU microseconds a party spent per request."""
        values = [r.cpu[party] * 1e6 / r.rps for r in self.runs if r.rps and party in r.cpu]
        return statistics.median(values) if values else None

    def cpu_text(self) -> str:
        """Median cores used by proxy / origin / wrk / rest of the machine."""
        medians = []
        for party in CPU_PARTIES:
            values = [r.cpu[party] for r in self.runs if party in r.cpu]
            medians.append(fmt(statistics.median(values) if values else None, ".2f"))
        return " / ".join(medians)

    @property
    def socket_errors(self) -> dict[str, int]:
        total: dict[str, int] = {}
        for r in self.runs:
            for kind, n in r.socket_errors.items():
                total[kind] = total.get(kind, 0) + n
        return total

    @property
    def non_2xx_3xx(self) -> int:
        return sum(r.non_2xx_3xx for r in self.runs)

    @property
    def errors(self) -> int:
        return sum(r.errors for r in self.runs)

    @property
    def flagged_runs(self) -> int:
        return sum(r.flagged for r in self.runs)


def fmt(value: float | None, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


def socket_error_text(errors: dict[str, int]) -> str:
    """'0', or the total with its kinds: '5 (read 3, timeout 2)'."""
    total = sum(errors.values())
    if not total:
        return "0"
    return f"{total} ({', '.join(f'{k} {v}' for k, v in errors.items())})"


def describe_run(r: WrkResult) -> str:
    parts = [f"{fmt(r.rps, ',.0f')} req/s", f"p50 {fmt(r.p50_ms, '.2f')} ms",
             f"p99 {fmt(r.p99_ms, '.2f')} ms", f"{r.requests} requests"]
    if r.socket_errors:
        parts.append(f"socket errors {socket_error_text(r.socket_errors)}")
    if r.non_2xx_3xx:
        parts.append(f"{r.non_2xx_3xx} non-2xx/3xx responses")
    if r.cpu:
        parts.append("CPU cores " + ", ".join(f"{k} {v:.2f}" for k, v in r.cpu.items()))
    parts.extend(r.problems)
    return ("FLAGGED: " if r.flagged else "") + "; ".join(parts)


def rps_ratio(a: Summary | None, b: Summary | None) -> tuple[float, str] | None:
    """Median req/s of a over b, with a note when flagged runs are involved; None if either
    has no figure."""
    if a is None or b is None:
        return None
    x, y = a.median("rps"), b.median("rps")
    if x is None or not y:
        return None
    note = " (runs with errors involved: see flagged runs)" if (
        a.flagged_runs or b.flagged_runs) else ""
    return x / y, note


def per_round_ratios(a: Summary, b: Summary) -> list[float]:
    """a/b req/s of the runs of the same round: both ran within seconds of each other, so
    these ratios see less of the machine's drifting background load than the medians do.
    Lists are in round order and a proxy that died stops early, so zip pairs rounds."""
    return [x.rps / y.rps for x, y in zip(a.runs, b.runs) if x.rps and y.rps]


def ceiling_ratio(one: Summary, many: Summary, workers: int) -> float | None:
    """The N-worker/1-worker req/s ratio an idle machine would allow if only CPU limited it:
    k workers serve at most k / (proxy µs per request) and all the machine's CPUs at most
    CPUs / (proxy + origin + wrk µs per request), with the costs measured in these runs.
    Kernel work not charged to a process (softirq) is left out, so this is an estimate."""
    cpus = os.cpu_count() or 1
    rates = []
    for k, s in ((1, one), (workers, many)):
        proxy, origin, wrk = (s.cost_us(party) for party in ("proxy", "origin", "wrk"))
        if not (proxy and origin and wrk):
            return None
        rates.append(min(k / proxy, cpus / (proxy + origin + wrk)))
    return rates[1] / rates[0]


def summary_table(heads: list[str], rows: list[tuple[list[str], Summary]]) -> list[str]:
    """Markdown lines of a results table: the label columns named by heads, then the figures
    of each row's Summary."""
    lines = [
        "| " + " | ".join(heads) + " | req/s (median) | p50 ms | p99 ms | requests "
        "| socket errors | non-2xx/3xx | flagged runs | proxy CPU µs/req "
        "| CPU cores: proxy / origin / wrk / rest | req/s per round |",
        "|---" * len(heads) + "|---:" * 9 + "|---|",
    ]
    for labels, s in rows:
        per_round = ", ".join(fmt(r.rps, ".0f") for r in s.runs)
        lines.append(
            "| " + " | ".join(labels) + f" | {fmt(s.median('rps'), ',.0f')} "
            f"| {fmt(s.median('p50_ms'), '.2f')} | {fmt(s.median('p99_ms'), '.2f')} "
            f"| {s.requests:,} | {socket_error_text(s.socket_errors)} | {s.non_2xx_3xx} "
            f"| {s.flagged_runs}/{len(s.runs)} | {fmt(s.median('proxy_us_per_request'), '.1f')} "
            f"| {s.cpu_text()} | {per_round} |")
    return lines


def size_table(size: str, summaries: list[Summary], layout: Layout) -> str:
    multi = layout.workers > 1
    lines = summary_table(
        ["proxy", "workers"] if multi else ["proxy"],
        [([PEER_NAMES[s.variant.proxy], *([str(s.variant.workers)] if multi else [])], s)
         for s in summaries])
    by_variant = {s.variant: s for s in summaries}
    notes = []
    if multi:
        scaling = []
        for proxy, title in PEER_NAMES.items():
            one = by_variant.get(Variant(proxy, 1))
            many = by_variant.get(Variant(proxy, layout.workers))
            ratio = rps_ratio(many, one)
            if ratio is None or one is None or many is None:
                continue
            rounds = ", ".join(f"{x:.2f}" for x in per_round_ratios(many, one))
            ceiling = ceiling_ratio(one, many, layout.workers)
            scaling.append(f"{title} **{ratio[0]:.2f}×** (per round: {rounds}; CPU-bound "
                           f"ceiling {fmt(ceiling, '.2f')}×){ratio[1]}")
        if scaling:
            notes.append(f"Scaling, {layout.workers} workers / 1 worker (medians; issue 3 "
                         f"target for gwcore: ≥ 1.8×): " + "; ".join(scaling))
    for gw in ("gwcore", "gwcore-nopin"):
        for peer in ("nginx", "haproxy"):
            cells = []
            for w in layout.worker_counts:
                ratio = rps_ratio(by_variant.get(Variant(gw, w)), by_variant.get(Variant(peer, w)))
                if ratio is not None:
                    where = f"{w} worker{'s' if w > 1 else ''}: " if multi else ""
                    cells.append(f"{where}**{ratio[0]:.2f}×**{ratio[1]}")
            if cells:
                notes.append(f"{PEER_NAMES[gw]} / {PEER_NAMES[peer]}: " + "; ".join(cells))
    text = f"**{SIZE_TITLES[size]}**\n\n" + "\n".join(lines) + "\n"
    if notes:
        text += "\n" + "  \n".join(notes) + "\n"
    return text


def failures_text(results: dict[tuple[Variant, str], list[WrkResult]],
                  warmups: dict[tuple[Variant, str], list[WrkResult]]) -> str:
    """One line counting every failed request wrk saw, measured runs and warm-ups alike."""
    def count(runs: dict[tuple[Variant, str], list[WrkResult]]) -> tuple[int, int, list[str]]:
        failed = total = 0
        where = []
        for (variant, size), rs in runs.items():
            n = sum(r.errors for r in rs)
            failed += n
            total += sum(r.requests for r in rs)
            if n:
                where.append(f"{variant.key} {size}: {n}")
        return failed, total, where

    failed, total, where = count(results)
    w_failed, w_total, w_where = count(warmups)
    text = (f"Failed requests (wrk socket errors + non-2xx/3xx responses): **{failed}** in "
            f"measured runs ({total:,} requests)")
    if where:
        text += f" [{'; '.join(where)}]"
    text += f"; {w_failed} in warm-up runs ({w_total:,} requests)"
    if w_where:
        text += f" [{'; '.join(w_where)}]"
    return text + ".\n"


def report(results: dict[tuple[Variant, str], list[WrkResult]],
           warmups: dict[tuple[Variant, str], list[WrkResult]], variants: list[Variant],
           sizes: list[str], layout: Layout,
           table: Callable[[str, list[Summary], Layout], str] = size_table) -> str:
    """A table per size (made by table), the failed requests and the legend."""
    parts = []
    for size in sizes:
        summaries = [Summary(v, results[(v, size)]) for v in variants if results.get((v, size))]
        if summaries:
            parts.append(table(size, summaries, layout))
    if results:
        parts.append(failures_text(results, warmups))
        legend = (
            "Columns: socket errors are wrk's connect/read/write/timeout errors, non-2xx/3xx "
            "its error responses; a run with either is flagged and still counted. Proxy CPU "
            "µs/req is the proxy's CPU time per request (its cost, whatever share of the "
            "CPUs it got); CPU cores is how many CPUs' worth each party used during the run "
            "(median), \"rest\" being everything else on the machine (other processes, "
            "kernel softirq work): a rest well above 0 means the machine was not idle and "
            "req/s are lower and noisier than on an idle machine.")
        if layout.workers > 1:
            legend += (
                f" The CPU-bound ceiling of a scaling ratio is what an idle machine would "
                f"allow given the measured CPU cost per request of proxy, origin and wrk: "
                f"k workers serve at most k / proxy cost, the {os.cpu_count()} CPUs at most "
                f"{os.cpu_count()} / (proxy + origin + wrk cost); when wrk and the origin "
                f"cost about as much as the proxy, one worker already fills the CPUs left to "
                f"it and the ceiling is near 1×.")
        parts.append(legend + "\n")
    return "\n".join(parts)


def proxies_text(layout: Layout) -> str:
    if layout.workers == 1:
        return ("Proxies: gwcore (`workers: 1`), NGINX `proxy_pass` (upstream keepalive 64), "
                "HAProxy (`nbthread 1`, http-reuse always).")
    n = layout.workers
    return (f"Proxies, each with 1 and with {n} workers: gwcore (`workers: 1` / `{n}`, one "
            f"SO_REUSEPORT listening socket per worker, worker i pinned to CPU i by gwcore), "
            f"NGINX `proxy_pass` (`worker_processes 1` / `{n}`, `listen ... reuseport` with "
            f"{n}, upstream keepalive 64 per worker), HAProxy (`nbthread 1` / `{n}`, "
            f"http-reuse always, no cpu-map). Why nothing is pinned by the script: with "
            f"{n} proxy workers on {os.cpu_count()} CPUs, wrk and the origin cannot have CPUs "
            f"of their own; pinning them to one CPU would starve the proxy worker on that "
            f"CPU alone. Unpinned, the scheduler spreads the same load for every "
            f"configuration, and the 1-worker configurations measured in the same rounds "
            f"give each proxy's scaling ratio under the same conditions (this is the ratio "
            f"to compare with the issue's target, not the pinned workers=1 section). "
            f"wrk and the origin use CPU too, so no proxy can reach {n}× here; NGINX's own "
            f"ratio is the reference for what this machine allows.")


def results_section(args: argparse.Namespace, layout: Layout, machine: dict[str, str],
                    tables: str, skipped: dict[str, str], loads: tuple[str, str],
                    started: datetime.datetime, *, script: str = "bench/macro/run.py",
                    title: str | None = None, setup: str | None = None) -> str:
    """The RESULTS.md section of a run: how, where and when, then the tables. title and setup
    (what was measured) default to this script's proxies and worker layout."""
    shown: list[str] = []
    skip_next = False
    for arg in args.argv:  # the note is shown on its own line, not inside the command
        if skip_next or arg.startswith("--note="):
            skip_next = False
            continue
        skip_next = arg == "--note"
        if not skip_next:
            shown.append(arg)
    cmd = shlex.join(["python", script, *shown])
    if title is None:
        title = (f"workers={layout.workers}" if layout.workers == 1
                 else f"workers={layout.workers} (and 1, same run, unpinned)")
    lines = [
        (f"## Macro benchmark, {title}: wrk -t{args.threads} "
         f"-c{args.connections} -d{args.duration} (bench/macro)"),
        "",
        (f"- Date: {started:%Y-%m-%d %H:%M} UTC; command: `{cmd}`; "
         f"{args.rounds} alternating round(s), {args.warmup} warm-up before each run; "
         f"medians over rounds."),
        f"- Machine: {machine['cpu']}; {machine['kernel']}.",
        (f"- Versions: nginx {machine['nginx']}, wrk {machine['wrk']}, "
         f"HAProxy {machine['haproxy']}, Python {machine['python']}, "
         f"gwcore {machine['gwcore']}."),
        (f"- Layout: {layout.describe()}. Origin: NGINX `return 200` (1 KiB) and a 64 KiB "
         f"static file, keep-alive. {setup or proxies_text(layout)}"),
        f"- Load average (1/5/15 min) at start: {loads[0]}; at end: {loads[1]}.",
    ]
    if args.note:
        lines.append(f"- Note: {args.note}")
    for name, why in skipped.items():
        lines.append(f"- {name} not measured: {why}")
    return "\n".join(lines) + "\n\n" + tables


def update_results_file(path: Path, key: str, section: str,
                        script: str = "bench/macro/run.py") -> None:
    """Replace this benchmark's marked section of path (or append it); the rest is kept."""
    begin = f"<!-- {key}: begin (written by {script} --write-results) -->"
    end = f"<!-- {key}: end -->"
    block = f"{begin}\n{section.rstrip()}\n{end}\n"
    text = path.read_text() if path.exists() else (
        "# gwcore benchmark results\n\nMeasured figures; each section says how, where and when "
        "it was measured.\n")
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        tail = rest.split(end, 1)[1].lstrip("\n")
        text = head + block + ("\n" + tail if tail else "")
    else:
        text = text.rstrip("\n") + "\n\n" + block
    path.write_text(text)


def group_pids(pgid: int) -> list[int]:
    """The live processes of a process group (a proxy's master and workers:
    processes started with start_new_session lead a group of their own)."""
    pids = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                with open(f"/proc/{entry.name}/stat") as f:
                    stat = f.read()
            except OSError:
                continue
            if int(stat[stat.rindex(")") + 2:].split()[2]) == pgid:
                pids.append(int(entry.name))
    return pids


# a gwcore config's cluster of the NGINX origin and its one route (tls.py, sse_latency.py)
GWCORE_TO_ORIGIN = """clusters:
  - name: origin
    endpoints: ["127.0.0.1:@ORIGIN_PORT@"]
    pool: {max_idle: 64, idle_timeout: 60s}
routes:
  - match: {path_prefix: /}
    cluster: origin
"""


def start_variants(variants: Iterable[Variant], start: Callable[[Variant], Server | str],
                   servers: list[Server], skipped: dict[str, str]) -> dict[Variant, Server]:
    """Each variant started by ``start`` (a Server, or why not: the variant is skipped with
    that reason); the servers to stop are added to ``servers``. BenchError when none
    started."""
    proxies: dict[Variant, Server] = {}
    for variant in variants:
        started_or_why = start(variant)
        if isinstance(started_or_why, str):
            skipped[variant.key] = started_or_why
            continue
        servers.append(started_or_why)
        proxies[variant] = started_or_why
    if not proxies:
        raise BenchError("no variant could be started")
    return proxies


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def begin_gwcore_bench(install: bool
                       ) -> tuple[Layout, dict[str, str | None], str, datetime.datetime, str]:
    """What a one-worker gwcore bench (cache.py, inference.py) starts from: (the CPU layout,
    the tools — installed when missing with ``install`` —, the machine's description, the
    UTC start time, the load average at the start). BenchError when gwcore does not
    import."""
    layout = layout_for(1)
    tools = ensure_tools(False, install=install)
    problem = gwcore_import_problem()
    if problem:
        raise BenchError(problem)
    return layout, tools, machine_description(tools), datetime.datetime.now(datetime.UTC), \
        load_average()


# --------------------------------------------------------------------------------------------
# Main


@contextmanager
def terminate_on_signals() -> Iterator[None]:
    """Turn SIGTERM/SIGHUP into SystemExit so the cleanup in `finally` blocks runs."""
    def bail(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    old = {s: signal.signal(s, bail) for s in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)


def add_common_args(ap: argparse.ArgumentParser, rounds: int = 3, sizes: str = "1k,64k"
                    ) -> None:
    """The options of every bench/macro script: rounds, wrk load, sizes, results, temp dir."""
    ap.add_argument("--rounds", type=int, default=rounds,
                    help=f"alternating rounds (default {rounds})")
    ap.add_argument("--duration", type=wrk_duration, default="10s",
                    help="wrk duration of each measured run (default 10s)")
    ap.add_argument("--warmup", type=wrk_duration, default="2s",
                    help="wrk run before each measured run, not recorded (default 2s)")
    ap.add_argument("--connections", type=int, default=64, help="wrk -c (default 64)")
    ap.add_argument("--threads", type=int, default=1, help="wrk -t (default 1)")
    ap.add_argument("--sizes", default=sizes,
                    help=f"comma-separated subset of 1k,64k (default {sizes})")
    ap.add_argument("--write-results", action="store_true",
                    help=f"write the table into {RESULTS_FILE.relative_to(REPO)}")
    ap.add_argument("--results-file", type=Path, default=RESULTS_FILE, help=argparse.SUPPRESS)
    ap.add_argument("--note", default="", help="a remark for RESULTS.md (e.g. machine shared)")
    ap.add_argument("--no-install", action="store_true", help="never call apt-get")
    ap.add_argument("--keep-temp", action="store_true",
                    help="keep the temporary directory (configs, logs) and print its path")


def check_common_args(ap: argparse.ArgumentParser, args: argparse.Namespace,
                      argv: list[str]) -> None:
    """Validate add_common_args's options; sets args.argv and args.size_list."""
    args.argv = argv
    args.size_list = [s.strip() for s in args.sizes.split(",") if s.strip()]
    for s in args.size_list:
        if s not in BODIES:
            ap.error(f"--sizes: unknown size {s!r} (1k, 64k)")
    if min(args.rounds, args.connections, args.threads) < 1:
        ap.error("--rounds, --connections and --threads must be at least 1")


def parse_args(argv: list[str]) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_common_args(ap)
    ap.add_argument("--workers", type=int, default=1,
                    help="workers of each proxy; N > 1 also measures 1 worker, all unpinned "
                         "(default 1: pinned layout)")
    ap.add_argument("--origin-workers", type=int, default=None,
                    help="workers of the origin NGINX (default: 1, or N with --workers N)")
    ap.add_argument("--proxies", default=DEFAULT_PROXIES,
                    help=f"comma-separated subset of {','.join(PEER_NAMES)} "
                         f"(default: {DEFAULT_PROXIES})")
    args = ap.parse_args(argv)
    check_common_args(ap, args, argv)
    args.proxy_list = [p.strip() for p in args.proxies.split(",") if p.strip()]
    for p in args.proxy_list:
        if p not in PEER_NAMES:
            ap.error(f"--proxies: unknown proxy {p!r} ({', '.join(PEER_NAMES)})")
    if min(args.workers, args.origin_workers or 1) < 1:
        ap.error("--workers and --origin-workers must be at least 1")
    return args


def measure(wrk: str, variant: Variant, server: Server, origin: Server, size: str, rnd: int,
            args: argparse.Namespace, layout: Layout,
            results: dict[tuple[Variant, str], list[WrkResult]],
            warmups: dict[tuple[Variant, str], list[WrkResult]]) -> None:
    """One warm-up and one measured wrk run of a variant; both are recorded (the warm-up only
    for its failed requests)."""
    warm, _ = run_wrk(wrk, server.port, size, args.warmup, args, layout, server.headers,
                      server.wrk_script)
    warmups.setdefault((variant, size), []).append(warm)
    if warm.errors:
        print(f"round {rnd} {size:>3} {variant.key:<15} warm-up: {describe_run(warm)}",
              flush=True)
    pgids = [server.proc.pid, origin.proc.pid]  # group leaders (start_new_session)
    before = cpu_sample(pgids)
    res, out = run_wrk(wrk, server.port, size, args.duration, args, layout, server.headers,
                       server.wrk_script)
    res.cpu = cpu_shares(before, cpu_sample(pgids), server.proc.pid, origin.proc.pid)
    for s in (origin, server):
        died = s.exited()
        if died:
            res.problems.append(died)
    results.setdefault((variant, size), []).append(res)
    print(f"round {rnd} {size:>3} {variant.key:<15} {describe_run(res)}", flush=True)
    if res.rps is None and out:
        print("\n".join("    | " + line for line in out.splitlines()))


@contextmanager
def bench_dir(keep: bool) -> Iterator[tuple[Path, list[Server]]]:
    """A temporary directory and the list to put every server started into: on exit each is
    stopped (the last started first) and the directory removed (kept with keep)."""
    tmp = Path(tempfile.mkdtemp(prefix="gwcore-macro-"))
    servers: list[Server] = []
    try:
        yield tmp, servers
    finally:
        for server in reversed(servers):
            stop(server)
        if keep:
            print(f"temporary directory kept: {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


Results = dict[tuple[Variant, str], list[WrkResult]]


def measure_rounds(wrk: str, origin: Server, proxies: dict[Variant, Server],
                   args: argparse.Namespace, layout: Layout, skipped: dict[str, str],
                   mirror: bool = False, measure_one: Callable[..., None] = measure
                   ) -> tuple[Results, Results]:
    """Measured runs and warm-ups of every proxy and size in alternating rounds (A B C A B C;
    with mirror A B C C B A, so that a drift of the machine's speed over a round does not
    favour the configurations measured first). A proxy that dies is not measured further
    (noted in skipped); the origin dying is fatal. measure_one (measure's arguments) makes
    the warm-up and measured run of one configuration: measure, or a wrapper of it that also
    records something around the runs (bench/macro/cache.py counts the origin's requests)."""
    per_run = parse_duration_s(args.duration) + parse_duration_s(args.warmup)
    total = per_run * args.rounds * len(args.size_list) * len(proxies)
    print(f"layout: {layout.describe()}\nmeasuring {', '.join(v.key for v in proxies)} x "
          f"{', '.join(args.size_list)} x {args.rounds} round(s): about {total:.0f} s",
          flush=True)
    results: Results = {}
    warmups: Results = {}
    for rnd in range(1, args.rounds + 1):
        order = list(proxies.items())
        if mirror and rnd % 2 == 0:
            order.reverse()
        for size in args.size_list:
            for variant, server in order:
                if server.dead:
                    continue
                measure_one(wrk, variant, server, origin, size, rnd, args, layout, results,
                            warmups)
                if origin.exited():
                    raise BenchError(f"{origin.exited()}\n{origin.log_tail()}")
                if server.exited():
                    server.dead = server.exited()
                    skipped[variant.key] = f"{server.dead} during round {rnd}"
                    print(f"{variant.key}: {server.dead}; not measured further\n"
                          f"{server.log_tail()}", flush=True)
    return results, warmups


def conclude(args: argparse.Namespace, results: Results, tables: str,
             skipped: dict[str, str], key: str, section: Callable[[], str],
             script: str = "bench/macro/run.py") -> int:
    """Print the tables and what was not measured, write the RESULTS.md section (made by
    section) under key with --write-results; the exit status: 1 when a run was flagged or a
    configuration not measured, else 0."""
    print("\n" + tables)
    for name, why in skipped.items():
        print(f"not measured: {name}: {why}")
    if args.write_results:
        update_results_file(args.results_file, key, section(), script)
        print(f"wrote {args.results_file}")
    flagged = any(r.flagged for runs in results.values() for r in runs)
    return 1 if flagged or skipped else 0


def benchmark(args: argparse.Namespace) -> int:
    layout = layout_for(args.workers, args.origin_workers)
    if layout.workers > (os.cpu_count() or 1):
        print(f"note: {layout.workers} workers on {os.cpu_count()} CPUs", flush=True)
    tools = ensure_tools("haproxy" in args.proxy_list, install=not args.no_install)
    machine = machine_description(tools)
    started = datetime.datetime.now(datetime.UTC)
    load_start = load_average()

    builders: dict[str, Builder] = {"gwcore": build_gwcore(pin_cpus=True),
                                    "gwcore-nopin": build_gwcore(pin_cpus=False),
                                    "nginx": build_nginx(tools)}
    skipped: dict[str, str] = {}
    if tools["haproxy"]:
        builders["haproxy"] = build_haproxy(tools)
    elif "haproxy" in args.proxy_list:
        skipped["haproxy"] = "haproxy is not installed"
    if any(p.startswith("gwcore") for p in args.proxy_list):
        problem = gwcore_import_problem()
        if problem:
            for p in args.proxy_list:
                if p.startswith("gwcore"):
                    skipped[p] = "gwcore is not importable"
            print(f"SKIP gwcore: {problem}", flush=True)
    variants = [Variant(p, w) for p in args.proxy_list if p not in skipped
                for w in layout.worker_counts]

    with bench_dir(args.keep_temp) as (tmp, servers):
        origin = start_origin(tmp, tools, layout)
        servers.append(origin)
        print(f"origin: ready on 127.0.0.1:{origin.port} (pid {origin.proc.pid})", flush=True)
        proxies: dict[Variant, Server] = {}
        for variant in variants:
            server = start_proxy(variant, builders[variant.proxy], tmp, origin.port, layout)
            if server is None:
                skipped[variant.key] = "did not start (see the script's output)"
                continue
            servers.append(server)
            proxies[variant] = server
        if not proxies:
            raise BenchError("no proxy could be started")
        results, warmups = measure_rounds(str(tools["wrk"]), origin, proxies, args, layout,
                                          skipped)

    tables = report(results, warmups, variants, args.size_list, layout)
    return conclude(args, results, tables, skipped, f"bench/macro workers={layout.workers}",
                    lambda: results_section(args, layout, machine, tables, skipped,
                                            (load_start, load_average()), started))


def guarded(benchmark: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    """benchmark(args) with the exit statuses of bench/macro: 2 for a BenchError (setup),
    130 when interrupted; every process started is stopped on the way out."""
    try:
        with terminate_on_signals():
            return benchmark(args)
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; every process started was stopped", file=sys.stderr)
        return 130


def main(argv: list[str]) -> int:
    return guarded(benchmark, parse_args(argv))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
