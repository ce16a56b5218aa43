// A team of threads working inside ONE OpenMP parallel region: drivers open the region once per
// kernel call and synchronise with barriers, instead of forking and joining at every timestep.
#pragma once

#include <cstdint>
#include <cstring>
#include <memory>
#include <new>

#ifdef _OPENMP
#include <omp.h>
#endif

namespace rnnkit {

struct Team {
  int tid = 0;
  int size = 1;

  void barrier() const {
#ifdef _OPENMP
    if (size > 1) {
#pragma omp barrier
    }
#endif
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
#pragma omp parallel num_threads(threads)
    {
      Team team;
      team.tid = omp_get_thread_num();
      team.size = omp_get_num_threads();  // may be fewer than asked (nesting, thread limits)
      f(team);
    }
    return;
  }
#endif
  (void)threads;
  f(Team{});
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
