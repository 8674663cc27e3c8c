// Depthwise row kernels compiled for the avx512 path (flags set per file in
// CMakeLists.txt); the bodies are in dwconv_body.hpp, the intrinsics in simd_avx512.hpp.
#include "kernels/dwconv_body.hpp"
#include "kernels/kernels.hpp"
#include "kernels/simd_avx512.hpp"

namespace convx::detail {

DwRowFn<float> sdwconv_row_avx512() { return &dw_row_simd<Avx512F32, float>; }
DwRowFn<double> ddwconv_row_avx512() { return &dw_row_simd<Avx512F64, double>; }

}  // namespace convx::detail
