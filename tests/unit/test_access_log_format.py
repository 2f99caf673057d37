"""The access log's lines and its writer, in process (gwcore.observability._access_log):
timestamps, JSON escaping of any bytes (checked against Python's strict UTF-8 decoder),
query redaction, the combined format, and the writer thread: everything written on close,
reopen after a rename, a FIFO nobody reads (never blocks, drops and counts), the loop timer.
Exchanges come from the Python constructor, so the response side (status, bytes, times) is
the integration tests' (tests/integration/test_access_log.py)."""

from __future__ import annotations

import asyncio
import calendar
import json
import os
import random
import re
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from gwcore.proxy._exchange import Exchange

from gwcore.config import AccessLog as AccessLogConfig
from gwcore.observability._access_log import DEFAULT_REDACT, AccessLog

FIELDS = ["ts", "request_id", "trace_id", "client", "method", "path", "query", "status",
          "request_bytes", "response_bytes", "duration", "upstream_duration", "endpoint",
          "route", "cluster", "tries", "end", "cache", "auth"]
T0 = 1796623539.123         # 2026-12-07T06:05:39.123Z


def exchange(target: bytes = b"/a?b=1", method: bytes = b"GET", client: str = "10.1.2.3",
             path: bytes | None = None, route: str | None = None) -> Exchange:
    if path is None:
        path = target.partition(b"?")[0]
    request = SimpleNamespace(method=method, target=target, path=path)
    return Exchange(request, SimpleNamespace(name=route) if route else None, client)


def wait_for(predicate, timeout: float = 10.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)
    return value


@pytest.fixture
def log(tmp_path: Path):
    made = []

    def make(**kw) -> AccessLog:
        kw.setdefault("path", str(tmp_path / "access.log"))
        al = AccessLog(**kw)
        made.append(al)
        return al

    yield make
    for al in made:
        al.close()


def parse(line: bytes) -> dict:
    assert line.endswith(b"\n") and line.count(b"\n") == 1, line
    return json.loads(line)


def expected_text(raw: bytes) -> str:
    """What a JSON string of raw bytes must decode to: well-formed UTF-8 as text, every
    other byte as the code point of the same value (\\u00XX)."""
    text = raw.decode("utf-8", "surrogateescape")
    return "".join(chr(ord(c) - 0xDC00) if 0xDC80 <= ord(c) <= 0xDCFF else c for c in text)


# -- the JSON line ---------------------------------------------------------------------------


def test_every_field_in_order_with_nulls_for_what_did_not_happen(log) -> None:
    rec = parse(log().line(exchange(b"/v1/x?q=1", route="main"), now=T0))
    assert list(rec) == FIELDS
    assert rec == {
        "ts": "2026-12-07T06:05:39.123Z", "request_id": None, "trace_id": None,
        "client": "10.1.2.3", "method": "GET", "path": "/v1/x", "query": "q=1", "status": 0,
        "request_bytes": 0, "response_bytes": 0, "duration": 0.0, "upstream_duration": None,
        "endpoint": None, "route": "main", "cluster": None, "tries": 0, "end": None,
        "cache": None, "auth": None}


def test_filter_outcomes_and_trace_id_are_logged(log) -> None:
    ex = exchange()
    ex.auth, ex.cache, ex.trace_id = "bad_signature", "HIT", "0af7651916cd43dd8448eb211c80319c"
    rec = parse(log().line(ex, now=T0))
    assert (rec["auth"], rec["cache"], rec["trace_id"]) == (
        "bad_signature", "HIT", "0af7651916cd43dd8448eb211c80319c")


@pytest.mark.parametrize("now, ts", [
    (T0, "2026-12-07T06:05:39.123Z"),
    (T0 + 0.876, "2026-12-07T06:05:39.999Z"),
    (1796623539.9999996, "2026-12-07T06:05:40.000Z"),     # rounds to the next second
    (0.0, "1970-01-01T00:00:00.000Z"),
    (951782400.5, "2000-02-29T00:00:00.500Z"),
    (4102444799.001, "2099-12-31T23:59:59.001Z"),
])
def test_timestamp_is_utc_rfc3339_with_milliseconds(log, now, ts) -> None:
    assert parse(log().line(exchange(), now=now))["ts"] == ts


def test_the_cached_second_follows_the_clock(log) -> None:
    al = log()
    stamps = [parse(al.line(exchange(), now=T0 + d))["ts"] for d in (0, 0.5, 1.0, 0.2, 3600)]
    assert stamps == ["2026-12-07T06:05:39.123Z", "2026-12-07T06:05:39.623Z",
                      "2026-12-07T06:05:40.123Z", "2026-12-07T06:05:39.323Z",
                      "2026-12-07T07:05:39.123Z"]
    now = time.time()
    ts = parse(al.line(exchange()))["ts"]        # default: the current time
    parsed = calendar.timegm(time.strptime(ts[:19], "%Y-%m-%dT%H:%M:%S"))
    assert abs(parsed - now) < 2


def test_any_bytes_make_valid_json_decoding_to_utf8_or_code_points(log) -> None:
    al = log()
    cases = [b"/caf\xc3\xa9", b"/\xe2\x82\xac/\xf0\x9f\x98\x80", b'/"q"\\x', b"/\x00\x01\x1f\x7f",
             b"/\t\r\n", b"/\xff\xfe", b"/\xc0\xaf",                  # overlong "/"
             b"/\xed\xa0\x80",                                          # a UTF-16 surrogate
             b"/\xf4\x90\x80\x80",                                      # above U+10FFFF
             b"/\xe2\x82", b"/\xe2\x82A", b"/\x80\xbf", b"/\xf0\x9f\x98"]
    rng = random.Random(7)
    alphabet = b"\x00\x01\n\"\\/aZ~\x7f\x80\xbf\xc2\xc3\xdf\xe0\xe2\xed\xef\xf0\xf4\xf5\xff\x82\xa0"
    cases += [bytes(rng.choice(alphabet) for _ in range(rng.randrange(1, 24)))
              for _ in range(3000)]
    cases += [bytes(rng.randrange(256) for _ in range(rng.randrange(1, 24)))
              for _ in range(3000)]
    for raw in cases:
        line = al.line(exchange(b"/t", method=raw, path=raw, client="c"), now=T0)
        rec = parse(line)
        assert rec["path"] == rec["method"] == expected_text(raw), raw
        assert not re.search(rb"[\x00-\x1f\x7f]", line[:-1]), line


def test_string_fields_are_escaped_too(log) -> None:
    ex = exchange(client='x"\\\ny\u00e9\u20ac', route='r"1')
    rec = parse(log().line(ex, now=T0))
    assert rec["client"] == 'x"\\\ny\u00e9\u20ac' and rec["route"] == 'r"1'


# -- redaction -------------------------------------------------------------------------------


@pytest.mark.parametrize("query, logged", [
    ("access_token=SECRET&x=1", "access_token=REDACTED&x=1"),
    ("x=1&ACCESS_TOKEN=SECRET", "x=1&ACCESS_TOKEN=REDACTED"),
    ("Token=SECRET&token=SECRET", "Token=REDACTED&token=REDACTED"),
    ("%74oken=SECRET&%61pi%5Fkey=SECRET", "%74oken=REDACTED&%61pi%5Fkey=REDACTED"),
    ("sig=SECRET=more&code=", "sig=REDACTED&code=REDACTED"),
    ("tokens=1&mytoken=2&token_x=3&sig", "tokens=1&mytoken=2&token_x=3&sig"),
    ("a=1&&b=%22&=v", "a=1&&b=%22&=v"),
    ("", ""),
    ("password=SECRET&X-Amz-Signature=SECRET", "password=REDACTED&X-Amz-Signature=REDACTED"),
])
def test_default_redaction(log, query, logged) -> None:
    line = log().line(exchange(b"/p?" + query.encode()), now=T0)
    assert parse(line)["query"] == logged
    assert b"SECRET" not in line


def test_no_query_and_an_empty_one_both_log_an_empty_string(log) -> None:
    al = log()
    assert parse(al.line(exchange(b"/p"), now=T0))["query"] == ""
    assert parse(al.line(exchange(b"/p?"), now=T0))["query"] == ""


def test_redaction_list_is_configurable_and_the_default_is_the_configs(log) -> None:
    assert DEFAULT_REDACT == tuple(AccessLogConfig(path="-").redact_query)
    al = log(redact_query=["Session", "x-custom-key"])
    rec = parse(al.line(exchange(b"/p?session=S1&token=visible&X-CUSTOM-KEY=S2"), now=T0))
    assert rec["query"] == "session=REDACTED&token=visible&X-CUSTOM-KEY=REDACTED"
    none = log(path=os.devnull, redact_query=[])
    assert parse(none.line(exchange(b"/p?token=t"), now=T0))["query"] == "token=t"


# -- combined --------------------------------------------------------------------------------


def test_combined_line_shape_and_escaping(log) -> None:
    al = log(format="combined")
    line = al.line(exchange(b'/a"b\xff?token=SECRET&x=1', method=b"POST", client="10.0.0.9"),
                   now=T0)
    tz = time.strftime("%z", time.localtime(T0))
    day = time.strftime("%d/%b/%Y:%H:%M:%S", time.localtime(T0))
    assert line == (f'10.0.0.9 - - [{day} {tz}] "POST /a\\x22b\\xFF?token=REDACTED&x=1 '
                    f'HTTP/1.1" 0 0 "-" "-"\n').encode()


def test_combined_time_is_local_with_its_offset(log, monkeypatch) -> None:
    monkeypatch.setenv("TZ", "XST-5:30")         # POSIX: local time is UTC+05:30
    time.tzset()
    try:
        line = log(format="combined").line(exchange(), now=T0)
    finally:
        monkeypatch.undo()
        time.tzset()
    assert b"[07/Dec/2026:11:35:39 +0530]" in line


# -- validation ------------------------------------------------------------------------------


@pytest.mark.parametrize("kw, message", [
    ({"format": "xml"}, "format"),
    ({"sample_2xx": 1.5}, "sample_2xx"),
    ({"buffer_bytes": 0}, "buffer_bytes"),
])
def test_bad_arguments(tmp_path: Path, kw, message) -> None:
    with pytest.raises(ValueError, match=message):
        AccessLog(str(tmp_path / "x.log"), **kw)


def test_an_unwritable_path_fails_at_once(tmp_path: Path) -> None:
    with pytest.raises(OSError):
        AccessLog(str(tmp_path / "no" / "such" / "dir.log"))


# -- the writer ------------------------------------------------------------------------------


def test_close_writes_everything_buffered(log, tmp_path: Path) -> None:
    al = log()
    for i in range(1000):
        al.record(exchange(f"/n?i={i}".encode()))
    assert al.close()
    lines = (tmp_path / "access.log").read_bytes().splitlines()
    assert [json.loads(x)["query"] for x in lines] == [f"i={i}" for i in range(1000)]
    assert (al.lines_written, al.lines_dropped) == (1000, 0)
    al.record(exchange())                       # after close: nothing
    assert al.lines_written == 1000


def test_lines_are_appended_to_an_existing_file(log, tmp_path: Path) -> None:
    (tmp_path / "access.log").write_bytes(b"old\n")
    al = log()
    al.record(exchange())
    al.close()
    assert (tmp_path / "access.log").read_bytes().startswith(b"old\n{")


def test_reopen_after_a_rename_writes_to_a_new_file(log, tmp_path: Path) -> None:
    path = tmp_path / "access.log"
    al = log()
    al.record(exchange(b"/before"))
    al.flush()
    wait_for(lambda: al.lines_written == 1, what="the first line")
    path.rename(tmp_path / "access.log.1")
    al.reopen()
    al.record(exchange(b"/after"))
    al.flush()
    wait_for(lambda: path.exists() and path.read_bytes(), what="the new file")
    al.close()
    assert [json.loads(x)["path"] for x in path.read_bytes().splitlines()] == ["/after"]
    assert [json.loads(x)["path"] for x in (tmp_path / "access.log.1").read_bytes()
            .splitlines()] == ["/before"]


def test_a_batch_is_handed_over_by_the_loop_timer(log, tmp_path: Path) -> None:
    path = tmp_path / "access.log"

    async def main() -> float:
        al = log(loop=asyncio.get_running_loop(), flush_interval=0.05)
        start = time.monotonic()
        al.record(exchange())
        while not path.read_bytes():
            assert time.monotonic() - start < 10, "no line written by the timer"
            await asyncio.sleep(0.01)
        return time.monotonic() - start

    assert asyncio.run(main()) >= 0.04


def test_a_full_batch_is_handed_over_at_once(log, tmp_path: Path) -> None:
    al = log(batch_bytes=1000)
    for _ in range(10):
        al.record(exchange(b"/" + b"x" * 200))
    wait_for(lambda: al.lines_written >= 3, what="full batches written without a flush")


def test_a_fifo_nobody_reads_never_blocks_and_counts_dropped_lines(log, tmp_path: Path,
                                                                    caplog) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    al = log(path=str(fifo), buffer_bytes=128 << 10, batch_bytes=8 << 10)   # no reader yet
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    try:
        total = 20000
        for i in range(total):
            al.record(exchange(b"/x?i=%d&pad=" % i + b"p" * 300))
        al.flush()
        # every record() returned while the writer is stuck on the full pipe (a blocking
        # record would never have): bytes still wait, the excess was dropped
        assert al.waiting_bytes > 0
        assert al.lines_dropped > 0
        assert any("lines dropped" in r.getMessage() for r in caplog.records)
        # the reader catches up: what was not dropped arrives, whole lines only
        got = bytearray()

        def drained() -> bool:
            try:
                while chunk := os.read(reader, 1 << 16):
                    got.extend(chunk)
            except BlockingIOError:
                pass
            return al.waiting_bytes == 0 and al.lines_written + al.lines_dropped == total
        wait_for(drained, 20, "the writer to catch up")
        assert al.close()
        drained()
    finally:
        os.close(reader)
    lines = bytes(got).splitlines()
    assert len(lines) == al.lines_written > 0
    assert all(json.loads(x)["path"] == "/x" for x in lines)


def test_two_logs_sharing_a_pipe_never_mix_their_lines(tmp_path: Path) -> None:
    """Two workers with "-" share one pipe: their writes go in whole lines of at most
    PIPE_BUF bytes, which the kernel never interleaves."""
    fifo = tmp_path / "shared"
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    logs = [AccessLog(str(fifo), batch_bytes=60000) for _ in range(2)]
    got = bytearray()
    n = 3000
    try:
        for i in range(n):
            for k, al in enumerate(logs):
                al.record(exchange(b"/w%d?i=%d&fill=" % (k, i) + b"f" * 500))

        def read_all() -> bool:
            try:
                while chunk := os.read(reader, 1 << 16):
                    got.extend(chunk)
            except BlockingIOError:
                pass
            return got.count(b"\n") >= 2 * n
        for al in logs:
            al.flush()
        wait_for(read_all, 20, "every line through the pipe")
    finally:
        for al in logs:
            al.close()
        os.close(reader)
    recs = [json.loads(x) for x in bytes(got).splitlines()]
    for k in range(2):
        assert [r["query"] for r in recs if r["path"] == f"/w{k}"] == [
            f"i={i}&fill={'f' * 500}" for i in range(n)]


def test_full_batches_fit_in_the_smallest_buffer(log, tmp_path: Path) -> None:
    """buffer_bytes at the config's minimum (64 KiB, the default batch size): a full batch
    finding the writer idle is written, never dropped."""
    al = log(buffer_bytes=64 << 10, batch_bytes=64 << 10)
    for i in range(100):                    # ~2.1 KB lines: 200 KiB in all
        al.record(exchange(b"/x?i=%d&fill=" % i + b"f" * 2000))
        wait_for(lambda: al.waiting_bytes == 0, what="the writer to be idle")
    al.close()
    assert (al.lines_written, al.lines_dropped) == (100, 0)
    assert len((tmp_path / "access.log").read_bytes().splitlines()) == 100
