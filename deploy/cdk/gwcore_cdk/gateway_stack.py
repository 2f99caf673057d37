"""One region of the fleet: VPC (or an imported one), gwcore on an Auto Scaling group of
Amazon Linux 2023 instances behind an internet-facing Network Load Balancer, an ElastiCache
Redis replication group for state shared across hosts, and CloudWatch alarms.

Traffic: NLB TCP :80 and :443 → the same ports on the instances (gwcore terminates TLS; the
NLB keeps the client's address, so the instances' security group admits the public ports from
anywhere). Health: HTTP GET /readyz on the admin port, which only the VPC reaches (the NLB's
health checks come from its private addresses). Rollout: a new launch template version (a new
wheel key, say) makes CloudFormation run an instance refresh that keeps the minimum healthy
percentage and fails on the unhealthy-host alarms (deploy/README.md).
"""

from __future__ import annotations

from aws_cdk import CfnOutput, Duration, Stack, Tags
from aws_cdk import aws_autoscaling as autoscaling
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_elasticache as elasticache
from aws_cdk import aws_elasticloadbalancingv2 as elbv2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subs
from constructs import Construct

from gwcore_cdk.settings import Settings
from gwcore_cdk.user_data import BOOT_HOOK, gateway_boot_commands

REDIS_PORT = 6379
BOOT_TIMEOUT = 900  # s: the launch hook's heartbeat; an instance that never reports is dropped


class GatewayStack(Stack):
    """The regional stack. ``nlb`` is what the GlobalStack's latency records point at."""

    def __init__(self, scope: Construct, construct_id: str, *, settings: Settings,
                 region: str, **kwargs) -> None:
        super().__init__(scope, construct_id, **kwargs)
        s = settings
        self.settings = s
        Tags.of(self).add("gwcore:region", region)

        self.vpc = self._vpc(s, region)

        # ---- security groups ---------------------------------------------------------
        self.gateway_sg = ec2.SecurityGroup(
            self, "GatewaySg", vpc=self.vpc, allow_all_outbound=True,
            description="gwcore instances: public ports from anywhere, admin from the VPC")
        for port in s.public_ports:
            self.gateway_sg.add_ingress_rule(ec2.Peer.any_ipv4(), ec2.Port.tcp(port),
                                             f"public listener :{port} (NLB keeps client IPs)")
        self.gateway_sg.add_ingress_rule(
            ec2.Peer.ipv4(self.vpc.vpc_cidr_block), ec2.Port.tcp(s.admin_port),
            "admin listener (/readyz for NLB health checks, /metrics) from inside the VPC")

        self.redis_sg = ec2.SecurityGroup(
            self, "RedisSg", vpc=self.vpc, allow_all_outbound=False,
            description="gwcore shared-state Redis: from the gwcore instances only")
        self.redis_sg.add_ingress_rule(self.gateway_sg, ec2.Port.tcp(REDIS_PORT),
                                       "Redis (TLS) from gwcore instances")

        # ---- load balancer: targets attach once the group exists -----------------------
        self.nlb = elbv2.NetworkLoadBalancer(
            self, "Nlb", vpc=self.vpc, internet_facing=True, cross_zone_enabled=True,
            vpc_subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PUBLIC))
        self.target_groups: dict[int, elbv2.NetworkTargetGroup] = {}
        for port in s.public_ports:
            tg = elbv2.NetworkTargetGroup(
                self, f"Gateway{port}", vpc=self.vpc, port=port, protocol=elbv2.Protocol.TCP,
                target_type=elbv2.TargetType.INSTANCE,
                deregistration_delay=Duration.seconds(s.deregistration_delay),
                health_check=elbv2.HealthCheck(
                    protocol=elbv2.Protocol.HTTP, port=str(s.admin_port),
                    path=s.health_check_path, healthy_http_codes="200",
                    interval=Duration.seconds(10), timeout=Duration.seconds(5),
                    healthy_threshold_count=2, unhealthy_threshold_count=2))
            self.nlb.add_listener(f"Tcp{port}", port=port, protocol=elbv2.Protocol.TCP,
                                  default_target_groups=[tg])
            self.target_groups[port] = tg

        # ---- alarms; the rollout is gated on the unhealthy-host ones -----------------------
        self.alarm_topic = sns.Topic(self, "Alarms", display_name="gwcore alarms")
        if s.alarm_email:
            self.alarm_topic.add_subscription(subs.EmailSubscription(s.alarm_email))
        self.alarms = self._target_alarms(s)

        # ---- instances -----------------------------------------------------------------
        self.asg = self._auto_scaling_group(s, region)
        for tg in self.target_groups.values():
            self.asg.attach_to_network_target_group(tg)
        self.alarms["in_service"] = self._in_service_alarm(s)
        action = cw_actions.SnsAction(self.alarm_topic)
        for alarm in self.alarms.values():
            alarm.add_alarm_action(action)
            alarm.add_ok_action(action)

        # ---- shared state: Redis -----------------------------------------------------------
        self.redis = self._redis(s)

        CfnOutput(self, "NlbDnsName", value=self.nlb.load_balancer_dns_name)
        CfnOutput(self, "AutoScalingGroupName", value=self.asg.auto_scaling_group_name)
        CfnOutput(self, "RedisEndpoint",
                  value=f"rediss://{self.redis.attr_primary_end_point_address}:"
                        f"{self.redis.attr_primary_end_point_port}")
        CfnOutput(self, "AlarmTopicArn", value=self.alarm_topic.topic_arn)

    # -------------------------------------------------------------------------------------
    def _vpc(self, s: Settings, region: str) -> ec2.IVpc:
        vpc_id = s.vpc_ids.get(region)
        if vpc_id:
            # a lookup: needs credentials once, then cdk.context.json (commit it)
            return ec2.Vpc.from_lookup(self, "Vpc", vpc_id=vpc_id)
        kwargs: dict = {}
        azs = s.availability_zones.get(region)
        if azs:
            kwargs["availability_zones"] = azs
        else:
            # account unknown: Fn::GetAZs, two zones; account known: looked up (max_azs)
            kwargs["max_azs"] = s.max_azs
        return ec2.Vpc(
            self, "Vpc", ip_addresses=ec2.IpAddresses.cidr(s.vpc_cidr_for(region)),
            nat_gateways=s.nat_gateways,
            subnet_configuration=[
                ec2.SubnetConfiguration(name="public", subnet_type=ec2.SubnetType.PUBLIC,
                                        cidr_mask=24),
                ec2.SubnetConfiguration(name="private",
                                        subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS,
                                        cidr_mask=20),
            ],
            **kwargs)

    def _auto_scaling_group(self, s: Settings, region: str) -> autoscaling.AutoScalingGroup:
        bucket = s.bucket_for(region)
        role = iam.Role(
            self, "InstanceRole", assumed_by=iam.ServicePrincipal("ec2.amazonaws.com"),
            description="gwcore instances: read the wheel and the config; SSM Session Manager",
            managed_policies=[
                iam.ManagedPolicy.from_aws_managed_policy_name("AmazonSSMManagedInstanceCore")])
        role.add_to_policy(iam.PolicyStatement(
            actions=["s3:GetObject"],
            resources=[f"arn:{self.partition}:s3:::{bucket}/{s.resolved_wheel_key}"]))
        role.add_to_policy(iam.PolicyStatement(
            actions=["ssm:GetParameter"],
            resources=[self.format_arn(service="ssm", resource="parameter",
                                       resource_name=s.config_parameter.lstrip("/"))]))
        if s.config_kms_key_arn:
            role.add_to_policy(iam.PolicyStatement(actions=["kms:Decrypt"],
                                                   resources=[s.config_kms_key_arn]))

        # a fixed name: the boot script reports to the launch hook by it (a generated name
        # would make the launch template depend on the group, which depends on the template)
        asg_name = f"{s.prefix}-{region}"
        role.add_to_policy(iam.PolicyStatement(
            actions=["autoscaling:CompleteLifecycleAction"],
            resources=[(f"arn:{self.partition}:autoscaling:{region}:{self.account}:"
                        f"autoScalingGroup:*:autoScalingGroupName/{asg_name}")]))

        user_data = ec2.UserData.for_linux()
        user_data.add_commands(*gateway_boot_commands(
            region=region, bucket=bucket, wheel_key=s.resolved_wheel_key,
            parameter=s.config_parameter, admin_port=s.admin_port,
            dereg=s.deregistration_delay, ports=s.public_ports, unit_text=s.unit_text,
            asg_name=asg_name))

        if region in s.ami_ids:
            image = ec2.MachineImage.generic_linux({region: s.ami_ids[region]})
        else:
            # the latest AL2023 AMI, resolved by CloudFormation (a public SSM parameter) at each
            # deployment: a newer AMI is a new launch template version, so it rolls the fleet
            image = ec2.MachineImage.latest_amazon_linux2023(
                cpu_type=ec2.AmazonLinuxCpuType.ARM_64 if s.arch == "aarch64"
                else ec2.AmazonLinuxCpuType.X86_64)
        template = ec2.LaunchTemplate(
            self, "LaunchTemplate",
            machine_image=image,
            instance_type=ec2.InstanceType(s.resolved_instance_type),
            user_data=user_data, role=role, security_group=self.gateway_sg,
            require_imdsv2=True,
            block_devices=[ec2.BlockDevice(
                device_name="/dev/xvda",
                volume=ec2.BlockDeviceVolume.ebs(16, volume_type=ec2.EbsDeviceVolumeType.GP3,
                                                 encrypted=True))],
            version_description=f"gwcore {s.gwcore_version} {s.resolved_wheel_key}")
        Tags.of(template).add("gwcore:wheel", s.resolved_wheel_key)

        if s.elb_health_check:
            health = autoscaling.HealthChecks.with_additional_checks(
                additional_types=[autoscaling.AdditionalHealthCheckType.ELB],
                grace_period=Duration.minutes(5))
        else:
            # EC2 status only. /readyz is a deep check (503 while any cluster has no healthy
            # endpoint): replacing instances on it would churn the whole fleet during an origin
            # outage without fixing anything. It steers traffic (NLB), DNS (Route 53) and the
            # alarms instead; a gwcore that dies is restarted by systemd.
            health = autoscaling.HealthChecks.ec2(grace_period=Duration.minutes(5))
        asg = autoscaling.AutoScalingGroup(
            self, "Asg", vpc=self.vpc, launch_template=template,
            auto_scaling_group_name=asg_name,
            vpc_subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS),
            # no desired capacity: a deployment must not reset what scaling set
            min_capacity=s.instance_count,
            max_capacity=s.resolved_max_instance_count,
            health_checks=health,
            group_metrics=[autoscaling.GroupMetrics.all()],
            default_instance_warmup=Duration.seconds(s.instance_warmup),
            # a new launch template version (new wheel, AMI, instance type) rolls the fleet
            update_policy=autoscaling.UpdatePolicy.instance_refresh(
                strategy=autoscaling.InstanceRefreshStrategy.ROLLING,
                min_healthy_percentage=s.refresh_min_healthy_percentage,
                max_healthy_percentage=s.refresh_max_healthy_percentage,
                instance_warmup=Duration.seconds(s.instance_warmup),
                skip_matching=True,
                alarms=[self.alarms[f"unhealthy{p}"] for p in s.public_ports]
                if s.refresh_alarms else None))
        # a new instance stays Pending:Wait (no traffic, not counted by the refresh) until its
        # boot script reports CONTINUE (gwcore started, admin listener up) or ABANDON; inline,
        # so the group's first instances wait too
        cfn_asg = asg.node.default_child
        assert isinstance(cfn_asg, autoscaling.CfnAutoScalingGroup)
        cfn_asg.add_property_override("LifecycleHookSpecificationList", [{
            "LifecycleHookName": BOOT_HOOK,
            "LifecycleTransition": "autoscaling:EC2_INSTANCE_LAUNCHING",
            "DefaultResult": "ABANDON",
            "HeartbeatTimeout": BOOT_TIMEOUT,
        }])
        return asg

    def _redis(self, s: Settings) -> elasticache.CfnReplicationGroup:
        private = self.vpc.select_subnets(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS)
        subnets = elasticache.CfnSubnetGroup(
            self, "RedisSubnets", description="gwcore Redis: private subnets",
            subnet_ids=private.subnet_ids)
        return elasticache.CfnReplicationGroup(
            self, "Redis",
            replication_group_description="gwcore state shared across hosts (rate limits)",
            engine="redis", engine_version=s.redis_engine_version,
            cache_node_type=s.redis_node_type,
            num_cache_clusters=1 + s.redis_replicas,
            multi_az_enabled=True, automatic_failover_enabled=True,
            transit_encryption_enabled=True, transit_encryption_mode="required",
            at_rest_encryption_enabled=True,
            port=REDIS_PORT, cache_subnet_group_name=subnets.ref,
            security_group_ids=[self.redis_sg.security_group_id],
            auto_minor_version_upgrade=True, snapshot_retention_limit=0)

    def _target_alarms(self, s: Settings) -> dict[str, cloudwatch.Alarm]:
        return {
            f"unhealthy{port}": cloudwatch.Alarm(
                self, f"UnhealthyHosts{port}",
                alarm_description=f"gwcore: targets of :{port} fail {s.health_check_path} on "
                                  f"the admin port {s.admin_port}",
                metric=tg.metrics.un_healthy_host_count(statistic="Maximum",
                                                        period=Duration.minutes(1)),
                threshold=0, evaluation_periods=3, datapoints_to_alarm=3,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING)
            for port, tg in self.target_groups.items()
        }

    def _in_service_alarm(self, s: Settings) -> cloudwatch.Alarm:
        return cloudwatch.Alarm(
            self, "AsgInService",
            alarm_description="gwcore: fewer instances in service than instanceCount",
            metric=cloudwatch.Metric(
                namespace="AWS/AutoScaling", metric_name="GroupInServiceInstances",
                dimensions_map={"AutoScalingGroupName": self.asg.auto_scaling_group_name},
                statistic="Minimum", period=Duration.minutes(1)),
            threshold=s.instance_count, evaluation_periods=5, datapoints_to_alarm=5,
            comparison_operator=cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING)
