/* Sum of SCALE * i * i for 0 <= i < n over OpenMP threads; SCALE comes from the build's config settings. */
#include <omp.h>
#ifndef SCALE
#define SCALE 1
#endif
long long ompsum_squares(long long n) {
    long long s = 0;
#pragma omp parallel for reduction(+:s)
    for (long long i = 0; i < n; i++) s += SCALE * i * i;
    return s;
}
int ompsum_threads(void) { return omp_get_max_threads(); }
