// General matrix product for the all-timestep products (input projection, weight gradients, dx),
// run by a Team, and the packing of weight panels for the recurrent product.
//
// C (M x N, row stride ldc) = A (M x K) * B (K x N) [+ bias (N)]   or   C += A * B
// A and B are strided views: element (r, c) at data[r * row_stride + c * col_stride], so a transposed
// operand costs nothing.  The blocking is BLIS's: B is packed (kc x nc) by the whole team, A (mc x kc)
// by each thread, and the ISA's register tile computes mr x nr blocks of C.  Every element of C is
// summed over K in the same order whatever the number of threads.
#pragma once

#include <cstdint>

#include "kernel_table.hpp"
#include "team.hpp"

namespace rnnkit {

template <typename Real>
struct MatrixView {
  const Real* data;
  int64_t row_stride, col_stride;
  const Real& operator()(int64_t r, int64_t c) const { return data[r * row_stride + c * col_stride]; }
};

// Packing buffers for GEMMs of at most max_m x max_n x max_k, taken from the call's scratch.
template <typename Real>
struct GemmWorkspace {
  Real* packed_b;    // kc x nc, shared by the team
  Real* packed_a;    // threads x (mc x kc), one block per thread
  int64_t a_stride;
  GemmWorkspace(const KernelTable<Real>& k, int threads, Scratch& scratch, int64_t max_m, int64_t max_n,
                int64_t max_k);
};

// Called by every thread of the team (it contains barriers).
template <typename Real>
void gemm_team(const Team& team, const KernelTable<Real>& k, GemmWorkspace<Real>& ws, int64_t M,
               int64_t N, int64_t K, MatrixView<Real> A, MatrixView<Real> B, Real* C, int64_t ldc,
               const Real* bias, bool accumulate);

// Pack columns [n0, n0 + nr) of B (rows [k0, k0 + kc)) into one panel: dst[p * nr + j] = B(k0 + p, n0 + j),
// zero-filled beyond column n_total.
template <typename Real>
void pack_panel(MatrixView<Real> B, int64_t k0, int64_t kc, int64_t n0, int64_t n_total, int nr, Real* dst);

}  // namespace rnnkit
