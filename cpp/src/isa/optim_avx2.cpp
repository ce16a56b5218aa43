// The optimizers' updates for the avx2 path (see optim.inl; CMakeLists.txt gives this file its ISA's
// flags and -ffp-contract=off).
#define RNNKIT_ISA_NS avx2
#include "optim.inl"

namespace rnnkit {
const OptimTable<float>* avx2_optim_f32() { return avx2::optim_table<float>(); }
const OptimTable<double>* avx2_optim_f64() { return avx2::optim_table<double>(); }
}  // namespace rnnkit
