"""The regional GatewayStack, synthesized offline (aws_cdk.assertions.Template): resource
counts, the NLB's listeners and health checks, Redis, the security groups, the instances'
boot script, the Auto Scaling group and its rollout, and the alarms."""

from __future__ import annotations

import ipaddress
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from cdk_fixtures import Fleet

pytestmark = pytest.mark.timeout(900)  # installing Node.js may need an apt-get update

REGIONS = ("eu-west-1", "us-east-1")
WORLD = {"0.0.0.0/0", "::/0"}

# what `cdk synth` makes of a default GatewayStack: two zones (Fn::GetAZs), a NAT gateway each
DEFAULT_COUNTS = {
    "AWS::EC2::VPC": 1,
    "AWS::EC2::Subnet": 4,
    "AWS::EC2::RouteTable": 4,
    "AWS::EC2::SubnetRouteTableAssociation": 4,
    "AWS::EC2::Route": 4,
    "AWS::EC2::InternetGateway": 1,
    "AWS::EC2::VPCGatewayAttachment": 1,
    "AWS::EC2::EIP": 2,
    "AWS::EC2::NatGateway": 2,
    "AWS::EC2::SecurityGroup": 2,
    "AWS::EC2::SecurityGroupIngress": 1,
    "AWS::EC2::LaunchTemplate": 1,
    "AWS::IAM::Role": 1,
    "AWS::IAM::Policy": 1,
    "AWS::IAM::InstanceProfile": 1,
    "AWS::AutoScaling::AutoScalingGroup": 1,
    "AWS::ElasticLoadBalancingV2::LoadBalancer": 1,
    "AWS::ElasticLoadBalancingV2::Listener": 2,
    "AWS::ElasticLoadBalancingV2::TargetGroup": 2,
    "AWS::ElastiCache::SubnetGroup": 1,
    "AWS::ElastiCache::ReplicationGroup": 1,
    "AWS::CloudWatch::Alarm": 3,
    "AWS::SNS::Topic": 1,
}


def resources(template: dict[str, Any], rtype: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in template["Resources"].items() if v["Type"] == rtype}


def only(template: dict[str, Any], rtype: str) -> dict[str, Any]:
    found = resources(template, rtype)
    assert len(found) == 1, (rtype, list(found))
    return next(iter(found.values()))["Properties"]


def user_data(template: dict[str, Any]) -> str:
    """The launch template's user data as the instance gets it (Fn::Base64 of a string, or
    of an Fn::Join whose parts are strings and intrinsics, shown as ${...})."""
    data = only(template, "AWS::EC2::LaunchTemplate")["LaunchTemplateData"]["UserData"]
    body = data["Fn::Base64"]
    if isinstance(body, str):
        return body
    sep, parts = body["Fn::Join"]
    return sep.join(p if isinstance(p, str) else "${" + json.dumps(p) + "}" for p in parts)


def ingress_rules(template: dict[str, Any]) -> list[dict[str, Any]]:
    """Every ingress rule: inline in AWS::EC2::SecurityGroup and standalone
    AWS::EC2::SecurityGroupIngress, each with ``_group`` (the group's logical id)."""
    rules = []
    for lid, sg in resources(template, "AWS::EC2::SecurityGroup").items():
        for rule in sg["Properties"].get("SecurityGroupIngress", []):
            rules.append({**rule, "_group": lid})
    for rule in resources(template, "AWS::EC2::SecurityGroupIngress").values():
        props = rule["Properties"]
        group = props.get("GroupId", {}).get("Fn::GetAtt", ["?"])[0]
        rules.append({**props, "_group": group})
    return rules


def covers(rule: dict[str, Any], port: int) -> bool:
    if str(rule.get("IpProtocol")) in ("-1", "all"):
        return True
    if rule.get("IpProtocol") not in ("tcp", "6"):
        return False
    return int(rule.get("FromPort", 0)) <= port <= int(rule.get("ToPort", 65535))


def source(rule: dict[str, Any]) -> Any:
    return rule.get("CidrIp") or rule.get("CidrIpv6") or rule.get("SourceSecurityGroupId") \
        or rule.get("SourcePrefixListId")


def open_to_world(rule: dict[str, Any]) -> bool:
    src = source(rule)
    return isinstance(src, str) and src in WORLD


# --- resource counts ---------------------------------------------------------------------------


@pytest.mark.parametrize("region", REGIONS)
def test_gateway_resource_counts(fleet: Fleet, region: str) -> None:
    template = fleet.regional[region]
    for rtype, count in DEFAULT_COUNTS.items():
        template.resource_count_is(rtype, count)
    assert len(fleet.template_json(region)["Resources"]) == sum(DEFAULT_COUNTS.values()) == 42
    # env-agnostic synth: nothing was looked up, so no credentials were needed
    assert "missing" not in fleet.manifest()


def test_stacks_are_named_per_region(fleet: Fleet) -> None:
    assert set(fleet.stacks) == {"gwcore-eu-west-1", "gwcore-us-east-1", "gwcore-global"}
    for region in REGIONS:
        assert fleet.stacks[f"gwcore-{region}"].region == region


# --- load balancer -----------------------------------------------------------------------------


@pytest.mark.parametrize("region", REGIONS)
def test_nlb_is_internet_facing_with_cross_zone(fleet: Fleet, region: str) -> None:
    from aws_cdk.assertions import Match

    fleet.regional[region].has_resource_properties(
        "AWS::ElasticLoadBalancingV2::LoadBalancer", {
            "Type": "network",
            "Scheme": "internet-facing",
            "LoadBalancerAttributes": Match.array_with([
                {"Key": "load_balancing.cross_zone.enabled", "Value": "true"}]),
        })


@pytest.mark.parametrize("region", REGIONS)
def test_listeners_pass_80_and_443_through_as_tcp(fleet: Fleet, region: str) -> None:
    t = fleet.template_json(region)
    groups = resources(t, "AWS::ElasticLoadBalancingV2::TargetGroup")
    seen = {}
    for listener in resources(t, "AWS::ElasticLoadBalancingV2::Listener").values():
        props = listener["Properties"]
        assert props["Protocol"] == "TCP"  # gwcore terminates TLS, not the NLB
        assert "Certificates" not in props and "SslPolicy" not in props
        (action,) = props["DefaultActions"]
        assert action["Type"] == "forward"
        group = groups[action["TargetGroupArn"]["Ref"]]["Properties"]
        assert group["Protocol"] == "TCP" and group["TargetType"] == "instance"
        seen[props["Port"]] = group["Port"]
    assert seen == {80: 80, 443: 443}


@pytest.mark.parametrize("region", REGIONS)
def test_target_health_is_readyz_on_the_admin_port(fleet: Fleet, region: str) -> None:
    groups = resources(fleet.template_json(region), "AWS::ElasticLoadBalancingV2::TargetGroup")
    assert len(groups) == 2
    for group in groups.values():
        props = group["Properties"]
        assert props["HealthCheckProtocol"] == "HTTP"
        assert props["HealthCheckPort"] == "9901"
        assert props["HealthCheckPath"] == "/readyz"
        assert props["Matcher"] == {"HttpCode": "200"}  # 503 while draining → out
        attrs = {a["Key"]: a["Value"] for a in props["TargetGroupAttributes"]}
        delay = int(attrs["deregistration_delay.timeout_seconds"])
        assert delay >= fleet.settings.drain_timeout == 30
        assert delay == 45


# --- Redis ---------------------------------------------------------------------------------


@pytest.mark.parametrize("region", REGIONS)
def test_redis_is_multi_az_and_encrypted(fleet: Fleet, region: str) -> None:
    t = fleet.template_json(region)
    redis = only(t, "AWS::ElastiCache::ReplicationGroup")
    assert redis["Engine"] == "redis"
    assert redis["MultiAZEnabled"] is True
    assert redis["AutomaticFailoverEnabled"] is True
    assert redis["TransitEncryptionEnabled"] is True
    assert redis["TransitEncryptionMode"] == "required"
    assert redis["AtRestEncryptionEnabled"] is True
    assert redis["NumCacheClusters"] >= 2  # a primary and a replica in another zone
    # in the private subnets, reachable from the gateway instances only
    subnets = only(t, "AWS::ElastiCache::SubnetGroup")["SubnetIds"]
    assert all("private" in s["Ref"] for s in subnets) and len(subnets) == 2
    (sg,) = redis["SecurityGroupIds"]
    rules = [r for r in ingress_rules(t) if r["_group"] == sg["Fn::GetAtt"][0]]
    assert len(rules) == 1 and rules[0]["FromPort"] == rules[0]["ToPort"] == 6379
    assert rules[0]["SourceSecurityGroupId"]["Fn::GetAtt"][0].startswith("GatewaySg")


# --- security groups -------------------------------------------------------------------------


@pytest.mark.parametrize("region", REGIONS)
def test_admin_port_is_never_open_to_the_world(fleet: Fleet, region: str) -> None:
    rules = ingress_rules(fleet.template_json(region))
    assert rules
    admin = fleet.settings.admin_port
    world_admin = [r for r in rules if covers(r, admin) and open_to_world(r)]
    assert not world_admin
    # ...and it is open from the VPC, which is where the NLB's health checks come from
    (vpc_rule,) = [r for r in rules if covers(r, admin)]
    assert vpc_rule["CidrIp"] == {"Fn::GetAtt": [vpc_rule["CidrIp"]["Fn::GetAtt"][0],
                                                 "CidrBlock"]}
    assert vpc_rule["CidrIp"]["Fn::GetAtt"][0].startswith("Vpc")


@pytest.mark.parametrize("region", REGIONS)
def test_only_the_public_ports_are_open_to_the_world(fleet: Fleet, region: str) -> None:
    rules = ingress_rules(fleet.template_json(region))
    world = [r for r in rules if open_to_world(r)]
    assert sorted((r["IpProtocol"], r["FromPort"], r["ToPort"]) for r in world) == \
        [("tcp", 80, 80), ("tcp", 443, 443)]
    # nothing else is a literal CIDR either
    others = [r for r in rules if r not in world and isinstance(source(r), str)]
    assert not others


def test_vpc_cidrs_differ_between_regions(fleet: Fleet) -> None:
    cidrs = [only(fleet.template_json(r), "AWS::EC2::VPC")["CidrBlock"] for r in REGIONS]
    nets = [ipaddress.ip_network(c) for c in cidrs]
    assert not nets[0].overlaps(nets[1])


# --- instances -----------------------------------------------------------------------------


@pytest.mark.parametrize("region", REGIONS)
def test_user_data_installs_wheel_config_and_unit(fleet: Fleet, region: str,
                                                  tmp_path: Path) -> None:
    s = fleet.settings
    script = user_data(fleet.template_json(region))
    key = s.resolved_wheel_key
    assert key == f"wheels/gwcore-{s.gwcore_version}-cp311-cp311-manylinux_2_34_x86_64.whl"
    assert f"aws s3 cp --only-show-errors s3://gwcore-artifacts-{region}/{key} " in script
    assert "python3.11 -m venv /opt/gwcore/venv" in script
    assert f"/opt/gwcore/venv/bin/pip install --quiet --disable-pip-version-check " \
           f"/opt/gwcore/wheels/{key.rsplit('/', 1)[1]}" in script
    assert f"aws ssm get-parameter --region {region} --name \"$param\" --with-decryption" \
        in script
    assert "param=${1:-/gwcore/gateway.yaml}" in script
    assert "mv -f \"$tmp\" /etc/gwcore/gateway.yaml" in script
    assert "cat > /etc/systemd/system/gwcore.service <<'GWCORE_EOF'\n" + s.unit_text in script
    assert "systemctl enable --now gwcore" in script
    path = tmp_path / "user-data.sh"
    path.write_text(script)
    done = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True,
                          check=False)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("region", REGIONS)
def test_instances_read_only_their_wheel_and_config(fleet: Fleet, region: str) -> None:
    policy = only(fleet.template_json(region), "AWS::IAM::Policy")["PolicyDocument"]
    text = json.dumps(policy)
    actions = sorted(st["Action"] for st in policy["Statement"])
    assert actions == ["autoscaling:CompleteLifecycleAction", "s3:GetObject",
                       "ssm:GetParameter"]
    assert f":s3:::gwcore-artifacts-{region}/{fleet.settings.resolved_wheel_key}" in text
    assert f":ssm:{region}:" in text and ":parameter/gwcore/gateway.yaml" in text
    # the one wildcard: the group's id in its ARN, whose name is fixed
    group_arn = f"autoScalingGroup:*:autoScalingGroupName/gwcore-{region}"
    assert text.count("*") == 1 and group_arn in text


@pytest.mark.parametrize("region", REGIONS)
def test_launch_template(fleet: Fleet, region: str) -> None:
    t = fleet.template_json(region)
    data = only(t, "AWS::EC2::LaunchTemplate")["LaunchTemplateData"]
    assert data["InstanceType"] == "c7i.large"
    assert data["MetadataOptions"]["HttpTokens"] == "required"  # IMDSv2
    (disk,) = data["BlockDeviceMappings"]
    assert disk["Ebs"]["Encrypted"] is True
    # Amazon Linux 2023 for the wheel's architecture, resolved at deploy time
    (param,) = [p for p in t["Parameters"] if p.startswith("SsmParameterValue")]
    assert t["Parameters"][param]["Default"] == \
        "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-6.1-x86_64"


@pytest.mark.parametrize("region", REGIONS)
def test_auto_scaling_group(fleet: Fleet, region: str) -> None:
    t = fleet.template_json(region)
    (asg,) = resources(t, "AWS::AutoScaling::AutoScalingGroup").values()
    props = asg["Properties"]
    assert props["MinSize"] == "2" and props["MaxSize"] == "4"
    assert props["AutoScalingGroupName"] == f"gwcore-{region}"
    assert "DesiredCapacity" not in props  # a deployment does not undo scaling
    # EC2 status checks: /readyz (deep) steers traffic and DNS, it does not replace instances
    assert props["HealthCheckType"] == "EC2"
    assert props["HealthCheckGracePeriod"] >= 120
    # no traffic before the boot script says gwcore serves; a failed boot is dropped
    (hook,) = props["LifecycleHookSpecificationList"]
    assert hook == {"LifecycleHookName": "gwcore-boot",
                    "LifecycleTransition": "autoscaling:EC2_INSTANCE_LAUNCHING",
                    "DefaultResult": "ABANDON", "HeartbeatTimeout": 900}
    script = user_data(t)
    assert "--lifecycle-hook-name gwcore-boot " \
           f"--auto-scaling-group-name gwcore-{region} " in script
    assert script.rstrip().endswith("boot_result CONTINUE")
    assert all("private" in s["Ref"] for s in props["VPCZoneIdentifier"])
    groups = resources(t, "AWS::ElasticLoadBalancingV2::TargetGroup")
    assert sorted(g["Ref"] for g in props["TargetGroupARNs"]) == sorted(groups)
    assert props["MetricsCollection"] == [{"Granularity": "1Minute"}]
    # a new launch template version rolls the fleet, never below the desired capacity
    refresh = asg["UpdatePolicy"]["AutoScalingInstanceRefresh"]
    prefs = refresh["Preferences"]
    assert refresh["Strategy"] == "Rolling"
    assert prefs["MinHealthyPercentage"] == 100 and prefs["MaxHealthyPercentage"] == 150
    assert prefs["SkipMatching"] is True and prefs["InstanceWarmup"] == 300
    alarms = resources(t, "AWS::CloudWatch::Alarm")
    gated = {a["Ref"] for a in prefs["AlarmSpecification"]["Alarms"]}
    assert gated == {k for k, a in alarms.items()
                     if a["Properties"]["MetricName"] == "UnHealthyHostCount"}
    assert "CreationPolicy" not in asg  # instance refresh does not take cfn-signal


# --- alarms --------------------------------------------------------------------------------


@pytest.mark.parametrize("region", REGIONS)
def test_alarms_on_unhealthy_hosts_and_in_service_instances(fleet: Fleet,
                                                            region: str) -> None:
    t = fleet.template_json(region)
    alarms = [a["Properties"] for a in resources(t, "AWS::CloudWatch::Alarm").values()]
    (topic,) = resources(t, "AWS::SNS::Topic")
    unhealthy = [a for a in alarms if a["MetricName"] == "UnHealthyHostCount"]
    assert len(unhealthy) == 2
    for a in unhealthy:
        assert a["Namespace"] == "AWS/NetworkELB"
        assert {d["Name"] for d in a["Dimensions"]} == {"LoadBalancer", "TargetGroup"}
        assert a["ComparisonOperator"] == "GreaterThanThreshold" and a["Threshold"] == 0
    (in_service,) = [a for a in alarms if a["MetricName"] == "GroupInServiceInstances"]
    assert in_service["Namespace"] == "AWS/AutoScaling"
    assert in_service["ComparisonOperator"] == "LessThanThreshold"
    assert in_service["Threshold"] == 2
    (dim,) = in_service["Dimensions"]
    assert dim["Name"] == "AutoScalingGroupName"
    for a in alarms:
        assert a["AlarmActions"] == [{"Ref": topic}] == a["OKActions"]


@pytest.mark.parametrize("region", REGIONS)
def test_outputs(fleet: Fleet, region: str) -> None:
    outputs = fleet.template_json(region)["Outputs"]
    for name in ("NlbDnsName", "AutoScalingGroupName", "RedisEndpoint", "AlarmTopicArn"):
        assert name in outputs
    assert "rediss://" in json.dumps(outputs["RedisEndpoint"])


# --- context values ---------------------------------------------------------------------------


def test_context_sets_instances_arch_and_zones(custom_fleet: Fleet) -> None:
    t = custom_fleet.template_json("ap-southeast-2")
    data = only(t, "AWS::EC2::LaunchTemplate")["LaunchTemplateData"]
    assert data["InstanceType"] == "c7g.xlarge"
    (param,) = [p for p in t["Parameters"] if p.startswith("SsmParameterValue")]
    assert t["Parameters"][param]["Default"].endswith("al2023-ami-kernel-6.1-arm64")
    props = only(t, "AWS::AutoScaling::AutoScalingGroup")
    assert props["MinSize"] == "3" and props["MaxSize"] == "6"
    assert props["HealthCheckType"] == "ELB"  # elbHealthCheck=true
    script = user_data(t)
    key = "releases/gwcore-1.2.3-cp311-cp311-manylinux_2_34_aarch64.whl"
    assert f"s3://acme-gwcore-wheels/{key} " in script
    assert "param=${1:-/acme/gwcore/gateway.yaml}" in script
    # three zones as given (no lookup), one NAT gateway
    subnets = only_all(t, "AWS::EC2::Subnet")
    assert sorted({s["AvailabilityZone"] for s in subnets}) == \
        ["ap-southeast-2a", "ap-southeast-2b", "ap-southeast-2c"]
    assert len(subnets) == 6
    assert len(resources(t, "AWS::EC2::NatGateway")) == 1
    # no alarms gate this rollout; an e-mail subscription on the alarm topic
    asg = next(iter(resources(t, "AWS::AutoScaling::AutoScalingGroup").values()))
    assert "AlarmSpecification" not in asg["UpdatePolicy"]["AutoScalingInstanceRefresh"][
        "Preferences"]
    sub = only(t, "AWS::SNS::Subscription")
    assert sub["Protocol"] == "email" and sub["Endpoint"] == "ops@example.net"
    policy = json.dumps(only(t, "AWS::IAM::Policy"))
    assert f"s3:::acme-gwcore-wheels/{key}" in policy
    assert ":parameter/acme/gwcore/gateway.yaml" in policy


def only_all(template: dict[str, Any], rtype: str) -> list[dict[str, Any]]:
    return [r["Properties"] for r in resources(template, rtype).values()]


def test_imported_vpc_creates_none(synth: Any) -> None:
    """vpcIds: Vpc.from_lookup. Offline it synthesizes against CDK's placeholder VPC and
    reports the lookup as missing, which the cdk CLI resolves with credentials into
    cdk.context.json (deploy/README.md)."""
    fleet = synth(regions="eu-west-1", globalRegion="eu-west-1", account="123456789012",
                  vpcIds=json.dumps({"eu-west-1": "vpc-0123456789abcdef0"}),
                  availabilityZones=json.dumps({"eu-west-1": ["eu-west-1a", "eu-west-1b"]}))
    t = fleet.template_json("eu-west-1")
    for rtype in ("AWS::EC2::VPC", "AWS::EC2::Subnet", "AWS::EC2::NatGateway"):
        assert not resources(t, rtype)
    assert len(resources(t, "AWS::AutoScaling::AutoScalingGroup")) == 1
    missing = fleet.manifest()["missing"]
    assert [m["provider"] for m in missing] == ["vpc-provider"]
    assert "vpc-0123456789abcdef0" in missing[0]["key"]


def test_synth_is_deterministic(fleet: Fleet, synth: Any) -> None:
    """A second app from the same settings gives the same templates (no timestamps, no
    random names), so a deployment without changes rolls nothing."""
    again = synth(unrelated="context key")  # a fresh App, same settings
    for region in REGIONS:
        assert again.template_json(region) == fleet.template_json(region)
    assert again.template_json() == fleet.template_json()
