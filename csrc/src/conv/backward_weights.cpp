// The filter and bias gradients: per group, dw = dy^T . patches(x), a GEMM
// whose reduction runs over every output pixel of the batch, with the
// patches gathered panel by panel from x.
#include <algorithm>
#include <cstring>
#include <vector>

#include "common/checked.hpp"
#include "conv/depthwise.hpp"
#include "conv/pad_map.hpp"
#include "convx/conv2d_backward.hpp"
#include "gemm/driver.hpp"
#include "kernels/kernel_table.hpp"
#include "runtime/context_state.hpp"
#include "runtime/float_mode.hpp"
#include "runtime/thread_pool.hpp"

namespace convx {

namespace detail {
namespace {

// NCHW dy as the left operand: A(i, q) = dy[b, g*cog + i, pix] for output
// pixel q = b*pixels + pix of the whole batch.
template <typename T>
class NchwGradRows final : public ASource<T> {
 public:
  NchwGradRows(const ConvShape& s, const T* dy, std::int64_t group)
      : dy_(dy + group * s.c_out_per_group() * s.h_out * s.w_out),
        pixels_(s.h_out * s.w_out), c_out_(s.c_out) {}

  void pack_rows(T* dst, std::int64_t ld, std::int64_t r0, std::int64_t rows, std::int64_t k0,
                 std::int64_t kc) const override {
    for (std::int64_t i = 0; i < rows; ++i) {
      for (std::int64_t q = k0; q < k0 + kc;) {
        const std::int64_t b = q / pixels_, pix = q % pixels_;
        const std::int64_t run = std::min(pixels_ - pix, k0 + kc - q);
        const T* src = dy_ + ((b * c_out_ + r0 + i) * pixels_ + pix);
        std::memcpy(dst + i * ld + (q - k0), src, static_cast<std::size_t>(run) * sizeof(T));
        q += run;
      }
    }
  }

 private:
  const T* dy_;
  std::int64_t pixels_, c_out_;
};

// The patches of one group as the right operand: B(q, j) is element j of the
// patch of output pixel q (of the whole batch), in the weights' order: HWC
// (u, v, c) for NHWC, CHW (c, u, v) for NCHW; the padding reads 0, or in the
// other padding modes the input values pad_source() maps it to. A panel
// row is gathered into a short row first (NHWC: runs of channels), then
// copied into the panels nr values at a time.
template <typename T>
class PatchMatrix final : public BSource<T> {
 public:
  PatchMatrix(const ConvShape& s, const T* x, std::int64_t group)
      : s_(s), x_(x), c0_(group * s.c_in_per_group()) {}

  void pack_panels(const GemmKernel<T>& kern, T* dst, std::int64_t j0, std::int64_t cols,
                   std::int64_t k0, std::int64_t kc) const override {
    const int nr = kern.nr;
    const std::int64_t padded = (cols + nr - 1) / nr * nr;
    T row[kChunk];
    for (std::int64_t p = 0; p < kc; ++p) {
      const std::int64_t q = k0 + p;
      const std::int64_t ow = q % s_.w_out, oh = (q / s_.w_out) % s_.h_out;
      const std::int64_t b = q / (s_.w_out * s_.h_out);
      for (std::int64_t c0 = 0; c0 < padded; c0 += kChunk) {
        const std::int64_t len = std::min(kChunk, padded - c0);
        const std::int64_t live = std::max<std::int64_t>(0, std::min(len, cols - c0));
        gather(b, oh, ow, j0 + c0, live, row);
        std::fill(row + live, row + len, T(0));
        // c0 and kChunk are multiples of nr: the chunk is whole panel rows.
        for (std::int64_t j = 0; j < len; j += nr) {
          std::memcpy(dst + ((c0 + j) / nr) * kc * nr + p * nr, row + j,
                      static_cast<std::size_t>(nr) * sizeof(T));
        }
      }
    }
  }

 private:
  static constexpr std::int64_t kChunk = 256;  // a multiple of every kernel's nr

  // Patch elements [j, j + len) of output pixel (b, oh, ow) into row.
  void gather(std::int64_t b, std::int64_t oh, std::int64_t ow, std::int64_t j,
              std::int64_t len, T* row) const {
    if (len <= 0) return;
    const std::int64_t cg = s_.c_in_per_group(), kh = s_.k_h, kw = s_.k_w;
    const std::int64_t ih0 = oh * s_.p.stride_h - s_.p.pad.top;
    const std::int64_t iw0 = ow * s_.p.stride_w - s_.p.pad.left;
    const std::int64_t dh = s_.p.dilation_h, dw = s_.p.dilation_w;
    const PaddingMode mode = s_.p.padding_mode;
    if (s_.p.layout == Layout::NHWC) {
      std::int64_t u = j / (kw * cg), v = (j / cg) % kw, c = j % cg;
      for (std::int64_t done = 0; done < len;) {
        const std::int64_t run = std::min(cg - c, len - done);
        const std::int64_t ih = pad_source(ih0 + u * dh, s_.h, mode);
        const std::int64_t iw = pad_source(iw0 + v * dw, s_.w, mode);
        if (ih >= 0 && iw >= 0) {
          std::memcpy(row + done, x_ + ((b * s_.h + ih) * s_.w + iw) * s_.c_in + c0_ + c,
                      static_cast<std::size_t>(run) * sizeof(T));
        } else {
          std::fill(row + done, row + done + run, T(0));
        }
        done += run;
        c = 0;
        if (++v == kw) {
          v = 0;
          ++u;
        }
      }
      return;
    }
    std::int64_t c = j / (kh * kw), u = (j / kw) % kh, v = j % kw;
    for (std::int64_t t = 0; t < len; ++t) {
      const std::int64_t ih = pad_source(ih0 + u * dh, s_.h, mode);
      const std::int64_t iw = pad_source(iw0 + v * dw, s_.w, mode);
      row[t] = ih >= 0 && iw >= 0
                   ? x_[((b * s_.c_in + c0_ + c) * s_.h + ih) * s_.w + iw]
                   : T(0);
      if (++v == kw) {
        v = 0;
        if (++u == kh) {
          u = 0;
          ++c;
        }
      }
    }
  }

  const ConvShape& s_;
  const T* x_;
  std::int64_t c0_;
};

// db[m] = the sum of dy over every output pixel of the batch, in order.
template <typename T>
void bias_gradient(const ConvShape& s, const T* dy, T* db) {
  const std::int64_t pixels = s.h_out * s.w_out;
  std::fill(db, db + s.c_out, T(0));
  if (s.p.layout == Layout::NHWC) {
    for (std::int64_t q = 0; q < s.n * pixels; ++q) {
      for (std::int64_t m = 0; m < s.c_out; ++m) db[m] += dy[q * s.c_out + m];
    }
    return;
  }
  for (std::int64_t b = 0; b < s.n; ++b) {
    for (std::int64_t m = 0; m < s.c_out; ++m) {
      const T* plane = dy + (b * s.c_out + m) * pixels;
      for (std::int64_t p = 0; p < pixels; ++p) db[m] += plane[p];
    }
  }
}

// Below this many multiply-adds a depthwise weight gradient stays on one thread.
constexpr double kWorkPerThread = 2.0e5;
// Below this many flops per extra thread, waking a worker costs more than it
// saves (as in the GEMM's own plan).
constexpr double kGemmFlopsPerThread = 1.0e6;

// Depthwise filters (groups == C_in == C_out) have one k_h x k_w tap set per
// channel: dw[c, u, v] = sum over the batch's output pixels of
// dy[.., c] * x[.., c] at the tap's input pixel, summed pixel by pixel in
// order. In NHWC the channels of a pixel are contiguous, so the sums run as
// vectors across channels; a GEMM per channel would be 1 x k_h*k_w. Taps on
// the padding add nothing in Zeros mode and their mapped input otherwise.
// This computes every tap of channels [c0, c0 + cn), accumulating in acc
// ([tap][cn]).
template <typename T>
void depthwise_weight_gradient(const ConvShape& s, const T* x, const T* dy, std::int64_t c0,
                               std::int64_t cn, T* acc, T* dw) {
  const std::int64_t C = s.c_in, kw = s.k_w, taps = s.k_h * kw;
  const bool nhwc = s.p.layout == Layout::NHWC;
  const std::int64_t in_plane = s.h * s.w, out_plane = s.h_out * s.w_out;
  std::fill(acc, acc + taps * cn, T(0));
  for (std::int64_t b = 0; b < s.n; ++b) {
    for (std::int64_t oh = 0; oh < s.h_out; ++oh) {
      for (std::int64_t ow = 0; ow < s.w_out; ++ow) {
        for (std::int64_t u = 0; u < s.k_h; ++u) {
          const std::int64_t ih = pad_source(
              oh * s.p.stride_h - s.p.pad.top + u * s.p.dilation_h, s.h, s.p.padding_mode);
          if (ih < 0) continue;
          for (std::int64_t v = 0; v < kw; ++v) {
            const std::int64_t iw = pad_source(
                ow * s.p.stride_w - s.p.pad.left + v * s.p.dilation_w, s.w, s.p.padding_mode);
            if (iw < 0) continue;
            T* a = acc + (u * kw + v) * cn;
            if (nhwc) {
              const T* xs = x + ((b * s.h + ih) * s.w + iw) * C + c0;
              const T* g = dy + ((b * s.h_out + oh) * s.w_out + ow) * C + c0;
              for (std::int64_t c = 0; c < cn; ++c) a[c] += g[c] * xs[c];
            } else {
              const T* xs = x + (b * C + c0) * in_plane + ih * s.w + iw;
              const T* g = dy + (b * C + c0) * out_plane + oh * s.w_out + ow;
              for (std::int64_t c = 0; c < cn; ++c) a[c] += g[c * out_plane] * xs[c * in_plane];
            }
          }
        }
      }
    }
  }
  for (std::int64_t c = 0; c < cn; ++c) {
    for (std::int64_t t = 0; t < taps; ++t) dw[(c0 + c) * taps + t] = acc[t * cn + c];
  }
}

// The depthwise weight gradient on up to exec.threads() threads: each task
// owns every tap of a block of channels and sums every pixel, so each value's
// sum is the same at any thread count. (A task per tap would stream the
// whole of x and dy once per tap, from L3 rather than L1.)
template <typename T>
void depthwise_weight_gradient(const ConvShape& s, const T* x, const T* dy, T* dw,
                               Executor& exec) {
  const std::int64_t C = s.c_in, taps = s.k_h * s.k_w;
  const double work = double(s.n * s.h_out * s.w_out) * double(taps * C);
  const int threads = static_cast<int>(
      std::clamp<double>(work / kWorkPerThread, 1.0, double(exec.threads())));
  if (threads == 1) {
    std::vector<T> acc(static_cast<std::size_t>(taps * C));
    depthwise_weight_gradient(s, x, dy, std::int64_t(0), C, acc.data(), dw);
    return;
  }
  // Blocks of a multiple of 16 channels (whole vectors on every ISA), about
  // two per thread.
  constexpr std::int64_t kLanes = 16;
  const std::int64_t per = (C + 2 * threads - 1) / (2 * threads);
  const std::int64_t block = (per + kLanes - 1) / kLanes * kLanes;
  const std::int64_t blocks = (C + block - 1) / block;
  exec.run(blocks, threads, [&](std::int64_t t, WorkerScratch& scratch) {
    const std::int64_t c0 = t * block, cn = std::min(block, C - c0);
    T* acc = scratch.primary.as<T>(static_cast<std::size_t>(taps * cn));
    depthwise_weight_gradient(s, x, dy, c0, cn, acc, dw);
  });
}

// Group g's dw = dy_g^T . patches_g(x), columns [j0, j0 + cols) of it.
template <typename T>
void group_weight_gradient(const ConvShape& s, const GemmKernel<T>& kern, const T* x,
                           const T* dy, std::int64_t g, std::int64_t j0, std::int64_t cols,
                           T* dw, Executor& exec) {
  const std::int64_t cog = s.c_out_per_group(), K = s.patch_size();
  const std::int64_t pixels = s.n * s.h_out * s.w_out;
  const PatchMatrix<T> patches(s, x, g);
  const ColumnWindow<T> part(patches, j0);
  T* out = dw + g * cog * K + j0;
  if (s.p.layout == Layout::NHWC) {
    const StridedMatrix<T> grad(dy + g * cog, 1, s.c_out);
    gemm_blocked<T>(kern, exec, cog, cols, pixels, grad, part, out, K, 1, false, Epilogue<T>{});
  } else {
    const NchwGradRows<T> grad(s, dy, g);
    gemm_blocked<T>(kern, exec, cog, cols, pixels, grad, part, out, K, 1, false, Epilogue<T>{});
  }
}

// Every group's weight gradient. With several groups and threads, one job
// whose tasks each compute a block of one group's columns (patch elements)
// with a serial GEMM; the reduction over pixels is never split. Otherwise
// group after group, each GEMM parallel over its tiles.
template <typename T>
void weight_gradient(const ConvShape& s, const GemmKernel<T>& kern, const T* x, const T* dy,
                     T* dw, Executor& exec) {
  const std::int64_t K = s.patch_size(), groups = s.groups();
  const double flops = 2.0 * double(s.c_out) * double(K) * double(s.n * s.h_out * s.w_out);
  const int threads = static_cast<int>(
      std::clamp(flops / kGemmFlopsPerThread, 1.0, double(exec.threads())));
  const std::int64_t panels = (K + kern.nr - 1) / kern.nr;
  // The driver shares out one group's tiles itself, unless there are fewer
  // than threads of them: one M block and fewer column panels than threads
  // (few input channels, as in a stem or on one-channel images).
  const bool driver_splits = groups == 1 && (s.c_out > kern.mc || panels >= threads);
  if (threads == 1 || driver_splits) {
    for (std::int64_t g = 0; g < groups; ++g) {
      group_weight_gradient(s, kern, x, dy, g, 0, K, dw, exec);
    }
    return;
  }
  // About four tasks per thread, of whole micro-panels of columns where there
  // are enough panels; otherwise one part-panel per thread, each task then
  // gathering only its own patch elements.
  const std::int64_t wanted = (4 * threads + groups - 1) / groups;
  const std::int64_t cols = panels >= wanted ? (panels + wanted - 1) / wanted * kern.nr
                                             : (K + threads - 1) / threads;
  const std::int64_t parts = (K + cols - 1) / cols;
  exec.run(groups * parts, threads, [&](std::int64_t t, WorkerScratch& scratch) {
    SerialExecutor serial(scratch);
    const std::int64_t j0 = (t % parts) * cols;
    group_weight_gradient(s, kern, x, dy, t / parts, j0, std::min(cols, K - j0), dw, serial);
  });
}

}  // namespace
}  // namespace detail

template <typename T>
Conv2dBackwardWeights<T>::Conv2dBackwardWeights(const ConvShape& shape,
                                                std::shared_ptr<detail::ContextState> context)
    : shape_(shape), context_(std::move(context)),
      kernels_(&detail::kernels_for<T>(static_cast<Isa>(context_->isa.load()))) {}

template <typename T>
Conv2dBackwardWeights<T>::~Conv2dBackwardWeights() = default;

template <typename T>
std::unique_ptr<Conv2dBackwardWeights<T>> Conv2dBackwardWeights<T>::create(
    const ConvShape& forward_shape, Context& context) {
  const ConvShape& s = forward_shape;
  const ConvShape v = make_conv_shape(s.n, s.h, s.w, s.c_in, s.c_out, s.k_h, s.k_w, s.p);
  detail::require(v.h_out == s.h_out && v.w_out == s.w_out,
                  "conv2d backward: shape was not made by make_conv_shape");
  return std::unique_ptr<Conv2dBackwardWeights>(new Conv2dBackwardWeights(v, context.state()));
}

template <typename T>
const char* Conv2dBackwardWeights<T>::kernel() const {
  return kernels_->gemm.name;
}

template <typename T>
void Conv2dBackwardWeights<T>::run(const T* x, const T* dy, T* dw, T* db) const {
  const ConvShape& s = shape_;
  detail::require(dy != nullptr && (dw == nullptr || x != nullptr), "conv2d backward: null pointer");
  const detail::FloatModeScope float_mode(context_->flush.load(std::memory_order_relaxed));
  if (db != nullptr) detail::bias_gradient(s, dy, db);
  if (dw == nullptr) return;
  const std::int64_t pixels = s.n * s.h_out * s.w_out;
  if (pixels == 0) {
    std::fill(dw, dw + s.weight_size(), T(0));
    return;
  }
  detail::PoolLease lease(*context_);
  if (detail::is_depthwise(s)) {
    detail::depthwise_weight_gradient(s, x, dy, dw, lease);
  } else {
    detail::weight_gradient(s, kernels_->gemm, x, dy, dw, lease);
  }
}

template <typename T>
void conv2d_backward_weights(const ConvShape& forward_shape, const T* x, const T* dy, T* dw,
                             T* db) {
  Conv2dBackwardWeights<T>::create(forward_shape)->run(x, dy, dw, db);
}

#define CONVX_INSTANTIATE(T)                                                                \
  template class Conv2dBackwardWeights<T>;                                                  \
  template void conv2d_backward_weights<T>(const ConvShape&, const T*, const T*, T*, T*);
CONVX_INSTANTIATE(float)
CONVX_INSTANTIATE(double)
#undef CONVX_INSTANTIATE

}  // namespace convx
