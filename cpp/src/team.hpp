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

// 64-byte aligned scratch memory.  Sizes are checked before the multiplication can overflow;
// failures raise std::bad_alloc, which the bindings turn into MemoryError.
constexpr std::align_val_t kAlignment{64};
struct AlignedDeleter {
  void operator()(void* p) const { ::operator delete(p, kAlignment); }
};
template <typename Real>
using Buffer = std::unique_ptr<Real[], AlignedDeleter>;

template <typename Real>
Buffer<Real> allocate(int64_t count) {
  if (count < 0 || uint64_t(count) > (uint64_t(1) << 60) / sizeof(Real)) throw std::bad_alloc();
  const size_t bytes = count == 0 ? 64 : size_t(count) * sizeof(Real);
  return Buffer<Real>(static_cast<Real*>(::operator new(bytes, kAlignment)));
}

template <typename Real>
Buffer<Real> allocate_zeroed(int64_t count) {
  Buffer<Real> b = allocate<Real>(count);
  std::memset(b.get(), 0, size_t(count) * sizeof(Real));
  return b;
}

}  // namespace rnnkit
