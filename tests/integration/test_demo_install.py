"""The README's first command as a newcomer runs it: ``pip install .`` of a clean copy of the
repository into a fresh venv (not editable), then ``gwcore demo`` with the copy's root as the
working directory. There the source tree's ``gwcore/`` (no compiled modules) sits right beside
the installed package, so a child process that puts its working directory on ``sys.path``
imports the wrong one (``No module named 'gwcore.jwt._jws'``).

Slow by nature (one wheel build, ~40 s here): the install is done once per module and needs
gcc, the Python and OpenSSL headers and pip's configured index, like the README command.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from conftest import HOST, free_port

REPO = Path(__file__).resolve().parents[2]


def _source_copy(dest: Path) -> None:
    """The working tree's tracked and not-ignored files, as a clone of it would hold them: no
    build products (``*.so``, generated ``*.c``, ``build/``, ``.venv/``)."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                            cwd=REPO, capture_output=True, check=True).stdout
    for rel in filter(None, listed.split(b"\0")):
        src = REPO / os.fsdecode(rel)
        if src.is_file():                  # not deleted in the working tree
            dst = dest / os.fsdecode(rel)
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst)


def _clean_env(venv: Path) -> dict[str, str]:
    """The environment after ``. .venv/bin/activate`` in a fresh shell: nothing of ours."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "PYTHONHOME", "PYTHONSAFEPATH", "VIRTUAL_ENV",
                        "PYTHONSTARTUP", "PYTHONUSERBASE")}
    env["VIRTUAL_ENV"] = str(venv)
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONUNBUFFERED"] = "1"
    return env


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict[str, str]]:
    """(clone root, venv, env): the package built and installed from a clean copy."""
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("needs a git checkout to copy the repository from")
    base = tmp_path_factory.mktemp("readme")
    clone, venv = base / "clone", base / "venv"
    _source_copy(clone)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    env = _clean_env(venv)
    pip = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet",
                          "--disable-pip-version-check", "."], cwd=clone, env=env,
                         capture_output=True, text=True, timeout=600, check=False)
    if pip.returncode != 0:
        pytest.fail(f"pip install . failed ({pip.returncode}):\n{pip.stdout[-3000:]}"
                    f"\n{pip.stderr[-6000:]}")
    return clone, venv, env


def _free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((HOST, port))
        except OSError:
            return False
    return True


def _listening(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=0.5):
            return True
    except OSError:
        return False


def _wait(cond: Callable[[], bool], timeout: float, what: str, proc: subprocess.Popen[bytes],
          log: Path, *, alive: bool = True) -> None:
    """Poll cond until it holds (AssertionError with the log after timeout seconds, or as soon
    as the demo exits when it must stay ``alive``)."""
    deadline = time.monotonic() + timeout
    while not cond():
        if alive and proc.poll() is not None:
            raise AssertionError(f"gwcore demo exited with {proc.returncode} before {what}:\n"
                                 f"{log.read_text(errors='replace')[-6000:]}")
        if time.monotonic() > deadline:
            raise AssertionError(f"not {what} after {timeout}s:\n"
                                 f"{log.read_text(errors='replace')[-6000:]}")
        time.sleep(0.05)


@pytest.mark.timeout(600)
def test_readme_first_command_in_a_clean_clone(installed, tmp_path) -> None:
    clone, venv, env = installed
    port, origin_port = free_port(), free_port()
    log = tmp_path / "demo.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            ["gwcore", "demo", "--port", str(port), "--origin-port", str(origin_port)],
            cwd=clone, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=out,
            start_new_session=True)
    try:
        assert shutil.which("gwcore", path=env["PATH"]) == str(venv / "bin" / "gwcore")
        _wait(lambda: _listening(port), 30, f"listening on {port}", proc, log)
        base = f"http://{HOST}:{port}"
        items = httpx.get(f"{base}/api/items", timeout=10)
        assert items.status_code == 200, items.text
        assert items.json()[0]["id"] == 1
        assert items.headers["via"] == "1.1 gwcore"       # through the gateway, not around it
        assert f"curl -i {base}/api/items" in log.read_text()
        os.killpg(proc.pid, signal.SIGINT)                 # Ctrl-C: the terminal signals the group
        assert proc.wait(20) == 0, log.read_text(errors="replace")[-6000:]
        _wait(lambda: _free(port) and _free(origin_port), 10, "both ports free", proc, log,
              alive=False)
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(proc.pid, signal.SIGKILL)            # the origin child, if left behind
        except (ProcessLookupError, PermissionError):
            pass
        proc.wait(5)
