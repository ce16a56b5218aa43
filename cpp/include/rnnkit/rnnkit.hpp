// rnnkit — C++ kernel entry points.
//
// Legend: T = timesteps, B = batch, I = input features, H = hidden units, G = gates (1 for the
// vanilla cell).  All matrices are row-major; a "row stride" (ld*) is the distance, in elements,
// between consecutive rows of the (T*B, features) view of a time-major (T, B, features) array, so a
// caller may pass a slice of a wider array (the reverse half of a bidirectional output, say).
//
// The functions below assume valid, non-overlapping input: python/rnnkit/functional.py and the
// bindings validate every argument before calling them.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace rnnkit {

enum class Activation { tanh, relu };

// Parse "tanh" / "relu"; throws std::invalid_argument naming the bad value.
Activation parse_activation(const std::string& name);

// ---- dispatch (cpp/src/dispatch.cpp) ------------------------------------------------------------
// The SIMD path is chosen once, on first use: RNNKIT_ISA if set, else the best this CPU supports.
std::string active_isa();                        // "avx512", "avx2" or "scalar"
void set_active_isa(const std::string& name);    // throws std::invalid_argument if unknown/unsupported
std::vector<std::string> supported_isas();       // those this build *and* this CPU can run
std::vector<std::string> compiled_isas();        // those this build contains
// The pure decision behind the two functions above, exposed so that its refusals are testable on
// any machine: returns the ISA to use for `requested` ("" = best available) or throws.
std::string select_isa(const std::string& requested, bool cpu_has_avx2, bool cpu_has_avx512);

// ---- threads (cpp/src/threads.cpp) --------------------------------------------------------------
constexpr int kMaxThreads = 1024;
void set_num_threads(int n);                     // 1 <= n <= kMaxThreads, else std::invalid_argument
int get_num_threads();
bool threads_enabled();                          // false in a build with RNNKIT_THREADS=OFF

// ---- recurrent layers: one or two directions over a whole sequence -------------------------------
// PyTorch's equations and weight layout (DESIGN.md):
//   vanilla  h_t = act(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)                      G = 1
//   lstm     gate blocks [i | f | g | o];  c_t = f c_{t-1} + i g;  h_t = o tanh(c_t)  G = 4
//   gru      gate blocks [r | z | n];  n = tanh(W_in x + b_in + r (W_hn h + b_hn));
//            h_t = (1 - z) n + z h_{t-1}                                           G = 3
// The cells' traits (gate count, states, what they save) are in src/cells.hpp.
enum class Cell { vanilla, lstm, gru };
constexpr int kCellKinds = 3;

// A plan: one cell's weights, copied and packed once (W_hh in the recurrent product's panels, W_ih^T
// in the input projection's), the fused bias and the schedule's constants.  Calls with a plan do no
// packing.  Its weights are a snapshot: changing the arrays it was made from changes nothing —
// unless it borrows them (borrow = true: no copy; the arrays must outlive the plan and its saved
// passes, and what they hold at the backward is what the backward uses: the functional API's
// one-call plans, whose caches keep the arrays).
template <typename Real> class Plan;
// What a training forward keeps for its backward (opaque; it refers to the forward's x and y).
template <typename Real> class Saved;

template <typename Real>
std::shared_ptr<const Plan<Real>> make_plan(Cell cell, Activation act, int64_t input, int64_t hidden,
                                            const Real* w_ih /*(G*H, I)*/, const Real* w_hh /*(G*H, H)*/,
                                            const Real* b_ih /*(G*H,) or null*/, const Real* b_hh /*or null*/,
                                            bool borrow = false);
template <typename Real> std::string plan_isa(const Plan<Real>& plan);

// lengths (B,), or null for all T: row b runs steps 0 .. lengths[b]-1 (torch's packed sequences);
// y is 0 at t >= lengths[b] and h_n[b] is the state after the row's last real step (h0[b] when its
// length is 0).  reverse: each row runs from its own last real step down to step 0, y keeping the
// input's time order.  Two directions run at once, in one team.
template <typename Real>
struct DirectionForward {
  std::shared_ptr<const Plan<Real>> plan;
  bool reverse = false;
  const Real* h0 = nullptr;  // IN  (B, H) or null for zeros
  const Real* c0 = nullptr;  // IN  (B, H) or null — LSTM
  Real* y = nullptr;         // OUT (T, B, H), row stride ldy: every h_t
  int64_t ldy = 0;
  Real* h_n = nullptr;       // OUT (B, H)
  Real* c_n = nullptr;       // OUT (B, H) — LSTM
  std::shared_ptr<const Saved<Real>> saved;  // OUT: what the backward needs (training only)
};
// x: IN (T, B, I), row stride ldx.  training = false: nothing is saved, and the scratch does not
// grow with T (the input projection runs a chunk of steps at a time).
// packed_rows: x, every y, and the backward's dy and dx hold only the real rows, in torch's
// PackedSequence order — step t's rows one after another, row b of it at (sum of the batch sizes of
// the steps before t) + b — with lengths non-increasing (the rows sorted longest first; the caller
// checks).  No padding is read or written, and the forward direction's training pass keeps the
// caller's x and y instead of copies.
template <typename Real>
void sequence_forward(int64_t steps, int64_t batch, int64_t input, const Real* x, int64_t ldx,
                      const int64_t* lengths, bool training, DirectionForward<Real>* dirs, int directions,
                      bool packed_rows = false);

// Gradients of sum(y * dy) + sum(h_n * dh_n) [+ sum(c_n * dc_n)] with respect to everything the
// forward read.  dy at padding is ignored.  Overwrites dh0, dc0, dw_ih, dw_hh, db_ih, db_hh; dx is
// overwritten (0 at padding), or added to when dx_accumulate.  The directions' dx are summed.
template <typename Real>
struct DirectionBackward {
  std::shared_ptr<const Saved<Real>> saved;
  const Real* dy = nullptr;    // IN  (T, B, H), row stride lddy, or null for zeros
  int64_t lddy = 0;
  const Real* dh_n = nullptr;  // IN  (B, H) or null
  const Real* dc_n = nullptr;  // IN  (B, H) or null — LSTM
  Real* dh0 = nullptr;         // OUT (B, H)
  Real* dc0 = nullptr;         // OUT (B, H) — LSTM
  Real* dw_ih = nullptr;       // OUT (G*H, I)
  Real* dw_hh = nullptr;       // OUT (G*H, H)
  Real* db_ih = nullptr;       // OUT (G*H,)
  Real* db_hh = nullptr;       // OUT (G*H,) — equal to db_ih except for the GRU's n block
};
template <typename Real>
// dx null: no input gradient (its products are skipped).
void sequence_backward(DirectionBackward<Real>* dirs, int directions, Real* dx /*(T, B, I)*/, int64_t lddx,
                       bool dx_accumulate);
// An LSTM training pass's every c_t into out (T, B, H), row stride ldout, in the input's time order;
// the padding is left as it is (the caller zeroes it).
template <typename Real> void saved_cells(const Saved<Real>& saved, Real* out, int64_t ldout);
// Facts of a Saved, for the bindings' checks.
template <typename Real> struct SavedShape {
  int64_t steps, batch, input, hidden;
  Cell cell;
  const void* sequence;
  int64_t packed_rows;  // -1: (T, B, .) arrays; else the forward's packed_rows count of rows
};
template <typename Real> SavedShape<Real> saved_shape(const Saved<Real>& saved);

// Streaming: a stack of unidirectional layers (layer l's h is layer l+1's x) stepped one timestep at a
// time, with no allocation per step but, when it takes helpers, its job.  Made from plans (the stack
// keeps them) and W_ih^T in the recurrent product's panel layout, so that each step is the register
// tiles of the whole-sequence forward: its results equal that forward's to rounding (the input
// projection's sum runs over I in one go, where the GEMM's runs in slices of the ISA's kc), and they
// are the same for every number of threads.
template <typename Real> class StepStack;
template <typename Real>
std::shared_ptr<const StepStack<Real>> make_step_stack(const std::vector<std::shared_ptr<const Plan<Real>>>& plans);
// Scratch the step needs for `batch` rows (elements of Real).
template <typename Real> int64_t step_stack_scratch(const StepStack<Real>& stack, int64_t batch);
// How many threads a step of `batch` rows should take (the calling thread and helpers of the pool,
// each a share of every layer's units, one barrier per layer): 1 unless a layer's step is large.
template <typename Real> int step_stack_threads(const StepStack<Real>& stack, int64_t batch);
// One step: x IN (B, I0) row stride ldx; h[l], c[l] IN/OUT (B, H) each layer's state (c: LSTM only,
// else null); top OUT (B, H) row stride ldtop, the last layer's new h (may be null); `threads` as
// step_stack_threads says (or 1).
template <typename Real>
void step_stack(const std::shared_ptr<const StepStack<Real>>& stack, int64_t batch, const Real* x, int64_t ldx,
                Real* const* h, Real* const* c, Real* top, int64_t ldtop, Real* scratch, int threads);

// How the per-step work of a (batch x hidden) cell of `gates` gates would be shared on the active
// ISA: {threads, block groups, row groups} (for tests).
template <typename Real> std::array<int64_t, 3> step_plan(int64_t batch, int64_t hidden, int gates);

// ---- the GEMM the kernels use for their all-timestep products ------------------------------------
// c (M x N) = a (M x K) * b (K x N), all row-major and contiguous; run by get_num_threads() threads.
template <typename Real> void matmul(int64_t M, int64_t N, int64_t K, const Real* a, const Real* b, Real* c);

// ---- vectorised math, as the kernels use it (for tests and error measurements) -----------------
enum class MathFunction { exp, tanh, sigmoid };
template <typename Real> void vector_math(MathFunction f, const Real* x, Real* y, int64_t n);

}  // namespace rnnkit
