// The catalogue of compiled micro-kernels. Portable code reaches them only
// through runtime/kernel_table.hpp, never by name.
#pragma once

#include "kernels/ukernel.hpp"

namespace convx::detail {

// Always built: the fallback path and a second oracle for the SIMD kernels.
GemmKernel<float> sgemm_kernel_scalar();
GemmKernel<double> dgemm_kernel_scalar();

#if defined(CONVX_HAVE_AVX2_KERNELS)
GemmKernel<float> sgemm_kernel_avx2();
GemmKernel<double> dgemm_kernel_avx2();
#endif

#if defined(CONVX_HAVE_AVX512_KERNELS)
GemmKernel<float> sgemm_kernel_avx512();
GemmKernel<double> dgemm_kernel_avx512();
#endif

}  // namespace convx::detail
