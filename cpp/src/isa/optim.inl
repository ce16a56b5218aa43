// The optimizers' loops, compiled once per ISA (optim_<isa>.cpp defines RNNKIT_ISA_NS and the ISA
// flags, with -ffp-contract=off).  Plain loops that the compiler vectorises; see optim.hpp for why
// the order of operations is NumPy's, step by step.
#include <cmath>

#include "optim.hpp"

namespace rnnkit {
namespace RNNKIT_ISA_NS {

template <typename Real>
void adam(int64_t n, Real* __restrict p, const Real* __restrict g, Real* __restrict m, Real* __restrict v,
          const AdamConstants& c) {
  // optim.Adam._update:
  //   param *= dtype(1 - lr*wd)                      (AdamW only)
  //   mean *= beta1;  mean += (1 - beta1) * grad
  //   square *= beta2;  square += (1 - beta2) * grad**2
  //   denominator = sqrt(square) / np.sqrt(correction2) + eps       -> float64
  //   param -= (lr / correction1) * mean / denominator               -> in float64, stored as Real
  const Real decay = Real(c.decay_factor), beta1 = Real(c.beta1), beta2 = Real(c.beta2);
  const Real a1 = Real(c.one_minus_beta1), a2 = Real(c.one_minus_beta2), step = Real(c.step_size);
  const double root2 = c.sqrt_correction2, eps = c.eps;
  if (c.decay)
    for (int64_t i = 0; i < n; ++i) p[i] = p[i] * decay;
  for (int64_t i = 0; i < n; ++i) {
    const Real gi = g[i];
    const Real mi = m[i] * beta1 + a1 * gi;
    const Real vi = v[i] * beta2 + a2 * (gi * gi);
    m[i] = mi;
    v[i] = vi;
    const double denominator = double(std::sqrt(vi)) / root2 + eps;
    p[i] = Real(double(p[i]) - double(step * mi) / denominator);
  }
}

template <typename Real>
void sgd(int64_t n, Real* __restrict p, const Real* __restrict g, Real* __restrict buf, bool first,
         const SgdConstants& c) {
  // optim.SGD._update:
  //   grad = grad + dtype(wd) * param                 (L2, when weight_decay > 0)
  //   buf = grad (first step) | buf *= momentum; buf += grad
  //   grad = grad + momentum * buf (nesterov) | buf
  //   param -= lr * grad
  const Real wd = Real(c.weight_decay), momentum = Real(c.momentum), lr = Real(c.lr);
  const bool decay = c.weight_decay != 0, moving = c.momentum != 0;
  for (int64_t i = 0; i < n; ++i) {
    Real gi = g[i];
    if (decay) gi = gi + wd * p[i];
    if (moving) {
      const Real b = first ? gi : buf[i] * momentum + gi;
      buf[i] = b;
      gi = c.nesterov ? gi + momentum * b : b;
    }
    p[i] = p[i] - lr * gi;
  }
}

template <typename Real>
double sum_squares(int64_t n, const Real* __restrict x) {
  double s[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; ++j) {
      const double e = double(x[i + j]);
      s[j] += e * e;
    }
  for (int j = 0; i + j < n; ++j) {
    const double e = double(x[i + j]);
    s[j] += e * e;
  }
  return ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
}

template <typename Real>
const OptimTable<Real>* optim_table() {
  static const OptimTable<Real> table = {&adam<Real>, &sgd<Real>, &sum_squares<Real>};
  return &table;
}

}  // namespace RNNKIT_ISA_NS
}  // namespace rnnkit
