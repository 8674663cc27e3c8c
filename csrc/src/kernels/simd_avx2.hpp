// Vector traits for the AVX2 kernels: the intrinsics behind the portable
// kernel bodies (ukernel_simd.hpp, dwconv_body.hpp). Include only from files
// compiled with -mavx2 -mfma; the traits live in an anonymous namespace so
// each such file keeps its own copy.
#pragma once

#include <immintrin.h>

#include <cstdint>

namespace convx::detail {
namespace {

struct Avx2F32 {
  using V = __m256;
  static constexpr int kLanes = 8;
  static __m256i mask(int n) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  }
  static V zero() { return _mm256_setzero_ps(); }
  static V load(const float* p) { return _mm256_load_ps(p); }
  static V loadu(const float* p) { return _mm256_loadu_ps(p); }
  static V loadu_n(const float* p, int n) { return _mm256_maskload_ps(p, mask(n)); }
  static V bcast(const float* p) { return _mm256_broadcast_ss(p); }
  static V fma(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
  static V add(V a, V b) { return _mm256_add_ps(a, b); }
  // max returns its second operand when either is NaN: relu keeps NaN.
  static V relu(V a) { return _mm256_max_ps(zero(), a); }
  static void storeu(float* p, V v) { _mm256_storeu_ps(p, v); }
  // Not vmaskmovps: on AMD Zen 2/3 its store form is microcoded and costs
  // tens of cycles, more than the rest of a small row kernel. Plain 4-, 2-
  // and 1-lane stores write exactly the first n lanes too.
  static void storeu_n(float* p, V v, int n) {
    __m128 part = _mm256_castps256_ps128(v);
    if (n & 4) {
      _mm_storeu_ps(p, part);
      part = _mm256_extractf128_ps(v, 1);
      p += 4;
    }
    if (n & 2) {
      _mm_storel_pi(reinterpret_cast<__m64*>(p), part);
      part = _mm_movehl_ps(part, part);
      p += 2;
    }
    if (n & 1) _mm_store_ss(p, part);
  }
  static void store(float* p, V v) { _mm256_store_ps(p, v); }
  // Lane masks as vectors: maskload and blendv take them so.
  using Mask = __m256i;
  static Mask lane_mask(std::uint32_t bits) {
    const __m256i bit = _mm256_setr_epi32(1, 2, 4, 8, 16, 32, 64, 128);
    return _mm256_cmpeq_epi32(_mm256_and_si256(_mm256_set1_epi32(static_cast<int>(bits)), bit),
                              bit);
  }
  static V load_lanes(V v, Mask m, const float* p) {
    return _mm256_blendv_ps(v, _mm256_maskload_ps(p, m), _mm256_castsi256_ps(m));
  }
  static V gather_lanes(V v, Mask m, const float* p, std::int64_t step) {
    const __m256i idx = _mm256_mullo_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
                                           _mm256_set1_epi32(static_cast<int>(step)));
    return _mm256_mask_i32gather_ps(v, p, idx, _mm256_castsi256_ps(m), 4);
  }
  // Lanes j of m from p[2j] (see Avx512F32::load_lanes_step2): the even
  // elements of both halves, [lo0 lo2 hi0 hi2 | lo4 lo6 hi4 hi6], put in order
  // by moving 64-bit pairs.
  static V load_lanes_step2(V v, Mask m, std::uint32_t pairs, const float* p) {
    const __m256 lo = _mm256_maskload_ps(p, lane_mask(pairs & 0xFFu));
    const __m256 hi = _mm256_maskload_ps(p + 8, lane_mask(pairs >> 8));
    const __m256 even = _mm256_shuffle_ps(lo, hi, _MM_SHUFFLE(2, 0, 2, 0));
    const __m256 r = _mm256_castpd_ps(
        _mm256_permute4x64_pd(_mm256_castps_pd(even), _MM_SHUFFLE(3, 1, 2, 0)));
    return _mm256_blendv_ps(v, r, _mm256_castsi256_ps(m));
  }
};

struct Avx2F64 {
  using V = __m256d;
  static constexpr int kLanes = 4;
  static __m256i mask(int n) {
    return _mm256_cmpgt_epi64(_mm256_set1_epi64x(n), _mm256_setr_epi64x(0, 1, 2, 3));
  }
  static V zero() { return _mm256_setzero_pd(); }
  static V load(const double* p) { return _mm256_load_pd(p); }
  static V loadu(const double* p) { return _mm256_loadu_pd(p); }
  static V loadu_n(const double* p, int n) { return _mm256_maskload_pd(p, mask(n)); }
  static V bcast(const double* p) { return _mm256_broadcast_sd(p); }
  static V fma(V a, V b, V c) { return _mm256_fmadd_pd(a, b, c); }
  static V add(V a, V b) { return _mm256_add_pd(a, b); }
  static V relu(V a) { return _mm256_max_pd(zero(), a); }
  static void storeu(double* p, V v) { _mm256_storeu_pd(p, v); }
  static void storeu_n(double* p, V v, int n) {  // see Avx2F32::storeu_n
    __m128d part = _mm256_castpd256_pd128(v);
    if (n & 2) {
      _mm_storeu_pd(p, part);
      part = _mm256_extractf128_pd(v, 1);
      p += 2;
    }
    if (n & 1) _mm_store_sd(p, part);
  }
  static void store(double* p, V v) { _mm256_store_pd(p, v); }
  using Mask = __m256i;  // see Avx2F32::Mask
  static Mask lane_mask(std::uint32_t bits) {
    const __m256i bit = _mm256_setr_epi64x(1, 2, 4, 8);
    return _mm256_cmpeq_epi64(_mm256_and_si256(_mm256_set1_epi64x(bits), bit), bit);
  }
  static V load_lanes(V v, Mask m, const double* p) {
    return _mm256_blendv_pd(v, _mm256_maskload_pd(p, m), _mm256_castsi256_pd(m));
  }
  static V gather_lanes(V v, Mask m, const double* p, std::int64_t step) {
    const __m128i idx = _mm_mullo_epi32(_mm_setr_epi32(0, 1, 2, 3),
                                        _mm_set1_epi32(static_cast<int>(step)));
    return _mm256_mask_i32gather_pd(v, p, idx, _mm256_castsi256_pd(m), 8);
  }
  // Lanes j of m from p[2j]: [lo0 hi0 lo2 hi2] reordered to [lo0 lo2 hi0 hi2].
  static V load_lanes_step2(V v, Mask m, std::uint32_t pairs, const double* p) {
    const __m256d lo = _mm256_maskload_pd(p, lane_mask(pairs & 0xFu));
    const __m256d hi = _mm256_maskload_pd(p + 4, lane_mask(pairs >> 4));
    const __m256d r =
        _mm256_permute4x64_pd(_mm256_unpacklo_pd(lo, hi), _MM_SHUFFLE(3, 1, 2, 0));
    return _mm256_blendv_pd(v, r, _mm256_castsi256_pd(m));
  }
};

}  // namespace
}  // namespace convx::detail
