// The time loops: forward and backpropagation through time, for the vanilla, LSTM and GRU cells.
//
// Legend: T = timesteps, B = batch, I = input, H = hidden, G = gates, GH = G*H, mr x nr = the ISA's
// register tile.  Row index of a (T, B, .) array viewed as (T*B, .): t*B + b.
//
// Both passes run inside ONE parallel region.  Each thread owns a fixed, contiguous set of blocks of
// nr hidden units for the whole call — all G gates of those units: the matching panels of W_hh are
// packed once (so they stay in its own cache for all T steps), it computes those units at every step,
// applies the cell while the tile is in cache, and meets the others at one barrier per step.  When
// there are more threads than blocks (H = 256 is 8 blocks on AVX-512), the batch rows are split too:
// a thread then owns its blocks' units for a contiguous range of row tiles.  The
// state each step needs from all threads (h_{t-1}, dpre_t) is read in place, where the cells wrote
// it: no copy, and each cache line crosses between cores once.
//
// Nothing here depends on the number of threads except who computes what: every output element is
// produced by the same sequence of operations, so results are bitwise identical for any team size.
#include <algorithm>
#include <cstring>

#include "gemm.hpp"
#include "kernel_table.hpp"
#include "profile.hpp"
#include "rnnkit/rnnkit.hpp"
#include "team.hpp"

namespace rnnkit {
namespace {

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// The row tiles of the per-step products: up to mr batch rows each.
struct RowTiles {
  int64_t rows;
  int mr;
  int64_t count() const { return ceil_div(rows, mr); }
  int64_t first_row(int64_t r) const { return r * mr; }
  int height(int64_t r) const { return int(std::min<int64_t>(mr, rows - r * mr)); }
};

// Steps per chunk of the backward's reductions: the weight gradients are accumulated with one GEMM
// per chunk of ~kChunkRows rows of dpre, so the scratch for dpre stays O(B*GH) rather than O(T*B*GH)
// while each GEMM is still long enough in K to run near peak.
constexpr int64_t kChunkRows = 512;

// [lo, hi) of part i when n things are split into `parts` contiguous, even shares.
inline void split(int64_t n, int64_t parts, int64_t i, int64_t& lo, int64_t& hi) {
  lo = n * i / parts;
  hi = n * (i + 1) / parts;
}

// How a team shares the per-step work: the ceil(H / nr) unit blocks in `block_groups` contiguous
// groups, and the row tiles in `row_groups` contiguous groups; thread tid owns block group
// tid / row_groups for row group tid % row_groups (threads beyond block_groups * row_groups own
// nothing: they only help with the all-timestep GEMMs).  Row groups end on the tiles' boundaries, so
// every element is computed by the same tile, the same way, for any team size.  The plan minimises
// the busiest thread's (blocks x rows), preferring fewer row groups: each row group reads all of its
// blocks' panels every step.
struct StepPlan {
  int64_t block_groups = 1, row_groups = 1;
  StepPlan(int threads, int64_t blocks, const RowTiles& tiles) {
    int64_t best = -1;
    for (int64_t r = 1; r <= std::min<int64_t>(threads, tiles.count()); ++r) {
      const int64_t g = std::min<int64_t>(blocks, threads / r);
      int64_t rows = 0;
      for (int64_t i = 0; i < r; ++i) {
        int64_t lo, hi;
        split(tiles.count(), r, i, lo, hi);
        rows = std::max(rows, std::min(tiles.rows, hi * tiles.mr) - lo * tiles.mr);
      }
      const int64_t cost = ceil_div(blocks, g) * rows;
      if (best < 0 || cost < best) best = cost, block_groups = g, row_groups = r;
    }
  }
};

// The team for a time loop: as many threads as each get kMinWorkPerThread of a step's B x GH x H
// multiply-adds, and no more than there are (unit block, row tile) pieces to own.
template <typename Real>
int step_threads(const KernelTable<Real>& k, int64_t B, int64_t GH, int64_t H) {
  return useful_threads(get_num_threads(), B * GH * H, ceil_div(H, k.nr) * RowTiles{B, k.mr}.count());
}

// What one thread owns for the whole call: unit blocks [begin, end) — units [first_unit,
// first_unit + units) — for row tiles [tile_begin, tile_end), batch rows [row_begin, row_end).
// `packs`: it packs its blocks' panels of W_hh (the first row group does; the others read them after
// the next barrier).
struct Ownership {
  int64_t begin = 0, end = 0;
  int nr;
  int64_t hidden;
  int64_t first_unit = 0, units = 0;
  int64_t tile_begin = 0, tile_end = 0, row_begin = 0, row_end = 0;
  bool packs = false;
  Ownership(const Team& team, int nr_, int64_t hidden_, const RowTiles& tiles) : nr(nr_), hidden(hidden_) {
    // From the team as it is: OpenMP may give fewer threads than asked for (nesting, limits).
    const StepPlan plan(team.size, ceil_div(hidden, nr), tiles);
    const int64_t group = team.tid / plan.row_groups, row_group = team.tid % plan.row_groups;
    if (group >= plan.block_groups) return;
    split(ceil_div(hidden, nr), plan.block_groups, group, begin, end);
    split(tiles.count(), plan.row_groups, row_group, tile_begin, tile_end);
    row_begin = tiles.first_row(tile_begin);
    row_end = std::min(tiles.rows, tiles.first_row(tile_end));
    packs = row_group == 0;
    if (end > begin && row_end > row_begin) {
      first_unit = first(begin);
      units = std::min(hidden, first(end)) - first_unit;
    } else {
      begin = end = tile_begin = tile_end = row_begin = row_end = 0;
    }
  }
  int64_t first(int64_t jb) const { return jb * nr; }
  int width(int64_t jb) const { return int(std::min<int64_t>(nr, hidden - jb * nr)); }
};

}  // namespace

template <typename Real>
void sequence_forward(const ForwardArgs<Real>& a) {
  const KernelTable<Real>& k = active_kernels<Real>();
  const int64_t T = a.steps, B = a.batch, I = a.input, H = a.hidden;
  const int G = gate_count(a.cell);
  const int64_t GH = G * H;
  const bool lstm = a.cell == Cell::lstm, gru = a.cell == Cell::gru;
  if (B == 0 || H == 0) return;
  if (T == 0) {  // no step: the last state is the initial one
    for (int64_t i = 0; i < B * H; ++i) a.h_n[i] = a.h0 ? a.h0[i] : Real(0);
    if (lstm)
      for (int64_t i = 0; i < B * H; ++i) a.c_n[i] = a.c0 ? a.c0[i] : Real(0);
    return;
  }
  const int nr = k.nr;
  const int64_t blocks = ceil_div(H, nr);
  const RowTiles tiles{B, k.mr};
  const int threads = step_threads(k, B, GH, H);
  PhaseClock clock(profiling_enabled());

  // The input projection's bias: b_ih + b_hh, except the GRU's n block, where b_hn belongs inside
  // r * (W_hn h + b_hn) and is added to the recurrent product instead.
  Scratch scratch;
  Real* bias = nullptr;
  if (a.b_ih || a.b_hh) {
    bias = scratch.take<Real>(GH);
    for (int64_t j = 0; j < GH; ++j) {
      const bool hidden_side = a.b_hh && !(gru && j >= 2 * H);
      bias[j] = (a.b_ih ? a.b_ih[j] : Real(0)) + (hidden_side ? a.b_hh[j] : Real(0));
    }
  }
  const Real* b_hn = gru && a.b_hh ? a.b_hh + 2 * H : nullptr;
  // Vanilla: the projection goes straight into y; LSTM/GRU: into the gates, which the cell overwrites
  // with their activations.
  Real* proj = a.cell == Cell::vanilla ? a.y : a.gates;
  const int64_t ld_proj = a.cell == Cell::vanilla ? a.ldy : GH;

  Real* w_packed = scratch.take<Real>(blocks * G * H * nr);  // panel (jb, g) of W_hh^T
  GemmWorkspace<Real> ws(k, threads, scratch, T * B, GH, I);
  auto panel = [&](int64_t jb, int g) { return w_packed + (jb * G + g) * H * nr; };

  const MatrixView<Real> x{a.x, a.ldx, 1};
  const MatrixView<Real> w_ih_t{a.w_ih, 1, I};  // W_ih^T (I x GH): element (i, j) = w_ih[j*I + i]
  const MatrixView<Real> w_hh_t{a.w_hh, 1, H};  // W_hh^T (H x GH)

  run_team(threads, [&](const Team& team) {
    auto mark = [&](Phase phase) {
      if (team.tid == 0) clock.mark(phase);
    };
    const Ownership own(team, nr, H, tiles);
    const int64_t u_own = own.first_unit, units = own.units;
    if (own.packs)
      for (int64_t jb = own.begin; jb < own.end; ++jb) {
        for (int g = 0; g < G; ++g) pack_panel(w_hh_t, 0, H, g * H + own.first(jb), g * H + H, nr, panel(jb, g));
      }
    mark(Phase::setup);
    // Input projection for all timesteps at once.  (gemm_team ends with a barrier, after which every
    // panel is packed.)
    gemm_team<Real>(team, k, ws, T * B, GH, I, x, w_ih_t, proj, ld_proj, bias, false);
    mark(Phase::input_gemm);

    for (int64_t s = 0; s < T; ++s) {
      const int64_t t = a.reverse ? T - 1 - s : s;
      const int64_t t_prev = a.reverse ? t + 1 : t - 1;  // valid when s > 0
      // h_{t-1}: the previous step's rows of y (all threads' units: the barrier published them), or h0.
      const Real* prev = s > 0 ? a.y + t_prev * B * a.ldy : a.h0;
      const int64_t ld_prev = s > 0 ? a.ldy : H;
      const bool has_prev = prev != nullptr;
      Real* yt = a.y + t * B * a.ldy;
      // The recurrent product of every gate panel this thread owns, onto the input projection —
      // except the GRU's W_hn h + b_hn, kept apart (and saved).  Each panel of W_hh streams once per
      // step, all row tiles of h_{t-1} consuming it back to back.
      for (int64_t jb = own.begin; jb < own.end; ++jb) {
        const int64_t u0 = own.first(jb);
        const int n = own.width(jb);
        for (int g = 0; g < G; ++g)
          for (int64_t r = own.tile_begin; r < own.tile_end; ++r) {
            const int m = tiles.height(r);
            const int64_t row0 = t * B + tiles.first_row(r);
            const Real* a_rows = has_prev ? prev + tiles.first_row(r) * ld_prev : nullptr;
            if (gru && g == 2)
              k.gemm_tile_rows(m, has_prev ? H : 0, a_rows, ld_prev > 0 ? ld_prev : 1, panel(jb, g),
                               a.hidden_n + row0 * H + u0, H, b_hn ? b_hn + u0 : nullptr, false, n);
            else if (has_prev)
              k.gemm_tile_rows(m, H, a_rows, ld_prev, panel(jb, g), proj + row0 * ld_proj + g * H + u0, ld_proj,
                               nullptr, true, n);
          }
      }
      mark(Phase::recurrent_gemm);
      // Then the cell over all the units this thread owns (contiguous), row by row, while they are
      // still in this core's cache.
      if (units > 0) {
        for (int64_t b = own.row_begin; b < own.row_end; ++b) {
          const int64_t row = t * B + b;
          Real* h = yt + b * a.ldy + u_own;
          if (a.cell == Cell::vanilla) {
            k.activation(a.act, h, units);
          } else if (lstm) {
            const Real* c_prev = s > 0 ? a.cells + (t_prev * B + b) * H + u_own : (a.c0 ? a.c0 + b * H + u_own : nullptr);
            k.lstm_forward_row(units, a.gates + row * GH + u_own, H, c_prev, a.cells + row * H + u_own, h);
          } else {
            const Real* h_prev = s > 0 ? a.y + (t_prev * B + b) * a.ldy + u_own : (a.h0 ? a.h0 + b * H + u_own : nullptr);
            k.gru_forward_row(units, a.gates + row * GH + u_own, H, a.hidden_n + row * H + u_own, h_prev, h);
          }
        }
      }
      mark(Phase::cell);
      if (s + 1 < T) team.barrier();
      mark(Phase::barrier);
    }
  });

  const int64_t t_last = a.reverse ? 0 : T - 1;
  const Real* last = a.y + t_last * B * a.ldy;
  for (int64_t b = 0; b < B; ++b) std::memcpy(a.h_n + b * H, last + b * a.ldy, size_t(H) * sizeof(Real));
  if (lstm) std::memcpy(a.c_n, a.cells + t_last * B * H, size_t(B * H) * sizeof(Real));
  clock.publish();
}

template <typename Real>
void sequence_backward(const BackwardArgs<Real>& a) {
  const KernelTable<Real>& k = active_kernels<Real>();
  const int64_t T = a.steps, B = a.batch, I = a.input, H = a.hidden;
  const int G = gate_count(a.cell);
  const int64_t GH = G * H;
  const bool lstm = a.cell == Cell::lstm, gru = a.cell == Cell::gru;
  // dW_ih and dW_hh are zeroed here only when no step runs; otherwise by the team, each thread its
  // share of rows (the first touch of fresh pages: 94 MiB for an LSTM with H = 1760).
  if (B == 0 || H == 0 || T == 0) {
    std::memset(a.dw_ih, 0, size_t(GH * I) * sizeof(Real));
    std::memset(a.dw_hh, 0, size_t(GH * H) * sizeof(Real));
  }
  std::memset(a.db_ih, 0, size_t(GH) * sizeof(Real));
  if (a.db_hh != a.db_ih) std::memset(a.db_hh, 0, size_t(GH) * sizeof(Real));
  if (B == 0) return;
  if (H == 0) {  // no hidden units: nothing flows back to x
    if (!a.dx_accumulate)
      for (int64_t row = 0; row < T * B; ++row) std::memset(a.dx + row * a.lddx, 0, size_t(I) * sizeof(Real));
    return;
  }
  if (T == 0) {
    for (int64_t i = 0; i < B * H; ++i) a.dh0[i] = a.dh_n ? a.dh_n[i] : Real(0);
    if (lstm)
      for (int64_t i = 0; i < B * H; ++i) a.dc0[i] = a.dc_n ? a.dc_n[i] : Real(0);
    return;
  }
  const int nr = k.nr;
  const int64_t blocks = ceil_div(H, nr);
  const RowTiles tiles{B, k.mr};
  const int threads = step_threads(k, B, GH, H);
  PhaseClock clock(profiling_enabled());
  const int64_t chunk_steps = std::min<int64_t>(T, std::max<int64_t>(1, ceil_div(kChunkRows, B)));
  // dpre: gradient of the input-side pre-activations of one chunk — also the hidden side's, except
  // the GRU's n block, whose hidden-side gradient (of W_hn h + b_hn) is dhn.
  const int64_t chunk_rows = chunk_steps * B;
  Scratch scratch;
  Real* dpre = scratch.take<Real>(chunk_rows * GH);
  Real* dhn = gru ? scratch.take<Real>(chunk_rows * H) : nullptr;
  Real* w_packed = scratch.take<Real>(blocks * GH * nr);  // panels of W_hh (GH x H) by unit block
  Real* dh = scratch.take<Real>(B * H);                   // dL/dh carried to the previous step
  Real* dc = lstm ? scratch.take<Real>(B * H) : nullptr;  // dL/dc carried (LSTM)
  // The GEMMs: dW_ih (GH x I, K = rows), dW_hh (GH x H, K = rows), dx (rows x I, K = GH).
  GemmWorkspace<Real> ws(k, threads, scratch, std::max(GH, chunk_rows), std::max(I, H), std::max(GH, chunk_rows));

  const MatrixView<Real> w_hh{a.w_hh, H, 1};
  const MatrixView<Real> w_ih{a.w_ih, I, 1};

  run_team(threads, [&](const Team& team) {
    auto mark = [&](Phase phase) {
      if (team.tid == 0) clock.mark(phase);
    };
    const Ownership own(team, nr, H, tiles);
    const int64_t u_own = own.first_unit, units = own.units;
    {  // (the first chunk's reductions come after many barriers)
      int64_t r0, r1;
      team.share(GH, r0, r1);
      std::memset(a.dw_ih + r0 * I, 0, size_t((r1 - r0) * I) * sizeof(Real));
      std::memset(a.dw_hh + r0 * H, 0, size_t((r1 - r0) * H) * sizeof(Real));
    }
    // (the panels are read after the first step's barrier)
    for (int64_t jb = own.begin; jb < own.end; ++jb) {
      if (own.packs) pack_panel(w_hh, 0, GH, own.first(jb), H, nr, w_packed + jb * GH * nr);
      for (int64_t b = own.row_begin; b < own.row_end; ++b)
        for (int64_t j = own.first(jb); j < own.first(jb) + own.width(jb); ++j) {
          dh[b * H + j] = a.dh_n ? a.dh_n[b * H + j] : Real(0);
          if (lstm) dc[b * H + j] = a.dc_n ? a.dc_n[b * H + j] : Real(0);
        }
    }
    mark(Phase::setup);

    for (int64_t s = 0; s < T; ++s) {
      const int64_t t = a.reverse ? s : T - 1 - s;  // the forward's steps, last first
      const int64_t t_prev = a.reverse ? t + 1 : t - 1;
      const bool first_step = s == T - 1;           // t is the forward's first step: h_{t-1} = h0
      const int64_t t_lo = t / chunk_steps * chunk_steps, t_hi = std::min(T, t_lo + chunk_steps);
      Real* dpre_t = dpre + (t - t_lo) * B * GH;
      Real* dhn_t = gru ? dhn + (t - t_lo) * B * H : nullptr;

      // The cell's backward for this thread's units (contiguous), row by row: dpre_t, and dh/dc's
      // own parts.
      if (units > 0) {
        for (int64_t b = own.row_begin; b < own.row_end; ++b) {
          const int64_t row = t * B + b;
          const Real* dy = a.dy ? a.dy + row * a.lddy + u_own : nullptr;
          Real* dh_b = dh + b * H + u_own;
          if (a.cell == Cell::vanilla) {
            k.vanilla_dpre(a.act, a.y + row * a.ldy + u_own, dy, dh_b, dpre_t + b * GH + u_own, units);
          } else if (lstm) {
            const Real* c_prev = !first_step ? a.cells + (t_prev * B + b) * H + u_own : (a.c0 ? a.c0 + b * H + u_own : nullptr);
            k.lstm_backward_row(units, a.gates + row * GH + u_own, H, a.cells + row * H + u_own, c_prev, dy, dh_b,
                                dc + b * H + u_own, dpre_t + b * GH + u_own);
          } else {
            const Real* h_prev = !first_step ? a.y + (t_prev * B + b) * a.ldy + u_own : (a.h0 ? a.h0 + b * H + u_own : nullptr);
            k.gru_backward_row(units, a.gates + row * GH + u_own, H, a.hidden_n + row * H + u_own, h_prev, dy, dh_b,
                               dpre_t + b * GH + u_own, dhn_t + b * H + u_own);
          }
        }
      }
      mark(Phase::cell);
      team.barrier();
      mark(Phase::barrier);

      // dh_{t-1} (+)= dpre_t W_hh for this thread's units (needs every thread's dpre_t, read in place).
      // The GRU's hidden-side gradient is [dpre_r | dpre_z | dhn]: two products, added to the direct
      // part dh_t * z that its cell left in dh.
      for (int64_t jb = own.begin; jb < own.end; ++jb)
        for (int64_t r = own.tile_begin; r < own.tile_end; ++r) {
          const int m = tiles.height(r);
          const int64_t b0 = tiles.first_row(r);
          Real* c = dh + b0 * H + own.first(jb);
          const Real* panel = w_packed + jb * GH * nr;
          if (gru) {
            k.gemm_tile_rows(m, 2 * H, dpre_t + b0 * GH, GH, panel, c, H, nullptr, true, own.width(jb));
            k.gemm_tile_rows(m, H, dhn_t + b0 * H, H, panel + 2 * H * nr, c, H, nullptr, true, own.width(jb));
          } else {
            k.gemm_tile_rows(m, GH, dpre_t + b0 * GH, GH, panel, c, H, nullptr, false, own.width(jb));
          }
        }
      mark(Phase::recurrent_gemm);

      const bool chunk_done = a.reverse ? t == t_hi - 1 : t == t_lo;
      if (!chunk_done) continue;
      // The chunk's reductions over its rows, each one GEMM (DESIGN.md, "Where the time goes").
      const int64_t rows = (t_hi - t_lo) * B;
      auto columns = [&](const Real* base, int64_t ld, int64_t t_first) {  // (cols x rows) view from t_first
        return MatrixView<Real>{base + (t_first - t_lo) * B * ld, 1, ld};
      };
      // dW_ih += dpre^T x
      gemm_team<Real>(team, k, ws, GH, I, rows, columns(dpre, GH, t_lo),
                      MatrixView<Real>{a.x + t_lo * B * a.ldx, a.ldx, 1}, a.dw_ih, I, nullptr, true);
      // dW_hh += dpre_hidden^T h_prev, for the rows whose previous state is in y, then for the step
      // that starts from h0.  The GRU's n block takes dhn instead of dpre.
      auto dw_hh_update = [&](int64_t t_first, int64_t count, MatrixView<Real> h_prev) {
        const int64_t K = count * B;
        if (gru) {
          gemm_team<Real>(team, k, ws, 2 * H, H, K, columns(dpre, GH, t_first), h_prev, a.dw_hh, H, nullptr, true);
          gemm_team<Real>(team, k, ws, H, H, K, columns(dhn, H, t_first), h_prev, a.dw_hh + 2 * H * H, H,
                          nullptr, true);
        } else {
          gemm_team<Real>(team, k, ws, GH, H, K, columns(dpre, GH, t_first), h_prev, a.dw_hh, H, nullptr, true);
        }
      };
      const int64_t y_t0 = a.reverse ? t_lo : std::max<int64_t>(t_lo, 1);
      const int64_t y_t1 = a.reverse ? std::min(t_hi, T - 1) : t_hi;
      const int64_t dir = a.reverse ? -1 : 1;
      if (y_t1 > y_t0) dw_hh_update(y_t0, y_t1 - y_t0, MatrixView<Real>{a.y + (y_t0 - dir) * B * a.ldy, a.ldy, 1});
      const int64_t t_first = a.reverse ? T - 1 : 0;
      if (a.h0 && t_first >= t_lo && t_first < t_hi) dw_hh_update(t_first, 1, MatrixView<Real>{a.h0, H, 1});
      // db_ih += column sums of dpre (and the GRU's db_hh n block of dhn), rows in order.
      int64_t c0, c1;
      team.share(GH, c0, c1);
      for (int64_t row = 0; row < rows; ++row) {
        const Real* src = dpre + row * GH;
        for (int64_t c = c0; c < c1; ++c) a.db_ih[c] += src[c];
      }
      if (gru) {
        team.share(H, c0, c1);
        for (int64_t row = 0; row < rows; ++row) {
          const Real* src = dhn + row * H;
          for (int64_t c = c0; c < c1; ++c) a.db_hh[2 * H + c] += src[c];
        }
      }
      mark(Phase::weight_grad_gemm);
      // dx = dpre W_ih for the chunk's rows.
      gemm_team<Real>(team, k, ws, rows, I, GH, MatrixView<Real>{dpre, GH, 1}, w_ih,
                      a.dx + t_lo * B * a.lddx, a.lddx, nullptr, a.dx_accumulate);
      mark(Phase::dx_gemm);
      team.barrier();  // dpre is rewritten by the next chunk
      mark(Phase::barrier);
    }

    for (int64_t jb = own.begin; jb < own.end; ++jb)
      for (int64_t b = own.row_begin; b < own.row_end; ++b)
        for (int64_t j = own.first(jb); j < own.first(jb) + own.width(jb); ++j) {
          a.dh0[b * H + j] = dh[b * H + j];
          if (lstm) a.dc0[b * H + j] = dc[b * H + j];
        }
  });
  // Both biases enter every pre-activation the same way, except the GRU's n block.  (A caller that
  // wants one db may pass the same array for both.)
  if (a.db_hh != a.db_ih) std::memcpy(a.db_hh, a.db_ih, size_t(gru ? 2 * H : GH) * sizeof(Real));
  clock.publish();
}

template <typename Real>
std::array<int64_t, 3> step_plan(int64_t batch, int64_t hidden, int gates) {
  const KernelTable<Real>& k = active_kernels<Real>();
  const int64_t blocks = ceil_div(hidden, k.nr);
  const RowTiles tiles{batch, k.mr};
#ifdef _OPENMP
  const int threads = step_threads(k, batch, gates * hidden, hidden);
#else
  const int threads = 1;  // run_team runs every call on the calling thread
#endif
  const StepPlan plan(threads, blocks, tiles);
  return {threads, plan.block_groups, plan.row_groups};
}

template std::array<int64_t, 3> step_plan<float>(int64_t, int64_t, int);
template std::array<int64_t, 3> step_plan<double>(int64_t, int64_t, int);
template void sequence_forward<float>(const ForwardArgs<float>&);
template void sequence_forward<double>(const ForwardArgs<double>&);
template void sequence_backward<float>(const BackwardArgs<float>&);
template void sequence_backward<double>(const BackwardArgs<double>&);

}  // namespace rnnkit
