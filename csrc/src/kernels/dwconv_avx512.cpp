// Depthwise row kernels compiled for the avx512 path (flags set per file in
// CMakeLists.txt); the bodies are in dwconv_body.hpp, the intrinsics in simd_avx512.hpp.
#include "kernels/dwconv_body.hpp"
#include "kernels/kernels.hpp"
#include "kernels/simd_avx512.hpp"

namespace convx::detail {

DwKernel<float> dwconv_f32_avx512() {
  return {&dw_row_simd<Avx512F32, float>, Avx512F32::kLanes, "f32 dwconv 16-lane avx512"};
}

DwKernel<double> dwconv_f64_avx512() {
  return {&dw_row_simd<Avx512F64, double>, Avx512F64::kLanes, "f64 dwconv 8-lane avx512"};
}

}  // namespace convx::detail
