// Opt-in phase profile of the last kernel call, for BENCHMARKS.md's "where the time goes".
//
// When enabled, thread 0 of each team splits its wall time between phases with a steady clock; the
// other threads do the same work in parallel.  Off by default: then each mark is one branch.
#pragma once

#include <chrono>
#include <string>
#include <vector>

namespace rnnkit {

enum class Phase : int {
  setup,             // allocation, bias sums, packing W_hh
  input_gemm,        // the input projection of all timesteps
  recurrent_gemm,    // the per-step products with W_hh
  cell,              // the element-wise cell (activations, gates, c_t)
  barrier,           // waiting for the other threads at the per-step barrier
  weight_grad_gemm,  // dW_ih, dW_hh, db: the reductions over the rows of a chunk
  dx_gemm,           // dx = dpre W_ih
  count
};

bool profiling_enabled();
void set_profiling(bool on);
// The last profiled call: seconds per phase, and the call's total wall time.
std::vector<std::pair<std::string, double>> last_profile();
void record_profile(const double* seconds, double total);

class PhaseClock {
 public:
  using clock = std::chrono::steady_clock;
  explicit PhaseClock(bool on) : on_(on), start_(on ? clock::now() : clock::time_point{}), last_(start_) {}
  // Attribute the time since the previous mark to `phase`.
  void mark(Phase phase) {
    if (!on_) return;
    const auto now = clock::now();
    seconds_[int(phase)] += std::chrono::duration<double>(now - last_).count();
    last_ = now;
  }
  bool on() const { return on_; }
  void publish() const {
    if (on_) record_profile(seconds_, std::chrono::duration<double>(clock::now() - start_).count());
  }

 private:
  bool on_;
  clock::time_point start_, last_;
  double seconds_[int(Phase::count)] = {};
};

}  // namespace rnnkit
