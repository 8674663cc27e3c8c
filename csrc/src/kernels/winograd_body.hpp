// Bodies of the Winograd F(4x4, 3x3) transform kernels (kernels/winograd.hpp),
// compiled once per ISA file. They are plain loops over channels that the
// compiler vectorises with the file's ISA flags: each pass reads six vectors
// of channels and writes six (or four), in blocks of kChunk channels that stay
// in L1 between the row pass and the column pass.
#pragma once

#include <cstdint>

#include "kernels/winograd.hpp"

namespace convx::detail {
namespace {

constexpr std::int64_t kWinoChunk = 64;

// r = B^T d for one column of six values (points 0, 1, -1, 2, -2, infinity).
template <typename T>
inline void wino_bt(T d0, T d1, T d2, T d3, T d4, T d5, T* r, std::int64_t ld) {
  r[0 * ld] = T(4) * d0 - T(5) * d2 + d4;
  r[1 * ld] = -T(4) * (d1 + d2) + (d3 + d4);
  r[2 * ld] = T(4) * (d1 - d2) + (d4 - d3);
  r[3 * ld] = T(2) * (d3 - d1) + (d4 - d2);
  r[4 * ld] = T(2) * (d1 - d3) + (d4 - d2);
  r[5 * ld] = T(4) * d1 - T(5) * d3 + d5;
}

// o = A^T m for one column of six values.
template <typename T>
inline void wino_at(T m0, T m1, T m2, T m3, T m4, T m5, T* o, std::int64_t ld) {
  const T s12 = m1 + m2, d12 = m1 - m2, s34 = m3 + m4, d34 = m3 - m4;
  o[0 * ld] = m0 + s12 + s34;
  o[1 * ld] = d12 + T(2) * d34;
  o[2 * ld] = s12 + T(4) * s34;
  o[3 * ld] = d12 + T(8) * d34 + m5;
}

template <typename T>
void wino_input(const T* const* src, std::int64_t c, T* dst, std::int64_t ld_e) {
  alignas(64) T tmp[kWinoPoints * kWinoChunk];
  for (std::int64_t c0 = 0; c0 < c; c0 += kWinoChunk) {
    const std::int64_t n = c - c0 < kWinoChunk ? c - c0 : kWinoChunk;
    // Rows: tmp[a*6 + j] = (d B)[a][j] = (B^T d^T)[j][a].
    for (int a = 0; a < kWinoTile; ++a) {
      const T* s0 = src[a * 6 + 0] + c0;
      const T* s1 = src[a * 6 + 1] + c0;
      const T* s2 = src[a * 6 + 2] + c0;
      const T* s3 = src[a * 6 + 3] + c0;
      const T* s4 = src[a * 6 + 4] + c0;
      const T* s5 = src[a * 6 + 5] + c0;
      T* t = tmp + a * 6 * kWinoChunk;
#pragma GCC ivdep
      for (std::int64_t k = 0; k < n; ++k) {
        wino_bt(s0[k], s1[k], s2[k], s3[k], s4[k], s5[k], t + k, kWinoChunk);
      }
    }
    // Columns: V[i][j] = (B^T (d B))[i][j].
    for (int j = 0; j < kWinoTile; ++j) {
      const T* t = tmp + j * kWinoChunk;
      T* out = dst + j * ld_e + c0;
      const std::int64_t la = 6 * kWinoChunk;
#pragma GCC ivdep
      for (std::int64_t k = 0; k < n; ++k) {
        wino_bt(t[k], t[la + k], t[2 * la + k], t[3 * la + k], t[4 * la + k], t[5 * la + k],
                out + k, 6 * ld_e);
      }
    }
  }
}

template <typename T>
void wino_output(const T* src, std::int64_t ld_e, std::int64_t c, const T* bias, bool relu,
                 T* y, std::int64_t ld_row, std::int64_t ld_px, int rows, int cols) {
  alignas(64) T tmp[kWinoTile * kWinoM * kWinoChunk];  // (A^T M)[p][j], p < 4
  alignas(64) T out[kWinoM * kWinoM * kWinoChunk];
  for (std::int64_t c0 = 0; c0 < c; c0 += kWinoChunk) {
    const std::int64_t n = c - c0 < kWinoChunk ? c - c0 : kWinoChunk;
    // Columns j of M: tmp[p*6 + j] = (A^T M)[p][j].
    for (int j = 0; j < kWinoTile; ++j) {
      const T* m = src + j * ld_e + c0;
      const std::int64_t li = 6 * ld_e;
      T* t = tmp + j * kWinoChunk;
#pragma GCC ivdep
      for (std::int64_t k = 0; k < n; ++k) {
        wino_at(m[k], m[li + k], m[2 * li + k], m[3 * li + k], m[4 * li + k], m[5 * li + k],
                t + k, 6 * kWinoChunk);
      }
    }
    // Rows p: out[p*4 + q] = ((A^T M) A)[p][q].
    for (int p = 0; p < kWinoM; ++p) {
      const T* t = tmp + p * 6 * kWinoChunk;
      T* o = out + p * 4 * kWinoChunk;
#pragma GCC ivdep
      for (std::int64_t k = 0; k < n; ++k) {
        wino_at(t[k], t[kWinoChunk + k], t[2 * kWinoChunk + k], t[3 * kWinoChunk + k],
                t[4 * kWinoChunk + k], t[5 * kWinoChunk + k], o + k, kWinoChunk);
      }
    }
    // The bias, ReLU (which keeps NaN, as relu.hpp's does) and the store of
    // the pixels that exist.
    for (int p = 0; p < rows; ++p) {
      for (int q = 0; q < cols; ++q) {
        const T* o = out + (p * 4 + q) * kWinoChunk;
        T* dst = y + p * ld_row + q * ld_px + c0;
        const T* b = bias != nullptr ? bias + c0 : nullptr;
        for (std::int64_t k = 0; k < n; ++k) {
          const T v = b != nullptr ? o[k] + b[k] : o[k];
          dst[k] = relu && v < T(0) ? T(0) : v;
        }
      }
    }
  }
}

}  // namespace
}  // namespace convx::detail
