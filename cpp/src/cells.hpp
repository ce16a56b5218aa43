// The cells as the one time loop (recurrence.cpp) sees them: a row of portable traits each, and the
// uniform signatures of their pointwise forward and backward (implemented per ISA in
// src/isa/kernels.inl).  Adding a cell: an enumerator in rnnkit.hpp, a row in kCellTraits, its two
// pointwise functions and their line in make_table, and its reference in python/rnnkit/reference.py.
//
// Legend: T = timesteps, B = batch, I = input, H = hidden, G = gates, GH = G*H.
#pragma once

#include <cstdint>

#include "rnnkit/rnnkit.hpp"

namespace rnnkit {

struct CellTraits {
  const char* name;
  int gates;          // G: blocks of H rows in w_ih / w_hh
  int states;         // 1: h;  2: (h, c)
  // The last gate block's recurrent product (+ b_hh's block) is kept apart from the pre-activation
  // and handed to the cell as `extra` (the GRU's W_hn h + b_hn, which the reset gate multiplies);
  // it is saved for the backward, whose gradient of it is `dextra`.
  bool last_gate_apart;
  // The forward's pre-activations are saved (LSTM, GRU: as activations), else not (vanilla: the
  // backward reads act' from h).
  bool saves_gates;
  // The backward's pointwise part writes the direct part of dL/dh_{t-1} into dh (the GRU's dh * z),
  // to which the driver adds dpre W_hh; otherwise the driver overwrites dh with that product.
  bool direct_dh;
  // The backward's recurrent product asks for the saved rows its step's cell reads next (gates,
  // c_{t-1}, h_{t-1}), a line every few FMAs, instead of the cell waiting on each in turn.  Chosen
  // by measurement (Zen 4, T=50 B=64 H=128, BENCHMARKS.md): the LSTM's backward is 4-7% faster on
  // AVX-512 and 0-3% on AVX2; the GRU's and the vanilla cell's are not faster (within noise).
  bool prefetch_saved;
};

constexpr CellTraits kCellTraits[kCellKinds] = {
    // name      G  S  last_apart saves  direct_dh prefetch_saved
    {"vanilla", 1, 1, false, false, false, false},
    {"lstm", 4, 2, false, true, false, true},
    {"gru", 3, 1, true, true, true, false},
};
constexpr const CellTraits& traits(Cell cell) { return kCellTraits[int(cell)]; }

// Rows of one of a step's arrays: row r at p + r * ld (p null: the array is absent, read as zeros).
template <typename Real>
struct Rows {
  Real* p;
  int64_t ld;
  Real* row(int64_t r) const { return p ? p + r * ld : nullptr; }
};

template <typename Real>
struct CellKernels {
  // `rows` rows of n units each; per row: pre IN the pre-activations of the G gate blocks, gate k of
  // unit j at pre[k * gate_stride + j]; OUT what the backward reads back (the activations) — or the
  // vanilla cell's h itself (pre may alias h).  extra: IN the apart product (or absent).  h_prev,
  // c_prev: IN the previous state (absent: zeros).  h, c: OUT this step's state (c: LSTM only).
  // One call for all of an item's rows: the constants stay in registers and the rows' dependent
  // chains overlap (a call per row of 32 units made the forward 9-11% and the backward 5-14% slower
  // at B=64, H=128 on AVX-512: BENCHMARKS.md).
  void (*forward)(Activation act, int64_t rows, int64_t n, int64_t gate_stride, Rows<Real> pre,
                  Rows<const Real> extra, Rows<const Real> h_prev, Rows<const Real> c_prev, Rows<Real> h,
                  Rows<Real> c);
  // The same rows backwards; per row: gates, extra, h_prev, c_prev, h, c: IN as the forward saved or
  // wrote them.  dy: IN the output's gradient (or absent).  dh: IN dL/dh_t carried from step t+1 (OUT
  // the direct part, direct_dh cells).  dc: IN dL/dc_t, OUT dL/dc_{t-1} (LSTM).  dpre: OUT the
  // gradient of the input-side pre-activations (gate_stride apart).  dextra: OUT the gradient of the
  // apart product.
  void (*backward)(Activation act, int64_t rows, int64_t n, int64_t gate_stride, Rows<const Real> gates,
                   Rows<const Real> extra, Rows<const Real> h_prev, Rows<const Real> c_prev, Rows<const Real> h,
                   Rows<const Real> c, Rows<const Real> dy, Rows<Real> dh, Rows<Real> dc, Rows<Real> dpre,
                   Rows<Real> dextra);
};

}  // namespace rnnkit
