// The optimizers' updates for the avx512 path (see optim.inl; CMakeLists.txt gives this file its ISA's
// flags and -ffp-contract=off).
#define RNNKIT_ISA_NS avx512
#include "optim.inl"

namespace rnnkit {
const OptimTable<float>* avx512_optim_f32() { return avx512::optim_table<float>(); }
const OptimTable<double>* avx512_optim_f64() { return avx512::optim_table<double>(); }
}  // namespace rnnkit
