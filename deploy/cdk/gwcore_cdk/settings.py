"""The app's settings: CDK context values (``-c key=value`` or ``context`` in cdk.json), with
defaults here so that ``python app.py`` and ``cdk synth`` build the same templates offline.

Every value is checked before a construct is built, so a bad ``-c`` fails with the key's name
instead of a CloudFormation error half-way through a deployment.
"""

from __future__ import annotations

import ipaddress
import json
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[3]
UNIT_FILE = REPO_ROOT / "deploy" / "gwcore.service"

# `-c arch=...` spellings → the wheel's platform tag
ARCHES = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "aarch64", "arm64": "aarch64"}
DEFAULT_INSTANCE_TYPE = {"x86_64": "c7i.large", "aarch64": "c7g.large"}
DEFAULT_WHEEL_KEY = "wheels/gwcore-{version}-cp311-cp311-manylinux_2_34_{arch}.whl"
PUBLIC_PORTS = (80, 443)
# EC2 families on Graviton: a1, or a generation digit followed by "g" (c7g, m6gd, t4g, c7gn)
_GRAVITON = re.compile(r"^(a1|[a-z]+\d+g[a-z]*)$")
_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d$")
_SSM_NAME = re.compile(r"^/[A-Za-z0-9_.\-/]+$")


class SettingsError(ValueError):
    """A context value the app cannot build from (the message names the key)."""


def _project_version() -> str:
    try:
        with open(REPO_ROOT / "pyproject.toml", "rb") as f:
            return str(tomllib.load(f)["project"]["version"])
    except (OSError, KeyError, tomllib.TOMLDecodeError):
        return "0.1.0"


def unit_stop_timeout(unit_text: str) -> float:
    """``TimeoutStopSec=`` of a systemd unit in seconds (systemd's default 90 s if absent)."""
    m = re.search(r"^TimeoutStopSec=(\d+)(s|min)?\s*$", unit_text, re.MULTILINE)
    if not m:
        return 90.0
    return float(m.group(1)) * (60 if m.group(2) == "min" else 1)


@dataclass(frozen=True)
class Settings:
    prefix: str = "gwcore"
    regions: tuple[str, ...] = ("eu-west-1", "us-east-1")
    global_region: str = "us-east-1"
    account: str | None = None
    arch: str = "x86_64"
    instance_type: str = ""  # "" → DEFAULT_INSTANCE_TYPE[arch]
    instance_count: int = 2
    max_instance_count: int = 0  # 0 → 2 × instance_count
    artifact_bucket: str = "gwcore-artifacts-{region}"
    wheel_key: str = DEFAULT_WHEEL_KEY
    gwcore_version: str = field(default_factory=_project_version)
    config_parameter: str = "/gwcore/gateway.yaml"
    config_kms_key_arn: str | None = None
    admin_port: int = 9901
    drain_timeout: int = 30
    deregistration_delay: int = 45
    health_check_path: str = "/readyz"
    ami_ids: dict[str, str] = field(default_factory=dict)  # region → AMI (pinned)
    vpc_ids: dict[str, str] = field(default_factory=dict)
    vpc_cidrs: dict[str, str] = field(default_factory=dict)
    availability_zones: dict[str, list[str]] = field(default_factory=dict)
    max_azs: int = 3
    nat_gateways: int | None = None  # None → one per AZ
    redis_node_type: str = "cache.t4g.medium"
    redis_replicas: int = 1
    redis_engine_version: str = "7.1"
    alarm_email: str | None = None
    domain_name: str = "gw.example.com"
    hosted_zone_id: str | None = None
    hosted_zone_name: str | None = None
    region_health_check_path: str | None = None  # None → TCP check on 443
    refresh_min_healthy_percentage: int = 100
    refresh_max_healthy_percentage: int = 150
    refresh_alarms: bool = True
    instance_warmup: int = 300
    elb_health_check: bool = False
    unit_text: str = ""  # deploy/gwcore.service, read by from_context

    # ---- derived -----------------------------------------------------------------------
    @property
    def resolved_instance_type(self) -> str:
        return self.instance_type or DEFAULT_INSTANCE_TYPE[self.arch]

    @property
    def resolved_max_instance_count(self) -> int:
        return self.max_instance_count or 2 * self.instance_count

    @property
    def public_ports(self) -> tuple[int, ...]:
        return PUBLIC_PORTS

    def bucket_for(self, region: str) -> str:
        return self.artifact_bucket.replace("{region}", region)

    @property
    def resolved_wheel_key(self) -> str:
        return (self.wheel_key.replace("{version}", self.gwcore_version)
                .replace("{arch}", self.arch))

    def vpc_cidr_for(self, region: str) -> str:
        return self.vpc_cidrs.get(region, f"10.{40 + self.regions.index(region)}.0.0/16")

    def stack_name(self, region: str) -> str:
        return f"{self.prefix}-{region}"

    @property
    def global_stack_name(self) -> str:
        return f"{self.prefix}-global"

    # ---- building ----------------------------------------------------------------------
    @classmethod
    def from_context(cls, get: Any, env_account: str | None = None,
                     unit_file: Path = UNIT_FILE) -> Settings:
        """Settings from a ``try_get_context``-like callable (None for an absent key).
        ``env_account``: CDK_DEFAULT_ACCOUNT, used when no ``account`` is given."""
        kw: dict[str, Any] = {}

        def take(key: str, attr: str, conv: Any) -> None:
            raw = get(key)
            if raw is None or raw == "":
                return
            try:
                kw[attr] = conv(raw)
            except (TypeError, ValueError, json.JSONDecodeError) as e:
                raise SettingsError(f"context {key}={raw!r}: {e}") from None

        take("prefix", "prefix", str)
        take("regions", "regions", lambda v: tuple(_str_list(v)))
        take("globalRegion", "global_region", str)
        take("account", "account", str)
        take("arch", "arch", _arch)
        take("instanceType", "instance_type", str)
        take("instanceCount", "instance_count", _int)
        take("maxInstanceCount", "max_instance_count", _int)
        take("artifactBucket", "artifact_bucket", str)
        take("wheelKey", "wheel_key", str)
        take("gwcoreVersion", "gwcore_version", str)
        take("configParameter", "config_parameter", str)
        take("configKmsKeyArn", "config_kms_key_arn", str)
        take("adminPort", "admin_port", _int)
        take("drainTimeout", "drain_timeout", _int)
        take("deregistrationDelay", "deregistration_delay", _int)
        take("healthCheckPath", "health_check_path", str)
        take("amiIds", "ami_ids", _str_dict)
        take("vpcIds", "vpc_ids", _str_dict)
        take("vpcCidrs", "vpc_cidrs", _str_dict)
        take("availabilityZones", "availability_zones", _az_dict)
        take("maxAzs", "max_azs", _int)
        take("natGateways", "nat_gateways", _int)
        take("redisNodeType", "redis_node_type", str)
        take("redisReplicas", "redis_replicas", _int)
        take("redisEngineVersion", "redis_engine_version", str)
        take("alarmEmail", "alarm_email", str)
        take("domainName", "domain_name", str)
        take("hostedZoneId", "hosted_zone_id", str)
        take("hostedZoneName", "hosted_zone_name", str)
        take("regionHealthCheckPath", "region_health_check_path", str)
        take("refreshMinHealthyPercentage", "refresh_min_healthy_percentage", _int)
        take("refreshMaxHealthyPercentage", "refresh_max_healthy_percentage", _int)
        take("refreshAlarms", "refresh_alarms", _bool)
        take("instanceWarmup", "instance_warmup", _int)
        take("elbHealthCheck", "elb_health_check", _bool)
        if "account" not in kw and env_account:
            kw["account"] = env_account
        try:
            kw["unit_text"] = unit_file.read_text(encoding="utf-8")
        except OSError as e:
            raise SettingsError(f"{unit_file}: {e.strerror}: the app installs this unit on "
                                "every instance") from None
        s = cls(**kw)
        s.validate()
        return s

    def validate(self) -> None:
        def bad(key: str, why: str) -> SettingsError:
            return SettingsError(f"context {key}: {why}")

        if not re.fullmatch(r"[a-z][a-z0-9-]{0,20}", self.prefix):
            raise bad("prefix", f"{self.prefix!r}: lower-case letters, digits, '-' (≤ 21)")
        if not self.regions:
            raise bad("regions", "at least one region")
        if len(set(self.regions)) != len(self.regions):
            raise bad("regions", f"listed twice: {list(self.regions)}")
        for r in (*self.regions, self.global_region):
            if not _REGION.match(r):
                raise bad("regions/globalRegion", f"{r!r} is not a region name")
        if self.account is not None and not re.fullmatch(r"\d{12}", self.account):
            raise bad("account", f"{self.account!r} is not a 12-digit account id")
        if self.arch not in DEFAULT_INSTANCE_TYPE:
            raise bad("arch", f"{self.arch!r}: x86_64 or aarch64 (arm64)")
        family = self.resolved_instance_type.split(".")[0]
        if "." not in self.resolved_instance_type:
            raise bad("instanceType", f"{self.resolved_instance_type!r} is not an instance type")
        graviton = bool(_GRAVITON.match(family))
        if graviton != (self.arch == "aarch64"):
            raise bad("instanceType", f"{self.resolved_instance_type} runs "
                      f"{'aarch64' if graviton else 'x86_64'} but arch is {self.arch}: the "
                      "wheel would not install")
        if self.instance_count < 1:
            raise bad("instanceCount", "at least 1")
        if self.resolved_max_instance_count < self.instance_count:
            raise bad("maxInstanceCount", "must be at least instanceCount")
        key = self.resolved_wheel_key
        if not key.endswith(".whl") or key.startswith("/") or "{" in key:
            raise bad("wheelKey", f"{key!r}: an S3 key of a .whl file ({{version}}, "
                      "{arch} are filled in)")
        if not key.endswith(f"_{self.arch}.whl"):
            raise bad("wheelKey", f"{key!r} is not a wheel for {self.arch}")
        if not re.fullmatch(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]", self.bucket_for("us-east-1")):
            raise bad("artifactBucket", f"{self.artifact_bucket!r} is not a bucket name")
        if not _SSM_NAME.match(self.config_parameter):
            raise bad("configParameter", f"{self.config_parameter!r}: a /-rooted SSM name")
        if not 1 <= self.admin_port <= 65535 or self.admin_port in PUBLIC_PORTS:
            raise bad("adminPort", f"{self.admin_port}: a port other than 80 and 443")
        if not self.health_check_path.startswith("/"):
            raise bad("healthCheckPath", "must start with /")
        if self.drain_timeout < 1:
            raise bad("drainTimeout", "at least 1 s")
        if not self.drain_timeout <= self.deregistration_delay <= 3600:
            raise bad("deregistrationDelay", f"{self.deregistration_delay} s: between "
                      f"drainTimeout ({self.drain_timeout} s) and 3600 s, so a target leaves "
                      "the load balancer no sooner than gwcore's drain ends")
        stop = unit_stop_timeout(self.unit_text)
        if self.drain_timeout >= stop:
            raise bad("drainTimeout", f"{self.drain_timeout} s does not fit in the unit's "
                      f"TimeoutStopSec={stop:g} (deploy/gwcore.service): systemd would kill "
                      "the drain")
        for region, ami in self.ami_ids.items():
            if not re.fullmatch(r"ami-[0-9a-f]{8,17}", ami):
                raise bad("amiIds", f"{region}: {ami!r} is not an AMI id")
        for region, cidr in self.vpc_cidrs.items():
            try:
                net = ipaddress.ip_network(cidr)
            except ValueError as e:
                raise bad("vpcCidrs", f"{region}: {e}") from None
            if not 16 <= net.prefixlen <= 20:
                raise bad("vpcCidrs", f"{region}: {cidr}: /16 to /20")
        for region, azs in self.availability_zones.items():
            if not azs or any(not az.startswith(region) for az in azs):
                raise bad("availabilityZones", f"{region}: {azs} are not zones of {region}")
            if len(azs) < 2:
                raise bad("availabilityZones", f"{region}: Multi-AZ Redis needs two zones")
        if self.vpc_ids and self.account is None:
            raise bad("vpcIds", "importing a VPC looks it up: give `account` (or credentials, "
                      "which set CDK_DEFAULT_ACCOUNT) and commit the cdk.context.json it writes")
        if not 2 <= self.max_azs <= 6:
            raise bad("maxAzs", "2 to 6")
        if self.nat_gateways is not None and self.nat_gateways < 1:
            raise bad("natGateways", "at least 1: instances install from PyPI and reach origins")
        if self.redis_replicas < 1 or self.redis_replicas > 5:
            raise bad("redisReplicas", "1 to 5: Multi-AZ with automatic failover needs one")
        if not self.redis_node_type.startswith("cache."):
            raise bad("redisNodeType", f"{self.redis_node_type!r} is not a cache node type")
        if not re.fullmatch(r"([a-z0-9-]+\.)+[a-z]{2,}", self.domain_name):
            raise bad("domainName", f"{self.domain_name!r} is not a DNS name")
        zone = self.hosted_zone_name or self.domain_name
        if not (self.domain_name == zone or self.domain_name.endswith("." + zone)):
            raise bad("hostedZoneName", f"{self.domain_name} is not in zone {zone}")
        if bool(self.hosted_zone_id) != bool(self.hosted_zone_name):
            raise bad("hostedZoneId", "give hostedZoneId and hostedZoneName together (neither: "
                      "the GlobalStack creates a zone for domainName)")
        if self.region_health_check_path is not None and \
                not self.region_health_check_path.startswith("/"):
            raise bad("regionHealthCheckPath", "must start with /")
        lo, hi = self.refresh_min_healthy_percentage, self.refresh_max_healthy_percentage
        if not (0 <= lo <= 100 and 100 <= hi <= 200 and hi - lo <= 100):
            raise bad("refreshMinHealthyPercentage", f"{lo}/{hi}: min 0..100, max 100..200, "
                      "max - min ≤ 100 (EC2 Auto Scaling's limits)")
        if hi == 100 and lo == 100:
            raise bad("refreshMaxHealthyPercentage", "with min 100 the refresh needs room "
                      "above 100 to launch a replacement first")
        if not 0 <= self.instance_warmup <= 3600:
            raise bad("instanceWarmup", "0 to 3600 s")


def _str_list(v: Any) -> list[str]:
    if isinstance(v, str):
        v = json.loads(v) if v.lstrip().startswith("[") else v.split(",")
    if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
        raise ValueError("a list of strings (JSON, or comma-separated)")
    return [x.strip() for x in v if x.strip()]


def _str_dict(v: Any) -> dict[str, str]:
    if isinstance(v, str):
        v = json.loads(v)
    if not isinstance(v, dict) or not all(isinstance(x, str) for x in v.values()):
        raise ValueError("a JSON object of strings")
    return dict(v)


def _az_dict(v: Any) -> dict[str, list[str]]:
    if isinstance(v, str):
        v = json.loads(v)
    if not isinstance(v, dict):
        raise TypeError('a JSON object {"region": ["zone", ...]}')
    return {k: _str_list(x) for k, x in v.items()}


def _int(v: Any) -> int:
    if isinstance(v, bool):
        raise TypeError("a whole number")
    if isinstance(v, int):
        return v
    if isinstance(v, str) and re.fullmatch(r"-?\d+", v.strip()):
        return int(v)
    raise ValueError("a whole number")


def _bool(v: Any) -> bool:
    if isinstance(v, bool):
        return v
    if isinstance(v, str) and v.lower() in ("true", "false", "1", "0", "yes", "no"):
        return v.lower() in ("true", "1", "yes")
    raise ValueError("true or false")


def _arch(v: Any) -> str:
    arch = ARCHES.get(str(v).lower())
    if arch is None:
        raise ValueError("x86_64 or aarch64 (arm64)")
    return arch
