/* Rows of numbers out of text tables (PLUMED COLVAR/HILLS, whitespace or CSV), in parallel chunks.
 *
 * The caller hands over a piece of text that holds only data, blank and comment lines (the `#!` directives are
 * found before, in Python: they are few). cyfes_tp_count splits the piece at newlines into chunks and counts
 * each chunk's data rows; cyfes_tp_parse then converts, in each chunk at once, only the columns the caller asked
 * for, each row at its final place in the output arrays.
 *
 * Every field is checked against the grammar (as the numpy-based reader did); only the requested ones are
 * converted. Numbers follow the grammar cyfes has always accepted (numpy's text reader, ASCII only):
 *   [+-]? ( digits [. digits?] | . digits ) ([eE] [+-]? digits)?  |  [+-]? (inf | infinity | nan)  (any case)
 * so `1_000`, `0x1p3`, `1.5d3` are refused. Conversion is correctly rounded: Clinger's fast path (at most 15
 * significant digits and a power of ten up to 1e22: both exact in a double, so one IEEE operation rounds once),
 * else glibc's strtod_l in the C locale (correctly rounded) on a NUL-terminated copy of the token. */
#ifndef CYFES_TABLE_PARSE_H
#define CYFES_TABLE_PARSE_H

#include <float.h>
#include <locale.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

enum { CYFES_TP_OK = 0, CYFES_TP_NOT_NUMBER = 1, CYFES_TP_COUNT = 2, CYFES_TP_NOMEM = 3 };

static locale_t cyfes_tp_c_locale = (locale_t)0;

/* Called once when the module loads: strtod must not read a ',' decimal point from the user's LC_NUMERIC. */
static void cyfes_tp_init(void) {
    if (!cyfes_tp_c_locale) cyfes_tp_c_locale = newlocale(LC_ALL_MASK, "C", (locale_t)0);
}

static const double cyfes_tp_pow10[23] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,  1e8,  1e9,  1e10, 1e11,
                                          1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

#if LDBL_MANT_DIG == 64 && defined(__x86_64__)
static const long double cyfes_tp_lpow10[28] = {
    1e0L,  1e1L,  1e2L,  1e3L,  1e4L,  1e5L,  1e6L,  1e7L,  1e8L,  1e9L,  1e10L, 1e11L, 1e12L, 1e13L,
    1e14L, 1e15L, 1e16L, 1e17L, 1e18L, 1e19L, 1e20L, 1e21L, 1e22L, 1e23L, 1e24L, 1e25L, 1e26L, 1e27L};
#endif

/* Separators inside a line: numpy's reader splits at blanks and tabs and strips \r, \v, \f around numbers. */
static inline int cyfes_tp_blank(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f'; }
static inline int cyfes_tp_digit(char c) { return (unsigned char)(c - '0') < 10; }

static int cyfes_tp_word(const char *p, const char *e, const char *word) {
    size_t n = strlen(word);
    if ((size_t)(e - p) != n) return 0;
    for (size_t i = 0; i < n; i++)
        if ((p[i] | 32) != word[i]) return 0;
    return 1;
}

static int cyfes_tp_slow(const char *s, const char *e, double *out) {
    char local[128];
    size_t n = (size_t)(e - s);
    char *copy = n < sizeof local ? local : (char *)malloc(n + 1);
    if (!copy) return 0;
    memcpy(copy, s, n);
    copy[n] = 0;
    char *end = NULL;
    *out = cyfes_tp_c_locale ? strtod_l(copy, &end, cyfes_tp_c_locale) : strtod(copy, &end);
    int ok = end == copy + n; /* overflow gives +-inf and underflow 0 or a subnormal, as float() does */
    if (copy != local) free(copy);
    return ok;
}

/* inf, infinity or nan (any case) in [p, e) after the sign. */
static int cyfes_tp_special(const char *p, const char *e, int neg, double *out) {
    if (cyfes_tp_word(p, e, "inf") || cyfes_tp_word(p, e, "infinity")) *out = neg ? -HUGE_VAL : HUGE_VAL;
    else if (cyfes_tp_word(p, e, "nan")) *out = neg ? -NAN : NAN;
    else return 0;
    return 1;
}

/* The number at the start of [s, e): returns where it ends (the caller checks that a separator follows), or
 * NULL when no number of the grammar starts there. Clinger's fast path: the digits (at most 19, so no overflow)
 * make an integer of at most 2^53, exact in a double, and 10^|e| <= 10^22 is exact too, so one multiply or
 * divide rounds once, correctly. */
static inline const char *cyfes_tp_scan(const char *s, const char *e, double *out) {
    const char *p = s;
    int neg = 0;
    if (p < e && (*p == '+' || *p == '-')) neg = *p++ == '-';
    uint64_t m = 0;
    const char *d0 = p;
    while (p < e && cyfes_tp_digit(*p)) m = m * 10 + (uint64_t)(*p++ - '0');
    int64_t ndig = p - d0, nfrac = 0;
    if (p < e && *p == '.') {
        const char *f0 = ++p;
        while (p < e && cyfes_tp_digit(*p)) m = m * 10 + (uint64_t)(*p++ - '0');
        nfrac = p - f0;
        ndig += nfrac;
    }
    if (ndig == 0) return NULL; /* inf and nan are the caller's: they need the whole token */
    int64_t e10 = -nfrac;
    if (p < e && (*p | 32) == 'e') {
        const char *q = p + 1;
        int eneg = 0;
        if (q < e && (*q == '+' || *q == '-')) eneg = *q++ == '-';
        if (!(q < e && cyfes_tp_digit(*q))) return NULL;
        int64_t x = 0;
        for (; q < e && cyfes_tp_digit(*q); q++)
            if (x < 100000000) x = x * 10 + (*q - '0');
        e10 += eneg ? -x : x;
        p = q;
    }
    if (ndig <= 19 && m <= ((uint64_t)1 << 53) && e10 >= -22 && e10 <= 22) {
        double v = (double)m;
        v = e10 < 0 ? v / cyfes_tp_pow10[-e10] : v * cyfes_tp_pow10[e10];
        *out = neg ? -v : v;
        return p;
    }
    if (ndig <= 19 && m == 0) { *out = neg ? -0.0 : 0.0; return p; }
#if LDBL_MANT_DIG == 64 && defined(__x86_64__)
    /* 16 to 19 digits (PLUMED's %20.16f): in x87's 64-bit significand m and 10^|e| <= 10^27 are exact and one
     * operation rounds x to the nearest 64-bit value L. Rounding L to a double gives x's double unless L is
     * exactly halfway between two doubles (its low 11 bits 0x400: then the side x was on is lost), since a
     * halfway point is itself a 64-bit value and would have been nearer x than L. That case goes to strtod. */
    if (ndig <= 19 && e10 >= -27 && e10 <= 27) {
        long double v = (long double)m;
        v = e10 < 0 ? v / cyfes_tp_lpow10[-e10] : v * cyfes_tp_lpow10[e10];
        uint64_t sig;
        memcpy(&sig, &v, sizeof sig);
        if ((sig & 0x7ff) != 0x400) {
            *out = neg ? -(double)v : (double)v;
            return p;
        }
    }
#endif
    return cyfes_tp_slow(s, p, out) ? p : NULL;
}

/* Whether [s, e) is a number of the grammar, without converting it: a column nobody asked for is checked as the
 * numpy-based reader checked every column, at the cost of one look at each character. */
static inline int cyfes_tp_valid(const char *s, const char *e) {
    const char *p = s + (s < e && (*s == '+' || *s == '-'));
    if (p < e && ((*p | 32) == 'i' || (*p | 32) == 'n')) {
        double ignored;
        return cyfes_tp_special(p, e, 0, &ignored);
    }
    const char *d0 = p;
    while (p < e && cyfes_tp_digit(*p)) p++;
    int any = p > d0;
    if (p < e && *p == '.') {
        const char *f0 = ++p;
        while (p < e && cyfes_tp_digit(*p)) p++;
        any |= p > f0;
    }
    if (!any) return 0;
    if (p < e && (*p | 32) == 'e') {
        p++;
        if (p < e && (*p == '+' || *p == '-')) p++;
        if (!(p < e && cyfes_tp_digit(*p))) return 0;
        while (p < e && cyfes_tp_digit(*p)) p++;
    }
    return p == e;
}

/* Where a plain number (no inf/nan) starting at p ends, or NULL: cyfes_tp_scan's grammar without the value. */
static inline const char *cyfes_tp_skip(const char *p, const char *e) {
    if (p < e && (*p == '+' || *p == '-')) p++;
    const char *d0 = p;
    while (p < e && cyfes_tp_digit(*p)) p++;
    int any = p > d0;
    if (p < e && *p == '.') {
        const char *f0 = ++p;
        while (p < e && cyfes_tp_digit(*p)) p++;
        any |= p > f0;
    }
    if (!any) return NULL;
    if (p < e && (*p | 32) == 'e') {
        p++;
        if (p < e && (*p == '+' || *p == '-')) p++;
        if (!(p < e && cyfes_tp_digit(*p))) return NULL;
        while (p < e && cyfes_tp_digit(*p)) p++;
    }
    return p;
}

/* The number in [s, e); 1 on success, 0 when the token is not a number of the grammar above. */
static int cyfes_tp_number(const char *s, const char *e, double *out) {
    if (s == e) return 0;
    const char *p = s + (*s == '+' || *s == '-');
    if (p < e && ((*p | 32) == 'i' || (*p | 32) == 'n')) return cyfes_tp_special(p, e, *s == '-', out);
    return cyfes_tp_scan(s, e, out) == e;
}

/* Whether the line [p, e) holds data (is neither blank nor a comment). */
static inline int cyfes_tp_is_data(const char *p, const char *e) {
    while (p < e && cyfes_tp_blank(*p)) p++;
    return p < e && *p != '#';
}

static inline const char *cyfes_tp_eol(const char *p, const char *e) {
    const char *nl = (const char *)memchr(p, '\n', (size_t)(e - p));
    return nl ? nl : e;
}

/* One data line of a delimited (CSV) table: the numbers of the columns colmap names (colmap[c] >= 0: output position of file column c).
 * Returns CYFES_TP_OK, or an error with *ntok the columns found (COUNT) or *bad the column (NOT_NUMBER). */
static int cyfes_tp_line(const char *p, const char *e, char delim, int ncols, const int *colmap, double *row,
                         int *ntok, int *bad) {
    const char *hash = (const char *)memchr(p, '#', (size_t)(e - p));
    if (hash) e = hash; /* numpy's comments="#": the rest of the line is a comment */
    int c = 0;
    for (;;) {
        const char *stop = (const char *)memchr(p, delim, (size_t)(e - p));
        const char *fe = stop ? stop : e, *s = p;
        while (s < fe && cyfes_tp_blank(*s)) s++;
        while (fe > s && cyfes_tp_blank(fe[-1])) fe--;
        if (c < ncols && (colmap[c] >= 0 ? !cyfes_tp_number(s, fe, &row[colmap[c]]) : !cyfes_tp_valid(s, fe))) {
            *bad = c;
            return CYFES_TP_NOT_NUMBER;
        }
        c++;
        if (!stop) break;
        p = stop + 1;
    }
    *ntok = c;
    return c == ncols ? CYFES_TP_OK : CYFES_TP_COUNT;
}

/* One data line in whitespace mode, read in one pass from its first field at p: returns the line's end (its
 * '\n', or e) and sets *rc as cyfes_tp_line does. */
static inline const char *cyfes_tp_ws_line(const char *p, const char *e, int ncols, const int *colmap, double *row,
                                           int *ntok, int *bad, int *rc) {
    int c = 0;
    for (;;) {
        while (p < e && cyfes_tp_blank(*p)) p++;
        if (p == e || *p == '\n') break;
        if (*p == '#') { p = cyfes_tp_eol(p, e); break; }
        const char *s = p;
        if (c < ncols && colmap[c] >= 0) {
            const char *q = cyfes_tp_scan(s, e, &row[colmap[c]]);
            if (q && (q == e || cyfes_tp_blank(*q) || *q == '\n' || *q == '#')) {
                p = q;
            } else { /* inf/nan, or not a number at all */
                while (p < e && !cyfes_tp_blank(*p) && *p != '\n' && *p != '#') p++;
                if (!cyfes_tp_number(s, p, &row[colmap[c]])) { *bad = c; *rc = CYFES_TP_NOT_NUMBER; return cyfes_tp_eol(p, e); }
            }
        } else { /* checked, not converted: one pass over a plain number */
            const char *q = c < ncols ? cyfes_tp_skip(s, e) : NULL;
            if (q && (q == e || cyfes_tp_blank(*q) || *q == '\n' || *q == '#')) {
                p = q;
            } else {
                while (p < e && !cyfes_tp_blank(*p) && *p != '\n' && *p != '#') p++;
                if (c < ncols && !cyfes_tp_valid(s, p)) { *bad = c; *rc = CYFES_TP_NOT_NUMBER; return cyfes_tp_eol(p, e); }
            }
        }
        c++;
    }
    *ntok = c;
    *rc = c == ncols ? CYFES_TP_OK : CYFES_TP_COUNT;
    return p;
}

/* The offset of the first byte >= 0x80 in [p, p + n), or -1: eight bytes a step (ASCII text is UTF-8). */
static int64_t cyfes_tp_first_high(const unsigned char *p, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        if (w & 0x8080808080808080ULL) break;
    }
    for (; i < n; i++)
        if (p[i] & 0x80) return i;
    return -1;
}

/* The offset of the next `#!` that starts a line in [from, n) (a line starts at 0 and after each '\n'), or -1:
 * memchr for '#', rare in data. */
static int64_t cyfes_tp_next_directive(const char *buf, int64_t from, int64_t n) {
    const char *p = buf + from, *e = buf + n;
    while (p < e && (p = (const char *)memchr(p, '#', (size_t)(e - p))) != NULL) {
        if (p + 1 < e && p[1] == '!' && (p == buf || p[-1] == '\n')) return p - buf;
        p++;
    }
    return -1;
}

/* Newlines in [p, p + n). A block of 16 MiB is counted before it is parsed (its pieces on every thread, by
 * _tableparse.newlines): with SSE2, 16 bytes a step into byte counters summed every 255 steps (0.6 ms a block
 * on one core, 8x the eight-bytes-a-step word trick below, which other CPUs use). */
static int64_t cyfes_tp_newlines(const unsigned char *p, int64_t n) {
    int64_t i = 0, count = 0;
#if defined(__SSE2__)
    const __m128i nl = _mm_set1_epi8('\n'), zero = _mm_setzero_si128();
    while (i + 16 <= n) {
        __m128i acc = zero;
        const int64_t stop = i + 16 * 255 < n - 15 ? i + 16 * 255 : n - 15;
        for (; i < stop; i += 16) acc = _mm_sub_epi8(acc, _mm_cmpeq_epi8(_mm_loadu_si128((const __m128i *)(p + i)), nl));
        const __m128i sums = _mm_sad_epu8(acc, zero);
        count += _mm_cvtsi128_si64(sums) + _mm_cvtsi128_si64(_mm_unpackhi_epi64(sums, sums));
    }
#else
    const uint64_t ones = 0x0101010101010101ULL, nl = ones * '\n', high = ones * 0x80;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        uint64_t x = w ^ nl; /* zero bytes where the newlines are */
        count += __builtin_popcountll(~(((x & ~high) + ~high) | x) & high);
    }
#endif
    for (; i < n; i++) count += p[i] == '\n';
    return count;
}

/* Split [0, len) into nchunks pieces that start at line starts (bounds[0..nchunks]) and count each one's data
 * rows (rows[0..nchunks-1]). Returns the total. */
static int64_t cyfes_tp_count(const char *buf, int64_t len, int nchunks, int64_t *bounds, int64_t *rows,
                              int nthreads) {
    bounds[0] = 0;
    for (int k = 1; k < nchunks; k++) {
        int64_t at = len * k / nchunks;
        if (at < bounds[k - 1]) at = bounds[k - 1];
        const char *nl = at < len ? (const char *)memchr(buf + at, '\n', (size_t)(len - at)) : NULL;
        bounds[k] = nl ? (int64_t)(nl - buf) + 1 : len;
    }
    bounds[nchunks] = len;
    int64_t total = 0;
#pragma omp parallel for schedule(dynamic, 1) num_threads(nthreads) if (nchunks > 1) reduction(+ : total)
    for (int k = 0; k < nchunks; k++) {
        const char *p = buf + bounds[k], *e = buf + bounds[k + 1];
        int64_t n = 0;
        while (p < e) {
            const char *eol = cyfes_tp_eol(p, e);
            n += cyfes_tp_is_data(p, eol);
            p = eol + 1;
        }
        rows[k] = n;
        total += n;
    }
    return total;
}

/* Parse the chunks cyfes_tp_count made, chunk k from row sum(rows[:k]). A row's nsel converted values (colmap
 * gives each its position) go to nslot targets: target s takes value src[s] and holds row r at dest[s][r *
 * step[s]], so one pass fills separate arrays (a caller's samples (N, D) and bias (N,), each C-ordered) with no
 * copy after; a value may go to several targets, or none. On an error: *err_at the offset of the first bad line,
 * *err_row its row index, *err_info (the columns found for COUNT, the 0-based column for NOT_NUMBER). Rows before
 * the bad line are all written. */
static int cyfes_tp_parse(const char *buf, const int64_t *bounds, const int64_t *rows, int nchunks, char delim,
                          int ncols, const int *colmap, int nsel, int nslot, const int *src, double *const *dest,
                          const int64_t *step, int64_t *err_at, int64_t *err_row, int *err_info, int nthreads) {
    /* Each chunk's row of values on cache lines of its own: with rows of a few values packed side by side, the
     * threads wrote one line between them for every row, and 2 threads parsed no faster than 1. */
    const size_t width = nsel > 0 ? (size_t)nsel : 1, line_bytes = 64, line = line_bytes / sizeof(double);
    const size_t stride = (width + line - 1) / line * line;
    int64_t *first = (int64_t *)malloc(sizeof(int64_t) * (size_t)(3 * nchunks + 1));
    double *scratch = (double *)malloc(sizeof(double) * (stride * (size_t)nchunks + line));
    if (!first || !scratch) {
        free(first);
        free(scratch);
        return CYFES_TP_NOMEM;
    }
    double *rows_at = (double *)(((uintptr_t)scratch + line_bytes - 1) & ~(uintptr_t)(line_bytes - 1));
    int64_t *at = first + nchunks, *kind = at + nchunks;
    first[0] = 0;
    for (int k = 1; k < nchunks; k++) first[k] = first[k - 1] + rows[k - 1];
#pragma omp parallel for schedule(dynamic, 1) num_threads(nthreads) if (nchunks > 1)
    for (int k = 0; k < nchunks; k++) {
        const char *p = buf + bounds[k], *e = buf + bounds[k + 1];
        double *row = rows_at + stride * (size_t)k; /* this chunk's row, scattered once it is whole */
        int64_t r = first[k];
        kind[k] = CYFES_TP_OK;
        while (p < e) {
            const char *q = p;
            while (q < e && cyfes_tp_blank(*q)) q++;
            if (q == e) break;
            if (*q == '\n' || *q == '#') { p = (*q == '\n' ? q : cyfes_tp_eol(q, e)) + 1; continue; }
            int ntok = 0, bad = 0, rc;
            const char *eol;
            if (!delim) {
                eol = cyfes_tp_ws_line(q, e, ncols, colmap, row, &ntok, &bad, &rc);
            } else {
                eol = cyfes_tp_eol(q, e);
                rc = cyfes_tp_line(q, eol, delim, ncols, colmap, row, &ntok, &bad);
            }
            if (rc != CYFES_TP_OK) {
                at[k] = p - buf;
                first[k] = r;
                /* the last of the three arrays doubles as the detail: kind in low bits, info above */
                kind[k] = rc | ((int64_t)(rc == CYFES_TP_COUNT ? ntok : bad) << 8);
                break;
            }
            for (int t = 0; t < nslot; t++) dest[t][r * step[t]] = row[src[t]];
            r++;
            p = eol + 1;
        }
    }
    int rc = CYFES_TP_OK;
    for (int k = 0; k < nchunks; k++) {
        if (kind[k] != CYFES_TP_OK) {
            rc = (int)(kind[k] & 0xff);
            *err_info = (int)(kind[k] >> 8);
            *err_at = at[k];
            *err_row = first[k];
            break;
        }
    }
    free(first);
    free(scratch);
    return rc;
}

#endif
