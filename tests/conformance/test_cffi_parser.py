"""The cffi binding (gwcore.http.cffi) against the Cython binding (gwcore.http): the same C
parser behind two bindings must give the same result for every input, field by field (method
or status, target or reason, version, every field line, head length, Content-Length, chunked,
keep-alive, Expect: 100-continue) and error by error (code, status, offset), whole and for
every prefix (None from both while incomplete), at an offset in a larger buffer, with default
and small limits, at every SIMD level the CPU has (each binding has its own copy of the C and
of the level).

Inputs: cffi_cases.message(), driven by hypothesis (derandomized), and the seeded corpus
test_cffi_pypy.py sends to PyPy. The API checks in cffi_cases (pycohttpparser's shape, buffer
types, errors, limits) run here too.
"""

from __future__ import annotations

import random
import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Iterator

import pytest
from cffi_cases import (
    API_CHECKS,
    Message,
    cffi_outcome,
    corpus,
    cython_outcome,
    message,
    prefixes,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import gwcore.http
from gwcore.http import cffi as gwcffi

LEVELS = list(range(gwcore.http.set_simd(2) + 1))
assert gwcffi.set_simd(2) == LEVELS[-1]

SETTINGS = settings(max_examples=300, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow,
                                           HealthCheck.function_scoped_fixture])


@pytest.fixture(params=LEVELS, ids=[f"simd{lv}" for lv in LEVELS])
def level(request: pytest.FixtureRequest) -> Iterator[int]:
    gwcore.http.set_simd(request.param)
    gwcffi.set_simd(request.param)
    yield request.param
    gwcore.http.set_simd(LEVELS[-1])
    gwcffi.set_simd(LEVELS[-1])


def assert_same(m: Message, whole_only: bool = False) -> list | None:
    kind, data, limits = m
    parser = gwcffi.Parser(**limits)
    want = cython_outcome(kind, data, limits)
    assert cffi_outcome(parser, kind, data) == want, m
    assert cffi_outcome(parser, kind, bytearray(data)) == want, m
    # at an offset (pipelining): error offsets count from the buffer's start in both bindings
    shifted = b"\r\n\r\nxyz" + data
    assert cffi_outcome(parser, kind, shifted, 7) == cython_outcome(kind, shifted, limits, 7), m
    if not whole_only:
        for part in prefixes(data, limit=len(data)):
            assert cffi_outcome(parser, kind, part) == cython_outcome(kind, part, limits), (
                m, part)
    return want


@pytest.mark.parametrize("check", API_CHECKS, ids=lambda c: c.__name__)
def test_api(check: Callable[[], None]) -> None:
    check()


@SETTINGS
@given(rnd=st.randoms(use_true_random=False))
def test_generated_messages_agree(level: int, rnd: random.Random) -> None:
    assert_same(message(rnd))


def test_seeded_corpus_agrees_and_covers() -> None:
    """The corpus the PyPy test uses: both bindings agree on it (whole messages), and it has
    heads of both kinds, every outcome, and many distinct error codes."""
    kinds: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    for m in corpus(seed=9112, count=2000):
        got = assert_same(m, whole_only=True)
        kinds[m[0] + ":" + ("incomplete" if got is None else got[0])] += 1
        if got is not None and got[0] == "error":
            errors[got[1]] += 1
    assert min(kinds[k] for k in ("request:request", "request:error", "request:incomplete",
                                  "response:response", "response:error")) >= 20, kinds
    assert len(errors) >= 15, errors


def test_the_gateway_never_imports_the_cffi_copy() -> None:
    # gwcore.http.set_simd governs the gateway's parsing only because the gateway's modules use
    # the Cython binding's copy of http1.c (tests/unit/test_simd_shared.py); the cffi module is
    # a second copy for other interpreters and must stay out of the gateway
    code = ("import sys, gwcore.cli, gwcore.process.master, gwcore.process.worker, "
            "gwcore.proxy.health, gwcore.observability.admin; "
            "print([m for m in ('gwcore.http.cffi', 'gwcore.http._cffi_http1') "
            "if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=60).stdout
    assert out.strip() == "[]"
