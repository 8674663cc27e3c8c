// Small-K direct convolution kernels for the avx512 path (flags set per file in
// CMakeLists.txt); body in direct_body.hpp, intrinsics in simd_avx512.hpp.
#include "kernels/direct_body.hpp"
#include "kernels/kernels.hpp"
#include "kernels/simd_avx512.hpp"

namespace convx::detail {

DirectKernel<float> direct_f32_avx512() {
  return {&direct_row<Avx512F32, float>, Avx512F32::kLanes, "f32 direct 16-lane avx512"};
}

DirectKernel<double> direct_f64_avx512() {
  return {&direct_row<Avx512F64, double>, Avx512F64::kLanes, "f64 direct 8-lane avx512"};
}

}  // namespace convx::detail
