// AVX2 + FMA kernels: the only file compiled with -mavx2 -mfma (see CMakeLists.txt).
// Register tile: 6 rows x 2 ymm vectors (16 floats / 8 doubles) = 12 accumulators of 16 registers.
#include <immintrin.h>

#include "kernel_table.hpp"

#define RNNKIT_ISA_NS avx2

namespace rnnkit {
namespace avx2 {

// Lane masks for maskload/maskstore: the first n lanes set.
inline __m256i mask32(int n) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}
inline __m256i mask64(int n) {
  return _mm256_cmpgt_epi64(_mm256_set1_epi64x(n), _mm256_setr_epi64x(0, 1, 2, 3));
}

struct F32 {
  using T = float;
  using V = __m256;
  using M = __m256;
  static constexpr int N = 8;
  static V zero() { return _mm256_setzero_ps(); }
  static V set1(T a) { return _mm256_set1_ps(a); }
  static V load(const T* p) { return _mm256_loadu_ps(p); }
  static void store(T* p, V v) { _mm256_storeu_ps(p, v); }
  static V load_n(const T* p, int n) { return _mm256_maskload_ps(p, mask32(n)); }
  static void store_n(T* p, V v, int n) { _mm256_maskstore_ps(p, mask32(n), v); }
  static V add(V a, V b) { return _mm256_add_ps(a, b); }
  static V sub(V a, V b) { return _mm256_sub_ps(a, b); }
  static V mul(V a, V b) { return _mm256_mul_ps(a, b); }
  static V div(V a, V b) { return _mm256_div_ps(a, b); }
  static V fmadd(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
  static V fnmadd(V a, V b, V c) { return _mm256_fnmadd_ps(a, b, c); }
  static V min(V a, V b) { return _mm256_min_ps(a, b); }
  static V max(V a, V b) { return _mm256_max_ps(a, b); }
  static V abs(V a) { return _mm256_and_ps(a, _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff))); }
  static M lt(V a, V b) { return _mm256_cmp_ps(a, b, _CMP_LT_OQ); }
  static M isnan(V a) { return _mm256_cmp_ps(a, a, _CMP_UNORD_Q); }
  static V select(M m, V a, V b) { return _mm256_blendv_ps(b, a, m); }
  static V round(V a) { return _mm256_round_ps(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
  static V pow2n(V n) {
    const __m256i bits = _mm256_castps_si256(_mm256_add_ps(n, _mm256_set1_ps(8388735.0f)));
    return _mm256_castsi256_ps(_mm256_slli_epi32(bits, 23));
  }
  static V copysign(V mag, V sgn) {
    const V sign = _mm256_castsi256_ps(_mm256_set1_epi32(int(0x80000000u)));
    return _mm256_or_ps(abs(mag), _mm256_and_ps(sgn, sign));
  }
};

struct F64 {
  using T = double;
  using V = __m256d;
  using M = __m256d;
  static constexpr int N = 4;
  static V zero() { return _mm256_setzero_pd(); }
  static V set1(T a) { return _mm256_set1_pd(a); }
  static V load(const T* p) { return _mm256_loadu_pd(p); }
  static void store(T* p, V v) { _mm256_storeu_pd(p, v); }
  static V load_n(const T* p, int n) { return _mm256_maskload_pd(p, mask64(n)); }
  static void store_n(T* p, V v, int n) { _mm256_maskstore_pd(p, mask64(n), v); }
  static V add(V a, V b) { return _mm256_add_pd(a, b); }
  static V sub(V a, V b) { return _mm256_sub_pd(a, b); }
  static V mul(V a, V b) { return _mm256_mul_pd(a, b); }
  static V div(V a, V b) { return _mm256_div_pd(a, b); }
  static V fmadd(V a, V b, V c) { return _mm256_fmadd_pd(a, b, c); }
  static V fnmadd(V a, V b, V c) { return _mm256_fnmadd_pd(a, b, c); }
  static V min(V a, V b) { return _mm256_min_pd(a, b); }
  static V max(V a, V b) { return _mm256_max_pd(a, b); }
  static V abs(V a) { return _mm256_and_pd(a, _mm256_castsi256_pd(_mm256_set1_epi64x(0x7fffffffffffffffLL))); }
  static M lt(V a, V b) { return _mm256_cmp_pd(a, b, _CMP_LT_OQ); }
  static M isnan(V a) { return _mm256_cmp_pd(a, a, _CMP_UNORD_Q); }
  static V select(M m, V a, V b) { return _mm256_blendv_pd(b, a, m); }
  static V round(V a) { return _mm256_round_pd(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
  static V pow2n(V n) {
    const __m256i bits = _mm256_castpd_si256(_mm256_add_pd(n, _mm256_set1_pd(4503599627371519.0)));
    return _mm256_castsi256_pd(_mm256_slli_epi64(bits, 52));
  }
  static V copysign(V mag, V sgn) {
    const V sign = _mm256_castsi256_pd(_mm256_set1_epi64x(int64_t(0x8000000000000000ULL)));
    return _mm256_or_pd(abs(mag), _mm256_and_pd(sgn, sign));
  }
};

#include "isa/transpose_avx.inl"

}  // namespace avx2
}  // namespace rnnkit

#include "isa/kernels.inl"

namespace rnnkit {
const KernelTable<float>* avx2_kernels_f32() {
  static const KernelTable<float> table = avx2::make_table<avx2::F32, 6, 2>("avx2", 384, 192, 3072);
  return &table;
}
const KernelTable<double>* avx2_kernels_f64() {
  static const KernelTable<double> table = avx2::make_table<avx2::F64, 6, 2>("avx2", 384, 192, 1536);
  return &table;
}
}  // namespace rnnkit
