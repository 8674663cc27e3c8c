// The catalogue of compiled micro-kernels. Portable code reaches them only
// through runtime/kernel_table.hpp, never by name.
//
// Rule for ISA files: they contain kernels and intrinsics only. Any inline
// function they instantiate from a shared header (or the standard library)
// could be merged by the linker with a copy from a portable file and then run
// on a CPU without that ISA, so shared helpers live in anonymous namespaces and
// timing, allocation and containers stay in portable code.
#pragma once

#include "kernels/direct.hpp"
#include "kernels/dwconv.hpp"
#include "kernels/ukernel.hpp"

namespace convx::detail {

// Always built: the fallback path and a second oracle for the SIMD kernels.
GemmKernel<float> sgemm_kernel_scalar();
GemmKernel<double> dgemm_kernel_scalar();
DwRowFn<float> sdwconv_row_scalar();
DwRowFn<double> ddwconv_row_scalar();

#if defined(CONVX_HAVE_AVX2_KERNELS)
GemmKernel<float> sgemm_kernel_avx2();
GemmKernel<double> dgemm_kernel_avx2();
DwRowFn<float> sdwconv_row_avx2();
DwRowFn<double> ddwconv_row_avx2();
DirectKernel<float> sdirect_kernel_avx2();
DirectKernel<double> ddirect_kernel_avx2();
float fma_peak_loop_avx2(std::int64_t iterations);  // 192 flops per iteration
void pack_columns_f32_avx2(float* dst, const float* src, std::int64_t ld, std::int64_t cols,
                           std::int64_t kc, int nr);
#endif

#if defined(CONVX_HAVE_AVX512_KERNELS)
GemmKernel<float> sgemm_kernel_avx512();
GemmKernel<double> dgemm_kernel_avx512();
DwRowFn<float> sdwconv_row_avx512();
DwRowFn<double> ddwconv_row_avx512();
DirectKernel<float> sdirect_kernel_avx512();
DirectKernel<double> ddirect_kernel_avx512();
float fma_peak_loop_avx512(std::int64_t iterations);  // 768 flops per iteration
#endif

}  // namespace convx::detail
