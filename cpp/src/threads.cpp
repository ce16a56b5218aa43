// The thread count the kernels use.  rnnkit keeps its own setting and its own threads (pool.cpp), so
// that it never changes the thread count of other thread pools in the process (NumPy's BLAS, torch,
// OpenMP) and they never change ours.
#include <atomic>
#include <stdexcept>
#include <string>

#include "rnnkit/rnnkit.hpp"
#include "team.hpp"

#include <cstdlib>
#include <thread>

#if defined(__linux__)
#include <sched.h>
#endif

namespace rnnkit {
namespace {

// RNNKIT_NUM_THREADS, else OMP_NUM_THREADS (what users of OpenMP libraries set), else the CPUs this
// process may run on.
int default_threads() {
#if RNNKIT_THREADS
  for (const char* name : {"RNNKIT_NUM_THREADS", "OMP_NUM_THREADS"}) {
    const char* value = std::getenv(name);
    if (value && *value) {
      const long n = std::strtol(value, nullptr, 10);  // "4,2" (nested OpenMP) reads as 4
      if (n >= 1) return n > kMaxThreads ? kMaxThreads : int(n);
    }
  }
  int n = int(std::thread::hardware_concurrency());
#if defined(__linux__)
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) n = CPU_COUNT(&set);
#endif
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

bool threads_enabled() { return RNNKIT_THREADS != 0; }

}  // namespace rnnkit
