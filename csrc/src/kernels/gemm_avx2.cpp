// AVX2 + FMA3 micro-kernels. Compiled with -mavx2 -mfma (this file only) and
// called only when cpuid/xgetbv report both with OS-saved ymm state.
//
// Register tile: 6 rows x 2 ymm vectors = 12 accumulators, leaving 4 of the 16
// ymm registers for the B vectors and the A broadcast. Twelve independent
// chains cover two FMA pipes of latency 4-5.
#include "kernels/kernels.hpp"
#include "kernels/simd_avx2.hpp"
#include "kernels/ukernel_simd.hpp"

namespace convx::detail {

GemmKernel<float> sgemm_kernel_avx2() {
  return {&ukernel_simd<Avx2F32, float, 6, 2>, 6, 16, 144, 256, 4096,
          "sgemm_ukernel_6x16__avx2"};
}

GemmKernel<double> dgemm_kernel_avx2() {
  return {&ukernel_simd<Avx2F64, double, 6, 2>, 6, 8, 96, 256, 4096,
          "dgemm_ukernel_6x8__avx2"};
}

// 12 independent ymm chains: enough to cover two FMA pipes' latency.
float fma_peak_loop_avx2(std::int64_t iterations) {
  return fma_peak_loop<Avx2F32, float, 12>(iterations);
}

}  // namespace convx::detail
