// The kernels' threads: a pool of helpers that join a call's work when they are free, and a work
// model in which progress depends on work done, never on which threads have arrived.
//
// A call is a Job: a program that every participant runs from the start (the calling thread always,
// helpers when they can).  The program is a fixed sequence of phases; a phase is n items whose work
// does not depend on who does it.  Each participant first claims the items of its own home range
// (so the same thread keeps touching the same W_hh panels, step after step), then any left in the
// others' ranges; the phase ends when n items are *done*.  So:
//  - a helper that the OS has taken away holds up nothing but an item it has already claimed: the
//    caller, or any other helper, claims its share;
//  - a helper that arrives late runs through the phases already completed without claiming anything
//    (nothing outside an item may write memory), and a helper may leave between two items;
//  - results are bitwise identical for every team size: each item's arithmetic is fixed by the
//    program, not by the participant.
// The job's state is reference-counted, so the caller returns as soon as the last phase is done,
// without waiting for helpers that were never scheduled.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace rnnkit {

class Job;

// One participant's view of a running job.
class Team {
 public:
  Team(Job* job, int index, int planned) : job_(job), index_(index), planned_(planned) {}
  int index() const { return index_; }      // 0: the calling thread
  int planned() const { return planned_; }  // the team size the program was planned for
  bool caller() const { return index_ == 0; }

  // Run phase `n` items: fn(item) for each item this participant claims; returns once all n are
  // done.  Every participant calls the same phases in the same order (n <= 0: no phase at all).
  // `ranges`: the home ranges (0: the planned team); participants beyond them only wait.
  template <class F>
  void phase(int64_t n, F&& fn, int ranges = 0);

 private:
  bool claim(int64_t phase, int64_t n, int ranges, int range, int64_t& item);
  void finish_item(int64_t phase);
  bool done(int64_t phase, int64_t n) const;
  void wait_done(int64_t phase, int64_t n);
  Job* job_;
  int index_, planned_;
  int64_t next_phase_ = 0;
  bool left_ = false;  // a helper that gave up waiting: it only runs through the rest
};

class Job {
 public:
  explicit Job(int planned);
  virtual ~Job();
  Job(const Job&) = delete;
  Job& operator=(const Job&) = delete;
  // The program.  Called by every participant; it must not throw (check and allocate before).
  virtual void run(Team& team) = 0;
  int planned() const { return planned_; }
  // For the pool: admit one more participant (its index), unless the job is full or finished.
  bool join(int& index);
  void finish() { finished_.store(true, std::memory_order_release); }

  // What the program reads outside its items that the caller does not own for the job (plans, what
  // a forward saved): a helper can still be running through the last phases after run_job has
  // returned and the caller has freed its arguments, so the job holds a reference of its own.
  std::vector<std::shared_ptr<const void>> keep_alive;

 private:
  friend class Team;
  int planned_;
  // Every counter is tagged with its phase, (phase << 32) | count, so that no one has to reset it
  // between phases: a counter with an older tag counts 0 for the phase at hand.
  struct alignas(64) Counter {
    std::atomic<uint64_t> value{0};
  };
  Counter done_;                       // items finished in the latest phase
  std::unique_ptr<Counter[]> claims_;  // per home range, each on its own line: items claimed
  std::atomic<int> joined_{1};                       // participants admitted (the caller is 0)
  std::atomic<bool> finished_{false};
};

// Run `job` on the calling thread, with up to job->planned() - 1 helpers: the pool's, or those of
// the OpenMP runtime chosen with use_openmp_threads.
void run_job(const std::shared_ptr<Job>& job);

// Helpers from an OpenMP runtime already loaded in the process (`library`: its path or soname, e.g.
// torch's libgomp) instead of from the pool, for the calls of threads that ask for it
// (set_thread_uses_openmp): such a job becomes one parallel region of that runtime, begun by the
// caller, so the runtime's own threads (which spin for milliseconds after each of its regions) are
// the helpers instead of contending with them for the cores.  The work model is the same, so are the
// results.  A region returns only when all its threads have, so one held up by a descheduled helper
// (another process busy) sends the calls of the next second to the pool, which never waits for one.  use_openmp_threads returns false, and changes nothing, when `library` is not loaded or
// lacks GOMP_parallel / omp_get_thread_num; "" forgets the runtime (every call on the pool).  A forked
// child forgets it too, and refuses to register one (an OpenMP runtime's threads do not survive a
// fork).
bool use_openmp_threads(const std::string& library);
std::string openmp_threads();  // the runtime registered ("": none)
// Whether the calling thread's calls take their helpers from that runtime (when one is registered);
// returns the previous setting (off by default).  Only one such call at a time does: each thread
// that begins regions of a runtime gets a team of its own threads, so a call made while another is
// running (a server's threads) takes the pool's helpers, which concurrent calls share.
bool set_thread_uses_openmp(bool on);

// Tests: every helper sleeps this long between joining a job and running it, as one the OS has
// descheduled would (0: none), so that callers finish alone and helpers run through finished jobs.
void set_helper_delay_us(int64_t us);

// A job whose program is a callable (which must own, by value, everything it uses).
template <class F>
class FunctionJob final : public Job {
 public:
  FunctionJob(int planned, F f) : Job(planned), f_(std::move(f)) {}
  void run(Team& team) override { f_(team); }

 private:
  F f_;
};
template <class F>
std::shared_ptr<Job> make_job(int planned, F f) {
  return std::make_shared<FunctionJob<F>>(planned, std::move(f));
}

// The index range [begin, end) of home range r when n items are split into `ranges` even parts.
inline int64_t range_begin(int64_t n, int ranges, int r) { return n * r / ranges; }

template <class F>
void Team::phase(int64_t n, F&& fn, int ranges) {
  if (n <= 0) return;
  const int64_t p = next_phase_++;
  if (left_ || done(p, n)) return;  // (a late participant: done before it got here)
  if (ranges <= 0 || ranges > planned_) ranges = planned_;
  for (int k = 0; index_ < ranges && k < ranges; ++k) {
    const int r = (index_ + k) % ranges;
    int64_t item;
    while (claim(p, n, ranges, r, item)) {
      fn(item);
      finish_item(p);
    }
  }
  wait_done(p, n);
}

}  // namespace rnnkit
