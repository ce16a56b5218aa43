// The time loops of the vanilla cell: forward and backpropagation through time.
//
// Legend: T = timesteps, B = batch, I = input, H = hidden, G = gates (1 here), mr x nr = the ISA's
// register tile.  Row index of a (T, B, .) array viewed as (T*B, .): t*B + b.
//
// Both passes run inside ONE parallel region.  Each thread owns a fixed, contiguous set of blocks of
// nr hidden units for the whole call: it packs the matching panels of W_hh once (so they stay in its
// own cache for all T steps), computes those units at every step, and meets the others at one
// barrier per step.  The state each step needs from all threads is exchanged through a packed,
// double-buffered copy written by the step that produced it, so nobody repacks anything.
//
// Nothing here depends on the number of threads except who computes what: every output element is
// produced by the same sequence of operations, so results are bitwise identical for any team size.
#include <algorithm>
#include <cstring>

#include "gemm.hpp"
#include "kernel_table.hpp"
#include "rnnkit/rnnkit.hpp"
#include "team.hpp"

namespace rnnkit {
namespace {

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// The packed layout of a (rows x depth) matrix used as the A operand of the per-step products:
// tiles of up to mr rows; tile r sits at r*mr*depth with element (i, p) at [p * height(r) + i].
struct RowTiles {
  int64_t rows, depth;
  int mr;
  int64_t count() const { return ceil_div(rows, mr); }
  int64_t first_row(int64_t r) const { return r * mr; }
  int height(int64_t r) const { return int(std::min<int64_t>(mr, rows - r * mr)); }
  int64_t offset(int64_t r) const { return r * mr * depth; }
};

// Copy columns [u0, u0 + n) of a row-major block (rows x ld) into the packed layout at depth u0.
template <typename Real>
void pack_columns(const RowTiles& tiles, const Real* src, int64_t ld, int64_t u0, int n, Real* packed) {
  for (int64_t r = 0; r < tiles.count(); ++r) {
    const int m = tiles.height(r);
    Real* tile = packed + tiles.offset(r);
    const Real* rows = src + tiles.first_row(r) * ld;
    for (int i = 0; i < m; ++i)
      for (int j = 0; j < n; ++j) tile[(u0 + j) * m + i] = rows[i * ld + u0 + j];
  }
}

// Steps per chunk of the backward's reductions: the weight gradients are accumulated with one GEMM
// per chunk of ~kChunkRows rows of dpre, so the scratch for dpre stays O(B*H) rather than O(T*B*H)
// while each GEMM is still long enough in K to run near peak.
constexpr int64_t kChunkRows = 512;

}  // namespace

template <typename Real>
void rnn_forward(const RnnForwardArgs<Real>& a) {
  const KernelTable<Real>& k = active_kernels<Real>();
  const int64_t T = a.steps, B = a.batch, I = a.input, H = a.hidden;
  if (B == 0 || H == 0) return;
  if (T == 0) {  // no step: the last state is the initial one
    for (int64_t i = 0; i < B * H; ++i) a.h_n[i] = a.h0 ? a.h0[i] : Real(0);
    return;
  }
  const int threads = get_num_threads();

  // b_ih + b_hh enters the input projection once, as the GEMM's bias.
  Buffer<Real> bias;
  if (a.b_ih || a.b_hh) {
    bias = allocate<Real>(H);
    for (int64_t j = 0; j < H; ++j) bias[j] = (a.b_ih ? a.b_ih[j] : Real(0)) + (a.b_hh ? a.b_hh[j] : Real(0));
  }
  const int nr = k.nr;
  const int64_t blocks = ceil_div(H, nr);
  const RowTiles tiles{B, H, k.mr};
  Buffer<Real> w_packed = allocate<Real>(blocks * H * nr);  // panels of W_hh^T, one per unit block
  Buffer<Real> h_packed = allocate<Real>(2 * B * H);        // h_{t-1} and h_t, packed as A operands
  GemmWorkspace<Real> ws(k, threads);

  const MatrixView<Real> x{a.x, a.ldx, 1};
  const MatrixView<Real> w_ih_t{a.w_ih, 1, I};  // W_ih^T (I x H): element (i, j) = w_ih[j*I + i]
  const MatrixView<Real> w_hh_t{a.w_hh, 1, H};

  run_team(threads, [&](const Team& team) {
    int64_t jb0, jb1;
    team.share(blocks, jb0, jb1);
    for (int64_t jb = jb0; jb < jb1; ++jb) {
      pack_panel(w_hh_t, 0, H, jb * nr, H, nr, w_packed.get() + jb * H * nr);
      if (a.h0) pack_columns(tiles, a.h0, H, jb * nr, int(std::min<int64_t>(nr, H - jb * nr)), h_packed.get());
    }
    // Input projection for all timesteps at once, straight into y: y = x W_ih^T + b_ih + b_hh.
    // (gemm_team ends with a barrier, which also publishes the packed h0.)
    gemm_team<Real>(team, k, ws, T * B, H, I, x, w_ih_t, a.y, a.ldy, bias.get(), false);

    for (int64_t s = 0; s < T; ++s) {
      const int64_t t = a.reverse ? T - 1 - s : s;
      const Real* prev = h_packed.get() + (s & 1) * B * H;
      Real* next = h_packed.get() + ((s + 1) & 1) * B * H;
      const bool has_prev = s > 0 || a.h0 != nullptr;
      for (int64_t jb = jb0; jb < jb1; ++jb) {
        const int64_t u0 = jb * nr;
        const int n_valid = int(std::min<int64_t>(nr, H - u0));
        Real* yt = a.y + t * B * a.ldy;
        for (int64_t r = 0; r < tiles.count(); ++r) {
          const int m = tiles.height(r);
          Real* c = yt + tiles.first_row(r) * a.ldy + u0;
          // y_t += h_{t-1} W_hh^T for this tile, then the activation while it is in cache.
          if (has_prev)
            k.gemm_tile(m, H, prev + tiles.offset(r), w_packed.get() + jb * H * nr, c, a.ldy, nullptr, true, n_valid);
          for (int i = 0; i < m; ++i) k.activation(a.act, c + i * a.ldy, n_valid);
        }
        if (s + 1 < T) pack_columns(tiles, yt, a.ldy, u0, n_valid, next);
      }
      if (s + 1 < T) team.barrier();
    }
  });

  const Real* last = a.y + (a.reverse ? 0 : T - 1) * B * a.ldy;
  for (int64_t b = 0; b < B; ++b) std::memcpy(a.h_n + b * H, last + b * a.ldy, size_t(H) * sizeof(Real));
}

template <typename Real>
void rnn_backward(const RnnBackwardArgs<Real>& a) {
  const KernelTable<Real>& k = active_kernels<Real>();
  const int64_t T = a.steps, B = a.batch, I = a.input, H = a.hidden;
  const int64_t GH = H;  // gate rows of W_hh (one gate)
  auto zero_dx = [&] {
    if (a.dx_accumulate) return;
    for (int64_t row = 0; row < T * B; ++row)
      std::memset(a.dx + row * a.lddx, 0, size_t(I) * sizeof(Real));
  };
  std::memset(a.dw_ih, 0, size_t(GH * I) * sizeof(Real));
  std::memset(a.dw_hh, 0, size_t(GH * H) * sizeof(Real));
  std::memset(a.db, 0, size_t(GH) * sizeof(Real));
  if (B == 0) return;
  if (H == 0) {  // no hidden units: nothing flows back to x
    zero_dx();
    return;
  }
  if (T == 0) {
    for (int64_t i = 0; i < B * H; ++i) a.dh0[i] = a.dh_n ? a.dh_n[i] : Real(0);
    return;
  }
  const int threads = get_num_threads();
  const int nr = k.nr;
  const int64_t blocks = ceil_div(H, nr);
  const int64_t chunk_steps = std::min<int64_t>(T, std::max<int64_t>(1, ceil_div(kChunkRows, B)));
  const RowTiles tiles{B, GH, k.mr};
  Buffer<Real> dpre = allocate<Real>(chunk_steps * B * GH);  // dL/d(pre-activation) of one chunk
  Buffer<Real> w_packed = allocate<Real>(blocks * GH * nr);  // panels of W_hh (GH x H) by unit block
  Buffer<Real> dpre_packed = allocate<Real>(2 * B * GH);     // dpre_t packed as the A operand
  Buffer<Real> dh = allocate<Real>(B * H);                  // dL/dh_t carried to the previous step
  GemmWorkspace<Real> ws(k, threads);

  const MatrixView<Real> w_hh{a.w_hh, H, 1};
  const MatrixView<Real> w_ih{a.w_ih, I, 1};

  run_team(threads, [&](const Team& team) {
    int64_t jb0, jb1;
    team.share(blocks, jb0, jb1);
    for (int64_t jb = jb0; jb < jb1; ++jb) {
      pack_panel(w_hh, 0, GH, jb * nr, H, nr, w_packed.get() + jb * GH * nr);
      const int64_t u0 = jb * nr, n = std::min<int64_t>(nr, H - u0);
      for (int64_t b = 0; b < B; ++b)
        for (int64_t j = u0; j < u0 + n; ++j) dh[b * H + j] = a.dh_n ? a.dh_n[b * H + j] : Real(0);
    }

    for (int64_t s = 0; s < T; ++s) {
      const int64_t t = a.reverse ? s : T - 1 - s;  // the forward's steps, last first
      const int64_t t_lo = t / chunk_steps * chunk_steps, t_hi = std::min(T, t_lo + chunk_steps);
      Real* dpre_t = dpre.get() + (t - t_lo) * B * GH;
      Real* packed = dpre_packed.get() + (s & 1) * B * GH;

      // dpre_t = (dy_t + dh_t) * act'(h_t) for this thread's units.
      for (int64_t jb = jb0; jb < jb1; ++jb) {
        const int64_t u0 = jb * nr;
        const int n_valid = int(std::min<int64_t>(nr, H - u0));
        for (int64_t b = 0; b < B; ++b) {
          const int64_t row = t * B + b;
          k.vanilla_dpre(a.act, a.y + row * a.ldy + u0, a.dy ? a.dy + row * a.lddy + u0 : nullptr,
                         dh.get() + b * H + u0, dpre_t + b * GH + u0, n_valid);
        }
        pack_columns(tiles, dpre_t, GH, u0, n_valid, packed);
      }
      team.barrier();

      // dh_{t-1} = dpre_t W_hh for this thread's units (needs every thread's dpre_t).
      for (int64_t jb = jb0; jb < jb1; ++jb) {
        const int64_t u0 = jb * nr;
        const int n_valid = int(std::min<int64_t>(nr, H - u0));
        for (int64_t r = 0; r < tiles.count(); ++r)
          k.gemm_tile(tiles.height(r), GH, packed + tiles.offset(r), w_packed.get() + jb * GH * nr,
                      dh.get() + tiles.first_row(r) * H + u0, H, nullptr, false, n_valid);
      }

      const bool chunk_done = a.reverse ? t == t_hi - 1 : t == t_lo;
      if (!chunk_done) continue;
      // The chunk's reductions over its rows, each one GEMM (DESIGN.md, "Where the time goes").
      const int64_t rows = (t_hi - t_lo) * B;
      const MatrixView<Real> dpre_rows{dpre.get(), GH, 1};
      auto dpre_cols = [&](int64_t t_first) {  // dpre^T from time t_first on: (GH x rows)
        return MatrixView<Real>{dpre.get() + (t_first - t_lo) * B * GH, 1, GH};
      };
      // dW_ih += dpre^T x
      gemm_team<Real>(team, k, ws, GH, I, rows, dpre_cols(t_lo), MatrixView<Real>{a.x + t_lo * B * a.ldx, a.ldx, 1},
                a.dw_ih, I, nullptr, true);
      // dW_hh += dpre^T h_prev: rows whose previous state is in y, then the step that starts from h0.
      const int64_t dir = a.reverse ? -1 : 1;
      const int64_t y_t0 = a.reverse ? t_lo : std::max<int64_t>(t_lo, 1);
      const int64_t y_t1 = a.reverse ? std::min(t_hi, T - 1) : t_hi;
      if (y_t1 > y_t0)
        gemm_team<Real>(team, k, ws, GH, H, (y_t1 - y_t0) * B, dpre_cols(y_t0),
                  MatrixView<Real>{a.y + (y_t0 - dir) * B * a.ldy, a.ldy, 1}, a.dw_hh, H, nullptr, true);
      const int64_t t_first = a.reverse ? T - 1 : 0;
      if (a.h0 && t_first >= t_lo && t_first < t_hi)
        gemm_team<Real>(team, k, ws, GH, H, B, dpre_cols(t_first), MatrixView<Real>{a.h0, H, 1}, a.dw_hh, H, nullptr, true);
      // db += column sums of dpre, rows in order.
      int64_t c0, c1;
      team.share(GH, c0, c1);
      for (int64_t row = 0; row < rows; ++row) {
        const Real* src = dpre.get() + row * GH;
        for (int64_t c = c0; c < c1; ++c) a.db[c] += src[c];
      }
      // dx = dpre W_ih for the chunk's rows.
      gemm_team<Real>(team, k, ws, rows, I, GH, dpre_rows, w_ih, a.dx + t_lo * B * a.lddx, a.lddx, nullptr, a.dx_accumulate);
      team.barrier();  // dpre is rewritten by the next chunk
    }

    for (int64_t jb = jb0; jb < jb1; ++jb) {
      const int64_t u0 = jb * nr, n = std::min<int64_t>(nr, H - u0);
      for (int64_t b = 0; b < B; ++b)
        for (int64_t j = u0; j < u0 + n; ++j) a.dh0[b * H + j] = dh[b * H + j];
    }
  });
}

template void rnn_forward<float>(const RnnForwardArgs<float>&);
template void rnn_forward<double>(const RnnForwardArgs<double>&);
template void rnn_backward<float>(const RnnBackwardArgs<float>&);
template void rnn_backward<double>(const RnnBackwardArgs<double>&);

}  // namespace rnnkit
