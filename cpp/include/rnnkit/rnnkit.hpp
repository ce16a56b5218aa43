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
bool openmp_enabled();

// ---- recurrent layers: one direction over a whole sequence ---------------------------------------
// PyTorch's equations and weight layout (DESIGN.md):
//   vanilla  h_t = act(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)                      G = 1
//   lstm     gate blocks [i | f | g | o];  c_t = f c_{t-1} + i g;  h_t = o tanh(c_t)  G = 4
//   gru      gate blocks [r | z | n];  n = tanh(W_in x + b_in + r (W_hn h + b_hn));
//            h_t = (1 - z) n + z h_{t-1}                                           G = 3
// With reverse = true the recurrence runs from t = T-1 down to 0 (the reverse direction of a
// bidirectional layer) while x and y keep their time order: no copies of the sequence are made.
enum class Cell { vanilla, lstm, gru };
constexpr int gate_count(Cell cell) { return cell == Cell::lstm ? 4 : cell == Cell::gru ? 3 : 1; }

template <typename Real>
struct ForwardArgs {
  Cell cell = Cell::vanilla;
  Activation act = Activation::tanh;  // vanilla only
  int64_t steps = 0, batch = 0, input = 0, hidden = 0;
  bool reverse = false;
  const Real* x = nullptr;     // IN  (T, B, I), row stride ldx
  int64_t ldx = 0;
  const Real* h0 = nullptr;    // IN  (B, H) contiguous, or nullptr for zeros
  const Real* c0 = nullptr;    // IN  (B, H) or nullptr for zeros — LSTM only
  const Real* w_ih = nullptr;  // IN  (G*H, I) contiguous
  const Real* w_hh = nullptr;  // IN  (G*H, H) contiguous
  const Real* b_ih = nullptr;  // IN  (G*H,) or nullptr
  const Real* b_hh = nullptr;  // IN  (G*H,) or nullptr
  Real* y = nullptr;           // OUT (T, B, H), row stride ldy: every h_t
  int64_t ldy = 0;
  Real* h_n = nullptr;         // OUT (B, H): the last state (h0 when T = 0)
  Real* c_n = nullptr;         // OUT (B, H) — LSTM only
  // Saved for the backward pass: what it cannot recompute cheaply.
  Real* gates = nullptr;       // OUT (T, B, G*H) — LSTM, GRU: the gate activations
  Real* cells = nullptr;       // OUT (T, B, H)   — LSTM: every c_t
  Real* hidden_n = nullptr;    // OUT (T, B, H)   — GRU: every W_hn h_{t-1} + b_hn
};

// Gradients of sum(y * dy) + sum(h_n * dh_n) [+ sum(c_n * dc_n)] with respect to everything the
// forward read.  Overwrites dh0, dc0, dw_ih, dw_hh, db_ih, db_hh; overwrites dx, or adds to it when
// dx_accumulate is set (the two directions of a bidirectional layer share one dx).  The IN arrays are
// the forward's, unchanged.
template <typename Real>
struct BackwardArgs {
  Cell cell = Cell::vanilla;
  Activation act = Activation::tanh;
  int64_t steps = 0, batch = 0, input = 0, hidden = 0;
  bool reverse = false;
  const Real* x = nullptr;         // IN  (T, B, I), row stride ldx
  int64_t ldx = 0;
  const Real* h0 = nullptr;        // IN  (B, H) or nullptr
  const Real* c0 = nullptr;        // IN  (B, H) or nullptr — LSTM
  const Real* w_ih = nullptr;      // IN  (G*H, I)
  const Real* w_hh = nullptr;      // IN  (G*H, H)
  const Real* y = nullptr;         // IN  (T, B, H), row stride ldy
  int64_t ldy = 0;
  const Real* gates = nullptr;     // IN  (T, B, G*H) — LSTM, GRU
  const Real* cells = nullptr;     // IN  (T, B, H) — LSTM
  const Real* hidden_n = nullptr;  // IN  (T, B, H) — GRU
  const Real* dy = nullptr;        // IN  (T, B, H), row stride lddy, or nullptr for zeros
  int64_t lddy = 0;
  const Real* dh_n = nullptr;      // IN  (B, H) or nullptr for zeros
  const Real* dc_n = nullptr;      // IN  (B, H) or nullptr for zeros — LSTM
  Real* dx = nullptr;              // OUT (T, B, I), row stride lddx
  int64_t lddx = 0;
  bool dx_accumulate = false;
  Real* dh0 = nullptr;             // OUT (B, H)
  Real* dc0 = nullptr;             // OUT (B, H) — LSTM
  Real* dw_ih = nullptr;           // OUT (G*H, I)
  Real* dw_hh = nullptr;           // OUT (G*H, H)
  Real* db_ih = nullptr;           // OUT (G*H,)
  Real* db_hh = nullptr;           // OUT (G*H,) — equal to db_ih except for the GRU's n block
};

template <typename Real> void sequence_forward(const ForwardArgs<Real>& args);
template <typename Real> void sequence_backward(const BackwardArgs<Real>& args);
// How both passes would share the per-step work of a (batch x hidden) cell of `gates` gates on the
// active ISA: {threads, block groups, row groups} (StepPlan in recurrence.cpp; for tests).
template <typename Real> std::array<int64_t, 3> step_plan(int64_t batch, int64_t hidden, int gates);

// ---- the GEMM the kernels use for their all-timestep products ------------------------------------
// c (M x N) = a (M x K) * b (K x N), all row-major and contiguous; run by get_num_threads() threads.
template <typename Real> void matmul(int64_t M, int64_t N, int64_t K, const Real* a, const Real* b, Real* c);

// ---- vectorised math, as the kernels use it (for tests and error measurements) -----------------
enum class MathFunction { exp, tanh, sigmoid };
template <typename Real> void vector_math(MathFunction f, const Real* x, Real* y, int64_t n);

}  // namespace rnnkit
