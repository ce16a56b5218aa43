#include "profile.hpp"

#include <atomic>
#include <mutex>

namespace rnnkit {
namespace {
std::atomic<bool> g_on{false};
std::mutex g_mutex;
double g_seconds[int(Phase::count)] = {};
double g_total = 0;
const char* const kNames[] = {"setup", "input_gemm", "recurrent_gemm", "cell", "barrier", "weight_grad_gemm", "dx_gemm"};
}  // namespace

bool profiling_enabled() { return g_on.load(std::memory_order_relaxed); }
void set_profiling(bool on) { g_on.store(on, std::memory_order_relaxed); }

void record_profile(const double* seconds, double total) {
  std::lock_guard<std::mutex> lock(g_mutex);
  for (int i = 0; i < int(Phase::count); ++i) g_seconds[i] = seconds[i];
  g_total = total;
}

std::vector<std::pair<std::string, double>> last_profile() {
  std::lock_guard<std::mutex> lock(g_mutex);
  std::vector<std::pair<std::string, double>> out;
  for (int i = 0; i < int(Phase::count); ++i) out.emplace_back(kNames[i], g_seconds[i]);
  out.emplace_back("total", g_total);
  return out;
}

}  // namespace rnnkit
