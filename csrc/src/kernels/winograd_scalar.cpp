// Winograd F(4x4, 3x3) transform kernels for the scalar path (no ISA flags;
// always built); body in winograd_body.hpp.
#include "kernels/kernels.hpp"
#include "kernels/winograd_body.hpp"

namespace convx::detail {

WinogradKernel<float> winograd_f32_scalar() {
  return {&wino_input<float>, &wino_output<float>, "f32 winograd-4x3 scalar"};
}

WinogradKernel<double> winograd_f64_scalar() {
  return {&wino_input<double>, &wino_output<double>, "f64 winograd-4x3 scalar"};
}

}  // namespace convx::detail
