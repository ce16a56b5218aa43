// The optimizers' updates for the scalar path (see optim.inl; CMakeLists.txt gives this file its ISA's
// flags and -ffp-contract=off).
#define RNNKIT_ISA_NS portable
#include "optim.inl"

namespace rnnkit {
const OptimTable<float>* scalar_optim_f32() { return portable::optim_table<float>(); }
const OptimTable<double>* scalar_optim_f64() { return portable::optim_table<double>(); }
}  // namespace rnnkit
