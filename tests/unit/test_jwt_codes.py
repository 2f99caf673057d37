"""gwcore.jwt.exceptions.CODES names every rejection code gwcore can raise: the JWT outcome
metric's labels are laid out from it before the workers start, and a code missing from it would
be counted as ``other``."""

from __future__ import annotations

import re
from pathlib import Path

from gwcore.jwt import exceptions
from gwcore.observability.metrics import JWT_OUTCOMES

ROOT = Path(__file__).resolve().parents[2]


def test_every_code_is_listed() -> None:
    classes = {cls.code for cls in vars(exceptions).values()
               if isinstance(cls, type) and issubclass(cls, exceptions.PyJWTError)}
    compiled = set(re.findall(r'"([a-z_]+)"\)', (ROOT / "gwcore/jwt/_jws.pyx").read_text()
                              .split("_ERRORS = [None]")[1].split("\n\n\n")[0]))
    sources = [*(ROOT / "gwcore").rglob("*.py"), *(ROOT / "gwcore").rglob("*.pyx")]
    raised = set(re.findall(r'code="([a-z_]+)"', "".join(p.read_text() for p in sources)))
    assert compiled and raised
    assert classes | compiled | raised <= exceptions.CODES
    assert set(JWT_OUTCOMES) == exceptions.CODES | {"ok", "missing", "other"}
