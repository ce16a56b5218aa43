// The kernels of one instruction set, written once against a SIMD wrapper `S`.
//
// Include this file ONLY from a translation unit in src/isa/, after defining RNNKIT_ISA_NS and the
// wrappers: it is compiled once per ISA with that ISA's flags, and everything in it lives in the
// ISA's own namespace so that no inline function or template instance compiled with, say, AVX-512
// can be picked by the linker for the portable path.  It uses nothing from the C++ standard library
// for the same reason.
//
// A wrapper S provides, for one scalar type T and a vector V of S::N lanes (mask type M):
//   zero, set1, load, store, load_n / store_n (first n lanes, the others zero / untouched),
//   add, sub, mul, div, fmadd(a, b, c) = a*b + c, fnmadd(a, b, c) = c - a*b, min, max, abs,
//   lt(a, b) (ordered: false when either is NaN), isnan, select(m, a, b) = m ? a : b,
//   round (to nearest, ties to even), pow2n(n) = 2^n for integral n within the normal exponent
//   range, copysign(magnitude, sign).
//
// Legend: T = timesteps, B = batch, I = input, H = hidden, MR x NR = register tile.

#ifndef RNNKIT_ISA_NS
#error "define RNNKIT_ISA_NS before including kernels.inl"
#endif

namespace rnnkit {
namespace RNNKIT_ISA_NS {

// ---- vectorised exp, tanh, sigmoid ---------------------------------------------------------------
// exp(x) = 2^n * e^r with n = round(x / ln 2) and r = x - n ln 2 split Cody–Waite style (|r| <= ln2/2),
// e^r by its Taylor series (degree 7 for float: truncation < 6e-9; degree 13 for double: < 5e-18),
// and 2^n applied as two factors so that results in the subnormal range are rounded only once.
// Measured maximum errors against std:: functions are in tests/test_vmath.py and the README.
//
// In the cells these functions are bound by latency as much as by throughput: each vector is one
// long dependent chain (exp, a division, and for the LSTM a second tanh after c), and only a couple
// of such chains fit in the out-of-order window.  So tanh, whose argument 2|x| is >= 0, uses an exp
// without the subnormal and NaN handling, and the sigmoid divides once.  In cache on Zen 4 (TSC
// ticks per vector, A/B in one process): AVX2 tanh 16.1 -> 13.6, LSTM forward cell 86.8 -> 76.7.
template <typename T> struct ExpConstants;
template <> struct ExpConstants<float> {
  static constexpr float lo = -104.0f;  // exp(x) rounds to 0 below about -103.97
  static constexpr float hi = 89.0f;    // and overflows to inf above about 88.72
  static constexpr float ln2_hi = 0.693359375f;
  static constexpr float ln2_lo = -2.12194440e-4f;
  static constexpr int degree = 7;
};
template <> struct ExpConstants<double> {
  static constexpr double lo = -746.0;
  static constexpr double hi = 710.0;
  static constexpr double ln2_hi = 6.93145751953125e-1;
  static constexpr double ln2_lo = 1.42860682030941723212e-6;
  static constexpr int degree = 13;
};

// 1/k! for k = 0..D, computed by the compiler.
template <typename T, int D>
struct TaylorExp {
  T c[D + 1];
  constexpr TaylorExp() : c() {
    c[0] = T(1);
    for (int k = 1; k <= D; ++k) c[k] = c[k - 1] / T(k);
  }
};

// sum_k r^k / k! for k = 0..D as 1 + (r + r^2 s(r)), Cephes' order: the two leading terms are added
// last, so the small terms' rounding errors shrink before they reach the result (exp's worst error
// 1.14 -> 1.02 ulp against plain Horner on all D+1 terms).  s(r) = 1/2 + r/6 + ... by Horner:
// Estrin's scheme was barely faster in cache (AVX2 LSTM cell 74 against 77 ticks a vector) but needs
// more live registers, and with AVX2's 16 the cell spilled more and ran 4% slower in place.
template <class S>
inline typename S::V exp_series(typename S::V r) {
  using T = typename S::T;
  using V = typename S::V;
  constexpr int D = ExpConstants<T>::degree;
  constexpr TaylorExp<T, D> taylor{};
  V p = S::set1(taylor.c[D]);
#pragma GCC unroll 16
  for (int k = D - 1; k >= 2; --k) p = S::fmadd(p, r, S::set1(taylor.c[k]));
  return S::add(S::fmadd(S::mul(r, r), p, r), S::set1(T(1)));
}

// p * 2^n for integral n in exp's range, rounded once: the ISA's own instruction where it has one
// (AVX-512's vscalefps), else 2^n as two factors so that subnormal results are rounded only once.
template <class S, class = void>
struct HasScale {
  static constexpr bool value = false;
};
template <class S>
struct HasScale<S, decltype(void(S::scale(typename S::V(), typename S::V())))> {
  static constexpr bool value = true;
};

template <class S>
inline typename S::V scale_pow2(typename S::V p, typename S::V n) {
  using T = typename S::T;
  if constexpr (HasScale<S>::value) {
    return S::scale(p, n);
  } else {
    const typename S::V n1 = S::round(S::mul(n, S::set1(T(0.5))));
    return S::mul(S::mul(p, S::pow2n(n1)), S::pow2n(S::sub(n, n1)));
  }
}

// e^r for x = n ln 2 + r, x already clamped to exp's range: returns e^r, sets n.
template <class S>
inline typename S::V exp_reduced(typename S::V xc, typename S::V& n) {
  using T = typename S::T;
  using V = typename S::V;
  using C = ExpConstants<T>;
  n = S::round(S::mul(xc, S::set1(T(1.4426950408889634))));
  V r = S::fnmadd(n, S::set1(C::ln2_hi), xc);
  r = S::fnmadd(n, S::set1(C::ln2_lo), r);
  return exp_series<S>(r);
}

template <class S>
inline typename S::V vexp(typename S::V x) {
  using T = typename S::T;
  using V = typename S::V;
  using C = ExpConstants<T>;
  const auto nan = S::isnan(x);
  V n;
  const V p = exp_reduced<S>(S::min(S::max(x, S::set1(C::lo)), S::set1(C::hi)), n);
  return S::select(nan, x, scale_pow2<S>(p, n));
}

// e^x for x >= 0 or NaN, whose result is never subnormal: 2^n as one factor, and no NaN test (minps
// and the scalar min return their second operand for NaN, so NaN becomes `hi`; the caller handles
// NaN).  Used by tanh, whose argument is 2|x|.
template <class S>
inline typename S::V vexp_nonnegative(typename S::V x) {
  using V = typename S::V;
  V n;
  const V p = exp_reduced<S>(S::min(x, S::set1(ExpConstants<typename S::T>::hi)), n);
  return S::mul(p, S::pow2n(n));
}

// tanh: for |x| < 0.625 the odd minimax forms of Cephes (tanhf: polynomial; tanh: rational), else
// 1 - 2 / (exp(2|x|) + 1) with the sign of x.  NaN propagates; +-inf give +-1.
template <class S>
inline typename S::V vtanh_small(typename S::V x, float) {
  using V = typename S::V;
  const V z = S::mul(x, x);
  V p = S::set1(-5.70498872745e-3f);
  p = S::fmadd(p, z, S::set1(2.06390887954e-2f));
  p = S::fmadd(p, z, S::set1(-5.37397155531e-2f));
  p = S::fmadd(p, z, S::set1(1.33314422036e-1f));
  p = S::fmadd(p, z, S::set1(-3.33332819422e-1f));
  return S::fmadd(S::mul(p, z), x, x);
}
template <class S>
inline typename S::V vtanh_small(typename S::V x, double) {
  using V = typename S::V;
  const V z = S::mul(x, x);
  V p = S::set1(-9.64399179425052238628e-1);
  p = S::fmadd(p, z, S::set1(-9.92877231001918586564e1));
  p = S::fmadd(p, z, S::set1(-1.61468768441708447952e3));
  V q = S::add(z, S::set1(1.12811678491632931402e2));
  q = S::fmadd(q, z, S::set1(2.23548839060100448583e3));
  q = S::fmadd(q, z, S::set1(4.84406305325125486048e3));
  return S::fmadd(S::mul(x, z), S::div(p, q), x);
}

template <class S>
inline typename S::V vtanh(typename S::V x) {
  using T = typename S::T;
  using V = typename S::V;
  const V ax = S::abs(x);
  const V one = S::set1(T(1));
  const V e = vexp_nonnegative<S>(S::add(ax, ax));
  const V large = S::copysign(S::sub(one, S::div(S::set1(T(2)), S::add(e, one))), x);
  // |x| > 0.625 as an ordered compare: NaN takes the polynomial, which propagates it.
  return S::select(S::lt(S::set1(T(0.625)), ax), large, vtanh_small<S>(x, T(0)));
}

// sigmoid(x) = 1 / (1 + e^-x) for x >= 0 and e^x / (1 + e^x) for x < 0, one division: no cancellation,
// and tiny results keep their relative accuracy down to the subnormals.
template <class S>
inline typename S::V vsigmoid(typename S::V x) {
  using T = typename S::T;
  using V = typename S::V;
  const V one = S::set1(T(1));
  const V e = vexp<S>(S::sub(S::zero(), S::abs(x)));
  return S::div(S::select(S::lt(x, S::zero()), e, one), S::add(one, e));
}

// relu keeps NaN (as torch does): the ordered compare is false for NaN, so select returns x.
template <class S>
inline typename S::V vrelu(typename S::V x) {
  return S::select(S::lt(x, S::zero()), S::zero(), x);
}

template <class S, class F>
inline void map_array(const typename S::T* x, typename S::T* y, int64_t n, F f) {
  int64_t i = 0;
  for (; i + S::N <= n; i += S::N) S::store(y + i, f(S::load(x + i)));
  if (i < n) S::store_n(y + i, f(S::load_n(x + i, int(n - i))), int(n - i));
}

template <class S>
void math(MathFunction fn, const typename S::T* x, typename S::T* y, int64_t n) {
  using V = typename S::V;
  switch (fn) {
    case MathFunction::exp: map_array<S>(x, y, n, [](V v) { return vexp<S>(v); }); break;
    case MathFunction::tanh: map_array<S>(x, y, n, [](V v) { return vtanh<S>(v); }); break;
    case MathFunction::sigmoid: map_array<S>(x, y, n, [](V v) { return vsigmoid<S>(v); }); break;
  }
}

// ---- cells: pointwise forward and backward, one row of n hidden units ----------------------------
// The uniform signatures of CellKernels (kernel_table.hpp).  Gate k of unit j sits at
// pre[k * gate_stride + j]; a pointer marked "or null" means zeros.

// Vanilla: h = act(pre) (pre may be h itself).  Saves nothing: the backward reads act' from h.
template <class S>
void vanilla_forward_row(Activation act, int64_t n, typename S::T* pre, int64_t, const typename S::T*,
                         const typename S::T*, const typename S::T*, typename S::T* h, typename S::T*) {
  using V = typename S::V;
  if (act == Activation::tanh) map_array<S>(pre, h, n, [](V a) { return vtanh<S>(a); });
  else map_array<S>(pre, h, n, [](V a) { return vrelu<S>(a); });
}

// Loop over n lanes in vectors, the last one partial; f(i, count) with count == S::N except at the end.
template <class S, class F>
inline void for_lanes(int64_t n, F f) {
  int64_t i = 0;
  for (; i + S::N <= n; i += S::N) f(i, S::N);
  if (i < n) f(i, int(n - i));
}

template <class S>
inline typename S::V load_or_zero(const typename S::T* p, int count) {
  if (!p) return S::zero();
  return count == S::N ? S::load(p) : S::load_n(p, count);
}
template <class S>
inline void store_lanes(typename S::T* p, typename S::V v, int count) {
  if (count == S::N) S::store(p, v);
  else S::store_n(p, v, count);
}
template <class S>
inline const typename S::T* at(const typename S::T* p, int64_t j) {
  return p ? p + j : nullptr;
}

// dpre = (dy + dh) * act'(h), act' from the output: tanh' = 1 - h^2, relu' = [h > 0].
template <class S>
void vanilla_backward_row(Activation act, int64_t n, const typename S::T*, int64_t, const typename S::T*,
                          const typename S::T*, const typename S::T*, const typename S::T* h,
                          const typename S::T*, const typename S::T* dy, typename S::T* dh, typename S::T*,
                          typename S::T* dpre, typename S::T*) {
  using T = typename S::T;
  using V = typename S::V;
  for_lanes<S>(n, [&](int64_t j, int cnt) {
    const V hv = load_or_zero<S>(h + j, cnt);
    const V g = S::add(load_or_zero<S>(dh + j, cnt), load_or_zero<S>(at<S>(dy, j), cnt));
    V d;
    if (act == Activation::tanh) d = S::mul(g, S::fnmadd(hv, hv, S::set1(T(1))));
    else d = S::select(S::lt(S::zero(), hv), g, S::zero());
    store_lanes<S>(dpre + j, d, cnt);
  });
}

// LSTM, blocks [i | f | g | o].  Forward: pre IN pre-activations, OUT activations (saved);
//   c = f * c_prev + i * g;  h = o * tanh(c).
template <class S>
void lstm_forward_row(Activation, int64_t n, typename S::T* pre, int64_t gate_stride, const typename S::T*,
                      const typename S::T*, const typename S::T* c_prev, typename S::T* h, typename S::T* c) {
  using V = typename S::V;
  for_lanes<S>(n, [&](int64_t j, int cnt) {
    typename S::T* gi = pre + j;
    const V i = vsigmoid<S>(load_or_zero<S>(gi, cnt));
    const V f = vsigmoid<S>(load_or_zero<S>(gi + gate_stride, cnt));
    const V g = vtanh<S>(load_or_zero<S>(gi + 2 * gate_stride, cnt));
    const V o = vsigmoid<S>(load_or_zero<S>(gi + 3 * gate_stride, cnt));
    const V cn = S::fmadd(f, load_or_zero<S>(at<S>(c_prev, j), cnt), S::mul(i, g));
    store_lanes<S>(gi, i, cnt);
    store_lanes<S>(gi + gate_stride, f, cnt);
    store_lanes<S>(gi + 2 * gate_stride, g, cnt);
    store_lanes<S>(gi + 3 * gate_stride, o, cnt);
    store_lanes<S>(c + j, cn, cnt);
    store_lanes<S>(h + j, S::mul(o, vtanh<S>(cn)), cnt);
  });
}

// A cell's forward over rows (CellKernels::forward), its row function inlined into the loop.
template <class S, auto Row>
void forward_rows(Activation act, int64_t rows, int64_t n, int64_t gate_stride, Rows<typename S::T> pre,
                  Rows<const typename S::T> extra, Rows<const typename S::T> h_prev,
                  Rows<const typename S::T> c_prev, Rows<typename S::T> h, Rows<typename S::T> c) {
  for (int64_t r = 0; r < rows; ++r)
    Row(act, n, pre.row(r), gate_stride, extra.row(r), h_prev.row(r), c_prev.row(r), h.row(r), c.row(r));
}

// And its backward (CellKernels::backward).
template <class S, auto Row>
void backward_rows(Activation act, int64_t rows, int64_t n, int64_t gate_stride, Rows<const typename S::T> gates,
                   Rows<const typename S::T> extra, Rows<const typename S::T> h_prev, Rows<const typename S::T> c_prev,
                   Rows<const typename S::T> h, Rows<const typename S::T> c, Rows<const typename S::T> dy,
                   Rows<typename S::T> dh, Rows<typename S::T> dc, Rows<typename S::T> dpre,
                   Rows<typename S::T> dextra) {
  for (int64_t r = 0; r < rows; ++r)
    Row(act, n, gates.row(r), gate_stride, extra.row(r), h_prev.row(r), c_prev.row(r), h.row(r), c.row(r),
        dy.row(r), dh.row(r), dc.row(r), dpre.row(r), dextra.row(r));
}

// Backward: from the saved activations and c, c_prev; dh IN dL/dh_t (from step t+1), dy the
// output's gradient (or null); dc IN dL/dc_t from step t+1, OUT dL/dc_{t-1}.  Writes dpre (same
// layout as the gates).  tanh(c) is recomputed rather than saved.
template <class S>
void lstm_backward_row(Activation, int64_t n, const typename S::T* gates, int64_t gate_stride,
                       const typename S::T*, const typename S::T*, const typename S::T* c_prev,
                       const typename S::T*, const typename S::T* c, const typename S::T* dy, typename S::T* dh,
                       typename S::T* dc, typename S::T* dpre, typename S::T*) {
  using T = typename S::T;
  using V = typename S::V;
  const V one = S::set1(T(1));
  for_lanes<S>(n, [&](int64_t j, int cnt) {
    const T* gi = gates + j;
    const V i = load_or_zero<S>(gi, cnt), f = load_or_zero<S>(gi + gate_stride, cnt);
    const V g = load_or_zero<S>(gi + 2 * gate_stride, cnt), o = load_or_zero<S>(gi + 3 * gate_stride, cnt);
    const V tc = vtanh<S>(load_or_zero<S>(c + j, cnt));
    const V dht = S::add(load_or_zero<S>(dh + j, cnt), load_or_zero<S>(at<S>(dy, j), cnt));
    const V dct = S::fmadd(S::mul(dht, o), S::fnmadd(tc, tc, one), load_or_zero<S>(dc + j, cnt));
    const V cp = load_or_zero<S>(at<S>(c_prev, j), cnt);
    T* d = dpre + j;
    store_lanes<S>(d, S::mul(S::mul(dct, g), S::mul(i, S::sub(one, i))), cnt);
    store_lanes<S>(d + gate_stride, S::mul(S::mul(dct, cp), S::mul(f, S::sub(one, f))), cnt);
    store_lanes<S>(d + 2 * gate_stride, S::mul(S::mul(dct, i), S::fnmadd(g, g, one)), cnt);
    store_lanes<S>(d + 3 * gate_stride, S::mul(S::mul(dht, tc), S::mul(o, S::sub(one, o))), cnt);
    store_lanes<S>(dc + j, S::mul(dct, f), cnt);
  });
}

// GRU, blocks [r | z | n] as in torch; extra = hn = W_hn h_{t-1} + b_hn (the product kept apart).
// Forward: pre IN the input side's pre-activations, OUT activations r, z, n (saved);
//   r = sigmoid(.), z = sigmoid(.), n = tanh(pre_n + r * hn), h = (1 - z) * n + z * h_prev.
template <class S>
void gru_forward_row(Activation, int64_t n, typename S::T* pre, int64_t gate_stride, const typename S::T* hn,
                     const typename S::T* h_prev, const typename S::T*, typename S::T* h, typename S::T*) {
  using V = typename S::V;
  for_lanes<S>(n, [&](int64_t j, int cnt) {
    typename S::T* gr = pre + j;
    const V r = vsigmoid<S>(load_or_zero<S>(gr, cnt));
    const V z = vsigmoid<S>(load_or_zero<S>(gr + gate_stride, cnt));
    const V nn = vtanh<S>(S::fmadd(r, load_or_zero<S>(hn + j, cnt), load_or_zero<S>(gr + 2 * gate_stride, cnt)));
    const V hp = load_or_zero<S>(at<S>(h_prev, j), cnt);
    store_lanes<S>(gr, r, cnt);
    store_lanes<S>(gr + gate_stride, z, cnt);
    store_lanes<S>(gr + 2 * gate_stride, nn, cnt);
    store_lanes<S>(h + j, S::fmadd(z, S::sub(hp, nn), nn), cnt);
  });
}

// Backward: dh IN dL/dh_t, OUT the direct part of dL/dh_{t-1} (dh_t * z; the driver adds the W_hh
// product).  dpre: gradient of the input-side pre-activations [r | z | n] (also the hidden side's
// for r and z); dextra: gradient of hn (the hidden side's n block).
template <class S>
void gru_backward_row(Activation, int64_t n, const typename S::T* gates, int64_t gate_stride,
                      const typename S::T* hn, const typename S::T* h_prev, const typename S::T*,
                      const typename S::T*, const typename S::T*, const typename S::T* dy, typename S::T* dh,
                      typename S::T*, typename S::T* dpre, typename S::T* dhn) {
  using T = typename S::T;
  using V = typename S::V;
  const V one = S::set1(T(1));
  for_lanes<S>(n, [&](int64_t j, int cnt) {
    const T* gr = gates + j;
    const V r = load_or_zero<S>(gr, cnt), z = load_or_zero<S>(gr + gate_stride, cnt);
    const V nn = load_or_zero<S>(gr + 2 * gate_stride, cnt);
    const V hp = load_or_zero<S>(at<S>(h_prev, j), cnt);
    const V dht = S::add(load_or_zero<S>(dh + j, cnt), load_or_zero<S>(at<S>(dy, j), cnt));
    const V dpre_n = S::mul(S::mul(dht, S::sub(one, z)), S::fnmadd(nn, nn, one));
    const V dz = S::mul(dht, S::sub(hp, nn));
    const V dr = S::mul(dpre_n, load_or_zero<S>(hn + j, cnt));
    T* d = dpre + j;
    store_lanes<S>(d, S::mul(dr, S::mul(r, S::sub(one, r))), cnt);
    store_lanes<S>(d + gate_stride, S::mul(dz, S::mul(z, S::sub(one, z))), cnt);
    store_lanes<S>(d + 2 * gate_stride, dpre_n, cnt);
    store_lanes<S>(dhn + j, S::mul(dpre_n, r), cnt);
    store_lanes<S>(dh + j, S::mul(dht, z), cnt);
  });
}

// ---- GEMM register tile ----------------------------------------------------------------------------
// Asks for the cache line after the last one asked for: the next line of q's runs (none once
// they are done).  For step_tile_rows_prefetching.
inline void prefetch_next(RowPrefetch& q) {
  while (q.run < q.count && q.row >= q.runs[q.run].rows) ++q.run, q.row = 0, q.segment = 0, q.line = 0;
  if (q.run == q.count) return;
  const PrefetchRun& r = q.runs[q.run];
  __builtin_prefetch(r.first + q.row * r.row_bytes + q.segment * r.segment_bytes + q.line * 64, 0, 3);
  if (++q.line == r.lines) {
    q.line = 0;
    if (++q.segment == r.segments) q.segment = 0, ++q.row;
  }
}

// C[M x NV*N] (+)= A * B over k, accumulators held in registers for the whole k loop.  Tiles of one to
// three rows have too few independent FMA chains to hide the FMA latency, so they split k into KS
// interleaved partial sums, added in a fixed order at the end; each C element's arithmetic depends
// only on (M, k), never on the thread count.
//
// A is read packed (a[p*M + i], from pack_a_block), straight from row-major rows (a[i*lda + p],
// lda > 0: the input projection, and the per-step products, which read h_{t-1} and dpre_t where the
// cell wrote them — packing them would make every line cross between cores twice per step), or, with
// Cols, straight from a column-major block (a[p*lda + i]: dpre^T in the weight gradients).  The
// arithmetic is the same in all three.  With Prefetch, the k loop also asks for `prefetch`'s lines,
// one per kPrefetchLanes multiply-adds (kernel_table.hpp).
template <class S, int M, int NV, int KS, bool Cols = false, bool Prefetch = false>
void gemm_tile_fixed(int64_t k, const typename S::T* a, int64_t lda, const typename S::T* b,
                     typename S::T* c, int64_t ldc, const typename S::T* bias, bool accumulate,
                     int n_valid, RowPrefetch* prefetch = nullptr) {
  using V = typename S::V;
  using T = typename S::T;
  constexpr int NR = NV * S::N;
  // Where A(i, p) is: a[p * a_step + row[i]] — packed (lda 0), rows (lda > 0) or, with Cols,
  // column-major with column stride lda.
  const int64_t a_step = Cols ? lda : lda > 0 ? 1 : M;
  int64_t row[M];
#pragma GCC unroll 16
  for (int i = 0; i < M; ++i) row[i] = !Cols && lda > 0 ? i * lda : i;
  V acc[KS][M][NV];
#pragma GCC unroll 4
  for (int s = 0; s < KS; ++s)
#pragma GCC unroll 16
    for (int i = 0; i < M; ++i)
#pragma GCC unroll 4
      for (int j = 0; j < NV; ++j) acc[s][i][j] = S::zero();

  // The C tile is read (accumulate) or at least written at the end: ask for its rows now, for
  // writing, so that the k loop hides the trip to L3 or memory (rows ldc apart are no pattern the
  // hardware prefetcher follows, and fresh output lines must be fetched before they are written).
#pragma GCC unroll 16
  for (int i = 0; i < M; ++i)
#pragma GCC unroll 4
    for (int j = 0; j < NV; ++j) __builtin_prefetch(c + i * ldc + j * S::N, 1, 3);
  auto step = [&](int64_t p, V (&sum)[M][NV]) {
    V bv[NV];
#pragma GCC unroll 4
    for (int j = 0; j < NV; ++j) bv[j] = S::load(b + p * NR + j * S::N);
    const T* ap = a + p * a_step;
#pragma GCC unroll 16
    for (int i = 0; i < M; ++i) {
      const V av = S::set1(ap[row[i]]);
#pragma GCC unroll 4
      for (int j = 0; j < NV; ++j) sum[i][j] = S::fmadd(av, bv[j], sum[i][j]);
    }
  };
  int64_t p = 0;
  if constexpr (Prefetch) {  // (one line per kPrefetchLanes multiply-adds: every `every` groups of KS)
    constexpr int lanes = M * NR * KS;
    constexpr int every = lanes >= kPrefetchLanes ? 1 : kPrefetchLanes / lanes;
    int tick = 0;
    for (; p + KS <= k; p += KS) {
#pragma GCC unroll 4
      for (int s = 0; s < KS; ++s) step(p + s, acc[s]);
      if (++tick == every) tick = 0, prefetch_next(*prefetch);
    }
  }
  for (; p + KS <= k; p += KS)
#pragma GCC unroll 4
    for (int s = 0; s < KS; ++s) step(p + s, acc[s]);
  for (; p < k; ++p) step(p, acc[0]);
  if (KS == 4) {
#pragma GCC unroll 16
    for (int i = 0; i < M; ++i)
#pragma GCC unroll 4
      for (int j = 0; j < NV; ++j)
        acc[0][i][j] = S::add(S::add(acc[0][i][j], acc[1 % KS][i][j]), S::add(acc[2 % KS][i][j], acc[3 % KS][i][j]));
  } else if (KS == 2) {
#pragma GCC unroll 16
    for (int i = 0; i < M; ++i)
#pragma GCC unroll 4
      for (int j = 0; j < NV; ++j) acc[0][i][j] = S::add(acc[0][i][j], acc[1 % KS][i][j]);
  }

  if (n_valid >= NR) {
#pragma GCC unroll 16
    for (int i = 0; i < M; ++i) {
      typename S::T* row = c + i * ldc;
#pragma GCC unroll 4
      for (int j = 0; j < NV; ++j) {
        V v = acc[0][i][j];
        if (accumulate) v = S::add(S::load(row + j * S::N), v);
        else if (bias) v = S::add(S::load(bias + j * S::N), v);
        S::store(row + j * S::N, v);
      }
    }
    return;
  }
#pragma GCC unroll 16
  for (int i = 0; i < M; ++i) {
    typename S::T* row = c + i * ldc;
#pragma GCC unroll 4
    for (int j = 0; j < NV; ++j) {
      const int count = n_valid - j * S::N;
      if (count <= 0) continue;
      const int cnt = count < S::N ? count : S::N;
      V v = acc[0][i][j];
      if (accumulate) v = S::add(S::load_n(row + j * S::N, cnt), v);
      else if (bias) v = S::add(S::load_n(bias + j * S::N, cnt), v);
      S::store_n(row + j * S::N, v, cnt);
    }
  }
}

// The per-step products split k for tiles of few rows (their FMA chains are short); the all-row
// GEMMs do not (only their last tile is short): so their every element is the same plain sum
// whatever the blocking — a chunk of rows gives what all rows at once give.
constexpr int k_split(int rows) { return rows == 1 ? 4 : rows <= 3 ? 2 : 1; }

template <class S, int NV, int M, bool Split, bool Cols = false, bool Prefetch = false>
struct TileDispatch {
  static void call(int m, int64_t k, const typename S::T* a, int64_t lda, const typename S::T* b,
                   typename S::T* c, int64_t ldc, const typename S::T* bias, bool accumulate,
                   int n_valid, RowPrefetch* prefetch = nullptr) {
    if (m == M)
      gemm_tile_fixed<S, M, NV, Split ? k_split(M) : 1, Cols, Prefetch>(k, a, lda, b, c, ldc, bias, accumulate,
                                                                         n_valid, prefetch);
    else
      TileDispatch<S, NV, M - 1, Split, Cols, Prefetch>::call(m, k, a, lda, b, c, ldc, bias, accumulate, n_valid,
                                                              prefetch);
  }
};
template <class S, int NV, bool Split, bool Cols, bool Prefetch>
struct TileDispatch<S, NV, 0, Split, Cols, Prefetch> {
  static void call(int, int64_t, const typename S::T*, int64_t, const typename S::T*, typename S::T*,
                   int64_t, const typename S::T*, bool, int, RowPrefetch* = nullptr) {}
};

template <class S, int MR, int NV>
void gemm_tile(int m, int64_t k, const typename S::T* a, const typename S::T* b, typename S::T* c,
               int64_t ldc, const typename S::T* bias, bool accumulate, int n_valid) {
  TileDispatch<S, NV, MR, false>::call(m, k, a, 0, b, c, ldc, bias, accumulate, n_valid);
}

template <class S, int MR, int NV>
void gemm_tile_rows(int m, int64_t k, const typename S::T* a, int64_t lda, const typename S::T* b,
                    typename S::T* c, int64_t ldc, const typename S::T* bias, bool accumulate, int n_valid) {
  TileDispatch<S, NV, MR, false>::call(m, k, a, lda, b, c, ldc, bias, accumulate, n_valid);
}

template <class S, int MR, int NV>
void gemm_tile_cols(int m, int64_t k, const typename S::T* a, int64_t lda, const typename S::T* b,
                    typename S::T* c, int64_t ldc, const typename S::T* bias, bool accumulate, int n_valid) {
  TileDispatch<S, NV, MR, false, true>::call(m, k, a, lda, b, c, ldc, bias, accumulate, n_valid);
}

template <class S, int MR, int NV>
void step_tile_rows(int m, int64_t k, const typename S::T* a, int64_t lda, const typename S::T* b,
                    typename S::T* c, int64_t ldc, const typename S::T* bias, bool accumulate, int n_valid) {
  TileDispatch<S, NV, MR, true>::call(m, k, a, lda, b, c, ldc, bias, accumulate, n_valid);
}

template <class S, int MR, int NV>
void step_tile_rows_prefetching(int m, int64_t k, const typename S::T* a, int64_t lda, const typename S::T* b,
                                typename S::T* c, int64_t ldc, const typename S::T* bias, bool accumulate,
                                int n_valid, RowPrefetch& prefetch) {
  TileDispatch<S, NV, MR, true, false, true>::call(m, k, a, lda, b, c, ldc, bias, accumulate, n_valid, &prefetch);
}

// ---- packing a transposed panel --------------------------------------------------------------------
// dst[p * nr + j] = src[j * ld + p] for j < rows, p < k; 0 for rows <= j < nr.  (The plans' panels of
// W^T: each row of W becomes a column of the panel.)  Whole tiles go through the ISA's register
// transpose where it has one.
template <typename T>
void pack_transposed(const T* src, int64_t ld, int rows, int64_t k, int nr, T* dst) {
  int j0 = 0;
#if RNNKIT_HAVE_TRANSPOSE_TILE
  int64_t p0 = 0;
  constexpr int W = transpose_width(T());
  for (; j0 + W <= rows; j0 += W)
    for (p0 = 0; p0 + W <= k; p0 += W) transpose_tile(src + j0 * ld + p0, ld, dst + p0 * nr + j0, nr);
  // the columns p >= p0 of the whole tiles' rows
  for (int j = 0; j < j0; ++j)
    for (int64_t p = p0; p < k; ++p) dst[p * nr + j] = src[j * ld + p];
#endif
  for (int j = j0; j < rows; ++j)
    for (int64_t p = 0; p < k; ++p) dst[p * nr + j] = src[j * ld + p];
  for (int64_t p = 0; p < k; ++p)
    for (int j = rows; j < nr; ++j) dst[p * nr + j] = T(0);
}

// ---- the table -----------------------------------------------------------------------------------
template <class S, int MR, int NV>
KernelTable<typename S::T> make_table(const char* name, int kc, int mc, int nc) {
  KernelTable<typename S::T> t;
  t.isa = name;
  t.mr = MR;
  t.nr = NV * S::N;
  t.kc = kc;
  t.mc = mc;
  t.nc = nc;
  t.gemm_tile = &gemm_tile<S, MR, NV>;
  t.gemm_tile_rows = &gemm_tile_rows<S, MR, NV>;
  t.gemm_tile_cols = &gemm_tile_cols<S, MR, NV>;
  t.step_tile_rows = &step_tile_rows<S, MR, NV>;
  t.step_tile_rows_prefetching = &step_tile_rows_prefetching<S, MR, NV>;
  // One line per cell: its pointwise pair (the portable traits are in cells.hpp).
  t.cells[int(Cell::vanilla)] = {&forward_rows<S, vanilla_forward_row<S>>, &backward_rows<S, vanilla_backward_row<S>>};
  t.cells[int(Cell::lstm)] = {&forward_rows<S, lstm_forward_row<S>>, &backward_rows<S, lstm_backward_row<S>>};
  t.cells[int(Cell::gru)] = {&forward_rows<S, gru_forward_row<S>>, &backward_rows<S, gru_backward_row<S>>};
  t.math = &math<S>;
  t.pack_transposed = &pack_transposed<typename S::T>;
  return t;
}

}  // namespace RNNKIT_ISA_NS
}  // namespace rnnkit
