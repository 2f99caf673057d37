"""gwcore.inference.body.FieldReader: one string field out of a JSON body, the rest skipped."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gwcore.inference.body import BodyError, FieldReader

MODEL = FieldReader("model")


def bad(reader: FieldReader, body: bytes) -> BodyError:
    with pytest.raises(BodyError) as e:
        reader.read(body)
    assert e.value.status == 400
    return e.value


# ---- values --------------------------------------------------------------------------------

def test_top_level() -> None:
    assert MODEL.read(b'{"model": "ranker", "messages": [{"role": "user"}]}') == "ranker"
    assert MODEL.read(b'{"messages": [], "stream": true, "model": "ranker"}') == "ranker"
    assert MODEL.read(b'{"model": ""}') == ""


def test_nested() -> None:
    reader = FieldReader("metadata.model")
    assert reader.read(b'{"model": "x", "metadata": {"a": [1], "model": "ranker"}}') == "ranker"
    assert FieldReader("a.b.c").read(b'{"a": {"b": {"c": "deep", "d": 1}}}') == "deep"


def test_absent() -> None:
    assert MODEL.read(b"{}") is None
    assert MODEL.read(b'{"Model": "x", "models": "y", "metadata": {"model": "z"}}') is None
    reader = FieldReader("metadata.model")
    assert reader.read(b'{"model": "x"}') is None
    assert reader.read(b'{"metadata": {}}') is None


def test_any_key_name() -> None:
    assert FieldReader("class").read(b'{"class": "k"}') == "k"
    assert FieldReader("x-model").read(b'{"x-model": "k"}') == "k"
    assert FieldReader("modèle").read('{"modèle": "k"}'.encode()) == "k"


def test_escapes() -> None:
    assert MODEL.read(rb'{"model": "caf\u00e9"}') == "café"
    assert MODEL.read(rb'{"model": "a\"b\\c\/d\n"}') == 'a"b\\c/d\n'
    assert MODEL.read(rb'{"model": "\ud83d\ude00"}') == "\U0001f600"
    assert MODEL.read('{"model": "café 😀"}'.encode()) == "café 😀"
    assert MODEL.read(rb'{"mod\u0065l": "escaped key"}') == "escaped key"


def test_whitespace() -> None:
    assert MODEL.read(b' \t\r\n{ \n"model"\t:\r\n "r" \n}\n ') == "r"


def test_duplicate_member_last_wins() -> None:
    body = b'{"model": "a", "model": "b"}'
    assert MODEL.read(body) == json.loads(body)["model"] == "b"


def test_huge_other_fields_skipped() -> None:
    messages = [{"role": "user", "content": "x" * 1000, "n": [1.5e300, None, True]}] * 2000
    body = json.dumps({"messages": messages, "model": "ranker", "deep": [[[[{}]]]] * 1000})
    assert len(body) > 2_000_000
    assert MODEL.read(body.encode()) == "ranker"
    # numbers past float and 64-bit range, when skipped, only have to be well formed
    assert MODEL.read(b'{"n": 123456789012345678901234567890, "e": 1e99999, "model": "m"}') == "m"
    # skipped strings are scanned, not validated as UTF-8 (the read one is: test_invalid_json)
    assert MODEL.read(b'{"other": "\xff\xfe", "model": "m"}') == "m"


def test_bytes_likes() -> None:
    body = b'{"model": "ranker"}'
    assert MODEL.read(memoryview(body)) == "ranker"
    assert MODEL.read(memoryview(b"xx" + body)[2:]) == "ranker"
    assert MODEL.read(bytearray(body)) == "ranker"


# ---- errors --------------------------------------------------------------------------------

@pytest.mark.parametrize("body", [
    b"", b" ", b"{", b'{"model": "a"', b'{"model": "a",}', b"{model: 'a'}", b'{"model" "a"}',
    b'{"model": "a"} x', b'{"model": "a"}{}', b'{"a": 01, "model": "m"}', b'{"a": NaN}',
    b'{"model": "\xff"}', b'{"model": "a\x01"}', b'{"model": "\\x"}', b"\xef\xbb\xbf{}",
    b'{"a": [1, 2}', b"nul",
])
def test_invalid_json(body: bytes) -> None:
    assert "invalid JSON" in str(bad(MODEL, body))


@pytest.mark.parametrize("body, got", [
    (b"[]", "array"), (b'[{"model": "a"}]', "array"), (b'"model"', "str"), (b"1", "int"),
    (b"null", "null"), (b"true", "bool"),
])
def test_top_level_not_object(body: bytes, got: str) -> None:
    assert str(bad(MODEL, body)) == f"JSON body must be an object, got {got}"


@pytest.mark.parametrize("value, got", [
    (b"1", "int"), (b"1.5", "float"), (b"null", "null"), (b"true", "bool"), (b"[]", "array"),
    (b'{"name": "ranker"}', "object"),
])
def test_not_a_string(value: bytes, got: str) -> None:
    e = bad(MODEL, b'{"model": ' + value + b"}")
    assert str(e) == f"field 'model' must be a string, got {got}"
    nested = FieldReader("metadata.model")
    e = bad(nested, b'{"metadata": {"model": ' + value + b"}}")
    assert str(e) == f"field 'metadata.model' must be a string, got {got}"


def test_path_not_an_object() -> None:
    e = bad(FieldReader("metadata.model"), b'{"metadata": "ranker"}')
    assert str(e) == "field 'metadata' must be an object, got str"
    e = bad(FieldReader("a.b.c"), b'{"a": {"b": [1]}}')
    assert str(e) == "field 'a.b' must be an object, got array"


@pytest.mark.parametrize("path", ["", ".", "a.", ".a", "a..b", 'a"b', "a\\b", "a\nb", "x.\x00"])
def test_bad_path(path: str) -> None:
    with pytest.raises(ValueError):
        FieldReader(path)


def test_body_error() -> None:
    e = BodyError("request body over 1048576 bytes", status=413)
    assert isinstance(e, ValueError) and e.status == 413
    assert BodyError("x").status == 400
    with pytest.raises(ValueError):
        BodyError("x", status=500)


# ---- agreement with json.loads -------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(), inner, max_size=5),
    max_leaves=30,
)
keys = st.sampled_from(["model", "m", "é", "a\"b", "", "a.b"]) | st.text(max_size=8)
# a field name FieldReader takes as one member: no dot, none of '"', '\\', control characters
fields = keys.filter(lambda k: k and not any(c in '."\\' or c < " " for c in k))


@given(st.dictionaries(keys, json_values, max_size=8), fields, st.booleans(), st.booleans())
def test_agrees_with_json_loads(obj: dict, field: str, ascii: bool, plant: bool) -> None:
    if plant:
        obj[field] = "planted \u00e9 \" \\ \U0001f600"
    body = json.dumps(obj, ensure_ascii=ascii).encode()
    expected = json.loads(body).get(field)
    reader = FieldReader(field)
    if field not in obj:
        assert reader.read(body) is None
    elif isinstance(expected, str):
        assert reader.read(body) == expected
    else:
        with pytest.raises(BodyError):
            reader.read(body)


@given(st.dictionaries(keys, json_values, max_size=4), st.dictionaries(keys, json_values,
       max_size=4), st.text())
def test_nested_agrees_with_json_loads(outer: dict, inner: dict, value: str) -> None:
    inner["model"] = value
    outer["metadata"] = inner
    body = json.dumps(outer).encode()
    assert FieldReader("metadata.model").read(body) == json.loads(body)["metadata"]["model"]
