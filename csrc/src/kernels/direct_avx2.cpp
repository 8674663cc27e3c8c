// Small-K direct convolution kernels for the avx2 path (flags set per file in
// CMakeLists.txt); body in direct_body.hpp, intrinsics in simd_avx2.hpp.
#include "kernels/direct_body.hpp"
#include "kernels/kernels.hpp"
#include "kernels/simd_avx2.hpp"

namespace convx::detail {

DirectKernel<float> direct_f32_avx2() {
  return {&direct_row<Avx2F32, float>, Avx2F32::kLanes, "f32 direct 8-lane avx2"};
}

DirectKernel<double> direct_f64_avx2() {
  return {&direct_row<Avx2F64, double>, Avx2F64::kLanes, "f64 direct 4-lane avx2"};
}

}  // namespace convx::detail
