// The block cache behind take_buffer (team.hpp), and the scratch figure of the last call.
#include <mutex>
#include <new>
#include <vector>

#include "team.hpp"

namespace rnnkit {
namespace {

constexpr std::align_val_t kAlign{64};

thread_local size_t t_last_bytes = 0;

}  // namespace

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

size_t last_scratch_bytes() { return t_last_bytes; }
void record_scratch_bytes(size_t bytes) { t_last_bytes = bytes; }

}  // namespace rnnkit
