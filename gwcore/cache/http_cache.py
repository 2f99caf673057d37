"""RFC 9111 semantics for gwcore's edge cache, a *shared* cache: what a response may be stored
as, for how long it is fresh, how old a stored one is, what a request may be served from, and
how validators compare. Pure functions over ``bytes`` field values and seconds (floats, Unix
time for dates); the cache filter applies them to exchanges.

Sources: RFC 9111 §3 (storing), §4.2 (freshness, age), §4.3 (validation), §5.2
(Cache-Control), RFC 9110 §8.8 (validators), §13.1 (conditional requests), §15.1 (status codes
cacheable by default), §5.6.7 (HTTP-date), RFC 5861 (stale-while-revalidate, stale-if-error).
"""

from __future__ import annotations

import datetime
import email.utils
from collections.abc import Callable, Iterable
from dataclasses import dataclass

# RFC 9110 §15.1: "heuristically cacheable" status codes
CACHEABLE_BY_DEFAULT = frozenset({200, 203, 204, 206, 300, 301, 308, 404, 405, 410, 414, 501})
# status codes this cache understands well enough to store (§3: "the response status code is
# final and understood"); 206 needs range handling, which this cache does not do
UNDERSTOOD = frozenset({200, 203, 204, 300, 301, 302, 303, 307, 308, 404, 405, 410, 414, 501})
DELTA_MAX = 2147483648      # §1.2.2: a delta-seconds too large to represent is this
HEURISTIC_FRACTION = 0.1    # §4.2.2: "typically ... 10% of" the time since Last-Modified


def parse_cache_control(values: Iterable[bytes]) -> dict[str, str | None]:
    """Directives of Cache-Control field values (§5.2): lower-case name → argument (str,
    unquoted) or None. A directive given twice keeps its first occurrence (§4.2.1)."""
    out: dict[str, str | None] = {}
    for value in values:
        for name, arg in _directives(value.decode("latin-1")):
            out.setdefault(name, arg)
    return out


def _directives(text: str) -> Iterable[tuple[str, str | None]]:
    i, n = 0, len(text)
    while i < n:
        while i < n and text[i] in " \t,":
            i += 1
        start = i
        while i < n and text[i] not in "=, \t":
            i += 1
        name = text[start:i].lower()
        while i < n and text[i] in " \t":
            i += 1
        arg = None
        if i < n and text[i] == "=":
            i += 1
            while i < n and text[i] in " \t":
                i += 1
            if i < n and text[i] == '"':       # quoted-string (RFC 9110 §5.6.4)
                i += 1
                chars = []
                while i < n and text[i] != '"':
                    if text[i] == "\\" and i + 1 < n:
                        i += 1
                    chars.append(text[i])
                    i += 1
                i += 1
                arg = "".join(chars)
            else:
                start = i
                while i < n and text[i] not in ", \t":
                    i += 1
                arg = text[start:i]
        while i < n and text[i] != ",":
            i += 1
        if name:
            yield name, arg


def delta_seconds(arg: str | None) -> int | None:
    """A delta-seconds argument (§1.2.2): digits only; None if absent or invalid; capped at
    2**31."""
    if arg is None or not arg.isascii() or not arg.isdigit():
        return None
    return min(int(arg), DELTA_MAX)


def http_date(value: bytes | None) -> float | None:
    """An HTTP-date (RFC 9110 §5.6.7: IMF-fixdate, or the obsolete RFC 850 and asctime
    forms) as Unix time; None if absent or invalid."""
    if not value:
        return None
    try:
        dt = email.utils.parsedate_to_datetime(value.decode("latin-1"))
    except (TypeError, ValueError, IndexError):
        return None
    if dt is None:
        return None
    if dt.tzinfo is None:       # asctime and "-0000" carry no zone: HTTP dates are UTC
        dt = dt.replace(tzinfo=datetime.UTC)
    return dt.timestamp()


def format_http_date(t: float) -> bytes:
    """Unix time as an IMF-fixdate (RFC 9110 §5.6.7)."""
    return email.utils.formatdate(t, usegmt=True).encode()


@dataclass(frozen=True)
class Stored:
    """What the cache keeps of a response's metadata to compute freshness and age.
    Times are Unix seconds; ``lifetime`` the freshness lifetime (§4.2.1) in seconds."""

    status: int
    lifetime: float
    date: float                      # the Date field, or response_time when absent
    age: float                       # the Age field received (0 if none)
    request_time: float
    response_time: float
    stale_while_revalidate: float    # seconds (RFC 5861 §3); 0 if none
    stale_if_error: float            # seconds (RFC 5861 §4); 0 if none
    must_revalidate: bool            # must-revalidate or proxy-revalidate or s-maxage (§4.2.4)
    no_cache: bool                   # stored, but never served without validation (§5.2.2.4)
    etag: bytes | None
    last_modified: float | None

    def current_age(self, now: float) -> float:
        """§4.2.3: apparent age and corrected age value, plus the time since received."""
        apparent = max(0.0, self.response_time - self.date)
        corrected = self.age + (self.response_time - self.request_time)
        return max(apparent, corrected) + (now - self.response_time)

    def fresh(self, now: float) -> bool:
        return not self.no_cache and self.lifetime > self.current_age(now)

    def staleness(self, now: float) -> float:
        """Seconds past the freshness lifetime (≤ 0 while fresh)."""
        return self.current_age(now) - self.lifetime


def storable(method: bytes, status: int, request_cc: dict[str, str | None],
             response_cc: dict[str, str | None], *, authorization: bool, set_cookie: bool,
             store_set_cookie: bool, expires: bool, last_modified: bool) -> str | None:
    """Why a response may not be stored by a shared cache (§3, §3.5), or None if it may.
    ``expires``/``last_modified``: the response has an Expires / Last-Modified field."""
    if method not in (b"GET", b"HEAD"):
        return "method"
    if status not in UNDERSTOOD:
        return "status"
    if "no-store" in request_cc or "no-store" in response_cc:
        return "no-store"
    if "private" in response_cc:
        return "private"
    if authorization and not ("must-revalidate" in response_cc or "public" in response_cc
                              or "s-maxage" in response_cc):
        return "authorization"     # §3.5
    if set_cookie and not store_set_cookie:
        return "set-cookie"
    explicit = ("public" in response_cc or expires or "max-age" in response_cc
                or "s-maxage" in response_cc)
    if not explicit and not (status in CACHEABLE_BY_DEFAULT and last_modified):
        # §3: storable only with explicit freshness or a heuristic the status allows; a
        # heuristic needs a Last-Modified to work from (§4.2.2)
        return "no-freshness"
    return None


def freshness_lifetime(status: int, cc: dict[str, str | None], *, date: float | None,
                       expires: bytes | None, last_modified: float | None,
                       response_time: float, heuristic_max: float) -> float:
    """§4.2.1 for a shared cache: s-maxage, then max-age, then Expires − Date, then (only for
    a status cacheable by default, or ``public``) the heuristic of §4.2.2: 10% of the time
    since Last-Modified, at most ``heuristic_max`` seconds. An invalid Expires (e.g. "0") means
    already expired (§5.3)."""
    for name in ("s-maxage", "max-age"):
        if name in cc:
            delta = delta_seconds(cc[name])
            return float(delta) if delta is not None else 0.0
    if expires is not None:
        t = http_date(expires)
        return 0.0 if t is None else max(0.0, t - (date if date is not None else response_time))
    if last_modified is not None and (status in CACHEABLE_BY_DEFAULT or "public" in cc):
        since = (date if date is not None else response_time) - last_modified
        return min(max(0.0, since * HEURISTIC_FRACTION), heuristic_max)
    return 0.0


def stored(status: int, fields: Callable[[bytes], list[bytes]], *, request_time: float,
           response_time: float, heuristic_max: float, swr_default: float = 0.0,
           sie_default: float = 0.0) -> Stored:
    """The freshness metadata of a response about to be stored. ``fields(name)``: the values
    of a response field (lower-case name). ``swr_default``/``sie_default``: the route's
    stale-while-revalidate / stale-if-error when the response names none (seconds)."""
    cc = parse_cache_control(fields(b"cache-control"))
    date = http_date(_first(fields(b"date")))
    last_modified = http_date(_first(fields(b"last-modified")))
    age = delta_seconds(_first(fields(b"age"), b"").decode("latin-1").strip()) or 0

    def seconds(name: str, default: float) -> float:
        d = delta_seconds(cc.get(name)) if name in cc else None
        return float(d) if d is not None else default

    return Stored(
        status=status,
        lifetime=freshness_lifetime(status, cc, date=date, expires=_first(fields(b"expires")),
                                    last_modified=last_modified, response_time=response_time,
                                    heuristic_max=heuristic_max),
        date=date if date is not None else response_time,
        age=float(age), request_time=request_time, response_time=response_time,
        stale_while_revalidate=seconds("stale-while-revalidate", swr_default),
        stale_if_error=seconds("stale-if-error", sie_default),
        must_revalidate=any(k in cc for k in ("must-revalidate", "proxy-revalidate",
                                              "s-maxage")),
        no_cache="no-cache" in cc and cc["no-cache"] is None,
        etag=_first(fields(b"etag")),
        last_modified=last_modified,
    )


def _first(values: list[bytes], default: bytes | None = None) -> bytes | None:
    return values[0] if values else default


def _etags(value: bytes) -> list[bytes]:
    """The entity-tags of an If-None-Match list (RFC 9110 §8.8.3), with their W/ prefix."""
    tags, i, n = [], 0, len(value)
    while i < n:
        while i < n and value[i] in b" \t,":
            i += 1
        start = i
        if value.startswith(b"W/", i):
            i += 2
        if i < n and value[i] == 0x22:     # '"'
            end = value.find(b'"', i + 1)
            if end < 0:
                break
            i = end + 1
            tags.append(value[start:i])
        else:
            while i < n and value[i] not in b" \t,":
                i += 1
            tags.append(value[start:i])
    return tags


def weak_match(a: bytes, b: bytes) -> bool:
    """Weak comparison of two entity-tags (RFC 9110 §8.8.3.2): opaque-tags equal, W/
    ignored."""
    return a.removeprefix(b"W/") == b.removeprefix(b"W/")


def not_modified(if_none_match: bytes | None, if_modified_since: bytes | None,
                 entry: Stored) -> bool:
    """Whether a GET/HEAD with these conditions gets 304 from ``entry`` (RFC 9110 §13.1.1,
    §13.1.3, §13.2.2: If-None-Match, when present, decides; If-Modified-Since is then
    ignored)."""
    if if_none_match is not None:
        if if_none_match.strip() == b"*":
            return True
        return entry.etag is not None and any(weak_match(tag, entry.etag)
                                              for tag in _etags(if_none_match))
    if if_modified_since is not None:
        since = http_date(if_modified_since)
        modified = entry.last_modified if entry.last_modified is not None else entry.date
        return since is not None and modified <= since
    return False


def vary_names(values: list[bytes]) -> tuple[bytes, ...] | None:
    """The request field names a response varies on (RFC 9110 §12.5.5), lower-case and
    sorted; None for ``Vary: *`` (never served from the cache, §4.1)."""
    names: set[bytes] = set()
    for value in values:
        for part in value.split(b","):
            name = part.strip().lower()
            if name == b"*":
                return None
            if name:
                names.add(name)
    return tuple(sorted(names))


def vary_key(names: tuple[bytes, ...], header: Callable[[bytes], list[bytes]]
             ) -> tuple[bytes, ...]:
    """The secondary key of a request for these Vary names (§4.1): each field's values
    combined with ", " and whitespace around list members normalised, so ``gzip,br`` and
    ``gzip, br`` select the same stored response."""
    out = []
    for name in names:
        members = [m.strip() for v in header(name) for m in v.split(b",")]
        out.append(b", ".join(m for m in members if m))
    return tuple(out)
