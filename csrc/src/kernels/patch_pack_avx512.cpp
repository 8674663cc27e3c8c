// NCHW patch-row packers for the avx512 path (flags set per file in CMakeLists.txt); the body is in
// patch_pack_body.hpp, the intrinsics in simd_avx512.hpp.
#include "kernels/kernels.hpp"
#include "kernels/patch_pack_body.hpp"
#include "kernels/simd_avx512.hpp"

namespace convx::detail {

PatchPackKernel<float> patch_pack_f32_avx512() {
  return {&patch_rows_simd<Avx512F32, float>, Avx512F32::kLanes, "f32 patch rows 16-lane avx512"};
}

PatchPackKernel<double> patch_pack_f64_avx512() {
  return {&patch_rows_simd<Avx512F64, double>, Avx512F64::kLanes, "f64 patch rows 8-lane avx512"};
}

}  // namespace convx::detail
