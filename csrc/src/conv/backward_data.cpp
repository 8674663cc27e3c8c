// The input gradient and the transposed convolution: a forward convolution
// of dy, spread onto a zero grid when the stride requires it, with the
// flipped and transposed filters.
#include <algorithm>
#include <string>
#include <vector>

#include "common/checked.hpp"
#include "conv/backward_border.hpp"
#include "conv/depthwise.hpp"
#include "convx/conv2d_backward.hpp"
#include "kernels/kernel_table.hpp"
#include "runtime/context_state.hpp"

namespace convx {

namespace {

// Below this many input channels per group the input gradient is computed
// by col2im: as a convolution it would have that few output channels, too
// few to fill a GEMM tile. Depthwise layers are the exception: their
// convolution has its own kernel, and col2im would be a GEMM per channel.
constexpr std::int64_t kNarrowInput = 8;

// Zeros of dy's grid before its first value along one axis: d*(k - 1) - pad
// (negative when the padding exceeds the kernel's extent, which crops).
std::int64_t grid_before(std::int64_t k, std::int64_t d, std::int64_t pad) {
  return d * (k - 1) - pad;
}

// The forward problem dx = conv(grid(dy), w'), stride 1: either dy itself with
// padding (spread == false) or the zero grid of the dilated-kernel-padded size
// (spread == true).
ConvShape inner_shape(const ConvShape& f, bool spread) {
  ConvParams p;
  p.dilation_h = f.p.dilation_h;
  p.dilation_w = f.p.dilation_w;
  p.groups = f.groups();
  p.layout = f.p.layout;
  if (spread) {
    return make_conv_shape(f.n, f.h + f.p.dilation_h * (f.k_h - 1),
                           f.w + f.p.dilation_w * (f.k_w - 1), f.c_out, f.c_in, f.k_h, f.k_w, p);
  }
  p.pad.top = grid_before(f.k_h, f.p.dilation_h, f.p.pad.top);
  p.pad.left = grid_before(f.k_w, f.p.dilation_w, f.p.pad.left);
  p.pad.bottom = f.h + f.p.pad.top - (f.h_out - 1) * f.p.stride_h - 1;
  p.pad.right = f.w + f.p.pad.left - (f.w_out - 1) * f.p.stride_w - 1;
  return make_conv_shape(f.n, f.h_out, f.w_out, f.c_out, f.c_in, f.k_h, f.k_w, p);
}

bool needs_spread(const ConvShape& f) {
  return f.p.stride_h > 1 || f.p.stride_w > 1 ||
         grid_before(f.k_h, f.p.dilation_h, f.p.pad.top) < 0 ||
         grid_before(f.k_w, f.p.dilation_w, f.p.pad.left) < 0 ||
         f.h + f.p.pad.top - (f.h_out - 1) * f.p.stride_h - 1 < 0 ||
         f.w + f.p.pad.left - (f.w_out - 1) * f.p.stride_w - 1 < 0;
}

// The filters of the inner convolution: w' maps c_out channels to c_in, each
// group's filters transposed and flipped in both spatial axes. The (m, c)
// transposition runs in square tiles, so that reads and writes both stay
// within a few cache lines for wide layers.
template <typename T>
std::vector<T> transposed_filters(const ConvShape& f, const T* w) {
  constexpr std::int64_t kTile = 16;
  const std::int64_t G = f.groups(), cig = f.c_in_per_group(), cog = f.c_out_per_group();
  const std::int64_t kh = f.k_h, kw = f.k_w, taps = kh * kw;
  std::vector<T> wt(static_cast<std::size_t>(f.weight_size()));
  const bool nhwc = f.p.layout == Layout::NHWC;
  // Element (m, c) of tap t in the source, and of flipped tap t in the result.
  const std::int64_t src_m = nhwc ? taps * cig : cig * taps, src_c = nhwc ? 1 : taps;
  const std::int64_t dst_c = nhwc ? taps * cog : cog * taps, dst_m = nhwc ? 1 : taps;
  const std::int64_t tap_src = nhwc ? cig : 1, tap_dst = nhwc ? cog : 1;
  for (std::int64_t g = 0; g < G; ++g) {
    const T* src_g = w + g * cog * cig * taps;
    T* dst_g = wt.data() + g * cig * cog * taps;
    for (std::int64_t t = 0; t < taps; ++t) {
      const T* src = src_g + t * tap_src;
      T* dst = dst_g + (taps - 1 - t) * tap_dst;
      for (std::int64_t m0 = 0; m0 < cog; m0 += kTile) {
        for (std::int64_t c0 = 0; c0 < cig; c0 += kTile) {
          const std::int64_t m1 = std::min(cog, m0 + kTile), c1 = std::min(cig, c0 + kTile);
          for (std::int64_t m = m0; m < m1; ++m) {
            for (std::int64_t c = c0; c < c1; ++c) {
              dst[c * dst_c + m * dst_m] = src[m * src_m + c * src_c];
            }
          }
        }
      }
    }
  }
  return wt;
}

// dy (n x h_out x w_out x c_out of f) onto the zero grid of `g` (the inner
// input), value (oh, ow) at (before_h + oh*s_h, before_w + ow*s_w).
template <typename T>
void spread(const ConvShape& f, const ConvShape& g, const T* dy, T* grid) {
  std::fill(grid, grid + g.input_size(), T(0));
  const std::int64_t top = grid_before(f.k_h, f.p.dilation_h, f.p.pad.top);
  const std::int64_t left = grid_before(f.k_w, f.p.dilation_w, f.p.pad.left);
  const bool nhwc = f.p.layout == Layout::NHWC;
  const std::int64_t planes = nhwc ? f.n : f.n * f.c_out;
  const std::int64_t channels = nhwc ? f.c_out : 1;
  for (std::int64_t b = 0; b < planes; ++b) {
    for (std::int64_t oh = 0; oh < f.h_out; ++oh) {
      const std::int64_t t = top + oh * f.p.stride_h;
      if (t < 0 || t >= g.h) continue;
      for (std::int64_t ow = 0; ow < f.w_out; ++ow) {
        const std::int64_t u = left + ow * f.p.stride_w;
        if (u < 0 || u >= g.w) continue;
        const T* src = dy + ((b * f.h_out + oh) * f.w_out + ow) * channels;
        std::copy(src, src + channels, grid + ((b * g.h + t) * g.w + u) * channels);
      }
    }
  }
}

// y += bias per channel of the forward convolution's input (the transposed
// convolution's output).
template <typename T>
void add_bias(const ConvShape& f, const T* bias, T* y) {
  const std::int64_t pixels = f.h * f.w, channels = f.c_in;
  if (f.p.layout == Layout::NHWC) {
    for (std::int64_t p = 0; p < f.n * pixels; ++p) {
      for (std::int64_t c = 0; c < channels; ++c) y[p * channels + c] += bias[c];
    }
    return;
  }
  for (std::int64_t plane = 0; plane < f.n * channels; ++plane) {
    const T b = bias[plane % channels];
    for (std::int64_t p = 0; p < pixels; ++p) y[plane * pixels + p] += b;
  }
}

ConvShape validated_forward(const ConvShape& s) {
  const ConvShape v = make_conv_shape(s.n, s.h, s.w, s.c_in, s.c_out, s.k_h, s.k_w, s.p);
  detail::require(v.h_out == s.h_out && v.w_out == s.w_out,
                  "conv2d backward: shape was not made by make_conv_shape");
  return v;
}

}  // namespace


template <typename T>
Conv2dBackwardData<T>::~Conv2dBackwardData() = default;

template <typename T>
std::unique_ptr<Conv2dBackwardData<T>> Conv2dBackwardData<T>::create(const ConvShape& forward_shape,
                                                                     const T* weights,
                                                                     Context& context) {
  const ConvShape f = validated_forward(forward_shape);
  detail::require(weights != nullptr, "weight: null pointer");
  std::unique_ptr<Conv2dBackwardData> op(new Conv2dBackwardData);
  op->shape_ = f;
  if (f.input_size() == 0) return op;  // an empty dx needs no computation
  if (f.p.padding_mode != PaddingMode::Zeros) op->border_ = detail::border_filters(f, weights);
  if (f.c_in_per_group() < kNarrowInput && !detail::is_depthwise(f)) {
    op->col2im_ = true;
    op->filters_.assign(weights, weights + f.weight_size());
    op->context_ = context.state();
    op->kernels_ = &detail::kernels_for<T>(context.isa());
    return op;
  }
  op->spread_ = needs_spread(f);
  const ConvShape g = inner_shape(f, op->spread_);
  detail::require(g.h_out == f.h && g.w_out == f.w, "conv2d backward: internal shape error");
  // The inner operator takes the filters at each run: it packs them as it
  // goes, which costs a run what packing them here would, and keeps one copy
  // of them instead of three.
  op->filters_ = transposed_filters(f, weights);
  op->inner_ = Conv2d<T>::create_for_any_weights(g, Activation::None, context);
  return op;
}

template <typename T>
const char* Conv2dBackwardData<T>::method() const {
  return col2im_ ? "col2im" : "convolution";
}

template <typename T>
void Conv2dBackwardData<T>::run(const T* dy, T* dx) const {
  if (shape_.input_size() == 0) return;
  detail::require(dy != nullptr && dx != nullptr, "conv2d backward: null pointer");
  if (col2im_) {
    run_col2im(dy, dx);
  } else if (!spread_) {
    inner_->run(dy, filters_.data(), nullptr, dx);
  } else {
    std::vector<T> grid(static_cast<std::size_t>(inner_->shape().input_size()));
    spread(shape_, inner_->shape(), dy, grid.data());
    inner_->run(grid.data(), filters_.data(), nullptr, dx);
  }
  // Both methods give the input's own part of d(x_pad); a mode other than
  // Zeros adds back what its padding read.
  if (!border_.empty()) detail::add_border_adjoint(shape_, border_.data(), dy, dx);
}

template <typename T>
std::int64_t Conv2dBackwardData<T>::workspace_bytes() const {
  const std::int64_t border =
      border_.empty() ? 0 : (shape_.c_in + shape_.c_out) * std::int64_t(sizeof(T));
  return border + method_workspace_bytes();
}

template <typename T>
std::int64_t Conv2dBackwardData<T>::method_workspace_bytes() const {
  if (col2im_) {
    const std::int64_t pixels = shape_.h_out * shape_.w_out, K = shape_.patch_size();
    return std::clamp<std::int64_t>(kCol2imBlock / K, 1, pixels) * K * std::int64_t(sizeof(T));
  }
  if (inner_ == nullptr) return 0;
  const std::int64_t grid = spread_ ? inner_->shape().input_size() * std::int64_t(sizeof(T)) : 0;
  return grid + inner_->workspace_bytes();
}

ConvShape make_conv_transpose_shape(std::int64_t n, std::int64_t h, std::int64_t w,
                                    std::int64_t c_in, std::int64_t c_out, std::int64_t k_h,
                                    std::int64_t k_w, const ConvParams& p,
                                    std::int64_t output_padding_h,
                                    std::int64_t output_padding_w) {
  detail::require(h >= 1 && w >= 1, "input: height and width must be >= 1");
  detail::require(p.padding_mode == PaddingMode::Zeros,
                  std::string("padding_mode: a transposed convolution supports only 'zeros', "
                              "got '") + padding_mode_name(p.padding_mode) + "'");
  detail::require(k_h >= 1 && k_w >= 1, "kernel_size must be >= 1");
  detail::require(p.stride_h >= 1 && p.stride_w >= 1 && p.dilation_h >= 1 && p.dilation_w >= 1,
                  "stride and dilation must be >= 1");
  detail::require(p.pad.top >= 0 && p.pad.bottom >= 0 && p.pad.left >= 0 && p.pad.right >= 0,
                  "padding must be >= 0");
  detail::require(output_padding_h >= 0 && output_padding_w >= 0 &&
                      output_padding_h < std::max(p.stride_h, p.dilation_h) &&
                      output_padding_w < std::max(p.stride_w, p.dilation_w),
                  "output_padding must be >= 0 and smaller than the stride or the dilation");
  auto extent = [](std::int64_t in, std::int64_t k, std::int64_t s, std::int64_t d,
                   std::int64_t before, std::int64_t after, std::int64_t extra) {
    const std::int64_t grown = detail::checked_add(
        detail::checked_mul(in - 1, s, "stride"),
        detail::checked_add(detail::checked_mul(d, k - 1, "dilation"), 1 + extra, "kernel"),
        "output size");
    return grown - before - after;
  };
  const std::int64_t h_f = extent(h, k_h, p.stride_h, p.dilation_h, p.pad.top, p.pad.bottom,
                                  output_padding_h);
  const std::int64_t w_f = extent(w, k_w, p.stride_w, p.dilation_w, p.pad.left, p.pad.right,
                                  output_padding_w);
  detail::require(h_f >= 1 && w_f >= 1, "padding: larger than the output it trims (output size " +
                                            std::to_string(h_f) + " x " + std::to_string(w_f) +
                                            ")");
  const ConvShape f = make_conv_shape(n, h_f, w_f, c_out, c_in, k_h, k_w, p);
  detail::require(f.h_out >= h && f.w_out >= w, "conv_transpose2d: internal shape error");
  return f;
}

template <typename T>
ConvTranspose2d<T>::ConvTranspose2d(std::unique_ptr<Conv2dBackwardData<T>> data, std::int64_t h,
                                    std::int64_t w)
    : data_(std::move(data)), h_(h), w_(w) {}

template <typename T>
std::unique_ptr<ConvTranspose2d<T>> ConvTranspose2d<T>::create(
    std::int64_t n, std::int64_t h, std::int64_t w, std::int64_t c_in, std::int64_t c_out,
    std::int64_t k_h, std::int64_t k_w, const ConvParams& params, std::int64_t output_padding_h,
    std::int64_t output_padding_w, const T* weights, Context& context) {
  const ConvShape f = make_conv_transpose_shape(n, h, w, c_in, c_out, k_h, k_w, params,
                                                output_padding_h, output_padding_w);
  return std::unique_ptr<ConvTranspose2d>(
      new ConvTranspose2d(Conv2dBackwardData<T>::create(f, weights, context), h, w));
}

template <typename T>
void ConvTranspose2d<T>::run(const T* x, const T* bias, T* y) const {
  const ConvShape& f = data_->shape();
  if (f.h_out == h_ && f.w_out == w_) {
    data_->run(x, y);
  } else {
    // The forward output has rows or columns past x's (output_padding of a
    // stride below it): they read as zeros.
    std::vector<T> grown(static_cast<std::size_t>(f.output_size()), T(0));
    const bool nhwc = f.p.layout == Layout::NHWC;
    const std::int64_t planes = nhwc ? f.n : f.n * f.c_out, channels = nhwc ? f.c_out : 1;
    for (std::int64_t b = 0; b < planes; ++b) {
      for (std::int64_t i = 0; i < h_; ++i) {
        const T* src = x + (b * h_ + i) * w_ * channels;
        std::copy(src, src + w_ * channels,
                  grown.data() + (b * f.h_out + i) * f.w_out * channels);
      }
    }
    data_->run(grown.data(), y);
  }
  if (bias != nullptr) add_bias(f, bias, y);
}

template <typename T>
void conv2d_backward_data(const ConvShape& forward_shape, const T* dy, const T* w, T* dx) {
  Conv2dBackwardData<T>::create(forward_shape, w)->run(dy, dx);
}

#define CONVX_INSTANTIATE(T)                                                             \
  template class Conv2dBackwardData<T>;                                                  \
  template class ConvTranspose2d<T>;                                                     \
  template void conv2d_backward_data<T>(const ConvShape&, const T*, const T*, T*);
CONVX_INSTANTIATE(float)
CONVX_INSTANTIATE(double)
#undef CONVX_INSTANTIATE

}  // namespace convx
