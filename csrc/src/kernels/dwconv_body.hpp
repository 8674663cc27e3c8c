// Portable body of the depthwise row kernel (contract in dwconv.hpp). Each
// kernel file includes it and compiles it with its own ISA flags; the channel
// loops are written so the compiler vectorises them for that ISA. It lives in
// an anonymous namespace so every file keeps its own copy (see ukernel.hpp).
#pragma once

#include "kernels/dwconv.hpp"

namespace convx::detail {
namespace {

// Channels are processed in blocks of kBlock, whose accumulators the compiler
// keeps in vector registers.
template <typename T, int kBlock>
void dw_block(const DwRow<T>& r, std::int64_t ow, std::int64_t c0, std::int64_t cb) {
  T acc[kBlock];
  for (int c = 0; c < kBlock; ++c) acc[c] = (r.bias != nullptr && c < cb) ? r.bias[c0 + c] : T(0);
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
      if (cb == kBlock) {
        for (int c = 0; c < kBlock; ++c) acc[c] += xp[c] * wp[c];
      } else {
        for (std::int64_t c = 0; c < cb; ++c) acc[c] += xp[c] * wp[c];
      }
    }
  }
  T* out = r.y + ow * r.channels + c0;
  for (std::int64_t c = 0; c < cb; ++c) {
    const T v = acc[c];
    out[c] = (r.relu && !(v > T(0))) ? T(0) : v;
  }
}

template <typename T>
void dw_row(const DwRow<T>& r) {
  constexpr int kBlock = 64 / static_cast<int>(sizeof(T)) * 4;  // four cache lines
  for (std::int64_t ow = 0; ow < r.w_out; ++ow) {
    for (std::int64_t c0 = 0; c0 < r.channels; c0 += kBlock) {
      const std::int64_t cb = r.channels - c0 < kBlock ? r.channels - c0 : kBlock;
      dw_block<T, kBlock>(r, ow, c0, cb);
    }
  }
}

}  // namespace
}  // namespace convx::detail
