// The portable path: plain C++ on one lane, for any CPU and any architecture.  The same kernel
// source as the SIMD paths (kernels.inl), so every path computes the same functions.
#include <cstdint>
#include <cstring>

#include "kernel_table.hpp"

#define RNNKIT_ISA_NS portable

namespace rnnkit {
namespace portable {

template <typename Real, typename Bits, int MantissaBits, int Bias>
struct Scalar {
  using T = Real;
  using V = Real;
  using M = bool;
  static constexpr int N = 1;
  static V zero() { return T(0); }
  static V set1(T a) { return a; }
  static V load(const T* p) { return *p; }
  static void store(T* p, V v) { *p = v; }
  static V load_n(const T* p, int n) { return n > 0 ? *p : T(0); }
  static void store_n(T* p, V v, int n) {
    if (n > 0) *p = v;
  }
  static V add(V a, V b) { return a + b; }
  static V sub(V a, V b) { return a - b; }
  static V mul(V a, V b) { return a * b; }
  static V div(V a, V b) { return a / b; }
  static V fmadd(V a, V b, V c) { return a * b + c; }
  static V fnmadd(V a, V b, V c) { return c - a * b; }
  // Same NaN behaviour as minps/maxps: the second operand when either is NaN.
  static V min(V a, V b) { return a < b ? a : b; }
  static V max(V a, V b) { return a > b ? a : b; }
  static Bits bits(V a) {
    Bits b;
    std::memcpy(&b, &a, sizeof b);
    return b;
  }
  static V from_bits(Bits b) {
    V a;
    std::memcpy(&a, &b, sizeof a);
    return a;
  }
  static constexpr Bits kSign = Bits(1) << (sizeof(Bits) * 8 - 1);
  static V abs(V a) { return from_bits(bits(a) & ~kSign); }
  static M lt(V a, V b) { return a < b; }
  static M isnan(V a) { return a != a; }
  static V select(M m, V a, V b) { return m ? a : b; }
  static V round(V a) {
    // Adding and subtracting 1.5 * 2^MantissaBits rounds to nearest-even for |a| < 2^(MantissaBits-1)
    // (exp clamps its argument well inside that); without -ffast-math the compiler keeps both steps.
    const V shift = T(1.5) * T(Bits(1) << MantissaBits);
    return (a + shift) - shift;
  }
  static V pow2n(V n) { return from_bits(Bits(int64_t(n) + Bias) << MantissaBits); }
  static V copysign(V mag, V sgn) { return from_bits((bits(mag) & ~kSign) | (bits(sgn) & kSign)); }
};

using F32 = Scalar<float, uint32_t, 23, 127>;
using F64 = Scalar<double, uint64_t, 52, 1023>;

}  // namespace portable
}  // namespace rnnkit

#include "isa/kernels.inl"

namespace rnnkit {
const KernelTable<float>* scalar_kernels_f32() {
  static const KernelTable<float> table = portable::make_table<portable::F32, 4, 4>("scalar", 256, 64, 2048);
  return &table;
}
const KernelTable<double>* scalar_kernels_f64() {
  static const KernelTable<double> table = portable::make_table<portable::F64, 4, 4>("scalar", 256, 64, 2048);
  return &table;
}
}  // namespace rnnkit
