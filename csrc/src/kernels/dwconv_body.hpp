// Portable body of the depthwise row kernel (contract in dwconv.hpp). Each
// kernel file includes it and compiles it with its own ISA flags; the channel
// loops are written so the compiler vectorises them for that ISA. It lives in
// an anonymous namespace so every file keeps its own copy (see ukernel.hpp).
#pragma once

#include "common/relu.hpp"
#include "kernels/dwconv.hpp"

namespace convx::detail {
namespace {

// One output pixel, channels [c0, c0 + kBlock): the accumulators stay in
// vector registers across all taps. kBlock is a compile-time constant so the
// channel loops vectorise completely.
template <typename T, int kBlock>
inline void dw_block(const DwRow<T>& r, std::int64_t ow, std::int64_t c0) {
  T acc[kBlock];
  for (int c = 0; c < kBlock; ++c) acc[c] = r.bias != nullptr ? r.bias[c0 + c] : T(0);
  const std::int64_t ih0 = r.oh * r.s_h - r.pad_top;
  const std::int64_t iw0 = ow * r.s_w - r.pad_left;
  for (std::int64_t u = 0; u < r.k_h; ++u) {
    const std::int64_t ih = ih0 + u * r.d_h;
    if (ih < 0 || ih >= r.h) continue;
    const T* xrow = r.x + ih * r.w_in * r.channels + c0;
    const T* wrow = r.w + u * r.k_w * r.channels + c0;
    for (std::int64_t v = 0; v < r.k_w; ++v) {
      const std::int64_t iw = iw0 + v * r.d_w;
      if (iw < 0 || iw >= r.w_in) continue;
      const T* xp = xrow + iw * r.channels;
      const T* wp = wrow + v * r.channels;
      for (int c = 0; c < kBlock; ++c) acc[c] += xp[c] * wp[c];
    }
  }
  T* out = r.y + ow * r.channels + c0;
  if (r.relu) {
    for (int c = 0; c < kBlock; ++c) out[c] = relu(acc[c]);
  } else {
    for (int c = 0; c < kBlock; ++c) out[c] = acc[c];
  }
}

// Channels in blocks of kBlock. A remainder is covered by one more block that
// ends at the last channel and overlaps the one before: each channel's sum
// is the same whichever block computes it, so the channels both blocks hold
// are written twice with the same value. Fewer than kBlock channels go one
// at a time.
template <typename T, int kBlock>
void dw_row_blocked(const DwRow<T>& r) {
  const std::int64_t full = r.channels / kBlock * kBlock;
  const bool overlap = full != r.channels && full > 0;
  for (std::int64_t ow = 0; ow < r.w_out; ++ow) {
    for (std::int64_t c0 = 0; c0 < full; c0 += kBlock) dw_block<T, kBlock>(r, ow, c0);
    if (overlap) {
      dw_block<T, kBlock>(r, ow, r.channels - kBlock);
      continue;
    }
    for (std::int64_t c0 = full; c0 < r.channels; ++c0) dw_block<T, 1>(r, ow, c0);
  }
}

// Any filter size and channel count: channels in blocks of 32, 16 or 8 values
// (the largest dividing the count), vectorised by the compiler.
template <typename T>
void dw_row_generic(const DwRow<T>& r) {
  if (r.channels % 32 == 0) {
    dw_row_blocked<T, 32>(r);
  } else if (r.channels % 16 == 0) {
    dw_row_blocked<T, 16>(r);
  } else {
    dw_row_blocked<T, 8>(r);
  }
}

// P neighbouring output pixels from ow on, channels [c0, c0 + S::kLanes), of
// a 3x3 filter: P independent chains of multiply-adds, each pixel summing its
// taps in the same order whatever P is. With `inside`, every tap of every
// pixel lies in the row; otherwise (only for P == 1) taps off the row are
// skipped. Unrolled so that acc and wv are indexed by constants and stay in
// registers.
template <typename S, typename T, int P>
inline void dw_3x3_pixels(const DwRow<T>& r, const T* const (&rows)[3], const bool (&row_ok)[3],
                          const typename S::V (&wv)[9], typename S::V bv, std::int64_t ow,
                          std::int64_t c0, bool inside) {
  using V = typename S::V;
  const std::int64_t C = r.channels, step = r.d_w * C, pixel = r.s_w * C;
  const std::int64_t iw0 = ow * r.s_w - r.pad_left;
  V acc[P];
#pragma GCC unroll 4
  for (int q = 0; q < P; ++q) acc[q] = bv;
#pragma GCC unroll 3
  for (int u = 0; u < 3; ++u) {
    if (!row_ok[u]) continue;
    const T* p = rows[u] + iw0 * C;
#pragma GCC unroll 3
    for (int v = 0; v < 3; ++v) {
      if (!inside) {
        const std::int64_t iw = iw0 + v * r.d_w;
        if (iw < 0 || iw >= r.w_in) continue;
      }
#pragma GCC unroll 4
      for (int q = 0; q < P; ++q) {
        acc[q] = S::fma(S::loadu(p + q * pixel + v * step), wv[u * 3 + v], acc[q]);
      }
    }
  }
#pragma GCC unroll 4
  for (int q = 0; q < P; ++q) {
    S::storeu(r.y + (ow + q) * C + c0, r.relu ? S::relu(acc[q]) : acc[q]);
  }
}

// 3x3 filters, the common depthwise case, written against vector traits S
// (simd_avx2.hpp, simd_avx512.hpp) for channels [c0, c0 + S::kLanes): the nine
// tap weights stay in registers for a whole output row, so each tap costs one
// load and one multiply-add. Interior pixels skip the bounds checks and run
// four at a time (four chains, not one waiting on the FMA latency at every tap).
template <typename S, typename T>
void dw_row_3x3_vector(const DwRow<T>& r, std::int64_t c0) {
  using V = typename S::V;
  const std::int64_t C = r.channels;
  V wv[9];
#pragma GCC unroll 9
  for (int t = 0; t < 9; ++t) wv[t] = S::loadu(r.w + t * C + c0);
  const V bv = r.bias != nullptr ? S::loadu(r.bias + c0) : S::zero();
  const T* rows[3];
  bool row_ok[3];
  for (int u = 0; u < 3; ++u) {
    const std::int64_t ih = r.oh * r.s_h - r.pad_top + u * r.d_h;
    row_ok[u] = ih >= 0 && ih < r.h;
    rows[u] = row_ok[u] ? r.x + ih * r.w_in * C + c0 : r.x;
  }
  std::int64_t ow = 0;
  while (ow < r.w_out) {
    const std::int64_t iw0 = ow * r.s_w - r.pad_left;
    if (ow + 4 <= r.w_out && iw0 >= 0 && iw0 + 3 * r.s_w + 2 * r.d_w < r.w_in) {
      dw_3x3_pixels<S, T, 4>(r, rows, row_ok, wv, bv, ow, c0, true);
      ow += 4;
    } else {
      dw_3x3_pixels<S, T, 1>(r, rows, row_ok, wv, bv, ow, c0,
                             iw0 >= 0 && iw0 + 2 * r.d_w < r.w_in);
      ow += 1;
    }
  }
}

// The SIMD files' row kernel: whole vectors of channels of a 3x3 filter take
// the register-resident path, the rest the generic one.
template <typename S, typename T>
void dw_row_simd(const DwRow<T>& r) {
  if (r.k_h != 3 || r.k_w != 3 || r.channels < S::kLanes) {
    dw_row_generic<T>(r);
    return;
  }
  // A remainder of channels is one more vector ending at the last channel,
  // overlapping the one before (as in dw_row_blocked).
  const std::int64_t full = r.channels / S::kLanes * S::kLanes;
  for (std::int64_t c0 = 0; c0 < full; c0 += S::kLanes) dw_row_3x3_vector<S, T>(r, c0);
  if (full != r.channels) dw_row_3x3_vector<S, T>(r, r.channels - S::kLanes);
}

}  // namespace
}  // namespace convx::detail
