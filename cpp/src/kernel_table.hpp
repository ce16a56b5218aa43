// The per-ISA kernel table: what each instruction-set translation unit (src/isa/*.cpp) provides to
// the portable drivers (gemm.cpp, recurrence.cpp).  This header holds declarations only, so baseline
// code may include it; the implementations live in src/isa/kernels.inl, compiled once per ISA.
//
// Legend: T = timesteps, B = batch, I = input, H = hidden, G = gates, MR x NR = register tile.
#pragma once

#include <cstdint>

#include "cells.hpp"
#include "rnnkit/rnnkit.hpp"

namespace rnnkit {

// Cache lines for a per-step product's tile to ask for while it computes (step_tile_rows_prefetching):
// up to kPrefetchRuns runs of `rows` rows, each row `segments` segments of `lines` lines.  The tile
// asks for one line per kPrefetchLanes multiply-adds of its own (every 4 k-iterations of AVX-512's
// 12 x 32 float tile, every 16 of AVX2's 6 x 16), in order, until the runs are done; a prefetch
// changes no result.  Data only: the ISA's kernels (src/isa/kernels.inl) walk it.
constexpr int kPrefetchRuns = 3;
constexpr int kPrefetchLanes = 1536;
struct PrefetchRun {
  const char* first;
  int64_t row_bytes, segment_bytes, rows;
  int segments, lines;
};
struct RowPrefetch {
  PrefetchRun runs[kPrefetchRuns];
  int count = 0;
  // the next line: runs[run], its row, segment and line
  int run = 0, segment = 0, line = 0;
  int64_t row = 0;
  void add(const void* first, int64_t row_bytes, int64_t rows, int segments, int64_t segment_bytes,
           int64_t bytes_per_segment) {
    if (!first || rows <= 0 || count == kPrefetchRuns) return;
    // (the lines a segment's bytes touch, from a first byte anywhere in a line)
    const int64_t offset = int64_t(reinterpret_cast<uintptr_t>(first) % 64);
    runs[count++] = {static_cast<const char*>(first), row_bytes, segment_bytes, rows, segments,
                     int((offset + bytes_per_segment + 63) / 64)};
  }
};

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
  // The same with A read in place from a column-major block: A(i, p) at a[p * lda + i] (lda >= m).
  // For the weight gradients' dpre^T, whose columns are dpre's rows: packing it would copy every
  // element once more, a few of each row at a time.  The arithmetic is gemm_tile's, bit for bit.
  void (*gemm_tile_cols)(int m, int64_t k, const Real* a, int64_t lda, const Real* b, Real* c, int64_t ldc,
                         const Real* bias, bool accumulate, int n_valid);
  // The per-step products' tile: the same, but a tile of 1–3 rows splits k into interleaved partial
  // sums (added in a fixed order) to hide the FMA latency.  The all-row GEMMs' tiles above never
  // split, so their results do not depend on where a block of rows starts.
  void (*step_tile_rows)(int m, int64_t k, const Real* a, int64_t lda, const Real* b, Real* c, int64_t ldc,
                         const Real* bias, bool accumulate, int n_valid);
  // The same (bit for bit) while it asks for `prefetch`'s lines, a few k-iterations apart: for the
  // backward's product, which runs FMA-bound while the memory system idles, to fetch the saved rows
  // its step's cell reads next (rows the forward wrote long before, no longer in cache).
  void (*step_tile_rows_prefetching)(int m, int64_t k, const Real* a, int64_t lda, const Real* b, Real* c,
                                     int64_t ldc, const Real* bias, bool accumulate, int n_valid,
                                     RowPrefetch& prefetch);

  // Each cell's pointwise pair, indexed by Cell (see CellKernels in cells.hpp).
  CellKernels<Real> cells[kCellKinds];

  // dst[p * nr + j] = src[j * ld + p] for j < rows, p < k, zeros for rows <= j < nr: a panel of W^T
  // from rows of W (the plans' packing; a register transpose where the ISA has one).
  void (*pack_transposed)(const Real* src, int64_t ld, int rows, int64_t k, int nr, Real* dst);

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
