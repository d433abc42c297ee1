# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Rows of numbers out of a piece of text (table_parse.h): OpenMP threads each parse a chunk split at newlines."""
import numpy as np

cimport openmp
from cython.parallel cimport prange
from libc.stdint cimport int64_t, intptr_t

cdef extern from "table_parse.h" nogil:
    enum:
        CYFES_TP_OK
        CYFES_TP_NOT_NUMBER
        CYFES_TP_COUNT
        CYFES_TP_NOMEM
    void cyfes_tp_init()
    int64_t cyfes_tp_first_high(const unsigned char *p, int64_t n)
    int64_t cyfes_tp_next_directive(const char *buf, int64_t start, int64_t n)
    int64_t cyfes_tp_newlines(const unsigned char *p, int64_t n)
    int cyfes_tp_number(const char *s, const char *e, double *out)
    int64_t cyfes_tp_count(const char *buf, int64_t length, int nchunks, int64_t *bounds, int64_t *rows,
                           int nthreads)
    int cyfes_tp_parse(const char *buf, const int64_t *bounds, const int64_t *rows, int nchunks, char delim,
                       int ncols, const int *colmap, int nsel, int nslot, const int *src, double *const *dest,
                       const int64_t *step, int64_t *err_at, int64_t *err_row, int *err_info, int nthreads)

cyfes_tp_init()

NOT_NUMBER = CYFES_TP_NOT_NUMBER
COUNT = CYFES_TP_COUNT

#: Smallest piece of text a thread is given: below it, starting threads costs more than it saves.
MIN_CHUNK_BYTES = 1 << 18


def max_threads():
    return openmp.omp_get_max_threads()


def parse_number(bytes token):
    """The number `token` holds as the table parser reads it, or None when it is not a number."""
    cdef double value = 0
    cdef const char *p = token
    if cyfes_tp_number(p, p + len(token), &value):
        return value
    return None


cdef int _threads(int threads):
    """The threads a call asks for: `threads`, or all of OpenMP's for 0."""
    return threads if threads > 0 else openmp.omp_get_max_threads()


cdef int _parts(int64_t n, int threads):
    """Pieces a byte scan of n bytes is split into: one per thread, none below MIN_CHUNK_BYTES."""
    return <int>max(<int64_t>1, min(<int64_t>_threads(threads), n // MIN_CHUNK_BYTES))


def first_non_ascii(const unsigned char[::1] text, Py_ssize_t start, Py_ssize_t stop, int threads=0):
    """The offset of the first byte >= 0x80 in text[start:stop], or -1 (the text is then ASCII, so UTF-8); the
    pieces of a large text are scanned by `threads` threads (0: all) at once."""
    cdef int64_t n = stop - start, lo, hi, at
    cdef int parts = _parts(n, threads), k
    if n <= 0:
        return -1
    cdef int64_t[::1] first = np.full(parts, -1, dtype=np.int64)
    with nogil:
        for k in prange(parts, num_threads=parts, schedule="static"):
            lo = n * k // parts
            hi = n * (k + 1) // parts
            at = cyfes_tp_first_high(&text[start + lo], hi - lo)
            first[k] = lo + at if at >= 0 else -1
    for k in range(parts):
        if first[k] >= 0:
            return start + first[k]
    return -1


def next_directive(const unsigned char[::1] text, int64_t start, int64_t stop):
    """The offset of the next line starting with `#!` in text[start:stop] (text[0] starts a line), or -1."""
    if stop <= start:
        return -1
    return cyfes_tp_next_directive(<const char *>&text[0], start, stop)


def newlines(const unsigned char[::1] text, int64_t start, int64_t stop, int threads=0):
    """How many newlines text[start:stop] holds; the pieces of a large text counted by `threads` threads at once
    (the read's serial part otherwise: 0.07 s of a 449 MB COLVAR's 0.28 s read on 16 cores of an H100 host)."""
    cdef int64_t n = stop - start, total = 0, lo, hi
    cdef int parts = _parts(n, threads), k
    if n <= 0:
        return 0
    with nogil:
        for k in prange(parts, num_threads=parts, schedule="static"):
            lo = n * k // parts
            hi = n * (k + 1) // parts
            total += cyfes_tp_newlines(&text[start + lo], hi - lo)
    return total


cdef class Piece:
    """A piece of text split into chunks at newlines, with each chunk's count of data rows."""
    cdef public int64_t rows
    cdef int nchunks, nthreads
    cdef int64_t start
    cdef const unsigned char[::1] text
    cdef int64_t[::1] bounds
    cdef int64_t[::1] counts

    def __init__(self, const unsigned char[::1] text, int64_t start, int64_t stop, int threads=0):
        cdef int64_t length = stop - start
        cdef int nthreads = _threads(threads)
        cdef int nchunks = <int>min(<int64_t>nthreads * 4, max(<int64_t>1, length // MIN_CHUNK_BYTES))
        if nthreads == 1:
            nchunks = 1
        self.text, self.start, self.nchunks, self.nthreads = text, start, nchunks, nthreads
        self.bounds = np.zeros(nchunks + 1, dtype=np.int64)
        self.counts = np.zeros(nchunks, dtype=np.int64)
        self.rows = 0
        if length > 0:
            with nogil:
                self.rows = cyfes_tp_count(<const char *>&text[start], length, nchunks, &self.bounds[0],
                                           &self.counts[0], nthreads)

    def parse(self, list outs, const int[::1] src, int64_t first_row, str delimiter, int ncols,
              const int[::1] colmap):
        """Write the rows into the arrays `outs` (2-D, float64, C-ordered), rows first_row to first_row + rows:
        their columns in turn are the targets, target s taking the converted value src[s] (colmap: per file
        column its place among the converted values, -1: checked, not converted). Returns None, or (kind,
        offset of the bad line in the text, its row index in this piece, detail: columns found or the bad
        column)."""
        cdef int64_t err_at = 0, err_row = 0
        cdef int err_info = 0, rc, nsel = 0, nslot = src.shape[0], s = 0, c
        cdef char delim = ord(delimiter) if delimiter else 0
        cdef double[:, ::1] out
        cdef intptr_t[::1] dest = np.zeros(max(nslot, 1), dtype=np.intp)
        cdef int64_t[::1] step = np.zeros(max(nslot, 1), dtype=np.int64)
        if self.rows == 0:
            return None
        if colmap.shape[0] != ncols:
            raise ValueError("colmap of the wrong length")
        for c in range(ncols):
            nsel = max(nsel, colmap[c] + 1)
        for out in outs:
            if out.shape[1] and first_row + self.rows > out.shape[0]:
                raise ValueError("output too small for the rows")
            for c in range(out.shape[1]):
                if s >= nslot or not 0 <= src[s] < nsel:
                    raise ValueError("src does not name a converted value for every output column")
                dest[s], step[s] = <intptr_t>&out[first_row, c], out.shape[1]
                s += 1
        if s != nslot:
            raise ValueError("src names more targets than the outputs have columns")
        with nogil:
            rc = cyfes_tp_parse(<const char *>&self.text[self.start], &self.bounds[0], &self.counts[0],
                                self.nchunks, delim, ncols, &colmap[0], nsel, nslot, &src[0] if nslot else NULL,
                                <double *const *>&dest[0], &step[0], &err_at, &err_row, &err_info, self.nthreads)
        if rc == CYFES_TP_NOMEM:
            raise MemoryError("table parser: no memory for the chunk table")
        if rc == CYFES_TP_OK:
            return None
        return rc, self.start + err_at, err_row, err_info
