// Portable C++ micro-kernels: plain loops over an MR x NR tile, which the
// compiler may auto-vectorise for the baseline ISA. Always built: the fallback
// path and a second oracle for the SIMD kernels.
#include "kernels/kernels.hpp"

namespace convx::detail {
namespace {

template <typename T, int MR, int NR>
void ukernel_scalar(std::int64_t k, const T* a, std::int64_t lda, std::int64_t run,
                    std::int64_t run_step, const T* b, T* c, std::int64_t rs_c,
                    std::int64_t cs_c, std::int64_t m, std::int64_t n, bool accumulate,
                    const TileEpilogue<T>* ep) {
  T acc[MR * NR] = {};
  for (std::int64_t p0 = 0; p0 < k; p0 += run, a += run_step) {
    const std::int64_t len = k - p0 < run ? k - p0 : run;
    for (std::int64_t q = 0; q < len; ++q) {
      const T* bp = b + (p0 + q) * NR;
      for (int i = 0; i < MR; ++i) {
        const T ai = a[i * lda + q];
        for (int j = 0; j < NR; ++j) acc[i * NR + j] += ai * bp[j];
      }
    }
  }
  store_tile_generic(acc, NR, c, rs_c, cs_c, m, n, accumulate, ep);
}

}  // namespace

GemmKernel<float> gemm_f32_4x8_scalar() {
  return {&ukernel_scalar<float, 4, 8>, 4, 8, "f32 4x8 scalar"};
}

GemmKernel<double> gemm_f64_4x4_scalar() {
  return {&ukernel_scalar<double, 4, 4>, 4, 4, "f64 4x4 scalar"};
}

}  // namespace convx::detail
