// The catalogue of compiled micro-kernels. Portable code reaches them only
// through runtime/kernel_table.hpp, never by name.
#pragma once

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
double fma_peak_gflops_avx2(std::int64_t iterations);
#endif

#if defined(CONVX_HAVE_AVX512_KERNELS)
GemmKernel<float> sgemm_kernel_avx512();
GemmKernel<double> dgemm_kernel_avx512();
DwRowFn<float> sdwconv_row_avx512();
DwRowFn<double> ddwconv_row_avx512();
double fma_peak_gflops_avx512(std::int64_t iterations);
#endif

}  // namespace convx::detail
