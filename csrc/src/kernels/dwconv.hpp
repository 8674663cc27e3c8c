// The depthwise-convolution kernel contract (groups == C_in == C_out, NHWC).
//
// A depthwise layer has one k_h x k_w filter per channel, so it has no
// reduction over channels to feed a GEMM: instead the kernel vectorises
// across the channels of one pixel, which are contiguous in NHWC.
//
// One call computes one output row oh of one image:
//   y[ow, c] = act(bias[c] + sum_{u,v} x[oh*s_h - pad_top + u*d_h,
//                                        ow*s_w - pad_left + v*d_w, c] * w[u, v, c])
// for every ow < w_out and c < channels; taps outside the image read zero.
//   x: one image, (h, w, channels) row-major.   w: (k_h, k_w, channels).
//   bias: channels values or nullptr.            y: (w_out, channels), written only.
#pragma once

#include <cstdint>

namespace convx::detail {

template <typename T>
struct DwRow {
  const T* x = nullptr;
  const T* w = nullptr;
  const T* bias = nullptr;
  T* y = nullptr;
  std::int64_t h = 0, w_in = 0, channels = 0, k_h = 0, k_w = 0;
  std::int64_t oh = 0, w_out = 0;
  std::int64_t s_h = 1, s_w = 1, d_h = 1, d_w = 1, pad_top = 0, pad_left = 0;
  bool relu = false;
};

template <typename T>
using DwRowFn = void (*)(const DwRow<T>& row);

}  // namespace convx::detail
