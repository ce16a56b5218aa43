// The optimizers' elementwise updates (python/rnnkit/optim.py's Adam and SGD, and the gradient norm
// of clip_grad_norm), one function pointer per ISA translation unit (src/isa/optim_<isa>.cpp).
//
// Every update performs exactly the operations, in exactly the order and precision, of the NumPy
// formula in optim.py (NumPy 2's promotion rules: a Python float scalar takes the array's dtype; a
// NumPy float64 scalar makes the result float64).  The optim TUs are compiled with
// -ffp-contract=off, so no a*b+c becomes an FMA: IEEE +, -, *, / and sqrt are correctly rounded,
// hence every ISA, and NumPy, gives bitwise the same parameters.
//
// Legend: n = elements of one parameter array; p parameter, g gradient, m/v Adam's first and second
// moments, buf SGD's momentum buffer; all contiguous, all of one dtype (Real).
#pragma once

#include <cstdint>

namespace rnnkit {

// Adam's per-step scalars, computed once per step in double (as Python computes them).
struct AdamConstants {
  bool decay;             // AdamW: p *= Real(decay_factor) first
  double decay_factor;    // 1 - lr * weight_decay
  double beta1, one_minus_beta1, beta2, one_minus_beta2;
  double step_size;       // lr / (1 - beta1^step)
  double sqrt_correction2;  // sqrt(1 - beta2^step)
  double eps;
};

struct SgdConstants {
  double lr, momentum, weight_decay;
  bool nesterov;
};

template <typename Real>
struct OptimTable {
  // p, m, v: IN/OUT (n,); g: IN (n,).
  void (*adam)(int64_t n, Real* p, const Real* g, Real* m, Real* v, const AdamConstants& c);
  // p: IN/OUT (n,); g: IN (n,); buf: IN/OUT (n,), or OUT when first (buf = the decayed gradient);
  // unused (may be null) when momentum is 0.
  void (*sgd)(int64_t n, Real* p, const Real* g, Real* buf, bool first, const SgdConstants& c);
  // sum of x[i]^2 in double, in a fixed order that does not depend on the ISA: element i goes to
  // partial sum i % 8, and the 8 partial sums are added as a fixed tree.
  double (*sum_squares)(int64_t n, const Real* x);
};

const OptimTable<float>* scalar_optim_f32();
const OptimTable<double>* scalar_optim_f64();
#if RNNKIT_HAVE_AVX2
const OptimTable<float>* avx2_optim_f32();
const OptimTable<double>* avx2_optim_f64();
#endif
#if RNNKIT_HAVE_AVX512
const OptimTable<float>* avx512_optim_f32();
const OptimTable<double>* avx512_optim_f64();
#endif

// The table of the active SIMD path (dispatch.cpp).
template <typename Real> const OptimTable<Real>& active_optim();

}  // namespace rnnkit
