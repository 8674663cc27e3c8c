// The input gradient by col2im, for layers with few input channels per
// group: per group and block of output pixels, the patch gradients
// dcols = dy . W (a GEMM over the group's output channels), then each patch
// gradient added into dx, pixel by pixel and tap by tap in order, so the
// result does not depend on the thread count.
#include <algorithm>
#include <vector>

#include "convx/conv2d_backward.hpp"
#include "gemm/driver.hpp"
#include "kernels/kernel_table.hpp"
#include "runtime/context_state.hpp"
#include "runtime/float_mode.hpp"
#include "runtime/thread_pool.hpp"

namespace convx {

namespace {

// NHWC: dcols holds the patch gradients of output pixels [p0, p0 + rows) of
// image b, one row of K = (u, v, c) values each; adds them into dx.
template <typename T>
void add_rows_nhwc(const ConvShape& s, std::int64_t g, std::int64_t b, std::int64_t p0,
                   std::int64_t rows, const T* dcols, T* dx) {
  const std::int64_t cig = s.c_in_per_group(), K = s.patch_size();
  for (std::int64_t r = 0; r < rows; ++r) {
    const std::int64_t oh = (p0 + r) / s.w_out, ow = (p0 + r) % s.w_out;
    const T* src = dcols + r * K;
    for (std::int64_t u = 0; u < s.k_h; ++u) {
      const std::int64_t ih = oh * s.p.stride_h - s.p.pad.top + u * s.p.dilation_h;
      if (ih < 0 || ih >= s.h) continue;
      for (std::int64_t v = 0; v < s.k_w; ++v) {
        const std::int64_t iw = ow * s.p.stride_w - s.p.pad.left + v * s.p.dilation_w;
        if (iw < 0 || iw >= s.w) continue;
        T* dst = dx + ((b * s.h + ih) * s.w + iw) * s.c_in + g * cig;
        const T* tap = src + (u * s.k_w + v) * cig;
        for (std::int64_t c = 0; c < cig; ++c) dst[c] += tap[c];
      }
    }
  }
}

// NCHW: dcols holds, for each K index (c, u, v), the patch gradients of output
// pixels [p0, p0 + cols) of image b (row stride cols); adds them into dx.
template <typename T>
void add_cols_nchw(const ConvShape& s, std::int64_t g, std::int64_t b, std::int64_t p0,
                   std::int64_t cols, const T* dcols, T* dx) {
  const std::int64_t cig = s.c_in_per_group(), taps = s.k_h * s.k_w;
  for (std::int64_t k = 0; k < cig * taps; ++k) {
    const std::int64_t c = k / taps, u = (k / s.k_w) % s.k_h, v = k % s.k_w;
    T* plane = dx + (b * s.c_in + g * cig + c) * s.h * s.w;
    const T* src = dcols + k * cols;
    for (std::int64_t q = 0; q < cols; ++q) {
      const std::int64_t oh = (p0 + q) / s.w_out, ow = (p0 + q) % s.w_out;
      const std::int64_t ih = oh * s.p.stride_h - s.p.pad.top + u * s.p.dilation_h;
      const std::int64_t iw = ow * s.p.stride_w - s.p.pad.left + v * s.p.dilation_w;
      if (ih >= 0 && ih < s.h && iw >= 0 && iw < s.w) plane[ih * s.w + iw] += src[q];
    }
  }
}

}  // namespace

template <typename T>
void Conv2dBackwardData<T>::run_col2im(const T* dy, T* dx) const {
  const ConvShape& s = shape_;
  const detail::FloatModeScope float_mode(context_->flush.load(std::memory_order_relaxed));
  detail::PoolLease lease(*context_);
  std::fill(dx, dx + s.input_size(), T(0));
  const std::int64_t cog = s.c_out_per_group(), K = s.patch_size();
  const std::int64_t pixels = s.h_out * s.w_out;
  const std::int64_t block = std::clamp<std::int64_t>(kCol2imBlock / K, 1, pixels);
  std::vector<T> dcols(static_cast<std::size_t>(block * K));
  const bool nhwc = s.p.layout == Layout::NHWC;
  for (std::int64_t b = 0; b < s.n; ++b) {
    for (std::int64_t g = 0; g < s.groups(); ++g) {
      const T* w = filters_.data() + g * cog * K;
      for (std::int64_t p0 = 0; p0 < pixels; p0 += block) {
        const std::int64_t rows = std::min(block, pixels - p0);
        if (nhwc) {
          // dcols (rows x K) = dy rows (rows x cog) . W_g (cog x K)
          const detail::StridedMatrix<T> a(dy + (b * pixels + p0) * s.c_out + g * cog, s.c_out, 1);
          const detail::StridedMatrix<T> bm(w, K, 1);
          detail::gemm_blocked<T>(kernels_->gemm, lease, rows, K, cog, a, bm, dcols.data(), K, 1,
                                  false, Epilogue<T>{});
          add_rows_nhwc(s, g, b, p0, rows, dcols.data(), dx);
        } else {
          // dcols (K x rows) = W_g^T (K x cog) . dy (cog x rows)
          const detail::StridedMatrix<T> a(w, 1, K);
          const detail::StridedMatrix<T> bm(dy + (b * s.c_out + g * cog) * pixels + p0, pixels, 1);
          detail::gemm_blocked<T>(kernels_->gemm, lease, K, rows, cog, a, bm, dcols.data(), rows,
                                  1, false, Epilogue<T>{});
          add_cols_nchw(s, g, b, p0, rows, dcols.data(), dx);
        }
      }
    }
  }
}

template void Conv2dBackwardData<float>::run_col2im(const float*, float*) const;
template void Conv2dBackwardData<double>::run_col2im(const double*, double*) const;

}  // namespace convx
