"""AWS CDK app for a gwcore fleet: one GatewayStack per region (VPC, Auto Scaling group behind
a Network Load Balancer, ElastiCache Redis, alarms) and a GlobalStack (Route 53 latency records
with health checks across the regions). deploy/README.md says how to deploy and roll it.

Modules: ``settings`` (context values; no CDK import, so it loads without Node.js),
``user_data`` (the instances' boot script), ``gateway_stack``, ``global_stack``, ``build``
(``build_app``, used by app.py and the tests).
"""
