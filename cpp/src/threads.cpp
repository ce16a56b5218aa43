// The thread count the kernels use.  rnnkit keeps its own setting instead of calling
// omp_set_num_threads, so that it never changes the thread count of other OpenMP users in the
// process (NumPy's BLAS, torch) and they never change ours.
#include <atomic>
#include <stdexcept>
#include <string>

#include "rnnkit/rnnkit.hpp"
#include "team.hpp"

#ifdef _OPENMP
#include <omp.h>
#endif

namespace rnnkit {
namespace {

int default_threads() {
#ifdef _OPENMP
  // omp_get_max_threads honours OMP_NUM_THREADS and the process's CPU affinity.
  const int n = omp_get_max_threads();
  return n < 1 ? 1 : (n > kMaxThreads ? kMaxThreads : n);
#else
  return 1;
#endif
}

std::atomic<int> g_threads{0};
std::atomic<int64_t> g_min_work{kMinWorkPerThread};

}  // namespace

int64_t min_work_per_thread() { return g_min_work.load(std::memory_order_relaxed); }
void set_min_work_per_thread(int64_t n) { g_min_work.store(n < 1 ? 1 : n, std::memory_order_relaxed); }

void set_num_threads(int n) {
  if (n < 1 || n > kMaxThreads)
    throw std::invalid_argument("num_threads must be between 1 and " + std::to_string(kMaxThreads) +
                                ", got " + std::to_string(n));
  g_threads.store(n, std::memory_order_relaxed);
}

int get_num_threads() {
  int n = g_threads.load(std::memory_order_relaxed);
  if (n == 0) {
    int expected = 0;
    g_threads.compare_exchange_strong(expected, default_threads());
    n = g_threads.load(std::memory_order_relaxed);
  }
  return n;
}

bool openmp_enabled() {
#ifdef _OPENMP
  return true;
#else
  return false;
#endif
}

}  // namespace rnnkit
