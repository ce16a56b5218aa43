// General matrix product for the all-timestep products (input projection, weight gradients, dx),
// run as phases of a Job (pool.hpp), and the packing of weight panels for the recurrent product.
//
// C (M x N, row stride ldc) = A (M x K) * B (K x N) [+ bias (N)]   or   C += A * B
// A and B are strided views: element (r, c) at data[r * row_stride + c * col_stride], so a transposed
// operand costs nothing.  The blocking is BLIS's: B is packed in (kc x nc) blocks of nr-column panels
// (by the team, or once for good: PackedB), A (mc x kc) by each participant when it is not read in
// place, and the ISA's register tile computes mr x nr blocks of C.  Every element of C is summed over
// K in the same order whatever the number of threads: the K slices depend on K alone and tiles start
// at multiples of mr.
#pragma once

#include <cstdint>
#include <memory>

#include "kernel_table.hpp"
#include "pool.hpp"
#include "team.hpp"

namespace rnnkit {

template <typename Real>
struct MatrixView {
  const Real* data;
  int64_t row_stride, col_stride;
  const Real& operator()(int64_t r, int64_t c) const { return data[r * row_stride + c * col_stride]; }
};

// How a K x N operand B is cut: K in k_slices even slices of at most the ISA's kc, N in n_slices
// even slices of at most nc (multiples of nr).  Depends on (K, N) and the ISA only.
struct GemmBlocking {
  int64_t kc, nc, k_slices, n_slices;
  GemmBlocking(int kc_max, int nc_max, int nr, int64_t K, int64_t N);
};

// B packed once, block (jc, pc) after block: what a plan keeps of W_ih for all its calls.
template <typename Real>
struct PackedB {
  int64_t K = 0, N = 0;
  GemmBlocking blocking{1, 1, 1, 1, 1};
  Block<Real> data;
  const Real* block(int64_t jc_index, int64_t pc_index) const {
    return data.get() + (jc_index * blocking.k_slices + pc_index) * blocking.kc * blocking.nc;
  }
};
template <typename Real>
void pack_b(const KernelTable<Real>& k, MatrixView<Real> B, int64_t K, int64_t N, PackedB<Real>& out);
// The same in items, for a team: prepare (allocate; returns the number of panels), then each panel.
template <typename Real>
int64_t prepare_packed_b(const KernelTable<Real>& k, int64_t K, int64_t N, PackedB<Real>& out);
template <typename Real>
void pack_b_panel(const KernelTable<Real>& k, MatrixView<Real> B, PackedB<Real>& out, int64_t item);

// Packing buffers for GEMMs of at most max_m x max_n x max_k, for `participants` participants.
template <typename Real>
struct GemmWorkspace {
  Block<Real> packed_b;  // kc x nc, shared by the team (when B is not prepacked)
  Block<Real> packed_a;  // participants x (mc x kc), one block each
  int64_t a_stride = 0;
  int participants = 0;
  GemmWorkspace() = default;
  GemmWorkspace(const KernelTable<Real>& k, int participants, int64_t max_m, int64_t max_n, int64_t max_k);
};

// Called by every participant of the job (it runs phases).  `prepacked`: B as pack_b left it (then
// the B view is not read).
template <typename Real>
void gemm(Team& team, const KernelTable<Real>& k, GemmWorkspace<Real>& ws, int64_t M, int64_t N, int64_t K,
          MatrixView<Real> A, MatrixView<Real> B, Real* C, int64_t ldc, const Real* bias, bool accumulate,
          const PackedB<Real>* prepacked = nullptr);

// One product of several B operands with the same A, each into its own C: C_q (M x N_q) (+)= A B_q
// (the weight gradients dW_ih = dpre^T x and dW_hh = dpre^T h_{t-1} share dpre^T, which is then read
// once per block instead of once per product).  Each element is computed as gemm computes it.
template <typename Real>
struct GemmPart {
  MatrixView<Real> B;
  int64_t N;
  Real* C;
  int64_t ldc;
};
constexpr int kMaxGemmParts = 4;
// `count` parts (1..kMaxGemmParts); bias and prepacked only with one part.
template <typename Real>
void gemm_parts(Team& team, const KernelTable<Real>& k, GemmWorkspace<Real>& ws, int64_t M, int64_t K,
                MatrixView<Real> A, const GemmPart<Real>* parts, int count, const Real* bias, bool accumulate,
                const PackedB<Real>* prepacked = nullptr);

// Pack columns [n0, n0 + nr) of B (rows [k0, k0 + kc)) into one panel: dst[p * nr + j] = B(k0 + p, n0 + j),
// zero-filled beyond column n_total.
template <typename Real>
void pack_panel(MatrixView<Real> B, int64_t k0, int64_t kc, int64_t n0, int64_t n_total, int nr, Real* dst);

}  // namespace rnnkit
