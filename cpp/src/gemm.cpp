// The team GEMM (see gemm.hpp).  Portable code: the arithmetic happens in the ISA's register tile.
#include "gemm.hpp"

#include "rnnkit/rnnkit.hpp"
#include "team.hpp"

#include <algorithm>

namespace rnnkit {
namespace {

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Pack rows [m0, m0 + mc) x columns [k0, k0 + kc) of A into tiles of up to mr rows:
// tile t (rows m0 + t*mr ...) sits at dst + t*mr*kc with element (i, p) at [p * height + i].
template <typename Real>
void pack_a_block(MatrixView<Real> A, int64_t m0, int64_t mc, int64_t k0, int64_t kc, int mr, Real* dst) {
  for (int64_t i0 = 0; i0 < mc; i0 += mr) {
    const int m = int(std::min<int64_t>(mr, mc - i0));
    Real* tile = dst + i0 * kc;
    if (A.row_stride == 1) {  // columns of A are contiguous (a transposed operand)
      for (int64_t p = 0; p < kc; ++p) {
        const Real* src = &A(m0 + i0, k0 + p);
        for (int i = 0; i < m; ++i) tile[p * m + i] = src[i];
      }
    } else {
      for (int i = 0; i < m; ++i) {
        const Real* src = &A(m0 + i0 + i, k0);
        const int64_t cs = A.col_stride;
        for (int64_t p = 0; p < kc; ++p) tile[p * m + i] = src[p * cs];
      }
    }
  }
}

}  // namespace

template <typename Real>
void pack_panel(MatrixView<Real> B, int64_t k0, int64_t kc, int64_t n0, int64_t n_total, int nr, Real* dst) {
  const int n_valid = int(std::max<int64_t>(0, std::min<int64_t>(nr, n_total - n0)));
  if (B.col_stride == 1) {  // rows of B are contiguous
    for (int64_t p = 0; p < kc; ++p) {
      const Real* src = &B(k0 + p, n0);
      Real* out = dst + p * nr;
      for (int j = 0; j < n_valid; ++j) out[j] = src[j];
      for (int j = n_valid; j < nr; ++j) out[j] = Real(0);
    }
  } else {
    for (int j = 0; j < n_valid; ++j) {
      const Real* src = &B(k0, n0 + j);
      const int64_t rs = B.row_stride;
      for (int64_t p = 0; p < kc; ++p) dst[p * nr + j] = src[p * rs];
    }
    for (int64_t p = 0; p < kc; ++p)
      for (int j = n_valid; j < nr; ++j) dst[p * nr + j] = Real(0);
  }
}

GemmBlocking::GemmBlocking(int kc_max, int nc_max, int nr, int64_t K, int64_t N) {
  k_slices = std::max<int64_t>(1, ceil_div(K, kc_max));
  kc = std::max<int64_t>(1, ceil_div(K, k_slices));
  n_slices = std::max<int64_t>(1, ceil_div(N, nc_max));
  nc = std::max<int64_t>(nr, ceil_div(ceil_div(N, n_slices), nr) * nr);
}

template <typename Real>
int64_t prepare_packed_b(const KernelTable<Real>& k, int64_t K, int64_t N, PackedB<Real>& out) {
  out.K = K, out.N = N;
  out.blocking = GemmBlocking(k.kc, k.nc, k.nr, K, N);
  const GemmBlocking& bl = out.blocking;
  out.data = take_buffer<Real>(bl.n_slices * bl.k_slices * bl.kc * bl.nc);
  if (K <= 0 || N <= 0) return 0;
  return bl.k_slices * ceil_div(N, k.nr);  // every (K slice, panel of nr columns)
}

template <typename Real>
void pack_b_panel(const KernelTable<Real>& k, MatrixView<Real> B, PackedB<Real>& out, int64_t item) {
  const GemmBlocking& bl = out.blocking;
  const int64_t K = out.K, N = out.N;
  const int64_t pci = item % bl.k_slices, column = (item / bl.k_slices) * k.nr;  // the panel's first column
  const int64_t jci = column / bl.nc, n0 = column, p = (column - jci * bl.nc) / k.nr;
  const int64_t pc = pci * bl.kc, kc = std::min<int64_t>(bl.kc, K - pc);
  Real* dst = const_cast<Real*>(out.block(jci, pci)) + p * kc * k.nr;
  if (B.row_stride == 1)  // B = W^T: its columns are rows of W
    k.pack_transposed(&B(pc, n0), B.col_stride, int(std::min<int64_t>(k.nr, N - n0)), kc, k.nr, dst);
  else
    pack_panel(B, pc, kc, n0, N, k.nr, dst);
}

template <typename Real>
void pack_b(const KernelTable<Real>& k, MatrixView<Real> B, int64_t K, int64_t N, PackedB<Real>& out) {
  const int64_t items = prepare_packed_b(k, K, N, out);
  for (int64_t i = 0; i < items; ++i) pack_b_panel(k, B, out, i);
}

template <typename Real>
GemmWorkspace<Real>::GemmWorkspace(const KernelTable<Real>& k, int participants_, int64_t max_m, int64_t max_n,
                                   int64_t max_k)
    : participants(participants_) {
  const int64_t kc = std::max<int64_t>(1, std::min<int64_t>(k.kc, max_k));
  const int64_t nc = ceil_div(std::max<int64_t>(1, std::min<int64_t>(k.nc, max_n)), k.nr) * k.nr;
  const int64_t mc = ceil_div(std::max<int64_t>(1, std::min<int64_t>(k.mc, max_m)), k.mr) * k.mr;
  packed_b = take_buffer<Real>(kc * nc);
  a_stride = mc * kc;
  packed_a = take_buffer<Real>(a_stride * participants);
}

template <typename Real>
void gemm(Team& team, const KernelTable<Real>& k, GemmWorkspace<Real>& ws, int64_t M, int64_t N, int64_t K,
          MatrixView<Real> A, MatrixView<Real> B, Real* C, int64_t ldc, const Real* bias, bool accumulate,
          const PackedB<Real>* prepacked) {
  const GemmPart<Real> part{B, N, C, ldc};
  gemm_parts(team, k, ws, M, K, A, &part, 1, bias, accumulate, prepacked);
}

template <typename Real>
void gemm_parts(Team& team, const KernelTable<Real>& k, GemmWorkspace<Real>& ws, int64_t M, int64_t K,
                MatrixView<Real> A, const GemmPart<Real>* parts, int count, const Real* bias, bool accumulate,
                const PackedB<Real>* prepacked) {
  const int nr = k.nr, mr = k.mr;
  // The parts' panels side by side: part q has panels [first[q], first[q + 1]) of one virtual B,
  // whose width N is the single part's own (or the parts' panels' in all).
  int64_t first[kMaxGemmParts + 1] = {0};
  for (int q = 0; q < count; ++q) first[q + 1] = first[q] + ceil_div(std::max<int64_t>(0, parts[q].N), nr);
  const int64_t N = count == 1 ? parts[0].N : first[count] * nr;
  if (M <= 0 || N <= 0) return;  // the same decision on every participant
  auto part_of = [&](int64_t panel) {
    int q = 0;
    while (panel >= first[q + 1]) ++q;
    return q;
  };
  if (K <= 0) {
    if (!accumulate)
      team.phase(ceil_div(M, 64), [&](int64_t item) {
        for (int q = 0; q < count; ++q)
          for (int64_t r = item * 64; r < std::min(M, item * 64 + 64); ++r)
            for (int64_t c = 0; c < parts[q].N; ++c) parts[q].C[r * parts[q].ldc + c] = bias ? bias[c] : Real(0);
      });
    return;
  }
  const int planned = team.planned();
  Real* my_a = ws.packed_a.get() + ws.a_stride * team.index();
  const GemmBlocking bl = prepacked ? prepacked->blocking : GemmBlocking(k.kc, k.nc, nr, K, N);
  int64_t ic_blocks = ceil_div(M, k.mc);
  if (ic_blocks < planned) {
    // Few rows: split them between the threads, or give every thread all rows and a share of the
    // panels — whichever leaves the busiest thread fewer tiles (S1's 50 rows are 5 tiles: 3 + 2,
    // against 4 panels: 2 + 2).
    const int64_t row_tiles = ceil_div(M, mr), panels = ceil_div(std::min<int64_t>(N, bl.nc), nr);
    const int64_t by_rows = ceil_div(row_tiles, std::min<int64_t>(planned, row_tiles)) * panels;
    const int64_t by_panels = row_tiles * ceil_div(panels, std::min<int64_t>(planned, panels));
    // (one block of rows only when it fits the packed-A buffer: M <= mc)
    ic_blocks = (by_panels < by_rows && M <= k.mc) ? 1 : std::min<int64_t>(planned, row_tiles);
  } else {
    ic_blocks = ceil_div(ic_blocks, planned) * planned;
  }
  const int64_t mc_even = ceil_div(ceil_div(M, ic_blocks), mr) * mr;
  ic_blocks = ceil_div(M, mc_even);
  // A is read in place: row-major A (x, dpre) by the row-pointer tile, since packing it would cost a
  // strided write per element, each of which then feeds only N/vector-width FMAs; column-major A
  // (dpre^T in the weight gradients) by the column tile, since packing it copied a few elements of
  // each dpre row at a time (11% of an LSTM backward, BENCHMARKS.md).  Any other A is packed.
  const bool a_in_place = A.col_stride == 1;
  const bool a_cols = !a_in_place && A.row_stride == 1;
  for (int64_t jci = 0; jci < bl.n_slices; ++jci) {
    const int64_t jc = jci * bl.nc;
    if (jc >= N) break;
    const int64_t nc = std::min<int64_t>(bl.nc, N - jc);
    const int64_t panels = ceil_div(nc, nr), panel0 = jc / nr;
    for (int64_t pci = 0; pci < bl.k_slices; ++pci) {
      const int64_t pc = pci * bl.kc, kc = std::min<int64_t>(bl.kc, K - pc);
      const Real* packed = nullptr;
      if (prepacked) {
        packed = prepacked->block(jci, pci);
      } else {
        Real* dst = ws.packed_b.get();
        team.phase(panels, [&](int64_t p) {
          const int q = part_of(panel0 + p);
          pack_panel(parts[q].B, pc, kc, (panel0 + p - first[q]) * nr, parts[q].N, nr, dst + p * kc * nr);
        });
        packed = dst;
      }
      const bool acc = accumulate || pc > 0;
      const Real* block_bias = (!acc && bias) ? bias + jc : nullptr;
      // Work items: (block of rows) x (group of panels), at least as many as threads when the rows
      // alone do not make enough.
      const int64_t groups = std::min<int64_t>(panels, std::max<int64_t>(1, ceil_div(planned, ic_blocks)));
      int64_t packed_ic = -1;
      team.phase(ic_blocks * groups, [&](int64_t item) {
        const int64_t ic = item / groups, g = item % groups;
        const int64_t m0 = ic * mc_even, mc = std::min<int64_t>(mc_even, M - m0);
        if (!a_in_place && !a_cols && ic != packed_ic) {
          pack_a_block(A, m0, mc, pc, kc, mr, my_a);
          packed_ic = ic;
        }
        for (int64_t p = panels * g / groups; p < panels * (g + 1) / groups; ++p) {
          const int q = part_of(panel0 + p);
          const GemmPart<Real>& out = parts[q];
          const int64_t n0 = (panel0 + p - first[q]) * nr;  // the panel's first column in its part
          const int n_valid = int(std::min<int64_t>(nr, out.N - n0));
          const Real* panel = packed + p * kc * nr;
          for (int64_t i0 = 0; i0 < mc; i0 += mr) {
            const int m = int(std::min<int64_t>(mr, mc - i0));
            Real* c = out.C + (m0 + i0) * out.ldc + n0;
            const Real* tile_bias = block_bias ? block_bias + p * nr : nullptr;
            if (a_in_place)
              k.gemm_tile_rows(m, kc, &A(m0 + i0, pc), A.row_stride, panel, c, out.ldc, tile_bias, acc, n_valid);
            else if (a_cols)
              k.gemm_tile_cols(m, kc, &A(m0 + i0, pc), A.col_stride, panel, c, out.ldc, tile_bias, acc, n_valid);
            else
              k.gemm_tile(m, kc, my_a + i0 * kc, panel, c, out.ldc, tile_bias, acc, n_valid);
          }
        }
      });
    }
  }
}

template <typename Real>
void matmul(int64_t M, int64_t N, int64_t K, const Real* a, const Real* b, Real* c) {
  const KernelTable<Real>& k = active_kernels<Real>();
  // Work in one phase: one (kc x nc) block of B against all of A.
  const int64_t block_work = M * std::min<int64_t>(N, k.nc) * std::min<int64_t>(K, k.kc);
  const int threads = useful_threads(get_num_threads(), block_work, ceil_div(M, k.mr) * ceil_div(N, k.nr));
  auto ws = std::make_shared<GemmWorkspace<Real>>(k, threads, M, N, K);
  run_job(make_job(threads, [&k, ws, M, N, K, a, b, c](Team& team) {
    gemm<Real>(team, k, *ws, M, N, K, MatrixView<Real>{a, K, 1}, MatrixView<Real>{b, N, 1}, c, N, nullptr, false);
  }));
}

#define RNNKIT_INSTANTIATE_GEMM(Real)                                                              \
  template void matmul<Real>(int64_t, int64_t, int64_t, const Real*, const Real*, Real*);          \
  template struct GemmWorkspace<Real>;                                                             \
  template void pack_b<Real>(const KernelTable<Real>&, MatrixView<Real>, int64_t, int64_t, PackedB<Real>&); \
  template int64_t prepare_packed_b<Real>(const KernelTable<Real>&, int64_t, int64_t, PackedB<Real>&);      \
  template void pack_b_panel<Real>(const KernelTable<Real>&, MatrixView<Real>, PackedB<Real>&, int64_t);    \
  template void gemm<Real>(Team&, const KernelTable<Real>&, GemmWorkspace<Real>&, int64_t, int64_t,        \
                           int64_t, MatrixView<Real>, MatrixView<Real>, Real*, int64_t, const Real*, bool, \
                           const PackedB<Real>*);                                                  \
  template void gemm_parts<Real>(Team&, const KernelTable<Real>&, GemmWorkspace<Real>&, int64_t, int64_t,  \
                                 MatrixView<Real>, const GemmPart<Real>*, int, const Real*, bool,        \
                                 const PackedB<Real>*);                                            \
  template void pack_panel<Real>(MatrixView<Real>, int64_t, int64_t, int64_t, int64_t, int, Real*);
RNNKIT_INSTANTIATE_GEMM(float)
RNNKIT_INSTANTIATE_GEMM(double)

}  // namespace rnnkit
