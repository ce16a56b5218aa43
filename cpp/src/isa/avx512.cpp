// AVX-512 kernels: the only file compiled with -mavx512f (see CMakeLists.txt).
// Register tile: 12 rows x 2 zmm vectors (32 floats / 16 doubles) = 24 accumulators of 32 registers.
#include <immintrin.h>

#include "kernel_table.hpp"

#define RNNKIT_ISA_NS avx512

namespace rnnkit {
namespace avx512 {

inline __mmask16 mask16(int n) { return __mmask16((1u << n) - 1u); }
inline __mmask8 mask8(int n) { return __mmask8((1u << n) - 1u); }

struct F32 {
  using T = float;
  using V = __m512;
  using M = __mmask16;
  static constexpr int N = 16;
  static V zero() { return _mm512_setzero_ps(); }
  static V set1(T a) { return _mm512_set1_ps(a); }
  static V load(const T* p) { return _mm512_loadu_ps(p); }
  static void store(T* p, V v) { _mm512_storeu_ps(p, v); }
  static V load_n(const T* p, int n) { return _mm512_maskz_loadu_ps(mask16(n), p); }
  static void store_n(T* p, V v, int n) { _mm512_mask_storeu_ps(p, mask16(n), v); }
  static V add(V a, V b) { return _mm512_add_ps(a, b); }
  static V sub(V a, V b) { return _mm512_sub_ps(a, b); }
  static V mul(V a, V b) { return _mm512_mul_ps(a, b); }
  static V div(V a, V b) { return _mm512_div_ps(a, b); }
  static V fmadd(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }
  static V fnmadd(V a, V b, V c) { return _mm512_fnmadd_ps(a, b, c); }
  static V min(V a, V b) { return _mm512_min_ps(a, b); }
  static V max(V a, V b) { return _mm512_max_ps(a, b); }
  static V abs(V a) { return _mm512_castsi512_ps(_mm512_and_si512(_mm512_castps_si512(a), _mm512_set1_epi32(0x7fffffff))); }
  static M lt(V a, V b) { return _mm512_cmp_ps_mask(a, b, _CMP_LT_OQ); }
  static M isnan(V a) { return _mm512_cmp_ps_mask(a, a, _CMP_UNORD_Q); }
  static V select(M m, V a, V b) { return _mm512_mask_blend_ps(m, b, a); }
  static V round(V a) { return _mm512_roundscale_ps(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
  static V scale(V p, V n) { return _mm512_scalef_ps(p, n); }  // p * 2^n, one rounding
  static V pow2n(V n) {
    // n + (2^23 + 127) puts n + 127 in the low mantissa bits; shift them into the exponent field.
    const __m512i bits = _mm512_castps_si512(_mm512_add_ps(n, _mm512_set1_ps(8388735.0f)));
    return _mm512_castsi512_ps(_mm512_slli_epi32(bits, 23));
  }
  static V copysign(V mag, V sgn) {
    const __m512i s = _mm512_and_si512(_mm512_castps_si512(sgn), _mm512_set1_epi32(int(0x80000000u)));
    return _mm512_castsi512_ps(_mm512_or_si512(_mm512_castps_si512(abs(mag)), s));
  }
};

struct F64 {
  using T = double;
  using V = __m512d;
  using M = __mmask8;
  static constexpr int N = 8;
  static V zero() { return _mm512_setzero_pd(); }
  static V set1(T a) { return _mm512_set1_pd(a); }
  static V load(const T* p) { return _mm512_loadu_pd(p); }
  static void store(T* p, V v) { _mm512_storeu_pd(p, v); }
  static V load_n(const T* p, int n) { return _mm512_maskz_loadu_pd(mask8(n), p); }
  static void store_n(T* p, V v, int n) { _mm512_mask_storeu_pd(p, mask8(n), v); }
  static V add(V a, V b) { return _mm512_add_pd(a, b); }
  static V sub(V a, V b) { return _mm512_sub_pd(a, b); }
  static V mul(V a, V b) { return _mm512_mul_pd(a, b); }
  static V div(V a, V b) { return _mm512_div_pd(a, b); }
  static V fmadd(V a, V b, V c) { return _mm512_fmadd_pd(a, b, c); }
  static V fnmadd(V a, V b, V c) { return _mm512_fnmadd_pd(a, b, c); }
  static V min(V a, V b) { return _mm512_min_pd(a, b); }
  static V max(V a, V b) { return _mm512_max_pd(a, b); }
  static V abs(V a) { return _mm512_castsi512_pd(_mm512_and_si512(_mm512_castpd_si512(a), _mm512_set1_epi64(0x7fffffffffffffffLL))); }
  static M lt(V a, V b) { return _mm512_cmp_pd_mask(a, b, _CMP_LT_OQ); }
  static M isnan(V a) { return _mm512_cmp_pd_mask(a, a, _CMP_UNORD_Q); }
  static V select(M m, V a, V b) { return _mm512_mask_blend_pd(m, b, a); }
  static V round(V a) { return _mm512_roundscale_pd(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
  static V scale(V p, V n) { return _mm512_scalef_pd(p, n); }
  static V pow2n(V n) {
    const __m512i bits = _mm512_castpd_si512(_mm512_add_pd(n, _mm512_set1_pd(4503599627371519.0)));  // 2^52 + 1023
    return _mm512_castsi512_pd(_mm512_slli_epi64(bits, 52));
  }
  static V copysign(V mag, V sgn) {
    const __m512i s = _mm512_and_si512(_mm512_castpd_si512(sgn), _mm512_set1_epi64(int64_t(0x8000000000000000ULL)));
    return _mm512_castsi512_pd(_mm512_or_si512(_mm512_castpd_si512(abs(mag)), s));
  }
};

#include "isa/transpose_avx.inl"

}  // namespace avx512
}  // namespace rnnkit

#include "isa/kernels.inl"

namespace rnnkit {
const KernelTable<float>* avx512_kernels_f32() {
  static const KernelTable<float> table = avx512::make_table<avx512::F32, 12, 2>("avx512", 384, 192, 3072);
  return &table;
}
const KernelTable<double>* avx512_kernels_f64() {
  static const KernelTable<double> table = avx512::make_table<avx512::F64, 12, 2>("avx512", 384, 192, 1536);
  return &table;
}
}  // namespace rnnkit
