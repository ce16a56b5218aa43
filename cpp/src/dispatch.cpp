// Run-time choice of the SIMD path.  The default build compiles one translation unit per ISA
// (src/isa/); this file asks the CPU what it supports and hands the drivers the matching table.
#include <atomic>
#include <cstdlib>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

#include "kernel_table.hpp"
#include "optim.hpp"

namespace rnnkit {
namespace {

enum IsaId : int { kScalar = 0, kAvx2 = 1, kAvx512 = 2, kUnset = -1 };
const char* const kIsaNames[] = {"scalar", "avx2", "avx512"};

bool compiled(int id) {
  if (id == kScalar) return true;
#if RNNKIT_HAVE_AVX2
  if (id == kAvx2) return true;
#endif
#if RNNKIT_HAVE_AVX512
  if (id == kAvx512) return true;
#endif
  return false;
}

struct CpuFeatures {
  bool avx2 = false, avx512 = false;
};

CpuFeatures detect_cpu() {
  CpuFeatures f;
#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
  __builtin_cpu_init();
  // __builtin_cpu_supports also checks that the OS saves the wide registers (XCR0).
  f.avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  f.avx512 = f.avx2 && __builtin_cpu_supports("avx512f");
#endif
  return f;
}

const CpuFeatures& cpu() {
  static const CpuFeatures features = detect_cpu();
  return features;
}

int id_of(const std::string& name) {
  for (int id = 0; id < 3; ++id)
    if (name == kIsaNames[id]) return id;
  return kUnset;
}

std::atomic<int> g_active{kUnset};
std::mutex g_init_mutex;

int active_id() {
  int id = g_active.load(std::memory_order_acquire);
  if (id != kUnset) return id;
  std::lock_guard<std::mutex> lock(g_init_mutex);
  id = g_active.load(std::memory_order_relaxed);
  if (id == kUnset) {
    const char* env = std::getenv("RNNKIT_ISA");
    std::string requested = env ? env : "";
    if (!requested.empty()) {
      // Name the variable in the error: the caller may not know it is set.
      try {
        id = id_of(select_isa(requested, cpu().avx2, cpu().avx512));
      } catch (const std::invalid_argument& e) {
        throw std::invalid_argument(std::string("environment variable RNNKIT_ISA: ") + e.what());
      }
    } else {
      id = id_of(select_isa("", cpu().avx2, cpu().avx512));
    }
    g_active.store(id, std::memory_order_release);
  }
  return id;
}

}  // namespace

std::string select_isa(const std::string& requested, bool cpu_has_avx2, bool cpu_has_avx512) {
  auto runnable = [&](int id) {
    if (!compiled(id)) return false;
    if (id == kAvx2) return cpu_has_avx2;
    if (id == kAvx512) return cpu_has_avx512 && cpu_has_avx2;
    return true;
  };
  if (requested.empty()) {
    for (int id = kAvx512; id >= kScalar; --id)
      if (runnable(id)) return kIsaNames[id];
  }
  const int id = id_of(requested);
  if (id == kUnset)
    throw std::invalid_argument("unknown SIMD path '" + requested + "': expected one of avx512, avx2, scalar");
  if (!compiled(id))
    throw std::invalid_argument("SIMD path '" + requested + "' is not compiled into this build of rnnkit");
  if (!runnable(id))
    throw std::invalid_argument("SIMD path '" + requested + "' is not supported by this CPU");
  return kIsaNames[id];
}

std::string active_isa() { return kIsaNames[active_id()]; }

void set_active_isa(const std::string& name) {
  const int id = id_of(select_isa(name, cpu().avx2, cpu().avx512));
  std::lock_guard<std::mutex> lock(g_init_mutex);
  g_active.store(id, std::memory_order_release);
}

std::vector<std::string> supported_isas() {
  std::vector<std::string> out;
  for (int id = kAvx512; id >= kScalar; --id) {
    try {
      out.push_back(select_isa(kIsaNames[id], cpu().avx2, cpu().avx512));
    } catch (const std::invalid_argument&) {
    }
  }
  return out;
}

std::vector<std::string> compiled_isas() {
  std::vector<std::string> out;
  for (int id = kAvx512; id >= kScalar; --id)
    if (compiled(id)) out.push_back(kIsaNames[id]);
  return out;
}

template <>
const KernelTable<float>& active_kernels<float>() {
  switch (active_id()) {
#if RNNKIT_HAVE_AVX512
    case kAvx512: return *avx512_kernels_f32();
#endif
#if RNNKIT_HAVE_AVX2
    case kAvx2: return *avx2_kernels_f32();
#endif
    default: return *scalar_kernels_f32();
  }
}

template <>
const KernelTable<double>& active_kernels<double>() {
  switch (active_id()) {
#if RNNKIT_HAVE_AVX512
    case kAvx512: return *avx512_kernels_f64();
#endif
#if RNNKIT_HAVE_AVX2
    case kAvx2: return *avx2_kernels_f64();
#endif
    default: return *scalar_kernels_f64();
  }
}

template <>
const OptimTable<float>& active_optim<float>() {
  switch (active_id()) {
#if RNNKIT_HAVE_AVX512
    case kAvx512: return *avx512_optim_f32();
#endif
#if RNNKIT_HAVE_AVX2
    case kAvx2: return *avx2_optim_f32();
#endif
    default: return *scalar_optim_f32();
  }
}

template <>
const OptimTable<double>& active_optim<double>() {
  switch (active_id()) {
#if RNNKIT_HAVE_AVX512
    case kAvx512: return *avx512_optim_f64();
#endif
#if RNNKIT_HAVE_AVX2
    case kAvx2: return *avx2_optim_f64();
#endif
    default: return *scalar_optim_f64();
  }
}

template <typename Real>
void vector_math(MathFunction f, const Real* x, Real* y, int64_t n) {
  active_kernels<Real>().math(f, x, y, n);
}
template void vector_math<float>(MathFunction, const float*, float*, int64_t);
template void vector_math<double>(MathFunction, const double*, double*, int64_t);

Activation parse_activation(const std::string& name) {
  if (name == "tanh") return Activation::tanh;
  if (name == "relu") return Activation::relu;
  throw std::invalid_argument("nonlinearity must be 'tanh' or 'relu', got '" + name + "'");
}

}  // namespace rnnkit
