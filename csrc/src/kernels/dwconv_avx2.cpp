// Depthwise row kernels compiled for the avx2 path (flags set per file in
// CMakeLists.txt); the bodies are in dwconv_body.hpp, the intrinsics in simd_avx2.hpp.
#include "kernels/dwconv_body.hpp"
#include "kernels/kernels.hpp"
#include "kernels/simd_avx2.hpp"

namespace convx::detail {

DwKernel<float> dwconv_f32_avx2() {
  return {&dw_row_simd<Avx2F32, float>, Avx2F32::kLanes, "f32 dwconv 8-lane avx2"};
}

DwKernel<double> dwconv_f64_avx2() {
  return {&dw_row_simd<Avx2F64, double>, Avx2F64::kLanes, "f64 dwconv 4-lane avx2"};
}

}  // namespace convx::detail
