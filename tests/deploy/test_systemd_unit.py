"""deploy/gwcore.service, checked where no systemd runs (CI containers, this machine).

- ``systemd-analyze verify`` (Debian's ``systemd`` package, installed with apt-get when missing)
  on the file as shipped, inside a stub root that has its paths (/opt/gwcore/venv/bin/gwcore),
  and on a copy whose gwcore path points at an executable here, which makes systemd check that
  programs exist (the first of each Exec* setting; the test checks the others, /bin/kill). Any
  diagnostic fails the test: systemd only warns, exit status 0, about an unknown directive or
  value.
- The unit's command lines against the real CLI, as systemd would run them: ExecStartPre
  (``gwcore check``) exits 0 on a valid config; ExecStart (``serve --config --pid-file``) runs
  the master, which tells the NOTIFY_SOCKET ``READY=1`` (Type=notify) and writes MAINPID to the
  pid file; the ExecReload lines (check, then ``kill -HUP $MAINPID``) give RELOADING=1 and
  READY=1 again; KillSignal stops it with exit 0 within TimeoutStopSec.
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from apt_packages import apt_install

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "deploy" / "gwcore.service"
GWCORE = "/opt/gwcore/venv/bin/gwcore"
CONFIG = "/etc/gwcore/gateway.yaml"

# installing systemd may need an apt-get update
pytestmark = pytest.mark.timeout(1500)


@pytest.fixture(scope="session")
def systemd_analyze() -> str:
    path = shutil.which("systemd-analyze")
    if path is None:
        apt_install("systemd", "systemd-analyze", "--no-install-recommends")
        path = shutil.which("systemd-analyze") or "/usr/bin/systemd-analyze"
    assert Path(path).exists(), "systemd-analyze missing after installing systemd"
    return path


def _verify(systemd_analyze: str, *args: str) -> str:
    run = subprocess.run([systemd_analyze, "verify", "--man=no", *args], capture_output=True,
                         text=True, timeout=120, check=False, stdin=subprocess.DEVNULL)
    out = (run.stdout + run.stderr).strip()
    assert run.returncode == 0 and out == "", f"exit {run.returncode}:\n{out}"
    return out


def _units_dir() -> Path:
    """Where the host's systemd keeps its own units (sysinit.target...)."""
    for d in (Path("/usr/lib/systemd/system"), Path("/lib/systemd/system")):
        if (d / "sysinit.target").exists():
            return d
    pytest.fail("no systemd unit directory with sysinit.target (is the systemd package whole?)")


def _stub(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\nexit 0\n")
    path.chmod(0o755)


def test_unit_as_shipped_verifies(systemd_analyze: str, tmp_path: Path) -> None:
    # in a root of our own: the unit under /etc/systemd/system, its gwcore path, systemd's units
    root = tmp_path / "root"
    (root / "etc/systemd/system").mkdir(parents=True)
    shutil.copy(UNIT, root / "etc/systemd/system/gwcore.service")
    _stub(root / GWCORE.lstrip("/"))
    (root / "usr/lib/systemd").mkdir(parents=True)
    shutil.copytree(_units_dir(), root / "usr/lib/systemd/system", symlinks=True)
    _verify(systemd_analyze, f"--root={root}", "gwcore.service")


def test_unit_programs_exist(systemd_analyze: str, tmp_path: Path) -> None:
    stub = tmp_path / "venv" / "bin" / "gwcore"
    _stub(stub)
    unit = tmp_path / "gwcore.service"
    unit.write_text(UNIT.read_text().replace(GWCORE, str(stub)))
    _verify(systemd_analyze, str(unit))
    # systemd-analyze checks the first command of each Exec* setting only: the rest here
    for key, values in _directives().items():
        if key.startswith("Service.Exec"):
            for value in values:
                program = shlex.split(value)[0]
                assert program.startswith("/"), f"{key}={value}: not an absolute path"
                assert program == GWCORE or os.access(program, os.X_OK), f"{key}={value}"


def _directives() -> dict[str, list[str]]:
    """Section.Key -> values in order (ExecReload appears twice)."""
    out: dict[str, list[str]] = {}
    section = ""
    for line in UNIT.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        out.setdefault(f"{section}.{key}", []).append(value)
    return out


def test_unit_settings() -> None:
    d = _directives()
    assert d["Service.Type"] == ["notify"] and d["Service.NotifyAccess"] == ["main"]
    assert d["Service.KillMode"] == ["mixed"] and d["Service.KillSignal"] == ["SIGTERM"]
    assert d["Service.RuntimeDirectory"] == ["gwcore"]
    assert d["Service.ExecStart"][0].endswith("--pid-file /run/gwcore/gwcore.pid")
    assert d["Install.WantedBy"] == ["multi-user.target"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unit_command_lines_run_the_cli(tmp_path: Path) -> None:
    d = _directives()
    config = tmp_path / "gateway.yaml"
    config.write_text(yaml.safe_dump({
        "workers": 1,
        "listeners": [{"name": "public", "address": f"127.0.0.1:{_free_port()}"}],
        "clusters": [{"name": "origin", "endpoints": [f"127.0.0.1:{_free_port()}"]}],
        "routes": [{"match": {"path_prefix": "/"}, "cluster": "origin"}],
    }))
    pid_file = tmp_path / "run" / "gwcore.pid"          # RuntimeDirectory=gwcore
    pid_file.parent.mkdir()
    mainpid: list[int] = []

    def argv(line: str) -> list[str]:
        line = line.replace(CONFIG, str(config)).replace("/run/gwcore/gwcore.pid", str(pid_file))
        words = [w.replace("$MAINPID", str(mainpid[0]) if mainpid else "$MAINPID")
                 for w in shlex.split(line)]
        return [sys.executable, "-m", "gwcore", *words[1:]] if words[0] == GWCORE else words

    def run(line: str) -> None:
        done = subprocess.run(argv(line), capture_output=True, text=True, timeout=60,
                              check=False, stdin=subprocess.DEVNULL)
        assert done.returncode == 0, f"{line}: exit {done.returncode}\n{done.stderr}"

    for line in d["Service.ExecStartPre"]:
        run(line)
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(tmp_path / "notify.sock"))
    notify.settimeout(30)
    log = tmp_path / "serve.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(argv(d["Service.ExecStart"][0]), stdout=out, stderr=out,
                                stdin=subprocess.DEVNULL, start_new_session=True,
                                env=dict(os.environ, NOTIFY_SOCKET=str(tmp_path / "notify.sock")))
    try:
        assert notify.recv(100) == b"READY=1", log.read_text()
        mainpid.append(int(pid_file.read_text()))
        assert mainpid[0] == proc.pid                      # NotifyAccess=main, MAINPID
        for line in d["Service.ExecReload"]:
            run(line)
        assert notify.recv(100) == b"RELOADING=1", log.read_text()
        assert notify.recv(100) == b"READY=1", log.read_text()
        os.kill(proc.pid, getattr(signal, d["Service.KillSignal"][0]))
        assert notify.recv(100) == b"STOPPING=1", log.read_text()
        assert proc.wait(float(d["Service.TimeoutStopSec"][0])) == 0, log.read_text()
        assert not pid_file.exists()
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(proc.pid, signal.SIGKILL)            # workers left behind, if any
        except (ProcessLookupError, PermissionError):
            pass
        proc.wait(10)
        notify.close()
