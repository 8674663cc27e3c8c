// NCHW patch-row packers for the avx2 path (flags set per file in CMakeLists.txt); the body is in
// patch_pack_body.hpp, the intrinsics in simd_avx2.hpp.
#include "kernels/kernels.hpp"
#include "kernels/patch_pack_body.hpp"
#include "kernels/simd_avx2.hpp"

namespace convx::detail {

PatchPackKernel<float> patch_pack_f32_avx2() {
  return {&patch_rows_simd<Avx2F32, float>, Avx2F32::kLanes, "f32 patch rows 8-lane avx2"};
}

PatchPackKernel<double> patch_pack_f64_avx2() {
  return {&patch_rows_simd<Avx2F64, double>, Avx2F64::kLanes, "f64 patch rows 4-lane avx2"};
}

}  // namespace convx::detail
