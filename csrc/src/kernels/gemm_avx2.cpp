// AVX2 + FMA3 micro-kernels. Compiled with -mavx2 -mfma (this file only) and
// called only when cpuid/xgetbv report both with OS-saved ymm state.
//
// Register tile: 6 rows x 2 ymm vectors = 12 accumulators, leaving 4 of the 16
// ymm registers for B loads and A broadcasts.
#include <immintrin.h>

#include "kernels/kernels.hpp"

namespace convx::detail {
namespace {

template <typename T>
struct Ymm;

template <>
struct Ymm<float> {
  using V = __m256;
  static constexpr int kLanes = 8;
  static V zero() { return _mm256_setzero_ps(); }
  static V load(const float* p) { return _mm256_load_ps(p); }
  static V loadu(const float* p) { return _mm256_loadu_ps(p); }
  static V bcast(const float* p) { return _mm256_broadcast_ss(p); }
  static V fma(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
  static V add(V a, V b) { return _mm256_add_ps(a, b); }
  static V relu(V a) { return _mm256_max_ps(a, zero()); }
  static void storeu(float* p, V v) { _mm256_storeu_ps(p, v); }
  static void store(float* p, V v) { _mm256_store_ps(p, v); }
};

template <>
struct Ymm<double> {
  using V = __m256d;
  static constexpr int kLanes = 4;
  static V zero() { return _mm256_setzero_pd(); }
  static V load(const double* p) { return _mm256_load_pd(p); }
  static V loadu(const double* p) { return _mm256_loadu_pd(p); }
  static V bcast(const double* p) { return _mm256_broadcast_sd(p); }
  static V fma(V a, V b, V c) { return _mm256_fmadd_pd(a, b, c); }
  static V add(V a, V b) { return _mm256_add_pd(a, b); }
  static V relu(V a) { return _mm256_max_pd(a, zero()); }
  static void storeu(double* p, V v) { _mm256_storeu_pd(p, v); }
  static void store(double* p, V v) { _mm256_store_pd(p, v); }
};

template <typename T, int MR, int NV>
void ukernel_avx2(std::int64_t k, const T* a, const T* b, T* c, std::int64_t rs_c,
                  std::int64_t cs_c, std::int64_t m, std::int64_t n, bool accumulate,
                  const TileEpilogue<T>* ep) {
  using Y = Ymm<T>;
  using V = typename Y::V;
  constexpr int L = Y::kLanes;
  constexpr int NR = NV * L;
  V acc[MR][NV];
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i) {
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) acc[i][v] = Y::zero();
  }
  for (std::int64_t p = 0; p < k; ++p) {
    V bv[NV];
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) bv[v] = Y::load(b + v * L);
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i) {
      const V ai = Y::bcast(a + i);
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) acc[i][v] = Y::fma(ai, bv[v], acc[i][v]);
    }
    a += MR;
    b += NR;
  }

  if (cs_c != 1 || m != MR || n != NR) {
    // Partial or strided tiles go through the shared scalar store.
    alignas(32) T tile[MR * NR];
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i) {
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) Y::store(tile + i * NR + v * L, acc[i][v]);
    }
    store_tile_generic(tile, NR, c, rs_c, cs_c, m, n, accumulate, ep);
    return;
  }
  const T* bias_row = ep ? ep->bias_row : nullptr;
  const T* bias_col = ep ? ep->bias_col : nullptr;
  const bool relu = ep && ep->relu;
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i) {
    T* row = c + i * rs_c;
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) {
      V r = acc[i][v];
      if (accumulate) r = Y::add(r, Y::loadu(row + v * L));
      if (ep != nullptr) {
        if (bias_col != nullptr) r = Y::add(r, Y::loadu(bias_col + v * L));
        if (bias_row != nullptr) r = Y::add(r, Y::bcast(bias_row + i));
        if (relu) r = Y::relu(r);
      }
      Y::storeu(row + v * L, r);
    }
  }
}

}  // namespace

GemmKernel<float> sgemm_kernel_avx2() {
  return {&ukernel_avx2<float, 6, 2>, 6, 16, 144, 256, 4096, "sgemm_ukernel_6x16__avx2"};
}

GemmKernel<double> dgemm_kernel_avx2() {
  return {&ukernel_avx2<double, 6, 2>, 6, 8, 96, 256, 4096, "dgemm_ukernel_6x8__avx2"};
}

}  // namespace convx::detail
