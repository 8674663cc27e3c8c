// Small-K direct convolution kernels for the scalar path (no ISA flags;
// always built); body in direct_body.hpp, one-lane traits in simd_scalar.hpp.
#include "kernels/direct_body.hpp"
#include "kernels/kernels.hpp"
#include "kernels/simd_scalar.hpp"

namespace convx::detail {

DirectKernel<float> direct_f32_scalar() {
  return {&direct_row<ScalarF32, float>, ScalarF32::kLanes, "f32 direct 1-lane scalar"};
}

DirectKernel<double> direct_f64_scalar() {
  return {&direct_row<ScalarF64, double>, ScalarF64::kLanes, "f64 direct 1-lane scalar"};
}

}  // namespace convx::detail
