#!/usr/bin/env python3
"""gwcore's AWS CDK app: ``cdk synth`` / ``cdk deploy --all`` here, or ``python app.py`` to
synthesize into cdk.out without the CLI. Settings are context values (deploy/README.md)."""

import os

import aws_cdk as cdk
from gwcore_cdk.build import build_app

# the cdk CLI says where (CDK_OUTDIR); run by hand, ./cdk.out rather than a temporary folder
app = cdk.App(outdir=os.environ.get("CDK_OUTDIR") or "cdk.out")
build_app(app)
app.synth()
