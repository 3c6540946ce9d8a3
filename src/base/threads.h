/* threads.h: how many threads the CPU kernels use (OpenMP, and OpenBLAS with OpenMP).
 *
 * The count comes from OMP_NUM_THREADS when set, else every core. The training result depends
 * on it only through reduction order; runs with the same count give the same bits.
 */
#ifndef EFT_BASE_THREADS_H
#define EFT_BASE_THREADS_H

void eft_threads_set(int n); /* n <= 0: all cores */
int eft_threads(void);

#endif
