// AVX-512F micro-kernels. Compiled with -mavx512f (this file only) and called
// only when cpuid/xgetbv report AVX-512 with OS-saved zmm state.
//
// Register tile: 12 rows x 2 zmm vectors = 24 accumulators of the 32 zmm
// registers, enough independent chains for two 512-bit FMA pipes. Partial
// rows use the opmask registers.
#include "kernels/kernels.hpp"
#include "kernels/simd_avx512.hpp"
#include "kernels/ukernel_simd.hpp"

namespace convx::detail {

GemmKernel<float> gemm_f32_12x32_avx512() {
  return {&ukernel_simd<Avx512F32, float, 12, 2>, 12, 32, "f32 12x32 avx512"};
}

GemmKernel<double> gemm_f64_12x16_avx512() {
  return {&ukernel_simd<Avx512F64, double, 12, 2>, 12, 16, "f64 12x16 avx512"};
}

// 24 independent zmm chains: enough to cover two FMA pipes' latency.
float fma_peak_loop_avx512(std::int64_t iterations) {
  return fma_peak_loop<Avx512F32, float, 24>(iterations);
}

}  // namespace convx::detail
