"""The AWS CDK app in deploy/cdk, as part of the whole suite.

Its tests live beside it in deploy/cdk/tests (``pytest deploy/cdk`` runs them alone); the
suite's testpaths are ``tests``, so this module imports them, and their fixtures, to have them
collected here too. Installs Debian's nodejs if ``node`` is missing (see cdk_fixtures.py).
"""

from __future__ import annotations

import sys
from pathlib import Path

_CDK_TESTS = Path(__file__).resolve().parents[2] / "deploy" / "cdk" / "tests"
for _path in (_CDK_TESTS.parent, _CDK_TESTS):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

# test_*.py modules are assertion-rewritten by pytest's import hook wherever they come from
import test_cdk_gateway_stack
import test_cdk_global_stack
import test_cdk_settings
from cdk_fixtures import *
from test_cdk_gateway_stack import *
from test_cdk_global_stack import *
from test_cdk_settings import *

# one namespace here: a test name used in two of those modules would hide one of them
_names = [name for module in (test_cdk_gateway_stack, test_cdk_global_stack, test_cdk_settings)
          for name in vars(module) if name.startswith("test_")]
assert len(_names) == len(set(_names)), sorted({n for n in _names if _names.count(n) > 1})
