"""The boot script of a gateway instance (Amazon Linux 2023), as a list of shell lines for
``ec2.UserData.for_linux()``: Python 3.11 and the gwcore wheel from the artefact bucket in a
venv at /opt/gwcore/venv, /etc/gwcore/gateway.yaml from an SSM parameter (checked against what
the load balancer expects), deploy/gwcore.service installed verbatim, gwcore started; then it
tells the Auto Scaling group's launch hook CONTINUE (or ABANDON when a step failed), so an
instance takes traffic only once gwcore serves.

Paths follow deploy/gwcore.service (ExecStart=/opt/gwcore/venv/bin/gwcore serve --config
/etc/gwcore/gateway.yaml, User=gwcore); ``check_unit_paths`` refuses a unit that moved them.
"""

from __future__ import annotations

import shlex

VENV = "/opt/gwcore/venv"
WHEELS = "/opt/gwcore/wheels"
CONFIG = "/etc/gwcore/gateway.yaml"
UNIT_PATH = "/etc/systemd/system/gwcore.service"
FETCH_CONFIG = "/usr/local/sbin/gwcore-fetch-config"
BOOT_HOOK = "gwcore-boot"  # the Auto Scaling group's launch lifecycle hook
_EOF = "GWCORE_EOF"

# Run by the venv's Python on the fetched config before it replaces the live one: gwcore's own
# parser, then what the load balancer in front relies on. argv: path admin_port dereg ports name
_CONFIG_CHECK = '''\
import ipaddress
import sys

from gwcore.config import ConfigError, load

path, admin_port, dereg, ports, name = sys.argv[1:6]
try:
    cfg = load(path)
except ConfigError as e:
    sys.exit(f"gwcore-fetch-config: {name}: {e}")
problems = []
if cfg.admin is None:
    problems.append(f"no admin listener: the load balancer checks /readyz on port {admin_port}")
else:
    if cfg.admin.port != int(admin_port):
        problems.append(f"admin.address {cfg.admin.address}: the load balancer checks port "
                        f"{admin_port}")
    if ipaddress.ip_address(cfg.admin.host).is_loopback:
        problems.append(f"admin.address {cfg.admin.address} is loopback: health checks come "
                        "from the load balancer's addresses in the VPC")
missing = {int(p) for p in ports.split(",")} - {lst.port for lst in cfg.listeners}
if missing:
    problems.append(f"no listener on port(s) {sorted(missing)}, which the load balancer "
                    "forwards")
if cfg.drain_timeout > float(dereg):
    problems.append(f"drain_timeout {cfg.drain_timeout:g}s is longer than the target "
                    f"groups' deregistration delay ({dereg}s)")
if problems:
    sys.exit(f"gwcore-fetch-config: {name}: " + "; ".join(problems))
'''


def check_unit_paths(unit_text: str) -> None:
    """ValueError unless the unit runs the venv and the config where this script puts them."""
    for needed in (f"ExecStart={VENV}/bin/gwcore serve --config {CONFIG}", "User=gwcore"):
        if needed not in unit_text:
            raise ValueError(f"deploy/gwcore.service no longer has {needed!r}: update "
                             "deploy/cdk/gwcore_cdk/user_data.py to match")
    if _EOF in unit_text:
        raise ValueError(f"deploy/gwcore.service contains {_EOF}, the here-document marker")


def fetch_config_script(region: str, parameter: str, admin_port: int, dereg: int,
                        ports: tuple[int, ...]) -> str:
    """/usr/local/sbin/gwcore-fetch-config: SSM parameter → checked → /etc/gwcore/gateway.yaml.
    Also what an operator runs (SSM Run Command) after changing the parameter, before
    ``systemctl reload gwcore``."""
    q = shlex.quote
    port_list = ",".join(str(p) for p in ports)
    return f"""#!/bin/bash
# Installed by the gwcore CDK app (deploy/cdk). Writes {CONFIG} from the SSM parameter
# {parameter} (or $1) after checking it; then `systemctl reload gwcore` applies it.
set -euo pipefail
param=${{1:-{parameter}}}
tmp=$(mktemp /etc/gwcore/.gateway.yaml.XXXXXX)
trap 'rm -f "$tmp"' EXIT
aws ssm get-parameter --region {q(region)} --name "$param" --with-decryption \\
  --query Parameter.Value --output text > "$tmp"
{VENV}/bin/python - "$tmp" {admin_port} {dereg} {port_list} "$param" <<'PY'
{_CONFIG_CHECK}PY
chown root:gwcore "$tmp"
chmod 0640 "$tmp"
mv -f "$tmp" {CONFIG}
trap - EXIT
"""


def gateway_boot_commands(*, region: str, bucket: str, wheel_key: str, parameter: str,
                          admin_port: int, dereg: int, ports: tuple[int, ...],
                          unit_text: str, asg_name: str, up_timeout: int = 60) -> list[str]:
    """The user data's lines (after CDK's ``#!/bin/bash``). The script ends by reporting
    to the group's launch hook: CONTINUE once gwcore serves (systemd's READY=1, then /healthz
    on the admin port), ABANDON if any step failed (the instance is then replaced)."""
    check_unit_paths(unit_text)
    q = shlex.quote
    wheel = wheel_key.rsplit("/", 1)[-1]
    fetch = fetch_config_script(region, parameter, admin_port, dereg, ports)
    unit = unit_text if unit_text.endswith("\n") else unit_text + "\n"
    imds = "http://169.254.169.254/latest"
    return [
        "set -euo pipefail",
        f"export AWS_REGION={q(region)} AWS_DEFAULT_REGION={q(region)}",
        f"# to the launch hook {BOOT_HOOK}: ABANDON on any failure, CONTINUE at the end",
        "boot_result() {",
        (f"  token=$(curl -fsS -X PUT {imds}/api/token "
         "-H 'X-aws-ec2-metadata-token-ttl-seconds: 300')"),
        (f"  id=$(curl -fsS -H \"X-aws-ec2-metadata-token: $token\" "
         f"{imds}/meta-data/instance-id)"),
        (f"  aws autoscaling complete-lifecycle-action --lifecycle-hook-name {BOOT_HOOK} "
         f"--auto-scaling-group-name {q(asg_name)} --instance-id \"$id\" "
         "--lifecycle-action-result \"$1\" || true"),
        "}",
        "trap 'rc=$?; if [ $rc -ne 0 ]; then boot_result ABANDON; fi' EXIT",
        "# Python 3.11: the wheel is cp311",
        "dnf install -y -q python3.11 python3.11-pip",
        "# the account deploy/gwcore.service runs as (User=gwcore)",
        ("getent passwd gwcore >/dev/null || useradd --system --no-create-home "
         "--home-dir /opt/gwcore --shell /sbin/nologin gwcore"),
        f"install -d -m 0755 /opt/gwcore {WHEELS}",
        "install -d -m 0750 -o root -g gwcore /etc/gwcore",
        "# the gwcore wheel from the artefact bucket, into a venv",
        f"aws s3 cp --only-show-errors {q(f's3://{bucket}/{wheel_key}')} {q(f'{WHEELS}/{wheel}')}",
        f"python3.11 -m venv {VENV}",
        f"{VENV}/bin/pip install --quiet --disable-pip-version-check {q(f'{WHEELS}/{wheel}')}",
        f"{VENV}/bin/gwcore version",
        f"# {CONFIG} from the SSM parameter {parameter}",
        f"cat > {FETCH_CONFIG} <<'{_EOF}'",
        fetch + _EOF,
        f"chmod 0755 {FETCH_CONFIG}",
        FETCH_CONFIG,
        "# deploy/gwcore.service, as committed",
        f"cat > {UNIT_PATH} <<'{_EOF}'",
        unit + _EOF,
        "systemctl daemon-reload",
        "# Type=notify: returns once every worker serves",
        "systemctl enable --now gwcore",
        f"# the admin listener answers (at most {up_timeout} s); /readyz, which also needs a",
        "# healthy endpoint per cluster, is the load balancer's business from here",
        (f"timeout {up_timeout} bash -c 'until curl -fsS -o /dev/null "
         f"http://127.0.0.1:{admin_port}/healthz; do sleep 1; done'"),
        "boot_result CONTINUE",
    ]
