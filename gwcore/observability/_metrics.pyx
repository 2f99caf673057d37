"""Metric cells in shared memory (src_c/metrics.h): a ``Region`` of rows × columns of 64-bit
cells mapped by the master before it forks, and the ``Row`` one worker writes.

The compiled request path (gwcore/proxy/_session.pyx, _upstream.pyx) writes through
``Row.p`` with the inline functions of metrics.h: a plain load and store in the process's own
row, no allocation, no lock, no cache line shared with another writer. Python code (the
master's scrape, periodic gauges) uses the methods below. The column layout is
gwcore/observability/metrics.py's."""

import mmap

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE
from libc.stdint cimport int64_t, uint8_t, uint32_t, uint64_t

from gwcore.observability._cmetrics cimport (
    GW_HIST_BOUNDS, GW_HIST_BOUNDS_NS, gw_metric_add, gw_metric_observe, gw_metric_set,
    gw_metrics_fold, gw_metrics_sum,
)

HIST_BOUNDS = tuple(GW_HIST_BOUNDS_NS[i] / 1e9 for i in range(GW_HIST_BOUNDS))  # seconds


cdef class Row:
    """One process's row of cells (``Region.row``), or a row that records nothing
    (``Row()``: metrics off). Columns are not checked here: the layout checks them."""

    def inc(self, uint32_t col, uint64_t value=1) -> None:
        """Counter ``col`` += value."""
        gw_metric_add(self.p, col, value)

    def set(self, uint32_t col, int64_t value) -> None:
        """Gauge ``col`` = value (this process's share)."""
        gw_metric_set(self.p, col, <uint64_t>value)

    def observe(self, uint32_t base, int64_t ns) -> None:
        """One observation of ``ns`` nanoseconds into the histogram at ``base``."""
        gw_metric_observe(self.p, base, ns)

    @property
    def enabled(self) -> bool:
        return self.p != NULL


cdef class Region:
    """``rows`` × ``cols`` cells in a MAP_SHARED anonymous mapping: made before fork(), every
    process sees the same cells. Row 0 is the master's (the folded counters of exited
    processes); rows 1.. are handed to workers, one each. Pages are touched only where
    written, so a generous ``cols`` costs address space, not memory."""

    def __cinit__(self, Py_ssize_t rows, Py_ssize_t cols):
        cdef unsigned char[::1] view
        if rows < 2 or cols < 1:
            raise ValueError("a region has at least 2 rows and 1 column")
        self.rows, self.cols = rows, cols
        self.mem = mmap.mmap(-1, rows * cols * 8)
        view = self.mem
        self.view = view
        self.base = <uint64_t *>&view[0]

    def row(self, Py_ssize_t r) -> Row:
        """The Row object of row r (1..rows-1 for a worker)."""
        if not 0 < r < self.rows:
            raise IndexError(f"row {r} outside 1..{self.rows - 1}")
        cdef Row row = Row.__new__(Row)
        row.p = self.base + r * self.cols
        row.owner = self
        return row

    def sum(self, bytes live, Py_ssize_t n):
        """Per column c < n, the sum of row 0 and of each row r with live[r] != 0, as a
        list of ints (gauge cells come back as unsigned: read them through ``signed``)."""
        cdef Py_ssize_t c
        if PyBytes_GET_SIZE(live) < self.rows or not 0 <= n <= self.cols:
            raise ValueError("live needs one byte per row, n at most cols")
        out = bytearray(8 * n)
        cdef unsigned char[::1] o = out
        if n:
            gw_metrics_sum(self.base, self.cols, <const uint8_t *>PyBytes_AS_STRING(live),
                           self.rows, n, <uint64_t *>&o[0])
        return memoryview(out).cast("Q").tolist()

    def fold(self, Py_ssize_t r, bytes gauge) -> None:
        """Row r's process exited: its counters join row 0, its gauges (gauge[c] != 0) are
        dropped, and the row is zeroed for reuse. Call only once r has no writer."""
        if not 0 < r < self.rows or PyBytes_GET_SIZE(gauge) > self.cols:
            raise ValueError("bad row or gauge map")
        gw_metrics_fold(self.base, self.cols, r, <const uint8_t *>PyBytes_AS_STRING(gauge),
                        PyBytes_GET_SIZE(gauge))


def signed(uint64_t v) -> int:
    """A gauge's sum as the signed value it is (two's complement)."""
    return <int64_t>v
