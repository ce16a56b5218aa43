// The per-thread scratch arena behind Scratch (team.hpp).
#include <mutex>
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

namespace {
struct BlockCache {
  std::mutex mutex;
  std::vector<std::pair<size_t, void*>> blocks;  // most recently given back last
  size_t kept = 0;
};
BlockCache& block_cache() {
  static BlockCache* cache = new BlockCache;  // never destroyed: blocks may be given back at exit
  return *cache;
}
size_t block_size(size_t bytes) { return (bytes + 4095) / 4096 * 4096; }
}  // namespace

void* take_block(size_t bytes) {
  bytes = block_size(bytes);
  BlockCache& c = block_cache();
  {
    std::lock_guard<std::mutex> lock(c.mutex);
    for (size_t i = c.blocks.size(); i-- > 0;)
      if (c.blocks[i].first == bytes) {
        void* p = c.blocks[i].second;
        c.blocks.erase(c.blocks.begin() + long(i));
        c.kept -= bytes;
        return p;
      }
  }
  return ::operator new(bytes, kAlign);
}

void give_block(void* p, size_t bytes) {
  if (!p) return;
  bytes = block_size(bytes);
  BlockCache& c = block_cache();
  std::vector<void*> release;
  {
    std::lock_guard<std::mutex> lock(c.mutex);
    if (bytes <= kKeepBytes) {
      c.blocks.emplace_back(bytes, p);
      c.kept += bytes;
      p = nullptr;
    }
    while (c.kept > kKeepBytes || c.blocks.size() > 64) {  // the oldest go first
      c.kept -= c.blocks.front().first;
      release.push_back(c.blocks.front().second);
      c.blocks.erase(c.blocks.begin());
    }
  }
  if (p) ::operator delete(p, kAlign);
  for (void* q : release) ::operator delete(q, kAlign);
}

size_t last_scratch_bytes() { return t_arena.last_bytes; }
void record_scratch_bytes(size_t bytes) { t_arena.last_bytes = bytes; }

}  // namespace rnnkit
