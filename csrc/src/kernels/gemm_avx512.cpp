// AVX-512F micro-kernels. Compiled with -mavx512f (this file only) and called
// only when cpuid/xgetbv report AVX-512 with OS-saved zmm state.
//
// Register tile: MR rows of A broadcast against NV zmm vectors of B, giving
// MR*NV accumulators (24 here, enough to cover the FMA latency of two pipes).
#include <immintrin.h>

#include "kernels/kernels.hpp"

namespace convx::detail {
namespace {

template <typename T>
struct Zmm;

template <>
struct Zmm<float> {
  using V = __m512;
  static constexpr int kLanes = 16;
  static V zero() { return _mm512_setzero_ps(); }
  static V load(const float* p) { return _mm512_load_ps(p); }
  static V loadu(const float* p) { return _mm512_loadu_ps(p); }
  static V loadu(const float* p, int n) {
    return _mm512_maskz_loadu_ps(static_cast<__mmask16>((1u << n) - 1), p);
  }
  static V bcast(const float* p) { return _mm512_set1_ps(*p); }
  static V fma(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }
  static V add(V a, V b) { return _mm512_add_ps(a, b); }
  static V relu(V a) { return _mm512_max_ps(a, zero()); }
  static void storeu(float* p, V v) { _mm512_storeu_ps(p, v); }
  static void storeu(float* p, V v, int n) {
    _mm512_mask_storeu_ps(p, static_cast<__mmask16>((1u << n) - 1), v);
  }
  static void store(float* p, V v) { _mm512_store_ps(p, v); }
};

template <>
struct Zmm<double> {
  using V = __m512d;
  static constexpr int kLanes = 8;
  static V zero() { return _mm512_setzero_pd(); }
  static V load(const double* p) { return _mm512_load_pd(p); }
  static V loadu(const double* p) { return _mm512_loadu_pd(p); }
  static V loadu(const double* p, int n) {
    return _mm512_maskz_loadu_pd(static_cast<__mmask8>((1u << n) - 1), p);
  }
  static V bcast(const double* p) { return _mm512_set1_pd(*p); }
  static V fma(V a, V b, V c) { return _mm512_fmadd_pd(a, b, c); }
  static V add(V a, V b) { return _mm512_add_pd(a, b); }
  static V relu(V a) { return _mm512_max_pd(a, zero()); }
  static void storeu(double* p, V v) { _mm512_storeu_pd(p, v); }
  static void storeu(double* p, V v, int n) {
    _mm512_mask_storeu_pd(p, static_cast<__mmask8>((1u << n) - 1), v);
  }
  static void store(double* p, V v) { _mm512_store_pd(p, v); }
};

template <typename T, int MR, int NV>
void ukernel_avx512(std::int64_t k, const T* a, const T* b, T* c, std::int64_t rs_c,
                    std::int64_t cs_c, std::int64_t m, std::int64_t n, bool accumulate,
                    const TileEpilogue<T>* ep) {
  using Z = Zmm<T>;
  using V = typename Z::V;
  constexpr int L = Z::kLanes;
  constexpr int NR = NV * L;
  V acc[MR][NV];
#pragma GCC unroll 32
  for (int i = 0; i < MR; ++i) {
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) acc[i][v] = Z::zero();
  }
  for (std::int64_t p = 0; p < k; ++p) {
    V bv[NV];
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) bv[v] = Z::load(b + v * L);
#pragma GCC unroll 32
    for (int i = 0; i < MR; ++i) {
      const V ai = Z::bcast(a + i);
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) acc[i][v] = Z::fma(ai, bv[v], acc[i][v]);
    }
    a += MR;
    b += NR;
  }

  if (cs_c != 1) {
    alignas(64) T tile[MR * NR];
#pragma GCC unroll 32
    for (int i = 0; i < MR; ++i) {
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) Z::store(tile + i * NR + v * L, acc[i][v]);
    }
    store_tile_generic(tile, NR, c, rs_c, cs_c, m, n, accumulate, ep);
    return;
  }
  // Row-contiguous C: vector stores, masked on the last partial vector.
  const T* bias_row = ep ? ep->bias_row : nullptr;
  const T* bias_col = ep ? ep->bias_col : nullptr;
  const bool relu = ep && ep->relu;
  V bias_v[NV];
#pragma GCC unroll 4
  for (int v = 0; v < NV; ++v) {
    const int live = static_cast<int>(n) - v * L;
    bias_v[v] = (bias_col == nullptr || live <= 0) ? Z::zero()
                : live >= L                       ? Z::loadu(bias_col + v * L)
                                                  : Z::loadu(bias_col + v * L, live);
  }
#pragma GCC unroll 32
  for (int i = 0; i < MR; ++i) {
    if (i >= m) break;
    T* row = c + i * rs_c;
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) {
      const int live = static_cast<int>(n) - v * L;
      if (live <= 0) break;
      V r = acc[i][v];
      if (live >= L) {
        if (accumulate) r = Z::add(r, Z::loadu(row + v * L));
      } else if (accumulate) {
        r = Z::add(r, Z::loadu(row + v * L, live));
      }
      if (ep != nullptr) {
        r = Z::add(r, bias_v[v]);
        if (bias_row != nullptr) r = Z::add(r, Z::bcast(bias_row + i));
        if (relu) r = Z::relu(r);
      }
      if (live >= L) {
        Z::storeu(row + v * L, r);
      } else {
        Z::storeu(row + v * L, r, live);
      }
    }
  }
}

}  // namespace

GemmKernel<float> sgemm_kernel_avx512() {
  return {&ukernel_avx512<float, 12, 2>, 12, 32, 480, 256, 4096, "sgemm_ukernel_12x32__avx512"};
}

GemmKernel<double> dgemm_kernel_avx512() {
  return {&ukernel_avx512<double, 12, 2>, 12, 16, 240, 256, 4096, "dgemm_ukernel_12x16__avx512"};
}

}  // namespace convx::detail
