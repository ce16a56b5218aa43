// How many threads a call uses, and the memory blocks calls take and give back.  The threads
// themselves are pool.hpp's.
#pragma once

#include <cstdint>
#include <cstring>
#include <memory>
#include <new>

namespace rnnkit {

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

// Freed blocks kept for reuse, at most this many bytes in all.
constexpr size_t kKeepBytes = size_t(256) << 20;

// Large buffers that calls take and give back over and over (plans, what a forward saves, chunk
// scratch): freed blocks are kept, up to kKeepBytes in all, and handed out again for the same size,
// so a steady stream of calls maps no fresh pages (a fresh page costs a fault on first touch).
void* take_block(size_t bytes);
void give_block(void* p, size_t bytes);
struct BlockDeleter {
  size_t bytes = 0;
  void operator()(void* p) const { give_block(p, bytes); }
};
template <typename Real>
using Block = std::unique_ptr<Real[], BlockDeleter>;
template <typename Real>
Block<Real> take_buffer(int64_t count) {
  if (count < 0 || uint64_t(count) > (uint64_t(1) << 60) / sizeof(Real)) throw std::bad_alloc();
  const size_t bytes = size_t(count < 1 ? 1 : count) * sizeof(Real);
  return Block<Real>(static_cast<Real*>(take_block(bytes)), BlockDeleter{bytes});
}

// Bytes of scratch (beyond outputs and what is saved for a backward) the last call on this thread
// took, for the memory figures; each call records its own.
size_t last_scratch_bytes();
void record_scratch_bytes(size_t bytes);

}  // namespace rnnkit
