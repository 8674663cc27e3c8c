// AVX2 + FMA3 micro-kernels. Compiled with -mavx2 -mfma (this file only) and
// called only when cpuid/xgetbv report both with OS-saved ymm state.
//
// Register tile: 6 rows x 2 ymm vectors = 12 accumulators, leaving 4 of the 16
// ymm registers for the B vectors and the A broadcast. Twelve independent
// chains cover two FMA pipes of latency 4-5.
#include "kernels/kernels.hpp"
#include "kernels/simd_avx2.hpp"
#include "kernels/ukernel_simd.hpp"

namespace convx::detail {

GemmKernel<float> gemm_f32_6x16_avx2() {
  return {&ukernel_simd<Avx2F32, float, 6, 2>, 6, 16, "f32 6x16 avx2", &pack_columns_f32_avx2};
}

GemmKernel<double> gemm_f64_6x8_avx2() {
  return {&ukernel_simd<Avx2F64, double, 6, 2>, 6, 8, "f64 6x8 avx2"};
}

namespace {

// In-register transpose of an 8x8 block of floats held as 8 row vectors.
inline void transpose8x8(__m256 (&r)[8]) {
  __m256 t[8], u[8];
  for (int i = 0; i < 8; i += 2) {
    t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
    t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
  }
  for (int i = 0; i < 8; i += 4) {
    u[i] = _mm256_shuffle_ps(t[i], t[i + 2], _MM_SHUFFLE(1, 0, 1, 0));
    u[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], _MM_SHUFFLE(3, 2, 3, 2));
    u[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], _MM_SHUFFLE(1, 0, 1, 0));
    u[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], _MM_SHUFFLE(3, 2, 3, 2));
  }
  for (int i = 0; i < 4; ++i) {
    r[i] = _mm256_permute2f128_ps(u[i], u[i + 4], 0x20);
    r[i + 4] = _mm256_permute2f128_ps(u[i], u[i + 4], 0x31);
  }
}

}  // namespace

// Contract in ukernel.hpp (PackColumnsFn). Eight columns (rows of src) at a
// time, eight K steps per 8x8 transpose; leftovers value by value.
void pack_columns_f32_avx2(float* dst, const float* src, std::int64_t ld, std::int64_t cols,
                           std::int64_t kc, int nr) {
  for (std::int64_t q = 0; q * nr < cols; ++q) {
    float* out = dst + q * kc * nr;
    const float* s = src + q * nr * ld;
    const std::int64_t live = cols - q * nr < nr ? cols - q * nr : nr;
    std::int64_t j = 0;
    for (; j + 8 <= live; j += 8) {
      std::int64_t p = 0;
      for (; p + 8 <= kc; p += 8) {
        if (p % 16 == 0) {
          // Rows are far apart (a whole filter each): keep a few lines of each
          // in flight from memory.
          for (int i = 0; i < 8; ++i) {
            _mm_prefetch(reinterpret_cast<const char*>(s + (j + i) * ld + p + 64), _MM_HINT_T0);
          }
        }
        __m256 r[8];
        for (int i = 0; i < 8; ++i) r[i] = _mm256_loadu_ps(s + (j + i) * ld + p);
        transpose8x8(r);
        for (int i = 0; i < 8; ++i) _mm256_storeu_ps(out + (p + i) * nr + j, r[i]);
      }
      for (; p < kc; ++p) {
        for (std::int64_t i = 0; i < 8; ++i) out[p * nr + j + i] = s[(j + i) * ld + p];
      }
    }
    for (; j < live; ++j) {
      for (std::int64_t p = 0; p < kc; ++p) out[p * nr + j] = s[j * ld + p];
    }
    for (std::int64_t p = 0; live < nr && p < kc; ++p) {
      for (std::int64_t i = live; i < nr; ++i) out[p * nr + i] = 0.0f;
    }
  }
}

// 12 independent ymm chains: enough to cover two FMA pipes' latency.
float fma_peak_loop_avx2(std::int64_t iterations) {
  return fma_peak_loop<Avx2F32, float, 12>(iterations);
}

}  // namespace convx::detail
