// The catalogue of compiled micro-kernels. Portable code reaches them only
// through kernels/kernel_table.hpp, never by name.
//
// Rule for ISA files: they contain kernels and intrinsics only. Any inline
// function they instantiate from a shared header (or the standard library)
// could be merged by the linker with a copy from a portable file and then run
// on a CPU without that ISA, so shared helpers live in anonymous namespaces and
// timing, allocation and containers stay in portable code.
#pragma once

#include "kernels/direct.hpp"
#include "kernels/dwconv.hpp"
#include "kernels/patch_pack.hpp"
#include "kernels/ukernel.hpp"
#include "kernels/winograd.hpp"

namespace convx::detail {

// Factories are named <family>_<dtype>[_<tile>]_<isa>: a GEMM micro-kernel
// carries its MR x NR register tile; the row kernels (direct, dwconv) run
// along one output row, vectorised across channels, and have no tile. Each
// descriptor's `name` says the same for people: "f32 12x32 avx512",
// "f32 direct 16-lane avx512", "f64 dwconv 4-lane avx2".

// Always built: the fallback path and a second oracle for the SIMD kernels.
GemmKernel<float> gemm_f32_4x8_scalar();
GemmKernel<double> gemm_f64_4x4_scalar();
DwKernel<float> dwconv_f32_scalar();
DwKernel<double> dwconv_f64_scalar();
DirectKernel<float> direct_f32_scalar();
DirectKernel<double> direct_f64_scalar();
WinogradKernel<float> winograd_f32_scalar();
WinogradKernel<double> winograd_f64_scalar();
PatchPackKernel<float> patch_pack_f32_scalar();
PatchPackKernel<double> patch_pack_f64_scalar();

#if defined(CONVX_HAVE_AVX2_KERNELS)
GemmKernel<float> gemm_f32_6x16_avx2();
GemmKernel<double> gemm_f64_6x8_avx2();
DwKernel<float> dwconv_f32_avx2();
DwKernel<double> dwconv_f64_avx2();
DirectKernel<float> direct_f32_avx2();
DirectKernel<double> direct_f64_avx2();
WinogradKernel<float> winograd_f32_avx2();
WinogradKernel<double> winograd_f64_avx2();
PatchPackKernel<float> patch_pack_f32_avx2();
PatchPackKernel<double> patch_pack_f64_avx2();
float fma_peak_loop_avx2(std::int64_t iterations);  // 192 flops per iteration
void pack_columns_f32_avx2(float* dst, const float* src, std::int64_t ld, std::int64_t cols,
                           std::int64_t kc, int nr);
#endif

#if defined(CONVX_HAVE_AVX512_KERNELS)
GemmKernel<float> gemm_f32_12x32_avx512();
GemmKernel<double> gemm_f64_12x16_avx512();
DwKernel<float> dwconv_f32_avx512();
DwKernel<double> dwconv_f64_avx512();
DirectKernel<float> direct_f32_avx512();
DirectKernel<double> direct_f64_avx512();
WinogradKernel<float> winograd_f32_avx512();
WinogradKernel<double> winograd_f64_avx512();
PatchPackKernel<float> patch_pack_f32_avx512();
PatchPackKernel<double> patch_pack_f64_avx512();
float fma_peak_loop_avx512(std::int64_t iterations);  // 768 flops per iteration
#endif

}  // namespace convx::detail
