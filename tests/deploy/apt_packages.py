"""Debian packages the deploy tests need (promtool, systemd-analyze), installed when missing:
the suite must pass on a machine that has only what the project installs."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest


def _apt(*args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    sudo = [] if os.geteuid() == 0 else ["sudo", "-n"]
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    return subprocess.run([*sudo, "apt-get", *args], check=False, capture_output=True,
                          text=True, timeout=timeout, env=env, stdin=subprocess.DEVNULL)


def apt_install(package: str, needed_for: str, *options: str) -> None:
    """``apt-get install`` package (after an ``apt-get update`` if the first try fails);
    the test fails, saying why, when that cannot be done."""
    if shutil.which("apt-get") is None:
        pytest.fail(f"{needed_for} is not on PATH and apt-get is not available to install it "
                    f"(Debian: apt-get install {package})")
    install = ("install", "-y", "-qq", *options, package)
    done = _apt(*install, timeout=600)
    if done.returncode != 0:
        _apt("update", "-qq", timeout=600)
        done = _apt(*install, timeout=600)
    if done.returncode != 0:
        pytest.fail(f"apt-get install {package} failed ({done.returncode}):\n"
                    f"{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
