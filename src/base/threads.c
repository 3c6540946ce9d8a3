/* threads.c: the thread count for OpenMP and OpenBLAS (see threads.h). */
#include "base/threads.h"

#include <cblas.h>
#include <omp.h>

void eft_threads_set(int n) {
    if (n <= 0) n = omp_get_num_procs();
    omp_set_num_threads(n);
    openblas_set_num_threads(n);
}

int eft_threads(void) { return omp_get_max_threads(); }
