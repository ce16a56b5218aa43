// A team of threads working inside ONE OpenMP parallel region: drivers open the region once per
// kernel call and synchronise with barriers, instead of forking and joining at every timestep.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <memory>
#include <new>
#include <thread>

#ifdef _OPENMP
#include <omp.h>
#endif

namespace rnnkit {

// The team's barrier.  Three stages, each for a reason:
//  1. a short spin: teammates usually arrive within a microsecond or two;
//  2. then yield the core (sched_yield), for up to ~2 ms: a thread that yields stays runnable, so if
//     the scheduler has put two teammates on one core (it does so when it wakes a sleeping thread
//     next to its waker) the other core's idle balancing pulls one across at once, and meanwhile the
//     yield hands the shared core to the teammate;
//  3. then sleep on the generation counter (a futex on Linux), for a teammate descheduled for long.
// OpenMP's own barrier spins far longer before sleeping: on a loaded machine — or beside NumPy's BLAS
// threads spinning in the same process — every one of the T per-step barriers waited out a time slice.
class TeamBarrier {
 public:
  void wait(int size) {
    if (size <= 1) return;
    const unsigned generation = generation_.load(std::memory_order_acquire);
    if (arrived_.fetch_add(1, std::memory_order_acq_rel) == size - 1) {
      arrived_.store(0, std::memory_order_relaxed);
      generation_.fetch_add(1, std::memory_order_release);
      generation_.notify_all();
      return;
    }
    auto passed = [&] { return generation_.load(std::memory_order_acquire) != generation; };
    for (int spin = 0; spin < kSpins; ++spin) {
      if (passed()) return;
      cpu_relax();
    }
    const auto start = std::chrono::steady_clock::now();
    for (int i = 1; !passed(); ++i) {
      std::this_thread::yield();
      if (i % 64 == 0 && std::chrono::steady_clock::now() - start > std::chrono::milliseconds(2)) break;
    }
    while (!passed()) generation_.wait(generation, std::memory_order_acquire);
  }

 private:
  static constexpr int kSpins = 2000;  // a few microseconds
  static void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
  }
  alignas(64) std::atomic<int> arrived_{0};
  alignas(64) std::atomic<unsigned> generation_{0};
};

struct Team {
  int tid = 0;
  int size = 1;
  TeamBarrier* sync = nullptr;

  void barrier() const {
    if (size > 1) sync->wait(size);
  }

  // This thread's share [begin, end) of n items split into contiguous, nearly equal ranges.
  void share(int64_t n, int64_t& begin, int64_t& end) const {
    begin = n * tid / size;
    end = n * (tid + 1) / size;
  }
};

// Run f(team) on `threads` threads (f must not throw: allocate before, check after).
template <class F>
void run_team(int threads, F&& f) {
#ifdef _OPENMP
  if (threads > 1) {
    TeamBarrier sync;
#pragma omp parallel num_threads(threads)
    {
      Team team;
      team.tid = omp_get_thread_num();
      team.size = omp_get_num_threads();  // may be fewer than asked (nesting, thread limits)
      team.sync = &sync;
      f(team);
    }
    return;
  }
#endif
  (void)threads;
  f(Team{});
}

// How many of `requested` threads a call should use: enough that each does at least
// kMinWorkPerThread multiply-adds between two barriers, and no more than there are blocks of work.
// (Results do not depend on it: every element is computed the same way by whichever thread.)
constexpr int64_t kMinWorkPerThread = 8 * 1024;
int64_t min_work_per_thread();            // kMinWorkPerThread unless changed (threads.cpp)
void set_min_work_per_thread(int64_t n);  // tests set 1 to split even tiny problems
inline int useful_threads(int requested, int64_t work_between_barriers, int64_t blocks) {
  int64_t n = work_between_barriers / min_work_per_thread();
  n = n < blocks ? n : blocks;
  n = n < requested ? n : requested;
  return n < 1 ? 1 : int(n);
}

// Scratch memory of one kernel call.  Each calling thread keeps an arena between calls, so a model
// that calls the kernels over and over allocates nothing after its first step: a call takes 64-byte
// aligned slices; at its end the arena grows to the call's total for next time (or is released when
// that total is above kKeepBytes).  Failures raise std::bad_alloc (MemoryError in Python).
constexpr size_t kKeepBytes = size_t(256) << 20;

class Scratch {
 public:
  Scratch();
  ~Scratch();
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;

  template <typename Real>
  Real* take(int64_t count) {
    if (count < 0 || uint64_t(count) > (uint64_t(1) << 60) / sizeof(Real)) throw std::bad_alloc();
    return static_cast<Real*>(take_bytes(size_t(count) * sizeof(Real)));
  }
  template <typename Real>
  Real* take_zeroed(int64_t count) {
    Real* p = take<Real>(count);
    std::memset(p, 0, size_t(count) * sizeof(Real));
    return p;
  }

 private:
  void* take_bytes(size_t bytes);
  size_t used_ = 0;   // bytes taken by this call so far
  bool outer_;        // false for a Scratch opened while another is open on this thread
};

// Bytes of scratch the last finished call on this thread took (for the memory figures).
size_t last_scratch_bytes();

}  // namespace rnnkit
