"""The model name out of an OpenAI-style chat completion body (1,024 bytes): gwcore's
FieldReader (msgspec, only the ``model`` member decoded, the rest skipped) vs ``json.loads``
and vs msgspec decoding the whole body to Python objects, each then taking ``["model"]``.

Two layouts of the same members: ``model`` first (as OpenAI's SDKs send it) and last (after
the messages, the worst case for a reader that stops early; FieldReader skips the rest either
way, so both cost it a full scan).

    /work/venv/bin/python -m pytest bench/micro/test_model_field_bench.py \
        --benchmark-columns=min,median,ops --benchmark-group-by=group
"""

from __future__ import annotations

import json

import msgspec
import pytest

from gwcore.inference.body import FieldReader

MESSAGES = [
    {"role": "system", "content": "You are a ranking assistant for a video catalogue. Order the "
     "candidate titles by how well they match the viewer's request and explain briefly."},
    {"role": "user", "content": "I want a slow documentary about deep-sea creatures, nothing "
     "scary, ideally under an hour. Candidates: Abyss Light (52 min), The Trench (1 h 40), "
     "Night Swimmers (48 min), Coral Clocks (58 min), Pressure (35 min)."},
    {"role": "assistant", "content": "Night Swimmers first: 48 minutes, calm narration. Then "
     "Coral Clocks and Abyss Light; The Trench is too long and Pressure is a thriller."},
    {"role": "user", "content": "Great, and which of them has French subtitles available?"},
]
REST = {
    "messages": MESSAGES,
    "temperature": 0.2,
    "top_p": 0.95,
    "max_tokens": 512,
    "n": 1,
    "presence_penalty": 0.0,
    "frequency_penalty": 0.1,
    "seed": 202612070,
    "stream": True,
    "stop": ["\n\nUser:"],
    "user": "sub-7f3c2a91-4d1e-4b8a-9c55-0e6b2f1d8a34",
    "metadata": {"tenant": "acme-video-eu", "request_id": "01JEXAMPLE9Q8W7E6R5T4Y3U2I"},
}
BODIES = {
    "model first": json.dumps({"model": "ranker", **REST}).encode(),
    "model last": json.dumps({**REST, "model": "ranker"}).encode(),
}
READER = FieldReader("model")
MSGSPEC = msgspec.json.Decoder()


def _fieldreader(body: bytes) -> str | None:
    return READER.read(body)


def _json_loads(body: bytes) -> str:
    return json.loads(body)["model"]


def _msgspec_full(body: bytes) -> str:
    return MSGSPEC.decode(body)["model"]


@pytest.mark.parametrize("layout", list(BODIES))
@pytest.mark.parametrize("how", [_fieldreader, _json_loads, _msgspec_full],
                         ids=["FieldReader", "json.loads", "msgspec full"])
def test_model_field(benchmark, layout, how):
    body = BODIES[layout]
    assert len(body) == 1024
    benchmark.group = f"model field, {len(body)}-byte body, {layout}"
    assert benchmark(how, body) == "ranker"
