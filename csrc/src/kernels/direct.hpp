// The small-K direct convolution kernel contract (NHWC, groups == 1, a patch
// of at most kMaxDirectPatch values, e.g. a 3x3 filter over 1-3 input channels).
//
// With so short a reduction a GEMM spends its time packing patches and
// storing tiles, not multiplying. This kernel reads the image directly: for
// each output pixel it broadcasts every patch value in turn and multiplies it
// into vectors of output channels.
//
// One call computes `rows` consecutive output rows oh, oh+1, ... of one image
// (row i written at y + i*w_out*c_out); for each:
//   y[ow, m] = act(bias[m] + sum_{u,v,c} x[oh*s_h - pad_top + u*d_h,
//                                         ow*s_w - pad_left + v*d_w, c] * wt[(u*k_w + v)*c_in + c, m])
// for ow < w_out and m < c_out; taps outside the image contribute nothing.
//   x:    one image, (h, w_in, c_in) row-major.
//   wt:   the weights transposed to (k_h*k_w*c_in, ld) row-major, where ld is
//         c_out rounded up to the kernel's vector width and the padding
//         columns are zero, so whole vectors can always be loaded.
//   off:  k_h*k_w*c_in offsets, element t = (u*k_w + v)*c_in + c holding
//         (u*d_h*w_in + v*d_w)*c_in + c: where patch value t lies from the
//         patch's first value (the caller computes them once per w_in).
//   bias: ld values (zero-padded), never null.
//   y:    (rows, w_out, c_out), written only.
#pragma once

#include <cstdint>

#include "kernels/row_geometry.hpp"

namespace convx::detail {

// The longest patch (k_h*k_w*c_in) a direct kernel accepts.
constexpr std::int64_t kMaxDirectPatch = 16;

// A kernel computes up to this many neighbouring pixels of a row at once and
// may read (never store) the patches of the kDirectPixels - 1 pixels past
// the row's end: a caller that stages rows leaves room for them.
constexpr int kDirectPixels = 4;

template <typename T>
struct DirectRow : RowGeometry {
  const T* x = nullptr;
  const T* wt = nullptr;
  const T* bias = nullptr;
  const std::int64_t* off = nullptr;
  T* y = nullptr;
  std::int64_t c_in = 0, c_out = 0, ld = 0;
  std::int64_t rows = 1;
  bool relu = false;
};

template <typename T>
using DirectRowFn = void (*)(const DirectRow<T>& row);

// A direct row kernel, built on every path (the scalar one included), and the
// vector width `lanes` (in values) that its `ld` must be a multiple of.
// `name` reads like "f32 direct 16-lane avx512".
template <typename T>
struct DirectKernel {
  DirectRowFn<T> fn = nullptr;
  int lanes = 1;
  const char* name = "";
};

}  // namespace convx::detail
