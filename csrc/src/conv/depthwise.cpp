#include "conv/depthwise.hpp"

#include <algorithm>

#include "common/relu.hpp"
#include "conv/rows.hpp"
#include "convx/runtime.hpp"
#include "runtime/kernel_table.hpp"
#include "runtime/thread_pool.hpp"

namespace convx::detail {

bool is_depthwise(const ConvShape& s) {
  return s.groups() > 1 && s.groups() == s.c_in && s.groups() == s.c_out;
}

namespace {

// Below this many multiply-adds a job stays on one thread.
constexpr double kWorkPerThread = 2.0e5;

// NCHW: every channel is a plane filtered by its own k_h x k_w taps. An output
// row is accumulated tap by tap, each tap adding a weighted run of one input
// row; with stride 1 the run is contiguous, so the compiler vectorises the
// loop with whatever the portable build allows. The sum runs in a fixed order
// (bias, then taps in (u, v) order), whichever thread computes the row.
template <typename T>
void depthwise_nchw_row(const ConvShape& s, const T* plane, const T* taps, T bias, T* out,
                        std::int64_t oh, bool relu) {
  const std::int64_t w = s.w, w_out = s.w_out, s_w = s.p.stride_w, d_w = s.p.dilation_w;
  const std::int64_t pad_left = s.p.pad.left;
  std::fill(out, out + w_out, bias);
  for (std::int64_t u = 0; u < s.k_h; ++u) {
    const std::int64_t ih = oh * s.p.stride_h - s.p.pad.top + u * s.p.dilation_h;
    if (ih < 0 || ih >= s.h) continue;
    const T* row = plane + ih * w;
    for (std::int64_t v = 0; v < s.k_w; ++v) {
      const T weight = taps[u * s.k_w + v];
      const std::int64_t shift = v * d_w - pad_left;  // input column of output column 0
      // Output columns whose input column ow*s_w + shift lies in [0, w).
      const std::int64_t lo = shift >= 0 ? 0 : (-shift + s_w - 1) / s_w;
      const std::int64_t hi = std::min(w_out, w - 1 - shift < 0 ? 0 : (w - 1 - shift) / s_w + 1);
      if (lo >= hi) continue;
      const T* src = row + lo * s_w + shift;
      T* dst = out + lo;
      const std::int64_t len = hi - lo;
      if (s_w == 1) {
        for (std::int64_t i = 0; i < len; ++i) dst[i] += weight * src[i];
      } else {
        for (std::int64_t i = 0; i < len; ++i) dst[i] += weight * src[i * s_w];
      }
    }
  }
  if (relu) {
    for (std::int64_t i = 0; i < w_out; ++i) out[i] = detail::relu(out[i]);
  }
}

// The common 3x3, stride 1, dilation 1 case: the three input rows an output
// row reads are staged zero-padded in `window` (3 rows of w_out + 2), so the
// nine taps of every output value are summed in one pass, in registers, in
// the same (u, v) order as above.
template <typename T>
void depthwise_nchw_row_3x3(const ConvShape& s, const T* plane, const T* taps, T bias, T* out,
                            std::int64_t oh, bool relu, T* window) {
  const std::int64_t w_out = s.w_out, width = w_out + 2;
  stage_rows(window, plane, s.h, s.w, std::int64_t(1), oh - s.p.pad.top, std::int64_t(1),
             std::int64_t(3), s.p.pad.left, width);
  const T* r0 = window;
  const T* r1 = window + width;
  const T* r2 = window + 2 * width;
  const T w00 = taps[0], w01 = taps[1], w02 = taps[2], w10 = taps[3], w11 = taps[4];
  const T w12 = taps[5], w20 = taps[6], w21 = taps[7], w22 = taps[8];
  for (std::int64_t i = 0; i < w_out; ++i) {
    T acc = bias;
    acc += w00 * r0[i];
    acc += w01 * r0[i + 1];
    acc += w02 * r0[i + 2];
    acc += w10 * r1[i];
    acc += w11 * r1[i + 1];
    acc += w12 * r1[i + 2];
    acc += w20 * r2[i];
    acc += w21 * r2[i + 1];
    acc += w22 * r2[i + 2];
    out[i] = relu ? detail::relu(acc) : acc;
  }
}

template <typename T>
void depthwise_nchw(const ConvShape& s, const T* x, const T* w, const T* bias, T* y,
                    Activation activation) {
  const std::int64_t C = s.c_in, taps = s.k_h * s.k_w;
  const std::int64_t rows = s.n * C * s.h_out;  // output rows of all planes
  const double work = double(rows) * double(s.w_out) * double(taps);
  const int threads = static_cast<int>(
      std::clamp<double>(work / kWorkPerThread, 1.0, double(num_threads())));
  const bool relu = activation == Activation::ReLU;
  PoolLease lease;
  const bool is_3x3 = s.k_h == 3 && s.k_w == 3 && s.p.stride_h == 1 && s.p.stride_w == 1 &&
                      s.p.dilation_h == 1 && s.p.dilation_w == 1;
  lease.run_items(rows, threads, [&](std::int64_t r, WorkerScratch& scratch) {
    const std::int64_t oh = r % s.h_out, plane = r / s.h_out, c = plane % C;
    const T* in = x + plane * s.h * s.w;
    const T b = bias != nullptr ? bias[c] : T(0);
    if (is_3x3) {
      T* window = scratch.primary.as<T>(static_cast<std::size_t>(3 * (s.w_out + 2)));
      depthwise_nchw_row_3x3(s, in, w + c * taps, b, y + r * s.w_out, oh, relu, window);
    } else {
      depthwise_nchw_row(s, in, w + c * taps, b, y + r * s.w_out, oh, relu);
    }
  });
}

}  // namespace

template <typename T>
void conv2d_depthwise(const ConvShape& s, const T* x, const T* w, const T* bias, T* y,
                      Activation activation) {
  if (s.p.layout == Layout::NCHW) {
    depthwise_nchw(s, x, w, bias, y, activation);
    return;
  }
  const std::int64_t C = s.c_in, taps = s.k_h * s.k_w;
  const std::int64_t rows = s.n * s.h_out;
  const DwRowFn<T> kernel = dwconv_row_kernel<T>();
  // Work per output row, in multiply-adds; rows are cheap, so batch them
  // into tasks of about this much work.
  const double row_work = double(s.w_out) * double(C) * double(taps);
  const int threads = static_cast<int>(
      std::clamp<double>(row_work * double(rows) / kWorkPerThread, 1.0, double(num_threads())));

  PoolLease lease;
  // OHWI depthwise weights are (C, k_h, k_w, 1); the kernel wants (k_h, k_w, C)
  // so that one tap's weights are contiguous across channels.
  T* wt = lease.shared().as<T>(static_cast<std::size_t>(taps * C));
  for (std::int64_t c = 0; c < C; ++c) {
    for (std::int64_t t = 0; t < taps; ++t) wt[t * C + c] = w[c * taps + t];
  }
  lease.run_items(rows, threads, [&](std::int64_t r, WorkerScratch&) {
    DwRow<T> row;
    static_cast<RowGeometry&>(row) = row_geometry(s, r % s.h_out);
    row.x = x + (r / s.h_out) * s.h * s.w * C;
    row.w = wt;
    row.bias = bias;
    row.y = y + r * s.w_out * C;
    row.channels = C;
    row.relu = activation == Activation::ReLU;
    kernel(row);
  });
}

template void conv2d_depthwise<float>(const ConvShape&, const float*, const float*, const float*,
                                      float*, Activation);
template void conv2d_depthwise<double>(const ConvShape&, const double*, const double*,
                                       const double*, double*, Activation);

}  // namespace convx::detail
