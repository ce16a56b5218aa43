// The helper pool behind run_job (pool.hpp).
#include "pool.hpp"

#include <algorithm>
#include <chrono>
#include <mutex>
#include <thread>
#include <vector>

#if defined(__unix__) || defined(__APPLE__)
#include <dlfcn.h>
#include <pthread.h>
#define RNNKIT_HAVE_DLOPEN 1
#else
#define RNNKIT_HAVE_DLOPEN 0
#endif

#include "rnnkit/rnnkit.hpp"

namespace rnnkit {
namespace {

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

constexpr int kSpins = 2000;  // tens of microseconds: teammates usually finish a phase within that
// A helper that has waited this long for a phase gives up the job (the caller finishes it alone);
// the caller itself never gives up, it yields the core to whoever holds the missing item.
constexpr auto kHelperPatience = std::chrono::milliseconds(5);

std::atomic<int64_t> g_helper_delay_us{0};

// How long an idle helper spins before it sleeps: about twice the idle gaps it has been seeing
// (smoothed), between kShortSpin and kLongSpin, so that a caller whose calls come every hundred or
// two microseconds (a server's batch-1 forward with its Python around it) finds it awake instead of
// paying a wake-up.  Gaps longer than kLongSpin get the short spin: there the caller is doing other
// work between the calls (a training loop's optimizer step, NumPy's or torch's threads), which a
// spinning helper would take a core from; and an idle process stops using the cores within about
// kShortSpin of its last call.
constexpr std::chrono::nanoseconds kShortSpin = std::chrono::microseconds(50);
constexpr std::chrono::nanoseconds kLongSpin = std::chrono::microseconds(400);
constexpr std::chrono::nanoseconds kIdleCap = 4 * kLongSpin;  // (one long sleep moves the average this far)
inline std::chrono::nanoseconds spin_budget(std::chrono::nanoseconds idle_average) {
  if (idle_average > kLongSpin) return kShortSpin;
  return std::max(kShortSpin, std::min(kLongSpin, 2 * idle_average));
}

class Pool {
 public:
  void ensure_workers(int n) {
    if (workers_.load(std::memory_order_acquire) >= n) return;
    std::lock_guard<std::mutex> lock(mutex_);
    while (workers_.load(std::memory_order_relaxed) < n) {
      std::thread(&Pool::work, this).detach();
      workers_.fetch_add(1, std::memory_order_release);
    }
  }
  void post(const std::shared_ptr<Job>& job) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      jobs_.push_back(job);
    }
    signal_.fetch_add(1, std::memory_order_release);
    signal_.notify_all();
  }
  void retire(const Job* job) {
    std::lock_guard<std::mutex> lock(mutex_);
    for (size_t i = 0; i < jobs_.size(); ++i)
      if (jobs_[i].get() == job) {
        jobs_.erase(jobs_.begin() + long(i));
        break;
      }
  }

 private:
  // A job that still wants a helper, and this helper's index in it.
  std::shared_ptr<Job> take(int& index) {
    std::lock_guard<std::mutex> lock(mutex_);
    for (const auto& job : jobs_)
      if (job->join(index)) return job;
    return nullptr;
  }
  void work() {
    std::chrono::nanoseconds idle_average{0};  // this helper's smoothed idle gap between jobs
    for (;;) {
      const uint32_t seen = signal_.load(std::memory_order_acquire);
      int index = 0;
      if (std::shared_ptr<Job> job = take(index)) {
        if (const int64_t us = g_helper_delay_us.load(std::memory_order_relaxed))
          std::this_thread::sleep_for(std::chrono::microseconds(us));
        Team team(job.get(), index, job->planned());
        job->run(team);
        continue;
      }
      const auto idle_start = std::chrono::steady_clock::now();
      const auto budget = spin_budget(idle_average);
      bool changed = false;
      for (int i = 1; !changed; ++i) {
        cpu_relax();
        changed = signal_.load(std::memory_order_acquire) != seen;
        if (!changed && i % 32 == 0 && std::chrono::steady_clock::now() - idle_start > budget) break;
      }
      if (!changed) signal_.wait(seen, std::memory_order_acquire);
      const auto idle = std::min<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - idle_start, kIdleCap);
      idle_average = (3 * idle_average + idle) / 4;
    }
  }
  std::mutex mutex_;
  std::vector<std::shared_ptr<Job>> jobs_;
  std::atomic<uint32_t> signal_{0};
  std::atomic<int> workers_{0};
};

// Never destroyed: detached workers may still be asleep in it at exit.
std::atomic<Pool*> g_pool{nullptr};
std::mutex g_pool_mutex;

// The OpenMP runtime whose threads are the helpers (use_openmp_threads), if any.
using GompParallel = void (*)(void (*)(void*), void*, unsigned, unsigned);
using OmpThreadNum = int (*)();
struct OpenMP {
  GompParallel parallel = nullptr;
  OmpThreadNum thread_num = nullptr;
  std::string library;
};
std::atomic<const OpenMP*> g_openmp{nullptr};
std::mutex g_openmp_mutex;
// Every runtime ever registered, never freed (a region may still be running on one that is no longer
// the registered one), and found again when registered again.
std::vector<std::unique_ptr<const OpenMP>> g_openmp_known;
std::atomic<bool> g_openmp_forked{false};  // a forked child: no runtime's threads to take
thread_local bool t_uses_openmp = false;
std::atomic<int> g_openmp_callers{0};  // calls that asked for the runtime and are running

#if defined(__unix__) || defined(__APPLE__)
// A forked child has none of the parent's threads: it starts a pool of its own on first use, and
// leaves the OpenMP runtime alone (libgomp's threads are gone too, and its pool would wait on them).
void forget_pool_in_child() {
  g_pool.store(nullptr, std::memory_order_relaxed);
  g_openmp.store(nullptr, std::memory_order_relaxed);
  g_openmp_forked.store(true, std::memory_order_relaxed);
}
#endif

Pool& pool() {
  Pool* p = g_pool.load(std::memory_order_acquire);
  if (p) return *p;
  std::lock_guard<std::mutex> lock(g_pool_mutex);
  p = g_pool.load(std::memory_order_relaxed);
  if (!p) {
#if defined(__unix__) || defined(__APPLE__)
    static const bool registered = (pthread_atfork(nullptr, nullptr, forget_pool_in_child), true);
    (void)registered;
#endif
    p = new Pool;
    g_pool.store(p, std::memory_order_release);
  }
  return *p;
}

}  // namespace

Job::Job(int planned) : planned_(planned < 1 ? 1 : planned), claims_(new Counter[size_t(planned_)]) {}
Job::~Job() = default;

bool Job::join(int& index) {  // (called under the pool's lock)
  if (finished_.load(std::memory_order_acquire)) return false;
  const int i = joined_.load(std::memory_order_relaxed);
  if (i >= planned_) return false;
  joined_.store(i + 1, std::memory_order_relaxed);
  index = i;
  return true;
}

namespace {
constexpr uint64_t tag_of(int64_t phase) { return uint64_t(phase + 1) & 0xffffffff; }  // (0: none yet)
}  // namespace

bool Team::claim(int64_t phase, int64_t n, int ranges, int range, int64_t& item) {
  std::atomic<uint64_t>& counter = job_->claims_[range].value;
  const int64_t begin = range_begin(n, ranges, range), end = range_begin(n, ranges, range + 1);
  const uint64_t tag = tag_of(phase);
  uint64_t v = counter.load(std::memory_order_acquire);
  for (;;) {
    const uint64_t v_tag = v >> 32;
    if (v_tag != tag && ((v_tag - tag) & 0x80000000u) == 0) return false;  // a later phase's: ours is over
    const int64_t claimed = v_tag == tag ? int64_t(v & 0xffffffff) : 0;
    if (begin + claimed >= end) return false;
    if (counter.compare_exchange_weak(v, (tag << 32) | uint64_t(claimed + 1), std::memory_order_acq_rel,
                                      std::memory_order_acquire)) {
      item = begin + claimed;
      return true;
    }
  }
}

void Team::finish_item(int64_t phase) {
  std::atomic<uint64_t>& counter = job_->done_.value;
  const uint64_t tag = tag_of(phase);
  uint64_t v = counter.load(std::memory_order_relaxed);
  for (;;) {
    const uint64_t count = (v >> 32) == tag ? (v & 0xffffffff) : 0;
    if (counter.compare_exchange_weak(v, (tag << 32) | (count + 1), std::memory_order_acq_rel,
                                      std::memory_order_relaxed))
      return;
  }
}

bool Team::done(int64_t phase, int64_t n) const {
  const uint64_t v = job_->done_.value.load(std::memory_order_acquire);
  const uint64_t v_tag = v >> 32, tag = tag_of(phase);
  if (v_tag == tag) return int64_t(v & 0xffffffff) >= n;
  return v_tag != 0 && ((v_tag - tag) & 0x80000000u) == 0;  // a later phase has begun
}

void Team::wait_done(int64_t phase, int64_t n) {
  for (int i = 0; i < kSpins; ++i) {
    if (done(phase, n)) return;
    cpu_relax();
  }
  const auto start = std::chrono::steady_clock::now();
  for (int i = 1; !done(phase, n); ++i) {
    std::this_thread::yield();
    if (!caller() && i % 64 == 0 && std::chrono::steady_clock::now() - start > kHelperPatience) {
      left_ = true;  // the others finish the job; this helper only runs through the rest
      return;
    }
  }
}

void set_helper_delay_us(int64_t us) { g_helper_delay_us.store(us < 0 ? 0 : us, std::memory_order_relaxed); }

namespace {

struct Region {
  Job* job;
  const OpenMP* openmp;
  std::chrono::steady_clock::time_point done;  // when the caller finished the job
};

// A region returns only when every thread of it has: one the OS has taken away (another process
// busy on the cores) holds the caller at the end even after the job is done, which the pool never
// does.  A call held longer than this after its work sends the next second's calls to the pool.
constexpr auto kJoinStall = std::chrono::microseconds(200);
constexpr auto kAvoidOpenMP = std::chrono::seconds(1);
std::atomic<int64_t> g_openmp_avoid_until{0};  // steady_clock ticks

// The body of a job's OpenMP region: thread 0 is the caller; the others are helpers, each with an
// index of its own (the runtime gives at most job->planned() threads, perhaps fewer).
void region_body(void* data) {
  Region& region = *static_cast<Region*>(data);
  Job* job = region.job;
  const int index = region.openmp->thread_num();
  if (index == 0) {
    Team team(job, 0, job->planned());
    job->run(team);
    job->finish();
    region.done = std::chrono::steady_clock::now();
    return;
  }
  if (index >= job->planned()) return;
  if (const int64_t us = g_helper_delay_us.load(std::memory_order_relaxed))
    std::this_thread::sleep_for(std::chrono::microseconds(us));
  Team team(job, index, job->planned());
  job->run(team);
}

}  // namespace

bool use_openmp_threads(const std::string& library) {
  std::lock_guard<std::mutex> lock(g_openmp_mutex);
  if (library.empty()) {
    g_openmp.store(nullptr, std::memory_order_release);
    return true;
  }
#if RNNKIT_HAVE_DLOPEN && RNNKIT_THREADS
  if (g_openmp_forked.load(std::memory_order_relaxed)) return false;
  for (const auto& known : g_openmp_known)
    if (known->library == library) {
      g_openmp.store(known.get(), std::memory_order_release);
      return true;
    }
  // RTLD_NOLOAD: only a runtime the process has loaded already (its threads are the point); the
  // handle is kept, so the library stays loaded while regions may use it.
  void* handle = dlopen(library.c_str(), RTLD_NOW | RTLD_NOLOAD);
  if (!handle) return false;
  auto parallel = reinterpret_cast<GompParallel>(dlsym(handle, "GOMP_parallel"));
  auto thread_num = reinterpret_cast<OmpThreadNum>(dlsym(handle, "omp_get_thread_num"));
  if (!parallel || !thread_num) {
    dlclose(handle);
    return false;
  }
  (void)pool();  // (registers the fork handler that forgets the runtime in a child)
  g_openmp_known.push_back(std::make_unique<const OpenMP>(OpenMP{parallel, thread_num, library}));
  g_openmp.store(g_openmp_known.back().get(), std::memory_order_release);
  return true;
#else
  return false;
#endif
}

bool set_thread_uses_openmp(bool on) {
  const bool previous = t_uses_openmp;
  t_uses_openmp = on;
  return previous;
}

std::string openmp_threads() {
  const OpenMP* openmp = g_openmp.load(std::memory_order_acquire);
  return openmp ? openmp->library : std::string();
}

void run_job(const std::shared_ptr<Job>& job) {
  // (A build without threads runs every item on the caller: the same results.)
  const bool helpers = job->planned() > 1 && threads_enabled();
  if (helpers) {
    const OpenMP* openmp = t_uses_openmp ? g_openmp.load(std::memory_order_acquire) : nullptr;
    if (openmp && std::chrono::steady_clock::now().time_since_epoch().count() <
                      g_openmp_avoid_until.load(std::memory_order_relaxed))
      openmp = nullptr;  // (a recent region held its caller: see kJoinStall)
    // One caller at a time: each thread that begins regions gets a team of the runtime's threads of
    // its own, so concurrent callers (a server's threads) share the pool's helpers instead.
    if (openmp && g_openmp_callers.fetch_add(1, std::memory_order_acq_rel) == 0) {
      // One region of the runtime; it returns when every thread of it has (a helper that waits too
      // long for a phase leaves the job, as in the pool).  Nested in a region of that runtime, it
      // gets a team of one: the caller alone.
      struct Leave {
        ~Leave() { g_openmp_callers.fetch_sub(1, std::memory_order_acq_rel); }
      } leave;
      Region region{job.get(), openmp, {}};
      openmp->parallel(region_body, &region, unsigned(job->planned()), 0);
      const auto end = std::chrono::steady_clock::now();
      if (end - region.done > kJoinStall)
        g_openmp_avoid_until.store((end + kAvoidOpenMP).time_since_epoch().count(), std::memory_order_relaxed);
      return;
    }
    if (openmp) g_openmp_callers.fetch_sub(1, std::memory_order_acq_rel);
    pool().ensure_workers(get_num_threads() - 1);  // (helpers are shared by concurrent jobs)
    pool().post(job);
  }
  Team team(job.get(), 0, job->planned());
  job->run(team);
  job->finish();
  if (helpers) pool().retire(job.get());
}

}  // namespace rnnkit
