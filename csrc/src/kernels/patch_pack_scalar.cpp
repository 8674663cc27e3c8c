// NCHW patch-row packers for the scalar path (compiled without ISA flags); the body is in
// patch_pack_body.hpp, the intrinsics in simd_scalar.hpp.
#include "kernels/kernels.hpp"
#include "kernels/patch_pack_body.hpp"
#include "kernels/simd_scalar.hpp"

namespace convx::detail {

PatchPackKernel<float> patch_pack_f32_scalar() {
  return {&patch_rows_simd<ScalarF32, float>, ScalarF32::kLanes, "f32 patch rows 1-lane scalar"};
}

PatchPackKernel<double> patch_pack_f64_scalar() {
  return {&patch_rows_simd<ScalarF64, double>, ScalarF64::kLanes, "f64 patch rows 1-lane scalar"};
}

}  // namespace convx::detail
