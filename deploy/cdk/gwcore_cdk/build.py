"""Wire the stacks into an app: one GatewayStack per region in ``regions``, then the
GlobalStack (in ``globalRegion``) over all of them."""

from __future__ import annotations

import os

from aws_cdk import App, CrossStackReferences, Environment, ReferenceStrength, Tags

from gwcore_cdk.gateway_stack import GatewayStack
from gwcore_cdk.global_stack import GlobalStack
from gwcore_cdk.settings import Settings


def build_app(app: App, settings: Settings | None = None) -> tuple[dict[str, GatewayStack],
                                                                    GlobalStack]:
    """Add the fleet's stacks to ``app``. Settings default to the app's context (and
    CDK_DEFAULT_ACCOUNT, which the cdk CLI sets when it has credentials)."""
    s = settings or Settings.from_context(app.node.try_get_context,
                                          env_account=os.environ.get("CDK_DEFAULT_ACCOUNT"))
    Tags.of(app).add("project", "gwcore")
    # the GlobalStack reads each region's NLB with Fn::GetStackOutput (see global_stack.py)
    CrossStackReferences.of(app).consume(ReferenceStrength.WEAK)
    regional: dict[str, GatewayStack] = {}
    for region in s.regions:
        regional[region] = GatewayStack(
            app, s.stack_name(region), settings=s, region=region,
            env=Environment(account=s.account, region=region),
            description=f"gwcore gateway fleet in {region} (deploy/cdk)",
            analytics_reporting=False)
    global_stack = GlobalStack(
        app, s.global_stack_name, settings=s, regional=regional,
        env=Environment(account=s.account, region=s.global_region),
        description="gwcore: Route 53 latency records and health checks across regions",
        analytics_reporting=False)
    return regional, global_stack
