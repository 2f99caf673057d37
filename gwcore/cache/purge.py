"""Cache purges, from the admin API (served by the master) to every worker's store.

Each worker has a store of its own, so a purge must reach them all. The master maps a
``PurgeBoard`` before its first fork: a shared memory page where it posts purges (a sequence
number, exact URL or prefix) and where each worker, polling every ``POLL_INTERVAL``, applies
the ones it has not seen and acknowledges the last one with how many responses it removed.
The admin API answers once every serving worker has acknowledged (gwcore/observability/admin.py).
A worker that fell more than ``SLOTS`` purges behind clears its whole store: never a stale
entry left behind.

URLs are compared on their cache-key form: ``http://`` + lower-case host + the path as the
proxy forwards it (as the client sent it; normalised on a route with
``forward_normalized_path``) + ``?`` + the query (on a route with ``keep_query`` /
``drop_query``: the kept parameters in sorted order).
"""

from __future__ import annotations

import mmap
import struct
from urllib.parse import urlsplit

POLL_INTERVAL = 0.1         # seconds between a worker's looks at the board
SLOTS = 64                  # purges kept on the board
ACKS = 1024                 # workers that can acknowledge (live ones, all generations)
MAX_URL = 4096              # bytes

EXACT, PREFIX = 1, 2
_HEAD = struct.Struct("<Q")                 # last posted sequence number
_ACK = struct.Struct("<QQ")                 # per worker: last applied seq, entries removed
_SLOT = struct.Struct("<QBI")               # seq, kind, url length; then the url
_ACKS_AT = _HEAD.size
_SLOTS_AT = _ACKS_AT + ACKS * _ACK.size
_SLOT_SIZE = _SLOT.size + MAX_URL


def url_key(url: str, prefix: bool = False) -> bytes:
    """The cache-key form of an absolute ``http://`` or ``https://`` URL: with its ``?`` and
    query (empty if none) for an exact purge, as given for a ``prefix`` (which may end
    anywhere in the path). ValueError for anything else."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an absolute http URL: {url!r}")
    host = parts.netloc.rpartition("@")[2].lower().encode()
    path = (parts.path or "/").encode()
    key = b"http://" + host + path
    if not prefix or parts.query or url.endswith("?"):
        key += b"?" + parts.query.encode()
    if len(key) > MAX_URL:
        raise ValueError(f"URL longer than {MAX_URL} bytes")
    return key


def matches(key: bytes, kind: int, url: bytes) -> bool:
    """Whether a stored key (its URL part: up to the first newline) is purged."""
    part = key.split(b"\n", 1)[0]
    return part.startswith(url) if kind == PREFIX else part == url


class PurgeBoard:
    """The shared page (module docstring). The master calls ``post``, ``acquire``,
    ``release`` and ``acked``; a worker ``pending`` and ``ack``."""

    def __init__(self) -> None:
        self.mem = mmap.mmap(-1, _SLOTS_AT + SLOTS * _SLOT_SIZE)
        self.free = list(range(ACKS - 1, -1, -1))

    # -- the master ------------------------------------------------------------------------

    def post(self, kind: int, url: bytes) -> int:
        """Posts a purge; returns its sequence number."""
        seq = _HEAD.unpack_from(self.mem, 0)[0] + 1
        at = _SLOTS_AT + (seq % SLOTS) * _SLOT_SIZE
        _SLOT.pack_into(self.mem, at, 0, kind, len(url))
        self.mem[at + _SLOT.size:at + _SLOT.size + len(url)] = url
        _SLOT.pack_into(self.mem, at, seq, kind, len(url))      # complete: readable now
        _HEAD.pack_into(self.mem, 0, seq)
        return seq

    def acquire(self) -> int | None:
        """An acknowledgement index for a worker about to be forked (None: all taken)."""
        if not self.free:
            return None
        i = self.free.pop()
        _ACK.pack_into(self.mem, _ACKS_AT + i * _ACK.size, self.last, 0)
        return i

    def release(self, i: int) -> None:
        self.free.append(i)

    def acked(self, i: int) -> tuple[int, int]:
        """(last purge applied, entries it removed) of the worker at index i."""
        return _ACK.unpack_from(self.mem, _ACKS_AT + i * _ACK.size)

    @property
    def last(self) -> int:
        return _HEAD.unpack_from(self.mem, 0)[0]

    # -- a worker --------------------------------------------------------------------------

    def pending(self, seen: int) -> list[tuple[int, int, bytes]] | None:
        """Purges after ``seen``, in order: (seq, kind, url); None when some were already
        overwritten (the worker must clear its whole store)."""
        last = self.last
        if last - seen > SLOTS:
            return None
        out = []
        for seq in range(seen + 1, last + 1):
            at = _SLOTS_AT + (seq % SLOTS) * _SLOT_SIZE
            got, kind, n = _SLOT.unpack_from(self.mem, at)
            if got != seq:
                return None         # overwritten while we read
            out.append((seq, kind, bytes(self.mem[at + _SLOT.size:at + _SLOT.size + n])))
        return out

    def ack(self, i: int, seq: int, removed: int) -> None:
        _ACK.pack_into(self.mem, _ACKS_AT + i * _ACK.size, seq, removed)
