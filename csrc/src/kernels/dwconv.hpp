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

#include "kernels/row_geometry.hpp"

namespace convx::detail {

template <typename T>
struct DwRow : RowGeometry {
  const T* x = nullptr;
  const T* w = nullptr;
  const T* bias = nullptr;
  T* y = nullptr;
  std::int64_t channels = 0;
  bool relu = false;
};

template <typename T>
using DwRowFn = void (*)(const DwRow<T>& row);

// A depthwise row kernel and what it is: `lanes` is the vector width its
// channel loops run at (1 on the scalar path); callers need not pad anything
// to it. `name` reads like "f64 dwconv 4-lane avx2".
template <typename T>
struct DwKernel {
  DwRowFn<T> fn = nullptr;
  int lanes = 1;
  const char* name = "";
};

}  // namespace convx::detail
