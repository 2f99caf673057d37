"""Context values and the boot script, without synthesizing (no Node.js needed): what the app
refuses before building anything, the script's shell syntax, and the config check it runs on
the SSM parameter (with this checkout's gwcore.config)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from cdk_fixtures import CDK_DIR
from gwcore_cdk.settings import UNIT_FILE, Settings, SettingsError, unit_stop_timeout
from gwcore_cdk.user_data import (
    _CONFIG_CHECK,
    check_unit_paths,
    fetch_config_script,
    gateway_boot_commands,
)

pytestmark = pytest.mark.timeout(120)


def settings(**context: str) -> Settings:
    return Settings.from_context(context.get)


def test_defaults_build_from_a_clean_checkout() -> None:
    s = settings()
    assert s.regions == ("eu-west-1", "us-east-1")
    assert s.arch == "x86_64" and s.resolved_instance_type == "c7i.large"
    assert s.instance_count == 2 and s.resolved_max_instance_count == 4
    assert s.resolved_wheel_key == \
        f"wheels/gwcore-{s.gwcore_version}-cp311-cp311-manylinux_2_34_x86_64.whl"
    assert s.admin_port == 9901 and s.health_check_path == "/readyz"
    assert s.deregistration_delay >= s.drain_timeout == 30
    assert s.account is None  # env-agnostic: no lookups, synth works offline
    assert not s.elb_health_check and s.instance_warmup == 300
    assert "ExecStart=/opt/gwcore/venv/bin/gwcore serve" in s.unit_text


def test_context_strings_and_json_are_parsed() -> None:
    s = settings(regions="eu-central-1, ap-northeast-1", arch="arm64", instanceCount="5",
                 vpcCidrs='{"eu-central-1": "10.9.0.0/16"}', refreshAlarms="false",
                 availabilityZones='{"eu-central-1": ["eu-central-1a", "eu-central-1b"]}')
    assert s.regions == ("eu-central-1", "ap-northeast-1")
    assert s.arch == "aarch64" and s.resolved_instance_type == "c7g.large"
    assert s.resolved_wheel_key.endswith("_aarch64.whl")
    assert s.instance_count == 5 and not s.refresh_alarms
    assert s.vpc_cidr_for("eu-central-1") == "10.9.0.0/16"
    assert s.vpc_cidr_for("ap-northeast-1") == "10.41.0.0/16"  # distinct per region
    assert Settings.from_context({"regions": ["us-west-2"]}.get).regions == ("us-west-2",)


@pytest.mark.parametrize(("context", "key"), [
    ({"arch": "x86_64", "instanceType": "c7g.large"}, "instanceType"),
    ({"arch": "arm64", "instanceType": "c7i.large"}, "instanceType"),
    ({"arch": "sparc"}, "arch"),
    ({"instanceCount": "0"}, "instanceCount"),
    ({"instanceCount": "two"}, "instanceCount"),
    ({"instanceCount": "4", "maxInstanceCount": "3"}, "maxInstanceCount"),
    ({"deregistrationDelay": "20"}, "deregistrationDelay"),  # < drainTimeout 30
    ({"drainTimeout": "45", "deregistrationDelay": "60"}, "drainTimeout"),  # TimeoutStopSec=45
    ({"adminPort": "443"}, "adminPort"),
    ({"wheelKey": "gwcore.tar.gz"}, "wheelKey"),
    ({"arch": "arm64", "wheelKey": "w/gwcore-1-cp311-cp311-manylinux_2_34_x86_64.whl"},
     "wheelKey"),
    ({"configParameter": "gateway.yaml"}, "configParameter"),
    ({"regions": "eu-west-1,eu-west-1"}, "regions"),
    ({"regions": "moon-base-1"}, "regions"),
    ({"vpcIds": '{"eu-west-1": "vpc-0123456789abcdef0"}'}, "vpcIds"),  # lookup needs account
    ({"availabilityZones": '{"eu-west-1": ["eu-west-1a"]}'}, "availabilityZones"),
    ({"availabilityZones": '{"eu-west-1": ["us-east-1a", "us-east-1b"]}'},
     "availabilityZones"),
    ({"redisReplicas": "0"}, "redisReplicas"),
    ({"hostedZoneId": "Z123"}, "hostedZoneId"),
    ({"domainName": "gw.example.com", "hostedZoneName": "example.org",
      "hostedZoneId": "Z123"}, "hostedZoneName"),
    ({"refreshMinHealthyPercentage": "50", "refreshMaxHealthyPercentage": "200"},
     "refreshMinHealthyPercentage"),
    ({"refreshMinHealthyPercentage": "100", "refreshMaxHealthyPercentage": "100"},
     "refreshMaxHealthyPercentage"),
    ({"amiIds": '{"eu-west-1": "ubuntu"}'}, "amiIds"),
    ({"account": "12345"}, "account"),
])
def test_bad_context_is_refused_naming_the_key(context: dict[str, str], key: str) -> None:
    with pytest.raises(SettingsError, match=rf"context {re.escape(key)}\b"):
        settings(**context)


def test_drain_fits_the_committed_unit() -> None:
    stop = unit_stop_timeout(UNIT_FILE.read_text())
    s = settings()
    assert s.drain_timeout < stop <= s.deregistration_delay + 30
    assert unit_stop_timeout("[Service]\nTimeoutStopSec=2min\n") == 120
    assert unit_stop_timeout("[Service]\n") == 90


def test_unit_paths_are_checked() -> None:
    check_unit_paths(UNIT_FILE.read_text())
    with pytest.raises(ValueError, match="ExecStart"):
        check_unit_paths(UNIT_FILE.read_text().replace("/opt/gwcore/venv", "/usr/local"))


def _script(**overrides: object) -> str:
    s = settings()
    kw: dict = {"region": "eu-west-1", "bucket": "gwcore-artifacts-eu-west-1",
                "asg_name": "gwcore-eu-west-1",
                "wheel_key": s.resolved_wheel_key, "parameter": s.config_parameter,
                "admin_port": s.admin_port, "dereg": s.deregistration_delay,
                "ports": s.public_ports, "unit_text": s.unit_text}
    kw.update(overrides)
    return "#!/bin/bash\n" + "\n".join(gateway_boot_commands(**kw)) + "\n"


def test_boot_script_is_valid_bash(tmp_path: Path) -> None:
    script = tmp_path / "user-data.sh"
    script.write_text(_script())
    done = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True,
                          check=False)
    assert done.returncode == 0, done.stderr
    helper = tmp_path / "gwcore-fetch-config"
    helper.write_text(fetch_config_script("eu-west-1", "/gwcore/gateway.yaml", 9901, 45,
                                          (80, 443)))
    done = subprocess.run(["bash", "-n", str(helper)], capture_output=True, text=True,
                          check=False)
    assert done.returncode == 0, done.stderr


def test_boot_script_steps_in_order() -> None:
    text = _script()
    steps = [
        "boot_result() {",
        "--lifecycle-hook-name gwcore-boot --auto-scaling-group-name gwcore-eu-west-1",
        "trap 'rc=$?; if [ $rc -ne 0 ]; then boot_result ABANDON; fi' EXIT",
        "dnf install -y -q python3.11",
        "useradd --system",
        "aws s3 cp --only-show-errors s3://gwcore-artifacts-eu-west-1/wheels/gwcore-",
        "python3.11 -m venv /opt/gwcore/venv",
        "/opt/gwcore/venv/bin/pip install",
        "aws ssm get-parameter --region eu-west-1 --name \"$param\" --with-decryption",
        "mv -f \"$tmp\" /etc/gwcore/gateway.yaml",
        "cat > /etc/systemd/system/gwcore.service <<'GWCORE_EOF'",
        "ExecStart=/opt/gwcore/venv/bin/gwcore serve --config /etc/gwcore/gateway.yaml",
        "systemctl daemon-reload",
        "systemctl enable --now gwcore",
        "http://127.0.0.1:9901/healthz",
        "boot_result CONTINUE",
    ]
    pos = 0
    for step in steps:  # each after the one before
        found = text.find(step, pos)
        assert found >= 0, f"{step!r} missing after offset {pos}"
        pos = found + len(step)
    # the unit is installed verbatim
    assert UNIT_FILE.read_text() in text


@pytest.mark.parametrize(("tail", "result"), [
    ("false", "ABANDON"),  # any failing step
    ("boot_result CONTINUE", "CONTINUE"),  # the script's last line
])
def test_boot_script_reports_to_the_launch_hook(tmp_path: Path, tail: str,
                                                result: str) -> None:
    """The script's own trap and reporting function, run with curl and aws stubbed."""
    lines = _script().splitlines()
    head = lines[:lines.index("# Python 3.11: the wheel is cp311")]
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "calls"
    for name, out in (("curl", "i-0123456789abcdef0"), ("aws", "")):
        stub = bin_dir / name
        stub.write_text(f'#!/bin/sh\necho "{name} $*" >> {log}\necho {out}\n')
        stub.chmod(0o755)
    script = tmp_path / "boot.sh"
    script.write_text("\n".join([*head, tail]) + "\n")
    done = subprocess.run(["bash", str(script)], capture_output=True, text=True, check=False,
                          env={"PATH": f"{bin_dir}:/usr/bin:/bin"}, timeout=30)
    assert (done.returncode == 0) == (result == "CONTINUE"), done.stderr
    (call,) = [c for c in log.read_text().splitlines() if c.startswith("aws ")]
    assert call == ("aws autoscaling complete-lifecycle-action --lifecycle-hook-name "
                    "gwcore-boot --auto-scaling-group-name gwcore-eu-west-1 --instance-id "
                    f"i-0123456789abcdef0 --lifecycle-action-result {result}")


def test_boot_script_quotes_what_it_is_given() -> None:
    text = _script(wheel_key="wheels/a b/gwcore-1-cp311-cp311-manylinux_2_34_x86_64.whl")
    assert "'s3://gwcore-artifacts-eu-west-1/wheels/a b/gwcore-1-" in text


# --- the config check the boot script runs on the SSM parameter ------------------------------

GOOD = """\
listeners:
  - {name: http, address: "0.0.0.0:80"}
  - {name: https, address: "0.0.0.0:443"}
clusters:
  - name: app
    endpoints: ["10.0.0.10:8080"]
routes:
  - {cluster: app}
admin: {address: "0.0.0.0:9901"}
"""


def _check(tmp_path: Path, config: str) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "gateway.yaml"
    path.write_text(config)
    return subprocess.run([sys.executable, "-c", _CONFIG_CHECK, str(path), "9901", "45",
                           "80,443", "/gwcore/gateway.yaml"],
                          capture_output=True, text=True, timeout=60, check=False)


def _gwcore_parses(tmp_path: Path) -> None:
    probe = subprocess.run([sys.executable, "-c", "import gwcore.config"],
                           capture_output=True, text=True, check=False)
    if probe.returncode != 0:
        pytest.fail(f"gwcore is not importable here: {probe.stderr[-500:]}")


def test_config_check_accepts_a_fitting_config(tmp_path: Path) -> None:
    _gwcore_parses(tmp_path)
    done = _check(tmp_path, GOOD)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize(("config", "why"), [
    (GOOD.replace('admin: {address: "0.0.0.0:9901"}\n', ""), "no admin listener"),
    (GOOD.replace("0.0.0.0:9901", "127.0.0.1:9901"), "is loopback"),
    (GOOD.replace("0.0.0.0:9901", "0.0.0.0:9902"), "checks port 9901"),
    (GOOD.replace('  - {name: http, address: "0.0.0.0:80"}\n', ""), r"port\(s\) \[80\]"),
    (GOOD + "drain_timeout: 60s\n", "deregistration delay"),
    (GOOD + "listeners: oops\n", "/gwcore/gateway.yaml"),
])
def test_config_check_refuses_what_the_load_balancer_cannot_use(
        tmp_path: Path, config: str, why: str) -> None:
    _gwcore_parses(tmp_path)
    done = _check(tmp_path, config)
    assert done.returncode != 0
    assert re.search(why, done.stderr), done.stderr


def test_readme_names_every_context_key() -> None:
    readme = (CDK_DIR.parent / "README.md").read_text()
    source = (CDK_DIR / "gwcore_cdk" / "settings.py").read_text()
    keys = re.findall(r'take\("(\w+)"', source)
    assert len(keys) > 20
    missing = [k for k in keys if f"`{k}`" not in readme]
    assert not missing, f"deploy/README.md does not document: {missing}"


def test_cdk_json_runs_the_app() -> None:
    cdk_json = json.loads((CDK_DIR / "cdk.json").read_text())
    assert cdk_json["app"] == "python3 app.py"
    assert cdk_json["versionReporting"] is False  # same templates with and without the CLI
