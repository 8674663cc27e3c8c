// Small-K direct convolution kernels for the avx512 path (flags set per file in
// CMakeLists.txt); body in direct_body.hpp, intrinsics in simd_avx512.hpp.
#include "kernels/direct_body.hpp"
#include "kernels/kernels.hpp"
#include "kernels/simd_avx512.hpp"

namespace convx::detail {

DirectKernel<float> sdirect_kernel_avx512() { return {&direct_row<Avx512F32, float>, Avx512F32::kLanes}; }
DirectKernel<double> ddirect_kernel_avx512() {
  return {&direct_row<Avx512F64, double>, Avx512F64::kLanes};
}

}  // namespace convx::detail
