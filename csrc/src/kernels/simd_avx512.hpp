// Vector traits for the AVX512 kernels: the intrinsics behind the portable
// kernel bodies (ukernel_simd.hpp, dwconv_body.hpp). Include only from files
// compiled with -mavx512f (and DQ, VL, BW); the traits live in an anonymous
// namespace so each such file keeps its own copy.
#pragma once

#include <immintrin.h>

// GCC 12 warns that the intrinsics' internal _mm512_undefined_*() operands are
// "maybe uninitialized"; they are undefined by design.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"

#include <cstdint>

namespace convx::detail {
namespace {

struct Avx512F32 {
  using V = __m512;
  static constexpr int kLanes = 16;
  static __mmask16 mask(int n) { return static_cast<__mmask16>((1u << n) - 1u); }
  static V zero() { return _mm512_setzero_ps(); }
  static V load(const float* p) { return _mm512_load_ps(p); }
  static V loadu(const float* p) { return _mm512_loadu_ps(p); }
  static V loadu_n(const float* p, int n) { return _mm512_maskz_loadu_ps(mask(n), p); }
  static V bcast(const float* p) { return _mm512_set1_ps(*p); }
  static V fma(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }
  static V add(V a, V b) { return _mm512_add_ps(a, b); }
  // max returns its second operand when either is NaN: relu keeps NaN.
  static V relu(V a) { return _mm512_max_ps(zero(), a); }
  static void storeu(float* p, V v) { _mm512_storeu_ps(p, v); }
  static void storeu_n(float* p, V v, int n) { _mm512_mask_storeu_ps(p, mask(n), v); }
  static void store(float* p, V v) { _mm512_store_ps(p, v); }
  using Mask = __mmask16;
  static Mask lane_mask(std::uint32_t bits) { return static_cast<Mask>(bits); }
  static V load_lanes(V v, Mask m, const float* p) { return _mm512_mask_loadu_ps(v, m, p); }
  static V gather_lanes(V v, Mask m, const float* p, std::int64_t step) {
    const __m512i idx = _mm512_mullo_epi32(
        _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
        _mm512_set1_epi32(static_cast<int>(step)));
    return _mm512_mask_i32gather_ps(v, m, idx, p, 4);
  }
  // Lanes j of m from p[2j], the others from v: the two halves of p[0, 32)
  // loaded where `pairs` (bit 2j for each lane j of m) asks, then the even
  // elements picked, far cheaper than a gather.
  static V load_lanes_step2(V v, Mask m, std::uint32_t pairs, const float* p) {
    const __m512 lo = _mm512_maskz_loadu_ps(static_cast<__mmask16>(pairs), p);
    const __m512 hi = _mm512_maskz_loadu_ps(static_cast<__mmask16>(pairs >> 16), p + 16);
    const __m512i even =
        _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    return _mm512_mask_mov_ps(v, m, _mm512_permutex2var_ps(lo, even, hi));
  }
};

struct Avx512F64 {
  using V = __m512d;
  static constexpr int kLanes = 8;
  static __mmask8 mask(int n) { return static_cast<__mmask8>((1u << n) - 1u); }
  static V zero() { return _mm512_setzero_pd(); }
  static V load(const double* p) { return _mm512_load_pd(p); }
  static V loadu(const double* p) { return _mm512_loadu_pd(p); }
  static V loadu_n(const double* p, int n) { return _mm512_maskz_loadu_pd(mask(n), p); }
  static V bcast(const double* p) { return _mm512_set1_pd(*p); }
  static V fma(V a, V b, V c) { return _mm512_fmadd_pd(a, b, c); }
  static V add(V a, V b) { return _mm512_add_pd(a, b); }
  static V relu(V a) { return _mm512_max_pd(zero(), a); }
  static void storeu(double* p, V v) { _mm512_storeu_pd(p, v); }
  static void storeu_n(double* p, V v, int n) { _mm512_mask_storeu_pd(p, mask(n), v); }
  static void store(double* p, V v) { _mm512_store_pd(p, v); }
  using Mask = __mmask8;
  static Mask lane_mask(std::uint32_t bits) { return static_cast<Mask>(bits); }
  static V load_lanes(V v, Mask m, const double* p) { return _mm512_mask_loadu_pd(v, m, p); }
  static V gather_lanes(V v, Mask m, const double* p, std::int64_t step) {
    const __m256i idx = _mm256_mullo_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
                                           _mm256_set1_epi32(static_cast<int>(step)));
    return _mm512_mask_i32gather_pd(v, m, idx, p, 8);
  }
  static V load_lanes_step2(V v, Mask m, std::uint32_t pairs, const double* p) {
    const __m512d lo = _mm512_maskz_loadu_pd(static_cast<__mmask8>(pairs), p);
    const __m512d hi = _mm512_maskz_loadu_pd(static_cast<__mmask8>(pairs >> 8), p + 8);
    const __m512i even = _mm512_setr_epi64(0, 2, 4, 6, 8, 10, 12, 14);
    return _mm512_mask_mov_pd(v, m, _mm512_permutex2var_pd(lo, even, hi));
  }
};

}  // namespace
}  // namespace convx::detail
