"""gwcore.cache.purge: URL forms, matching, and the board between master and workers."""

from __future__ import annotations

import pytest

from gwcore.cache import purge as p


def test_url_key_is_the_cache_key_form() -> None:
    assert p.url_key("http://Example.COM:8080/a/b?x=1") == b"http://example.com:8080/a/b?x=1"
    assert p.url_key("https://h/%76%31/x") == b"http://h/%76%31/x?"     # exact: "?" + query
    assert p.url_key("http://h/v1/seg", prefix=True) == b"http://h/v1/seg"
    assert p.url_key("http://h", prefix=True) == b"http://h/"
    for bad in ("/path", "ftp://h/x", "http:///x"):
        with pytest.raises(ValueError):
            p.url_key(bad)


def test_matches() -> None:
    key = b"http://h/v1/x?a=1\nx-tenant:7"
    assert p.matches(key, p.EXACT, b"http://h/v1/x?a=1")
    assert not p.matches(key, p.EXACT, b"http://h/v1/x?")
    assert p.matches(key, p.PREFIX, b"http://h/v1/")
    assert not p.matches(key, p.PREFIX, b"http://h/v2/")


def test_board_posts_acks_and_overflow() -> None:
    board = p.PurgeBoard()
    i = board.acquire()
    assert i is not None and board.acked(i) == (0, 0)
    seqs = [board.post(p.EXACT, b"http://h/%d?" % n) for n in range(3)]
    assert board.pending(0) == [(s, p.EXACT, b"http://h/%d?" % n) for n, s in enumerate(seqs)]
    board.ack(i, seqs[-1], 5)
    assert board.acked(i) == (3, 5) and board.pending(3) == []
    for n in range(p.SLOTS + 1):
        board.post(p.PREFIX, b"http://h/")
    assert board.pending(3) is None         # fell behind: the worker clears its store
    j = board.acquire()
    assert board.acked(j) == (board.last, 0)    # a new worker starts at the latest purge
    board.release(i)
