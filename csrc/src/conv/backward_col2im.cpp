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

// Input rows [h0, h1) of dx: the share of the accumulation one task owns.
struct Band {
  std::int64_t h0, h1;
};

// NHWC: dcols holds the patch gradients of output pixels [p0, p0 + rows) of
// image b, one row of K = (u, v, c) values each; adds those that land in the
// band's rows into dx.
template <typename T>
void add_rows_nhwc(const ConvShape& s, std::int64_t g, std::int64_t b, std::int64_t p0,
                   std::int64_t rows, const T* dcols, Band band, T* dx) {
  const std::int64_t cig = s.c_in_per_group(), K = s.patch_size();
  for (std::int64_t r = 0; r < rows; ++r) {
    const std::int64_t oh = (p0 + r) / s.w_out, ow = (p0 + r) % s.w_out;
    const T* src = dcols + r * K;
    for (std::int64_t u = 0; u < s.k_h; ++u) {
      const std::int64_t ih = oh * s.p.stride_h - s.p.pad.top + u * s.p.dilation_h;
      if (ih < band.h0 || ih >= band.h1) continue;
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
// pixels [p0, p0 + cols) of image b (row stride cols); adds those that land
// in the band's rows into dx.
template <typename T>
void add_cols_nchw(const ConvShape& s, std::int64_t g, std::int64_t b, std::int64_t p0,
                   std::int64_t cols, const T* dcols, Band band, T* dx) {
  const std::int64_t cig = s.c_in_per_group(), taps = s.k_h * s.k_w;
  for (std::int64_t k = 0; k < cig * taps; ++k) {
    const std::int64_t c = k / taps, u = (k / s.k_w) % s.k_h, v = k % s.k_w;
    T* plane = dx + (b * s.c_in + g * cig + c) * s.h * s.w;
    const T* src = dcols + k * cols;
    for (std::int64_t q = 0; q < cols; ++q) {
      const std::int64_t oh = (p0 + q) / s.w_out, ow = (p0 + q) % s.w_out;
      const std::int64_t ih = oh * s.p.stride_h - s.p.pad.top + u * s.p.dilation_h;
      const std::int64_t iw = ow * s.p.stride_w - s.p.pad.left + v * s.p.dilation_w;
      if (ih >= band.h0 && ih < band.h1 && iw >= 0 && iw < s.w) plane[ih * s.w + iw] += src[q];
    }
  }
}

// Below this many additions per thread the accumulation of a block stays on
// one thread.
constexpr double kAddsPerThread = 2.0e5;

// The patch gradients of output pixels [p0, p0 + rows) of image b, group g
// (filters: the flipped, transposed ones of Conv2dBackwardData), into dcols: (rows x K) in NHWC, (K x rows) in NCHW.
template <typename T>
void patch_gradients(const ConvShape& s, const detail::GemmKernel<T>& kern, const T* filters,
                     const T* dy, std::int64_t b, std::int64_t g, std::int64_t p0,
                     std::int64_t rows, T* dcols, detail::Executor& exec) {
  const std::int64_t cog = s.c_out_per_group(), K = s.patch_size();
  const std::int64_t pixels = s.h_out * s.w_out;
  const T* w = filters + g * cog * K;
  if (s.p.layout == Layout::NHWC) {
    // dcols (rows x K) = dy rows (rows x cog) . W_g (cog x K)
    const detail::StridedMatrix<T> a(dy + (b * pixels + p0) * s.c_out + g * cog, s.c_out, 1);
    const detail::StridedMatrix<T> bm(w, K, 1);
    detail::gemm_blocked<T>(kern, exec, rows, K, cog, a, bm, dcols, K, 1, false,
                            Epilogue<T>{});
  } else {
    // dcols (K x rows) = W_g^T (K x cog) . dy (cog x rows)
    const detail::StridedMatrix<T> a(w, 1, K);
    const detail::StridedMatrix<T> bm(dy + (b * s.c_out + g * cog) * pixels + p0, pixels, 1);
    detail::gemm_blocked<T>(kern, exec, K, rows, cog, a, bm, dcols, rows, 1, false,
                            Epilogue<T>{});
  }
}

}  // namespace

// Every element of dx is summed over the (pixel, tap) pairs that reach it in
// one order, pixel by pixel and tap by tap, whoever adds them: images and
// groups own disjoint parts of dx, and within one block of pixels the
// threads split dx's rows, never a sum. With at least as many (image, group)
// pairs as threads, each task takes one pair serially; otherwise the pairs
// and blocks run in turn, each block's GEMM parallel over its tiles and its
// accumulation over bands of dx's rows.
template <typename T>
void Conv2dBackwardData<T>::run_col2im(const T* dy, T* dx) const {
  const ConvShape& s = shape_;
  const detail::FloatModeScope float_mode(context_->flush.load(std::memory_order_relaxed));
  detail::PoolLease lease(*context_);
  std::fill(dx, dx + s.input_size(), T(0));
  const std::int64_t K = s.patch_size(), pixels = s.h_out * s.w_out;
  const std::int64_t block = std::clamp<std::int64_t>(kCol2imBlock / K, 1, pixels);
  const bool nhwc = s.p.layout == Layout::NHWC;
  auto add = [&](std::int64_t b, std::int64_t g, std::int64_t p0, std::int64_t rows,
                 const T* dcols, Band band) {
    if (nhwc) {
      add_rows_nhwc(s, g, b, p0, rows, dcols, band, dx);
    } else {
      add_cols_nchw(s, g, b, p0, rows, dcols, band, dx);
    }
  };
  const std::int64_t pairs = s.n * s.groups();
  const int threads = lease.threads();
  if (threads > 1 && pairs >= threads) {
    lease.run(pairs, threads, [&](std::int64_t t, detail::WorkerScratch& scratch) {
      detail::SerialExecutor serial(scratch);
      std::vector<T> dcols(static_cast<std::size_t>(block * K));
      const std::int64_t b = t / s.groups(), g = t % s.groups();
      for (std::int64_t p0 = 0; p0 < pixels; p0 += block) {
        const std::int64_t rows = std::min(block, pixels - p0);
        patch_gradients(s, kernels_->gemm, filters_.data(), dy, b, g, p0, rows, dcols.data(),
                        serial);
        add(b, g, p0, rows, dcols.data(), Band{0, s.h});
      }
    });
    return;
  }
  std::vector<T> dcols(static_cast<std::size_t>(block * K));
  for (std::int64_t b = 0; b < s.n; ++b) {
    for (std::int64_t g = 0; g < s.groups(); ++g) {
      for (std::int64_t p0 = 0; p0 < pixels; p0 += block) {
        const std::int64_t rows = std::min(block, pixels - p0);
        patch_gradients(s, kernels_->gemm, filters_.data(), dy, b, g, p0, rows, dcols.data(),
                        lease);
        // The rows of dx this block reaches, cut into bands of whole rows.
        const std::int64_t h0 = std::max<std::int64_t>(0, p0 / s.w_out * s.p.stride_h -
                                                              s.p.pad.top);
        const std::int64_t h1 = std::min(s.h, (p0 + rows - 1) / s.w_out * s.p.stride_h -
                                                  s.p.pad.top + (s.k_h - 1) * s.p.dilation_h + 1);
        const double adds = double(rows) * double(K);
        const std::int64_t bands = std::min<std::int64_t>(
            {std::max<std::int64_t>(h1 - h0, 1), 2 * std::int64_t(threads),
             std::max<std::int64_t>(1, std::int64_t(adds / kAddsPerThread))});
        if (bands <= 1) {
          add(b, g, p0, rows, dcols.data(), Band{0, s.h});
          continue;
        }
        lease.run(bands, threads, [&](std::int64_t j, detail::WorkerScratch&) {
          add(b, g, p0, rows, dcols.data(),
              Band{h0 + (h1 - h0) * j / bands, h0 + (h1 - h0) * (j + 1) / bands});
        });
      }
    }
  }
}

template void Conv2dBackwardData<float>::run_col2im(const float*, float*) const;
template void Conv2dBackwardData<double>::run_col2im(const double*, double*) const;

}  // namespace convx
