"""DNS across the regions: for each GatewayStack one latency-based alias record on
``domainName`` pointing at that region's NLB, with a Route 53 health check and the alias's
"evaluate target health" (the NLB's targets pass /readyz). Route 53 answers with the lowest-
latency region whose record is healthy, so a region that fails either check is skipped until it
recovers: failover between regions.

The regions' NLB names reach this stack through CDK's cross-region references (an SSM
parameter written in each region and read here by a custom resource), so one
``cdk deploy --all`` builds everything in order.
"""

from __future__ import annotations

import jsii
from aws_cdk import CfnOutput, Duration, Fn, Stack
from aws_cdk import aws_route53 as route53
from aws_cdk import aws_route53_targets as targets
from constructs import Construct

from gwcore_cdk.gateway_stack import GatewayStack
from gwcore_cdk.settings import Settings


@jsii.implements(targets.IAliasRecordTargetProps)
class _EvaluateTargetHealth:
    @property
    def evaluate_target_health(self) -> bool:
        return True


def region_id(region: str) -> str:
    """``eu-west-1`` → ``EuWest1`` (construct ids)."""
    return "".join(part.capitalize() for part in region.split("-"))


class GlobalStack(Stack):
    def __init__(self, scope: Construct, construct_id: str, *, settings: Settings,
                 regional: dict[str, GatewayStack], **kwargs) -> None:
        super().__init__(scope, construct_id, **kwargs)
        s = settings
        if s.hosted_zone_id:
            self.zone: route53.IHostedZone = route53.HostedZone.from_hosted_zone_attributes(
                self, "Zone", hosted_zone_id=s.hosted_zone_id, zone_name=s.hosted_zone_name)
        else:
            zone = route53.PublicHostedZone(self, "Zone", zone_name=s.domain_name,
                                            comment="gwcore: delegate to these name servers")
            self.zone = zone
            CfnOutput(self, "NameServers",
                      value=Fn.join(" ", zone.hosted_zone_name_servers or []))

        self.health_checks: dict[str, route53.HealthCheck] = {}
        self.records: dict[str, route53.ARecord] = {}
        for region, stack in regional.items():
            rid = region_id(region)
            if s.region_health_check_path:
                check = route53.HealthCheck(
                    self, f"Health{rid}", type=route53.HealthCheckType.HTTPS,
                    fqdn=stack.nlb.load_balancer_dns_name, port=443,
                    resource_path=s.region_health_check_path,
                    request_interval=Duration.seconds(10), failure_threshold=3)
            else:
                # TCP through the NLB to gwcore's :443 (the admin port is not public)
                check = route53.HealthCheck(
                    self, f"Health{rid}", type=route53.HealthCheckType.TCP,
                    fqdn=stack.nlb.load_balancer_dns_name, port=443,
                    request_interval=Duration.seconds(10), failure_threshold=3)
            self.health_checks[region] = check
            self.records[region] = route53.ARecord(
                self, f"Latency{rid}", zone=self.zone, record_name=s.domain_name,
                target=route53.RecordTarget.from_alias(
                    targets.LoadBalancerTarget(stack.nlb, _EvaluateTargetHealth())),
                region=region, set_identifier=f"{s.prefix}-{region}", health_check=check,
                comment=f"gwcore {region}: latency-based, health-checked")
        CfnOutput(self, "DomainName", value=s.domain_name)
