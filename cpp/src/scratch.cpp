// The per-thread scratch arena behind Scratch (team.hpp).
#include <new>
#include <vector>

#include "team.hpp"

namespace rnnkit {
namespace {

constexpr std::align_val_t kAlign{64};

struct Arena {
  void* base = nullptr;
  size_t capacity = 0;
  size_t cursor = 0;
  std::vector<void*> overflow;  // blocks taken this call beyond the main block
  size_t last_bytes = 0;
  bool open = false;
  ~Arena() {
    release_overflow();
    if (base) ::operator delete(base, kAlign);
  }
  void release_overflow() {
    for (void* p : overflow) ::operator delete(p, kAlign);
    overflow.clear();
  }
};

thread_local Arena t_arena;

size_t round64(size_t n) { return (n + 63) / 64 * 64; }

}  // namespace

Scratch::Scratch() : outer_(!t_arena.open) {
  if (outer_) {
    t_arena.open = true;
    t_arena.cursor = 0;
  }
}

Scratch::~Scratch() {
  if (!outer_) return;
  Arena& a = t_arena;
  a.open = false;
  a.last_bytes = used_;
  a.release_overflow();
  if (used_ > a.capacity || a.capacity > kKeepBytes) {  // resize the main block for next time
    if (a.base) ::operator delete(a.base, kAlign);
    a.base = nullptr;
    a.capacity = 0;
    if (used_ <= kKeepBytes) {
      try {
        a.base = ::operator new(used_, kAlign);
        a.capacity = used_;
      } catch (const std::bad_alloc&) {  // keep nothing; the next call allocates as it goes
      }
    }
  }
}

void* Scratch::take_bytes(size_t bytes) {
  bytes = round64(bytes == 0 ? 1 : bytes);
  Arena& a = t_arena;
  used_ += bytes;
  if (outer_ && a.cursor + bytes <= a.capacity) {
    void* p = static_cast<char*>(a.base) + a.cursor;
    a.cursor += bytes;
    return p;
  }
  void* p = ::operator new(bytes, kAlign);
  try {
    a.overflow.push_back(p);
  } catch (...) {
    ::operator delete(p, kAlign);
    throw;
  }
  return p;
}

size_t last_scratch_bytes() { return t_arena.last_bytes; }
void record_scratch_bytes(size_t bytes) { t_arena.last_bytes = bytes; }

}  // namespace rnnkit
