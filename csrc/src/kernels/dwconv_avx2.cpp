// Depthwise row kernels compiled for the avx2 path (flags set per file in
// CMakeLists.txt); the bodies are in dwconv_body.hpp, the intrinsics in simd_avx2.hpp.
#include "kernels/dwconv_body.hpp"
#include "kernels/kernels.hpp"
#include "kernels/simd_avx2.hpp"

namespace convx::detail {

DwRowFn<float> sdwconv_row_avx2() { return &dw_row_simd<Avx2F32, float>; }
DwRowFn<double> ddwconv_row_avx2() { return &dw_row_simd<Avx2F64, double>; }

}  // namespace convx::detail
