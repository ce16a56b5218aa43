// The per-ISA kernel table: what each instruction-set translation unit (src/isa/*.cpp) provides to
// the portable drivers (gemm.cpp, recurrence.cpp).  This header holds declarations only, so baseline
// code may include it; the implementations live in src/isa/kernels.inl, compiled once per ISA.
//
// Legend: T = timesteps, B = batch, I = input, H = hidden, G = gates, MR x NR = register tile.
#pragma once

#include <cstdint>

#include "rnnkit/rnnkit.hpp"

namespace rnnkit {

template <typename Real>
struct KernelTable {
  const char* isa;  // "avx512", "avx2", "scalar"

  // Register tile and cache blocking of the GEMM (see gemm.cpp for how they are used).
  int mr;  // rows of C per micro-kernel call (A is packed in tiles of up to mr rows)
  int nr;  // columns of C per micro-kernel call (B is packed in panels of nr columns)
  int kc, mc, nc;

  // C[m x nr] (+)= A[m x k] * B[k x nr] for one register tile, 1 <= m <= mr.
  //   a: IN (k, m) packed — a[p*m + i] is A(i, p)
  //   b: IN (k, nr) packed — b[p*nr + j] is B(p, j), zero beyond n_valid
  //   c: IN/OUT (m, n_valid), row stride ldc; only columns < n_valid are read or written
  //   accumulate: C += A*B; otherwise C = A*B (+ bias[j] when bias is not null)
  // Each C element is the sum over p in increasing order, whatever the tile's position: results do
  // not depend on how the caller splits C between threads.
  void (*gemm_tile)(int m, int64_t k, const Real* a, const Real* b, Real* c, int64_t ldc,
                    const Real* bias, bool accumulate, int n_valid);

  // The same with A read from row-major rows: A(i, p) at a[i * lda + p] (lda >= k).  For the per-step
  // products, whose A (h_{t-1}, dpre_t) another thread has just written: reading it in place moves
  // each cache line between cores once, where packing it would move it twice.
  void (*gemm_tile_rows)(int m, int64_t k, const Real* a, int64_t lda, const Real* b, Real* c, int64_t ldc,
                         const Real* bias, bool accumulate, int n_valid);

  // v[0:n] = act(v[0:n]) in place.
  void (*activation)(Activation act, Real* v, int64_t n);

  // dpre[0:n] = (dy[0:n] + dh[0:n]) * act'(h[0:n]), where act' is written in terms of the output h
  // (tanh' = 1 - h^2, relu' = [h > 0]).  dy may be null (zeros).
  void (*vanilla_dpre)(Activation act, const Real* h, const Real* dy, const Real* dh, Real* dpre,
                       int64_t n);

  // LSTM and GRU cells for one row of n hidden units (see src/isa/kernels.inl for the equations).
  // Gate k of unit j sits at gates[k * gate_stride + j]; pointers marked "or null" mean zeros.
  void (*lstm_forward_row)(int64_t n, Real* gates, int64_t gate_stride, const Real* c_prev /*or null*/,
                           Real* c, Real* h);
  void (*lstm_backward_row)(int64_t n, const Real* gates, int64_t gate_stride, const Real* c,
                            const Real* c_prev /*or null*/, const Real* dy /*or null*/, const Real* dh,
                            Real* dc, Real* dpre);
  void (*gru_forward_row)(int64_t n, Real* gates, int64_t gate_stride, const Real* hn,
                          const Real* h_prev /*or null*/, Real* h);
  void (*gru_backward_row)(int64_t n, const Real* gates, int64_t gate_stride, const Real* hn,
                           const Real* h_prev /*or null*/, const Real* dy /*or null*/, Real* dh,
                           Real* dpre_x, Real* dhn);

  // y[0:n] = f(x[0:n]) with the vectorised exp/tanh/sigmoid the cells use.
  void (*math)(MathFunction f, const Real* x, Real* y, int64_t n);
};

// One accessor per compiled ISA (defined in src/isa/<isa>.cpp).
const KernelTable<float>* scalar_kernels_f32();
const KernelTable<double>* scalar_kernels_f64();
#if RNNKIT_HAVE_AVX2
const KernelTable<float>* avx2_kernels_f32();
const KernelTable<double>* avx2_kernels_f64();
#endif
#if RNNKIT_HAVE_AVX512
const KernelTable<float>* avx512_kernels_f32();
const KernelTable<double>* avx512_kernels_f64();
#endif

// The table of the active ISA (dispatch.cpp).  Kernels fetch it once per call.
template <typename Real> const KernelTable<Real>& active_kernels();

}  // namespace rnnkit
