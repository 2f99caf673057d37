"""`pytest deploy/cdk`: the fixtures live in cdk_fixtures.py, which tests/deploy/test_cdk_app.py
also imports to run these tests in the whole suite."""

from cdk_fixtures import *
