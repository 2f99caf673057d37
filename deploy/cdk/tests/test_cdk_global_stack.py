"""The GlobalStack: one latency-based alias record per region on the fleet's name, each with a
Route 53 health check of that region's NLB and "evaluate target health" (the NLB's /readyz
targets), so DNS routes to the nearest healthy region and fails over between regions."""

from __future__ import annotations

import json
from typing import Any

import pytest
from cdk_fixtures import Fleet

pytestmark = pytest.mark.timeout(900)  # installing Node.js may need an apt-get update


def _of(template: dict[str, Any], rtype: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in template["Resources"].items() if v["Type"] == rtype}


def _stack_output(value: Any) -> tuple[str, str, str]:
    """(stack, region, output) of an Fn::GetStackOutput, found anywhere inside value."""
    text = json.dumps(value)
    start = text.index('{"Fn::GetStackOutput"')
    ref = json.JSONDecoder().raw_decode(text[start:])[0]["Fn::GetStackOutput"]
    return ref["StackName"], ref["Region"], ref["OutputName"]


def test_global_resource_counts(fleet: Fleet) -> None:
    t = fleet.global_
    t.resource_count_is("AWS::Route53::HostedZone", 1)  # none given: the stack makes one
    t.resource_count_is("AWS::Route53::HealthCheck", 2)
    t.resource_count_is("AWS::Route53::RecordSet", 2)
    assert len(fleet.template_json()["Resources"]) == 5
    # weak cross-region references: no export writer/reader custom resources or Lambdas
    for name in ("eu-west-1", "us-east-1"):
        assert not [r for r in fleet.template_json(name)["Resources"].values()
                    if r["Type"].startswith(("Custom::", "AWS::Lambda::"))]


def test_one_latency_record_per_region_with_a_health_check(fleet: Fleet) -> None:
    t = fleet.template_json()
    records = [r["Properties"] for r in _of(t, "AWS::Route53::RecordSet").values()]
    checks = _of(t, "AWS::Route53::HealthCheck")
    assert sorted(r["Region"] for r in records) == ["eu-west-1", "us-east-1"]
    assert len({r["SetIdentifier"] for r in records}) == len(records)
    assert {r["Name"] for r in records} == {"gw.example.com."}
    (zone,) = _of(t, "AWS::Route53::HostedZone")
    used = set()
    for record in records:
        region = record["Region"]
        assert record["Type"] == "A"
        assert record["HostedZoneId"] == {"Ref": zone}
        alias = record["AliasTarget"]
        assert alias["EvaluateTargetHealth"] is True
        assert _stack_output(alias["DNSName"]) == (f"gwcore-{region}", region,
                                                   _stack_output(alias["DNSName"])[2])
        assert _stack_output(alias["HostedZoneId"])[:2] == (f"gwcore-{region}", region)
        check_id = record["HealthCheckId"]["Ref"]
        used.add(check_id)
        config = checks[check_id]["Properties"]["HealthCheckConfig"]
        assert config["Type"] == "TCP" and config["Port"] == 443
        # the check probes the same region's NLB as the record points at
        assert _stack_output(config["FullyQualifiedDomainName"]) == \
            _stack_output(alias["DNSName"])
        assert config["RequestInterval"] == 10 and config["FailureThreshold"] == 3
    assert used == set(checks)


def test_record_targets_are_the_regional_nlb_outputs(fleet: Fleet) -> None:
    t = fleet.template_json()
    for record in _of(t, "AWS::Route53::RecordSet").values():
        _stack, region, output = _stack_output(record["Properties"]["AliasTarget"]["DNSName"])
        produced = fleet.template_json(region)["Outputs"][output]["Value"]
        assert produced["Fn::GetAtt"][1] == "DNSName"
        nlb = fleet.template_json(region)["Resources"][produced["Fn::GetAtt"][0]]
        assert nlb["Type"] == "AWS::ElasticLoadBalancingV2::LoadBalancer"


def test_global_stack_deploys_after_the_regions(fleet: Fleet) -> None:
    glob = fleet.stacks["gwcore-global"]
    assert glob.region == "us-east-1"
    assert {d.stack_name for d in glob.dependencies} == {"gwcore-eu-west-1",
                                                         "gwcore-us-east-1"}


def test_existing_zone_and_https_checks_from_context(custom_fleet: Fleet) -> None:
    t = custom_fleet.template_json()
    assert not _of(t, "AWS::Route53::HostedZone")
    (record,) = [r["Properties"] for r in _of(t, "AWS::Route53::RecordSet").values()]
    assert record["HostedZoneId"] == "Z0123456789ABCDEFGHIJ"
    assert record["Name"] == "edge.example.net."
    assert record["Region"] == "ap-southeast-2"
    (check,) = _of(t, "AWS::Route53::HealthCheck").values()
    config = check["Properties"]["HealthCheckConfig"]
    assert config["Type"] == "HTTPS" and config["ResourcePath"] == "/ping"
    assert config["Port"] == 443
