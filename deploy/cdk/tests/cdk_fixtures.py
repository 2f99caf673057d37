"""Fixtures of the CDK app's tests, shared by deploy/cdk/tests/conftest.py (``pytest
deploy/cdk``) and tests/deploy/test_cdk_app.py (the whole suite).

aws-cdk-lib runs its constructs in Node.js through jsii: ``node`` is taken from PATH, else
installed from Debian's ``nodejs`` package (apt-get update first if the install fails). Nothing
imports aws_cdk before that fixture ran. Apps are synthesized in-process (``build_app`` and
``aws_cdk.assertions.Template``), offline, without the cdk CLI; each distinct context is
synthesized once per session.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

CDK_DIR = Path(__file__).resolve().parents[1]
if str(CDK_DIR) not in sys.path:
    sys.path.insert(0, str(CDK_DIR))

# variables that would make the app read something other than the context a test passes
_ENV_INPUTS = ("CDK_CONTEXT_JSON", "CDK_DEFAULT_ACCOUNT", "CDK_DEFAULT_REGION", "CDK_OUTDIR")


def _apt(*args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    sudo = [] if os.geteuid() == 0 else ["sudo", "-n"]
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    return subprocess.run([*sudo, "apt-get", *args], check=False, capture_output=True,
                          text=True, timeout=timeout, env=env, stdin=subprocess.DEVNULL)


def _install_node() -> None:
    if shutil.which("apt-get") is None:
        pytest.fail("node is not on PATH and apt-get is not available to install it "
                    "(aws-cdk-lib needs Node.js: Debian's nodejs package)")
    install = ("install", "-y", "-qq", "nodejs")
    done = _apt(*install, timeout=600)
    if done.returncode != 0:
        _apt("update", "-qq", timeout=600)
        done = _apt(*install, timeout=600)
    if done.returncode != 0:
        pytest.fail(f"apt-get install nodejs failed ({done.returncode}):\n"
                    f"{done.stdout[-2000:]}\n{done.stderr[-2000:]}")


@pytest.fixture(scope="session")
def node() -> str:
    """Path of a Node.js for jsii (installed from Debian's nodejs when missing)."""
    path = shutil.which("node")
    if path is None:
        _install_node()
        path = shutil.which("node")
    assert path, "node missing after installing Debian's nodejs package"
    version = subprocess.run([path, "--version"], capture_output=True, text=True, check=True)
    assert version.stdout.startswith("v"), version
    return path


@dataclass
class Fleet:
    """One synthesized app: the Templates of its stacks, and the stacks themselves."""

    settings: Any
    regional: dict[str, Any]  # region → aws_cdk.assertions.Template
    global_: Any
    stacks: dict[str, Any]  # stack name → Stack
    assembly: Any

    def template_json(self, region: str | None = None) -> dict[str, Any]:
        return (self.global_ if region is None else self.regional[region]).to_json()

    def manifest(self) -> dict[str, Any]:
        """cdk.out/manifest.json (``missing``: context lookups the CLI would have to do)."""
        return json.loads((Path(self.assembly.directory) / "manifest.json").read_text())


@pytest.fixture(scope="session")
def synth(node: str, tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Fleet]:
    """``synth(**context)`` → Fleet, synthesized once per distinct context."""
    cache: dict[str, Fleet] = {}

    def _synth(**context: Any) -> Fleet:
        key = json.dumps(context, sort_keys=True)
        if key in cache:
            return cache[key]
        saved = {k: os.environ.pop(k) for k in _ENV_INPUTS if k in os.environ}
        try:
            import aws_cdk as cdk
            from aws_cdk.assertions import Template
            from gwcore_cdk.build import build_app
            from gwcore_cdk.settings import Settings

            outdir = tmp_path_factory.mktemp("cdk.out")
            app = cdk.App(context=context, outdir=str(outdir))
            settings = Settings.from_context(app.node.try_get_context)
            regional, global_stack = build_app(app, settings)
            assembly = app.synth()
            fleet = Fleet(
                settings=settings,
                regional={r: Template.from_stack(st) for r, st in regional.items()},
                global_=Template.from_stack(global_stack),
                stacks={st.stack_name: st for st in [*regional.values(), global_stack]},
                assembly=assembly)
        finally:
            os.environ.update(saved)
        cache[key] = fleet
        return fleet

    return _synth


@pytest.fixture(scope="session")
def fleet(synth: Callable[..., Fleet]) -> Fleet:
    """The app as ``cdk synth`` builds it from a clean checkout: every default."""
    return synth()


# a non-default fleet: one region, Graviton, three instances, three zones, an existing zone
CUSTOM_CONTEXT = {
    "regions": "ap-southeast-2",
    "globalRegion": "ap-southeast-2",
    "arch": "arm64",
    "instanceType": "c7g.xlarge",
    "instanceCount": "3",
    "availabilityZones": json.dumps({"ap-southeast-2": ["ap-southeast-2a", "ap-southeast-2b",
                                                        "ap-southeast-2c"]}),
    "natGateways": "1",
    "artifactBucket": "acme-gwcore-wheels",
    "wheelKey": "releases/gwcore-1.2.3-cp311-cp311-manylinux_2_34_aarch64.whl",
    "configParameter": "/acme/gwcore/gateway.yaml",
    "hostedZoneId": "Z0123456789ABCDEFGHIJ",
    "hostedZoneName": "example.net",
    "domainName": "edge.example.net",
    "regionHealthCheckPath": "/ping",
    "refreshAlarms": "false",
    "elbHealthCheck": "true",
    "alarmEmail": "ops@example.net",
}


@pytest.fixture(scope="session")
def custom_fleet(synth: Callable[..., Fleet]) -> Fleet:
    return synth(**CUSTOM_CONTEXT)


__all__ = ["CDK_DIR", "CUSTOM_CONTEXT", "Fleet", "custom_fleet", "fleet", "node", "synth"]
