#include "conv/depthwise.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

#include "common/relu.hpp"
#include "conv/rows.hpp"

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
// (bias, then taps in (u, v) order), whichever thread computes the row. Taps
// on the padding are left out in Zeros mode; in the other modes they read the
// values pad_source() maps them to.
template <typename T>
void depthwise_nchw_row(const ConvShape& s, const T* plane, const T* taps, T bias, T* out,
                        std::int64_t oh, bool relu) {
  const std::int64_t w = s.w, w_out = s.w_out, s_w = s.p.stride_w, d_w = s.p.dilation_w;
  const std::int64_t pad_left = s.p.pad.left;
  const PaddingMode mode = s.p.padding_mode;
  std::fill(out, out + w_out, bias);
  for (std::int64_t u = 0; u < s.k_h; ++u) {
    const std::int64_t ih =
        pad_source(oh * s.p.stride_h - s.p.pad.top + u * s.p.dilation_h, s.h, mode);
    if (ih < 0) continue;
    const T* row = plane + ih * w;
    for (std::int64_t v = 0; v < s.k_w; ++v) {
      const T weight = taps[u * s.k_w + v];
      const std::int64_t shift = v * d_w - pad_left;  // input column of output column 0
      // Output columns whose input column ow*s_w + shift lies in [0, w).
      const std::int64_t lo = shift >= 0 ? 0 : (-shift + s_w - 1) / s_w;
      const std::int64_t hi = std::min(w_out, w - 1 - shift < 0 ? 0 : (w - 1 - shift) / s_w + 1);
      if (mode != PaddingMode::Zeros) {
        for (std::int64_t i = 0; i < w_out; ++i) {
          if (i == lo && lo < hi) i = hi;  // the columns inside the row come below
          if (i < w_out) out[i] += weight * row[pad_source(i * s_w + shift, w, mode)];
        }
      }
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
             std::int64_t(3), s.p.pad.left, width, staged_padding(s));
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
void depthwise_nchw(const ConvJob<T>& job, const T* x, const T* w, const T* bias, T* y) {
  const ConvShape& s = job.s;
  const std::int64_t C = s.c_in, taps = s.k_h * s.k_w;
  const std::int64_t rows = s.n * C * s.h_out;  // output rows of all planes
  const int threads =
      job.threads_for(double(rows) * double(s.w_out) * double(taps), kWorkPerThread);
  const bool relu = job.relu();
  Executor& lease = job.exec;
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

// Input columns one output row reads, from -pad_left on.
std::int64_t row_span(const ConvShape& s) {
  return (s.w_out - 1) * s.p.stride_w + (s.k_w - 1) * s.p.dilation_w + 1;
}

// Whether an NHWC row's padding is staged for the kernel: the kernels leave
// out taps on the padding, which is right only in Zeros mode. In the others a
// row whose patches touch the padding has its k_h input rows staged, padded
// by the mode (rows.hpp), and the kernel reads the staged rows as an unpadded
// image.
bool stages_padding(const ConvShape& s) {
  return s.p.layout == Layout::NHWC && s.p.padding_mode != PaddingMode::Zeros;
}

// NHWC: the ISA kernel computes one output row of every channel at a time.
template <typename T>
void depthwise_nhwc(const ConvJob<T>& job, const T* x, const T* w, const T* taps_hwc,
                    const T* bias, T* y) {
  const ConvShape& s = job.s;
  const std::int64_t C = s.c_in, taps = s.k_h * s.k_w;
  const std::int64_t rows = s.n * s.h_out;
  const DwKernel<T>& kernel = job.kernels.dw;
  // Work per output row, in multiply-adds; rows are cheap, so batch them
  // into tasks of about this much work.
  const double row_work = double(s.w_out) * double(C) * double(taps);
  const int threads = job.threads_for(row_work * double(rows), kWorkPerThread);
  Executor& lease = job.exec;
  // OHWI depthwise weights are (C, k_h, k_w, 1); the kernel wants (k_h, k_w, C)
  // so that one tap's weights are contiguous across channels.
  const T* wt = taps_hwc;
  if (wt == nullptr) {
    T* own = lease.shared().as<T>(static_cast<std::size_t>(taps * C));
    depthwise_taps_hwc(w, C, taps, own);
    wt = own;
  }
  const bool stage = stages_padding(s);
  const std::int64_t width = row_span(s);
  const bool cols_inside = s.p.pad.left == 0 && width <= s.w;
  lease.run_items(rows, threads, [&](std::int64_t r, WorkerScratch& scratch) {
    DwRow<T> row;
    static_cast<RowGeometry&>(row) = row_geometry(s, r % s.h_out);
    row.x = x + (r / s.h_out) * s.h * s.w * C;
    const std::int64_t ih0 = row.oh * s.p.stride_h - s.p.pad.top;
    if (stage && (!cols_inside || ih0 < 0 || ih0 + (s.k_h - 1) * s.p.dilation_h >= s.h)) {
      T* window = scratch.primary.as<T>(static_cast<std::size_t>(s.k_h * width * C));
      stage_rows(window, row.x, s.h, s.w, C, ih0, s.p.dilation_h, s.k_h, s.p.pad.left, width,
                 staged_padding(s));
      row.x = window;
      row.h = s.k_h;
      row.w_in = width;
      row.oh = 0;
      row.s_h = row.d_h = 1;
      row.pad_top = row.pad_left = 0;
    }
    row.w = wt;
    row.bias = bias;
    row.y = y + r * s.w_out * C;
    row.channels = C;
    row.relu = job.relu();
    kernel.fn(row);
  });
}

// The kernels leave out the taps that fall on the padding, which equals the
// formula (those inputs are 0) only for finite weights: an inf or NaN weight
// times a padded zero is NaN. For each output value whose patch puts such a
// weight on the padding, this writes the NaN the formula gives.
template <typename T>
void poison_padded_nonfinite_taps(const ConvShape& s, const T* w, T* y) {
  const std::int64_t C = s.c_in, taps = s.k_h * s.k_w;
  const bool nhwc = s.p.layout == Layout::NHWC;
  for (std::int64_t c = 0; c < C; ++c) {
    for (std::int64_t t = 0; t < taps; ++t) {
      if (std::isfinite(w[c * taps + t])) continue;
      const std::int64_t u = t / s.k_w, v = t % s.k_w;
      for (std::int64_t oh = 0; oh < s.h_out; ++oh) {
        const std::int64_t ih = oh * s.p.stride_h - s.p.pad.top + u * s.p.dilation_h;
        const bool row_out = ih < 0 || ih >= s.h;
        for (std::int64_t ow = 0; ow < s.w_out; ++ow) {
          const std::int64_t iw = ow * s.p.stride_w - s.p.pad.left + v * s.p.dilation_w;
          if (!row_out && iw >= 0 && iw < s.w) continue;
          for (std::int64_t b = 0; b < s.n; ++b) {
            const std::int64_t at = nhwc ? ((b * s.h_out + oh) * s.w_out + ow) * C + c
                                         : ((b * C + c) * s.h_out + oh) * s.w_out + ow;
            y[at] = std::numeric_limits<T>::quiet_NaN();
          }
        }
      }
    }
  }
}

bool has_padding(const ConvShape& s) {
  return s.p.pad.top > 0 || s.p.pad.bottom > 0 || s.p.pad.left > 0 || s.p.pad.right > 0;
}

}  // namespace

template <typename T>
void depthwise_taps_hwc(const T* w, std::int64_t channels, std::int64_t taps, T* wt) {
  for (std::int64_t c = 0; c < channels; ++c) {
    for (std::int64_t t = 0; t < taps; ++t) wt[t * channels + c] = w[c * taps + t];
  }
}

template <typename T>
std::int64_t depthwise_workspace_bytes(const ConvShape& s, bool taps_ready, int threads) {
  const bool nhwc = s.p.layout == Layout::NHWC;
  // NCHW: 3x3 row windows; NHWC: k_h staged rows in a mode other than Zeros.
  const std::int64_t staged = nhwc ? (stages_padding(s) ? s.k_h * row_span(s) * s.c_in : 0)
                                   : 3 * (s.w_out + 2);
  const std::int64_t taps = nhwc && !taps_ready ? s.k_h * s.k_w * s.c_in : 0;
  return (taps + staged * threads) * std::int64_t(sizeof(T));
}

template <typename T>
void run_depthwise(const ConvJob<T>& job, const T* x, const T* w, const T* taps_hwc,
                   const T* bias, T* y) {
  const ConvShape& s = job.s;
  if (s.p.layout == Layout::NCHW) {
    depthwise_nchw(job, x, w, bias, y);
  } else {
    depthwise_nhwc(job, x, w, taps_hwc, bias, y);
  }
  // Only Zeros mode leaves taps out (the staged rows of the others have none).
  if (has_padding(s) && s.p.padding_mode == PaddingMode::Zeros) {
    poison_padded_nonfinite_taps(s, w, y);
  }
}

#define CONVX_INSTANTIATE(T)                                                                   \
  template void depthwise_taps_hwc<T>(const T*, std::int64_t, std::int64_t, T*);               \
  template std::int64_t depthwise_workspace_bytes<T>(const ConvShape&, bool, int);             \
  template void run_depthwise<T>(const ConvJob<T>&, const T*, const T*, const T*, const T*, T*);
CONVX_INSTANTIATE(float)
CONVX_INSTANTIATE(double)
#undef CONVX_INSTANTIATE

}  // namespace convx::detail
