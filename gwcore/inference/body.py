"""Read one string field from a JSON request body (RFC 8259) without decoding the rest.

The inference routes name the model in the body (``{"model": "ranker", "messages": [...]}``,
the OpenAI shape). ``FieldReader("model")`` builds once a msgspec Struct type holding only that
field (``"metadata.model"``: a Struct holding a Struct, one per dotted segment); decoding a body
into it reads that field's value and skips every other member, however large, without building
Python objects for it. The body itself is left alone, to be forwarded byte for byte.

Shapes: the body must be one JSON object (RFC 8259 section 4) at the top level, each dotted
segment but the last must name an object when present, and the field itself must be a string
(section 7) when present. A missing field (or a missing object on the way) reads as ``None``.

Errors: ``BodyError`` with ``status`` 400 for a body that is not valid JSON (including invalid
UTF-8 or a lone surrogate escape in a string that is read; skipped members are only scanned
for structure, so invalid UTF-8 inside them passes), not an object, or with the field (or an
object on its path) of another type, JSON ``null`` included. 413 (body over the buffering bound) is the buffering caller's to raise.
Duplicate member names (RFC 8259 section 4 leaves them undefined): the last one wins, as in
``json.loads``.
"""

from __future__ import annotations

import re

import msgspec

__all__ = ["BodyError", "FieldReader"]

# msgspec's ValidationError text: "Expected `str`, got `int` - at `$.metadata.model`".
_VALIDATION = re.compile(r"Expected `(\w+)`, got `(\w+)`(?: - at `\$\.(.*)`)?")
_EXPECTED = {"str": "a string", "object": "an object"}


class BodyError(ValueError):
    """A request body the gateway refuses: ``status`` is the HTTP status (400 or 413)."""

    def __init__(self, message: str, status: int = 400) -> None:
        if status not in (400, 413):
            raise ValueError(f"BodyError status must be 400 or 413, not {status}")
        super().__init__(message)
        self.status = status


class FieldReader:
    """Reads the string at ``path`` (``"model"`` or dotted, ``"metadata.model"``) from JSON
    bodies. Build once per route; ``read`` is safe to call from any number of requests.

    ``ValueError`` for a path with an empty segment or a segment holding ``"``, ``\\`` or a
    control character."""

    __slots__ = ("_decoder", "_depth", "path")

    def __init__(self, path: str) -> None:
        names = path.split(".")
        if not all(names):
            raise ValueError(f"invalid field path {path!r}: empty segment")
        # Innermost first: each level is a Struct with one optional attribute ``f`` named in
        # JSON by the segment (identifier or not; msgspec refuses '"', '\\' and control
        # characters with a ValueError); unknown members are skipped (msgspec's default).
        kind: type = str
        for depth, name in enumerate(reversed(names)):
            kind = msgspec.defstruct(
                f"Field{len(names) - depth}", [("f", kind, None)], rename={"f": name}, gc=False
            )
        self.path = path
        self._decoder = msgspec.json.Decoder(kind)
        self._depth = len(names)

    def read(self, body: bytes | bytearray | memoryview) -> str | None:
        """The field's string value, or ``None`` when it (or an object on its path) is absent.

        Raises ``BodyError`` (status 400) when the body is not valid JSON, not an object at the
        top level, or the field is not a string (or an object on its path is not an object)."""
        try:
            value = self._decoder.decode(body)
        except msgspec.ValidationError as e:
            raise BodyError(_wrong_type(str(e))) from None
        except msgspec.DecodeError as e:
            raise BodyError(f"invalid JSON body: {e}") from None
        for _ in range(self._depth):
            value = value.f
            if value is None:
                return None
        return value


def _wrong_type(message: str) -> str:
    m = _VALIDATION.fullmatch(message)
    if m is None:  # msgspec worded it otherwise: pass it on
        return f"invalid JSON body: {message}"
    expected, got, where = m.groups()
    if where is None:
        return f"JSON body must be an object, got {got}"
    return f"field {where!r} must be {_EXPECTED.get(expected, expected)}, got {got}"
