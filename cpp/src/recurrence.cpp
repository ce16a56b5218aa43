// The time loops, written once for every cell (cells.hpp) and every way of running one: lengths,
// reverse, training or inference, one direction or two at once.
//
// Legend: T = timesteps, B = batch, I = input, H = hidden, G = gates, GH = G*H, D = directions,
// mr x nr = the ISA's register tile, S = the steps that run (T, or the longest length).
//
// Steps and rows.  Step s runs the first n(s) rows in "step order": the batch rows themselves, or,
// with lengths, the rows sorted longest first (torch's PackedSequence: the rows still running at
// step s are a prefix).  Every per-row buffer is indexed by a buffer row base(s) + i:
//  - without lengths, base(s) = t(s) * B, so the buffers are the (T, B, .) arrays themselves and x, y
//    are read and written in place (reverse: t(s) = T-1-s);
//  - with lengths, base(s) = the packed offset of step s: x is gathered into packed rows (xp) once,
//    y is scattered from them, padding is never computed, and each row's reverse direction starts at
//    its own last step (t = lengths[b]-1-s).  When the caller's arrays are packed rows already
//    (packed_rows: torch's PackedSequence data, lengths sorted), the forward direction's buffers are
//    the caller's x and y themselves, and user_row maps (t, i) to the packed row start(t) + i.
// Inference keeps no per-step buffer: the input projection runs a chunk of ~kChunkRows rows at a
// time, and the states of the previous step live in a ring of two (B, H) blocks.
//
// Each call is one Job (pool.hpp).  Every phase's items are (direction, unit blocks, row tile group):
// the recurrent product of those gate panels onto the pre-activations, then the cell, while they are
// in cache.  Each participant starts on its home items, so its W_hh panels stay in its cache, and
// takes others' when it is done.  Nothing here depends on who computes what: every output element
// is produced by the same sequence of operations, so results are bitwise identical for any team.
#include <algorithm>
#include <cstring>
#include <mutex>
#include <thread>
#include <numeric>
#include <vector>

#include "cells.hpp"
#include "gemm.hpp"
#include "kernel_table.hpp"
#include "pool.hpp"
#include "profile.hpp"
#include "rnnkit/rnnkit.hpp"
#include "team.hpp"

namespace rnnkit {
namespace {

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

template <typename Real>
using Buffer = Block<Real>;
template <typename Real>
Buffer<Real> allocate(int64_t n) {
  return take_buffer<Real>(n);
}

// Rows per chunk of the all-row products that run inside the time loop (the backward's weight
// gradients and dx; inference's input projection): long enough in K to run near peak, short enough
// that the chunk's scratch stays O(B * GH) rather than O(T * B * GH).
constexpr int64_t kChunkRows = 512;
// A call smaller than this many multiply-adds (x min_work_per_thread) runs on the calling thread
// alone: waking a helper costs more than it could save.
constexpr int64_t kMinCallWorkFactor = 32;

// The row tiles of the per-step products: up to mr batch rows each.
struct RowTiles {
  int64_t rows;
  int mr;
  int64_t count() const { return ceil_div(rows, mr); }
};

// [lo, hi) of part i when n things are split into `parts` contiguous, even shares.
inline void split(int64_t n, int64_t parts, int64_t i, int64_t& lo, int64_t& hi) {
  lo = n * i / parts;
  hi = n * (i + 1) / parts;
}

// How a team shares the per-step work: the ceil(H / nr) unit blocks in `block_groups` contiguous
// groups, and the row tiles in `row_groups` contiguous groups; participant p owns block group
// p / row_groups for row group p % row_groups.  Row groups end on tile boundaries, so every element
// is computed by the same tile, the same way, for any team size.  The plan minimises the busiest
// participant's (blocks x rows), preferring fewer row groups: each reads all its blocks' panels.
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


// One item of a step: unit blocks [block_begin, block_end) of one direction, rows [row_begin, row_end).
struct StepItem {
  int direction;
  int64_t block_begin, block_end, row_begin, row_end;
};

// The items of one step for a team of `threads`: per direction, each participant's share in two
// items (so that a participant left alone can take half of another's), in participant order.
std::vector<StepItem> step_items(int threads, int directions, int64_t batch, int64_t hidden, int nr, int mr) {
  const int64_t blocks = ceil_div(hidden, nr);
  const RowTiles tiles{batch, mr};
  const int per_direction = std::max(1, threads / directions);
  const StepPlan plan(per_direction, blocks, tiles);
  std::vector<StepItem> items;
  for (int d = 0; d < directions; ++d)
    for (int64_t p = 0; p < plan.block_groups * plan.row_groups; ++p) {
      int64_t b0, b1, t0, t1;
      split(blocks, plan.block_groups, p / plan.row_groups, b0, b1);
      split(tiles.count(), plan.row_groups, p % plan.row_groups, t0, t1);
      if (b1 <= b0 || t1 <= t0) continue;
      const int64_t r0 = t0 * mr, r1 = std::min(batch, t1 * mr);
      const int64_t halves = b1 - b0 >= 2 ? 2 : 1;
      for (int64_t h = 0; h < halves; ++h) {
        int64_t lo, hi;
        split(b1 - b0, halves, h, lo, hi);
        items.push_back({d, b0 + lo, b0 + hi, r0, r1});
      }
    }
  return items;
}

// Which rows run at each step, and where their data is (see the top of this file).
struct Steps {
  int64_t T = 0, B = 0, S = 0;
  bool packed = false;
  bool packed_rows = false;  // the caller's arrays hold packed rows only (sequence_forward's packed_rows)
  std::vector<int64_t> perm;    // packed: step-order position i -> batch row (longest first)
  std::vector<int64_t> length;  // packed: the length of position i
  std::vector<int64_t> count;   // packed: n(s), s <= S (n(S) = 0)
  std::vector<int64_t> start;   // packed: first packed row of step s, s <= S
  std::vector<int64_t> chunk_first;  // chunk c = steps [chunk_first[c], chunk_first[c + 1])
  std::vector<int64_t> chunk_of;     // the chunk of step s
  int64_t max_chunk_rows = 0;

  Steps(int64_t steps, int64_t batch, const int64_t* lengths, bool rows_only = false)
      : T(steps), B(batch), packed_rows(rows_only) {
    packed = false;
    if (lengths)
      for (int64_t b = 0; b < B; ++b) packed = packed || lengths[b] != T;
    if (!packed) {
      S = B > 0 ? T : 0;
    } else {
      perm.resize(size_t(B));
      std::iota(perm.begin(), perm.end(), int64_t(0));
      std::stable_sort(perm.begin(), perm.end(), [&](int64_t a, int64_t b) { return lengths[a] > lengths[b]; });
      length.resize(size_t(B));
      for (int64_t i = 0; i < B; ++i) length[size_t(i)] = lengths[perm[size_t(i)]];
      S = B > 0 ? length[0] : 0;
      count.assign(size_t(S + 1), 0);
      start.assign(size_t(S + 1), 0);
      int64_t i = B;
      for (int64_t s = 0; s < S; ++s) {
        while (i > 0 && length[size_t(i - 1)] <= s) --i;
        count[size_t(s)] = i;
        start[size_t(s + 1)] = start[size_t(s)] + i;
      }
    }
    chunk_of.assign(size_t(S), 0);
    for (int64_t s = 0; s < S;) {
      const int64_t first = s;
      int64_t rows = 0;
      while (s < S && (s == first || rows < kChunkRows)) rows += active(s++);
      for (int64_t u = first; u < s; ++u) chunk_of[size_t(u)] = int64_t(chunk_first.size());
      chunk_first.push_back(first);
      max_chunk_rows = std::max(max_chunk_rows, rows);
    }
    chunk_first.push_back(S);
  }
  int64_t rows() const { return packed ? start[size_t(S)] : T * B; }  // buffer rows in all
  int64_t active(int64_t s) const { return s >= S ? 0 : packed ? count[size_t(s)] : B; }
  int64_t batch_row(int64_t i) const { return packed ? perm[size_t(i)] : i; }
  int64_t time(int64_t s, int64_t i, bool reverse) const {
    if (packed) return reverse ? length[size_t(i)] - 1 - s : s;
    return reverse ? T - 1 - s : s;
  }
  int64_t base(int64_t s, bool reverse) const { return packed ? start[size_t(s)] : (reverse ? T - 1 - s : s) * B; }
  // The caller's row of position i at step s: (T, B, .) arrays, or packed rows (where every length is
  // T, the two are the same; otherwise the positions are the batch rows, lengths being sorted).
  int64_t user_row(int64_t s, int64_t i, bool reverse) const {
    if (packed_rows && packed) return start[size_t(time(s, i, reverse))] + i;
    return time(s, i, reverse) * B + batch_row(i);
  }
  // The caller's rows in all: T * B, or the packed rows'.
  int64_t user_rows() const { return packed_rows && packed ? start[size_t(S)] : T * B; }
  int64_t chunks() const { return int64_t(chunk_first.size()) - 1; }
  int64_t chunk_rows(int64_t c) const {
    const int64_t s0 = chunk_first[size_t(c)], s1 = chunk_first[size_t(c + 1)];
    return packed ? start[size_t(s1)] - start[size_t(s0)] : (s1 - s0) * B;
  }
  int64_t chunk_min(int64_t c, bool reverse) const {  // the chunk's lowest buffer row
    const int64_t s0 = chunk_first[size_t(c)], s1 = chunk_first[size_t(c + 1)];
    if (packed) return start[size_t(s0)];
    return reverse ? (T - s1) * B : s0 * B;
  }
  // Padding: t >= length of batch row b (packed only).
  template <class F>
  void for_each_padding(F f) const {
    if (!packed || packed_rows) return;
    for (int64_t i = 0; i < B; ++i)
      for (int64_t t = length[size_t(i)]; t < T; ++t) f(t * B + perm[size_t(i)]);
  }
};

void copy_units(void* dst, const void* src, int64_t units, size_t item) {
  std::memcpy(dst, src, size_t(units) * item);
}

// The row length (in elements) of a buffer whose rows a product tile or a cell visits a few at a time
// down its columns: n, or one cache line more when n's bytes are a multiple of 512.  With rows 2 KB
// apart (an LSTM's GH at H=128), the twelve rows of a register tile fall in four of L1's 64 sets.
int64_t spread_rows(int64_t n, size_t item) {
  return (n * int64_t(item)) % 512 == 0 ? n + 64 / int64_t(item) : n;
}

}  // namespace

// ---- the plan -------------------------------------------------------------------------------------
template <typename Real>
class Plan {
 public:
  Cell cell;
  Activation act;
  int64_t I, H, G, GH;
  const KernelTable<Real>* k;
  Buffer<Real> w_ih_copy, w_hh_copy;  // the snapshot: (GH, I), (GH, H) — unless borrowed
  const Real* w_ih = nullptr;         // the weights the plan computes with: the snapshot, or the
  const Real* w_hh = nullptr;         // caller's arrays (a one-call plan: the functional API)
  Buffer<Real> bias;         // the input projection's: b_ih + b_hh, but the apart block's b_hh; or null
  Buffer<Real> b_apart;      // b_hh's apart block (H,), added to the apart product; or null
  Buffer<Real> w_hh_panels;  // panel (jb, g) of W_hh^T: H x nr each, for h W_hh^T
  PackedB<Real> w_ih_t;      // W_ih^T (I x GH) for the input projection

  // Packing, as items any participant of a job can do.  The forward's (W_hh^T panels, W_ihᵀ) is done
  // when the plan is made, or — a one-call plan's — in the first phase of its first job; the
  // backward's (W_hh row panels, W_ih) in the first phase of the first backward job.  A job claims a
  // plan's packing before it starts (claim_*), packs in its first phase, and publishes (*_packed)
  // after; another job that needs it meanwhile waits for it.
  enum State : int { kUnpacked = 0, kPacking = 1, kPacked = 2 };
  int64_t forward_items() const { return ceil_div(H, k->nr) * G + w_ih_t_panels_; }
  void pack_forward(int64_t item) const {
    const int64_t nr = k->nr, hh = ceil_div(H, nr) * G;
    if (item < hh) {
      const int64_t jb = item / G, g = item % G;
      k->pack_transposed(w_hh + (g * H + jb * nr) * H, H, int(std::min<int64_t>(nr, H - jb * nr)), H, int(nr),
                         const_cast<Real*>(panel(jb, int(g))));
    } else {
      pack_b_panel(*k, MatrixView<Real>{w_ih, 1, I}, const_cast<PackedB<Real>&>(w_ih_t), item - hh);
    }
  }
  int64_t backward_items() const { return ceil_div(H, k->nr) + w_ih_rows_panels_; }
  void pack_backward(int64_t item) const {
    const int64_t nr = k->nr, hh = ceil_div(H, nr);
    if (item < hh)
      pack_panel(MatrixView<Real>{w_hh, H, 1}, 0, GH, item * nr, H, int(nr), w_hh_rows_.get() + item * GH * nr);
    else
      pack_b_panel(*k, MatrixView<Real>{w_ih, I, 1}, w_ih_rows_, item - hh);
  }
  // True: the caller's job packs (and then calls *_packed); false: packed already (after waiting for
  // another job that was packing it).
  bool claim_forward() const { return claim(forward_state_); }
  void forward_packed() const { forward_state_.store(kPacked, std::memory_order_release); }
  bool claim_backward() const {
    if (!claim(backward_state_)) return false;
    try {
      w_hh_rows_ = allocate<Real>(ceil_div(H, k->nr) * GH * k->nr);
      w_ih_rows_panels_ = prepare_packed_b(*k, GH, I, w_ih_rows_);
    } catch (...) {
      backward_state_.store(kUnpacked, std::memory_order_release);
      throw;
    }
    return true;
  }
  void backward_packed() const { backward_state_.store(kPacked, std::memory_order_release); }
  void forward_unclaim() const { forward_state_.store(kUnpacked, std::memory_order_release); }
  void backward_unclaim() const { backward_state_.store(kUnpacked, std::memory_order_release); }
  void prepare_forward() { w_ih_t_panels_ = prepare_packed_b(*k, I, GH, w_ih_t); }

  const Real* backward_panel(int64_t jb) const { return w_hh_rows_.get() + jb * GH * k->nr; }
  const PackedB<Real>& w_ih_rows() const { return w_ih_rows_; }
  const Real* panel(int64_t jb, int g) const { return w_hh_panels.get() + (jb * G + g) * H * k->nr; }
  const CellTraits& cell_traits() const { return traits(cell); }

 private:
  static bool claim(std::atomic<int>& state) {
    for (int spins = 0;; ++spins) {
      int expected = kUnpacked;
      if (state.compare_exchange_strong(expected, kPacking, std::memory_order_acq_rel)) return true;
      if (expected == kPacked) return false;
      std::this_thread::yield();  // another call is packing this plan: its first phase, then ours
    }
  }
  int64_t w_ih_t_panels_ = 0;
  mutable std::atomic<int> forward_state_{kUnpacked}, backward_state_{kUnpacked};
  mutable Buffer<Real> w_hh_rows_;   // panel jb of W_hh (GH x H): GH x nr each, for dpre W_hh
  mutable PackedB<Real> w_ih_rows_;  // W_ih (GH x I) for dx = dpre W_ih
  mutable int64_t w_ih_rows_panels_ = 0;
};

template <typename Real>
std::shared_ptr<const Plan<Real>> make_plan(Cell cell, Activation act, int64_t input, int64_t hidden,
                                            const Real* w_ih, const Real* w_hh, const Real* b_ih, const Real* b_hh,
                                            bool borrow) {
  auto plan = std::make_shared<Plan<Real>>();
  Plan<Real>& p = *plan;
  const CellTraits& ct = traits(cell);
  p.cell = cell, p.act = act, p.I = input, p.H = hidden, p.G = ct.gates, p.GH = ct.gates * hidden;
  p.k = &active_kernels<Real>();
  const int64_t GH = p.GH, H = hidden, I = input, nr = p.k->nr;
  if (borrow) {
    p.w_ih = w_ih, p.w_hh = w_hh;
  } else {
    p.w_ih_copy = allocate<Real>(GH * I);
    p.w_hh_copy = allocate<Real>(GH * H);
    if (GH * I != 0) std::memcpy(p.w_ih_copy.get(), w_ih, size_t(GH * I) * sizeof(Real));
    if (GH * H != 0) std::memcpy(p.w_hh_copy.get(), w_hh, size_t(GH * H) * sizeof(Real));
    p.w_ih = p.w_ih_copy.get(), p.w_hh = p.w_hh_copy.get();
  }
  const int64_t apart = ct.last_gate_apart ? (ct.gates - 1) * H : GH;  // first row of the apart block
  if (b_ih || b_hh) {
    p.bias = allocate<Real>(GH);
    for (int64_t j = 0; j < GH; ++j)
      p.bias[j] = (b_ih ? b_ih[j] : Real(0)) + (b_hh && j < apart ? b_hh[j] : Real(0));
  }
  if (ct.last_gate_apart && b_hh) {
    p.b_apart = allocate<Real>(H);
    std::memcpy(p.b_apart.get(), b_hh + apart, size_t(H) * sizeof(Real));
  }
  p.w_hh_panels = allocate<Real>(ceil_div(H, nr) * GH * nr);
  p.prepare_forward();
  // A plan made to be kept is packed now; a one-call plan (borrowed weights) by its call's team.
  if (!borrow && p.claim_forward()) {
    for (int64_t i = 0; i < p.forward_items(); ++i) p.pack_forward(i);
    p.forward_packed();
  }
  return plan;
}

template <typename Real>
std::string plan_isa(const Plan<Real>& plan) {
  return plan.k->isa;
}

// ---- streaming: one step of a stack of layers on the calling thread --------------------------------
template <typename Real>
class StepStack {
 public:
  std::vector<std::shared_ptr<const Plan<Real>>> plans;
  std::vector<Buffer<Real>> w_ih_panels;  // per layer, panel (jb, g) of W_ih^T: I x nr each
  const Real* ih_panel(size_t layer, int64_t jb, int g) const {
    const Plan<Real>& p = *plans[layer];
    return w_ih_panels[layer].get() + (jb * p.G + g) * p.I * p.k->nr;
  }
};

template <typename Real>
std::shared_ptr<const StepStack<Real>> make_step_stack(const std::vector<std::shared_ptr<const Plan<Real>>>& plans) {
  auto stack = std::make_shared<StepStack<Real>>();
  stack->plans = plans;
  for (const auto& plan : plans) {
    const Plan<Real>& p = *plan;
    const int64_t nr = p.k->nr, blocks = ceil_div(p.H, nr);
    Buffer<Real> panels = allocate<Real>(std::max<int64_t>(1, blocks * p.G * p.I * nr));
    for (int64_t jb = 0; jb < blocks; ++jb)
      for (int g = 0; g < p.G; ++g)
        p.k->pack_transposed(p.w_ih + (g * p.H + jb * nr) * p.I, p.I, int(std::min<int64_t>(nr, p.H - jb * nr)), p.I,
                             int(nr), panels.get() + (jb * p.G + g) * p.I * nr);
    stack->w_ih_panels.push_back(std::move(panels));
  }
  return stack;
}

template <typename Real>
int64_t step_stack_scratch(const StepStack<Real>& stack, int64_t batch) {
  int64_t most = 0;
  for (const auto& p : stack.plans) most = std::max(most, batch * (p->GH + 4 * p->H));
  return most;
}

namespace {

// A stream's step takes a helper only for this many times the kernels' minimum work per thread: it
// pays a job and a barrier per layer against a step of microseconds.  Measured on 2 cores (Zen 3, B=1,
// float32): a GRU of H=128 (98k multiply-adds a step, its weights in L2) gained nothing on 2 threads
// and halved what 8 serving threads got through; one of H=256 (393k, its weights from L3) ran 1.9x
// faster.  A second thread then comes from 2 x 16 x 8192 = 262k multiply-adds: between the two.
constexpr int64_t kStreamWorkFactor = 16;

// One step of a stack as a program of phases, one per layer; an item is a block of nr units of that
// layer, for every row: its gates' input and recurrent products, then the cell over its units.  The
// new h goes to a scratch block of the layer's parity (the old h is every item's recurrent input
// until the phase ends); layer l+1's items read it as their x and copy their units of it into h[l],
// and the caller copies the last layer's after the program.  c is read only by its unit's own item,
// which updates it in place (through c_new).  Each unit's arithmetic is fixed, so the results do not
// depend on how many threads took part.
template <typename Real>
struct StepProgram {
  std::shared_ptr<const StepStack<Real>> stack;  // (held: a helper may run through after the call)
  int64_t B = 0, ldx = 0;
  const Real* x = nullptr;
  Real* const* h = nullptr;
  Real* const* c = nullptr;
  Real* scratch = nullptr;

  Real* h_new(int64_t l) const {  // layer l's new h, (B, H)
    const Plan<Real>& p = *stack->plans[0];
    return scratch + B * (p.GH + p.H) + (l & 1) * B * p.H;
  }
  int64_t blocks() const { return ceil_div(stack->plans[0]->H, stack->plans[0]->k->nr); }

  void item(size_t l, int64_t jb) const {
    const Plan<Real>& p = *stack->plans[l];
    const KernelTable<Real>& k = *p.k;
    const CellTraits& ct = p.cell_traits();
    const int64_t H = p.H, GH = p.GH, I = p.I, nr = k.nr, mr = k.mr;
    const bool lstm = ct.states == 2;
    const Real* in = l == 0 ? x : h_new(int64_t(l) - 1);
    const int64_t ld_in = l == 0 ? ldx : H;
    Real* pre = scratch;         // (B, GH)
    Real* extra = pre + B * GH;  // (B, H): the apart product
    Real* hn = h_new(int64_t(l));
    Real* c_new = scratch + B * (GH + 3 * H);  // (B, H)
    const int64_t u0 = jb * nr;
    const int n = int(std::min<int64_t>(nr, H - u0));
    for (int g = 0; g < p.G; ++g)
      for (int64_t r = 0; r < B; r += mr) {
        const int m = int(std::min<int64_t>(mr, B - r));
        Real* dst = pre + r * GH + g * H + u0;
        k.step_tile_rows(m, I, in + r * ld_in, ld_in, stack->ih_panel(l, jb, g), dst, GH,
                         p.bias ? p.bias.get() + g * H + u0 : nullptr, false, n);
        if (ct.last_gate_apart && g == p.G - 1)
          k.step_tile_rows(m, H, h[l] + r * H, H, p.panel(jb, g), extra + r * H + u0, H,
                           p.b_apart ? p.b_apart.get() + u0 : nullptr, false, n);
        else
          k.step_tile_rows(m, H, h[l] + r * H, H, p.panel(jb, g), dst, GH, nullptr, true, n);
      }
    const CellKernels<Real>& cell = k.cells[int(p.cell)];
    cell.forward(p.act, B, n, H, {pre + u0, GH}, {ct.last_gate_apart ? extra + u0 : nullptr, H}, {h[l] + u0, H},
                 {lstm ? c[l] + u0 : nullptr, H}, {hn + u0, H}, {lstm ? c_new + u0 : nullptr, H});
    for (int64_t r = 0; r < B; ++r) {
      const int64_t o = r * H + u0;
      if (lstm) std::memcpy(c[l] + o, c_new + o, size_t(n) * sizeof(Real));
      if (l > 0) std::memcpy(h[l - 1] + o, in + o, size_t(n) * sizeof(Real));  // the layer below's new h
    }
  }

  void run(Team& team) const {
    const int64_t n = blocks();
    for (size_t l = 0; l < stack->plans.size(); ++l) team.phase(n, [&](int64_t jb) { item(l, jb); });
  }
  void run_alone() const {
    const int64_t n = blocks();
    for (size_t l = 0; l < stack->plans.size(); ++l)
      for (int64_t jb = 0; jb < n; ++jb) item(l, jb);
  }
};

}  // namespace

template <typename Real>
int step_stack_threads(const StepStack<Real>& stack, int64_t B) {
  if (!threads_enabled()) return 1;
  const Plan<Real>& p = *stack.plans[0];
  int64_t work = 0;  // multiply-adds of one layer's step: the work between two barriers
  for (const auto& q : stack.plans) work = std::max(work, B * q->GH * (q->I + q->H));
  return useful_threads(get_num_threads(), work / kStreamWorkFactor, ceil_div(p.H, p.k->nr));
}

template <typename Real>
void step_stack(const std::shared_ptr<const StepStack<Real>>& stack, int64_t B, const Real* x, int64_t ldx,
                Real* const* h, Real* const* c, Real* top, int64_t ldtop, Real* scratch, int threads) {
  StepProgram<Real> program;
  program.stack = stack, program.B = B, program.x = x, program.ldx = ldx, program.h = h, program.c = c;
  program.scratch = scratch;
  if (threads > 1)
    run_job(make_job(threads, [program](Team& team) { program.run(team); }));
  else
    program.run_alone();
  const int64_t L = int64_t(stack->plans.size()), H = stack->plans.back()->H;
  const Real* last = program.h_new(L - 1);
  std::memcpy(h[L - 1], last, size_t(B * H) * sizeof(Real));
  if (top)
    for (int64_t r = 0; r < B; ++r) std::memcpy(top + r * ldtop, last + r * H, size_t(H) * sizeof(Real));
}

// ---- what a training forward saves ----------------------------------------------------------------
template <typename Real>
class Saved {
 public:
  std::shared_ptr<const Plan<Real>> plan;
  std::shared_ptr<const Steps> steps;
  bool reverse = false;
  int64_t I = 0;
  const Real* x = nullptr;  // buffer rows of x: the forward's x, or xp
  int64_t ldx = 0;
  Buffer<Real> xp;
  const Real* y = nullptr;  // buffer rows of the states: the forward's y, or yp
  int64_t ldy = 0;
  Buffer<Real> yp;
  Buffer<Real> gates, cells, extra;  // (rows, GH), (rows, H), (rows, H) where the cell needs them
  int64_t ld_gates = 0;              // gates' rows: GH, or a line more (spread_rows)
  Buffer<Real> h0, c0;               // (B, H) in step order, or null
};

template <typename Real>
void saved_cells(const Saved<Real>& s, Real* out, int64_t ldout) {
  const Steps& st = *s.steps;
  const int64_t H = s.plan->H;
  if (!s.cells) throw std::invalid_argument("this pass saved no cell states (only the LSTM's training pass does)");
  for (int64_t step = 0; step < st.S; ++step)
    for (int64_t i = 0; i < st.active(step); ++i)
      copy_units(out + st.user_row(step, i, s.reverse) * ldout, s.cells.get() + (st.base(step, s.reverse) + i) * H, H,
                 sizeof(Real));
}

template <typename Real>
SavedShape<Real> saved_shape(const Saved<Real>& s) {
  return {s.steps->T, s.steps->B, s.I, s.plan->H, s.plan->cell, s.steps.get(),
          s.steps->packed_rows ? s.steps->user_rows() : -1};
}

namespace {

// A job's phase clock: the caller's marks only.
struct Clock {
  PhaseClock clock;
  explicit Clock(bool on) : clock(on) {}
  void mark(const Team& team, Phase phase) {
    if (team.caller()) clock.mark(phase);
  }
};

int call_threads(int64_t total_work) {
  if (!threads_enabled()) return 1;
  return total_work < kMinCallWorkFactor * min_work_per_thread() ? 1 : get_num_threads();
}

// One phase that packs every item of the given plans (forward or backward packing).
template <typename Real>
void run_packing(Team& team, const std::vector<const Plan<Real>*>& plans, int64_t (Plan<Real>::*items)() const,
                 void (Plan<Real>::*pack)(int64_t) const) {
  int64_t total = 0;
  for (const Plan<Real>* p : plans) total += (p->*items)();
  team.phase(total, [&](int64_t item) {
    for (const Plan<Real>* p : plans) {
      const int64_t n = (p->*items)();
      if (item < n) return (p->*pack)(item);
      item -= n;
    }
  });
}

// Run a job that first packs what its plans lack: claim it (waiting for another call that is
// packing them), run, publish.  The claims are released if the job cannot start.
template <typename Real, class JobType>
void run_packing_job(const std::shared_ptr<JobType>& job, std::vector<const Plan<Real>*> plans, bool backward) {
  std::sort(plans.begin(), plans.end());
  plans.erase(std::unique(plans.begin(), plans.end()), plans.end());  // (one plan for two directions)
  for (const Plan<Real>* p : plans)
    if (backward ? p->claim_backward() : p->claim_forward()) job->pack.push_back(p);
  try {
    run_job(job);
  } catch (...) {
    for (const Plan<Real>* p : job->pack) backward ? p->backward_unclaim() : p->forward_unclaim();
    throw;
  }
  for (const Plan<Real>* p : job->pack) backward ? p->backward_packed() : p->forward_packed();
}

// ---- the forward ----------------------------------------------------------------------------------
template <typename Real>
struct ForwardDirection {
  const Plan<Real>* plan;
  bool reverse;
  const Real* x;  // buffer rows of x (training: all; inference packed: the chunk's gathered rows)
  int64_t ldx;
  Real* pre;      // the pre-activations: training all rows, inference the chunk's
  int64_t ld_pre;
  Real* Y;        // the states h: buffer rows, or (inference with lengths) the ring of two
  int64_t ldY;
  Real* C;        // LSTM's c: buffer rows, or (inference) the ring of two
  Real* extra;    // the apart product: buffer rows, or (inference) one (B, H) block
  const Real* h0;
  const Real* c0;
  Real* y;        // the user's y, when Y is not it
  int64_t ldy;
  Real* h_n;
  Real* c_n;
  Real* xp_chunk;  // inference with lengths: the chunk's gathered x
  bool gather_x;   // training with lengths: x is gathered into xp (not when it is the caller's packed rows)
};

template <typename Real>
class ForwardJob final : public Job {
 public:
  ForwardJob(int planned, int step_team, std::shared_ptr<const Steps> steps, bool training, const Real* x,
             int64_t ldx, std::vector<ForwardDirection<Real>> dirs, std::vector<StepItem> items,
             std::vector<Buffer<Real>> owned)
      : Job(planned), step_team_(step_team), steps_(std::move(steps)), training_(training), x_(x), ldx_(ldx),
        dirs_(std::move(dirs)), items_(std::move(items)), owned_(std::move(owned)),
        clock_(profiling_enabled()) {
    const Plan<Real>& p = *dirs_[0].plan;
    ws_ = GemmWorkspace<Real>(*p.k, planned, 1, 1, 1);  // (A is read in place, W_ih^T is prepacked)
  }
  void publish() { clock_.clock.publish(); }

  std::vector<const Plan<Real>*> pack;  // one-call plans this job packs first (see Plan)

  void run(Team& team) override {
    const Steps& st = *steps_;
    const Plan<Real>& p0 = *dirs_[0].plan;
    const KernelTable<Real>& k = *p0.k;
    const int64_t I = p0.I;
    run_packing(team, pack, &Plan<Real>::forward_items, &Plan<Real>::pack_forward);
    clock_.mark(team, Phase::setup);
    // The input projection a chunk (~kChunkRows rows) at a time, right before the chunk's steps.
    // Inference projects into a chunk-sized buffer.  Training projects into the saved array, also a
    // chunk at a time: the steps' products then accumulate onto pre-activations still in cache,
    // where one product over all T x B rows left them in L3 or DRAM (GRU forward at B=64, T=50,
    // H=128: 10% faster; LSTM and tanh unchanged).  Bitwise the same: each row's sum is its own.
    if (training_)
      for (auto& d : dirs_)
        if (d.gather_x) gather(team, d, 0, st.S, const_cast<Real*>(d.x));
    for (int64_t c = 0; c < st.chunks(); ++c) {
      const int64_t s0 = st.chunk_first[size_t(c)], s1 = st.chunk_first[size_t(c + 1)];
      for (auto& d : dirs_) {
        const int64_t row0 = st.chunk_min(c, d.reverse);
        const Real* a = d.x + row0 * d.ldx;
        int64_t lda = d.ldx;
        if (!training_ && st.packed) {
          gather(team, d, s0, s1, d.xp_chunk);
          a = d.xp_chunk, lda = I;
        }
        gemm<Real>(team, k, ws_, st.chunk_rows(c), d.plan->GH, I, MatrixView<Real>{a, lda, 1}, MatrixView<Real>{},
                   training_ ? d.pre + row0 * d.ld_pre : d.pre, d.ld_pre, d.plan->bias.get(), false,
                   &d.plan->w_ih_t);
      }
      clock_.mark(team, Phase::input_gemm);
      for (int64_t s = s0; s < s1; ++s) step(team, s);
    }
  }

 private:
  // x's rows of steps [s0, s1) into packed rows (relative to the first one's).
  void gather(Team& team, const ForwardDirection<Real>& d, int64_t s0, int64_t s1, Real* dst) {
    const Steps& st = *steps_;
    const int64_t I = d.plan->I;
    team.phase(s1 - s0, [&](int64_t item) {
      const int64_t s = s0 + item, base0 = st.start[size_t(s0)];
      for (int64_t i = 0; i < st.active(s); ++i)
        copy_units(dst + (st.start[size_t(s)] + i - base0) * I, x_ + st.user_row(s, i, d.reverse) * ldx_, I,
                   sizeof(Real));
    });
  }

  int64_t pre_row(const ForwardDirection<Real>& d, int64_t s, int64_t i) const {
    const Steps& st = *steps_;
    const int64_t row = st.base(s, d.reverse) + i;
    return training_ ? row : row - st.chunk_min(st.chunk_of[size_t(s)], d.reverse);
  }
  bool ring() const { return !training_ && steps_->packed; }
  int64_t state_row(const ForwardDirection<Real>& d, int64_t s, int64_t i) const {
    return ring() ? (s & 1) * steps_->B + i : steps_->base(s, d.reverse) + i;
  }
  int64_t cell_row(const ForwardDirection<Real>& d, int64_t s, int64_t i) const {
    return training_ ? steps_->base(s, d.reverse) + i : (s & 1) * steps_->B + i;
  }
  int64_t extra_row(const ForwardDirection<Real>& d, int64_t s, int64_t i) const {
    return training_ ? steps_->base(s, d.reverse) + i : i;
  }

  void step(Team& team, int64_t s) {
    team.phase(int64_t(items_.size()), [&](int64_t it) { step_item(team, s, items_[size_t(it)]); }, step_team_);
    clock_.mark(team, Phase::barrier);
  }

  void step_item(Team& team, int64_t s, const StepItem& item) {
    const Steps& st = *steps_;
    const ForwardDirection<Real>& d = dirs_[size_t(item.direction)];
    const Plan<Real>& p = *d.plan;
    const KernelTable<Real>& k = *p.k;
    const CellTraits& ct = p.cell_traits();
    const int64_t H = p.H, nr = k.nr, mr = k.mr;
    const int64_t r0 = item.row_begin, r1 = std::min(item.row_end, st.active(s));
    if (r0 >= r1) return;
    const bool has_prev = s > 0 || d.h0;
    auto h_prev = [&](int64_t i) -> const Real* {
      return s > 0 ? d.Y + state_row(d, s - 1, i) * d.ldY : d.h0 ? d.h0 + i * H : nullptr;
    };
    const int64_t ld_prev = s > 0 ? d.ldY : H;
    const int64_t u_begin = item.block_begin * nr, u_end = std::min(H, item.block_end * nr);
    // The recurrent product of every gate panel of the item's blocks, onto the input projection —
    // except the apart block's (W_hn h + b_hn), kept in extra.  Each panel streams once per step,
    // all row tiles consuming it back to back.
    for (int64_t jb = item.block_begin; jb < item.block_end; ++jb) {
      const int64_t u0 = jb * nr;
      const int n = int(std::min<int64_t>(nr, H - u0));
      for (int g = 0; g < p.G; ++g)
        for (int64_t r = r0; r < r1; r += mr) {
          const int m = int(std::min<int64_t>(mr, r1 - r));
          if (ct.last_gate_apart && g == p.G - 1)
            k.step_tile_rows(m, has_prev ? H : 0, h_prev(r), ld_prev, p.panel(jb, g),
                             d.extra + extra_row(d, s, r) * H + u0, H, p.b_apart ? p.b_apart.get() + u0 : nullptr,
                             false, n);
          else if (has_prev)
            k.step_tile_rows(m, H, h_prev(r), ld_prev, p.panel(jb, g), d.pre + pre_row(d, s, r) * d.ld_pre + g * H + u0,
                             d.ld_pre, nullptr, true, n);
        }
    }
    clock_.mark(team, Phase::recurrent_gemm);
    // Then the cell over the item's units (contiguous) and rows, while they are in cache: one call,
    // as every row map above is a base of the step plus the row (rows of h0 and c0 are H apart).
    const int64_t units = u_end - u_begin;
    const CellKernels<Real>& cell = k.cells[int(p.cell)];
    const Real* hp = h_prev(r0);
    const Real* cp = !d.C ? nullptr : s > 0 ? d.C + cell_row(d, s - 1, r0) * H : d.c0 ? d.c0 + r0 * H : nullptr;
    Real* h = d.Y + state_row(d, s, r0) * d.ldY + u_begin;
    Real* c = d.C ? d.C + cell_row(d, s, r0) * H + u_begin : nullptr;
    cell.forward(p.act, r1 - r0, units, H, {d.pre + pre_row(d, s, r0) * d.ld_pre + u_begin, d.ld_pre},
                 {d.extra ? d.extra + extra_row(d, s, r0) * H + u_begin : nullptr, H},
                 {hp ? hp + u_begin : nullptr, ld_prev}, {cp ? cp + u_begin : nullptr, H}, {h, d.ldY}, {c, H});
    const int64_t next_active = st.active(s + 1);
    for (int64_t i = d.y ? r0 : std::max(r0, next_active); i < r1; ++i) {
      const Real* hi = h + (i - r0) * d.ldY;
      if (d.y) copy_units(d.y + st.user_row(s, i, d.reverse) * d.ldy + u_begin, hi, units, sizeof(Real));
      if (i >= next_active) {  // the row's last step: its final state
        const int64_t b = st.batch_row(i);
        copy_units(d.h_n + b * H + u_begin, hi, units, sizeof(Real));
        if (d.c_n) copy_units(d.c_n + b * H + u_begin, c + (i - r0) * H, units, sizeof(Real));
      }
    }
    clock_.mark(team, Phase::cell);
  }

  int step_team_;
  std::shared_ptr<const Steps> steps_;
  bool training_;
  const Real* x_;
  int64_t ldx_;
  std::vector<ForwardDirection<Real>> dirs_;
  std::vector<StepItem> items_;
  std::vector<Buffer<Real>> owned_;  // inference scratch
  GemmWorkspace<Real> ws_;
  Clock clock_;
};

// ---- the backward ---------------------------------------------------------------------------------
template <typename Real>
struct BackwardDirection {
  const Saved<Real>* saved;
  const Plan<Real>* plan;
  const Real* dy;
  int64_t lddy;
  DirectionBackward<Real> out;
  Real* dh;                 // (B, H) dL/dh carried to the previous step, step order
  Real* dc;                 // (B, H) LSTM
  Real* dpre[2];            // per chunk parity: (chunk rows, GH)
  Real* dextra[2];          // per chunk parity: (chunk rows, H) — the apart product's gradient
  Real* h_prev;             // (chunk rows, H): every row's h_{t-1}, for dW_hh
  Real* dx_chunk;           // with lengths: (chunk rows, I) before the scatter
  Real* dx;                 // where this direction's dx goes: the user's, or (second direction) dx2
  int64_t lddx;
  bool dx_accumulate;
};

template <typename Real>
class BackwardJob final : public Job {
 public:
  BackwardJob(int planned, int step_team, std::shared_ptr<const Steps> steps, std::vector<BackwardDirection<Real>> dirs,
              std::vector<StepItem> items, std::vector<Buffer<Real>> owned, Real* dx, int64_t lddx, const Real* dx2)
      : Job(planned), step_team_(step_team), steps_(std::move(steps)), dirs_(std::move(dirs)), items_(std::move(items)),
        owned_(std::move(owned)), dx_(dx), lddx_(lddx), dx2_(dx2), clock_(profiling_enabled()) {
    const Plan<Real>& p = *dirs_[0].plan;
    const int64_t rows = std::max<int64_t>(1, steps_->max_chunk_rows);
    // (the widest B: dW_ih's and dW_hh's side by side, each in whole panels)
    const int64_t both = (ceil_div(p.I, p.k->nr) + ceil_div(p.H, p.k->nr)) * p.k->nr;
    ws_ = GemmWorkspace<Real>(*p.k, planned, std::max(p.GH, rows), both, std::max(p.GH, rows));
  }
  void publish() { clock_.clock.publish(); }

  std::vector<const Plan<Real>*> pack;  // plans whose backward packing this job does first

  void run(Team& team) override {
    const Steps& st = *steps_;
    const Plan<Real>& p0 = *dirs_[0].plan;
    const KernelTable<Real>& k = *p0.k;
    run_packing(team, pack, &Plan<Real>::backward_items, &Plan<Real>::pack_backward);
    // dW_ih and dW_hh are zeroed by the team, each its share of rows (the first touch of fresh pages).
    for (auto& d : dirs_) {
      const int64_t GH = d.plan->GH, I = d.plan->I, H = d.plan->H;
      team.phase(ceil_div(GH, 64), [&](int64_t item) {
        const int64_t r0 = item * 64, r1 = std::min(GH, r0 + 64);
        std::memset(d.out.dw_ih + r0 * I, 0, size_t((r1 - r0) * I) * sizeof(Real));
        std::memset(d.out.dw_hh + r0 * H, 0, size_t((r1 - r0) * H) * sizeof(Real));
      });
    }
    clock_.mark(team, Phase::setup);
    for (int64_t s = st.S - 1; s >= 0; --s) {
      team.phase(int64_t(items_.size()), [&](int64_t it) { step_item(team, s, items_[size_t(it)]); }, step_team_);
      clock_.mark(team, Phase::barrier);
      const int64_t c = st.chunk_of[size_t(s)];
      if (s == st.chunk_first[size_t(c)])
        for (auto& d : dirs_) reduce_chunk(team, k, d, c);
    }
    // The state before step 0: dh0 = dpre_0 W_hh (+ the direct part), for rows that ran.
    team.phase(int64_t(items_.size()), [&](int64_t it) { step_item(team, -1, items_[size_t(it)]); }, step_team_);
    if (dx2_) {
      const int64_t rows = st.user_rows(), I = p0.I;
      team.phase(ceil_div(rows, 64), [&](int64_t item) {
        for (int64_t r = item * 64; r < std::min(rows, item * 64 + 64); ++r) {
          Real* out = dx_ + r * lddx_;
          const Real* in = dx2_ + r * I;
          for (int64_t j = 0; j < I; ++j) out[j] += in[j];
        }
      });
    }
  }

 private:
  // Step s's item: first dh_s (+)= dpre_{s+1} W_hh for its units and the rows that go on to step
  // s+1; then the cell's backward of step s.  s = -1: the product only, then dh0 (and dc0).
  void step_item(Team& team, int64_t s, const StepItem& item) {
    const Steps& st = *steps_;
    BackwardDirection<Real>& d = dirs_[size_t(item.direction)];
    const Saved<Real>& sv = *d.saved;
    const Plan<Real>& p = *d.plan;
    const KernelTable<Real>& k = *p.k;
    const CellTraits& ct = p.cell_traits();
    const int64_t H = p.H, GH = p.GH, nr = k.nr, mr = k.mr;
    const int64_t u_begin = item.block_begin * nr, u_end = std::min(H, item.block_end * nr), units = u_end - u_begin;
    const int64_t r0 = item.row_begin;
    const int64_t r1 = s >= 0 ? std::min(item.row_end, st.active(s)) : r0;  // the cell's rows (none at s = -1)
    if (s + 1 < st.S) {
      const int64_t n1 = std::min(item.row_end, st.active(s + 1));
      const int64_t c1 = st.chunk_of[size_t(s + 1)];
      const int64_t row0 = st.base(s + 1, sv.reverse) - st.chunk_min(c1, sv.reverse);
      const Real* dpre = d.dpre[c1 & 1] + row0 * GH;
      const Real* dextra = d.dextra[c1 & 1] ? d.dextra[c1 & 1] + row0 * H : nullptr;
      // While the product runs, the rows of step s that the cell reads next: written by the forward
      // long before, they are no longer in cache, and the cell would wait on each in turn.
      RowPrefetch prefetch;
      const int64_t cell_rows = r1 - r0;
      if (ct.prefetch_saved && cell_rows > 0) {
        const int64_t row = st.base(s, sv.reverse) + r0, bytes = units * int64_t(sizeof(Real));
        const int64_t prev = s > 0 ? st.base(s - 1, sv.reverse) + r0 : -1;
        prefetch.add(sv.gates ? sv.gates.get() + row * sv.ld_gates + u_begin : nullptr,
                     sv.ld_gates * int64_t(sizeof(Real)), cell_rows, p.G, H * int64_t(sizeof(Real)), bytes);
        if (prev >= 0) {
          const int64_t h_bytes = H * int64_t(sizeof(Real));
          prefetch.add(sv.cells ? sv.cells.get() + prev * H + u_begin : nullptr, h_bytes, cell_rows, 1, 0, bytes);
          prefetch.add(sv.y + prev * sv.ldy + u_begin, sv.ldy * int64_t(sizeof(Real)), cell_rows, 1, 0, bytes);
        }
      }
      auto tile = [&](int m, int64_t kk, const Real* a, int64_t lda, const Real* b, Real* c, bool accumulate, int n) {
        if (prefetch.count) k.step_tile_rows_prefetching(m, kk, a, lda, b, c, H, nullptr, accumulate, n, prefetch);
        else k.step_tile_rows(m, kk, a, lda, b, c, H, nullptr, accumulate, n);
      };
      for (int64_t jb = item.block_begin; jb < item.block_end; ++jb) {
        const int n = int(std::min<int64_t>(nr, H - jb * nr));
        const Real* panel = p.backward_panel(jb);
        for (int64_t r = r0; r < n1; r += mr) {
          const int m = int(std::min<int64_t>(mr, n1 - r));
          Real* c = d.dh + r * H + jb * nr;
          if (ct.last_gate_apart) {
            tile(m, GH - H, dpre + r * GH, GH, panel, c, ct.direct_dh, n);
            tile(m, H, dextra + r * H, H, panel + (GH - H) * nr, c, true, n);
          } else {
            tile(m, GH, dpre + r * GH, GH, panel, c, ct.direct_dh, n);
          }
        }
      }
    }
    clock_.mark(team, Phase::recurrent_gemm);
    if (s < 0) {
      for (int64_t i = r0; i < item.row_end; ++i) {
        const int64_t b = st.batch_row(i);
        copy_units(d.out.dh0 + b * H + u_begin, d.dh + i * H + u_begin, units, sizeof(Real));
        if (d.dc) copy_units(d.out.dc0 + b * H + u_begin, d.dc + i * H + u_begin, units, sizeof(Real));
      }
      return;
    }
    const int64_t c = st.chunk_of[size_t(s)];
    const int64_t cmin = st.chunk_min(c, sv.reverse);
    const CellKernels<Real>& cell = k.cells[int(p.cell)];
    // The rows [i0, i1) in one call: every array's row is a base of the step plus the position (h0's
    // and c0's H apart) — but dy's, whose rows are the caller's: with lengths those follow the batch
    // order (and packed rows run backwards in reverse), so there each row is a call of its own.
    const bool dy_by_row = d.dy && st.packed && !(st.packed_rows && !sv.reverse);
    auto rows = [&](int64_t i0, int64_t i1) {
      const int64_t row = st.base(s, sv.reverse) + i0;
      const int64_t prev_row = s > 0 ? st.base(s - 1, sv.reverse) + i0 : -1;
      const Real* hp = s > 0 ? sv.y + prev_row * sv.ldy : sv.h0 ? sv.h0.get() + i0 * H : nullptr;
      const int64_t ld_hp = s > 0 ? sv.ldy : H;
      const Real* cp = !sv.cells ? nullptr : s > 0 ? sv.cells.get() + prev_row * H : sv.c0 ? sv.c0.get() + i0 * H : nullptr;
      auto at = [&](const Real* base, int64_t r, int64_t ld) -> Rows<const Real> {
        return {base ? base + r * ld + u_begin : nullptr, ld};
      };
      Real* dextra = d.dextra[c & 1] ? d.dextra[c & 1] + (row - cmin) * H + u_begin : nullptr;
      cell.backward(p.act, i1 - i0, units, H, at(sv.gates.get(), row, sv.ld_gates), at(sv.extra.get(), row, H),
                    at(hp, 0, ld_hp), at(cp, 0, H), at(sv.y, row, sv.ldy), at(sv.cells.get(), row, H),
                    at(d.dy ? d.dy + st.user_row(s, i0, sv.reverse) * d.lddy : nullptr, 0, d.lddy),
                    {d.dh + i0 * H + u_begin, H}, {d.dc ? d.dc + i0 * H + u_begin : nullptr, H},
                    {d.dpre[c & 1] + (row - cmin) * GH + u_begin, GH}, {dextra, H});
      for (int64_t i = i0; i < i1; ++i) {
        Real* keep = d.h_prev + (row + i - i0 - cmin) * H + u_begin;
        if (hp) copy_units(keep, hp + (i - i0) * ld_hp + u_begin, units, sizeof(Real));
        else std::memset(keep, 0, size_t(units) * sizeof(Real));
      }
    };
    if (dy_by_row)
      for (int64_t i = r0; i < r1; ++i) rows(i, i + 1);
    else if (r0 < r1)
      rows(r0, r1);
    clock_.mark(team, Phase::cell);
  }

  // The chunk's reductions over its rows, each one GEMM (DESIGN.md, "Where the time goes").
  void reduce_chunk(Team& team, const KernelTable<Real>& k, BackwardDirection<Real>& d, int64_t c) {
    const Steps& st = *steps_;
    const Saved<Real>& sv = *d.saved;
    const Plan<Real>& p = *d.plan;
    const int64_t H = p.H, GH = p.GH, I = p.I;
    const int64_t rows = st.chunk_rows(c), cmin = st.chunk_min(c, sv.reverse);
    const Real* dpre = d.dpre[c & 1];
    const Real* dextra = d.dextra[c & 1];
    const int64_t hidden_rows = dextra ? GH - H : GH;  // rows of dW_hh whose gradient is dpre's
    // dW_ih += dpre^T x and dW_hh += dpre_hidden^T h_prev, one product reading dpre^T once; the rows
    // of the apart block: dW_ih's from dpre, dW_hh's from dextra.
    const MatrixView<Real> x{sv.x + cmin * sv.ldx, sv.ldx, 1}, h_prev{d.h_prev, H, 1};
    const GemmPart<Real> parts[2] = {{x, I, d.out.dw_ih, I}, {h_prev, H, d.out.dw_hh, H}};
    gemm_parts<Real>(team, k, ws_, hidden_rows, rows, MatrixView<Real>{dpre, 1, GH}, parts, 2, nullptr, true);
    if (dextra) {
      gemm<Real>(team, k, ws_, H, I, rows, MatrixView<Real>{dpre + hidden_rows, 1, GH}, x, d.out.dw_ih + hidden_rows * I,
                 I, nullptr, true);
      gemm<Real>(team, k, ws_, H, H, rows, MatrixView<Real>{dextra, 1, H}, h_prev, d.out.dw_hh + hidden_rows * H, H,
                 nullptr, true);
    }
    // db_ih += column sums of dpre (and the apart block of db_hh, of dextra), rows in order
    team.phase(ceil_div(GH, 64), [&](int64_t item) {
      const int64_t c0 = item * 64, c1 = std::min(GH, c0 + 64);
      for (int64_t row = 0; row < rows; ++row)
        for (int64_t j = c0; j < c1; ++j) d.out.db_ih[j] += dpre[row * GH + j];
      if (dextra)
        for (int64_t row = 0; row < rows; ++row)
          for (int64_t j = std::max(c0, hidden_rows); j < c1; ++j) d.out.db_hh[j] += dextra[row * H + j - hidden_rows];
    });
    clock_.mark(team, Phase::weight_grad_gemm);
    // dx = dpre W_ih for the chunk's rows
    if (!d.dx) {
      // no input gradient wanted
    } else if (!st.packed) {
      gemm<Real>(team, k, ws_, rows, I, GH, MatrixView<Real>{dpre, GH, 1}, MatrixView<Real>{}, d.dx + cmin * d.lddx,
                 d.lddx, nullptr, d.dx_accumulate, &p.w_ih_rows());
    } else {
      gemm<Real>(team, k, ws_, rows, I, GH, MatrixView<Real>{dpre, GH, 1}, MatrixView<Real>{}, d.dx_chunk, I, nullptr,
                 false, &p.w_ih_rows());
      const int64_t s0 = st.chunk_first[size_t(c)], s1 = st.chunk_first[size_t(c + 1)];
      team.phase(s1 - s0, [&](int64_t item) {
        const int64_t s = s0 + item;
        for (int64_t i = 0; i < st.active(s); ++i) {
          const Real* in = d.dx_chunk + (st.start[size_t(s)] + i - cmin) * I;
          Real* out = d.dx + st.user_row(s, i, sv.reverse) * d.lddx;
          if (d.dx_accumulate)
            for (int64_t j = 0; j < I; ++j) out[j] += in[j];
          else
            copy_units(out, in, I, sizeof(Real));
        }
      });
    }
    clock_.mark(team, Phase::dx_gemm);
  }

  int step_team_;
  std::shared_ptr<const Steps> steps_;
  std::vector<BackwardDirection<Real>> dirs_;
  std::vector<StepItem> items_;
  std::vector<Buffer<Real>> owned_;
  Real* dx_;
  int64_t lddx_;
  const Real* dx2_;
  GemmWorkspace<Real> ws_;
  Clock clock_;
};

// Threads for a call: its per-step team (for the time loop) and its whole team (for the all-row
// products, which need not inherit a small per-step team).
struct Teams {
  int whole = 1, step = 1;
};
template <typename Real>
Teams plan_teams(const KernelTable<Real>& k, int directions, int64_t S, int64_t batch, int64_t rows, int64_t GH,
                 int64_t H, int64_t I) {
  const int64_t blocks = ceil_div(H, k.nr), tiles = RowTiles{batch, k.mr}.count();
  const int64_t step_work = directions * batch * GH * H;
  const int64_t total = S * step_work + directions * rows * GH * I;
  const int threads = call_threads(total);
  Teams t;
  t.step = useful_threads(threads, step_work, directions * blocks * tiles);
  const int64_t gemm_work = std::min<int64_t>(rows, k.mc) * std::min<int64_t>(GH, k.nc) * std::min<int64_t>(I, k.kc);
  t.whole = std::max(t.step, useful_threads(threads, gemm_work, ceil_div(rows, k.mr) * ceil_div(GH, k.nr)));
  return t;
}

}  // namespace

template <typename Real>
void sequence_forward(int64_t T, int64_t B, int64_t I, const Real* x, int64_t ldx, const int64_t* lengths,
                      bool training, DirectionForward<Real>* dirs, int D, bool packed_rows) {
  const Plan<Real>& p0 = *dirs[0].plan;
  const KernelTable<Real>& k = *p0.k;
  const CellTraits& ct = p0.cell_traits();
  const int64_t H = p0.H, GH = p0.GH;
  auto steps = std::make_shared<const Steps>(T, B, lengths, packed_rows);
  const Steps& st = *steps;
  const bool lstm = ct.states == 2;
  const bool trivial = B == 0 || H == 0;

  std::vector<Buffer<Real>> owned;
  size_t scratch_bytes = 0;  // beyond the outputs and what is saved for the backward
  std::vector<ForwardDirection<Real>> fd(static_cast<size_t>(D));
  for (int di = 0; di < D; ++di) {
    DirectionForward<Real>& in = dirs[di];
    const Plan<Real>& p = *in.plan;
    ForwardDirection<Real>& d = fd[size_t(di)];
    d = ForwardDirection<Real>{};
    d.plan = &p, d.reverse = in.reverse, d.h_n = in.h_n, d.c_n = lstm ? in.c_n : nullptr;
    std::shared_ptr<Saved<Real>> saved;
    if (training) {
      saved = std::make_shared<Saved<Real>>();
      saved->plan = in.plan, saved->steps = steps, saved->reverse = in.reverse, saved->I = I;
    }
    // The initial states, in step order (null: zeros).
    Buffer<Real> h0, c0;
    if (in.h0 && !trivial) {
      h0 = allocate<Real>(B * H);
      for (int64_t i = 0; i < B; ++i) copy_units(h0.get() + i * H, in.h0 + st.batch_row(i) * H, H, sizeof(Real));
    }
    if (lstm && in.c0 && !trivial) {
      c0 = allocate<Real>(B * H);
      for (int64_t i = 0; i < B; ++i) copy_units(c0.get() + i * H, in.c0 + st.batch_row(i) * H, H, sizeof(Real));
    }
    d.h0 = h0.get(), d.c0 = c0.get();
    // Rows that never run (length 0, or T = 0): their final state is the initial one.
    for (int64_t i = st.active(0); i < B && !trivial; ++i) {
      const int64_t b = st.batch_row(i);
      for (int64_t j = 0; j < H; ++j) in.h_n[b * H + j] = d.h0 ? d.h0[i * H + j] : Real(0);
      if (lstm)
        for (int64_t j = 0; j < H; ++j) in.c_n[b * H + j] = d.c0 ? d.c0[i * H + j] : Real(0);
    }
    // Padding of y is 0.
    st.for_each_padding([&](int64_t row) { std::memset(in.y + row * in.ldy, 0, size_t(H) * sizeof(Real)); });

    const int64_t rows = st.rows();
    if (training) {
      // The caller's x and y are the buffer rows themselves without lengths, and for the forward
      // direction of packed rows; otherwise x is gathered into packed rows and y copied out of them.
      if (st.packed && !(st.packed_rows && !in.reverse)) {
        saved->xp = allocate<Real>(rows * I);
        saved->x = saved->xp.get(), saved->ldx = I;
        saved->yp = allocate<Real>(rows * H);
        saved->y = saved->yp.get(), saved->ldy = H;
        d.Y = saved->yp.get(), d.ldY = H, d.y = in.y, d.ldy = in.ldy;
        d.gather_x = true;
      } else {
        saved->x = x, saved->ldx = ldx;
        saved->y = in.y, saved->ldy = in.ldy;
        d.Y = in.y, d.ldY = in.ldy;
      }
      d.x = saved->x, d.ldx = saved->ldx;
      saved->ld_gates = spread_rows(GH, sizeof(Real));
      if (ct.saves_gates) saved->gates = allocate<Real>(rows * saved->ld_gates);
      if (lstm) saved->cells = allocate<Real>(rows * H);
      if (ct.last_gate_apart) saved->extra = allocate<Real>(rows * H);
      d.pre = ct.saves_gates ? saved->gates.get() : d.Y;
      d.ld_pre = ct.saves_gates ? saved->ld_gates : d.ldY;
      d.C = saved->cells.get(), d.extra = saved->extra.get();
      saved->h0 = std::move(h0), saved->c0 = std::move(c0);
      in.saved = saved;
    } else {
      scratch_bytes += size_t((h0 ? B * H : 0) + (c0 ? B * H : 0)) * sizeof(Real);
      owned.push_back(std::move(h0));
      owned.push_back(std::move(c0));
      const int64_t chunk = std::max<int64_t>(1, st.max_chunk_rows);
      auto take = [&](int64_t n) {
        scratch_bytes += size_t(n) * sizeof(Real);
        owned.push_back(allocate<Real>(n));
        return owned.back().get();
      };
      d.x = x, d.ldx = ldx;
      if (st.packed) {
        d.xp_chunk = take(chunk * I);
        d.Y = take(2 * B * H), d.ldY = H, d.y = in.y, d.ldy = in.ldy;
      } else {
        d.Y = in.y, d.ldY = in.ldy;
      }
      d.pre = take(chunk * GH), d.ld_pre = GH;
      if (lstm) d.C = take(2 * B * H);
      if (ct.last_gate_apart) d.extra = take(B * H);
    }
  }
  record_scratch_bytes(scratch_bytes);
  if (trivial || st.S == 0) return;
  const Teams teams = plan_teams(k, D, st.S, B, training ? st.rows() : st.max_chunk_rows, GH, H, I);
  auto items = step_items(teams.step, D, B, H, k.nr, k.mr);
  auto job = std::make_shared<ForwardJob<Real>>(teams.whole, teams.step, steps, training, x, ldx, std::move(fd),
                                                std::move(items), std::move(owned));
  std::vector<const Plan<Real>*> plans;
  for (int di = 0; di < D; ++di) {
    plans.push_back(dirs[di].plan.get());
    job->keep_alive.push_back(dirs[di].plan);
  }
  run_packing_job<Real>(job, plans, false);
  job->publish();
}

template <typename Real>
void sequence_backward(DirectionBackward<Real>* dirs, int D, Real* dx, int64_t lddx, bool dx_accumulate) {
  const Saved<Real>& s0 = *dirs[0].saved;
  const Plan<Real>& p0 = *s0.plan;
  const KernelTable<Real>& k = *p0.k;
  const Steps& st = *s0.steps;
  const CellTraits& ct = p0.cell_traits();
  const int64_t B = st.B, I = s0.I, H = p0.H, GH = p0.GH;
  const bool lstm = ct.states == 2;
  for (int di = 0; di < D; ++di) {
    const DirectionBackward<Real>& o = dirs[di];
    std::memset(o.db_ih, 0, size_t(GH) * sizeof(Real));
    if (o.db_hh != o.db_ih) std::memset(o.db_hh, 0, size_t(GH) * sizeof(Real));
  }
  // dx at padding (and everywhere when no step runs) is 0, unless it is added to.  (dx null: the
  // caller wants no input gradient, and its products are skipped.)
  if (dx && !dx_accumulate) {
    if (st.S == 0 || H == 0) {
      for (int64_t r = 0; r < st.user_rows(); ++r) std::memset(dx + r * lddx, 0, size_t(I) * sizeof(Real));
    } else {
      st.for_each_padding([&](int64_t row) { std::memset(dx + row * lddx, 0, size_t(I) * sizeof(Real)); });
    }
  }
  if (B == 0 || H == 0 || st.S == 0) {
    for (int di = 0; di < D; ++di) {
      const DirectionBackward<Real>& o = dirs[di];
      std::memset(o.dw_ih, 0, size_t(GH * I) * sizeof(Real));
      std::memset(o.dw_hh, 0, size_t(GH * H) * sizeof(Real));
      for (int64_t i = 0; i < B * H; ++i) o.dh0[i] = o.dh_n ? o.dh_n[i] : Real(0);
      if (lstm)
        for (int64_t i = 0; i < B * H; ++i) o.dc0[i] = o.dc_n ? o.dc_n[i] : Real(0);
    }
    return;
  }
  std::vector<Buffer<Real>> owned;
  size_t scratch_bytes = 0;
  auto take = [&](int64_t n) {
    scratch_bytes += size_t(n) * sizeof(Real);
    owned.push_back(allocate<Real>(n));
    return owned.back().get();
  };
  const int64_t chunk = std::max<int64_t>(1, st.max_chunk_rows);
  Real* dx2 = nullptr;
  if (D == 2 && dx) {  // the second direction's dx, added at the end (a fixed order of additions)
    dx2 = take(st.user_rows() * I);
    st.for_each_padding([&](int64_t row) { std::memset(dx2 + row * I, 0, size_t(I) * sizeof(Real)); });
  }
  std::vector<BackwardDirection<Real>> bd(static_cast<size_t>(D));
  for (int di = 0; di < D; ++di) {
    const DirectionBackward<Real>& o = dirs[di];
    BackwardDirection<Real>& d = bd[size_t(di)];
    d = BackwardDirection<Real>{};
    d.saved = o.saved.get(), d.plan = o.saved->plan.get(), d.out = o;
    d.dy = o.dy, d.lddy = o.lddy;
    d.dh = take(B * H);
    for (int64_t i = 0; i < B; ++i) {
      const int64_t b = st.batch_row(i);
      for (int64_t j = 0; j < H; ++j) d.dh[i * H + j] = o.dh_n ? o.dh_n[b * H + j] : Real(0);
    }
    if (lstm) {
      d.dc = take(B * H);
      for (int64_t i = 0; i < B; ++i) {
        const int64_t b = st.batch_row(i);
        for (int64_t j = 0; j < H; ++j) d.dc[i * H + j] = o.dc_n ? o.dc_n[b * H + j] : Real(0);
      }
    }
    for (int parity = 0; parity < 2; ++parity) {
      d.dpre[parity] = take(chunk * GH);
      d.dextra[parity] = ct.last_gate_apart ? take(chunk * H) : nullptr;
    }
    d.h_prev = take(chunk * H);
    d.dx_chunk = st.packed && dx ? take(chunk * I) : nullptr;
    if (di == 0) d.dx = dx, d.lddx = lddx, d.dx_accumulate = dx_accumulate;
    else d.dx = dx2, d.lddx = I, d.dx_accumulate = false;
  }
  record_scratch_bytes(scratch_bytes);
  const Teams teams = plan_teams(k, D, st.S, B, chunk, GH, H, std::max(I, H));
  auto items = step_items(teams.step, D, B, H, k.nr, k.mr);
  auto job = std::make_shared<BackwardJob<Real>>(teams.whole, teams.step, s0.steps, std::move(bd), std::move(items),
                                                 std::move(owned), dx, lddx, dx2);
  std::vector<const Plan<Real>*> plans;
  for (int di = 0; di < D; ++di) {
    plans.push_back(dirs[di].saved->plan.get());
    job->keep_alive.push_back(dirs[di].saved);  // (which holds its plan)
  }
  run_packing_job<Real>(job, plans, true);
  job->publish();
  // Both biases enter every pre-activation the same way, except the apart block.  (A caller that
  // wants one db may pass the same array for both.)
  for (int di = 0; di < D; ++di) {
    const DirectionBackward<Real>& o = dirs[di];
    if (o.db_hh != o.db_ih) std::memcpy(o.db_hh, o.db_ih, size_t(ct.last_gate_apart ? GH - H : GH) * sizeof(Real));
  }
}

template <typename Real>
std::array<int64_t, 3> step_plan(int64_t batch, int64_t hidden, int gates) {
  const KernelTable<Real>& k = active_kernels<Real>();
  const int64_t blocks = ceil_div(hidden, k.nr);
  const RowTiles tiles{batch, k.mr};
  const int threads = threads_enabled() ? useful_threads(get_num_threads(), batch * gates * hidden * hidden, blocks * tiles.count()) : 1;
  const StepPlan plan(threads, blocks, tiles);
  return {threads, plan.block_groups, plan.row_groups};
}

#define RNNKIT_INSTANTIATE_RECURRENCE(Real)                                                                     \
  template std::shared_ptr<const Plan<Real>> make_plan<Real>(Cell, Activation, int64_t, int64_t, const Real*, \
                                                             const Real*, const Real*, const Real*, bool);    \
  template std::string plan_isa<Real>(const Plan<Real>&);                                                     \
  template SavedShape<Real> saved_shape<Real>(const Saved<Real>&);                                            \
  template void saved_cells<Real>(const Saved<Real>&, Real*, int64_t);                                        \
  template void sequence_forward<Real>(int64_t, int64_t, int64_t, const Real*, int64_t, const int64_t*, bool, \
                                       DirectionForward<Real>*, int, bool);                                   \
  template void sequence_backward<Real>(DirectionBackward<Real>*, int, Real*, int64_t, bool);                 \
  template std::array<int64_t, 3> step_plan<Real>(int64_t, int64_t, int);                                     \
  template std::shared_ptr<const StepStack<Real>> make_step_stack<Real>(                                      \
      const std::vector<std::shared_ptr<const Plan<Real>>>&);                                                 \
  template int64_t step_stack_scratch<Real>(const StepStack<Real>&, int64_t);                                 \
  template int step_stack_threads<Real>(const StepStack<Real>&, int64_t);                                      \
  template void step_stack<Real>(const std::shared_ptr<const StepStack<Real>>&, int64_t, const Real*, int64_t, \
                                 Real* const*, Real* const*, Real*, int64_t, Real*, int);
RNNKIT_INSTANTIATE_RECURRENCE(float)
RNNKIT_INSTANTIATE_RECURRENCE(double)

}  // namespace rnnkit
