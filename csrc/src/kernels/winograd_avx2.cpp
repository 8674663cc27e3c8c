// Winograd F(4x4, 3x3) transform kernels for the avx2 path (flags set per
// file in CMakeLists.txt); body in winograd_body.hpp.
#include "kernels/kernels.hpp"
#include "kernels/winograd_body.hpp"

namespace convx::detail {

WinogradKernel<float> winograd_f32_avx2() {
  return {&wino_input<float>, &wino_output<float>, "f32 winograd-4x3 avx2"};
}

WinogradKernel<double> winograd_f64_avx2() {
  return {&wino_input<double>, &wino_output<double>, "f64 winograd-4x3 avx2"};
}

}  // namespace convx::detail
